"""The sandbox judge: each candidate's program runs against its task's tests in the sandbox, and the
execution outcome (the taxonomy of slmlab.execute) is its verdict. The one place the pipeline
starts an Executor."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from slmlab.execute import Executor, Limits
from slmlab.judge.base import Candidate, JudgeSettings, register_judge
from slmlab.judgement import Judgement


def outcome_judgement(outcome) -> Judgement:
    """An execute.Outcome as the judgement it is."""
    record = outcome.to_dict()
    return Judgement("sandbox", record["status"], outcome.passed, outcome.error_type, record)


@register_judge("sandbox")
class SandboxJudge:
    verb = "executing"

    def __init__(self, settings: JudgeSettings):
        self.settings = settings
        self._executor: Executor | None = None
        self._known: dict[tuple[str, str], Judgement] = {}  # (task, program) -> its judgement, while open

    @property
    def executor(self) -> Executor:
        """The warm workers, started the first time a program runs (and kept until exit)."""
        if self._executor is None:
            s = self.settings
            limits = Limits(timeout_s=s.timeout, memory_mb=s.memory_mb, park=s.park)
            self._executor = Executor(sandbox=s.sandbox, limits=limits, workers=s.workers)
        return self._executor

    def describe(self) -> str:
        return f"sandbox: {self.executor.tier.label}"

    def judge(self, candidates: Sequence[Candidate], on_result: Callable[[int, Judgement], None]) -> None:
        """A program that several candidates share (the same code for the same task: budgets that
        cut a sample alike, greedy samples) runs once while the judge is open."""
        programs, keys, users = [], [], {}
        for index, c in enumerate(candidates):
            program = c.task.program(c.text, c.whole_program)
            key = (c.task.task_id, program.definitions)
            if key in self._known:
                on_result(index, self._known[key])
                continue
            if key not in users:
                users[key] = []
                keys.append(key)
                programs.append(program)
            users[key].append(index)

        def report(slot: int, outcome) -> None:
            judgement = self._known[keys[slot]] = outcome_judgement(outcome)
            for index in users[keys[slot]]:
                on_result(index, judgement)

        if programs:
            self.executor.run(programs, progress=report)

    def __enter__(self) -> SandboxJudge:
        return self

    def __exit__(self, *exc) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None
