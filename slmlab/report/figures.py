"""The run's figures, each written as PNG (300 DPI) and SVG: the outcome taxonomy, pass@k with its
intervals, and a per-task strip (every task's pass rate, coloured by its most common failure)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

from slmlab.report.summary import RunSummary, natural_key  # noqa: E402

STATUS_COLOURS = {
    "passed": "#2e7d32", "failed_assertion": "#f9a825", "runtime_error": "#ef6c00", "syntax_error": "#c62828",
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


def pass_at_k(summary: RunSummary, directory: Path) -> list[Path]:
    results = summary.pass_at_k()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ks = list(results)
    values = [results[k].value for k in ks]
    errors = [
        [results[k].value - results[k].low for k in ks],
        [results[k].high - results[k].value for k in ks],
    ]
    ax.errorbar([str(k) for k in ks], values, yerr=errors, fmt="o-", capsize=4, color="#1565c0")
    ax.set_ylim(0, 1)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (95% interval)")
    ax.set_title(f"pass@k over {len(summary.by_task)} tasks")
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
    return [
        *outcome_taxonomy(summary, directory),
        *pass_at_k(summary, directory),
        *task_strip(summary, directory),
    ]
