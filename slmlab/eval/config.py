"""The evaluation config: the same fields as `slmlab eval`'s flags, or a YAML file for `slmlab run`,
validated by pydantic with one clear line per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slmlab.errors import UserError
from slmlab.generate.params import SamplingParams

# Fields that do not change what is generated or how it is judged: not part of the run's identity.
PRESENTATION_FIELDS = ("out", "batch_size", "data_dir", "k", "workers")


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
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    batch_size: int = Field(64, ge=1, le=4096)
    sandbox: Literal["auto", "bwrap", "process", "subprocess"] = "auto"
    timeout: float = Field(5.0, gt=0.0, le=3600.0)
    workers: int | None = Field(None, ge=1)
    k: list[int] = Field(default_factory=lambda: [1, 10, 100])
    out: str = "slmlab-runs"

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
        return self.model_dump(exclude=set(PRESENTATION_FIELDS))


def describe_error(error: ValidationError, source: str) -> str:
    """pydantic's first problem as one line: where, what, and the value given."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    problem = first["msg"]
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(EvalConfig.model_fields)
        problem = f"unknown field (allowed: {allowed})"
    given = f" (got {first['input']!r})" if first["type"] != "extra_forbidden" and "input" in first else ""
    more = f" and {error.error_count() - 1} more problem(s)" if error.error_count() > 1 else ""
    return f"{source}: {where}: {problem}{given}{more}"


def make_config(values: dict, source: str = "options") -> EvalConfig:
    try:
        return EvalConfig(**values)
    except ValidationError as exc:
        raise UserError(describe_error(exc, source)) from None


def load_config(path: str | Path) -> EvalConfig:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path} is not valid YAML{where}: {reason}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    if not isinstance(values, dict):
        raise UserError(f"{path} must be a YAML mapping of fields (model: ..., benchmark: ...)")
    return make_config(values, str(path))
