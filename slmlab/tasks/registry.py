"""The benchmark registry: each benchmark file describes itself as a `Benchmark` and registers it,
so nothing outside that file tests a benchmark's name. A path to a .jsonl file of tasks is a
benchmark too (jsonl.py registers the rule that claims it).

Adding a benchmark is one file in slmlab/tasks/ that ends with `register(Benchmark(...))`, plus
its import in slmlab/tasks/__init__.py (which imports every benchmark file, so importing any part
of slmlab.tasks fills the registry).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from slmlab.errors import UserError
from slmlab.tasks.base import Task


@dataclass(frozen=True)
class Benchmark:
    """What the rest of slmlab asks of a benchmark, by name."""

    names: tuple[str, ...]  # the names it answers to (lower case); the first is its own
    load: Callable[[str | None], list[Task]]  # data_dir (None: $SLMLAB_DATA) -> its tasks
    stops: tuple[str, ...]  # where a plain-prompt completion ends (chat answers end after their code block)
    task_id: Callable[[object], str] = str  # a sample file's task id -> the benchmark's own id
    language: str = "python"


BENCHMARKS: dict[str, Benchmark] = {}  # name -> benchmark, in registration order
_CLAIMS: list[tuple[Callable[[str], bool], Callable[[str], Benchmark]]] = []


def register(benchmark: Benchmark) -> Benchmark:
    """Make `benchmark` known by each of its names; a name taken twice is a programming error."""
    for name in benchmark.names:
        key = name.strip().lower()
        if key in BENCHMARKS and BENCHMARKS[key] is not benchmark:
            raise ValueError(f"benchmark name {key!r} is registered twice")
        BENCHMARKS[key] = benchmark
    return benchmark


def register_claim(claims: Callable[[str], bool], describe: Callable[[str], Benchmark]) -> None:
    """Benchmarks not known by a fixed name (a task file): `describe(name)` for each name `claims` accepts."""
    _CLAIMS.append((claims, describe))


def unregister(benchmark: Benchmark) -> None:
    """Forget `benchmark` (tests register toy benchmarks and clean up after themselves)."""
    for key in [k for k, b in BENCHMARKS.items() if b is benchmark]:
        del BENCHMARKS[key]


def lookup(name: str) -> Benchmark:
    """The benchmark `name` stands for, or one clear line naming the choices."""
    for claims, describe in _CLAIMS:
        if claims(name):
            return describe(name)
    key = name.strip().lower()
    if key not in BENCHMARKS:
        close = difflib.get_close_matches(key, BENCHMARKS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            f"unknown benchmark '{name}'{hint}: choose one of {', '.join(BENCHMARKS)}, or give a .jsonl file of tasks"
        )
    return BENCHMARKS[key]


def load_benchmark(name: str, data_dir=None) -> list[Task]:
    return lookup(name).load(data_dir)


def plain_stops(name: str) -> tuple[str, ...]:
    """The stop sequences of `name`'s plain prompts."""
    return lookup(name).stops
