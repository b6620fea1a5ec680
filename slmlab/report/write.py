"""Everything a finished run leaves beside the store: figures, the HTML report, summary.json."""

from __future__ import annotations

import json
from pathlib import Path

from slmlab.atomic import write_text_atomic
from slmlab.pipeline.summary import RunSummary
from slmlab.report.figures import write_figures
from slmlab.report.html import render_html


def write_report(summary: RunSummary, setup: dict, directory: Path) -> Path:
    """Write the run's report files into `directory`; returns the HTML report's path."""
    directory.mkdir(parents=True, exist_ok=True)
    write_figures(summary, directory)
    report = directory / "report.html"
    write_text_atomic(report, render_html(summary, setup, directory))
    payload = {"run_id": summary.run_id, "config": summary.config, "setup": setup, **summary.metrics()}
    write_text_atomic(directory / "summary.json", json.dumps(payload, indent=2, default=str))
    return report


def write_run_report(result) -> Path:
    """The report of a finished eval run (a `slmlab.eval.EvalResult`) in its folder."""
    return write_report(result.summary, result.setup, result.report_dir)
