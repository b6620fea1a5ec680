"""Probe findings as figures (PNG 300 DPI + SVG), JSON, an HTML section and printed tables: the
seed's Figure 4 (the two top dimensions, passed and failed samples, the boundary), probe AUC by
layer against its shuffled-label control, and a PCA projection. `slmlab probe` and the bottleneck
study both use them."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np
from rich.console import Console

from slmlab.atomic import write_text_atomic
from slmlab.probe.findings import ProbeFindings
from slmlab.report.console import print_table
from slmlab.report.figures import STATUS_COLOURS, plt, save_figure
from slmlab.report.html import html_table, inline_figures, page

PASS_COLOUR, FAIL_COLOUR = STATUS_COLOURS["passed"], STATUS_COLOURS["syntax_error"]
PROBE_HEADERS = ["layer", "AUC [95%]", "balanced acc.", "shuffled AUC p95", "p", "above control"]


def plain_json(value):
    """json.dumps default: numpy scalars and arrays as plain numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# ---- figures ---------------------------------------------------------------------------------
def figure_two_dims(findings: ProbeFindings, directory: Path) -> list[Path]:
    layer, y = findings.layer, findings.labels
    a, b = layer.pair
    xs, ys = findings.values[:, a], findings.values[:, b]
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    ax.scatter(xs[y == 0], ys[y == 0], s=14, alpha=0.7, color=FAIL_COLOUR, label="failed")
    ax.scatter(xs[y == 1], ys[y == 1], s=14, alpha=0.7, color=PASS_COLOUR, label="passed")
    (w0, w1), bias = layer.margins.weights, layer.margins.bias
    if abs(w1) > 1e-12:
        line = np.linspace(xs.min(), xs.max(), 50)
        ax.plot(line, -(w0 * line + bias) / w1, "k--", lw=1, label="boundary (2-dim probe)")
        ax.set_ylim(ys.min() - 0.1 * np.ptp(ys), ys.max() + 0.1 * np.ptp(ys))
    honest = layer.pair_honest.auc if layer.pair_honest else float("nan")
    ax.set_title(f"layer {layer.layer}: dims {a} and {b} (AUC {honest:.2f}, chosen inside folds)", fontsize=9)
    ax.set_xlabel(f"dim {a} (activation units)")
    ax.set_ylabel(f"dim {b} (activation units)")
    ax.legend(fontsize=8)
    return save_figure(fig, directory, "fig4_two_dims")


def figure_probe_by_layer(findings: ProbeFindings, directory: Path) -> list[Path]:
    scored = [(layer, s) for layer, s in findings.sweep if s is not None]
    layers = [layer for layer, _ in scored]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(
        layers, [s.auc for _, s in scored], "o-", color="#1565c0", ms=3, label="probe AUC (tasks held out)"
    )
    ax.fill_between(layers, [s.auc_ci[0] for _, s in scored], [s.auc_ci[1] for _, s in scored], color="#1565c0",
                    alpha=0.2, label="95% interval (bootstrap over tasks)")  # fmt: skip
    ax.plot(
        layers, [s.shuffled_auc_p95 for _, s in scored], "--", color="#777", label="shuffled labels, 95th pct"
    )
    ax.axhline(0.5, color="#bbb", lw=0.8)
    ax.set_xlabel("layer")
    ax.set_ylabel(f"AUC, passed vs failed ({findings.kind})")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, directory, "probe_by_layer")


def figure_pca(findings: ProbeFindings, directory: Path) -> list[Path]:
    layer, y = findings.layer, findings.labels
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for label, colour, name in ((0, FAIL_COLOUR, "failed"), (1, PASS_COLOUR, "passed")):
        ax.scatter(
            layer.pca[y == label, 0], layer.pca[y == label, 1], s=12, alpha=0.7, color=colour, label=name
        )
    ax.set_xlabel(f"PC1 ({layer.pca_explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({layer.pca_explained[1]:.0%} of variance)")
    ax.set_title(f"layer {layer.layer}, {layer.kind}", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, directory, "pca")


def write_probe_figures(findings: ProbeFindings, directory: Path) -> list[Path]:
    if findings.layer is None:
        return []
    return (figure_two_dims(findings, directory) + figure_probe_by_layer(findings, directory)
            + figure_pca(findings, directory))  # fmt: skip


# ---- numbers ---------------------------------------------------------------------------------
def score_json(score) -> dict | None:
    return None if score is None else dict(vars(score)) | {"beats_control": score.beats_control}


def probe_json(findings: ProbeFindings) -> dict:
    payload = {"run_id": findings.run_id, "kind": findings.kind, "note": findings.note, "summary": findings.summary(),
               "best_layer": findings.best_layer, "best_layer_family_wise_p": findings.family_p,
               "by_layer": [{"layer": layer, **(score_json(s) or {})} for layer, s in findings.sweep]}  # fmt: skip
    layer, y = findings.layer, findings.labels
    if layer is not None:
        payload["analysis"] = {
            "layer": layer.layer, "headline": layer.headline(), "full": score_json(layer.full),
            "top_dims_effect_size": layer.top_dims, "top_dims_sparse_probe": layer.sparse_dims, "pair": layer.pair,
            "pair_chosen_inside_folds": score_json(layer.pair_honest),
            "pair_chosen_on_all_data_auc": layer.pair_fixed_auc, "random_pairs": vars(layer.pair_control),
            "margins": {"dims": layer.margins.dims, "weights": layer.margins.weights, "bias": layer.margins.bias,
                        "median_distance_passed": layer.margins.median_distance(y, True),
                        "median_distance_failed": layer.margins.median_distance(y, False)},
            "pca_explained": layer.pca_explained,
            "by_failure_type": {status: score_json(s) for status, s in layer.by_failure.items()},
        }  # fmt: skip
    return payload


def probe_rows(findings: ProbeFindings) -> list[list[str]]:
    return [[str(layer), f"{s.auc:.3f} [{s.auc_ci[0]:.3f}, {s.auc_ci[1]:.3f}]", f"{s.balanced_accuracy:.3f}",
             f"{s.shuffled_auc_p95:.3f}", f"{s.p_value:.3f}", "yes" if s.beats_control else "no"]
            for layer, s in findings.sweep if s is not None]  # fmt: skip


def probe_html(findings: ProbeFindings) -> str:
    sections = []
    if findings.sweep:
        sections.append(f"<h2>Probes by layer (run {escape(findings.run_id)}, {escape(findings.kind)})</h2>"
                        + html_table(PROBE_HEADERS, probe_rows(findings)))  # fmt: skip
    layer = findings.layer
    if layer is not None:
        m, y = layer.margins, findings.labels
        failures = [
            [status, s.describe() if s else "too few samples"] for status, s in layer.by_failure.items()
        ]
        sections.append(
            f"<h2>Layer {layer.layer} in depth</h2><p>{escape(layer.headline())}</p>"
            f"<p>Margins to the boundary on dims {m.dims[0]} and {m.dims[1]} (activation units, positive = passed "
            f"side): median {m.median_distance(y, True):+.2f} for passed, {m.median_distance(y, False):+.2f} for "
            "failed.</p>"
            + html_table(["dim", "Cohen's d (passed - failed)"], [[str(d), f"{v:+.3f}"] for d, v in layer.top_dims])
            + html_table(["dim", "L1 probe weight"], [[str(d), f"{v:+.3f}"] for d, v in layer.sparse_dims])
            + html_table(["failure type (vs passed)", "probe"], failures)
        )  # fmt: skip
    return "".join(sections)


def print_probe(console: Console, findings: ProbeFindings) -> None:
    if findings.sweep:
        print_table(console, f"Probe by layer ({findings.kind})", PROBE_HEADERS, probe_rows(findings))
    console.print(f"- {findings.summary()}")


def write_probe_report(findings: ProbeFindings, directory: Path) -> Path:
    """`slmlab probe`'s output: figures, probe.json and probe.html in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    write_probe_figures(findings, directory)
    write_text_atomic(
        directory / "probe.json", json.dumps(probe_json(findings), indent=2, default=plain_json)
    )
    html = page(f"Probes of {findings.run_id}", [
        f"<h1>Probes of run <code>{escape(findings.run_id)}</code></h1><p>{escape(findings.summary())}</p>",
        probe_html(findings), "<h2>Figures</h2>", inline_figures(sorted(directory.glob("*.svg"))),
    ])  # fmt: skip
    report = directory / "probe.html"
    write_text_atomic(report, html)
    return report
