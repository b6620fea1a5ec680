"""The sandbox judge: each candidate's program runs in the sandbox, and the execution outcome (the
taxonomy of slmlab.execute) is its verdict. The one place the pipeline starts an Executor.

A task whose tests can be converted (execute/cases.py) is judged outside the sandbox: its
reference solution is run through its tests once per judge, recording the calls they make, and each
candidate only computes the answers to those calls, which the worker compares. Other tasks are
judged by their tests inside the sandbox, and their outcomes say so (extra["verdict"])."""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from slmlab.atomic import write_text_atomic
from slmlab.execute import Executor, Limits
from slmlab.execute.cases import IN_PROCESS, Conversion, call_sites, conversion, recording_sites
from slmlab.judge.base import Candidate, JudgeSettings, register_judge
from slmlab.judgement import Judgement
from slmlab.models.cache import slmlab_home


def outcome_judgement(outcome) -> Judgement:
    """An execute.Outcome as the judgement it is."""
    record = outcome.to_dict()
    return Judgement("sandbox", record["status"], outcome.passed, outcome.error_type, record)


# Bump when what a conversion holds, or how it is derived, changes: older entries are then ignored.
_CASES_FORMAT = 2


def _cache_file(reference) -> Path:
    """Content-addressed: the reference program and its tests, the entry point, and the marshal format."""
    key = hashlib.sha256(marshal.dumps((_CASES_FORMAT, sys.version_info[:2], reference.definitions, reference.tests,
                                        reference.entry_point))).hexdigest()  # fmt: skip
    return slmlab_home() / "cases" / f"{key}.hex"


def _cached(path: Path) -> Conversion | None:
    """A conversion derived and checked by an earlier run (about 7 ms a task to derive again in the
    sandbox: 1.1 s for HumanEval, a third of judging its 1,158-sample benchmark). Written by this
    trusted process only; a sample on a tier that cannot write outside its directory never reaches it."""
    try:
        cases, expected = marshal.loads(bytes.fromhex(path.read_text()))
        return Conversion(cases, tuple(expected))
    except (OSError, ValueError, EOFError, TypeError):
        return None


def _cache(path: Path, conversion: Conversion) -> None:
    with contextlib.suppress(OSError):  # a read-only home: derived again next time
        write_text_atomic(path, marshal.dumps((conversion.cases, conversion.expected)).hex())


@register_judge("sandbox")
class SandboxJudge:
    verb = "executing"

    def __init__(self, settings: JudgeSettings):
        self.settings = settings
        self._executor: Executor | None = None
        self._known: dict[tuple[str, str], Judgement] = {}  # (task, program) -> its judgement, while open
        self.conversions: dict[str, Conversion | str] = {}  # task id -> its cases, or why it has none
        self.timeouts: dict[str, float] = {}  # per-task time limits (slmlab execute --timeout-factor)

    @property
    def executor(self) -> Executor:
        """The warm workers, started the first time a program runs (and kept until exit)."""
        if self._executor is None:
            s = self.settings
            limits = Limits(timeout_s=s.timeout, memory_mb=s.memory_mb, park=s.park)
            self._executor = (s.pool or Executor)(sandbox=s.sandbox, limits=limits, workers=s.workers)
        return self._executor

    def per_node(self) -> dict[str, int]:
        """Programs run on each node, where the executor spans a cluster's nodes."""
        return dict(getattr(self._executor, "per_node", None) or {})

    def describe(self) -> str:
        tier = self.executor.tier
        gaps = f" (does not contain here: {', '.join(tier.gaps)})" if tier.gaps else ""
        return f"sandbox: {tier.label}{gaps}"

    def convert(self, tasks) -> None:
        """Derive the cases of every task not converted yet: run its reference through its tests in
        the sandbox, recording the calls, then check that the reference passes its own cases. A
        checked conversion is kept in the cache (_cached) for later runs."""
        todo = [t for t in {t.task_id: t for t in tasks}.values() if t.task_id not in self.conversions]
        recordings, recorded = [], []
        for task in todo:
            program = task.reference_program()
            cache = _cache_file(program)
            cached = _cached(cache)
            if cached is not None:
                self.conversions[task.task_id] = cached
                continue
            sites = call_sites(program.tests, task.entry_point) if task.reference else "the task has no reference"
            if isinstance(sites, str):
                self.conversions[task.task_id] = sites
                continue
            recordings.append(replace(program, record=recording_sites(sites)))
            recorded.append((task, program, sites, cache))
        if not recordings:
            return
        checks = []
        for (task, program, sites, cache), outcome in zip(recorded, self.executor.run(recordings), strict=True):
            if not outcome.passed:
                self.conversions[task.task_id] = f"the reference does not pass its tests ({outcome.status.value})"
                continue
            made = conversion(marshal.loads(bytes.fromhex(outcome.extra["calls"])), sites)
            self.conversions[task.task_id] = made
            if isinstance(made, Conversion):
                checks.append((task, self._with_cases(program, task.task_id), cache))
        outcomes = self.executor.run([program for _, program, _ in checks])
        for (task, _, cache), outcome in zip(checks, outcomes, strict=True):
            if not outcome.passed:  # a reference whose answers vary between runs, for one
                self.conversions[task.task_id] = f"the reference fails its own cases: {outcome.detail}"
            else:
                _cache(cache, self.conversions[task.task_id])

    def _with_cases(self, program, task_id: str):
        made = self.conversions[task_id]
        if isinstance(made, Conversion):
            program.cases, program.expected = made.cases, made.expected
        return program

    def judge(self, candidates: Sequence[Candidate], on_result: Callable[[int, Judgement], None]) -> None:
        """A program that several candidates share (the same code for the same task: budgets that
        cut a sample alike, greedy samples) runs once while the judge is open."""
        self.convert([c.task for c in candidates])
        programs, keys, users = [], [], {}
        for index, c in enumerate(candidates):
            program = c.task.program(c.text, c.whole_program, self.timeouts.get(c.task.task_id))
            program = self._with_cases(program, c.task.task_id)
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
            why = self.conversions[keys[slot][0]]
            if isinstance(why, str):
                outcome.extra.update(verdict=IN_PROCESS, in_process_because=why)
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
