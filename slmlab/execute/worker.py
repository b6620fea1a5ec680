"""A warm worker process: starts one sandboxed child per sample and watches it.

The executor starts a few of these (one per core) with a clean environment and talks to each over a
socket. A worker imports little, so forking it is cheap (`process` tier); for the `bwrap` and
`subprocess` tiers it starts a fresh interpreter per sample instead. Either way the worker owns the
child's limits: the wall-clock deadline, moving a long-running child to low priority ("parking") so
the next sample can start, killing the whole process tree, reaping every process (it is a child
subreaper, so orphans come back to it) and classifying how the child ended.

Messages from the executor: ("run", job_id, payload, limits) and ("stop",).
Messages to the executor: ("done", job_id, outcome), ("parked", job_id).
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

from slmlab.execute.exposure import expose
from slmlab.execute.harden import Hardening, become_subreaper, build_seccomp_filter, harden, reset_signals
from slmlab.execute.limits import Limits
from slmlab.execute.outcome import Outcome, Status
from slmlab.execute.runner import RESULT_FD, STARTED_MARKER, execute_and_report
from slmlab.execute.tiers import bwrap_arguments

# Modules the benchmarks' programs import most; importing them once here makes every fork cheaper.
_WARM_IMPORTS = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "string",
                 "hashlib", "random", "bisect", "statistics", "fractions", "decimal", "copy", "operator")  # fmt: skip
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL}


@dataclass
class WorkerConfig:
    tier: str  # "process" | "bwrap" | "subprocess"
    label: str  # what every outcome records as its sandbox
    base_dir: str
    hardening: dict  # Hardening fields except uid
    uids: list[int] | None  # per-sample uids (root only); None: keep ours
    max_parked: int = 16
    bootstrap: str = ""  # python -c code that starts the runner in a fresh interpreter


@dataclass
class Live:
    job_id: int
    payload: dict
    limits: Limits
    pid: int
    uid: int | None
    sample_dir: str
    started: float
    deadline: float
    park_at: float | None
    parked: bool = False
    killed_for: str | None = None
    proc: subprocess.Popen | None = None
    nonce: str = ""


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo and len(found) < 10_000:
        kids = _children(todo.pop())
        found.extend(kids)
        todo.extend(kids)
    return found


def _kill_tree(pid: int) -> None:
    for target in [pid, *_descendants(pid)]:
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _read_head(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return b""


def _remove_tree(path: str) -> None:
    def make_writable(func, target, _exc):  # a program may chmod its own files read-only
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)


class Worker:
    def __init__(self, conn: Connection, config: WorkerConfig):
        self.conn = conn
        self.config = config
        self.hardening = Hardening(**config.hardening)
        self.free_uids = list(config.uids or [])
        self.live: dict[int, Live] = {}
        self.queue: list[tuple[int, dict, Limits]] = []
        self.seq = 0
        self.stopping = False
        self.seccomp_filter = None
        if config.tier == "process" and self.hardening.seccomp:
            self.seccomp_filter = build_seccomp_filter(signal_scoped=self.hardening.landlock_abi >= 6)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.free_uids:  # root: let the sandbox uids reach the interpreter
            try:
                expose(self.hardening.read_paths)
            except OSError:
                pass  # the process tier still imports through /proc/self/fd (harden.reroute_sys_path)
        self.bwrap_args = bwrap_arguments(self.hardening.read_paths) if config.tier == "bwrap" else []

    # ---- main loop -------------------------------------------------------------------------
    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        while not (self.stopping and not self.live and not self.queue):
            self._start_queued()
            timeout = self._next_timer()
            readable, _, _ = select.select([self.conn, self.wake_r], [], [], timeout)
            if self.conn in readable:
                self._receive()
            if self.wake_r in readable:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            self._reap()
            self._check_timers()

    def _receive(self) -> None:
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if message[0] == "run":
                    _, job_id, payload, limits = message
                    self.queue.append((job_id, payload, Limits(**limits)))
                elif message[0] == "stop":
                    self.stopping = True
                    self.queue.clear()
        except (EOFError, OSError):  # the executor is gone: stop everything now
            for live in self.live.values():
                _kill_tree(live.pid)
            os._exit(0)

    def _active(self) -> int:
        return sum(1 for live in self.live.values() if not live.parked)

    def _start_queued(self) -> None:
        while self.queue and self._active() == 0:
            job_id, payload, limits = self.queue.pop(0)
            try:
                self._launch(job_id, payload, limits)
            except Exception as exc:  # noqa: BLE001 - anything that stops a launch is our fault
                outcome = Outcome(Status.HARNESS_ERROR, error_type=type(exc).__name__,
                                  detail=f"could not start the sandbox: {exc}", sandbox=self.config.label)  # fmt: skip
                self._send(("done", job_id, outcome.to_dict()))

    def _next_timer(self) -> float | None:
        if not self.live:
            return None
        now = time.monotonic()
        times = [live.deadline for live in self.live.values()]
        times += [live.park_at for live in self.live.values() if live.park_at and not live.parked]
        return max(0.0, min(times) - now)

    def _send(self, message) -> None:
        try:
            self.conn.send(message)
        except OSError:
            os._exit(0)

    # ---- launching ---------------------------------------------------------------------------
    def _launch(self, job_id: int, payload: dict, limits: Limits) -> None:
        self.seq += 1
        nonce = secrets.token_hex(16)
        payload = dict(payload, nonce=nonce)
        sample_dir = os.path.join(self.config.base_dir, f"s{self.seq}")
        workdir = os.path.join(sample_dir, "work")
        os.mkdir(sample_dir, 0o711)
        os.mkdir(workdir, 0o700)
        uid = self.free_uids.pop(0) if self.free_uids else None
        if uid is not None:
            os.chown(workdir, uid, uid)
        streams = [os.open(os.path.join(sample_dir, name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
                   for name in ("out", "err", "res")]  # fmt: skip
        try:
            if self.config.tier == "process":
                pid, proc = self._fork(payload, limits, workdir, uid, streams), None
            else:
                proc = self._spawn(payload, limits, workdir, uid, streams, sample_dir)
                pid = proc.pid
        except BaseException:
            if uid is not None:
                self.free_uids.append(uid)
            raise
        finally:
            for fd in streams:
                os.close(fd)
        now = time.monotonic()
        startup = 0.0 if proc is None else 0.25  # a fresh interpreter needs time to start
        park_at = now + startup + limits.park_after_s if limits.park_after_s is not None else None
        self.live[pid] = Live(job_id, payload, limits, pid, uid, sample_dir, now, now + startup + limits.timeout_s,
                              park_at, proc=proc, nonce=nonce)  # fmt: skip

    def _hardening_for(self, uid: int | None) -> Hardening:
        return Hardening(**{**self.config.hardening, "uid": uid})

    def _fork(self, payload: dict, limits: Limits, workdir: str, uid: int | None, streams: list[int]) -> int:
        pid = os.fork()
        if pid:
            return pid
        # The child: from here on only os._exit leaves.
        try:
            os.setsid()
            become_subreaper()
            reset_signals()
            null = os.open(os.devnull, os.O_RDONLY)
            for target, fd in ((0, null), (1, streams[0]), (2, streams[1]), (RESULT_FD, streams[2])):
                os.dup2(fd, target)
            os.closerange(RESULT_FD + 1, 65536)
            sys.stdin = open(0, closefd=False)
            try:
                harden(self._hardening_for(uid), limits, workdir, self.seccomp_filter)
            except BaseException as exc:
                record = {
                    "status": "harness_error",
                    "error_type": type(exc).__name__,
                    "detail": f"hardening failed: {exc}",
                }
                os.write(RESULT_FD, json.dumps(record).encode())
                os._exit(0)
            execute_and_report(payload)
        finally:
            os._exit(0)

    def _spawn(self, payload, limits, workdir, uid, streams, sample_dir) -> subprocess.Popen:
        hardening = self._hardening_for(uid)
        run_payload = dict(payload, workdir=workdir, limits=limits.to_dict(), result_fd=streams[2])
        command = [sys.executable, "-I", "-S", "-B", "-c", self.config.bootstrap]
        if self.config.tier == "bwrap":
            # Inside the namespaces the runner applies Landlock and seccomp itself, as in `process`.
            run_payload["harden"] = {**hardening.__dict__, "uid": None}
            command = ["bwrap", *self.bwrap_args, "--bind", workdir, workdir, "--chdir", workdir,
                       "--", *command]  # fmt: skip
        else:
            run_payload["harden"] = {**hardening.__dict__, "uid": None, "landlock_abi": 0, "seccomp": False}
        payload_path = os.path.join(sample_dir, "payload")
        with open(payload_path, "w", encoding="utf-8") as f:
            json.dump(run_payload, f)

        def limit_child() -> None:  # runs between fork and exec: rlimits apply to bwrap and python
            from slmlab.execute.harden import set_rlimits

            set_rlimits(limits, hardening.nproc_base)

        with open(payload_path, "rb") as stdin:
            return subprocess.Popen(
                command, stdin=stdin, stdout=streams[0], stderr=streams[1], pass_fds=(streams[2],),
                cwd=workdir, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir},
                start_new_session=True, preexec_fn=limit_child,
                user=uid, group=uid, extra_groups=[] if uid is not None else None,
            )  # fmt: skip

    # ---- watching ----------------------------------------------------------------------------
    def _check_timers(self) -> None:
        now = time.monotonic()
        for live in list(self.live.values()):
            if now >= live.deadline and live.killed_for is None:
                live.killed_for = "timeout"
                _kill_tree(live.pid)
            elif live.park_at and not live.parked and now >= live.park_at:
                parked = sum(1 for other in self.live.values() if other.parked)
                if parked < self.config.max_parked:
                    live.parked = True
                    for target in [live.pid, *_descendants(live.pid)]:
                        try:
                            os.setpriority(os.PRIO_PROCESS, target, 19)
                        except OSError:
                            pass
                    self._send(("parked", live.job_id))

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            live = self.live.pop(pid, None)
            if live is not None:
                self._finish(live, status, usage)

    def _sweep_orphans(self) -> None:
        """Kill processes re-parented to us whose sample already ended (daemons, grandchildren)."""
        for _ in range(50):
            orphans = [pid for pid in _children(os.getpid()) if pid not in self.live]
            if not orphans:
                return
            for pid in orphans:
                _kill_tree(pid)
            for pid in orphans:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass

    def _finish(self, live: Live, status: int, usage) -> None:
        _kill_tree(live.pid)
        self._sweep_orphans()
        if live.proc is not None:
            live.proc.returncode = status  # we reaped it ourselves; keep Popen from waiting again
        outcome = self._classify(live, status, usage)
        self._send(("done", live.job_id, outcome.to_dict()))
        _remove_tree(live.sample_dir)
        if live.uid is not None:
            self.free_uids.append(live.uid)

    @staticmethod
    def _output_capped(live: Live) -> bool:
        """A write that crosses RLIMIT_FSIZE is cut short without a signal; the next one gets SIGXFSZ."""
        for name in ("out", "err"):
            try:
                if os.path.getsize(os.path.join(live.sample_dir, name)) >= live.limits.output_bytes:
                    return True
            except OSError:
                pass
        return False

    def _classify(self, live: Live, status: int, usage) -> Outcome:
        limits = live.limits
        raw = _read_head(os.path.join(live.sample_dir, "res"), 1 << 16)
        started = raw.startswith(STARTED_MARKER)
        record, forged = None, 0
        for line in raw[len(STARTED_MARKER) :].splitlines() if started else raw.splitlines():
            try:
                candidate = json.loads(line)
            except ValueError:
                candidate = None
            if isinstance(candidate, dict) and candidate.get("nonce") == live.nonce:
                record = candidate
            elif line.strip():
                forged += 1
        keep = limits.keep_output_bytes
        outcome = Outcome(
            Status.HARNESS_ERROR,
            duration_s=round(time.monotonic() - live.started, 4),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 4),
            stdout=_read_head(os.path.join(live.sample_dir, "out"), keep).decode("utf-8", "replace"),
            stderr=_read_head(os.path.join(live.sample_dir, "err"), keep).decode("utf-8", "replace"),
            sandbox=self.config.label,
            parked=live.parked,
        )
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.waitstatus_to_exitcode(status)
        if self.config.tier == "bwrap" and code > 128 and code - 128 in signal.valid_signals():
            signum = code - 128  # bwrap reports its child's fatal signal as exit status 128 + N
        if forged:
            outcome.extra["forged_records"] = forged
        if live.killed_for == "timeout" and (started or live.proc is None):
            outcome.status = Status.TIMEOUT
            outcome.detail = f"still running after {limits.timeout_s:g} s (wall clock); killed"
        elif forged and record is None and started:
            outcome.status = Status.SANDBOX_VIOLATION
            outcome.detail = "the program wrote a forged result record and did not finish its tests"
        elif record is not None and not self._output_capped(live):
            outcome.status = Status(record["status"])
            for key in ("error_type", "detail", "line", "phase"):
                if record.get(key) is not None:
                    setattr(outcome, key, record[key])
            if record.get("leftover_processes"):
                outcome.extra["tests_status"] = outcome.status.value
                outcome.status = Status.SANDBOX_VIOLATION
                outcome.detail = (
                    f"left {record['leftover_processes']} process(es) running after it finished; killed"
                )
        elif signum == signal.SIGXFSZ or self._output_capped(live):
            outcome.status = Status.OUTPUT_LIMIT
            outcome.detail = f"wrote more than {limits.output_bytes} bytes to one stream or file; killed"
        elif signum == signal.SIGXCPU or (signum == signal.SIGKILL and live.killed_for is None
                                          and usage.ru_utime + usage.ru_stime >= limits.cpu_s):  # fmt: skip
            outcome.status = Status.TIMEOUT
            outcome.detail = f"used more than {limits.cpu_s} s of CPU time; killed"
        elif signum == signal.SIGSYS:
            outcome.status = Status.SANDBOX_VIOLATION
            outcome.detail = "made a system call the sandbox forbids; killed"
        elif not started:
            outcome.status = Status.HARNESS_ERROR
            outcome.detail = (
                "the sandbox did not start: " + (outcome.stderr.strip().splitlines() or ["no message"])[-1]
            )
        elif signum is not None:
            name = signal.Signals(signum).name
            outcome.error_type = name
            if signum == signal.SIGKILL and usage.ru_maxrss * 1024 >= 0.8 * limits.memory_mb * 1024 * 1024:
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
            outcome.detail = (
                f"the process exited (code {os.waitstatus_to_exitcode(status)}) before the tests completed"
            )
        return outcome


def main() -> None:
    """Entry point: `python -c ... main(fd)` started by the executor with the socket's descriptor."""
    fd = int(sys.argv[1])
    conn = Connection(fd)
    config = WorkerConfig(**conn.recv())
    for name in _WARM_IMPORTS:
        __import__(name)
    become_subreaper()
    Worker(conn, config).serve()
    os._exit(0)
