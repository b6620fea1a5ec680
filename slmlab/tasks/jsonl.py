"""Any JSONL file of tasks, in HumanEval's shape (task_id, prompt, test with check(candidate),
entry_point, optional canonical_solution) or MBPP's (task_id, text or prompt, code, test_list)."""

from __future__ import annotations

import json
from pathlib import Path

from slmlab.errors import UserError
from slmlab.tasks.base import Task
from slmlab.tasks.humaneval import HUMANEVAL_STOPS
from slmlab.tasks.mbpp import MBPP_STOPS, mbpp_task
from slmlab.tasks.registry import Benchmark, register_claim

HUMANEVAL_FIELDS = ("task_id", "prompt", "test", "entry_point")
MBPP_FIELDS = ("task_id", "code", "test_list")


def _task(record: dict, benchmark: str) -> Task:
    if all(key in record for key in HUMANEVAL_FIELDS):
        return Task(task_id=str(record["task_id"]), prompt=record["prompt"], test=record["test"],
                    entry_point=record["entry_point"], reference=record.get("canonical_solution", ""),
                    benchmark=benchmark)  # fmt: skip
    if all(key in record for key in MBPP_FIELDS) and ("text" in record or "prompt" in record):
        return mbpp_task(record["task_id"], record.get("text", record.get("prompt")), record["code"],
                         record["test_list"], record.get("test_imports", []), record.get("test_setup_code", ""),
                         benchmark, canonical_id=False)  # fmt: skip
    raise ValueError(
        f"needs the HumanEval fields ({', '.join(HUMANEVAL_FIELDS)}) or the MBPP fields ({', '.join(MBPP_FIELDS)}, text)"
    )


def load_jsonl_tasks(path: str | Path) -> list[Task]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"task file {path} not found: give a JSONL file of tasks or a benchmark name")
    benchmark = path.stem
    tasks: list[Task] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = list(f)
        except UnicodeDecodeError as exc:
            raise UserError(f"{path} is not UTF-8 text ({exc.reason}); re-encode it as UTF-8") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            tasks.append(_task(record, benchmark))
        except (ValueError, TypeError, IndexError) as exc:
            raise UserError(f"{path} line {number}: {exc}; fix or remove that line") from None
    if not tasks:
        raise UserError(f"{path} holds no tasks")
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{path}: task id {duplicate!r} appears more than once; task ids must be unique")
    return tasks


def is_task_file(name: str) -> bool:
    return name.endswith(".jsonl") or Path(name).is_file()


def _first_record(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            line = next((line for line in f if line.strip()), "")
        record = json.loads(line) if line else {}
    except (OSError, ValueError):
        return {}  # loading the file says what is wrong with it
    return record if isinstance(record, dict) else {}


def _task_file(name: str) -> Benchmark:
    # A file of MBPP-shaped tasks ends where MBPP does (a second `def` is part of a whole program);
    # a file of HumanEval-shaped tasks where HumanEval does.
    record = _first_record(Path(name))
    mbpp_shaped = all(k in record for k in MBPP_FIELDS) and not all(k in record for k in HUMANEVAL_FIELDS)
    return Benchmark(names=(Path(name).stem,), load=lambda data_dir: load_jsonl_tasks(name),
                     stops=MBPP_STOPS if mbpp_shaped else HUMANEVAL_STOPS)  # fmt: skip


register_claim(is_task_file, _task_file)
