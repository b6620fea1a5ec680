"""Paired comparison of two runs on the same tasks: is B really better than A, or is it noise?

Two runs on one benchmark are paired (same tasks, and task difficulty dominates the variance), so
the comparison is made task by task rather than by comparing two independent intervals, which
would throw the pairing away and call real differences noise. The result always ends in a plain
sentence that says "significant" or "not significant" so nobody reads a 1-task swing as progress.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from slmlab.errors import UserError
from slmlab.metrics.intervals import resample_means, wilson
from slmlab.metrics.passk import pass_at_k

_LABELS = {"mcnemar": "exact McNemar", "bootstrap": "paired bootstrap"}


@dataclass(frozen=True)
class Comparison:
    """Outcome of `compare_runs`.

    `difference` is B - A in pass@k (a fraction; the verdict prints points, i.e. x100), with the
    interval [`diff_low`, `diff_high`] at confidence 1 - alpha. `discordant` is (n01, n10) for the
    McNemar test: n01 = tasks A failed and B solved, n10 = tasks A solved and B failed; None for the
    bootstrap. `n_dropped` counts tasks left out: present in only one run, or with fewer than k
    samples in either run.
    """

    method: str
    k: int
    n_tasks: int
    n_dropped: int
    value_a: float
    value_b: float
    difference: float
    diff_low: float
    diff_high: float
    p_value: float
    alpha: float
    significant: bool
    verdict: str
    discordant: tuple[int, int] | None

    def __str__(self) -> str:
        return self.verdict

    def brief(self) -> str:
        """B - A in points with its interval and p-value, and whether that is significant."""
        significance = "significant" if self.significant else "not significant"
        return (f"{100 * self.difference:+.1f} points [{100 * self.diff_low:+.1f}, {100 * self.diff_high:+.1f}], "
                f"p = {self.p_value:.3g}: {significance}")  # fmt: skip


def _format_p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    text = f"{p:.3g}"
    return f"p = {text}" if any(ch in text for ch in ".e") else f"p = {text}.0"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _newcombe_paired(n11: int, n01: int, n10: int, n00: int, confidence: float) -> tuple[float, float]:
    """Interval for p_B - p_A from paired binary outcomes (Newcombe 1998, method 10).

    Built from the two Wilson intervals and the correlation of the pairs, so it keeps sensible
    coverage at 0 or 1 discordant pairs where the Wald interval degenerates. Subscripts are
    (A outcome, B outcome).
    """
    n = n11 + n01 + n10 + n00
    p_b, p_a = (n11 + n01) / n, (n11 + n10) / n
    l_b, u_b = wilson(n11 + n01, n, confidence)
    l_a, u_a = wilson(n11 + n10, n, confidence)
    num = n11 * n00 - n01 * n10
    if num > 0:
        num = max(num - n / 2.0, 0.0)
    den = math.sqrt((n11 + n01) * (n10 + n00) * (n11 + n10) * (n01 + n00))
    phi = num / den if den > 0 else 0.0
    diff = p_b - p_a
    d_low = (p_b - l_b) ** 2 - 2.0 * phi * (p_b - l_b) * (u_a - p_a) + (u_a - p_a) ** 2
    d_high = (u_b - p_b) ** 2 - 2.0 * phi * (u_b - p_b) * (p_a - l_a) + (p_a - l_a) ** 2
    return (max(-1.0, diff - math.sqrt(max(d_low, 0.0))), min(1.0, diff + math.sqrt(max(d_high, 0.0))))


def _verdict(
    *,
    method: str,
    n_tasks: int,
    difference: float,
    low: float,
    high: float,
    p_value: float,
    alpha: float,
    significant: bool,
    notes: list[str],
) -> str:
    pts, lo, hi = 100.0 * difference, 100.0 * low, 100.0 * high
    stats = f"B - A = {pts:+.1f} points [{lo:+.1f}, {hi:+.1f}], {_format_p(p_value)}, {_LABELS[method]}, {_plural(n_tasks, 'task')}"
    if significant:
        winner, loser = ("B", "A") if difference > 0 else ("A", "B")
        head = f"{winner} is better than {loser} by {abs(pts):.1f} points ({stats}): significant at alpha = {alpha:g}."
    else:
        head = f"No significant difference between A and B ({stats}): not significant at alpha = {alpha:g}, the difference is within noise."
    return " ".join([head, *notes])


def _counts(samples: Sequence[bool]) -> tuple[int, int]:
    return len(samples), sum(1 for s in samples if s)


def compare_runs(
    a: Mapping[str, Sequence[bool]],
    b: Mapping[str, Sequence[bool]],
    k: int = 1,
    alpha: float = 0.05,
    n_boot: int = 5000,
    seed: int = 0,
) -> Comparison:
    """Paired test of run B against run A on the tasks both contain.

    With exactly one sample per task in both runs (and k = 1) each task is a pair of pass/fail
    outcomes, and the exact McNemar test (binomial test on the discordant pairs) is the right test:
    concordant tasks carry no information about which run is better. Otherwise the per-task pass@k
    values are compared by a paired bootstrap over tasks (the task is the unit that was sampled from
    the benchmark). Its two-sided p-value is 2 x the smaller bootstrap tail beyond 0, floored at the
    exact sign-test minimum 2^(1-m) for m tasks that differ: with few differing tasks the bootstrap
    sees no spread and would otherwise call a single-task difference significant. The seed makes
    the result reproducible.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha}")
    k = int(k)
    common = sorted(set(a) & set(b))
    n_unpaired = len(set(a) ^ set(b))
    if not common:
        raise UserError(
            f"runs A ({len(a)} tasks) and B ({len(b)} tasks) share no task ids; compare runs on the same benchmark"
        )
    counts_a = {t: _counts(a[t]) for t in common}
    counts_b = {t: _counts(b[t]) for t in common}
    notes: list[str] = []

    if k == 1 and all(counts_a[t][0] == 1 and counts_b[t][0] == 1 for t in common):
        n_tasks = len(common)
        n11 = n01 = n10 = 0
        for t in common:
            pa, pb = counts_a[t][1] == 1, counts_b[t][1] == 1
            n11 += pa and pb
            n01 += (not pa) and pb
            n10 += pa and not pb
        n00 = n_tasks - n11 - n01 - n10
        n_disc = n01 + n10
        p_value = 1.0 if n_disc == 0 else min(1.0, float(binomtest(n01, n_disc, 0.5).pvalue))
        value_a, value_b = (n11 + n10) / n_tasks, (n11 + n01) / n_tasks
        difference = (n01 - n10) / n_tasks
        low, high = _newcombe_paired(n11, n01, n10, n00, 1.0 - alpha)
        method, discordant, n_dropped = "mcnemar", (n01, n10), n_unpaired
        notes.append(f"B alone solved {_plural(n01, 'task')}, A alone solved {n10}.")
    else:
        kept = [t for t in common if counts_a[t][0] >= k and counts_b[t][0] >= k]
        n_too_few = len(common) - len(kept)
        if not kept:
            raise UserError(
                f"no task has at least {k} samples in both runs; pass@{k} needs n >= {k} (draw more samples or lower k)"
            )
        pa_vals = np.array([pass_at_k(*counts_a[t], k) for t in kept])
        pb_vals = np.array([pass_at_k(*counts_b[t], k) for t in kept])
        diffs = pb_vals - pa_vals
        n_tasks = len(kept)
        value_a, value_b = float(pa_vals.mean()), float(pb_vals.mean())
        difference = float(diffs.mean())
        boot = resample_means(diffs, n_boot, seed)
        low_q, high_q = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
        low, high = min(float(low_q), difference), max(float(high_q), difference)
        tail_le = (np.count_nonzero(boot <= 0.0) + 1) / (n_boot + 1)
        tail_ge = (np.count_nonzero(boot >= 0.0) + 1) / (n_boot + 1)
        p_boot = min(1.0, 2.0 * min(tail_le, tail_ge))
        n_differ = int(np.count_nonzero(np.abs(diffs) > 1e-12))
        p_floor = 1.0 if n_differ == 0 else min(1.0, 2.0 ** (1 - n_differ))
        p_value = max(p_boot, p_floor)
        if p_floor > p_boot and p_floor >= alpha:
            notes.append(
                f"Only {_plural(n_differ, 'task')} {'differs' if n_differ == 1 else 'differ'} between the runs,"
                " too few for any paired test to call significant at this alpha."
            )
        method, discordant, n_dropped = "bootstrap", None, n_unpaired + n_too_few
        if n_too_few:
            notes.append(
                f"Left out: {_plural(n_too_few, 'shared task')} with fewer than {k} samples in a run."
            )

    if n_unpaired:
        notes.append(f"Dropped: {_plural(n_unpaired, 'task')} present in only one run.")
    significant = bool(p_value < alpha)
    verdict = _verdict(
        method=method,
        n_tasks=n_tasks,
        difference=difference,
        low=low,
        high=high,
        p_value=p_value,
        alpha=alpha,
        significant=significant,
        notes=notes,
    )
    return Comparison(
        method=method,
        k=k,
        n_tasks=n_tasks,
        n_dropped=n_dropped,
        value_a=value_a,
        value_b=value_b,
        difference=difference,
        diff_low=low,
        diff_high=high,
        p_value=p_value,
        alpha=alpha,
        significant=significant,
        verdict=verdict,
        discordant=discordant,
    )
