"""The evaluation config: the same fields as `slmlab eval`'s flags, or a YAML file for `slmlab run`,
validated by pydantic with one clear line per problem."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slmlab.errors import UserError
from slmlab.generate.params import SamplingParams

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
        if self.model.startswith(("ckpt:", "lora:")):  # retrained into the same folder: a new run
            identity["model_weights"] = trained_weights_sha256(self.model)
        return identity


def trained_weights_sha256(name: str) -> str:
    from slmlab.models.cache import sha256_file
    from slmlab.train.checkpoint import resolve_checkpoint

    if name.startswith("lora:"):
        weights = Path(name.removeprefix("lora:")).expanduser() / "adapter_model.safetensors"
    else:
        weights = resolve_checkpoint(name.removeprefix("ckpt:")) / "model.safetensors"
    try:
        return sha256_file(weights)
    except OSError as exc:
        raise UserError(f"model {name}: cannot read {weights} ({exc.strerror})") from None


def _direction_sha256(path: str) -> str:
    from slmlab.models.cache import sha256_file

    try:
        return sha256_file(Path(path))
    except OSError as exc:
        raise UserError(f"steering direction {path}: {exc.strerror}") from None


def describe_error(error: ValidationError, source: str, fields=None) -> str:
    """pydantic's problems as one line: where, what, and the value given (never the whole input).

    `fields`: the model's `model_fields` (default: EvalConfig's), or just the allowed names. An
    unknown key is reported first, with the closest valid name (a misspelt `modle` otherwise shows
    up as "model: field required"); a required field that such a suggestion names is the same
    mistake, not one more problem. Every config loader (eval, studies, train, architectures) uses
    this, so the same mistake reads the same everywhere."""
    fields = EvalConfig.model_fields if fields is None else fields
    problems = _problems(error, fields)
    explained = {(p["parent"], p["suggestion"]) for p in problems if p["suggestion"]}
    problems = [p for p in problems if not (p["missing"] and (p["parent"], p["name"]) in explained)]
    first = problems[0]
    more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
    return f"{source}: {first['text']}{more}"


# pydantic names the member of a union that failed inside `loc` ('int', "literal['best']"): not a key.
_UNION_TAG = re.compile(r"^(int|float|str|bool|none|[a-z_-]+\[.*\])$")


def _problems(error: ValidationError, fields) -> list[dict]:
    """One entry per field in trouble, unknown keys first; a union's alternatives are merged."""
    grouped: dict[tuple, list[dict]] = {}
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
        grouped.setdefault((item["type"] == "extra_forbidden", loc), []).append(item)
    problems = []
    for (unknown, loc), items in grouped.items():
        parent, name = loc[:-1], (loc[-1] if loc else None)
        prefix = ".".join(str(p) for p in parent)
        entry = {"unknown": unknown, "parent": parent, "name": name, "suggestion": None,
                 "missing": items[0]["type"] == "missing"}  # fmt: skip
        if unknown:
            allowed = list(_fields_at(fields, parent) or [])
            entry["suggestion"] = _closest(str(name), allowed)
            where = f"'{prefix}.{name}'" if prefix else f"'{name}'"
            if entry["suggestion"]:
                meant = f"{prefix}.{entry['suggestion']}" if prefix else entry["suggestion"]
                hint = f" (did you mean '{meant}'?)"
            else:
                hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            entry["text"] = f"unknown field {where}{hint}"
        elif entry["missing"]:
            where = f"'{prefix}.{name}'" if prefix else f"'{name}'"
            entry["text"] = f"missing required field {where}"
        else:
            where = ".".join(str(p) for p in loc)
            messages = [_message(i) for i in items]
            text = messages[0] if len(messages) == 1 else " or ".join(dict.fromkeys(messages))
            entry["text"] = f"{where}: {text}" if where else text
            entry["text"] += _given(items[0]) if loc else ""  # a whole-config problem: no input shown
        problems.append(entry)
    problems.sort(key=lambda p: not p["unknown"])
    return problems


def _message(item: dict) -> str:
    message = item["msg"]
    if item["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    return message


def _given(item: dict) -> str:
    """The offending value when it is short and plain; a mapping or list would be the whole input."""
    value = item.get("input")
    if not isinstance(value, (str, int, float, bool)) or value is None:
        return ""
    shown = repr(value)
    return f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


def _closest(name: str, allowed: list[str]) -> str | None:
    """The valid field a mistyped key most likely meant: dashes for underscores, then difflib."""
    if name.replace("-", "_") in allowed:
        return name.replace("-", "_")
    lowered = {a.lower(): a for a in allowed}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _fields_at(fields, parent: tuple):
    """The field names allowed at `parent` (a nested model, an item of a list of models), or None."""
    current = fields
    for part in parent:
        if isinstance(part, int) or current is None:
            continue
        if not isinstance(current, dict) or part not in current:
            return None
        model = _model_in(getattr(current[part], "annotation", None))
        current = model.model_fields if model is not None else None
    return current


def _model_in(annotation):
    """The pydantic model inside an annotation (`X`, `X | None`, `list[X]`, `dict[str, X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def make_config(values: dict, source: str = "options") -> EvalConfig:
    try:
        return EvalConfig(**values)
    except ValidationError as exc:
        raise UserError(describe_error(exc, source)) from None


def read_yaml_mapping(path: str | Path, example: str = "model: ..., benchmark: ...") -> dict:
    """A YAML file of fields as a dict, or one clear line saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found")
    return parse_yaml_mapping(path.read_bytes(), str(path), example)


def parse_yaml_mapping(data: bytes, source: str, example: str) -> dict:
    try:
        values = yaml.safe_load(data.decode("utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{source} is not valid YAML{where}: {reason}") from None
    except UnicodeDecodeError:
        raise UserError(f"{source} is not UTF-8 text") from None
    if not isinstance(values, dict):
        raise UserError(f"{source} must be a YAML mapping of fields ({example})")
    return values


def load_config(path: str | Path) -> EvalConfig:
    return make_config(read_yaml_mapping(path), str(path))
