"""The settings every run shares, each declared once: which model on which engine, how it samples
(slmlab.generate.params.SamplingParams), how samples are judged, and where data is read and runs are
written. `slmlab eval`, `slmlab run CONFIG.yaml` and the study configs are made of these sections;
`slmlab eval`'s flags are derived from their fields (slmlab.cli_options), so a default or a help
text lives in one place.

A config composes the sections as pydantic bases, so a YAML file names their fields at its top
level (`model:`, `temperature:`, `sandbox:`), as every config written before the sections did, and
a run's identity is unchanged by them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slmlab.judge.base import JudgeSettings

DTYPES = ("auto", "bfloat16", "float16", "float32")
SANDBOXES = ("auto", "bwrap", "process", "subprocess")


class ModelSettings(BaseModel):
    """Which model, on which engine."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="built-in name (slmlab models list), hub id, local directory or .gguf")
    backend: str = Field("hf", description="the generator that runs the model: hf (transformers)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto, bfloat16, float16 or float32"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N (auto: a GPU if there is one)")
    batch_size: int = Field(64, ge=1, le=4096, description="sequences generated together")

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


class PathSettings(BaseModel):
    """Where data is read and runs are written."""

    model_config = ConfigDict(extra="forbid")

    data_dir: str | None = Field(None, description="folder holding mbpp/ and gsm8k/ (default: $SLMLAB_DATA)")
    out: str = Field("slmlab-runs", description="folder of the run store and reports")
