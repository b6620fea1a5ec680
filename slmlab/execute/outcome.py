"""The fixed vocabulary of execution outcomes and the record kept for every sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PASSED = "passed"
    FAILED_ASSERTION = "failed_assertion"
    RUNTIME_ERROR = "runtime_error"
    UNSUPPORTED_OUTPUT = "unsupported_output"  # returned something other than plain data
    SYNTAX_ERROR = "syntax_error"
    TIMEOUT = "timeout"
    MEMORY_EXCEEDED = "memory_exceeded"
    OUTPUT_LIMIT = "output_limit"
    NO_TESTS_RUN = "no_tests_run"
    SANDBOX_VIOLATION = "sandbox_violation"
    HARNESS_ERROR = "harness_error"


# Order used in summaries and figures: success first, then failures of the code, then the sandbox's.
STATUS_ORDER: tuple[Status, ...] = tuple(Status)


@dataclass
class Outcome:
    """What happened to one sample. `passed` is true only for Status.PASSED."""

    status: Status
    error_type: str | None = None  # exception class (NameError, ...) or signal name (SIGSEGV)
    detail: str = ""  # one line for people: the error message, the line, the limit that was hit
    line: int | None = None  # line of the program where the error was raised, when known
    phase: str | None = None  # "definition" (prompt + completion) or "tests"
    duration_s: float = 0.0  # wall-clock time of the sandboxed process
    cpu_s: float = 0.0  # CPU seconds it used (user + system)
    stdout: str = ""  # capped
    stderr: str = ""  # capped
    sandbox: str = ""  # tier and features, e.g. "process[uid-drop,landlock7,seccomp]"
    parked: bool = False  # ran past the park threshold and was moved to low priority
    attempts: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict:
        record = dict(vars(self))  # shallow: dataclasses.asdict deep-copies, a cost paid per sample
        record["extra"] = dict(self.extra)
        record["status"] = self.status.value
        record["passed"] = self.passed
        return record

    @classmethod
    def from_dict(cls, record: dict) -> Outcome:
        fields = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        fields["status"] = Status(fields["status"])
        return cls(**fields)
