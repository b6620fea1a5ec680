"""What a training run is: seed 003's `train_best.py` flags plus the ones a modern loop needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from slmlab.errors import UserError
from slmlab.train.arch import ArchConfig
from slmlab.validation import describe_error

_BPE = re.compile(r"^bpe[-:]?(\d+)(k?)$", re.IGNORECASE)
# What --tokenizer accepts besides a directory, as every message that refuses one lists it.
TOKENIZER_KINDS = "char, bpe-<size> (e.g. bpe-4k, bpe-8k, bpe-16k, bpe-8192) or gpt2"


def parse_tokenizer_spec(spec: str) -> tuple[str, int | None] | None:
    """("char"|"bpe"|"gpt2", vocab size) for a tokenizer to train or fetch; None for a path.
    `bpe-8k` is 8,000 tokens, as in seed 003 (its parameter count only adds up with 8,000)."""
    lowered = spec.lower()
    if lowered in ("char", "gpt2"):
        return lowered, None
    match = _BPE.match(spec)
    if match:
        return "bpe", int(match.group(1)) * (1000 if match.group(2) else 1)
    return None


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arch: ArchConfig
    experiment_name: str = Field(min_length=1, pattern=r"^[\w.-]+$")
    train_path: Path
    val_path: Path
    tokenizer: str = "bpe-8k"  # a tokenizer directory, or char | bpe-<size> | gpt2 to make one
    log_dir: Path | None = None  # default: slmlab-runs/train/<experiment_name>
    max_steps: int = Field(1000, gt=0)
    batch_size: int = Field(32, gt=0)
    seq_len: int = Field(256, gt=1)
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(3e-4, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    warmup_steps: int = Field(2000, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)  # 0: no clipping
    eval_every: int = Field(500, gt=0)
    eval_batches: int = Field(20, gt=0)
    save_every: int = Field(0, ge=0)  # 0: best, last and final only
    log_every: int = Field(10, gt=0)
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    compile: bool = False
    seed: int = 0
    peak_tflops: float | None = Field(None, gt=0)  # for MFU where the device's peak is not known

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} is above lr {self.lr}")
        if self.seq_len > self.arch.max_seq_len:
            raise ValueError(f"seq_len {self.seq_len} is longer than the architecture's max_seq_len "
                             f"{self.arch.max_seq_len}: raise max_seq_len in the architecture JSON")  # fmt: skip
        return self

    @property
    def run_dir(self) -> Path:
        return self.log_dir or Path("slmlab-runs") / "train" / self.experiment_name

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len * self.grad_accum


def make_train_config(values: dict, source: str = "options") -> TrainConfig:
    try:
        config = TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise UserError(describe_error(exc, source, TrainConfig.model_fields)) from None
    check_tokenizer_spec(config.tokenizer, source)
    return config


def check_tokenizer_spec(spec: str, source: str = "options") -> None:
    """A tokenizer kind to make, or an existing directory: checked before anything is trained or
    written (a resumed run's saved config is not re-checked: its directory may have moved since)."""
    if parse_tokenizer_spec(spec) is None and not Path(spec).expanduser().is_dir():
        where = "--tokenizer" if source == "options" else f"{source}: tokenizer"
        raise UserError(f"{where} {spec!r} is neither a kind nor a tokenizer directory: "
                        f"use {TOKENIZER_KINDS}, or a folder made by slmlab tokenizer train")  # fmt: skip
