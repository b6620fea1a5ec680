"""Rich tables printed at the end of a run: pass@k with intervals, the outcome distribution,
generation quality and the worst tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from slmlab.eval.scoring import Evaluation, status_counts
from slmlab.execute.outcome import STATUS_ORDER, Status
from slmlab.metrics import pass_at_k_summary, rate
from slmlab.pipeline.summary import RunSummary

_STATUS_STYLE = {"passed": "green", "harness_error": "red", "sandbox_violation": "magenta"}
STARVED_SHARE = 0.5  # a parked timeout that got less CPU than this share of its limit may be spurious


def _passk_table(by_task: Mapping[str, Sequence[bool]], ks: Sequence[int], title: str) -> Table:
    n_samples = sum(len(v) for v in by_task.values())
    table = Table(title=f"{title}: pass@k ({len(by_task)} tasks, {n_samples} samples)")
    for column in ("k", "pass@k", "95% interval", "tasks", "method"):
        table.add_column(column, justify="right" if column != "method" else "left")
    for k, result in pass_at_k_summary(by_task, ks=ks).items():
        table.add_row(str(k), f"{result.value:.4f}", f"[{result.low:.4f}, {result.high:.4f}]",
                      str(result.n_tasks), result.method)  # fmt: skip
    return table


def _rate_table(title: str, first: str, counts: Sequence[tuple[str, int]], total: int) -> Table:
    table = Table(title=title)
    for column in (first, "count", "share [95% interval]"):
        table.add_column(column, justify="left" if column == first else "right")
    for name, count in counts:
        style = _STATUS_STYLE.get(name, "")
        table.add_row(f"[{style}]{name}[/{style}]" if style else name, str(count), str(rate(count, total)))
    return table


def print_table(console: Console, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_evaluation(console: Console, evaluation: Evaluation, ks: tuple[int, ...], title: str) -> None:
    outcomes = [r.outcome for r in evaluation.results]
    if not outcomes:
        console.print("[yellow]no sample could be run[/yellow]")
    else:
        console.print(_passk_table(evaluation.by_task(), ks, title))
        counts = status_counts(outcomes)
        rows = [(s.value, counts[s]) for s in STATUS_ORDER if counts[s]]
        console.print(_rate_table("Outcomes", "status", rows, len(outcomes)))
        console.print(f"sandbox: {escape(', '.join(sorted({o.sandbox for o in outcomes})))}")
        starved = [o for o in outcomes if o.status is Status.TIMEOUT and o.parked
                   and o.cpu_s < STARVED_SHARE * o.duration_s]  # fmt: skip
        if starved:
            console.print(f"[yellow]note: {len(starved)} timeout(s) ran at low priority and used under "
                          f"{STARVED_SHARE:.0%} of their time on the CPU; a slow but correct program can look like a "
                          "hang under load: re-run them with --park idle to confirm[/yellow]")  # fmt: skip
    if evaluation.line_errors:
        console.print(f"[yellow]{len(evaluation.line_errors)} line(s) skipped:[/yellow]")
        for error in evaluation.line_errors[:10]:
            console.print(f"  line {error.line}: {error.message}")
        if len(evaluation.line_errors) > 10:
            console.print(f"  ... and {len(evaluation.line_errors) - 10} more")


def print_run_summary(console: Console, summary: RunSummary, title: str) -> None:
    if not summary.checked:
        console.print("[yellow]no sample was checked[/yellow]")
        return
    console.print(_passk_table(summary.by_task, summary.ks, escape(title)))
    console.print(
        _rate_table("Outcomes", "status", [(s, c) for s, c, _ in summary.outcome_rates()], summary.checked)
    )
    console.print(_rate_table("Generation quality", "flag", [(f, c) for f, c, _ in summary.flag_rates()],
                              len(summary.samples)))  # fmt: skip
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.finish_reasons().items()))
    console.print(f"finish reasons: {reasons}")
    apart = summary.in_process_record()
    if apart["tasks"]:
        outside = apart["pass_at_1_judged_outside"]
        console.print(f"judged by their tests inside the sandbox (not convertible to cases): {len(apart['tasks'])} of "
                      f"{len(summary.by_task)} tasks ({escape(', '.join(apart['tasks'][:10]))}"
                      + (" ..." if len(apart["tasks"]) > 10 else "") + ")"
                      + (f"; pass@1 without them {outside['value']:.4f}" if outside else ""))  # fmt: skip
    worst = summary.worst_tasks(10)
    if worst:
        table = Table(title="Worst tasks")
        for column in ("task", "pass rate", "most common failure"):
            table.add_column(column)
        for task, value, failure in worst:
            table.add_row(escape(task), f"{value:.2f}", failure)
        console.print(table)
