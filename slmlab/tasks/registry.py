"""Benchmark names and their loaders."""

from __future__ import annotations

import difflib

from slmlab.errors import UserError
from slmlab.tasks.base import Task
from slmlab.tasks.humaneval import load_humaneval
from slmlab.tasks.mbpp import load_mbpp, load_mbpp_sanitized

BENCHMARKS = {
    "humaneval": lambda data_dir: load_humaneval(),
    "mbpp": load_mbpp,
    "mbpp-sanitized": load_mbpp_sanitized,
}


def load_benchmark(name: str, data_dir=None) -> list[Task]:
    key = name.strip().lower()
    if key not in BENCHMARKS:
        close = difflib.get_close_matches(key, BENCHMARKS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"unknown benchmark '{name}'{hint}: choose one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key](data_dir)
