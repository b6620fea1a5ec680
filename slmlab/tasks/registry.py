"""Benchmark names and their loaders; a path to a .jsonl file is a benchmark too."""

from __future__ import annotations

import difflib
from pathlib import Path

from slmlab.errors import UserError
from slmlab.tasks.base import Task
from slmlab.tasks.humaneval import load_humaneval
from slmlab.tasks.jsonl import load_jsonl_tasks
from slmlab.tasks.mbpp import SPLITS, load_mbpp, load_mbpp_sanitized, load_mbpp_split
from slmlab.tasks.minibench import load_minibench

BENCHMARKS = {
    "humaneval": lambda data_dir: load_humaneval(),
    "mbpp": load_mbpp,
    "mbpp-sanitized": load_mbpp_sanitized,
    "minibench": lambda data_dir: load_minibench(),
    **{f"mbpp-{split}": (lambda data_dir, split=split: load_mbpp_split(split, data_dir)) for split in SPLITS},
}


def is_task_file(name: str) -> bool:
    return name.endswith(".jsonl") or Path(name).is_file()


def load_benchmark(name: str, data_dir=None) -> list[Task]:
    if is_task_file(name):
        return load_jsonl_tasks(name)
    key = name.strip().lower()
    if key not in BENCHMARKS:
        close = difflib.get_close_matches(key, BENCHMARKS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            f"unknown benchmark '{name}'{hint}: choose one of {', '.join(BENCHMARKS)}, or give a .jsonl file of tasks"
        )
    return BENCHMARKS[key](data_dir)
