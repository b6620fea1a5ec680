"""The settings every run shares, each declared once: which model on which engine, how it samples
(slmlab.generate.params.SamplingParams), how samples are judged, and where data is read and runs are
written. `slmlab eval`, `slmlab run CONFIG.yaml` and the study configs are made of these sections;
`slmlab eval`'s flags are derived from their fields (slmlab.cli_options), so a default or a help
text lives in one place.

A config composes the sections as pydantic bases (`Sectioned` first), so a YAML file gives a
section's fields either nested under the section's name or at its top level, as every config
written before the sections did; a run's identity is the same either way:

    model: qwen2.5-coder-0.5b-instruct        model: qwen2.5-coder-0.5b-instruct
    benchmark: humaneval                      benchmark: humaneval
    sampling: {temperature: 0.8, seed: 7}     temperature: 0.8
    execution: {sandbox: process}             seed: 7
                                              sandbox: process
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slmlab.generate.params import SamplingParams
from slmlab.judge.base import JudgeSettings
from slmlab.validation import closest_name

DTYPES = ("auto", "bfloat16", "float16", "float32")
SANDBOXES = ("auto", "bwrap", "process", "subprocess")


# How a run reaches a server: not what defines its results (a server that moved is the same model).
SERVER_FIELDS = ("base_url", "api_key_env", "concurrency", "request_timeout", "max_retries")


class EngineSettings(BaseModel):
    """The engine that runs a model, and how."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field("auto", description="the engine: auto (the fastest here that can do what the run asks), "
                                             "hf (transformers), llamacpp, vllm (GPU) or openai (a server)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto, bfloat16, float16 or float32 (hf and vllm)"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N (auto: a GPU if there is one)")
    batch_size: int | None = Field(None, ge=1, le=4096, description="sequences generated together "
                                   "(default: the engine's own: hf 64, llamacpp 16, vllm 256)")
    base_url: str | None = Field(None, description="openai backend: the server's address, e.g. http://127.0.0.1:8080/v1")
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                             description="openai backend: the environment variable that holds the key")
    concurrency: int = Field(8, ge=1, le=1024, description="openai backend: requests in flight at once")
    request_timeout: float = Field(600.0, gt=0.0, description="openai backend: seconds before a request is retried")
    max_retries: int = Field(5, ge=0, le=20, description="openai backend: retries of a failed request, with backoff")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from slmlab.generate.backends import choices

        if value not in choices():
            raise ValueError(f"choose one of {', '.join(choices())}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("give auto, cpu, cuda, cuda:N or mps")
        return value

    def chosen_backend(self, model: str, needs: frozenset[str] = frozenset()) -> tuple[str, str]:
        """(the backend that runs `model`, why): `auto` resolved on this machine."""
        from slmlab.generate.backends import choose

        return choose(self.backend, model, needs, self.dtype, self.device, getattr(self, "quantization", None))

    def engine_settings(self) -> dict:
        """What open_generator takes from this section."""
        return {"dtype": self.dtype, "device": self.device, **({"batch_size": self.batch_size} if self.batch_size else {}),
                **{name: getattr(self, name) for name in SERVER_FIELDS}}  # fmt: skip

    def engine_identity(self, model: str | None = None, needs: frozenset[str] = frozenset()) -> dict:
        """What of the engine defines a run's results: the backend and its engine's version, unless it
        is hf (runs made before backends existed keep their ids; its version is in each run's setup).
        Without a model (a study over several), only a backend asked for by name."""
        if model is None:
            return {} if self.backend in ("hf", "auto") else {"backend": self.backend}
        from slmlab.generate.backends import backend

        name, _ = self.chosen_backend(model, needs)
        if name == "hf":
            return {}
        version = getattr(backend(name), "engine_version", None)
        return {"backend": name, **({"engine": version()} if version else {})}


class ModelSettings(BaseModel):
    """Which model (a config takes EngineSettings with it: how it runs)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="built-in name (slmlab models list), hub id, local directory or .gguf")


class ExecutionSettings(BaseModel):
    """How generated code is judged in the sandbox."""

    model_config = ConfigDict(extra="forbid")

    sandbox: Literal["auto", "bwrap", "process", "subprocess"] = Field(
        "auto", description="auto, bwrap, process or subprocess"
    )
    timeout: float = Field(5.0, gt=0.0, le=3600.0, description="seconds per program")
    workers: int | None = Field(None, ge=1, description="execution workers (default: one per core)")

    def judge_settings(self, **more) -> JudgeSettings:
        return JudgeSettings(sandbox=self.sandbox, timeout=self.timeout, workers=self.workers, **more)


# Where a run's work runs: not what defines its results (a sample's text and verdict are the same anywhere).
CLUSTER_FIELDS = ("executor", "ray_address", "replicas")


class ClusterSettings(BaseModel):
    """Where generation, execution and sweep trials run: this machine, or a Ray cluster."""

    model_config = ConfigDict(extra="forbid")

    executor: Literal["local", "ray"] = Field("local", description="local (this machine) or ray (a Ray cluster: "
                                              "pip install 'slmlab[ray]')")
    ray_address: str | None = Field(None, description="ray executor: the cluster to join, e.g. auto or "
                                    "10.0.0.1:6379 [a new one on this machine]")
    replicas: int | None = Field(None, ge=1, le=4096, description="ray executor: generator replicas "
                                 "[one per GPU, else one per node]")

    @model_validator(mode="after")
    def _ray_fields_need_ray(self):
        if self.executor == "local" and (self.ray_address or self.replicas):
            given = "ray_address" if self.ray_address else "replicas"
            raise ValueError(f"{given} is for the ray executor: add executor: ray (--executor ray)")
        return self


class PathSettings(BaseModel):
    """Where data is read and runs are written."""

    model_config = ConfigDict(extra="forbid")

    data_dir: str | None = Field(None, description="folder holding mbpp/ and gsm8k/ (default: $SLMLAB_DATA)")
    out: str = Field("slmlab-runs", description="folder of the run store and reports")


SECTIONS: dict[str, type[BaseModel]] = {"engine": EngineSettings, "sampling": SamplingParams,
                                        "execution": ExecutionSettings, "cluster": ClusterSettings,
                                        "paths": PathSettings}  # fmt: skip


class Sectioned(BaseModel):
    """A config made of sections reads each section's fields nested under its name, or at the top."""

    @model_validator(mode="before")
    @classmethod
    def _lift_sections(cls, values):
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for name, section in SECTIONS.items():
            if name not in values or name in cls.model_fields or not issubclass(cls, section):
                continue
            given, allowed = values.pop(name), list(section.model_fields)
            if not isinstance(given, dict):
                raise ValueError(f"{name}: give a mapping of its fields ({', '.join(allowed)})")
            for key in given:
                if key not in allowed:
                    meant = closest_name(str(key), allowed)
                    hint = f"did you mean '{name}.{meant}'?" if meant else f"it holds {', '.join(allowed)}"
                    raise ValueError(f"unknown field '{name}.{key}' ({hint})")
                if key in values:
                    raise ValueError(f"'{key}' is given twice: at the top and under {name}")
            values.update(given)
        return values

    def section(self, name: str) -> BaseModel:
        """One section of this config as its own model (`config.section("sampling")`: SamplingParams)."""
        model = SECTIONS[name]
        return model(**{field: getattr(self, field) for field in model.model_fields})
