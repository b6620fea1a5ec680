"""A warm worker process: supervises one sandboxed child per sample.

The executor starts a few of these (one per core) with a clean environment and talks to each over a
socket. The worker starts each sample through its Launcher (launch.py: a fork from its zygote in the
`process` tier, a fresh interpreter in `bwrap` and `subprocess`) and owns the child's limits: the
wall-clock deadline, moving a long-running child aside ("parking", see Limits.park) so the next
sample can start, killing the whole process tree, reaping every process (it is a child subreaper, so
orphans come back to it) and handing what it saw to classify.py, which decides the outcome.

Messages from the executor: ("run", job_id, payload, limits) and ("stop",).
Messages to the executor: ("done", job_id, outcome), ("parked", job_id).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
from dataclasses import dataclass

from slmlab.execute.channel import Channel
from slmlab.execute.classify import Seen, Usage, apply_record, classify
from slmlab.execute.harden import become_subreaper, reset_signals
from slmlab.execute.launch import Launcher, Slot, WorkerConfig, compiled_definitions
from slmlab.execute.limits import Limits
from slmlab.execute.outcome import Outcome, Status
from slmlab.execute.runner import children_of

# Modules the benchmarks' programs import most; importing them once here makes every fork cheaper.
# hashlib is left out: it maps OpenSSL (4 MB) into every fork for the few programs that use it;
# random (and statistics, which imports it) too: it reseeds itself in every forked child, which
# costs every sample more than importing it costs the few that use it (zygote.needs_fork_hooks).
_WARM_IMPORTS = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "string",
                 "bisect", "copy", "operator")  # fmt: skip


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


class Worker:
    def __init__(self, conn: Channel, config: WorkerConfig):
        self.conn = conn
        self.config = config
        self.uids = list(config.uids or [])
        self.free_slots: list[Slot] = []
        self.slot_count = 0
        self.live: dict[int, Live] = {}
        self.queue: list[tuple[int, dict, Limits]] = []
        self.stopping = False
        # Made last: the process tier's zygote is forked from the worker as it now is, and every
        # child starts from that memory.
        self.launcher = Launcher(config, close_in_zygote=(conn.fileno(),))

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
        self.launcher.close()
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
        code, record, compile_warnings = compiled_definitions(payload["definitions"])
        # The fresh interpreters of the bwrap and subprocess tiers compile again (a code object does not
        # travel in their JSON payload); next to starting an interpreter that costs nothing.
        if record is not None:  # a syntax error, found before anything runs: no sandbox needed
            outcome = Outcome(Status.HARNESS_ERROR, duration_s=round(time.monotonic() - started, 4),
                              stderr=compile_warnings[: limits.keep_output_bytes], sandbox=self.config.label)  # fmt: skip
            self._send(("done", job_id, apply_record(outcome, record).to_dict()))
            return
        nonce = os.urandom(16).hex()
        payload = dict(payload, nonce=nonce)
        slot = self._take_slot()
        try:
            pid, proc = self.launcher.start(payload, limits, slot, code, compile_warnings)
        except BaseException:
            self._release_slot(slot)
            raise
        now = time.monotonic()
        startup = 0.0 if proc is None else 0.25  # a fresh interpreter needs time to start
        park_at = now + startup + limits.park_after_s if limits.park != "off" else None
        self.live[pid] = Live(job_id, payload, limits, pid, slot, now, now + startup + limits.timeout_s,
                              park_at, proc=proc, nonce=nonce, pidfd=os.pidfd_open(pid))  # fmt: skip

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
        zygote = self.launcher.zygote
        for _ in range(50):
            orphans = [pid for pid in children_of(os.getpid())
                       if pid not in self.live and (zygote is None or pid != zygote.pid)]  # fmt: skip
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

    def _classify(self, live: Live, status: int, usage) -> Outcome:
        slot, limits, keep = live.slot, live.limits, live.limits.keep_output_bytes
        # A write that crosses RLIMIT_FSIZE is cut short without a signal; the next one gets SIGXFSZ.
        capped = any(slot.size(which) >= limits.output_bytes for which in (Slot.OUT, Slot.ERR))
        seen = Seen(timed_out=live.killed_for == "timeout", output_capped=capped, fresh_interpreter=live.proc is not None,
                    bwrap=self.config.tier == "bwrap", stderr=slot.read(Slot.ERR, keep).decode("utf-8", "replace"))  # fmt: skip
        outcome = classify(slot.read(Slot.RES, 1 << 16), live.nonce, status,
                           Usage(usage.ru_utime + usage.ru_stime, usage.ru_maxrss), limits, seen)  # fmt: skip
        outcome.duration_s = round(time.monotonic() - live.started, 4)
        outcome.stdout = slot.read(Slot.OUT, keep).decode("utf-8", "replace")
        outcome.sandbox, outcome.parked = self.config.label, live.parked
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
