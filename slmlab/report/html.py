"""One self-contained HTML file per run: the summary tables, the figures (inline SVG) and a browsable,
filterable list of samples (prompt, completion, outcome, error, quality flags). No network needed to
open it, nothing to install: plain HTML, a little CSS, a few lines of JavaScript for the filter."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from slmlab.pipeline.summary import RunSummary
from slmlab.store import sample_order

MAX_LISTED_SAMPLES = 5000  # beyond this the file gets unwieldy; the store and samples.jsonl hold all

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0 1.4em}td,th{border:1px solid #ddd;padding:3px 9px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
details{border:1px solid #ddd;border-radius:4px;margin:3px 0;padding:3px 8px}summary{cursor:pointer}
pre{background:#f7f7f7;padding:6px;overflow-x:auto;white-space:pre-wrap;font-size:12px}
.passed{color:#2e7d32}.fail{color:#c62828}.flag{background:#fff3e0;border-radius:3px;padding:0 4px;margin-left:4px;font-size:12px}
figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}figure svg{max-width:520px;height:auto}
"""

_FILTER = """
function filterSamples(){const s=document.getElementById('status').value,t=document.getElementById('task').value.toLowerCase();
let shown=0;for(const d of document.querySelectorAll('#samples details')){const ok=(!s||d.dataset.status===s||d.dataset.flags.includes(s))
&&(!t||d.dataset.task.toLowerCase().includes(t));d.style.display=ok?'':'none';shown+=ok;}
document.getElementById('shown').textContent=shown;}
"""


def html_table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, sections: list[str]) -> str:
    """A whole self-contained HTML document."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")  # fmt: skip


def inline_figures(svg_paths) -> str:
    """SVG files as inline <figure>s (their XML prologue dropped), so the page needs no other file."""
    return "".join(
        f"<figure>{path.read_text(encoding='utf-8').split('?>', 1)[-1]}</figure>" for path in svg_paths
    )


def error_text(outcome: dict) -> str:
    """The error in one line, each part once: `NameError: name 'x' is not defined (line 7)`. The
    runner's detail often starts with the class name (`NameError: ...`) or the line (`line 7: ...`)
    already; those are not said twice."""
    kind = str(outcome.get("error_type") or "").strip()
    detail = str(outcome.get("detail") or "").strip()
    line = outcome.get("line")
    where = f"line {line}: "
    if line and detail.startswith(where):
        detail = detail.removeprefix(where)
    if kind and (detail == kind or detail.startswith(f"{kind}:")):
        kind = ""
    text = ": ".join(part for part in (kind, detail) if part)
    if line and text:
        text += f" (line {line})"
    return text


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def configuration_rows(config: dict, setup: dict) -> tuple[list[list], list[list]]:
    """(settings, environment). One row per setting of the run; where the run settled a setting
    itself (`auto`, a model's hash found at load) the value reads `asked → used`. The environment
    rows are what only the run knows: where the model came from, the stops, the times."""
    settings = []
    for name, asked in config.items():
        if name not in setup or _show(setup[name]) == _show(asked):
            settings.append([name, _show(asked)])
        else:
            given = "(not given)" if asked is None else _show(asked)
            settings.append([name, f"{given} → {_show(setup[name])}"])
    environment = [[name, _show(value)] for name, value in setup.items() if name not in config]
    return settings, environment


def _sample_html(row) -> str:
    outcome = row.judgement.detail if row.judgement is not None else {}
    status = row.judgement.verdict if row.judgement is not None else "unchecked"
    flags = [f for f, on in row.generation.get("flags", {}).items() if on is True]
    error = error_text(outcome)
    badge = "".join(f'<span class="flag">{escape(f)}</span>' for f in flags)
    css = "passed" if row.passed else "fail"
    generation = {k: row.generation.get(k) for k in ("tokens", "finish_reason", "seconds", "prompt_tokens")}
    parts = [
        f'<details data-status="{escape(status)}" data-flags="{escape(" ".join(flags))}" data-task="{escape(row.task_id)}">',
        f'<summary>{escape(row.task_id)} #{row.sample_index} <b class="{css}">{escape(status)}</b> {escape(error[:160])}{badge}</summary>',
        f"<p>generation: {escape(json.dumps(generation))}</p>",
        f"<p>prompt</p><pre>{escape(row.prompt)}</pre>",
        f"<p>{'program' if row.generation.get('whole_program') else 'completion'}</p><pre>{escape(row.completion)}</pre>",
    ]
    if row.generation.get("text", row.completion) != row.completion:
        parts.append(f"<p>raw answer</p><pre>{escape(row.generation['text'])}</pre>")
    for stream in ("stdout", "stderr"):
        if isinstance(outcome.get(stream), str) and outcome[stream]:
            parts.append(f"<p>{stream}</p><pre>{escape(outcome[stream][-4000:])}</pre>")
    return "".join(parts) + "</details>"


def render_html(summary: RunSummary, setup: dict, figure_dir: Path) -> str:
    from slmlab.report.figures import pass_at_k_omitted  # matplotlib: only where a run's page is made

    config = summary.config
    title = f"{config.get('model', '?')} on {config.get('benchmark', '?')}"
    passk = [[f"pass@{k}", f"{v.value:.4f}", f"[{v.low:.4f}, {v.high:.4f}]", v.n_tasks, v.method]
             for k, v in summary.pass_at_k().items()]  # fmt: skip
    outcomes = [[s, c, f"{r.value:.3f} [{r.low:.3f}, {r.high:.3f}]"] for s, c, r in summary.outcome_rates()]
    flags = [[f, c, f"{r.value:.3f} [{r.low:.3f}, {r.high:.3f}]"] for f, c, r in summary.flag_rates()]
    worst = [[t, f"{p:.2f}", failure] for t, p, failure in summary.worst_tasks(15)]
    figures = inline_figures(sorted(figure_dir.glob("*.svg")))
    omitted = pass_at_k_omitted(summary)
    if omitted:
        figures += f"<p>{escape(omitted)}</p>"
    statuses = sorted({s.judgement.verdict if s.judgement else "unchecked" for s in summary.samples})
    options = "".join(
        f'<option value="{escape(s)}">{escape(s)}</option>'
        for s in statuses + ["truncated", "repetitive", "empty"]
    )
    listed = sorted(summary.samples, key=sample_order)[:MAX_LISTED_SAMPLES]
    note = (f"<p>showing the first {MAX_LISTED_SAMPLES} of {len(summary.samples)} samples; samples.jsonl has all</p>"
            if len(summary.samples) > MAX_LISTED_SAMPLES else "")  # fmt: skip
    settings, environment = configuration_rows(config, setup)
    environment_html = (
        f"<h2>Environment and speed</h2>{html_table(['field', 'value'], environment)}" if environment else ""
    )
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style><script>{_FILTER}</script></head><body>
<h1>{escape(title)}</h1><p>run <code>{escape(summary.run_id)}</code>: {len(summary.samples)} samples on {len(summary.by_task)} tasks</p>
<h2>pass@k</h2>{html_table(["k", "value", "95% interval", "tasks", "method"], passk)}
<h2>Outcomes</h2>{html_table(["status", "count", "share [95% interval]"], outcomes)}
<h2>Generation quality</h2>{html_table(["flag", "count", "share [95% interval]"], flags)}
<h2>Worst tasks</h2>{html_table(["task", "pass rate", "most common failure"], worst)}
<h2>Figures</h2>{figures}
<h2>Samples (<span id="shown">{len(listed)}</span> shown)</h2>
<p>status or flag <select id="status" onchange="filterSamples()"><option value="">all</option>{options}</select>
task <input id="task" oninput="filterSamples()" placeholder="e.g. HumanEval/1"></p>{note}
<div id="samples">{"".join(_sample_html(r) for r in listed)}</div>
<h2>Configuration</h2><p>The run's settings. Where the run settled a setting itself, the value reads
<code>asked → used</code> (e.g. <code>auto → float32</code>).</p>{html_table(["setting", "value"], settings)}
{environment_html}
</body></html>"""
