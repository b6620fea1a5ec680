"""Sampling settings and the choice of the next token, one random generator per sample.

Each sample draws from its own torch.Generator seeded from (run seed, task, sample index), so a
sample's tokens do not depend on which other samples share its batch, on their order, or on
whether the run was resumed. The repetition penalty is transformers' own processor.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from slmlab.generate.params import SamplingParams, sample_seed  # noqa: F401  (re-exported)


def make_generator(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def logits_processors(params: SamplingParams) -> LogitsProcessorList:
    """transformers' processors that run on the whole vocabulary: the repetition penalty."""
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    return processors


def padded_history(histories: list[list[int]]) -> torch.Tensor:
    """Token histories of unequal length as one tensor for the repetition penalty. Rows are padded
    with their own first token: the penalty gathers and scatters by token id, so a repeated id
    changes nothing, where a shared pad id would penalise a token the row never produced."""
    width = max(len(h) for h in histories)
    return torch.tensor([h + [h[0]] * (width - len(h)) for h in histories], dtype=torch.long)


CANDIDATES = 256


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail of each row of descending probabilities beyond the nucleus: a token is kept
    while the mass before it is below top_p (the first token always)."""
    before = probs.cumsum(dim=-1) - probs
    return probs.masked_fill(before >= top_p, 0.0)


def sampling_distribution(scores: torch.Tensor, params: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, unnormalised probabilities) per row, the same distribution as transformers'
    temperature, top-k and top-p warpers in that order.

    Written here because those warpers sort the whole vocabulary of every row at every step: a
    third of the decoding time of a 135M model on a CPU. The nucleus almost always lies among the
    few hundred most likely tokens, so those are taken first; a row whose candidates hold less than
    top_p of the mass (a flat distribution) is redone on its whole vocabulary, so the result is exact."""
    scores = scores / params.temperature
    rows, vocab = scores.shape
    keep = min(params.top_k, vocab) if params.top_k > 0 else vocab
    if params.top_p >= 1.0:
        if keep == vocab:
            return torch.arange(vocab).expand(rows, vocab), torch.softmax(scores, dim=-1)
        values, ids = scores.topk(keep, dim=-1)
        return ids, torch.softmax(values, dim=-1)
    values, ids = scores.topk(min(keep, CANDIDATES), dim=-1)
    if keep <= CANDIDATES:  # the top-k set is all there: renormalise over it
        return ids, _nucleus(torch.softmax(values, dim=-1), params.top_p)
    kept = scores if keep == vocab else scores.topk(keep, dim=-1).values
    norm = torch.logsumexp(kept, dim=-1, keepdim=True)
    probs = torch.exp(values - norm)
    short = (probs.sum(dim=-1) < params.top_p).nonzero().flatten().tolist()
    probs = _nucleus(probs, params.top_p)
    if not short:
        return ids, probs
    full_values, full_ids = scores[short].topk(keep, dim=-1)
    return _widen(ids, probs, short, full_ids, _nucleus(torch.exp(full_values - norm[short]), params.top_p))


def _widen(ids, probs, rows, full_ids, full):
    """Candidate tensors widened to the full vocabulary for `rows`, zeros elsewhere."""
    width = full_ids.shape[-1]
    wide_ids = torch.zeros((ids.shape[0], width), dtype=ids.dtype)
    wide_probs = torch.zeros((probs.shape[0], width), dtype=probs.dtype)
    wide_ids[:, : ids.shape[1]], wide_probs[:, : probs.shape[1]] = ids, probs
    wide_ids[rows], wide_probs[rows] = full_ids, full
    return wide_ids, wide_probs


def next_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    processors: LogitsProcessorList,
    histories: list[list[int]] | None,
    generators: list[torch.Generator],
) -> list[int]:
    """One token per row of `logits` ([rows, vocab]), each row drawn with its own generator."""
    scores = logits.float()
    if len(processors):
        scores = processors(padded_history(histories), scores)
    if params.greedy:
        return scores.argmax(dim=-1).tolist()
    ids, probs = sampling_distribution(scores, params)
    picks = [int(torch.multinomial(probs[i], 1, generator=g)) for i, g in enumerate(generators)]
    return ids.gather(1, torch.tensor(picks)[:, None]).flatten().tolist()
