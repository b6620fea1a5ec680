"""Confidence intervals for rates and means.

A rate without an interval invites over-reading: 0.41 on 164 tasks is anything from about 0.34 to 0.49.
Every rate slmlab prints goes through `rate()` (Wilson) or `bootstrap_mean()` so it carries one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

# Cap on the size of one block of resampling indices, so a large bootstrap does not allocate gigabytes.
_MAX_BLOCK = 1 << 22


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def z_value(confidence: float) -> float:
    """Two-sided normal quantile for `confidence` (1.96 for 0.95)."""
    _check_confidence(confidence)
    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Wilson rather than the normal (Wald) interval because Wald collapses to a zero-width interval
    at 0/n and n/n, which is exactly where small benchmarks live. With no trials nothing is known,
    so total = 0 gives (0.0, 1.0).
    """
    _check_confidence(confidence)
    if total < 0 or successes < 0 or successes > total:
        raise ValueError(f"need 0 <= successes <= total, got successes={successes}, total={total}")
    if total == 0:
        return (0.0, 1.0)
    z = z_value(confidence)
    z2 = z * z
    p = successes / total
    denom = 1.0 + z2 / total
    center = (p + z2 / (2.0 * total)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / total + z2 / (4.0 * total * total))
    # At the boundaries the bound is exact; pin it so rounding never puts it a hair off 0 or 1.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == total else min(1.0, center + half)
    return (low, high)


def resample_means(values: Sequence[float] | np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of `values`; deterministic given `seed`.

    Shared by `bootstrap_mean` and the paired comparison so both resample the same way.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("need a non-empty one-dimensional sequence of values")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    n = arr.size
    rng = np.random.default_rng(seed)
    rows = max(1, _MAX_BLOCK // n)
    out = np.empty(n_boot, dtype=float)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = arr[idx].mean(axis=1)
    return out


def bootstrap_mean(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of `values`.

    Used for quantities that are not a single binomial count (e.g. per-task pass@k averaged over
    tasks). Seeded so a report regenerated from the same results prints the same interval. With very
    few distinct values the interval is too narrow (a single task gives zero width); read it with
    the number of tasks.
    """
    _check_confidence(confidence)
    means = resample_means(values, n_boot, seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


@dataclass(frozen=True)
class Rate:
    """A success rate together with its Wilson interval, so the two are never printed apart."""

    successes: int
    total: int
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def rate(successes: int, total: int, confidence: float = 0.95) -> Rate:
    """Build a `Rate`; with total = 0 the value is nan (no estimate) and the interval is [0, 1]."""
    low, high = wilson(successes, total, confidence)
    value = successes / total if total else math.nan
    return Rate(successes=successes, total=total, value=value, low=low, high=high)
