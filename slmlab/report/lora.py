"""The printed end of a LoRA sweep: one row per trial, every rate with its interval."""

from __future__ import annotations

from rich.console import Console

from slmlab.report.console import print_table

HEADERS = [
    "language",
    "rank",
    "size",
    "BLEU [95%]",
    "CodeBLEU",
    "syntax pass [95%]",
    "checked",
    "minibench",
    "MBPP",
]


def csv_row(record: dict) -> dict:
    """A trial's record as one row of the results CSV and of the tables."""
    s = record["scores"]
    syntax = s["syntax_pass"] or {"value": None, "interval": [None, None], "checked": 0}
    execution = record.get("execution", {})
    return {"language": record["language"], "rank": record["rank"], "size": record["size"],
            "curriculum": record["curriculum"], "bleu": s["bleu"]["value"], "bleu_low": s["bleu"]["interval"][0], "bleu_high": s["bleu"]["interval"][1],
            "codebleu": s["codebleu"]["value"], "syntax_pass": syntax["value"], "syntax_low": syntax["interval"][0],
            "syntax_high": syntax["interval"][1], "syntax_checked": syntax["checked"], "unchecked": s["unchecked"],
            "minibench_pass_at_1": execution.get("minibench", {}).get("pass_at_1"),
            "mbpp_pass_at_1": execution.get("mbpp-test", {}).get("pass_at_1"),
            "bleu_syntax_r": s["bleu_vs_syntax"]["r"],
            "train_seconds": (record["training"] or {}).get("seconds"), "peak_rss_mb": record["peak_rss_mb"],
            "trial": record["trial"]}  # fmt: skip


def _show(value, spec: str) -> str:
    return "-" if value is None or value == "" else format(value, spec)


def sweep_rows(rows: list[dict]) -> list[list[str]]:
    return [[r["language"], str(r["rank"] or "base"), f"{r['size']}{', curriculum' if r['curriculum'] else ''}",
             f"{r['bleu']:.2f} [{r['bleu_low']:.2f}, {r['bleu_high']:.2f}]", f"{r['codebleu']:.3f}",
             f"{_show(r['syntax_pass'], '.0%')} [{_show(r['syntax_low'], '.0%')}, {_show(r['syntax_high'], '.0%')}]",
             f"{r['syntax_checked']} (+{r['unchecked']} unchecked)", _show(r["minibench_pass_at_1"], ".2f"),
             _show(r["mbpp_pass_at_1"], ".2f")] for r in rows]  # fmt: skip


COMPARISON_HEADERS = ["sweep", "A", "B", "syntax pass B - A (McNemar)", "BLEU B - A (paired bootstrap)"]


def comparison_rows(comparisons: list[dict]) -> list[list[str]]:
    return [[c["sweep"], c["a"], c["b"], c["syntax"]["brief"] if c["syntax"] else "- (unchecked)", c["bleu"]["brief"]]
            for c in comparisons]  # fmt: skip


def print_sweep(console: Console, settings, study: dict) -> None:
    from pathlib import Path

    print_table(console, f"LoRA sweep: {settings.sweep} ({settings.model})", HEADERS,
                sweep_rows([csv_row(r) for r in study["trials"]]))  # fmt: skip
    print_table(console, "Paired tests on the same held-out functions", COMPARISON_HEADERS,
                comparison_rows(study["comparisons"]))  # fmt: skip
    console.print(f"results: {Path(settings.out) / f'results_{settings.sweep}.csv'}")
    console.print(f"report: {Path(settings.out) / 'report' / f'report_{settings.sweep}.html'}")


def _panels(panels: dict, rows: list[dict]) -> dict[str, list[tuple[str, dict]]]:
    """The rows of each sweep's figure, labelled, the base model first (`panels`: the study's
    labelled trials per sweep)."""
    find = {(r["language"], r["rank"], r["size"], r["curriculum"]): r for r in rows}
    return {name: [(label, find[key]) for label, trial in items if (key := tuple(trial.values())) in find]
            for name, items in panels.items()}  # fmt: skip


def write_figures(panels: dict, rows: list[dict], directory) -> list:
    """Seed 001's figure per sweep: BLEU and syntax pass rate side by side, with 95% error bars."""
    from slmlab.report.figures import plt, save_figure

    written = []
    for name, items in _panels(panels, rows).items():
        labels = [label for label, _ in items]
        fig, (bleu_ax, syntax_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
        bleu = [r["bleu"] for _, r in items]
        bleu_err = [
            [r["bleu"] - r["bleu_low"] for _, r in items],
            [r["bleu_high"] - r["bleu"] for _, r in items],
        ]
        bleu_ax.bar(labels, bleu, yerr=bleu_err, capsize=4, color="#1565c0")
        bleu_ax.set(ylabel="BLEU", title=f"{name}: BLEU (95% bootstrap)")
        syntax = [r["syntax_pass"] if r["syntax_pass"] not in (None, "") else 0.0 for _, r in items]
        syntax_err = [[s - (r["syntax_low"] or 0) for s, (_, r) in zip(syntax, items, strict=True)],
                      [(r["syntax_high"] or 0) - s for s, (_, r) in zip(syntax, items, strict=True)]]  # fmt: skip
        syntax_ax.bar(labels, syntax, yerr=syntax_err, capsize=4, color="#2e7d32")
        syntax_ax.set(
            ylabel="syntax pass rate", ylim=(0, 1.05), title=f"{name}: syntax (real checker, Wilson 95%)"
        )
        for ax in (bleu_ax, syntax_ax):
            ax.tick_params(axis="x", labelrotation=30)
        written += save_figure(fig, directory, f"sweep_{name}")
    return written


def write_sweep_report(settings, study: dict):
    """The sweep's figures and report_<sweep>.html in <out>/report (each sweep its own page)."""
    import json
    from html import escape
    from pathlib import Path

    from slmlab.atomic import write_text_atomic
    from slmlab.report.html import html_table, inline_figures, page

    directory = Path(settings.out) / "report"
    directory.mkdir(parents=True, exist_ok=True)
    records = study["trials"]
    rows = [csv_row(r) for r in records]
    figures = [p for p in write_figures(study["panels"], rows, directory) if p.suffix == ".svg"]
    examples = "".join(
        f"<details><summary>{escape(r['language'])} rank {r['rank'] or 'base'} size {r['size']}: "
        f"{escape(s['syntax'])} {escape(s.get('message', ''))}</summary><pre>{escape(s['prompt'] + s['generated'])}</pre>"
        f"<p>reference</p><pre>{escape(s['reference'])}</pre></details>"
        for r in records for s in r["scores"]["samples"][:3]
    )  # fmt: skip
    correlations = [[r["language"], str(r["rank"] or "base"), str(r["size"]),
                     "-" if r["scores"]["bleu_vs_syntax"]["r"] is None else f"{r['scores']['bleu_vs_syntax']['r']:+.2f}",
                     "-" if r["scores"]["bleu_vs_syntax"]["p_value"] is None else f"{r['scores']['bleu_vs_syntax']['p_value']:.3g}"]
                    for r in records]  # fmt: skip
    html = page(f"LoRA sweep: {settings.sweep}", [
        f"<h1>LoRA sweep <code>{escape(settings.sweep)}</code> on {escape(settings.model)}</h1>",
        "<h2>Trials</h2>" + html_table(HEADERS, sweep_rows(rows)),
        "<p>Syntax pass rates count checked samples only (the checker per language is in results.json); an "
        "empty body counts as invalid. Intervals: bootstrap for BLEU, Wilson for rates.</p>",
        "<h2>Paired tests</h2><p>Trials scored on the same held-out functions, B against A: exact McNemar on "
        "each function's syntax validity, sacrebleu's paired bootstrap on corpus BLEU; significant at alpha = 0.05.</p>"
        + html_table(COMPARISON_HEADERS, comparison_rows(study["comparisons"])),
        "<h2>Does BLEU track valid code?</h2>" + html_table(["language", "rank", "size", "r (sentence BLEU vs valid)", "p"], correlations),
        "<h2>Figures</h2>" + inline_figures(figures),
        "<h2>Examples</h2>" + examples,
        "<h2>Configuration</h2><pre>" + escape(json.dumps(settings.model_dump(), indent=2)) + "</pre>",
    ])  # fmt: skip
    write_text_atomic(directory / f"report_{settings.sweep}.html", html)
    return directory
