"""The bottleneck study's outputs: figures (PNG 300 DPI + SVG), results.json, a self-contained HTML
report and the printed summary. Besides the probe figures (slmlab.report.probe): the outcome taxonomy
by model and the intervention curve."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np
from rich.console import Console

from slmlab.atomic import write_text_atomic
from slmlab.report.console import print_table
from slmlab.report.figures import STATUS_COLOURS, plt, save_figure
from slmlab.report.html import html_table, inline_figures, page
from slmlab.report.probe import (
    PROBE_HEADERS,
    plain_json,
    probe_html,
    probe_json,
    probe_rows,
    write_probe_figures,
)

INTERVENTION_HEADERS = ["shift", "pass@1 [95%]", "against the unshifted run"]


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


# ---- figures ---------------------------------------------------------------------------------
def figure_outcomes_by_model(result, directory: Path) -> list[Path]:
    rows = result.models
    statuses = [s for s in STATUS_COLOURS if any(m.summary.statuses.get(s) for m in rows)]
    labels = [f"{m.model}\n{m.benchmark}" if len(result.config.benchmarks) > 1 else m.model for m in rows]
    fig, ax = plt.subplots(figsize=(7.2, 0.55 * len(rows) + 1.4))
    left = np.zeros(len(rows))
    for status in statuses:
        shares = np.array([m.summary.statuses.get(status, 0) / max(1, m.summary.checked) for m in rows])
        ax.barh(labels, shares, left=left, color=STATUS_COLOURS[status], label=status)
        left += shares
    for y, m in enumerate(rows):
        flags = dict((f, c) for f, c, _ in m.summary.flag_rates())
        note = f"repetitive {flags.get('repetitive', 0)}, collapse {flags.get('mode_collapse', 0)}"
        ax.text(1.01, y, note, va="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of samples")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save_figure(fig, directory, "outcomes_by_model")


def figure_intervention(result, directory: Path) -> list[Path]:
    points = sorted(result.intervention, key=lambda p: p.scale)
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    xs = [p.scale for p in points]
    values = [p.pass_rate.value for p in points]
    errors = [
        [p.pass_rate.value - p.pass_rate.low for p in points],
        [p.pass_rate.high - p.pass_rate.value for p in points],
    ]
    ax.errorbar(xs, values, yerr=errors, fmt="o-", capsize=3, color="#1565c0")
    for p in points:
        if p.comparison is not None and p.comparison.significant:
            ax.annotate("*", (p.scale, p.pass_rate.high), ha="center", fontsize=12)
    along = (
        "the probe direction" if result.config.intervention.direction == "probe" else "the top two dimensions"
    )
    ax.set_xlabel(f"shift at layer {result.intervention_layer} along {along} (activation units)")
    ax.set_ylabel("pass@1 (95% interval)")
    ax.set_ylim(0, 1)
    return save_figure(fig, directory, "intervention")


def write_figures(result, directory: Path) -> list[Path]:
    paths = figure_outcomes_by_model(result, directory) if result.models else []
    if result.probe is not None:
        paths += write_probe_figures(result.probe, directory)
    if result.intervention:
        paths += figure_intervention(result, directory)
    return paths


# ---- numbers ---------------------------------------------------------------------------------
def _scaling_entries(result) -> list[dict]:
    from slmlab.metrics import pass_at_k_summary

    entries = []
    for m in result.models:
        p1 = m.summary.pass_at_k().get(1)
        heavy = m.by_task(heavy_only=True)
        heavy_p1 = pass_at_k_summary(heavy, ks=(1,)).get(1) if heavy else None
        entries.append({
            "model": m.model, "benchmark": m.benchmark, "run_id": m.run_id, "syntax_heavy_tasks": len(heavy),
            "pass_at_1": vars(p1) if p1 else None, "syntax_heavy_pass_at_1": vars(heavy_p1) if heavy_p1 else None,
            "outcomes": dict(m.summary.statuses), "quality": {f: c for f, c, _ in m.summary.flag_rates()},
        })  # fmt: skip
    return entries


def results_json(result) -> dict:
    payload = {"study_id": result.study_id, "config": result.config.model_dump(),
               "scaling": _scaling_entries(result), "pairs": []}  # fmt: skip
    for pair in result.pairs:
        payload["pairs"].append({"benchmark": pair.benchmark, "smaller": pair.smaller, "larger": pair.larger,
                                 "subset": pair.subset, "negative_scaling": pair.negative_scaling,
                                 "verdict": pair.verdict(), "comparison": vars(pair.comparison)})  # fmt: skip
    payload["probe"] = probe_json(result.probe) if result.probe is not None else None
    payload["intervention"] = {
        "layer": result.intervention_layer, "spread": result.intervention_spread,
        "median_activation_norm": result.activation_norm,
        "points": [{"scale": p.scale, "run_id": p.run_id, "pass_at_1": vars(p.pass_rate),
                    "versus_unshifted": vars(p.comparison) if p.comparison else None}
                   for p in sorted(result.intervention, key=lambda p: p.scale)],
    }  # fmt: skip
    payload["verdicts"] = verdicts(result)
    return payload


def _scaling_rows(result) -> list[list[str]]:
    rows = []
    for entry in _scaling_entries(result):
        p1, heavy = entry["pass_at_1"], entry["syntax_heavy_pass_at_1"]
        top = sorted(((c, s) for s, c in entry["outcomes"].items() if s != "passed"), reverse=True)[:2]
        rows.append([entry["model"], entry["benchmark"],
                     _interval(p1["value"], p1["low"], p1["high"]) if p1 else "-",
                     _interval(heavy["value"], heavy["low"], heavy["high"]) if heavy else "-",
                     ", ".join(f"{s} {c}" for c, s in top) or "-",
                     str(entry["quality"].get("repetitive", 0)), str(entry["quality"].get("mode_collapse", 0))])  # fmt: skip
    return rows


_SCALING_HEADERS = [
    "model",
    "benchmark",
    "pass@1 [95%]",
    "syntax-heavy pass@1",
    "top failures",
    "repetitive",
    "collapse",
]


def _intervention_rows(result) -> list[list[str]]:
    return [[f"{p.scale:+g}", _interval(p.pass_rate.value, p.pass_rate.low, p.pass_rate.high),
             "baseline" if p.comparison is None else p.comparison.brief()]
            for p in sorted(result.intervention, key=lambda p: p.scale)]  # fmt: skip


def verdicts(result) -> list[str]:
    lines = [pair.verdict() for pair in result.pairs]
    negative = [p for p in result.pairs if p.negative_scaling]
    found = "; ".join(f"{p.larger} vs {p.smaller} ({p.benchmark}, {p.subset}"
                      + (", confounded: instruct vs base model)" if len(set(p.prompt_modes)) > 1 else ")")
                      for p in negative)  # fmt: skip
    lines.append("Negative scaling: " + (f"found in {found}" if negative else
                                         "not found (no pair where the larger model is significantly worse)"))  # fmt: skip
    if result.probe is not None:
        lines.append(result.probe.summary())
    shifted = [p for p in result.intervention if p.comparison is not None]
    if shifted:
        changed = [f"{p.scale:+g}" for p in shifted if p.comparison.significant]
        lines.append("Intervention: " + (
            f"shifting along the direction changed the pass rate significantly at {', '.join(changed)} units: "
            "the direction matters to the model, not only to the probe" if changed else
            "no shift changed the pass rate significantly: no evidence that the direction causes failures "
            "rather than only correlating with them"))  # fmt: skip
    return lines


def render_html(result, directory: Path) -> str:
    sections = [
        f"<h1>Bottleneck study <code>{escape(result.study_id)}</code></h1>",
        "<h2>Verdicts</h2><ul>" + "".join(f"<li>{escape(v)}</li>" for v in verdicts(result)) + "</ul>",
        "<h2>Scaling comparison</h2>" + html_table(_SCALING_HEADERS, _scaling_rows(result)),
        "<p>Syntax-heavy tasks: the reference solution nests blocks at least two deep (slmlab.tasks.structure).</p>",
    ]  # fmt: skip
    if result.probe is not None:
        sections.append(probe_html(result.probe))
    if result.intervention:
        sections.append(f"<h2>{escape(result.intervention_title())}</h2>"
                        + html_table(INTERVENTION_HEADERS, _intervention_rows(result)))  # fmt: skip
    sections.append("<h2>Figures</h2>" + inline_figures(sorted(directory.glob("*.svg"))))
    sections.append(
        "<h2>Configuration</h2><pre>" + escape(json.dumps(result.config.model_dump(), indent=2)) + "</pre>"
    )
    return page("Bottleneck study", sections)


def write_study_report(result) -> Path:
    directory = result.directory
    write_figures(result, directory)
    write_text_atomic(
        directory / "results.json", json.dumps(results_json(result), indent=2, default=plain_json)
    )
    report = directory / "report.html"
    write_text_atomic(report, render_html(result, directory))
    return report


def print_study(console: Console, result) -> None:
    print_table(console, "Scaling comparison", _SCALING_HEADERS, _scaling_rows(result))
    if result.probe is not None and result.probe.sweep:
        print_table(console, f"Probe by layer ({result.probe.kind})", PROBE_HEADERS, probe_rows(result.probe))
    if result.intervention:
        print_table(console, result.intervention_title(), INTERVENTION_HEADERS,
                    _intervention_rows(result))  # fmt: skip
    for line in verdicts(result):
        console.print(f"- {line}")
    console.print(f"report: {result.directory / 'report.html'}")
