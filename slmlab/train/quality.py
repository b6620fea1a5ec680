"""Generation quality of a from-scratch model: samples on prompt sets, classified for collapse; the
next-token distribution after a prompt with more or less context; and how often the tokens of
collapsed outputs occur in the training corpus (seeds 003 and 004).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from slmlab.generate.params import SamplingParams
from slmlab.metrics.collapse import COLLAPSED_CLASSES, CollapseMetrics, collapse_metrics, features

# Seed 004's sampling: temperature 0.8, top-p 0.9, top-k 40, 64 new tokens.
SEED_SAMPLING = SamplingParams(temperature=0.8, top_p=0.9, top_k=40, max_new_tokens=64)
COLLAPSE_CHARS = set("):")  # seeds 003/004: the `):):):` and `:::::` loops


@dataclass
class QualityResult:
    metrics: CollapseMetrics
    samples: list[dict]  # prompt id, prompt, completion, features (class included)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics.to_dict(), "samples": self.samples}


def sample_completions(model, tokenizer, prompts: list[str], params: SamplingParams, samples: int = 1,
                       batch_size: int = 32) -> list[list[str]]:  # fmt: skip
    """`samples` completions per prompt, each with its own seed (params.seed + index)."""
    from slmlab.generate.engine import BatchGenerator, Request

    requests = [Request((i, j), prompt, params.seed + i * samples + j, add_special_tokens=False)
                for i, prompt in enumerate(prompts) for j in range(samples)]  # fmt: skip
    texts: dict = {}
    BatchGenerator(model, tokenizer, params, batch_size=batch_size).run(
        requests, lambda g: texts.__setitem__(g.key, g.text)
    )
    return [[texts[(i, j)] for j in range(samples)] for i in range(len(prompts))]


def evaluate_quality(model, tokenizer, prompts: list[dict], params: SamplingParams = SEED_SAMPLING,
                     samples: int = 1, prefix: str = "", batch_size: int = 32) -> QualityResult:  # fmt: skip
    """Sample every prompt (after an optional few-shot `prefix`) and classify each completion."""
    texts = [prefix + p["prompt"] for p in prompts]
    outputs = sample_completions(model, tokenizer, texts, params, samples, batch_size)
    records, pairs = [], []
    for prompt, completions in zip(prompts, outputs, strict=True):
        for completion in completions:
            pairs.append((prompt["prompt"], completion))
            records.append({"id": prompt["id"], "prompt": prompt["prompt"], "completion": completion,
                            **features(prompt["prompt"], completion)})  # fmt: skip
    return QualityResult(collapse_metrics(pairs), records)


def _shares(probs: np.ndarray, pieces: list[str]) -> dict:
    newline = sum(float(p) for p, piece in zip(probs, pieces, strict=True) if piece.startswith("\n"))
    collapse = sum(
        float(p) for p, piece in zip(probs, pieces, strict=True) if piece and set(piece) <= COLLAPSE_CHARS
    )
    return {"p_newline": newline, "p_collapse": collapse}


def next_token_distribution(model, tokenizer, contexts: list[tuple[int, str]], top: int = 5) -> list[dict]:
    """For each (examples in context, text): the probability that the next token starts a new line
    (the right move after `def foo(n):`), that it is one of the collapse tokens (only `)` and `:`),
    and the `top` most likely tokens."""
    import torch

    pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    rows = []
    model.eval()
    for examples, text in contexts:
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(input_ids=ids[:, -model.config.max_position_embeddings :]).logits[0, -1].float()
        probs = torch.softmax(logits, -1).numpy()
        best = np.argsort(-probs)[:top]
        rows.append({"examples": examples, "context_tokens": int(ids.shape[1]), **_shares(probs, pieces),
                     "top": [(pieces[i], float(probs[i])) for i in best]})  # fmt: skip
    return rows


def collapse_token_frequency(samples: list[dict], tokenizer, corpus_tokens, top: int = 8) -> list[dict]:
    """The tokens that make up collapsed completions, with their share there and in the corpus: is
    collapse a copy of what is frequent in the data (seed 003 said no for `:` and `)`)?"""
    collapsed = [s["completion"] for s in samples if s["quality"] in COLLAPSED_CLASSES]
    in_collapse: Counter[int] = Counter()
    for text in collapsed:
        in_collapse.update(tokenizer(text, add_special_tokens=False).input_ids)
    counts = np.bincount(np.asarray(corpus_tokens, dtype=np.int64), minlength=len(tokenizer))
    order = np.argsort(-counts)
    rank = np.empty_like(order)
    rank[order] = np.arange(1, len(order) + 1)
    total_collapse = sum(in_collapse.values())
    return [{"token": tokenizer.decode([token]), "share_in_collapsed": n / total_collapse,
             "corpus_count": int(counts[token]), "corpus_share": float(counts[token] / counts.sum()),
             "corpus_rank": int(rank[token])}
            for token, n in in_collapse.most_common(top)]  # fmt: skip
