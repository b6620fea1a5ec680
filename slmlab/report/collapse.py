"""The collapse study's outputs: seed 004's comparison table, the per-checkpoint progression, the
context-length and token-frequency analyses, the paired tests, training curves; printed, as
results.json, figures (PNG 300 DPI + SVG) and one self-contained report.html."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path

from rich.console import Console
from rich.markup import escape as markup

from slmlab.atomic import write_text_atomic
from slmlab.report.console import print_table
from slmlab.report.figures import plt, save_figure
from slmlab.report.html import html_table, inline_figures, page

COMPARISON_HEADERS = ["setup", "data (MB)", "train tokens", "vocab", "params", "params / vocab item", "val PPL",
                      "val bits/char", "collapse bare [95%]", "collapse few-shot [95%]", "keywords", "repetition",
                      "minibench pass@1"]  # fmt: skip


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _collapse(metrics: dict) -> str:
    low, high = metrics["collapse_interval"]
    return f"{_pct(metrics['collapse_rate'])} [{_pct(low)}, {_pct(high)}]"


def comparison_rows(study) -> list[list[str]]:
    mb = study.corpus["splits"]["train"]["mb"]
    rows = []
    for s in study.setups:
        model, bare, few = s.summary["model"], s.bare["metrics"], s.few_shot["metrics"]
        bench = s.minibench
        rows.append([
            s.name, f"{mb:.1f}", f"{s.summary['data']['train_tokens']:,}", f"{model['vocab_size']:,}",
            f"{model['parameters'] / 1e6:.2f}M", f"{model['parameters_per_vocab_item']:,.0f}",
            f"{s.summary['val_ppl']:.3f}", f"{s.summary['val_bits_per_char']:.3f}", _collapse(bare), _collapse(few),
            _pct(bare["keyword_share"]), f"{bare['mean_repetition_ratio']:.3f}",
            "-" if not bench else f"{bench['pass_at_1']:.3f} ({bench['tasks']} tasks)",
        ])  # fmt: skip
    return rows


def progression_rows(study) -> list[list[str]]:
    return [[s.name, str(p["step"]), _collapse(p["bare"]), _collapse(p["few_shot"])]
            for s in study.setups for p in s.progression]  # fmt: skip


def context_rows(study) -> list[list[str]]:
    rows = []
    for s in study.setups:
        for c in s.context:
            top = ", ".join(f"{piece!r} {p:.0%}" for piece, p in c["top"][:3])
            rows.append([s.name, str(c["examples"]), str(c["context_tokens"]), _pct(c["p_newline"]),
                         _pct(c["p_collapse"]), top])  # fmt: skip
    return rows


def frequency_rows(study) -> list[list[str]]:
    return [[s.name, repr(f["token"]), _pct(f["share_in_collapsed"]), f"{f['corpus_count']:,}",
             f"{100 * f['corpus_share']:.2f}%", str(f["corpus_rank"])]
            for s in study.setups for f in s.frequency[:5]]  # fmt: skip


def sanity_lines(study) -> list[str]:
    return [f"{s.name}: {w}" for s in study.setups for w in s.summary.get("warnings", [])]


def write_figures(study, directory: Path) -> None:
    # Loss per token differs in meaning between tokenizers: validation is shown in bits per character.
    fig, (train_ax, val_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for s in study.setups:
        logged = [(r["step"], r["loss"]) for r in s.curve if "tokens_per_s" in r]
        if logged:
            train_ax.plot(*zip(*logged, strict=True), label=s.name)
        per_char = math.log(2) * s.summary["data"]["val_chars_per_token"]
        evals = [(r["step"], r["val_loss"] / per_char) for r in s.curve if "val_loss" in r]
        if evals:
            val_ax.plot(*zip(*evals, strict=True), marker="o", ms=3, label=s.name)
    train_ax.set(xlabel="step", ylabel="training loss (nats per token, as optimised)", title="Training loss")
    val_ax.set(xlabel="step", ylabel="validation bits per character", title="Validation")
    val_ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, directory, "training_curves")

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for s in study.setups:
        steps = [p["step"] for p in s.progression]
        ax.plot(
            steps, [p["bare"]["collapse_rate"] for p in s.progression], marker="o", label=f"{s.name} bare"
        )
        ax.plot(steps, [p["few_shot"]["collapse_rate"] for p in s.progression], marker="s", ls="--",
                label=f"{s.name} few-shot")  # fmt: skip
    ax.set(xlabel="step", ylabel="collapse rate", ylim=(-0.02, 1.02), title="Collapse by checkpoint")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, directory, "collapse_progression")

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for s in study.setups:
        ks = [c["examples"] for c in s.context]
        ax.plot(ks, [c["p_newline"] for c in s.context], marker="o", label=f"{s.name}: newline")
        ax.plot(ks, [c["p_collapse"] for c in s.context], marker="x", ls=":", label=f"{s.name}: ')' / ':'")
    ax.set(xlabel="example functions before `def foo(n):`", ylabel="probability of the next token",
           xticks=range(0, 4), ylim=(-0.02, 1.02), title="Context length and the first token")  # fmt: skip
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, directory, "context_length")


def results_json(study) -> dict:
    return {
        "config": study.config.model_dump(),
        "corpus": study.corpus,
        "setups": [vars(s) for s in study.setups],
        "comparisons": study.comparisons,
    }


def _examples(study) -> str:
    parts = []
    for s in study.setups:
        for mode in ("bare", "few_shot"):
            samples = getattr(s, mode)["samples"][:6]
            items = "".join(
                f"<details><summary>{escape(x['prompt'][:60])} <b>{escape(x['quality'])}</b></summary>"
                f"<pre>{escape(x['prompt'] + x['completion'])}</pre></details>"
                for x in samples
            )
            parts.append(f"<h3>{escape(s.name)}, {mode.replace('_', '-')} prompts</h3>{items}")
    return "".join(parts)


def render_html(study, directory: Path) -> str:
    sections = [
        "<h1>Mode collapse study (seeds 003 and 004)</h1>",
        f"<p>Corpus: {escape(', '.join(study.config.corpus))}: {study.corpus['splits']['train']['mb']:.1f} MB train, "
        f"{study.corpus['splits']['val']['mb']:.2f} MB validation, split by file.</p>",
        "<h2>Comparison</h2>" + html_table(COMPARISON_HEADERS, comparison_rows(study)),
        "<h2>Paired tests</h2><ul>" + "".join(f"<li>{escape(c['prompts'])}: {escape(c['verdict'])}</li>"
                                              for c in study.comparisons) + "</ul>",
        "<h2>Sanity checks</h2><ul>" + ("".join(f"<li>{escape(w)}</li>" for w in sanity_lines(study))
                                       or "<li>no warning: every validation perplexity is plausible</li>") + "</ul>",
        "<h2>Collapse by checkpoint</h2>" + html_table(["setup", "step", "bare", "few-shot"], progression_rows(study)),
        "<h2>Context length</h2>" + html_table(["setup", "examples", "context tokens", "P(newline)", "P(')' / ':')",
                                                 "most likely"], context_rows(study)),
        "<h2>Collapse tokens in the corpus</h2>" + html_table(["setup", "token", "share of collapsed output",
                                                                 "corpus count", "corpus share", "corpus rank"],
                                                                frequency_rows(study)),
        "<h2>Figures</h2>" + inline_figures(sorted(directory.glob("*.svg"))),
        "<h2>Examples</h2>" + _examples(study),
        "<h2>Configuration</h2><pre>" + escape(json.dumps(study.config.model_dump(), indent=2)) + "</pre>",
    ]  # fmt: skip
    return page("Mode collapse study", sections)


def write_study_report(study) -> Path:
    directory = Path(study.config.out) / "report"
    directory.mkdir(parents=True, exist_ok=True)
    write_figures(study, directory)
    write_text_atomic(directory / "results.json", json.dumps(results_json(study), indent=2, default=str))
    write_text_atomic(directory / "report.html", render_html(study, directory))
    return directory


def _plain(rows: list[list[str]]) -> list[list[str]]:
    return [[markup(cell) for cell in row] for row in rows]


def print_study(console: Console, study) -> None:
    print_table(console, "Setups (seed 004's comparison)", COMPARISON_HEADERS, _plain(comparison_rows(study)))
    print_table(console, "Collapse by checkpoint", ["setup", "step", "bare", "few-shot"],
                _plain(progression_rows(study)))  # fmt: skip
    print_table(console, "Next token after `def foo(n):`",
                ["setup", "examples", "context tokens", "P(newline)", "P(')' / ':')", "most likely"],
                _plain(context_rows(study)))  # fmt: skip
    for c in study.comparisons:
        console.print(f"- {c['prompts']}: {markup(c['verdict'])}")
    for line in sanity_lines(study):
        console.print(f"[bold yellow]warning:[/bold yellow] {markup(line)}")
    console.print(f"report: {study.report_dir / 'report.html'}")
