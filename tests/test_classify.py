"""classify(): every outcome status from what a worker sees of an ended sample, with no process started."""

from __future__ import annotations

import json
import signal

import pytest

from slmlab.execute.classify import Seen, Usage, classify
from slmlab.execute.limits import Limits
from slmlab.execute.outcome import Status
from slmlab.execute.runner import STARTED_MARKER

NONCE = "n0nce"
LIMITS = Limits(timeout_s=2.0, memory_mb=1024, output_bytes=1000)


def exited(code: int) -> int:
    """A wait status, as os.wait4 reports it, of a process that exited with `code`."""
    return code << 8


def killed(signum: int) -> int:
    """A wait status of a process killed by `signum`."""
    return int(signum)


def result(*records: dict, started: bool = True, raw: bytes = b"") -> bytes:
    """A result file as the runner writes it: the marker, then one record per line."""
    lines = b"".join(b"\n" + json.dumps(r).encode() + b"\n" for r in records)
    return (STARTED_MARKER if started else b"") + raw + lines


def ours(status: str, **fields) -> dict:
    return {"status": status, "nonce": NONCE, **fields}


@pytest.mark.parametrize("status", ["passed", "failed_assertion", "runtime_error", "syntax_error",
                                    "memory_exceeded", "output_limit", "no_tests_run", "sandbox_violation",
                                    "harness_error"])  # fmt: skip
def test_the_runners_own_record_decides_when_nothing_else_happened(status):
    record = ours(status, error_type="X", detail="why", line=3, phase="tests")
    outcome = classify(result(record), NONCE, exited(0), Usage(0.01, 9000), LIMITS)
    assert outcome.status is Status(status)
    assert (outcome.error_type, outcome.detail, outcome.line, outcome.phase) == ("X", "why", 3, "tests")
    assert outcome.passed == (status == "passed")
    assert outcome.cpu_s == 0.01


def test_killed_at_the_wall_clock_deadline_is_a_timeout():
    outcome = classify(result(), NONCE, killed(signal.SIGKILL), Usage(0.1), LIMITS, Seen(timed_out=True))
    assert outcome.status is Status.TIMEOUT
    assert "2 s of its own time" in outcome.detail


def test_a_timeout_beats_a_record_written_after_the_deadline():
    seen = Seen(timed_out=True)
    outcome = classify(result(ours("passed")), NONCE, killed(signal.SIGKILL), Usage(), LIMITS, seen)
    assert outcome.status is Status.TIMEOUT


def test_a_fresh_interpreter_killed_before_the_runner_started_is_ours_not_a_timeout():
    seen = Seen(timed_out=True, fresh_interpreter=True, stderr="bwrap: slow\n")
    outcome = classify(b"", NONCE, killed(signal.SIGKILL), Usage(), LIMITS, seen)
    assert outcome.status is Status.HARNESS_ERROR  # retried by the executor
    assert outcome.detail == "the sandbox did not start: bwrap: slow"


@pytest.mark.parametrize("wait_status", [killed(signal.SIGXCPU), killed(signal.SIGKILL)])
def test_cpu_limit_is_a_timeout(wait_status):
    outcome = classify(result(), NONCE, wait_status, Usage(cpu_s=LIMITS.cpu_s + 0.2), LIMITS)
    assert outcome.status is Status.TIMEOUT
    assert f"{LIMITS.cpu_s} s of CPU time" in outcome.detail


def test_sigkill_near_the_memory_limit_is_memory_exceeded():
    near = int(0.9 * LIMITS.memory_mb * 1024)
    outcome = classify(result(), NONCE, killed(signal.SIGKILL), Usage(0.1, near), LIMITS)
    assert outcome.status is Status.MEMORY_EXCEEDED
    assert outcome.error_type == "SIGKILL"


def test_sigkill_far_from_every_limit_is_a_runtime_error():
    outcome = classify(result(), NONCE, killed(signal.SIGKILL), Usage(0.1, 20_000), LIMITS)
    assert (outcome.status, outcome.detail) == (Status.RUNTIME_ERROR, "killed by SIGKILL")


def test_a_crash_signal_says_what_usually_causes_it():
    outcome = classify(result(), NONCE, killed(signal.SIGSEGV), Usage(), LIMITS)
    assert outcome.status is Status.RUNTIME_ERROR
    assert outcome.error_type == "SIGSEGV"
    assert "deep recursion" in outcome.detail


def test_file_size_signal_or_a_full_stream_is_output_limit():
    by_signal = classify(result(), NONCE, killed(signal.SIGXFSZ), Usage(), LIMITS)
    # A write cut short at the limit raises no signal; the stream's size tells, even over a record.
    by_size = classify(result(ours("passed")), NONCE, exited(0), Usage(), LIMITS, Seen(output_capped=True))
    for outcome in (by_signal, by_size):
        assert outcome.status is Status.OUTPUT_LIMIT
        assert "1000 bytes" in outcome.detail


def test_a_forbidden_system_call_is_a_sandbox_violation():
    outcome = classify(result(), NONCE, killed(signal.SIGSYS), Usage(), LIMITS)
    assert outcome.status is Status.SANDBOX_VIOLATION


def test_a_forged_record_without_ours_is_a_sandbox_violation():
    forged = {"status": "passed", "nonce": "guess"}
    outcome = classify(result(forged), NONCE, exited(0), Usage(), LIMITS)
    assert outcome.status is Status.SANDBOX_VIOLATION
    assert outcome.extra["forged_records"] == 1


def test_a_forged_record_next_to_ours_is_counted_and_ours_decides():
    outcome = classify(
        result({"status": "passed"}, ours("failed_assertion")), NONCE, exited(0), Usage(), LIMITS
    )
    assert outcome.status is Status.FAILED_ASSERTION
    assert outcome.extra["forged_records"] == 1


def test_processes_left_running_turn_a_pass_into_a_violation():
    record = ours("passed", leftover_processes=2)
    outcome = classify(result(record), NONCE, exited(0), Usage(), LIMITS)
    assert outcome.status is Status.SANDBOX_VIOLATION
    assert outcome.extra["tests_status"] == "passed"
    assert "left 2 process(es)" in outcome.detail


def test_ending_the_process_before_the_tests_is_no_tests_run():
    outcome = classify(result(), NONCE, exited(0), Usage(), LIMITS)
    assert outcome.status is Status.NO_TESTS_RUN
    assert "code 0" in outcome.detail


def test_no_marker_means_the_sandbox_did_not_start():
    seen = Seen(stderr="Traceback...\nOSError: landlock_restrict_self failed\n")
    outcome = classify(b"", NONCE, exited(1), Usage(), LIMITS, seen)
    assert outcome.status is Status.HARNESS_ERROR
    assert outcome.detail == "the sandbox did not start: OSError: landlock_restrict_self failed"


def test_a_hardening_failure_reported_before_the_marker_is_a_harness_error():
    record = ours("harness_error", error_type="PermissionError", detail="hardening failed: nope")
    outcome = classify(result(record, started=False), NONCE, exited(0), Usage(), LIMITS)
    assert (outcome.status, outcome.detail) == (Status.HARNESS_ERROR, "hardening failed: nope")


def test_bwrap_reports_its_childs_signal_as_an_exit_status():
    plain = classify(result(), NONCE, exited(128 + signal.SIGSYS), Usage(), LIMITS)
    through_bwrap = classify(result(), NONCE, exited(128 + signal.SIGSYS), Usage(), LIMITS, Seen(bwrap=True))
    assert plain.status is Status.NO_TESTS_RUN
    assert through_bwrap.status is Status.SANDBOX_VIOLATION
