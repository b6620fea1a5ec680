"""A warm worker process: starts one sandboxed child per sample and watches it.

The executor starts a few of these (one per core) with a clean environment and talks to each over a
socket. In the `process` tier the worker's zygote (zygote.py), a copy of the warm worker, forks one
child per sample; for the `bwrap` and `subprocess` tiers the worker starts a fresh interpreter per
sample instead. Either way the worker owns the child's limits: the wall-clock deadline, moving a
long-running child aside ("parking", see Limits.park) so the next sample can start, killing the
whole process tree, reaping every process (it is a child subreaper, so orphans come back to it) and
classifying how the child ended.

Messages from the executor: ("run", job_id, payload, limits) and ("stop",).
Messages to the executor: ("done", job_id, outcome), ("parked", job_id).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import marshal
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass

from slmlab.execute import zygote
from slmlab.execute.channel import Channel
from slmlab.execute.exposure import expose, private_tmpfs
from slmlab.execute.harden import (
    Hardening,
    RLimits,
    apply_once,
    apply_rlimits,
    become_subreaper,
    child_rlimits,
    fast_spawn_config,
    harden,
    prepare,
    reset_signals,
    rlimit_settings,
    settle,
)
from slmlab.execute.limits import Limits
from slmlab.execute.outcome import Outcome, Status
from slmlab.execute.runner import (
    RESULT_FD,
    STARTED_MARKER,
    children_of,
    compile_program,
    compile_tests,
    execute_and_report,
)

# Modules the benchmarks' programs import most; importing them once here makes every fork cheaper.
# hashlib is left out: it maps OpenSSL (4 MB) into every fork for the few programs that use it;
# random (and statistics, which imports it) too: it reseeds itself in every forked child, which
# costs every sample more than importing it costs the few that use it (zygote.needs_fork_hooks).
_WARM_IMPORTS = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "string",
                 "bisect", "copy", "operator")  # fmt: skip
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL}


@dataclass
class WorkerConfig:
    tier: str  # "process" | "bwrap" | "subprocess"
    label: str  # what every outcome records as its sandbox
    base_dir: str
    hardening: dict  # Hardening fields except uid
    uids: list[int] | None  # per-sample uids (root only); None: keep ours
    max_parked: int = 16
    limits: dict | None = None  # the executor's default limits, applied once where they can be
    seccomp_bpf: str = ""  # compiled by the executor (hex), so workers need not import libseccomp
    bootstrap: str = ""  # python -c code that starts the runner in a fresh interpreter
    fast_spawn: bool = True  # process tier: fork and harden in C (zygote.hardened_spawn_enabled)


@dataclass
class Live:
    job_id: int
    payload: dict
    limits: Limits
    pid: int
    slot: Slot
    started: float
    deadline: float
    park_at: float | None
    parked: bool = False
    killed_for: str | None = None
    proc: object | None = None  # a subprocess.Popen for the tiers that start an interpreter
    nonce: str = ""
    pidfd: int = -1  # readable once the process has ended


class Slot:
    """A reusable sample directory: a work directory owned by the slot's uid, and the stdout, stderr
    and result files, kept open so that starting a sample only truncates them (creating and removing
    files per sample cost more than the sandbox itself)."""

    OUT, ERR, RES = 0, 1, 2

    def __init__(self, path: str, uid: int | None):
        self.path, self.uid = path, uid
        self.workdir = os.path.join(path, "work")
        os.mkdir(path, 0o711)
        os.mkdir(self.workdir, 0o700)
        if uid is not None:
            os.chown(self.workdir, uid, uid)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        self.paths = [os.path.join(path, name) for name in ("out", "err", "res")]
        self.fds = [os.open(file, flags, 0o600) for file in self.paths]

    def read(self, which: int, limit: int) -> bytes:
        return os.pread(self.fds[which], limit, 0)

    def size(self, which: int) -> int:
        return os.fstat(self.fds[which]).st_size

    def reset(self) -> None:
        """Empty the files and the work directory for the next sample (its processes are all dead)."""
        for fd in self.fds:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        os.chmod(self.workdir, 0o700)  # the program may have locked its own directory
        with os.scandir(self.workdir) as entries:
            leftovers = [entry.path for entry in entries]
        for path in leftovers:
            if os.path.isdir(path) and not os.path.islink(path):
                _remove_tree(path)
            else:
                os.unlink(path)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        _remove_tree(self.path)


_SCRATCH_MB = 512  # per worker, for all its samples' files (output is also capped per file)


@functools.lru_cache(maxsize=256)  # sample files repeat completions: the same answer, sampled again
def _compiled_definitions(definitions: str) -> tuple[bytes | None, dict | None, str]:
    """(marshalled code or None, the syntax_error record or None, compile-time warnings as text).
    The warnings (SyntaxWarning) belong in the sample's stderr, where compiling in the sandbox would
    have put them, not in ours."""
    with warnings.catch_warnings(record=True) as caught:
        code, record = compile_program(definitions)
    text = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return (None if code is None else marshal.dumps(code)), record, text


# Each task's tests, compiled once per worker: sample files come task by task, but a shuffled file
# (or a long run) brings a task back after hundreds of others, so the cache holds a whole benchmark.
_compiled_tests = functools.lru_cache(maxsize=1024)(compile_tests)
_IDLE_SHARE = 0.1  # a program that used less CPU than this share of its time so far is waiting, not working
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its waited-for children so far (utime + stime + cutime + cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo and len(found) < 10_000:
        kids = children_of(todo.pop())
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


def _close_fds_except(lowest: int, keep: set[int]) -> None:
    start = lowest
    for fd in sorted(k for k in keep if k >= lowest):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 65536)


def _remove_tree(path: str) -> None:
    def make_writable(func, target, _exc):  # a program may chmod its own files read-only
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    import shutil  # here, not at the top: it maps zlib, bz2 and lzma (30 memory areas) into every fork

    shutil.rmtree(path, onerror=make_writable)


class Worker:
    def __init__(self, conn: Channel, config: WorkerConfig):
        self.conn = conn
        self.config = config
        self.hardening = Hardening(**config.hardening)
        self.uids = list(config.uids or [])
        self.free_slots: list[Slot] = []
        self.slot_count = 0
        self.live: dict[int, Live] = {}
        self.queue: list[tuple[int, dict, Limits]] = []
        self.stopping = False
        # One per uid a slot can have, made here: the children only look theirs up.
        self.hardenings = {uid: Hardening(**{**config.hardening, "uid": uid}) for uid in self.uids or [None]}
        bpf = bytes.fromhex(config.seccomp_bpf) if config.seccomp_bpf else None
        self.prepared = prepare(self.hardening, bpf) if config.tier == "process" else None
        self.rlimits: dict[Limits, RLimits] = {}
        if self.uids:  # root: let the sandbox uids reach the interpreter, keep sample files in memory
            try:
                expose(self.hardening.read_paths)
                if self.prepared is not None:
                    self.prepared.reroute = False
            except OSError:
                pass  # the process tier still imports through /proc/self/fd (harden.reroute_sys_path)
            with contextlib.suppress(OSError):  # else they stay on disk, slower but as safe
                private_tmpfs(config.base_dir, _SCRATCH_MB)
        if self.prepared is not None and config.limits:
            apply_once(self.prepared, self.hardening, Limits(**config.limits))
        # Forked last, from the worker as it now is: every child starts from this memory.
        self.zygote: zygote.Zygote | None = None
        if config.tier == "process":
            self._start_zygote()
        self.bwrap_args = []
        if config.tier == "bwrap":
            # Imported here: the process tier's forks stay smaller without it.
            from slmlab.execute.tiers import bwrap_arguments

            self.bwrap_args = bwrap_arguments(self.hardening.read_paths)

    # ---- main loop -------------------------------------------------------------------------
    def serve(self) -> None:
        # Children are watched through pidfds, not SIGCHLD: with no handler and no wake-up pipe to
        # undo, a forked child starts with nothing to reset.
        from select import select  # imported after the zygote's fork: one library fewer in every child

        while not (self.stopping and not self.live and not self.queue):
            self._start_queued()
            timeout = self._next_timer()
            watched = [self.conn, *(live.pidfd for live in self.live.values())]
            readable, _, _ = select(watched, [], [], timeout)
            if self.conn in readable:
                self._receive()
            self._reap()
            self._check_timers()

    def _receive(self) -> None:
        try:
            messages = self.conn.receive()
        except (EOFError, OSError):  # the executor is gone: stop everything now
            self.exit()
        self.handle(messages)

    def exit(self) -> None:
        """End the worker, leaving no process behind: samples still running are killed, and they and
        the zygote are reaped here (an orphaned zombie would wait for init, which may never reap)."""
        for live in self.live.values():
            _kill_tree(live.pid)
        self.live.clear()
        self._sweep_orphans()
        if self.zygote is not None:
            self.zygote.close()
        os._exit(0)

    def handle(self, messages: list) -> None:
        for message in messages:
            if message[0] == "run":
                _, job_id, payload, limits = message
                self.queue.append((job_id, payload, Limits(**limits)))
            elif message[0] == "stop":
                self.stopping = True
                self.queue.clear()

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
            self.exit()

    # ---- launching ---------------------------------------------------------------------------
    def _take_slot(self) -> Slot:
        if self.free_slots:
            return self.free_slots.pop()
        uid = None
        if self.uids:  # a uid no other slot holds, so samples running at once cannot touch each other
            held = {slot.uid for slot in self.free_slots} | {live.slot.uid for live in self.live.values()}
            uid = next((u for u in self.uids if u not in held), self.uids[0])
        self.slot_count += 1
        return Slot(os.path.join(self.config.base_dir, f"slot{self.slot_count}"), uid)

    def _release_slot(self, slot: Slot) -> None:
        try:
            slot.reset()
            self.free_slots.append(slot)
        except OSError:  # a directory the program made unremovable: give the slot up
            with contextlib.suppress(OSError):
                slot.close()

    def _launch(self, job_id: int, payload: dict, limits: Limits) -> None:
        started = time.monotonic()
        code, record, compile_warnings = _compiled_definitions(payload["definitions"])
        # The fresh interpreters of the bwrap and subprocess tiers compile again (a code object does not
        # travel in their JSON payload); next to starting an interpreter that costs nothing.
        if record is not None:  # a syntax error, found before anything runs: no sandbox needed
            outcome = Outcome(Status.HARNESS_ERROR, duration_s=round(time.monotonic() - started, 4),
                              stderr=compile_warnings[: limits.keep_output_bytes], sandbox=self.config.label)  # fmt: skip
            self._send(("done", job_id, _with_record(outcome, record).to_dict()))
            return
        nonce = os.urandom(16).hex()
        payload = dict(payload, nonce=nonce)
        slot = self._take_slot()
        try:
            if self.config.tier == "process":
                pid, proc = self._fork(payload, limits, slot, code, compile_warnings), None
            else:
                proc = self._spawn(payload, limits, slot)
                pid = proc.pid
        except BaseException:
            self._release_slot(slot)
            raise
        now = time.monotonic()
        startup = 0.0 if proc is None else 0.25  # a fresh interpreter needs time to start
        park_at = now + startup + limits.park_after_s if limits.park != "off" else None
        self.live[pid] = Live(job_id, payload, limits, pid, slot, now, now + startup + limits.timeout_s,
                              park_at, proc=proc, nonce=nonce, pidfd=os.pidfd_open(pid))  # fmt: skip

    def _fork(self, payload: dict, limits: Limits, slot: Slot, code: bytes, compile_warnings: str) -> int:
        """code: the program's definitions, compiled and marshalled (_compiled_definitions)."""
        # Everything the child needs, ready to use: each Python function a child runs, and each object
        # it touches, costs it page copies (copy-on-write), so the work is done here where it can be.
        payload = dict(payload, definitions="", definitions_code=code, compile_warnings=compile_warnings)
        tests_code = _compiled_tests(payload["tests"])
        if tests_code is not None:
            payload.update(tests_code=tests_code, tests="")
        # marshal: the child decodes it in one C call, no Python frames
        rlimits = self._child_rlimits(limits)
        if self.zygote is not None and self.zygote.hardened:  # the C zygote makes harden's system calls
            child = marshal.dumps({"payload": payload, "workdir": slot.workdir, "uid": slot.uid})
            request = zygote.hardened_request(slot.paths, slot.workdir, slot.uid, rlimits, child)
        else:
            request = marshal.dumps({"payload": payload, "rlimits": rlimits, "files": slot.paths,
                                     "workdir": slot.workdir, "uid": slot.uid})  # fmt: skip
        if self.zygote is not None:
            try:
                return self.zygote.spawn(request)
            except (OSError, EOFError):  # the zygote died: start another for the next sample
                self.zygote.close()
                self.zygote = None
                self._start_zygote()
                raise
        pid = os.fork()
        if pid == 0:
            self._run_child(request)
        return pid

    def _child_rlimits(self, limits: Limits) -> RLimits:
        if limits not in self.rlimits:  # a run has one Limits, or a few (per-task timeouts)
            self.rlimits[limits] = child_rlimits(self.prepared, self.hardening, limits)
        return self.rlimits[limits]

    def _start_zygote(self) -> None:
        if not zygote.supported():
            return
        config = fast_spawn_config(self.hardening, self.prepared, zygote.needs_fork_hooks())
        hardened = self.config.fast_spawn and zygote.configure_hardened_spawn(config)
        self.zygote = zygote.Zygote(self._run_child, (self.conn.fileno(),),
                                    self._run_hardened_child if hardened else None)  # fmt: skip

    def _run_child(self, request: bytes) -> None:
        """The sandboxed child, forked by the zygote (or the worker): harden, run, report, exit."""
        try:
            request = marshal.loads(request)
            payload = request["payload"]
            os.setsid()
            become_subreaper()
            # Signals were reset once in the worker, whose stdin is /dev/null already.
            for target, path in zip((1, 2, RESULT_FD), request["files"], strict=True):
                fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
                os.dup2(fd, target)
                os.close(fd)
            try:
                harden(self.hardenings[request["uid"]], request["rlimits"], request["workdir"], self.prepared)
            except BaseException as exc:
                _hardening_failed(payload, exc)
            _close_fds_except(RESULT_FD + 1, set(self.prepared.read_fds.values()))  # sys.path may use those
            execute_and_report(payload)
        finally:
            os._exit(0)

    def _run_hardened_child(self, request: bytes, failure: OSError | None) -> None:
        """A child the zygote forked and hardened in C (_fastspawn): settle the interpreter, run, report.
        failure: the hardening step that failed, if one did."""
        request = marshal.loads(request)
        payload = request["payload"]
        try:
            if failure is not None:
                raise failure
            settle(self.hardenings[request["uid"]], request["workdir"], self.prepared)
        except BaseException as exc:
            _hardening_failed(payload, exc)
        execute_and_report(payload)

    def _spawn(self, payload: dict, limits: Limits, slot: Slot):
        import subprocess  # only these tiers need it; it (and threading) would slow every fork

        hardening, workdir, uid = self.hardenings[slot.uid], slot.workdir, slot.uid
        run_payload = dict(payload, workdir=workdir, limits=limits.to_dict(), result_fd=slot.fds[Slot.RES])
        command = [sys.executable, "-I", "-S", "-B", "-c", self.config.bootstrap]
        if self.config.tier == "bwrap":
            # Inside the namespaces the runner applies Landlock and seccomp itself, as in `process`.
            run_payload["harden"] = {**hardening.__dict__, "uid": None}
            command = ["bwrap", *self.bwrap_args, "--bind", workdir, workdir, "--chdir", workdir,
                       "--", *command]  # fmt: skip
        else:
            run_payload["harden"] = {**hardening.__dict__, "uid": None, "landlock_abi": 0, "seccomp": False}
        payload_path = os.path.join(slot.path, "payload")
        with open(payload_path, "w", encoding="utf-8") as f:
            json.dump(run_payload, f)

        rlimits = rlimit_settings(limits, None if self.config.tier == "bwrap" else hardening.nproc_base)

        def limit_child() -> None:  # runs between fork and exec: rlimits apply to bwrap and python
            apply_rlimits(rlimits)

        with open(payload_path, "rb") as stdin:
            return subprocess.Popen(
                command, stdin=stdin, stdout=slot.fds[Slot.OUT], stderr=slot.fds[Slot.ERR], pass_fds=(slot.fds[Slot.RES],),
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
                busy = live.limits.park == "idle" and _cpu_seconds(live.pid) > _IDLE_SHARE * (
                    now - live.started
                )
                if busy:  # check again later: it may start waiting
                    live.park_at = now + live.limits.park_after_s
                elif parked < self.config.max_parked:
                    live.parked = True
                    _lower_priority(live.pid)
                    self._send(("parked", live.job_id))

    def _reap(self) -> None:
        ended = []
        for live in list(self.live.values()):
            if os.waitid(os.P_PIDFD, live.pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                continue
            # Ended but not yet reaped: its pid and process group cannot be reused while we kill
            # what it left behind in the group, so no stranger can be hit. (A dead process has no
            # children: its orphans are ours now, and _finish sweeps them.)
            with contextlib.suppress(OSError):
                os.killpg(live.pid, signal.SIGKILL)
            _, status, usage = os.wait4(live.pid, 0)
            del self.live[live.pid]
            os.close(live.pidfd)
            ended.append((live, status, usage))
        if ended:  # the next sample starts first: classifying these then overlaps its run
            self._start_queued()
        for live, status, usage in ended:
            self._finish(live, status, usage)

    def _sweep_orphans(self) -> None:
        """Kill processes re-parented to us whose sample already ended (daemons, grandchildren)."""
        for _ in range(50):
            orphans = [pid for pid in children_of(os.getpid())
                       if pid not in self.live and (self.zygote is None or pid != self.zygote.pid)]  # fmt: skip
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
        self._sweep_orphans()  # also reaps orphans that ended on their own
        if live.proc is not None:
            live.proc.returncode = status  # we reaped it ourselves; keep Popen from waiting again
        outcome = self._classify(live, status, usage)
        self._send(("done", live.job_id, outcome.to_dict()))
        self._release_slot(live.slot)

    @staticmethod
    def _output_capped(live: Live) -> bool:
        """A write that crosses RLIMIT_FSIZE is cut short without a signal; the next one gets SIGXFSZ."""
        return any(live.slot.size(which) >= live.limits.output_bytes for which in (Slot.OUT, Slot.ERR))

    def _classify(self, live: Live, status: int, usage) -> Outcome:
        limits = live.limits
        raw = live.slot.read(Slot.RES, 1 << 16)
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
            stdout=live.slot.read(Slot.OUT, keep).decode("utf-8", "replace"),
            stderr=live.slot.read(Slot.ERR, keep).decode("utf-8", "replace"),
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
            _with_record(outcome, record)
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


def _hardening_failed(payload: dict, exc: BaseException) -> None:
    """Report a child whose hardening failed (our fault: harness_error) and end it."""
    record = {"status": "harness_error", "error_type": type(exc).__name__,
              "detail": f"hardening failed: {exc}", "nonce": payload["nonce"]}  # fmt: skip
    os.write(RESULT_FD, json.dumps(record).encode() + b"\n")
    os._exit(0)


def _with_record(outcome: Outcome, record: dict) -> Outcome:
    """The outcome with the status and details of a runner's record."""
    outcome.status = Status(record["status"])
    for key in ("error_type", "detail", "line", "phase"):
        if record.get(key) is not None:
            setattr(outcome, key, record[key])
    return outcome


def _lower_priority(pid: int) -> None:
    """Nice 19 for a parked sample. Each sample is its own session, and with the kernel's autogroup
    scheduling (the default on desktop and most server kernels) every session is a CPU group of its
    own: a process's nice value then only ranks it inside its session, and a parked infinite loop
    would still take a full share of the CPU from the samples running beside it. So the session's
    autogroup is lowered too, where the kernel has autogroups."""
    for target in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, target, 19)
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as f:
        f.write("19")


def main() -> None:
    """Entry point: `python -c ... main(fd)` started by the executor with the socket's descriptor.

    Its stdin is /dev/null, which every sample inherits as its own stdin."""
    conn = Channel(int(sys.argv[1]))
    messages = []
    while not messages:
        messages = conn.receive()
    config = WorkerConfig(**messages.pop(0))
    os.environ.pop("LD_BIND_NOW", None)  # read by the loader at start; samples get the sandbox's variables
    reset_signals()  # once here: forked children inherit the default SIGPIPE, SIGXFSZ, ...
    for name in _WARM_IMPORTS:
        __import__(name)
    # Objects that exist now are never collected again: a child's garbage collection would otherwise
    # write to every one of them and copy their pages (copy-on-write), the main cost of a fork here.
    gc.collect()
    gc.freeze()
    become_subreaper()
    worker = Worker(conn, config)
    worker.handle(messages)  # samples that arrived with the configuration
    worker.serve()
    worker.exit()
