"""Rich tables printed at the end of a run: pass@k with intervals, the outcome distribution."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from slmlab.execute.evaluate import Evaluation, status_counts
from slmlab.execute.outcome import STATUS_ORDER, Status
from slmlab.metrics import pass_at_k_summary, rate

_STATUS_STYLE = {Status.PASSED: "green", Status.HARNESS_ERROR: "red", Status.SANDBOX_VIOLATION: "magenta"}
STARVED_SHARE = 0.5  # a parked timeout that got less CPU than this share of its limit may be spurious


def print_evaluation(console: Console, evaluation: Evaluation, ks: tuple[int, ...], title: str) -> None:
    outcomes = [r.outcome for r in evaluation.results]
    if not outcomes:
        console.print("[yellow]no sample could be run[/yellow]")
    else:
        table = Table(title=f"{title}: pass@k ({len(evaluation.by_task())} tasks, {len(outcomes)} samples)")
        for column in ("k", "pass@k", "95% interval", "tasks", "method"):
            table.add_column(column, justify="right" if column != "method" else "left")
        for k, result in pass_at_k_summary(evaluation.by_task(), ks=ks).items():
            table.add_row(str(k), f"{result.value:.4f}", f"[{result.low:.4f}, {result.high:.4f}]",
                          str(result.n_tasks), result.method)  # fmt: skip
        console.print(table)

        counts = status_counts(outcomes)
        table = Table(title="Outcomes")
        for column in ("status", "count", "share [95% interval]"):
            table.add_column(column, justify="left" if column == "status" else "right")
        for status in STATUS_ORDER:
            if counts[status]:
                style = _STATUS_STYLE.get(status, "")
                table.add_row(f"[{style}]{status.value}[/{style}]" if style else status.value, str(counts[status]),
                              str(rate(counts[status], len(outcomes))))  # fmt: skip
        console.print(table)
        sandboxes = sorted({o.sandbox for o in outcomes})
        console.print(f"sandbox: {escape(', '.join(sandboxes))}")

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
