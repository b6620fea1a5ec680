"""The run's figures, each written as PNG (300 DPI) and SVG: the outcome taxonomy, pass@k against k
with its intervals (when there is more than one sample per task), and a per-task strip (every task's pass rate, coloured by its most common failure)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from slmlab.pipeline.summary import RunSummary  # noqa: E402
from slmlab.store import natural_key  # noqa: E402

STATUS_COLOURS = {
    "passed": "#2e7d32", "failed_assertion": "#f9a825", "runtime_error": "#ef6c00", "unsupported_output": "#8d6e63", "syntax_error": "#c62828",
    "timeout": "#6a1b9a", "memory_exceeded": "#4527a0", "output_limit": "#283593", "no_tests_run": "#00838f",
    "sandbox_violation": "#ad1457", "harness_error": "#424242",
}  # fmt: skip


def save_figure(fig, directory: Path, name: str) -> list[Path]:
    paths = [directory / f"{name}.png", directory / f"{name}.svg"]
    fig.savefig(paths[0], dpi=300, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def outcome_taxonomy(summary: RunSummary, directory: Path) -> list[Path]:
    rows = summary.outcome_rates()
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * max(3, len(rows)) + 1))
    names = [name for name, _, _ in rows][::-1]
    values = [r.value for _, _, r in rows][::-1]
    errors = [[r.value - r.low for _, _, r in rows][::-1], [r.high - r.value for _, _, r in rows][::-1]]
    ax.barh(names, values, xerr=errors, capsize=3, color=[STATUS_COLOURS.get(n, "#777") for n in names])
    for y, (_, count, r) in enumerate(rows[::-1]):
        ax.text(min(r.high + 0.01, 0.98), y, str(count), va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of {summary.checked} samples (95% Wilson interval)")
    ax.set_title("Outcome taxonomy")
    return save_figure(fig, directory, "outcomes")


MAX_CURVE_POINTS = 24  # the pass@k curve's ks: all of 1..n up to this many, else spread on a log scale


def samples_per_task(summary: RunSummary) -> int:
    """The most executed samples any task has: the largest k a pass@k can be computed for."""
    return max((len(passed) for passed in summary.by_task.values()), default=0)


def pass_at_k_omitted(summary: RunSummary) -> str | None:
    """Why the run has no pass@k figure, or None when it has one. With one sample per task only
    pass@1 exists: one point in an empty plot says less than the table, so the figure is left out."""
    if not summary.checked:
        return None
    if samples_per_task(summary) < 2:
        return ("no pass@k figure: with one sample per task only pass@1 can be computed (see the table "
                "above and the 'passed' bar of the outcome figure); run with --n above 1 (and a temperature "
                "above 0) for pass@k as a function of k")  # fmt: skip
    return None


def curve_ks(n: int, asked=()) -> list[int]:
    """k = 1..n, thinned to about MAX_CURVE_POINTS on a log scale for large n, plus the ks asked
    for that can be computed."""
    if n <= MAX_CURVE_POINTS:
        ks = set(range(1, n + 1))
    else:
        ks = {max(1, round(n ** (i / (MAX_CURVE_POINTS - 1)))) for i in range(MAX_CURVE_POINTS)}
    return sorted(ks | {k for k in asked if 1 <= k <= n})


def pass_at_k(summary: RunSummary, directory: Path) -> list[Path]:
    """pass@k against k for every k up to the samples per task, with its 95% interval as a band;
    the ks of the table are marked."""
    from slmlab.metrics import pass_at_k_summary

    n = samples_per_task(summary)
    results = pass_at_k_summary(summary.by_task, ks=curve_ks(n, summary.ks))
    ks = list(results)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    values = [results[k].value for k in ks]
    ax.fill_between(ks, [results[k].low for k in ks], [results[k].high for k in ks], color="#1565c0",
                    alpha=0.18, linewidth=0, label="95% interval")  # fmt: skip
    ax.plot(
        ks, values, "-", color="#1565c0", marker="o" if len(ks) <= MAX_CURVE_POINTS else None, markersize=3
    )
    marked = [k for k in summary.ks if k in results]
    if marked:
        ax.errorbar(marked, [results[k].value for k in marked],
                    yerr=[[results[k].value - results[k].low for k in marked],
                          [results[k].high - results[k].value for k in marked]],
                    fmt="o", capsize=4, color="#0d47a1", markersize=6, label="k of the table")  # fmt: skip
        for k in marked:
            ax.annotate(f"{results[k].value:.3f}", (k, results[k].value), textcoords="offset points",
                        xytext=(6, 5), fontsize=8)  # fmt: skip
    if n > 10:
        ax.set_xscale("log")
        ax.set_xlim(0.8, n * 1.25)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    else:
        ax.set_xlim(0.7, n + 0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylim(0, 1)
    ax.set_xlabel("k (samples drawn per task)")
    ax.set_ylabel("pass@k (95% interval)")
    ax.set_title(f"pass@k over {len(summary.by_task)} tasks, n = {n} per task")
    ax.legend(fontsize=7, loc="best", frameon=False)
    return save_figure(fig, directory, "pass_at_k")


def task_strip(summary: RunSummary, directory: Path) -> list[Path]:
    rates = summary.task_pass_rates()
    tasks = sorted(rates, key=lambda t: (rates[t], natural_key(t)))
    fig, ax = plt.subplots(figsize=(max(6.0, min(18.0, 0.06 * len(tasks) + 4)), 3.2))
    colours = [STATUS_COLOURS.get(summary.dominant_failure(t), "#777") for t in tasks]
    ax.scatter(range(len(tasks)), [rates[t] for t in tasks], c=colours, s=14)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("tasks, ordered by pass rate (colour: most common failure)")
    ax.set_ylabel("pass rate")
    ax.set_title("Per-task pass rate")
    used = sorted({summary.dominant_failure(t) for t in tasks})
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=STATUS_COLOURS.get(s, "#777"), label=s) for s in used
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", frameon=False)
    return save_figure(fig, directory, "tasks")


def write_figures(summary: RunSummary, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    if not summary.checked:
        return []
    paths = outcome_taxonomy(summary, directory)
    if pass_at_k_omitted(summary) is None:
        paths += pass_at_k(summary, directory)
    else:  # a figure left from an earlier report of this folder would contradict the note
        for stale in (directory / "pass_at_k.png", directory / "pass_at_k.svg"):
            stale.unlink(missing_ok=True)
    return [*paths, *task_strip(summary, directory)]
