"""The Task seam: each benchmark file describes itself as a `Benchmark` (its tasks, prompts per
prompt mode and few-shot, stop sequences, how a generation becomes what is judged, its judge and
language) and registers it, so nothing outside that file tests a benchmark's name. A path to a
.jsonl file of tasks is a benchmark too (jsonl.py registers the rule that claims it).

Adding a benchmark is one file in slmlab/tasks/ that ends with `register(Benchmark(...))`, plus
its import in slmlab/tasks/__init__.py (which imports every benchmark file, so importing any part
of slmlab.tasks fills the registry).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from slmlab.errors import UserError
from slmlab.generate.stops import CLOSED_CODE_BLOCK
from slmlab.tasks.base import Task
from slmlab.tasks.prompts import Completion, Prompt, build_prompt, completion_from_answer, few_shot_examples


@dataclass(frozen=True)
class Benchmark:
    """What the rest of slmlab asks of a benchmark, by name. The defaults are those of a Python code
    benchmark judged in the sandbox (HumanEval, MBPP); a benchmark of another kind replaces them."""

    names: tuple[str, ...]  # the names it answers to (lower case); the first is its own
    load: Callable[[str | None], list[Task]]  # data_dir (None: $SLMLAB_DATA) -> its tasks
    stops: tuple[str, ...]  # where a plain-prompt completion ends
    task_id: Callable[[object], str] = str  # a sample file's task id -> the benchmark's own id
    language: str = "python"
    judge: str = "sandbox"  # the slmlab.judge that decides a sample's verdict
    chat_stops: tuple[str, ...] = (CLOSED_CODE_BLOCK,)  # where a chat answer ends: after its code block
    # (task, prompt mode, tokenizer, few-shot examples) -> what the model sees
    prompt: Callable[[Task, str, object, list[Task]], Prompt] = build_prompt
    # (task, its benchmark's tasks, count, seed, data_dir) -> the few-shot examples shown before it
    shots: Callable[[Task, list[Task], int, int, str | None], list[Task]] = (
        lambda task, tasks, count, seed, data_dir: few_shot_examples(task, tasks, count)
    )
    # (task, generated text, prompt mode, sanitize) -> what is judged
    extract: Callable[[Task, str, str, bool], Completion] = completion_from_answer

    def stops_for(self, mode: str) -> tuple[str, ...]:
        """The stop sequences of a prompt mode."""
        return self.chat_stops if mode == "chat" else self.stops


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


def benchmark_names() -> str:
    """The registered names, for help texts and messages."""
    return ", ".join(BENCHMARKS)
