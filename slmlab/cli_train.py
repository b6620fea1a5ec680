"""`slmlab corpus`, `slmlab tokenizer` and `slmlab train`: training small code LMs from scratch.

Seed 003's `train_best.py` flags are accepted in both spellings (`--arch_json` and `--arch-json`),
so its commands paste as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slmlab.errors import UserError


def _console():
    from slmlab.cli_common import console

    return console


def _flag(*names: str, help: str) -> typer.models.OptionInfo:
    """An option under its dashed name and its seed-003 underscore spelling."""
    spellings = []
    for name in names:
        spellings += [name, "--" + name[2:].replace("-", "_")] if "-" in name[2:] else [name]
    return typer.Option(*dict.fromkeys(spellings), help=help)


def _text_file(path: Path, flag: str) -> Path:
    """A training or validation text that exists and holds something, or one line naming it."""
    if not path.is_file():
        raise UserError(f"{flag} {path} not found: build a corpus with slmlab corpus build (see slmlab corpus build --help)")
    if path.stat().st_size == 0:
        raise UserError(f"{flag} {path} is empty: give a text with code in it (slmlab corpus build makes one)")
    return path


train_app = typer.Typer(help="Train a small LM from scratch (seed 003), or search architectures (train search).",
                        invoke_without_command=True)  # fmt: skip


@train_app.callback()
def train_command(
    ctx: typer.Context,
    arch_json: Annotated[
        Path | None, _flag("--arch-json", help="architecture JSON (seed 003's schema)")
    ] = None,
    experiment_name: Annotated[str | None, _flag("--experiment-name", help="name of the run")] = None,
    train_path: Annotated[
        Path | None, _flag("--train-path", help="training text (slmlab corpus build)")
    ] = None,
    val_path: Annotated[Path | None, _flag("--val-path", help="validation text")] = None,
    max_steps: Annotated[int, _flag("--max-steps", help="optimizer steps")] = 1000,
    tokenizer: Annotated[
        str,
        _flag(
            "--tokenizer",
            "--tokenizer-path",
            help="tokenizer dir, or char | bpe-8k | bpe-<N> | gpt2 to make one",
        ),
    ] = "bpe-8k",
    use_tokens: Annotated[
        bool, _flag("--use-tokens", help="accepted for seed 003's commands; --tokenizer decides")
    ] = False,
    log_dir: Annotated[
        Path | None, _flag("--log-dir", help="run folder (default slmlab-runs/train/NAME)")
    ] = None,
    weight_decay: Annotated[float, _flag("--weight-decay", help="AdamW weight decay on matrices")] = 0.01,
    label_smoothing: Annotated[
        float, _flag("--label-smoothing", help="label smoothing of the training loss")
    ] = 0.0,
    warmup_steps: Annotated[int, _flag("--warmup-steps", help="linear warmup steps")] = 2000,
    lr: Annotated[float, _flag("--lr", help="peak learning rate")] = 3e-4,
    min_lr: Annotated[float, _flag("--min-lr", help="cosine decays to this")] = 1e-5,
    device: Annotated[str, _flag("--device", help="auto, cpu, cuda, cuda:N")] = "auto",
    batch_size: Annotated[int, _flag("--batch-size", help="sequences per micro-batch")] = 32,
    seq_len: Annotated[int, _flag("--seq-len", help="tokens per sequence (packed)")] = 256,
    grad_accum: Annotated[int, _flag("--grad-accum", help="micro-batches per step")] = 1,
    grad_clip: Annotated[float, _flag("--grad-clip", help="gradient norm clip (0: off)")] = 1.0,
    eval_every: Annotated[int, _flag("--eval-every", help="steps between validations")] = 500,
    eval_batches: Annotated[int, _flag("--eval-batches", help="validation batches per evaluation")] = 20,
    save_every: Annotated[int, _flag("--save-every", help="periodic checkpoints every N steps (0: off)")] = 0,
    dtype: Annotated[str, _flag("--dtype", help="auto (bf16 where native), float32, bfloat16")] = "auto",
    compile: Annotated[bool, _flag("--compile", help="torch.compile the model")] = False,
    seed: Annotated[int, _flag("--seed", help="initialisation, data order and dropout")] = 0,
    peak_tflops: Annotated[
        float | None, _flag("--peak-tflops", help="device peak for MFU, if unknown")
    ] = None,
    resume: Annotated[bool, _flag("--resume", help="continue the run from its last checkpoint")] = False,
    stop_at: Annotated[int | None, _flag("--stop-at", help="pause after this step (resumable)")] = None,
) -> None:
    """Train from scratch: `slmlab train --arch-json A.json --train-path T --val-path V ...`."""
    given = dict(locals())
    if ctx.invoked_subcommand is not None:
        return
    from slmlab.report.train import print_summary
    from slmlab.train.arch import load_arch
    from slmlab.train.config import make_train_config
    from slmlab.train.loop import train

    missing = [flag for flag, value in (("--arch-json", arch_json), ("--experiment-name", experiment_name),
                                        ("--train-path", train_path), ("--val-path", val_path)) if value is None]  # fmt: skip
    if missing:
        raise UserError(f"slmlab train needs {', '.join(missing)} (see slmlab train --help)")
    values = {
        k: v for k, v in given.items() if k not in {"ctx", "arch_json", "use_tokens", "resume", "stop_at"}
    }
    config = make_train_config({**values, "arch": load_arch(arch_json)})
    _text_file(train_path, "--train-path")
    _text_file(val_path, "--val-path")
    print_summary(_console(), train(config, _console(), resume=resume, stop_at=stop_at))


corpus_app = typer.Typer(help="Code corpora for training from scratch.", no_args_is_help=True)


@corpus_app.command("build")
def corpus_build(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="LANGUAGE[:LOCATION]: python:stdlib, python:numpy, "
            "python:./src, java (JDK src.zip), java:PATH.zip, js:lodash, js:./dir"
        ),
    ],  # fmt: skip
    out: Annotated[Path, typer.Option(help="folder for train.txt, val.txt, manifest.jsonl, corpus.json")],
    max_mb: Annotated[float | None, typer.Option(help="stop adding files at this many MB")] = None,
    val_fraction: Annotated[float, typer.Option(help="share of files held out for validation")] = 0.05,
    seed: Annotated[int, typer.Option(help="seed of the file split")] = 0,
    near_dup: Annotated[
        float, typer.Option(help="MinHash Jaccard at which files count as near duplicates (1: exact only)")
    ] = 0.8,
    tokenizer: Annotated[
        str | None, typer.Option(help="count tokens with this tokenizer (a directory, or gpt2)")
    ] = None,
) -> None:
    """Collect source files, drop exact and near duplicates, split train/val by file, report MB, files, tokens."""
    from slmlab.train.corpus import build_corpus

    if not 0 < near_dup <= 1:
        raise UserError(f"--near-dup must be a Jaccard similarity in (0, 1] (1: exact duplicates only), not {near_dup}")
    count = None
    if tokenizer is not None:
        backend = _tokenizer_for_counting(tokenizer).backend_tokenizer
        count = lambda text: len(backend.encode(text, add_special_tokens=False).ids)  # noqa: E731
    report = build_corpus(sources, out, max_mb=max_mb, val_fraction=val_fraction, seed=seed,
                          near_dup_threshold=near_dup if near_dup < 1 else None, count_tokens=count)  # fmt: skip
    _console().print(report.summary())
    _console().print(f"corpus: {out}")


def _tokenizer_for_counting(spec: str):
    from slmlab.train.config import parse_tokenizer_spec
    from slmlab.train.tokenizer import load_tokenizer, train_tokenizer

    parsed = parse_tokenizer_spec(spec)
    if parsed is None:
        if not Path(spec).expanduser().is_dir():
            raise UserError(f"--tokenizer {spec}: no such tokenizer directory; count with a directory made by "
                            "slmlab tokenizer train, or gpt2 (char and bpe kinds are trained on a corpus)")  # fmt: skip
        return load_tokenizer(spec)
    if parsed[0] != "gpt2":
        raise UserError(
            f"--tokenizer {spec}: a trained tokenizer needs a corpus first; count with a directory or gpt2"
        )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        train_tokenizer("gpt2", [], Path(tmp) / "gpt2")
        return load_tokenizer(Path(tmp) / "gpt2")


tokenizer_app = typer.Typer(help="Tokenizers for from-scratch models.", no_args_is_help=True)


@tokenizer_app.command("train")
def tokenizer_train(
    kind: Annotated[
        str, typer.Argument(help="char, bpe-<size> (bpe-4k, bpe-8k, bpe-16k, bpe-50k, bpe-8192) or gpt2")
    ],
    out: Annotated[Path, typer.Option(help="folder to write the tokenizer to (loads with AutoTokenizer)")],
    train_path: Annotated[
        list[Path] | None, typer.Option(help="training text(s), e.g. a corpus's train.txt")
    ] = None,
    val_path: Annotated[
        Path | None, typer.Option(help="text to measure compression on (default: the training text)")
    ] = None,
) -> None:
    """Train a character-level or byte-level BPE tokenizer, or fetch GPT-2's; report its compression."""
    from slmlab.train.config import TOKENIZER_KINDS, parse_tokenizer_spec
    from slmlab.train.tokenizer import train_tokenizer

    parsed = parse_tokenizer_spec(kind)
    if parsed is None:
        raise UserError(f"unknown tokenizer kind {kind!r}: use {TOKENIZER_KINDS}")
    if parsed[0] != "gpt2" and not train_path:
        raise UserError(
            f"a {parsed[0]} tokenizer is trained on text: pass --train-path (e.g. a corpus's train.txt)"
        )
    report = train_tokenizer(
        parsed[0], list(train_path or []), out, vocab_size=parsed[1], eval_files=val_path
    )
    _console().print(f"{report.kind} tokenizer: {report.vocab_size:,} tokens ({report.source}); "
                     f"{report.compression:.2f} characters per token on the {report.eval_on} "
                     f"({report.chars:,} characters, {report.tokens:,} tokens); {report.seconds:.1f} s")  # fmt: skip
    _console().print(f"tokenizer: {out}")


@train_app.command("search")
def train_search(
    arch_json: Annotated[Path, _flag("--arch-json", help="the base architecture JSON")],
    train_path: Annotated[Path, _flag("--train-path", help="training text")],
    val_path: Annotated[Path, _flag("--val-path", help="validation text")],
    space: Annotated[list[str], typer.Option(help="FIELD=V1,V2 (repeat): architecture or training fields")],
    out: Annotated[Path, typer.Option(help="folder for the trials and search.json")] = Path(
        "slmlab-runs/search"
    ),
    mode: Annotated[str, typer.Option(help="grid (every combination) or random")] = "grid",
    trials: Annotated[int, typer.Option(help="random mode: how many combinations")] = 8,
    parallel: Annotated[
        int, typer.Option(help="trials trained at once (the cores are split between them)")
    ] = 2,
    max_steps: Annotated[int, _flag("--max-steps", help="proxy length of each trial")] = 200,
    tokenizer: Annotated[
        str, _flag("--tokenizer", help="tokenizer dir, or char | bpe-<N> | gpt2")
    ] = "bpe-8k",
    batch_size: Annotated[int, _flag("--batch-size", help="sequences per step")] = 8,
    seq_len: Annotated[int, _flag("--seq-len", help="tokens per sequence")] = 256,
    lr: Annotated[float, _flag("--lr", help="peak learning rate")] = 1e-3,
    collapse: Annotated[bool, typer.Option(help="also measure collapse on the 52 prompts")] = True,
    executor: Annotated[str, typer.Option(help="local (this machine) or ray (trials as Ray tasks on a cluster)")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="ray executor: the cluster to join [a new one here]")] = None,
) -> None:
    """Short proxy runs over a grid or random space, in parallel, ranked by validation bits per
    character (then collapse rate). Finished trials are kept: re-running resumes the search."""
    from slmlab.report.console import print_table
    from slmlab.train.arch import load_arch
    from slmlab.train.config import make_train_config
    from slmlab.train.search import parse_space, run_search

    if parallel < 1 or trials < 1:
        raise UserError(f"--parallel and --trials must be at least 1, not {min(parallel, trials)}")
    base = make_train_config({"arch": load_arch(arch_json), "experiment_name": "search", "train_path": train_path,
                              "val_path": val_path, "tokenizer": tokenizer, "max_steps": max_steps,
                              "batch_size": batch_size, "seq_len": seq_len, "lr": lr,
                              "warmup_steps": max(1, max_steps // 10), "eval_every": max_steps, "eval_batches": 10})  # fmt: skip
    parsed = parse_space(space)
    _text_file(train_path, "--train-path")
    _text_file(val_path, "--val-path")
    done = lambda row, n, total: _console().print(  # noqa: E731
        f"trial {n}/{total} {row['trial']}: {row['val_bits_per_char']:.3f} bits/char"
    )
    results = run_search(base, parsed, out, mode, trials, parallel, collapse, on_done=done, executor=executor,
                         ray_address=ray_address)  # fmt: skip
    headers = ["rank", *parsed, "params", "val bits/char", "val loss", "collapse", "tok/s"]
    rows = [[str(i), *(str(r[k]) for k in parsed), f"{r['parameters']:,}", f"{r['val_bits_per_char']:.3f}",
             f"{r['val_loss']:.3f}", "-" if r["collapse_rate"] is None else f"{r['collapse_rate']:.0%}",
             f"{r['tokens_per_second']:,.0f}"] for i, r in enumerate(results, start=1)]  # fmt: skip
    print_table(_console(), f"Search ({mode}, {len(results)} trials, best first)", headers, rows)
    _console().print(f"search: {out / 'search.json'}")


pairs_app = typer.Typer(help="Function-level (doc, code) pairs for fine-tuning.", no_args_is_help=True)


@pairs_app.command("build")
def pairs_build(
    sources: Annotated[
        list[str], typer.Argument(help="files, folders, a JDK src.zip, or LANGUAGE:LOCATION specs")
    ],
    language: Annotated[str, typer.Option(help="python, java or javascript")],
    out: Annotated[Path, typer.Option(help="JSONL file of pairs (each row has its split)")],
    limit: Annotated[int | None, typer.Option(help="training pairs to keep (50 ... 2000)")] = None,
    test_size: Annotated[int | None, typer.Option(help="test pairs to keep")] = None,
    min_lines: Annotated[int, typer.Option(help="shortest function, in lines")] = 3,
    max_lines: Annotated[int, typer.Option(help="longest function, in lines")] = 60,
    min_complexity: Annotated[int, typer.Option(help="lowest cyclomatic complexity")] = 1,
    max_complexity: Annotated[int | None, typer.Option(help="highest cyclomatic complexity")] = None,
    seed: Annotated[int, typer.Option(help="seed of the train/test split")] = 0,
) -> None:
    """Cut documented functions out of real source with tree-sitter; dedup, filter, split train/test."""
    from slmlab.store import prepare_folder
    from slmlab.train.pairs import build_pairs

    for flag, value in (("--limit", limit), ("--test-size", test_size)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, not {value}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder: name the pairs file, e.g. {out / 'pairs.jsonl'}")
    prepare_folder(out.parent, "--out's folder")
    dataset = build_pairs(sources, language, min_lines=min_lines, max_lines=max_lines, min_complexity=min_complexity,
                          max_complexity=max_complexity, limit=limit, test_size=test_size, seed=seed)  # fmt: skip
    dataset.to_jsonl(out)
    summary = dataset.summary()
    _console().print(f"{language}: {len(dataset.train)} train and {len(dataset.test)} test pairs "
                     f"(complexity median {summary['complexity']['train']['median']}) in {dataset.seconds:.1f} s")  # fmt: skip
    _console().print(f"pairs: {out}")


lora_app = typer.Typer(help="LoRA fine-tuning of any slmlab model (peft).", no_args_is_help=True)


@lora_app.command("train")
def lora_train(
    model: Annotated[str, typer.Option(help="base model: a built-in name, a path, a hub id, ckpt:PATH")],
    out: Annotated[Path, typer.Option(help="folder for the adapter (then use --model lora:OUT anywhere)")],
    pairs: Annotated[Path | None, typer.Option(help="JSONL of pairs from slmlab pairs build")] = None,
    benchmark: Annotated[
        str | None, typer.Option(help="or tasks with reference solutions, e.g. mbpp-train")
    ] = None,
    data_dir: Annotated[str | None, typer.Option(help="folder holding mbpp/ (default: $SLMLAB_DATA)")] = None,
    limit: Annotated[int | None, typer.Option(help="use the first N examples")] = None,
    rank: Annotated[int, typer.Option(help="LoRA rank")] = 16,
    alpha: Annotated[float, typer.Option(help="LoRA alpha")] = 32,
    dropout: Annotated[float, typer.Option(help="LoRA dropout")] = 0.1,
    target_modules: Annotated[
        str, typer.Option(help="comma-separated module names, or all-linear")
    ] = "all-linear",
    epochs: Annotated[int, typer.Option(help="passes over the examples")] = 3,
    lr: Annotated[float, typer.Option(help="learning rate")] = 1e-4,
    max_length: Annotated[int, typer.Option(help="tokens per example (prompt + completion)")] = 512,
    batch_size: Annotated[int, typer.Option(help="examples per step")] = 8,
    curriculum: Annotated[
        bool, typer.Option(help="train simple to complex (cyclomatic complexity), unshuffled")
    ] = False,
    seed: Annotated[int, typer.Option(help="initialisation and shuffling")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
) -> None:
    """Fine-tune a LoRA adapter on function pairs or on a benchmark's reference solutions."""
    from slmlab.train.lora import LoraSettings, train_lora

    examples = _lora_examples(pairs, benchmark, data_dir, curriculum)[:limit]
    targets = (
        target_modules if target_modules == "all-linear" else [m.strip() for m in target_modules.split(",")]
    )
    settings = LoraSettings(rank=rank, alpha=alpha, dropout=dropout, target_modules=targets, epochs=epochs, lr=lr,
                            max_length=max_length, batch_size=batch_size, curriculum=curriculum, seed=seed)  # fmt: skip
    result = train_lora(model, examples, settings, out, _console(), device=device)
    _console().print(f"adapter: {out} ({result.trainable_parameters:,} trainable of {result.total_parameters:,} "
                     f"parameters; {result.examples} examples, {result.steps} steps, {result.seconds:.0f} s, "
                     f"peak {result.peak_rss_mb:,.0f} MB); evaluate with --model lora:{out}")  # fmt: skip


def _lora_examples(pairs: Path | None, benchmark: str | None, data_dir: str | None, curriculum: bool):
    from slmlab.train.examples import pair_example, task_example

    if (pairs is None) == (benchmark is None):
        raise UserError(
            "give the training examples with exactly one of --pairs FILE.jsonl or --benchmark NAME"
        )
    if benchmark is not None:
        from slmlab.tasks.registry import load_benchmark

        return [task_example(t) for t in load_benchmark(benchmark, data_dir) if t.reference]
    from slmlab.train.pairs import curriculum_order, read_pairs

    train = read_pairs(pairs).train
    ordered = curriculum_order(train) if curriculum else train
    return [e for e in map(pair_example, ordered) if e is not None]
