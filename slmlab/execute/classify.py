"""How a sample ended, decided from what its supervisor saw: a pure function of the runner's result
file, the wait status, the resources used and the limits. No process is needed to test it.

The runner inside the sandbox writes STARTED_MARKER before the program runs and a JSON record (with
the worker's nonce) when it ends; a program can forge neither the nonce nor the marker's position,
so a record without the nonce counts as forged, and a missing record means the program ended the
process itself. The kernel's part (signals, rusage) is read here, not in the sandbox.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass

from slmlab.execute.cases import HARNESS, compare
from slmlab.execute.limits import Limits
from slmlab.execute.outcome import Outcome, Status
from slmlab.execute.runner import STARTED_MARKER

_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL}


@dataclass(frozen=True)
class Usage:
    """What the sample's process used, from wait4's rusage."""

    cpu_s: float = 0.0  # user + system
    max_rss_kb: int = 0


@dataclass(frozen=True)
class Seen:
    """What the supervisor saw of a sample, besides how it exited."""

    timed_out: bool = False  # the supervisor killed it at the wall-clock deadline
    output_capped: bool = False  # stdout or stderr reached the output limit (a write cut short)
    fresh_interpreter: bool = False  # bwrap, subprocess: it may be killed before the runner starts
    bwrap: bool = False  # bwrap reports its child's fatal signal N as exit status 128 + N
    stderr: str = ""  # what the outcome keeps of stderr: the reason a sandbox did not start
    memory_exceeded: bool = False  # the kernel killed one of its processes at its group's memory limit


def apply_record(outcome: Outcome, record: dict) -> Outcome:
    """The outcome with the status and details of a runner's record."""
    outcome.status = Status(record["status"])
    for key in ("error_type", "detail", "line", "phase"):
        if record.get(key) is not None:
            setattr(outcome, key, record[key])
    return outcome


def read_result(result: bytes, nonce: str) -> tuple[bool, dict | None, int, list[bytes]]:
    """(the runner started, its record or None, how many lines were not ours, the answer lines of a
    program run on cases) of a result file."""
    started = result.startswith(STARTED_MARKER)
    record, forged, answers = None, 0, []
    for line in (result[len(STARTED_MARKER) :] if started else result).splitlines():
        if line.startswith(b"#"):
            answers.append(line[1:])
            continue
        try:
            candidate = json.loads(line)
        except ValueError:
            candidate = None
        if isinstance(candidate, dict) and candidate.get("nonce") == nonce:
            record = candidate
        elif line.strip():
            forged += 1
    return started, record, forged, answers


def classify(
    result: bytes, nonce: str, wait_status: int, usage: Usage, limits: Limits, seen: Seen = Seen(),
    expected: tuple | None = None,
) -> Outcome:
    """The outcome of a sample that ended with `wait_status` (as os.wait4 gives it) after writing
    `result` to its result file. The caller adds what it measured (duration, output, tier, parked).
    expected: the expected answers of a program run on cases (cases.py); the first answer that does
    not match decides, as the tests would have stopped there, whatever the process did next."""
    started, record, forged, answers = read_result(result, nonce)
    outcome = Outcome(Status.HARNESS_ERROR, cpu_s=round(usage.cpu_s, 4), stderr=seen.stderr)
    if expected is not None:
        outcome.extra["verdict"] = HARNESS
        failure, answered = compare(expected, answers) if started else (None, 0)
        if failure is not None:
            return apply_record(outcome, failure)
        if record is not None and record.get("status") == "passed" and answered < len(expected):
            record, forged = None, forged + 1  # "passed" for cases that were never answered
    elif record is not None and "calls" in record:
        outcome.extra["calls"] = record["calls"]
    signum = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
    code = os.waitstatus_to_exitcode(wait_status)
    if seen.bwrap and code > 128 and code - 128 in signal.valid_signals():
        signum = code - 128
    if forged:
        outcome.extra["forged_records"] = forged
    if seen.timed_out and (started or not seen.fresh_interpreter):
        outcome.status = Status.TIMEOUT
        outcome.detail = f"still running after {limits.timeout_s:g} s of its own time (wall clock less any wait for a CPU); killed"
    elif forged and record is None and started:
        outcome.status = Status.SANDBOX_VIOLATION
        outcome.detail = "the program wrote a forged result record and did not finish its tests"
    elif record is not None and not seen.output_capped:
        apply_record(outcome, record)
        if record.get("leftover_processes"):
            outcome.extra["tests_status"] = outcome.status.value
            outcome.status = Status.SANDBOX_VIOLATION
            outcome.detail = (
                f"left {record['leftover_processes']} process(es) running after it finished; killed"
            )
    elif signum == signal.SIGXFSZ or seen.output_capped:
        outcome.status = Status.OUTPUT_LIMIT
        outcome.detail = f"wrote more than {limits.output_bytes} bytes to one stream or file; killed"
    elif signum == signal.SIGXCPU or (
        signum == signal.SIGKILL and not seen.timed_out and usage.cpu_s >= limits.cpu_s
    ):
        outcome.status = Status.TIMEOUT
        outcome.detail = f"used more than {limits.cpu_s} s of CPU time; killed"
    elif signum == signal.SIGSYS:
        outcome.status = Status.SANDBOX_VIOLATION
        outcome.detail = "made a system call the sandbox forbids; killed"
    elif not started:
        outcome.detail = (
            "the sandbox did not start: " + (seen.stderr.strip().splitlines() or ["no message"])[-1]
        )
    elif signum is not None:
        name = signal.Signals(signum).name
        outcome.error_type = name
        if signum == signal.SIGKILL and seen.memory_exceeded:
            outcome.status = Status.MEMORY_EXCEEDED
            outcome.detail = "killed by the kernel at the memory limit of its process tree"
        elif signum == signal.SIGKILL and usage.max_rss_kb * 1024 >= 0.8 * limits.memory_mb * 1024 * 1024:
            outcome.status = Status.MEMORY_EXCEEDED
            outcome.detail = "killed by the kernel near the memory limit"
        else:
            outcome.status = Status.RUNTIME_ERROR
            crash = (
                " (the interpreter crashed; deep recursion is the usual cause)"
                if signum in _CRASH_SIGNALS
                else ""
            )
            outcome.detail = f"killed by {name}{crash}"
    else:
        outcome.status = Status.NO_TESTS_RUN
        outcome.detail = f"the process exited (code {code}) before the tests completed"
    return outcome
