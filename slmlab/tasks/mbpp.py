"""MBPP, full (974 tasks, mbpp/mbpp.jsonl) and sanitized (427, mbpp/sanitized-mbpp.json), and the
full set's standard splits by task id (the release's README; Hugging Face's `mbpp` uses the same):
prompt 1-10, test 11-510, validation 511-600, train 601-974. Fine-tuning uses train; evaluating a
fine-tuned model on `mbpp-test` keeps the two apart.

Ids follow evalplus ("Mbpp/11"); sample files may also use the bare number. The prompt follows the
usual form: the description and one test as a docstring, so the model knows the function's name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from slmlab.errors import UserError
from slmlab.tasks.base import Task
from slmlab.tasks.datadir import resolve_data_file
from slmlab.tasks.registry import Benchmark, register

# bigcode-evaluation-harness's stop set: the model writes a whole program, so a second `def` is allowed.
MBPP_STOPS = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```")

_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


def mbpp_id(raw) -> str:
    """Canonical id for 11, "11", "Mbpp/11" or "MBPP/11"."""
    text = str(raw).strip()
    number = text.split("/")[-1]
    return f"Mbpp/{number}"


def _entry_point(code: str, tests: list[str]) -> str:
    names = _DEF.findall(code)
    for name in names:
        if any(re.search(rf"\b{re.escape(name)}\s*\(", t) for t in tests):
            return name
    if names:
        return names[0]
    raise ValueError("no function definition in the reference code")


def mbpp_task(
    task_id,
    text: str,
    code: str,
    tests: list[str],
    imports: list[str],
    setup: str,
    benchmark: str,
    canonical_id: bool = True,
) -> Task:
    prompt = f'"""\n{text.strip()}\n{tests[0].strip()}\n"""\n'
    test = "\n".join([*imports, *tests]) + "\n"
    return Task(task_id=mbpp_id(task_id) if canonical_id else str(task_id), prompt=prompt, test=test, entry_point=_entry_point(code, tests),
                reference=code, benchmark=benchmark, completion_continues_prompt=False,
                test_setup=setup)  # fmt: skip


def _read(path: Path, parse):
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a valid MBPP file ({exc}); use the original release's file") from None


def load_mbpp(data_dir=None) -> list[Task]:
    path = resolve_data_file("mbpp/mbpp.jsonl", data_dir, "MBPP")
    rows = _read(path, lambda text: [json.loads(line) for line in text.splitlines() if line.strip()])
    return [mbpp_task(r["task_id"], r["text"], r["code"], r["test_list"], [], r.get("test_setup_code", ""), "mbpp")
            for r in rows]  # fmt: skip


def load_mbpp_sanitized(data_dir=None) -> list[Task]:
    path = resolve_data_file("mbpp/sanitized-mbpp.json", data_dir, "MBPP (sanitized)")
    rows = _read(path, json.loads)
    return [mbpp_task(r["task_id"], r["prompt"], r["code"], r["test_list"], r.get("test_imports", []), "",
                  "mbpp-sanitized") for r in rows]  # fmt: skip


SPLITS = {
    "prompt": range(1, 11),
    "test": range(11, 511),
    "validation": range(511, 601),
    "train": range(601, 975),
}


def load_mbpp_split(split: str, data_dir=None) -> list[Task]:
    ids = SPLITS[split]
    return [t for t in load_mbpp(data_dir) if int(t.task_id.split("/")[-1]) in ids]


register(Benchmark(names=("mbpp",), load=load_mbpp, stops=MBPP_STOPS, task_id=mbpp_id))
register(Benchmark(names=("mbpp-sanitized",), load=load_mbpp_sanitized, stops=MBPP_STOPS, task_id=mbpp_id))
for _split in SPLITS:
    register(Benchmark(names=(f"mbpp-{_split}",), load=lambda data_dir, split=_split: load_mbpp_split(split, data_dir),
                       stops=MBPP_STOPS, task_id=mbpp_id))  # fmt: skip
