"""Sampling settings and the choice of the next token, one random generator per sample.

Each sample draws from its own torch.Generator seeded from (run seed, task, sample index), so a
sample's tokens do not depend on which other samples share its batch, on their order, or on
whether the run was resumed. The logits processors are transformers' own.
"""

from __future__ import annotations

import hashlib

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from slmlab.generate.params import SamplingParams


def sample_seed(seed: int, task_id: str, sample_index: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{task_id}\0{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def make_generator(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def logits_processors(params: SamplingParams) -> LogitsProcessorList:
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if not params.greedy:
        processors.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            processors.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            processors.append(TopPLogitsWarper(params.top_p))
    return processors


def padded_history(histories: list[list[int]]) -> torch.Tensor:
    """Token histories of unequal length as one tensor for the repetition penalty. Rows are padded
    with their own first token: the penalty gathers and scatters by token id, so a repeated id
    changes nothing, where a shared pad id would penalise a token the row never produced."""
    width = max(len(h) for h in histories)
    return torch.tensor([h + [h[0]] * (width - len(h)) for h in histories], dtype=torch.long)


def next_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    processors: LogitsProcessorList,
    histories: list[list[int]] | None,
    generators: list[torch.Generator],
) -> list[int]:
    """One token per row of `logits` ([rows, vocab])."""
    scores = logits.float()
    if len(processors):
        ids = padded_history(histories) if histories is not None else None
        scores = processors(ids, scores)
    if params.greedy:
        return scores.argmax(dim=-1).tolist()
    probs = torch.softmax(scores, dim=-1)
    return [int(torch.multinomial(probs[i], 1, generator=g)) for i, g in enumerate(generators)]
