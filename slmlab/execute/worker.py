"""A warm worker process: supervises one sandboxed child per sample.

The executor starts a few of these (one per core) with a clean environment and talks to each over a
socket. The worker starts each sample through its Launcher (launch.py: a fork from its zygote in the
`process` tier, a fresh interpreter in `bwrap` and `subprocess`) and owns the child's limits: the
wall-clock deadline, moving a long-running child aside ("parking", see Limits.park) so the next
sample can start, killing the whole process tree, reaping every process (it is a child subreaper, so
orphans come back to it) and handing what it saw to classify.py, which decides the outcome.

Messages from the executor: ("run", job_id, payload, limits) and ("stop",).
Messages to the executor: ("ready",) once its zygote is made, then ("done", job_id, outcome) and
("parked", job_id).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
from dataclasses import dataclass

from slmlab.execute import cgroups
from slmlab.execute.channel import Channel
from slmlab.execute.classify import Seen, Usage, apply_record, classify
from slmlab.execute.harden import become_subreaper, reset_signals
from slmlab.execute.launch import Launcher, Slot, WorkerConfig, compiled_definitions, slot_path
from slmlab.execute.limits import MIB, Limits
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
    expected: tuple | None = None  # a program run on cases: the answers, kept here, outside the sandbox


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


def _waited_for_cpu(pids: list[int]) -> float:
    """Seconds these processes spent ready to run but waiting for a CPU (the run_delay of
    /proc/PID/schedstat): time the machine's load took from them, not time they took."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat", "rb") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


_DEADLINE_CAP = 3.0  # a sample that keeps waiting for the CPU is still stopped after this many time limits


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
        self.ending: list[Slot] = []  # slots of samples that ended but whose leftovers are not swept yet
        self.queue: list[tuple[int, dict, Limits]] = []
        self.stopping = False
        self.cgroups = bool(self.uids) and bool(cgroups.available())  # per-sample groups, as root
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
        slots = self.free_slots + [live.slot for live in self.live.values()]
        self.live.clear()
        self._sweep_orphans()
        self.launcher.close()
        for slot in slots:  # their cgroups and mounts
            with contextlib.suppress(OSError):
                slot.close()
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
            held = {slot.uid for slot in self.free_slots + self.ending} | {live.slot.uid for live in self.live.values()}
            uid = next((u for u in self.uids if u not in held), self.uids[0])
        self.slot_count += 1
        group = cgroups.SlotGroup.make(f"slmlab-{os.getpid()}-slot{self.slot_count}", uid) if self.cgroups else None
        return Slot(slot_path(self.config.base_dir, self.slot_count), uid, group)

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
        expected = payload.pop("expected", None)  # never part of what the sample is given
        payload = dict(payload, nonce=nonce)
        slot = self._take_slot()
        if slot.group is not None:  # the memory and process limits of the sample's whole tree
            extra = 3 if self.config.tier == "bwrap" else 0  # bwrap's own processes
            slot.group.set_limits(limits.memory_mb * MIB, limits.max_processes + extra)
        try:
            pid, proc = self.launcher.start(payload, limits, slot, code, compile_warnings)
        except BaseException:
            self._release_slot(slot)
            raise
        now = time.monotonic()
        startup = 0.0 if proc is None else 0.25  # a fresh interpreter needs time to start
        park_at = now + startup + limits.park_after_s if limits.park != "off" else None
        self.live[pid] = Live(job_id, payload, limits, pid, slot, now, now + startup + limits.timeout_s,
                              park_at, proc=proc, nonce=nonce, pidfd=os.pidfd_open(pid), expected=expected)  # fmt: skip

    # ---- watching ----------------------------------------------------------------------------
    def _check_timers(self) -> None:
        now = time.monotonic()
        for live in list(self.live.values()):
            if now >= live.deadline and live.killed_for is None:
                # A sample is charged its wall time less the time it waited for a CPU others held,
                # so that its verdict does not depend on the load (README: how a timeout is decided).
                # Not under --park all: there a parked program is starved on purpose, and charged for it.
                lowered = live.parked and live.limits.park == "all"
                charged = now - live.started - (0.0 if lowered else _waited_for_cpu([live.pid, *_descendants(live.pid)]))
                cap = live.started + _DEADLINE_CAP * live.limits.timeout_s + 1.0
                if charged < live.limits.timeout_s and now < cap:
                    live.deadline = min(cap, now + live.limits.timeout_s - charged)
                    continue
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
                    if live.limits.park == "all":  # a waiting program keeps its priority for when it wakes
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
        # The next sample starts first: classifying these then overlaps its run. Their slots (and
        # uids) stay taken until what the samples left behind is swept.
        self.ending = [live.slot for live, _, _ in ended]
        if ended:
            self._start_queued()
        for live, status, usage in ended:
            self._finish(live, status, usage)
        self.ending = []

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
                    bwrap=self.config.tier == "bwrap", stderr=slot.read(Slot.ERR, keep).decode("utf-8", "replace"),
                    memory_exceeded=slot.group is not None and slot.group.memory_exceeded())  # fmt: skip
        outcome = classify(slot.read(Slot.RES, limits.output_bytes + 1), live.nonce, status,
                           Usage(usage.ru_utime + usage.ru_stime, usage.ru_maxrss), limits, seen, live.expected)  # fmt: skip
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
    # Only now may samples come: the zygote, a copy of this process, holds none of their programs.
    worker.handle(messages)
    worker._send(("ready",))
    worker.serve()
    worker.exit()
