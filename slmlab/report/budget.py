"""The token-budget study's outputs: the printed tables (phase 1 as the seed prints it), seed 002's
figures 1-5 (PNG 300 dpi + SVG) and report.html."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from rich.console import Console

from slmlab.report.console import print_table

PHASE1_HEADERS = ["Budget", "Accuracy", "95% interval", "Avg Tokens", "cut by budget"]
PHASE_COLOURS = {"setup": "#90caf9", "computation": "#1565c0", "verification": "#2e7d32"}
ERROR_COLOURS = {"arithmetic": "#c62828", "setup": "#ef6c00", "logic": "#6a1b9a", "incomplete": "#9e9e9e",
                 "format": "#00838f", "hallucination": "#ad1457"}  # fmt: skip


def _budget_rows(table: list[dict]) -> list[list[str]]:
    return [[str(r["budget"]), f"{r['accuracy']:.1%}", f"[{r['low']:.1%}, {r['high']:.1%}]", f"{r['mean_tokens']:.1f}",
             f"{r['truncated']:.0%}"] for r in table]  # fmt: skip


def _spread_rows(spread: dict) -> list[list[str]]:
    return [
        [str(b), f"{s['mean']:.1%}", f"{s['std']:.1%}", str(s["samples"])] for b, s in sorted(spread.items())
    ]


def _cliff_rows(cliff: dict) -> list[list[str]]:
    return [
        [f"{w['from']} → {w['to']}", f"{w['gain']:+.1%}", f"{w['gain_per_token']:.4f}"]
        for w in cliff["steepest"]
    ]


def _structure_rows(rows: list[dict]) -> list[list[str]]:
    return [[str(r["budget"]), f"{r['verify_share']:.0%}", f"{r['mean_steps']:.1f}", f"{r['mean_operations']:.1f}",
             " / ".join(f"{r['tokens'][p]:.0f}" for p in PHASE_COLOURS),
             "-" if r["accuracy_verifying"] is None else f"{r['accuracy_verifying']:.0%}",
             "-" if r["accuracy_not_verifying"] is None else f"{r['accuracy_not_verifying']:.0%}"] for r in rows]  # fmt: skip


STRUCTURE_HEADERS = ["Budget", "verify", "steps", "operations", "tokens setup / computation / verification",
                     "acc. verifying", "acc. not verifying"]  # fmt: skip


def recommendation_line(recommended: dict) -> str:
    return (f"recommended budget: {recommended['budget']} tokens ({recommended['accuracy']:.1%}, within "
            f"{recommended['tolerance']:.0%} of the best {recommended['saturated_accuracy']:.1%}); it saves "
            f"{recommended['tokens_saved_per_problem']:.0f} tokens per problem ({recommended['tokens_saved_share']:.0%}) "
            f"against {recommended['largest_budget']}")  # fmt: skip


def print_study(console: Console, config, study: dict) -> None:
    metric = "Accuracy" if config.math else "pass@1"
    if "phase1" in study:
        headers = [h.replace("Accuracy", metric) for h in PHASE1_HEADERS]
        print_table(console, f"Phase 1: {metric} by budget ({config.model}, {config.benchmark}, "
                             f"{study['phase1']['table'][0]['n']} problems)", headers, _budget_rows(study["phase1"]["table"]))  # fmt: skip
        console.print(recommendation_line(study["phase1"]["recommended"]))
    if "phase1b" in study:
        print_table(console, "Phase 1b: k samples per problem", ["Budget", f"Avg {metric}", "Std Dev", "samples"],
                    _spread_rows(study["phase1b"]))  # fmt: skip
    if "phase3_cliff" in study:
        print_table(console, "Phase 3: steepest improvements", ["window", "gain", f"{metric} per token"],
                    _cliff_rows(study["phase3_cliff"]))  # fmt: skip
    if "phase3_structure" in study:
        print_table(
            console,
            "Phase 3: solution structure",
            STRUCTURE_HEADERS,
            _structure_rows(study["phase3_structure"]),
        )
    for sheet in study.get("phase2_sheets", []):
        state = "written" if sheet["written"] else "kept (already there; delete it to re-create)"
        console.print(f"annotation sheet {sheet['path']}: {sheet['rows']} errors, {state}")
    if "phase2" in study:
        p2 = study["phase2"]
        console.print(f"phase 2: {p2['annotated']} of {p2['rows']} sheet rows annotated; errors recovered at a "
                      f"larger budget: {p2['fates']['recovered']}, persistent: {p2['fates']['persistent']}")  # fmt: skip
    console.print(f"report: {study['report']}")


# ---- figures -----------------------------------------------------------------------------------
def _errorbars(table: list[dict]):
    return [[r["accuracy"] - r["low"] for r in table], [r["high"] - r["accuracy"] for r in table]]


def fig_saturation(table: list[dict], recommended: dict, metric: str, directory: Path) -> list[Path]:
    from slmlab.report.figures import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4))
    budgets = [r["budget"] for r in table]
    ax.errorbar(budgets, [r["accuracy"] for r in table], yerr=_errorbars(table), marker="o", capsize=4,
                color="#1565c0", label=metric)  # fmt: skip
    ax.axvline(
        recommended["budget"], color="#2e7d32", linestyle="--", label=f"recommended: {recommended['budget']}"
    )
    ax.set(xscale="log", xlabel="token budget (max new tokens)", ylabel=metric, ylim=(0, 1),
           title=f"Fig. 1: {metric} saturates with the budget (Wilson 95%)")  # fmt: skip
    ax.set_xticks(budgets, [str(b) for b in budgets])
    tokens = ax.twinx()
    tokens.plot(
        budgets, [r["mean_tokens"] for r in table], color="#9e9e9e", marker=".", label="mean tokens used"
    )
    tokens.set(ylabel="mean tokens used")
    lines = ax.get_legend_handles_labels()[0] + tokens.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=8)
    return save_figure(fig, directory, "fig1_saturation_curve")


def fig_errors(phase2: dict, directory: Path) -> list[Path]:
    from slmlab.report.figures import plt, save_figure

    budgets = sorted(phase2["distribution"], key=int)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    bottom = [0.0] * len(budgets)
    for kind, colour in ERROR_COLOURS.items():
        totals = [sum(phase2["distribution"][b].values()) or 1 for b in budgets]
        shares = [phase2["distribution"][b][kind] / t for b, t in zip(budgets, totals, strict=True)]
        ax.bar([str(b) for b in budgets], shares, bottom=bottom, color=colour, label=kind)
        bottom = [x + y for x, y in zip(bottom, shares, strict=True)]
    ax.set(xlabel="token budget", ylabel="share of annotated errors", ylim=(0, 1),
           title=f"Fig. 2: error types by budget ({phase2['annotated']} annotated)")  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    return save_figure(fig, directory, "fig2_error_distribution")


def fig_cliff(cliff: dict, metric: str, directory: Path) -> list[Path]:
    from slmlab.report.figures import plt, save_figure

    table = cliff["table"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.5), sharex=True)
    budgets = [r["budget"] for r in table]
    top.errorbar(
        budgets,
        [r["accuracy"] for r in table],
        yerr=_errorbars(table),
        marker="o",
        capsize=3,
        color="#1565c0",
    )
    top.set(ylabel=metric, title="Fig. 3: the cliff in fine budget steps (Wilson 95%)")
    steep = {(w["from"], w["to"]) for w in cliff["steepest"]}
    windows = cliff["windows"]
    bottom.bar([(w["from"] + w["to"]) / 2 for w in windows], [w["gain_per_token"] for w in windows],
               width=[0.8 * (w["to"] - w["from"]) for w in windows],
               color=["#c62828" if (w["from"], w["to"]) in steep else "#90a4ae" for w in windows])  # fmt: skip
    bottom.axhline(0, color="black", linewidth=0.5)
    bottom.set(xlabel="token budget", ylabel=f"{metric} gain per token")
    return save_figure(fig, directory, "fig3_cliff_detail")


def fig_structure(rows: list[dict], directory: Path) -> list[Path]:
    from slmlab.report.figures import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4))
    labels = [str(r["budget"]) for r in rows]
    bottom = [0.0] * len(rows)
    for phase, colour in PHASE_COLOURS.items():
        values = [r["tokens"][phase] for r in rows]
        ax.bar(labels, values, bottom=bottom, color=colour, label=phase)
        bottom = [x + y for x, y in zip(bottom, values, strict=True)]
    ax.set(xlabel="token budget", ylabel="mean tokens", title="Fig. 4: token allocation by solution phase")
    ax.legend(fontsize=8)
    return save_figure(fig, directory, "fig4_solution_structure")


def fig_verification(rows: list[dict], directory: Path) -> list[Path]:
    from slmlab.report.figures import plt, save_figure

    fig, (share, accuracy) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [str(r["budget"]) for r in rows]
    share.bar(labels, [r["verify_share"] for r in rows], color="#2e7d32",
              yerr=[[r["verify_share"] - r["verify_low"] for r in rows], [r["verify_high"] - r["verify_share"] for r in rows]],
              capsize=3)  # fmt: skip
    share.set(xlabel="token budget", ylabel="share of solutions that verify", ylim=(0, 1),
              title="Fig. 5a: solutions that verify (Wilson 95%)")  # fmt: skip
    x = range(len(rows))
    for offset, key, label, colour in ((-0.2, "accuracy_verifying", "verifies", "#2e7d32"),
                                       (0.2, "accuracy_not_verifying", "does not", "#9e9e9e")):  # fmt: skip
        accuracy.bar([i + offset for i in x], [r[key] if r[key] is not None else 0 for r in rows], width=0.4,
                     color=colour, label=label)  # fmt: skip
    accuracy.set_xticks(list(x), labels)
    accuracy.set(
        xlabel="token budget",
        ylabel="accuracy",
        ylim=(0, 1),
        title="Fig. 5b: accuracy with and without verification",
    )
    accuracy.legend(fontsize=8)
    return save_figure(fig, directory, "fig5_verification_accuracy")


def write_figures(config, study: dict, directory: Path) -> list[Path]:
    metric = "accuracy" if config.math else "pass@1"
    written = []
    if "phase1" in study:
        written += fig_saturation(study["phase1"]["table"], study["phase1"]["recommended"], metric, directory)
    if study.get("phase2", {}).get("annotated"):
        written += fig_errors(study["phase2"], directory)
    if "phase3_cliff" in study:
        written += fig_cliff(study["phase3_cliff"], metric, directory)
    if "phase3_structure" in study:
        written += fig_structure(study["phase3_structure"], directory)
        written += fig_verification(study["phase3_structure"], directory)
    return written


def write_report(config, study: dict) -> Path:
    """figures/ and report.html under config.out."""
    from slmlab.atomic import write_text_atomic
    from slmlab.report.html import html_table, inline_figures, page

    out = Path(config.out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    svgs = [p for p in write_figures(config, study, figures) if p.suffix == ".svg"]
    metric = "Accuracy" if config.math else "pass@1"
    sections = [f"<h1>Token-budget study: {escape(config.model)} on {escape(config.benchmark)}</h1>",
                "<p>The budget is max_new_tokens. Each sample is generated once at the largest budget and read "
                "at every smaller one from its first N tokens (per-sample seeded sampling makes that exact).</p>"]  # fmt: skip
    if "phase1" in study:
        sections.append("<h2>Phase 1: saturation</h2>" + html_table([h.replace("Accuracy", metric) for h in PHASE1_HEADERS],
                                                                     _budget_rows(study["phase1"]["table"]))
                        + f"<p>{escape(recommendation_line(study['phase1']['recommended']))}</p>")  # fmt: skip
    if "phase1b" in study:
        sections.append("<h2>Phase 1b: k samples per problem</h2>"
                        + html_table(["Budget", f"Avg {metric}", "Std Dev", "samples"], _spread_rows(study["phase1b"])))  # fmt: skip
    if "phase2" in study:
        p2 = study["phase2"]
        sections.append(f"<h2>Phase 2: errors</h2><p>{p2['annotated']} of {p2['rows']} rows annotated "
                        f"(pre-filled suggestions count until changed).</p><pre>{escape(json.dumps(p2, indent=2))}</pre>")  # fmt: skip
    if "phase3_cliff" in study:
        sections.append("<h2>Phase 3: the cliff</h2>" + html_table(PHASE1_HEADERS, _budget_rows(study["phase3_cliff"]["table"]))
                        + html_table(["window", "gain", "per token"], _cliff_rows(study["phase3_cliff"])))  # fmt: skip
    if "phase3_structure" in study:
        sections.append(
            "<h2>Phase 3: solution structure</h2>"
            + html_table(STRUCTURE_HEADERS, _structure_rows(study["phase3_structure"]))
        )
    sections += ["<h2>Figures</h2>" + inline_figures(sorted(svgs)),
                 "<h2>Configuration</h2><pre>" + escape(json.dumps(study["config"], indent=2)) + "</pre>"]  # fmt: skip
    path = out / "report.html"
    write_text_atomic(path, page(f"Token-budget study: {config.model}", sections))
    return path
