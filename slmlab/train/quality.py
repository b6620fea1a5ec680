"""Generation quality of a from-scratch model: samples on prompt sets, classified for collapse; the
next-token distribution after a prompt with more or less context; and how often the tokens of
collapsed outputs occur in the training corpus (seeds 003 and 004).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
from rich.console import Console

from slmlab.generate.params import SamplingParams
from slmlab.metrics.collapse import COLLAPSED_CLASSES, RULES_VERSION, CollapseMetrics, collapse_metrics
from slmlab.store import Store
from slmlab.tasks.base import Task

# Seed 004's sampling: temperature 0.8, top-p 0.9, top-k 40, 64 new tokens.
SEED_SAMPLING = SamplingParams(temperature=0.8, top_p=0.9, top_k=40, max_new_tokens=64)
COLLAPSE_CHARS = set("):")  # seeds 003/004: the `):):):` and `:::::` loops


@dataclass
class QualityResult:
    metrics: CollapseMetrics
    samples: list[dict]  # prompt id, prompt, completion, features (class included)
    run_id: str = ""  # the store's run of these samples

    def to_dict(self) -> dict:
        return {"metrics": self.metrics.to_dict(), "samples": self.samples, "run_id": self.run_id}


def collapse_tasks(prompts: list[dict]) -> list[Task]:
    """The prompt set as tasks: each prompt is continued as plain text and judged by its collapse class."""
    return [Task(task_id=str(p["id"]), prompt=p["prompt"], test="", entry_point="", reference="",
                 benchmark="collapse prompts") for p in prompts]  # fmt: skip


def evaluate_quality(model: str, generator, prompts: list[dict], store: Store, params: SamplingParams = SEED_SAMPLING,
                     samples: int = 1, prefix: str = "", console: Console | None = None) -> QualityResult:  # fmt: skip
    """Sample every prompt (after an optional few-shot `prefix`) through the pipeline, into a run of
    the store (kind `quality`), and classify each completion with the collapse judge. A stored run
    is read back: `generator` (or a function that opens it) is only used for what is missing."""
    from slmlab.judge import make_judge
    from slmlab.models.trained import trained_weights_sha256
    from slmlab.pipeline import run
    from slmlab.pipeline.plan import plan
    from slmlab.tasks.prompts import Prompt

    console = console or Console(quiet=True)
    tasks = collapse_tasks(prompts)
    weights = trained_weights_sha256(model) if model.startswith(("ckpt:", "lora:")) else None
    identity = {"model": model, "weights": weights, "prompts": _digest([t.prompt for t in tasks]),
                "prefix": _digest([prefix]), "sampling": params.model_dump(), "samples": samples, "rules": RULES_VERSION}  # fmt: skip
    run_id, _ = store.open_run("quality", identity)
    planned = plan(tasks, samples, params.seed, lambda task: Prompt(prefix + task.prompt, chat=False),
                   add_special_tokens=False)  # fmt: skip
    with make_judge("collapse") as judge:
        run.generate_and_judge(store, run_id, planned, generator, params, console, {t.task_id: t for t in tasks}, judge)
    store.finish_run(run_id)
    place = {task.task_id: i for i, task in enumerate(tasks)}
    rows = sorted(store.samples(run_id), key=lambda r: (place.get(r.task_id, len(place)), r.sample_index))
    by_id = {task.task_id: task for task in tasks}
    records = [{"id": prompts[place[r.task_id]]["id"], "prompt": by_id[r.task_id].prompt, "completion": r.completion,
                **r.judgement.detail} for r in rows if r.task_id in by_id]  # fmt: skip
    return QualityResult(collapse_metrics([(r["prompt"], r["completion"]) for r in records]), records, run_id)


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]


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
