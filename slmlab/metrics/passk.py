"""pass@k with the unbiased estimator of Chen et al. (2021), per task and aggregated with an interval."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral

from slmlab.metrics.intervals import bootstrap_mean, wilson


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from `n` samples of which `c` passed: 1 - C(n-c, k) / C(n, k).

    The binomials overflow for realistic n, so the ratio is taken as the product
    prod_{i=n-c+1}^{n} (1 - k/i), summed in log space (log1p/expm1) so a tiny pass@k keeps its
    relative precision instead of vanishing in 1 - (something close to 1).

    Edge cases: c = 0 gives 0.0; n - c < k gives 1.0 (every k-subset contains a pass). For n < k
    pass@k cannot be estimated from n samples (there is no k-subset), so the result is `math.nan`
    rather than a guess; `pass_at_k_summary` skips such tasks for that k and reports how many.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n < 0 or c < 0 or c > n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if n < k:
        return math.nan
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    log_fail = math.fsum(math.log1p(-k / i) for i in range(n - c + 1, n + 1))
    return -math.expm1(log_fail)


def _normalize_ks(ks: int | Iterable[int]) -> list[int]:
    """Deduplicate ks, keeping the caller's order, and reject k < 1 early."""
    ks_list = [ks] if isinstance(ks, Integral) else list(ks)
    out: list[int] = []
    for k in ks_list:
        if int(k) != k or k < 1:
            raise ValueError(f"every k must be a positive integer, got {k!r}")
        if int(k) not in out:
            out.append(int(k))
    return out


def _counts(samples: Sequence[bool]) -> tuple[int, int]:
    return len(samples), sum(1 for s in samples if s)


def pass_at_k_per_task(
    results: Mapping[str, Sequence[bool]], ks: int | Iterable[int]
) -> dict[int, dict[str, float]]:
    """pass@k of every task for every k: {k: {task_id: value}}.

    Tasks with fewer than k samples are kept with value nan, so the caller sees which tasks could
    not be scored at that k instead of having them silently disappear.
    """
    counts = {task: _counts(samples) for task, samples in results.items()}
    return {k: {task: pass_at_k(n, c, k) for task, (n, c) in counts.items()} for k in _normalize_ks(ks)}


@dataclass(frozen=True)
class PassAtK:
    """Aggregate pass@k over tasks with an interval.

    `value` is the mean over the `n_tasks` tasks with at least k samples; `n_skipped` counts tasks
    left out because they had fewer than k samples. `method` says how [low, high] was obtained:
    "wilson" (k = 1, one sample per task: a plain binomial count) or "bootstrap" (percentile
    bootstrap over tasks).
    """

    k: int
    value: float
    low: float
    high: float
    n_tasks: int
    method: str
    n_skipped: int = 0

    def __str__(self) -> str:
        text = f"pass@{self.k} = {self.value:.3f} [{self.low:.3f}, {self.high:.3f}] ({self.n_tasks} tasks, {self.method}"
        if self.n_skipped:
            text += f"; {self.n_skipped} tasks with fewer than {self.k} samples skipped"
        return text + ")"


def pass_at_k_summary(
    results: Mapping[str, Sequence[bool]],
    ks: int | Iterable[int] = (1, 10, 100),
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[int, PassAtK]:
    """Mean pass@k over tasks for each k, with a confidence interval.

    Only ks for which at least one task has n >= k appear in the result: a pass@100 from ten
    samples would be a number with no meaning. For k = 1 with exactly one sample per task the
    tasks are independent Bernoulli trials, so the Wilson interval on the pooled count is exact
    enough and cheaper; otherwise per-task values are not binomial and the interval is a
    percentile bootstrap over tasks, seeded for reproducible reports.
    """
    counts = {task: _counts(samples) for task, samples in results.items()}
    summary: dict[int, PassAtK] = {}
    for k in _normalize_ks(ks):
        kept = [(n, c) for n, c in counts.values() if n >= k]
        if not kept:
            continue
        n_skipped = len(counts) - len(kept)
        if k == 1 and all(n == 1 for n, _ in kept):
            successes = sum(c for _, c in kept)
            low, high = wilson(successes, len(kept), confidence)
            value = successes / len(kept)
            method = "wilson"
        else:
            values = [pass_at_k(n, c, k) for n, c in kept]
            value = math.fsum(values) / len(values)
            low, high = bootstrap_mean(values, confidence=confidence, n_boot=n_boot, seed=seed)
            # The resampled means are summed differently from `value`; keep rounding from leaving it outside.
            low, high = min(low, value), max(high, value)
            method = "bootstrap"
        summary[k] = PassAtK(
            k=k, value=value, low=low, high=high, n_tasks=len(kept), method=method, n_skipped=n_skipped
        )
    return summary
