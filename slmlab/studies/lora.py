"""Seed 001 as one command: LoRA sweeps over rank, data size and language, with honest checks.

Trials: `rank` (Python, each rank at `rank_size` examples), `scale` (Python, rank 16, each size),
`lang` (each language at `lang_size`), `curriculum` (Python, rank 16 at `rank_size`, shuffled vs
simple-to-complex order), `all` (rank, scale and lang, seed 001's three), plus the base model as a
zero-training baseline per language. Each trial trains an adapter on function pairs cut from real code (nested
sizes: 50 examples are the first 50 of 150), generates bodies for the same held-out documented
headers, and scores them: BLEU and CodeBLEU with bootstrap intervals, the syntax pass rate from the
execution engine's real checker per language (javac, node, compile; `unchecked` is reported and left
out of the rate), the correlation between sentence BLEU and syntactic validity, and for Python the
mini benchmark and MBPP's test split executed in the sandbox (pass@1, outcome taxonomy). Trials run
`parallel` at a time, each in a fresh process (so its peak memory is its own) on its share of the
cores. Each trial is a run in the store (kind `lora-trial`): its settings, metrics, time, peak memory
and package versions, one sample per held-out function; finished trials are read back, so an
interrupted sweep resumes. Within each sweep, trials on the same held-out functions are compared
pairwise (McNemar on syntax validity, paired bootstrap on BLEU) with a plain verdict.
"""

from __future__ import annotations

import csv
import json
import resource
import time
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from slmlab.atomic import atomic_writer, write_text_atomic
from slmlab.errors import UserError
from slmlab.report.lora import csv_row, write_sweep_report
from slmlab.store import STORE_NAME, Store, environment_record, run_key
from slmlab.studies.configs import load_config
from slmlab.train.lora import LoraSettings

BUILTIN_CONFIGS = {"default": "lora.yaml", "full": "lora-full.yaml"}
SWEEPS = ("rank", "scale", "lang", "curriculum", "all")
LANGUAGES = ("python", "java", "javascript")
PACKAGES = ("torch", "transformers", "peft", "sacrebleu", "codebleu", "slmlab")


class LoraStudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "smollm2-135m-instruct"
    sweep: Literal["rank", "scale", "lang", "curriculum", "all"] = "all"
    sources: dict[str, list[str]] = Field(
        default_factory=lambda: {"python": ["python:stdlib"], "java": ["java"], "javascript": ["js:lodash"]}
    )
    ranks: list[int] = Field(default_factory=lambda: [4, 16, 64])
    sizes: list[int] = Field(default_factory=lambda: [50, 150, 300])
    rank_size: int = Field(200, gt=0)
    lang_size: int = Field(200, gt=0)
    languages: list[Literal["python", "java", "javascript"]] = Field(default_factory=lambda: list(LANGUAGES))
    test_size: int = Field(40, gt=0)
    max_lines: int = Field(30, gt=2)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(16, gt=0)  # generation
    mbpp: bool = True  # Python trials also run MBPP's test split (from data_dir or $SLMLAB_DATA)
    mbpp_limit: int | None = Field(20, ge=1)  # MBPP test tasks executed per Python trial; None: all 500
    minibench: bool = True
    parallel: int = Field(1, ge=1)  # trials at once, each in its own process on cores / parallel threads
    executor: Literal["local", "ray"] = "local"  # ray: the trials as Ray tasks over a cluster's nodes
    ray_address: str | None = None  # the cluster to join [a new one on this machine]
    device: str = "auto"  # training and generation: auto (a CUDA GPU if torch sees one), cpu, cuda:N
    data_dir: str | None = None
    out: str = "slmlab-runs/studies/lora"


def load_study_config(name_or_path: str | None, overrides: dict) -> LoraStudyConfig:
    return load_config(name_or_path, BUILTIN_CONFIGS, LoraStudyConfig, overrides, "model: ..., sweep: ...")


def _trial(language: str, rank: int = 0, size: int = 0, curriculum: bool = False) -> dict:
    return {"language": language, "rank": rank, "size": size, "curriculum": curriculum}


def sweep_panels(config: LoraStudyConfig) -> dict[str, list[tuple[str, dict]]]:
    """Each sweep's trials, labelled, in the order of seed 001's figures; the base model first."""
    sweeps = ("rank", "scale", "lang") if config.sweep == "all" else (config.sweep,)
    base = _trial("python")
    panels = {
        "rank": [("base", base)] + [(f"rank {k}", _trial("python", k, config.rank_size)) for k in config.ranks],
        "scale": [("base", base)] + [(f"size {n}", _trial("python", 16, n)) for n in config.sizes],
        "lang": [(f"{lang} base", _trial(lang)) for lang in config.languages]
        + [(lang, _trial(lang, 16, config.lang_size)) for lang in config.languages],
        "curriculum": [("base", base), ("shuffled", _trial("python", 16, config.rank_size)),
                       ("curriculum", _trial("python", 16, config.rank_size, curriculum=True))],
    }  # fmt: skip
    return {name: panels[name] for name in sweeps}


def plan_trials(config: LoraStudyConfig) -> list[dict]:
    """Every trial the sweep needs, baselines (rank 0) first, without repeats."""
    trials = []
    for trial in sorted(
        (t for items in sweep_panels(config).values() for _, t in items), key=lambda t: t["rank"] > 0
    ):
        if trial not in trials:
            trials.append(trial)
    return trials


def planned_comparisons(config: LoraStudyConfig) -> list[tuple[str, tuple[str, dict], tuple[str, dict]]]:
    """(sweep, A, B) pairs worth testing: every trial against its language's base model, and
    neighbours within a sweep (rank 4 vs 16, size 50 vs 100, shuffled vs curriculum)."""
    planned, seen = [], set()
    for name, items in sweep_panels(config).items():
        if name == "lang":
            pairs = [(a, b) for a in items for b in items if not a[1]["rank"] and b[1]["rank"]
                     and a[1]["language"] == b[1]["language"]]  # fmt: skip
        else:
            pairs = [(items[0], item) for item in items[1:]] + list(pairwise(items[1:]))
        for a, b in pairs:
            key = json.dumps([a[1], b[1]], sort_keys=True)
            if key not in seen:
                seen.add(key)
                planned.append((name, a, b))
    return planned


def _pairs(config: LoraStudyConfig, language: str, size: int, console: Console):
    """The language's pairs (cached as JSONL): the largest size any trial needs, and the test split."""
    from slmlab.train.pairs import build_pairs, read_pairs

    settings = {"sources": config.sources.get(language), "size": size, "test": config.test_size,
                "max_lines": config.max_lines}  # fmt: skip
    if not settings["sources"]:
        raise UserError(f"no sources for {language}: add them under sources: {language}: [...] in the config")
    path = Path(config.out) / "pairs" / f"{language}-{run_key('pairs', settings)}.jsonl"
    if not path.is_file():
        console.print(f"[bold]pairs[/bold] {language}: {', '.join(settings['sources'])}")
        build_pairs(settings["sources"], language, max_lines=config.max_lines, limit=size,
                    test_size=config.test_size).to_jsonl(path)  # fmt: skip
    return read_pairs(path)


TEXT_METRICS = 2  # the version of text_scores: records scored by an older one are rescored from their samples


def held_out_tasks(language: str, test_pairs) -> list:
    """The held-out functions as tasks: the documented header is the prompt, the real body the reference."""
    from slmlab.tasks.base import Task
    from slmlab.train.examples import pair_example

    return [Task(task_id=str(pair.id), prompt=prompt, test="", entry_point="", reference=body,
                 benchmark=f"{language} held-out functions", language=language)
            for pair in test_pairs if (example := pair_example(pair)) is not None for prompt, body in [example]]  # fmt: skip


def _score(generator, language: str, test_pairs, config: LoraStudyConfig, store: Store, run_id: str,
           console: Console) -> dict:  # fmt: skip
    """Through the pipeline: a body for each held-out header (greedy), cut where the function ends,
    judged by the language's real syntax checker; then compared with the real body."""
    from slmlab.generate.params import SamplingParams
    from slmlab.judge import Candidate, make_judge
    from slmlab.pipeline import run
    from slmlab.pipeline.plan import plan
    from slmlab.tasks.prompts import Completion, Prompt
    from slmlab.train.examples import function_source, trim_body

    tasks = held_out_tasks(language, test_pairs)

    def body(task, text: str) -> Completion:
        # An empty body parses (a Python function of only its docstring, `{}`), but nothing was written.
        kept = trim_body(text, language)
        return Completion(kept, whole_program=False, empty=not _has_code(kept))

    def whole_function(task, row) -> Candidate:
        return Candidate(
            task,
            function_source(task.prompt, row.completion, language),
            empty=bool(row.generation.get("empty")),
        )

    planned = plan(tasks, 1, 0, lambda task: Prompt(task.prompt, chat=False), add_special_tokens=False)
    params = SamplingParams(temperature=0.0, max_new_tokens=config.max_new_tokens)
    with make_judge("syntax") as judge:
        run.generate_and_judge(store, run_id, planned, generator, params, console, {t.task_id: t for t in tasks},
                               judge, candidate=whole_function, extract=body,
                               annotate=lambda p: {"reference": p.task.reference})  # fmt: skip
    rows = list(store.samples(run_id))
    samples = _samples(rows)
    return {"syntax_checker": sorted({row.judgement.category or "none" for row in rows}),
            **text_scores(samples, language), "samples": samples}  # fmt: skip


def _samples(rows) -> list[dict]:
    return [{"id": row.task_id, "prompt": row.prompt, "reference": row.generation["reference"],
             "generated": row.completion, "syntax": row.judgement.verdict,
             "message": row.judgement.detail.get("message", "")} for row in rows]  # fmt: skip


def text_scores(samples: list[dict], language: str) -> dict:
    """What the samples' texts and verdicts give: BLEU and CodeBLEU with intervals, the syntax pass
    rate over checked samples, and how far sentence BLEU tracks validity."""
    from slmlab.metrics.intervals import rate
    from slmlab.metrics.textsim import code_bleu, corpus_bleu, sentence_bleu, similarity_vs_correctness

    bodies, references = [s["generated"] for s in samples], [s["reference"] for s in samples]
    checked = [s for s in samples if s["syntax"] != "unchecked"]
    valid = sum(s["syntax"] == "valid" for s in checked)
    syntax = rate(valid, len(checked)) if checked else None
    return {
        "examples": len(samples),
        "bleu": corpus_bleu(bodies, references).to_dict(),
        "codebleu": code_bleu(bodies, references, language).to_dict(),
        "syntax_pass": None if syntax is None else {"value": syntax.value, "interval": [syntax.low, syntax.high],
                                                    "valid": valid, "checked": len(checked)},
        "unchecked": len(samples) - len(checked),
        "bleu_vs_syntax": similarity_vs_correctness([sentence_bleu(s["generated"], s["reference"]) for s in checked],
                                                    [s["syntax"] == "valid" for s in checked]),
        "empty_bodies": sum(not _has_code(b) for b in bodies),
        "text_metrics": TEXT_METRICS,
    }  # fmt: skip


def _has_code(body: str) -> bool:
    return bool(body.strip().strip("{}").strip())


def _execute(model_name: str, config: LoraStudyConfig, console: Console) -> dict:
    """Python trials: the mini benchmark and MBPP's test split through the main job."""
    from slmlab.eval.config import EvalConfig
    from slmlab.studies.runs import eval_run

    results = {}
    benchmarks = [("minibench", None)] if config.minibench else []
    if config.mbpp:
        benchmarks.append(("mbpp-test", config.mbpp_limit))
    for benchmark, limit in benchmarks:
        eval_config = EvalConfig(model=model_name, benchmark=benchmark, limit=limit, prompt_mode="plain",
                                 max_new_tokens=max(config.max_new_tokens, 192), k=[1], dtype="float32",
                                 batch_size=config.batch_size, data_dir=config.data_dir, device=config.device,
                                 out=str(Path(config.out) / "store"))  # fmt: skip
        summary = eval_run(eval_config, console).summary
        results[benchmark] = summary.pass_at_1_record()
    return results


def trial_identity(config: LoraStudyConfig, trial: dict) -> dict:
    """What makes a trial's result: its store run is keyed on this."""
    return {**trial, "model": config.model, "lora": config.lora.model_dump(exclude={"curriculum"}),
            "benchmark": f"{trial['language']} held-out functions", "test": config.test_size,
            "max_lines": config.max_lines, "tokens": config.max_new_tokens, "scoring": 3}  # fmt: skip


def _trial_run_id(config: LoraStudyConfig, trial: dict) -> str:
    return run_key("lora-trial", trial_identity(config, trial))


def _stored_record(store: Store, run_id: str) -> dict | None:
    """A finished trial's record from the store (its samples are rows, the rest one metric); scores
    made by an older version of text_scores are remade from the samples, without re-running."""
    record = store.metrics(run_id).get("record")
    if record is None:
        return None
    samples = _samples(store.samples(run_id))
    if record["scores"].get("text_metrics") != TEXT_METRICS:
        record["scores"].update(text_scores(samples, record["language"]))
        store.set_metric(run_id, "record", record)
    record["scores"]["samples"] = samples
    return record


def _store_record(store: Store, run_id: str, record: dict) -> None:
    """The record after the samples (stored as they were generated and judged): a trial counts as
    done only once its record is there."""
    store.set_metric(
        run_id, "record", {**record, "scores": {k: v for k, v in record["scores"].items() if k != "samples"}}
    )
    store.finish_run(run_id)


def run_trial(config: LoraStudyConfig, trial: dict, console: Console) -> dict:
    """Train (unless baseline), score and store one trial; a stored trial is read back."""
    from slmlab.train.examples import pair_example
    from slmlab.train.lora import train_lora
    from slmlab.train.pairs import curriculum_order

    with Store(Path(config.out) / "store" / STORE_NAME) as store:
        run_id, _ = store.open_run("lora-trial", trial_identity(config, trial))
        if (record := _stored_record(store, run_id)) is not None:
            return record
    folder = Path(config.out) / "trials" / run_id
    language, rank, size = trial["language"], trial["rank"], trial["size"]
    pairs = _pairs(config, language, _largest(config), console)
    started = time.monotonic()
    training = None
    model_name = config.model
    if rank:
        train = pairs.train[:size]
        examples = [
            e for e in map(pair_example, curriculum_order(train) if trial["curriculum"] else train) if e
        ]
        order = "simple to complex" if trial["curriculum"] else "shuffled"
        console.print(f"[bold]lora[/bold] {language} rank {rank}, {len(examples)} examples, {order}")
        settings = config.lora.model_copy(update={"rank": rank, "curriculum": trial["curriculum"]})
        training = train_lora(
            config.model, examples, settings, folder / "adapter", device=config.device
        ).to_dict()
        model_name = f"lora:{folder / 'adapter'}"
    else:
        console.print(f"[bold]baseline[/bold] {language}: {config.model} without fine-tuning")
    from slmlab.generate import open_generator

    generator = open_generator(
        "hf", model_name, dtype="float32", device=config.device, batch_size=config.batch_size
    )
    with Store(Path(config.out) / "store" / STORE_NAME) as store:
        scores = _score(generator, language, pairs.test, config, store, run_id, console)
    record = {"trial": run_id, **trial, "model": config.model, "training": training, "scores": scores}
    if language == "python":
        record["execution"] = _execute(model_name, config, console)
    record.update(seconds=round(time.monotonic() - started, 1), versions=environment_record(PACKAGES)["packages"],
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))  # fmt: skip
    with Store(Path(config.out) / "store" / STORE_NAME) as store:
        _store_record(store, run_id, record)
    return record


def _largest(config: LoraStudyConfig) -> int:
    return max([config.rank_size, config.lang_size, *config.sizes])


def _trial_process(config_json: str, trial: dict, *, threads: int) -> str:
    """In a fresh worker process: one trial on `threads` cores."""
    import torch

    torch.set_num_threads(threads)
    return run_trial(LoraStudyConfig.model_validate_json(config_json), trial, Console())["trial"]


def _label(trial: dict) -> str:
    order = ", curriculum" if trial["curriculum"] else ""
    return f"{trial['language']} {'rank ' + str(trial['rank']) if trial['rank'] else 'base'} size {trial['size']}{order}"


def compare_trials(a: dict, b: dict) -> dict:
    """Paired tests of trial B against trial A on the held-out functions both scored."""
    from slmlab.metrics.compare import compare_runs
    from slmlab.metrics.textsim import compare_bleu

    samples_a = {s["id"]: s for s in a["scores"]["samples"]}
    samples_b = {s["id"]: s for s in b["scores"]["samples"]}
    shared = [i for i in samples_a if i in samples_b]
    checked = [i for i in shared if "unchecked" not in (samples_a[i]["syntax"], samples_b[i]["syntax"])]
    syntax = None
    if checked:
        test = compare_runs({i: [samples_a[i]["syntax"] == "valid"] for i in checked},
                            {i: [samples_b[i]["syntax"] == "valid"] for i in checked})  # fmt: skip
        syntax = {"difference": test.difference, "interval": [test.diff_low, test.diff_high], "p_value": test.p_value,
                  "significant": test.significant, "method": test.method, "functions": test.n_tasks,
                  "brief": test.brief()}  # fmt: skip
    bleu = compare_bleu([samples_a[i]["generated"] for i in shared], [samples_b[i]["generated"] for i in shared],
                        [samples_a[i]["reference"] for i in shared])  # fmt: skip
    return {"a_trial": a["trial"], "b_trial": b["trial"], "syntax": syntax, "bleu": bleu}


CSV_FIELDS = ["language", "rank", "size", "curriculum", "bleu", "bleu_low", "bleu_high", "codebleu", "syntax_pass",
              "syntax_low", "syntax_high", "syntax_checked", "unchecked", "minibench_pass_at_1",
              "mbpp_pass_at_1", "bleu_syntax_r", "train_seconds", "peak_rss_mb", "trial"]  # fmt: skip


def _run_trials(config: LoraStudyConfig, trials: list[dict], console: Console) -> None:
    """Run the trials not in the store yet, `parallel` at a time, each in a fresh process."""
    with Store(Path(config.out) / "store" / STORE_NAME) as store:
        todo = [t for t in trials if _stored_record(store, _trial_run_id(config, t)) is None]
    console.print(f"{len(trials) - len(todo)} of {len(trials)} trials already done")
    if not todo:
        return
    for language in dict.fromkeys(t["language"] for t in todo):  # made once, before the workers share them
        _pairs(config, language, _largest(config), console)
    from slmlab.pipeline.executor import CallFailed, make_executor

    calls = [(config.model_dump_json(), t) for t in todo]
    try:
        for done, (index, _) in enumerate(make_executor(config.executor, config.parallel, config.ray_address).run_each(_trial_process, calls), 1):
            console.print(f"trial {done}/{len(todo)} done: {_label(todo[index])}")
    except CallFailed as failed:
        raise failed.user_error(f"trial {_label(todo[failed.index])}", "finished trials") from None


def run_study(config: LoraStudyConfig, console: Console) -> dict:
    """Every trial of the sweep (run or read back), their paired comparisons, and the outputs."""
    trials = plan_trials(config)
    _run_trials(config, trials, console)
    with Store(Path(config.out) / "store" / STORE_NAME) as store:
        records = [_stored_record(store, _trial_run_id(config, t)) for t in trials]
    by_trial = {json.dumps(t, sort_keys=True): r for t, r in zip(trials, records, strict=True)}
    comparisons = [{"sweep": sweep, "a": label_a, "b": label_b,
                    **compare_trials(by_trial[json.dumps(a, sort_keys=True)], by_trial[json.dumps(b, sort_keys=True)])}
                   for sweep, (label_a, a), (label_b, b) in planned_comparisons(config)]  # fmt: skip
    out = Path(config.out)
    with atomic_writer(out / f"results_{config.sweep}.csv") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_row(r) for r in records)
    # The report takes data: each sweep's figure panels travel with the results, labelled by trial.
    panels = {
        name: [[label, trial] for label, trial in items] for name, items in sweep_panels(config).items()
    }
    study = {"config": config.model_dump(), "trials": records, "comparisons": comparisons, "panels": panels}
    write_text_atomic(out / f"results_{config.sweep}.json", json.dumps(study, indent=2))
    write_sweep_report(config, study)
    return study
