"""The Judge protocol, what it is given, and the registry that makes a judge by name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from slmlab.errors import UserError
from slmlab.judgement import Judgement


@dataclass(frozen=True)
class Candidate:
    """One generated sample as its judge sees it: its task, and the text the task's extraction made
    of the generation (code, or an answer in prose)."""

    task: object  # a slmlab.tasks.Task
    text: str
    whole_program: bool = False  # code: the text is a whole program, not a continuation of the prompt
    empty: bool = False  # nothing was written (a body of only `pass`, `{}` or blanks)


@dataclass(frozen=True)
class JudgeSettings:
    """What judges may be configured by (each reads its own)."""

    sandbox: Literal["auto", "bwrap", "process", "subprocess"] = "auto"
    timeout: float = 5.0  # seconds per program
    workers: int | None = None  # sandbox workers; None: one per core
    memory_mb: int = 2048  # address space per program
    park: Literal["idle", "all", "off"] = "idle"  # see slmlab.execute.limits
    match: Literal["strict", "flexible"] = "flexible"  # math answers
    # Makes the sandbox's executor (sandbox=, limits=, workers=): None, slmlab.execute.Executor on
    # this machine; the Ray executor passes slmlab.cluster.sandbox.ClusterSandbox.
    pool: Callable | None = None


class Judge(Protocol):
    """Judges candidates, calling `on_result(index, judgement)` for each as soon as it is known.
    A judge is a context manager: what it holds (sandbox workers, checker processes) is let go on exit."""

    name: str
    verb: str  # what progress lines call its work: executing, judging

    def judge(self, candidates: Sequence[Candidate], on_result: Callable[[int, Judgement], None]) -> None: ...

    def describe(self) -> str: ...  # one line for the console: what judges, where

    def __enter__(self) -> Judge: ...

    def __exit__(self, *exc) -> None: ...


class StatelessJudge:
    """A judge that holds nothing between calls: entering and leaving it do nothing."""

    name = ""
    verb = "judging"
    description = ""  # what it judges, for the console

    def __init__(self, settings: JudgeSettings):
        self.settings = settings

    def describe(self) -> str:
        return f"judge: {self.description or self.name}"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class PlainJudge(StatelessJudge, ABC):
    """A stateless judge that decides each candidate on its own."""

    @abstractmethod
    def judge_one(self, candidate: Candidate) -> Judgement: ...

    def judge(self, candidates: Sequence[Candidate], on_result: Callable[[int, Judgement], None]) -> None:
        for index, candidate in enumerate(candidates):
            on_result(index, self.judge_one(candidate))


JUDGES: dict[str, Callable[[JudgeSettings], Judge]] = {}
# The modules that register the judges, imported the first time a judge is asked for.
JUDGE_MODULES = ("sandbox", "math_answer", "syntax", "collapse", "similarity")


def register_judge(name: str):
    """Class decorator: make the judge known by `name`; it is built as `cls(settings)`."""

    def add(cls):
        JUDGES[name] = cls
        cls.name = name
        return cls

    return add


def known_judges() -> dict[str, Callable[[JudgeSettings], Judge]]:
    """Every registered judge by name (importing the judge modules on first use)."""
    for module in JUDGE_MODULES:
        importlib.import_module(f"slmlab.judge.{module}")
    return JUDGES


def make_judge(name: str, settings: JudgeSettings | None = None) -> Judge:
    if name not in known_judges():
        raise UserError(f"unknown judge '{name}': choose one of {', '.join(JUDGES)}")
    return JUDGES[name](settings or JudgeSettings())
