"""The evaluation config: the same fields as `slmlab eval`'s flags, or a YAML file for `slmlab run`,
validated by pydantic with one clear line per problem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slmlab.errors import UserError
from slmlab.generate.params import SamplingParams
from slmlab.models.trained import trained_weights_sha256
from slmlab.validation import describe_error, read_yaml_mapping

# Fields that do not change what is generated or how it is judged: not part of the run's identity.
PRESENTATION_FIELDS = ("out", "batch_size", "data_dir", "k", "workers", "device")


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    benchmark: str = "humaneval"  # humaneval, mbpp, mbpp-sanitized, minibench, or a .jsonl file
    data_dir: str | None = None
    n: int = Field(1, ge=1, le=10000)  # samples per task
    limit: int | None = Field(None, ge=1)  # first K tasks
    temperature: float = Field(0.0, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    max_new_tokens: int = Field(512, ge=1, le=32768)
    seed: int = 1234
    prompt_mode: Literal["auto", "plain", "chat"] = "auto"
    few_shot: int = Field(0, ge=0, le=20)
    sanitize: bool = True  # chat answers: run only their definitions, not their usage examples
    stop: list[str] | None = None  # None: the benchmark's standard set
    backend: str = "hf"  # the generator (slmlab.generate.backends)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = "auto"  # auto (a CUDA GPU if torch sees one), cpu, cuda, cuda:N
    batch_size: int = Field(64, ge=1, le=4096)
    sandbox: Literal["auto", "bwrap", "process", "subprocess"] = "auto"
    timeout: float = Field(5.0, gt=0.0, le=3600.0)
    workers: int | None = Field(None, ge=1)
    k: list[int] = Field(default_factory=lambda: [1, 10, 100])
    out: str = "slmlab-runs"
    # Activation capture (slmlab.probe): "all", or layer indices such as "11,-1"; None: off.
    capture_layers: str | None = None
    capture_tokens: bool = False  # keep every generated token's state, not only the mean
    # Intervention: shift layer steer_layer's output by steer_scale units along steer_direction (.npy).
    steer_layer: int | None = None
    steer_direction: str | None = None
    steer_scale: float = 0.0

    @field_validator("capture_layers", mode="before")
    @classmethod
    def _layer_list(cls, value):
        if isinstance(value, list):  # YAML: [11, -1]
            value = ",".join(str(v) for v in value)
        if value is None or str(value).strip() == "all":
            return value if value is None else "all"
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        if not parts or not all(p.lstrip("-").isdigit() for p in parts):
            raise ValueError("give 'all' or comma-separated layer indices such as 11,-1")
        return ",".join(parts)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from slmlab.generate.backends import BACKENDS

        if value not in BACKENDS:
            raise ValueError(f"choose one of {', '.join(BACKENDS)}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("give auto, cpu, cuda, cuda:N or mps")
        return value

    @model_validator(mode="after")
    def _steering_complete(self) -> EvalConfig:
        if (self.steer_layer is None) != (self.steer_direction is None):
            raise ValueError("steering needs both steer_layer and steer_direction")
        return self

    @property
    def steering(self) -> bool:
        return self.steer_layer is not None and self.steer_scale != 0

    @field_validator("k")
    @classmethod
    def _positive_ks(cls, ks: list[int]) -> list[int]:
        if not ks or min(ks) < 1:
            raise ValueError("k must be a non-empty list of positive integers")
        return sorted(set(ks))

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              repetition_penalty=self.repetition_penalty, max_new_tokens=self.max_new_tokens,
                              seed=self.seed)  # fmt: skip

    def identity(self) -> dict:
        """What defines the run: the same identity resumes the same run."""
        identity = self.model_dump(exclude=set(PRESENTATION_FIELDS))
        if not self.steering:  # a zero shift is no intervention: the same run as without one
            for name in ("steer_layer", "steer_direction", "steer_scale"):
                identity.pop(name)
        else:  # the direction's content, not its file name, defines the run
            identity["steer_direction"] = _direction_sha256(self.steer_direction)
        for name in ("capture_layers", "capture_tokens"):
            if not identity[name]:
                identity.pop(name)  # runs made before capture existed keep their ids
        if identity["backend"] == "hf":
            identity.pop("backend")  # runs made before backends existed keep their ids
        if self.model.startswith(("ckpt:", "lora:")):  # retrained into the same folder: a new run
            identity["model_weights"] = trained_weights_sha256(self.model)
        return identity


def _direction_sha256(path: str) -> str:
    from slmlab.models.cache import sha256_file

    try:
        return sha256_file(Path(path))
    except OSError as exc:
        raise UserError(f"steering direction {path}: {exc.strerror}") from None


def make_config(values: dict, source: str = "options") -> EvalConfig:
    try:
        return EvalConfig(**values)
    except ValidationError as exc:
        raise UserError(describe_error(exc, source, EvalConfig.model_fields)) from None


def load_config(path: str | Path) -> EvalConfig:
    return make_config(read_yaml_mapping(path, "model: ..., benchmark: ..."), str(path))
