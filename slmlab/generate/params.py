"""Decoding settings (no torch import: configs validate before any model is loaded)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """Decoding settings; temperature 0 is greedy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)  # 0: no top-k cut
    repetition_penalty: float = Field(1.0, gt=0.0)
    max_new_tokens: int = Field(512, ge=1, le=32768)
    seed: int = 1234

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0
