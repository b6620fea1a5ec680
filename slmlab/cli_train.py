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
    from slmlab.cli import console

    return console


def _flag(*names: str, help: str) -> typer.models.OptionInfo:
    """An option under its dashed name and its seed-003 underscore spelling."""
    spellings = []
    for name in names:
        spellings += [name, name.replace("-", "_")] if "-" in name[2:] else [name]
    return typer.Option(*dict.fromkeys(spellings), help=help)


train_app = typer.Typer(help="Train a small LM from scratch (seed 003), search architectures, check a run.",
                        invoke_without_command=True)  # fmt: skip


@train_app.callback()
def train_command(
    ctx: typer.Context,
    arch_json: Annotated[Path | None, _flag("--arch-json", help="architecture JSON (seed 003's schema)")] = None,
    experiment_name: Annotated[str | None, _flag("--experiment-name", help="name of the run")] = None,
    train_path: Annotated[Path | None, _flag("--train-path", help="training text (slmlab corpus build)")] = None,
    val_path: Annotated[Path | None, _flag("--val-path", help="validation text")] = None,
    max_steps: Annotated[int, _flag("--max-steps", help="optimizer steps")] = 1000,
    tokenizer: Annotated[
        str, _flag("--tokenizer", "--tokenizer-path", help="tokenizer dir, or char | bpe-8k | bpe-<N> | gpt2 to make one")
    ] = "bpe-8k",
    use_tokens: Annotated[bool, _flag("--use-tokens", help="accepted for seed 003's commands; --tokenizer decides")] = False,
    log_dir: Annotated[Path | None, _flag("--log-dir", help="run folder (default slmlab-runs/train/NAME)")] = None,
    weight_decay: Annotated[float, _flag("--weight-decay", help="AdamW weight decay on matrices")] = 0.01,
    label_smoothing: Annotated[float, _flag("--label-smoothing", help="label smoothing of the training loss")] = 0.0,
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
    peak_tflops: Annotated[float | None, _flag("--peak-tflops", help="device peak for MFU, if unknown")] = None,
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
    values = {k: v for k, v in given.items() if k not in {"ctx", "arch_json", "use_tokens", "resume", "stop_at"}}
    config = make_train_config({**values, "arch": load_arch(arch_json)})
    print_summary(_console(), train(config, _console(), resume=resume, stop_at=stop_at))
