"""The evaluation config: the same fields as `slmlab eval`'s flags, or a YAML file for `slmlab run`,
validated by pydantic with one clear line per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from slmlab.errors import UserError
from slmlab.generate.params import SamplingParams
from slmlab.models.trained import trained_weights_sha256
from slmlab.pipeline.settings import (
    CLUSTER_FIELDS,
    SERVER_FIELDS,
    ClusterSettings,
    EngineSettings,
    ExecutionSettings,
    ModelSettings,
    PathSettings,
    Sectioned,
)
from slmlab.tasks.registry import benchmark_names
from slmlab.validation import describe_error, read_yaml_mapping

# Fields that do not change what is generated or how it is judged: not part of the run's identity.
PRESENTATION_FIELDS = ("out", "batch_size", "data_dir", "k", "workers", "device", *SERVER_FIELDS, *CLUSTER_FIELDS)


# pydantic lists a base's fields before those of the bases before it: model first, paths last.
class EvalConfig(Sectioned, PathSettings, ClusterSettings, ExecutionSettings, SamplingParams, EngineSettings,
                 ModelSettings):
    """`slmlab eval`: the shared sections (model, sampling, execution, paths) and what is the eval's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    benchmark: str = Field("humaneval", description=f"{benchmark_names()}, or a tasks .jsonl")
    n: int = Field(1, ge=1, le=10000, description="samples per task")
    limit: int | None = Field(None, ge=1, description="only the first K tasks")
    prompt_mode: Literal["auto", "plain", "chat"] = Field("auto", description="auto, plain or chat")
    few_shot: int = Field(0, ge=0, le=20, description="examples from the benchmark before each prompt")
    sanitize: bool = Field(True, description="chat answers: run their definitions only, not usage examples")
    stop: list[str] | None = Field(None, description="a stop sequence (repeat the option for more) [benchmark's set]")
    k: list[int] = Field(default_factory=lambda: [1, 10, 100], description="pass@k values to report")
    # Activation capture (slmlab.probe): "all", or layer indices such as "11,-1"; None: off.
    capture_layers: str | None = Field(
        None, description="capture activations of these layers: 'all' or e.g. 11,-1 [off]"
    )
    capture_tokens: bool = Field(False, description="also keep every generated token's activations")
    # Intervention: shift layer steer_layer's output by steer_scale units along steer_direction (.npy).
    steer_layer: int | None = Field(None, description="intervention: shift this layer's output")
    steer_direction: str | None = Field(None, description="intervention: .npy vector to shift along (unit length is used)")
    steer_scale: float = Field(0.0, description="intervention: shift in activation units")

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

    @model_validator(mode="after")
    def _steering_complete(self) -> EvalConfig:
        if (self.steer_layer is None) != (self.steer_direction is None):
            raise ValueError("steering needs both steer_layer and steer_direction")
        return self

    def needs(self) -> frozenset[str]:
        """What the run asks of its engine beyond text."""
        return frozenset({"capture"} if self.capture_layers else set()) | frozenset({"steer"} if self.steering else set())

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
        return self.section("sampling")

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
        identity.pop("backend")
        identity |= self.engine_identity(self.model, self.needs())
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
