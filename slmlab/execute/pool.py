"""The executor: a pool of warm workers that runs programs in the sandbox and streams outcomes.

Samples are sent to workers as they free a slot (a worker has one running sample plus one queued;
parked samples give their slot back), so one slow or hung sample never stalls the rest. A worker
that dies or stops answering is replaced and its samples are run again once; a sample that fails
twice for reasons of ours is reported as `harness_error`, never dropped.
"""

from __future__ import annotations

import collections
import itertools
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

from slmlab.execute import cgroups
from slmlab.execute.channel import Channel
from slmlab.execute.harden import (
    Hardening,
    compile_seccomp,
    harness_paths,
    hidden_paths,
    python_read_paths,
    sandbox_environment,
)
from slmlab.execute.launch import WorkerConfig, remove_tree
from slmlab.execute.limits import Limits
from slmlab.execute.outcome import Outcome, Status
from slmlab.execute.tiers import Tier, sandbox_uids, select_tier

MAX_ATTEMPTS = 2
_QUEUE_PER_WORKER = 2  # one running, one waiting in the worker, so it never idles between samples


@dataclass
class Program:
    """One program to run: the code under test and the tests that judge it."""

    definitions: str  # prompt + completion
    tests: str  # test code, ending with the call that runs it
    entry_point: str | None = None
    timeout_s: float | None = None  # overrides the executor's default
    # Judged outside the sandbox (cases.py): the entry point is called on `cases` (the tests do not
    # run) and its answers are compared with `expected` by the worker. record: run the tests,
    # recording the entry point's calls at these sites ({position: wrapper}) into extra["calls"].
    cases: bytes | None = None
    expected: tuple | None = None
    record: dict | None = None


@dataclass
class _Job:
    index: int
    program: Program
    attempts: int = 0
    parked: bool = False


def _payload(program: Program) -> dict:
    """What a worker is sent (marshal) and passes on (JSON to a fresh interpreter): bytes as hex."""
    payload = {"definitions": program.definitions, "tests": program.tests, "entry_point": program.entry_point}
    if program.cases is not None:
        payload.update(cases=program.cases.hex(), expected=program.expected, tests="")
    elif program.record is not None:
        payload["record"] = [[list(position), wrapper] for position, wrapper in program.record.items()]
    return payload


class _WorkerHandle:
    def __init__(self, process: subprocess.Popen, conn: Channel):
        self.process = process
        self.conn = conn
        # No sample before the worker says it is ready: its zygote is forked from it first, and must
        # not carry a copy of any sample's program into the samples it forks.
        self.credits = 0
        self.jobs: dict[int, _Job] = {}
        self.last_heard = time.monotonic()
        self.ready = False

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, 9)
        except OSError:
            pass
        self.process.wait()
        self.conn.close()


def _bootstrap(entry: str, site_dirs: list[str]) -> str:
    """python -c code that imports slmlab from where this process found it, with or without install."""
    import slmlab

    root = os.path.dirname(os.path.dirname(os.path.abspath(slmlab.__file__)))
    # After the standard library: a module a sample wrote into the checkout (bisect.py) never shadows it.
    return f"import sys; sys.path += [{root!r}, *{site_dirs!r}]; {entry}"


def _user_process_count() -> int:
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


class Executor:
    """Run programs in the sandbox. Use as a context manager, or call close()."""

    def __init__(self, sandbox: str = "auto", limits: Limits | None = None, workers: int | None = None,
                 max_parked: int = 16):  # fmt: skip
        self.tier: Tier = select_tier(sandbox)
        self.limits = limits or Limits()
        self.n_workers = max(1, workers or os.cpu_count() or 1)
        self.max_parked = max_parked
        self.base_dir = tempfile.mkdtemp(prefix="slmlab-sandbox-")
        os.chmod(self.base_dir, 0o711)
        slots = max_parked + _QUEUE_PER_WORKER
        uids = sandbox_uids(self.n_workers * slots) if "uid-drop" in self.tier.features else None
        shared_uid = uids is not None and len(set(uids)) == 1
        if uids is not None:
            nproc_base = self.n_workers * slots if shared_uid else 0
        elif sys.platform == "linux":
            nproc_base = _user_process_count() + self.n_workers * slots + 16
        else:
            nproc_base = 0
        read_paths = python_read_paths()
        strong = self.tier.name in ("process", "bwrap")
        features = set(self.tier.features)
        abi = next((int(f[len("landlock") :]) for f in features if f.startswith("landlock")), 0)
        self._hardening = Hardening(uid=None, landlock_abi=abi if strong else 0, seccomp="seccomp" in features,
                                    read_paths=read_paths, nproc_base=nproc_base, harness_paths=harness_paths(),
                                    hidden_paths=hidden_paths())  # fmt: skip
        self._uids = uids
        bpf = compile_seccomp(signal_scoped=abi >= 6) if self._hardening.seccomp else None
        self._bpf = bpf.hex() if bpf else ""
        self._slots = slots
        self._site_dirs = [p for p in read_paths if p.endswith(("site-packages", "dist-packages"))]
        self._workers: list[_WorkerHandle | None] = [None] * self.n_workers
        self._worker_pids: list[int] = []  # every worker started: the cgroups a killed one left are removed at close
        self._closed = False

    # ---- workers -------------------------------------------------------------------------------
    def _start_worker(self, k: int) -> _WorkerHandle:
        ours, theirs = socket.socketpair()
        uids = self._uids[k * self._slots : (k + 1) * self._slots] if self._uids else None
        worker_dir = os.path.join(self.base_dir, f"w{k}-{time.monotonic_ns()}")
        os.mkdir(worker_dir, 0o711)
        config = WorkerConfig(
            tier=self.tier.name, label=self.tier.label, base_dir=worker_dir, hardening=asdict(self._hardening),
            uids=uids, max_parked=self.max_parked, limits=self.limits.to_dict(), seccomp_bpf=self._bpf,
            bootstrap=_bootstrap("from slmlab.execute.runner import main; main()", self._site_dirs),
        )  # fmt: skip
        # -S: site-packages go on sys.path as plain directories (programs can import what is installed
        # there), without running .pth files, whose imports would be copied into every forked sample.
        code = _bootstrap("from slmlab.execute.worker import main; main()", self._site_dirs)
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", "-c", code, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            # LD_BIND_NOW: resolve every symbol once in the worker instead of in each forked child,
            # where each first call would copy a page of the symbol table.
            env={**sandbox_environment(self.base_dir), "LD_BIND_NOW": "1"},
        )  # fmt: skip
        theirs.close()
        conn = Channel(ours.detach())
        conn.send(asdict(config))
        self._worker_pids.append(process.pid)
        return _WorkerHandle(process, conn)

    def _worker(self, k: int) -> _WorkerHandle:
        handle = self._workers[k]
        if handle is None:
            handle = self._workers[k] = self._start_worker(k)
        return handle

    # ---- running -------------------------------------------------------------------------------
    def imap(self, programs: Iterable[Program]) -> Iterator[tuple[int, Outcome]]:
        """Yield (index, outcome) for every program, in the order they finish."""
        if self._closed:
            raise RuntimeError("the executor is closed")
        source = enumerate(programs)
        retry: collections.deque[_Job] = collections.deque()
        given_up: collections.deque[tuple[int, Outcome]] = collections.deque()
        job_ids = itertools.count()
        exhausted = False
        handles = [self._worker(k) for k in range(self.n_workers)]
        # A worker reports every finished sample; silence beyond two time limits means it is hung.
        stuck_after = 2 * self.limits.timeout_s + 5

        def next_job() -> _Job | None:
            nonlocal exhausted
            if retry:
                return retry.popleft()
            if exhausted:
                return None
            item = next(source, None)
            if item is None:
                exhausted = True
                return None
            return _Job(*item)

        while True:
            for k, handle in enumerate(handles):
                while handle.credits > 0:
                    job = next_job()
                    if job is None:
                        break
                    job.attempts += 1
                    job_id = next(job_ids)
                    limits = self.limits.with_timeout(job.program.timeout_s)
                    payload = _payload(job.program)
                    try:
                        handle.conn.send(("run", job_id, payload, limits.to_dict()))
                    except OSError:
                        retry.appendleft(job)
                        job.attempts -= 1
                        handles[k] = self._replace(k, retry, given_up)
                        break
                    handle.credits -= 1
                    handle.jobs[job_id] = job
                    if len(handle.jobs) == 1:
                        handle.last_heard = time.monotonic()
            while given_up:
                yield given_up.popleft()
            if exhausted and not retry and not any(h.jobs for h in handles):
                return
            ready, _, _ = select.select([h.conn for h in handles], [], [], 1.0)
            for k, handle in enumerate(handles):
                if handle.conn in ready:
                    try:
                        messages = handle.conn.receive()
                    except (EOFError, OSError):
                        handles[k] = self._replace(k, retry, given_up)
                        continue
                    handle.last_heard = time.monotonic()
                    for message in messages:
                        result = self._on_message(handle, message, retry)
                        if result is not None:
                            yield result
                elif (handle.jobs or not handle.ready) and time.monotonic() - handle.last_heard > stuck_after:
                    handles[k] = self._replace(k, retry, given_up)

    def _on_message(self, handle: _WorkerHandle, message, retry) -> tuple[int, Outcome] | None:
        if message[0] == "ready":
            handle.credits, handle.ready = handle.credits + _QUEUE_PER_WORKER, True
            return None
        kind, job_id = message[0], message[1]
        job = handle.jobs.get(job_id)
        if job is None:
            return None
        if kind == "parked":
            job.parked = True
            handle.credits += 1
            return None
        del handle.jobs[job_id]
        if not job.parked:
            handle.credits += 1
        outcome = Outcome.from_dict(message[2])
        outcome.attempts = job.attempts
        if outcome.status is Status.HARNESS_ERROR and job.attempts < MAX_ATTEMPTS:
            job.parked = False
            retry.append(job)
            return None
        return job.index, outcome

    def _replace(self, k: int, retry: collections.deque[_Job], given_up: collections.deque) -> _WorkerHandle:
        """A worker died or hung: kill it, start another, run its samples again (once)."""
        old = self._workers[k]
        if old is not None:
            old.kill()
            for job in old.jobs.values():
                job.parked = False
                if job.attempts < MAX_ATTEMPTS:
                    retry.append(job)
                else:
                    outcome = Outcome(Status.HARNESS_ERROR, detail="the sandbox worker died twice while running this sample",
                                      sandbox=self.tier.label, attempts=job.attempts)  # fmt: skip
                    given_up.append((job.index, outcome))
        self._workers[k] = self._start_worker(k)
        return self._workers[k]

    def run(
        self, programs: Iterable[Program], progress: Callable[[int, Outcome], None] | None = None
    ) -> list[Outcome]:
        """Run every program; outcomes come back in input order."""
        results: dict[int, Outcome] = {}
        for index, outcome in self.imap(programs):
            results[index] = outcome
            if progress is not None:
                progress(index, outcome)
        return [results[i] for i in range(len(results))]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for handle in self._workers:
            if handle is None:
                continue
            try:
                handle.conn.send(("stop",))
                handle.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            handle.kill()
        remove_tree(self.base_dir)
        for pid in self._worker_pids:  # a worker that was killed could not remove its slots' groups
            cgroups.remove_leftovers(pid)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()
