"""One run of the main job inside a study: the pipeline's result, with the run's report written
into its folder just as `slmlab eval` writes it (the pipeline computes; reports take its data)."""

from __future__ import annotations

from rich.console import Console


def eval_run(config, console: Console):
    """`slmlab.eval.run_eval(config)` and its run's report; returns the `EvalResult`."""
    from slmlab.eval.job import run_eval
    from slmlab.report.write import write_run_report

    result = run_eval(config, console)
    write_run_report(result)
    return result
