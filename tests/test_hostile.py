"""The hostile-program suite, against every tier this machine offers: each program is contained,
classified as expected, the harness survives and no process is left behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from slmlab.execute import Executor, Limits, Program, zygote
from slmlab.execute.tiers import detect
from tests.hostile import GOOD, HOSTILE

TIERS = [name for name, tier in detect().items() if tier.available]


class _Listener:
    """A loopback TCP server (or one on a UNIX socket at `path`) that records whatever reaches it."""

    def __init__(self, path: str | None = None):
        self.sock = socket.socket(socket.AF_UNIX) if path else socket.socket()
        self.sock.bind(path or ("127.0.0.1", 0))
        if path:
            os.chmod(path, 0o777)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = None if path else self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.received.append(conn.recv(100) or b"<connected>")
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def _descendants_of(pids: set[int]) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), set(pids)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


@pytest.fixture(scope="module", params=TIERS)
def attack(request, tmp_path_factory):
    """Run the whole suite once per tier (in parallel inside the executor), then let tests inspect it."""
    tier = request.param
    root = tmp_path_factory.mktemp(f"hostile-{tier}")
    harness_dir = root / "harness"
    harness_dir.mkdir()
    (harness_dir / "results.jsonl").write_text("precious\n")
    for path in (root, harness_dir):  # world-writable: only the sandbox, not file permissions, protects them
        path.chmod(0o777)
    (harness_dir / "results.jsonl").chmod(0o666)
    outside_file = str(root / f"pwned-{tier}")
    os.environ["SLMLAB_TEST_SECRET"] = secret = f"secret-{os.getpid()}-{tier}"
    listener, unix_listener = _Listener(), _Listener(str(root / "host-service.sock"))
    fill = {"outside_file": outside_file, "harness_dir": str(harness_dir), "port": listener.port,
            "unix_socket": str(root / "host-service.sock"),
            "harness_pid": os.getpid(), "checkout": str(Path(__file__).resolve().parents[1])}  # fmt: skip
    # An attack the tier says it does not contain here is not launched: on `subprocess` as an
    # ordinary user, kill_harness_by_pid would kill this very test run.
    gaps = detect()[tier].gaps
    contained = [h for h in HOSTILE if not (h.gap and h.gap in gaps)]
    programs = [Program(h.code.format(**fill), h.tests, entry_point="f") for h in contained]
    executor = Executor(tier, Limits(timeout_s=2.0, memory_mb=1024, park_after_s=0.3), workers=2)
    try:
        started = time.monotonic()
        outcomes = executor.run(programs)
        elapsed = time.monotonic() - started
        after = executor.run([Program(GOOD, "assert f(2) == 3\n")])[0]  # the harness still works
        time.sleep(0.3)
        workers = {h.process.pid for h in executor._workers if h is not None}
        leftovers = _descendants_of(workers) - {pid for w in workers for pid in zygote.zygotes_of(w)}
        yield {"tier": detect()[tier], "outcomes": dict(zip([h.name for h in contained], outcomes, strict=True)),
               "after": after, "leftovers": leftovers, "outside_file": outside_file, "harness_dir": harness_dir,
               "listener": listener, "unix_listener": unix_listener, "secret": secret, "elapsed": elapsed}  # fmt: skip
    finally:
        executor.close()
        listener.close()
        unix_listener.close()


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.name for h in HOSTILE])
def test_hostile_program_is_contained_and_classified(attack, hostile):
    tier = attack["tier"]
    if hostile.gap and hostile.gap in tier.gaps:
        pytest.skip(f"{tier.name} tier does not contain {hostile.gap} here (reported in its gaps)")
    outcome = attack["outcomes"][hostile.name]
    assert outcome.status.value in hostile.expected, (outcome.status, outcome.detail, outcome.stderr[-300:])
    assert outcome.sandbox == tier.label
    if hostile.name == "write_outside_workdir":
        assert not os.path.exists(attack["outside_file"])
    if hostile.name == "delete_harness_files":
        assert (attack["harness_dir"] / "results.jsonl").read_text() == "precious\n"
    if hostile.name == "socket_to_loopback":
        assert attack["listener"].received == []
    if hostile.name == "memory_spread_over_processes" and outcome.passed:
        assert int(outcome.stdout.split()[-1]) * 300 <= 1024, outcome.stdout
    if hostile.name == "write_module_into_checkout":
        assert not (Path(__file__).resolve().parents[1] / "bisect.py").exists()
    if hostile.name == "read_the_checkout":
        assert "slmlab" not in outcome.stdout
    if hostile.name == "fill_scratch_space":  # stopped inside its own space (128 MB)
        assert int(outcome.stdout.split()[-1]) <= 128, outcome.stdout
    if hostile.name == "unix_socket_to_host_service":
        assert attack["unix_listener"].received == []
    if hostile.name == "read_parent_environment":
        assert attack["secret"] not in outcome.stdout
    if hostile.name in ("infinite_loop", "ignore_sigterm_and_sigalrm"):
        # 2 s of its own time; waiting for a CPU others held does not count, up to 3 limits of wall clock
        assert outcome.duration_s < 3 * 2.0 + 1.5
    if hostile.name == "recursion_crashes_interpreter":
        assert outcome.error_type in ("SIGSEGV", "RecursionError", "MemoryError")


def test_harness_survives_and_leaves_no_process(attack):
    assert attack["after"].passed, attack["after"]
    assert attack["leftovers"] == set()
    # 21 programs with several 2 s timeouts: hung programs are parked, so the suite takes seconds.
    assert attack["elapsed"] < 20


@pytest.mark.skipif(os.geteuid() != 0, reason="as an ordinary user the suite above already runs unprivileged")
def test_hostile_suite_as_an_ordinary_user(tmp_path):
    """Most users are not root: run the whole suite and the forgeries, every tier, as uid 65534 in a
    child process."""
    repo = Path(__file__).resolve().parents[1]
    script = f"""
import os, sys
from slmlab.execute.exposure import expose
from slmlab.execute.harden import harness_paths, python_read_paths
expose(python_read_paths() + harness_paths())  # a Python under /root must be reachable by the ordinary user
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
os.chdir({str(repo)!r})
os.execv(sys.executable, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/test_hostile.py", "tests/test_verdicts.py", "-k", "not ordinary_user and not cached"])
"""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(tmp_path), "HOME": str(tmp_path)}
    tmp_path.chmod(0o777)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          cwd=repo)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
