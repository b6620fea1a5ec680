"""Decoding settings and per-sample seeds (no torch import: configs validate and runs are planned
before any model is loaded)."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field


def sample_seed(seed: int, task_id: str, sample_index: int) -> int:
    """A sample's own seed, from the run's seed, its task and its index only."""
    digest = hashlib.sha256(f"{seed}\0{task_id}\0{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


class SamplingParams(BaseModel):
    """Decoding settings; temperature 0 is greedy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0.0, le=10.0, description="0 is greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling")
    top_k: int = Field(0, ge=0, description="0 is off")
    repetition_penalty: float = Field(1.0, gt=0.0, description="1 is off")
    max_new_tokens: int = Field(512, ge=1, le=32768, description="generation budget per sample")
    seed: int = Field(1234, description="sampling seed: each sample's own is drawn from (seed, task, index)")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0
