"""The zygote: a process that does nothing but fork sandboxed children for its worker.

Forking marks every page of the forking process copy-on-write. When a worker forked its samples
itself, its own bookkeeping between two forks (select, classify, JSON) wrote to some 300 of its
pages, each write a page fault and, while the child lived, a page copy: 40% of the worker's CPU
time went there (perf, HumanEval samples). The zygote is forked once from the warm worker and from then on only reads a
request and forks, so its memory stays as it was and the worker does its bookkeeping without
copy-on-write faults.

The children must still be the worker's own: it is their subreaper, watches them through pidfds
(only a parent can wait for a process) and they die with it. So the zygote forks with
clone(CLONE_PARENT), which makes the new process a child of the zygote's parent, the worker.
os.fork cannot pass that flag, so the zygote makes the clone system call itself, and runs CPython's
fork hooks around it (PyOS_BeforeFork, PyOS_AfterFork_Child/Parent) as os.fork does where they have
anything to do (needs_fork_hooks). glibc's own fork handlers do not run; they guard locks other
threads may hold, and the zygote has no other thread. Where the clone system call's number is not
known here, the worker forks as before.

Protocol, over two pipes: the worker writes a request (4-byte little-endian length, then the bytes,
which only the child decodes); the zygote answers with the child's pid (4 bytes, signed; minus the errno when the clone failed).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterator

from slmlab.execute import landlock
from slmlab.execute.runner import children_of

_CLONE_PARENT, _SIGCHLD = 0x00008000, 17
_SYS_CLONE = {"x86_64": 56, "amd64": 56, "aarch64": 220, "arm64": 220}.get(os.uname().machine.lower())
_PR_SET_NAME, _PR_SET_PDEATHSIG, _SIGKILL = 15, 1, 9
NAME = b"slmlab-zygote"  # what ps and /proc/PID/comm show for it


def supported() -> bool:
    api = getattr(ctypes, "pythonapi", None)  # CPython's own C API; other interpreters fork in the worker
    return _SYS_CLONE is not None and api is not None and hasattr(api, "PyOS_AfterFork_Child")


def zygotes_of(worker: int) -> set[int]:
    """The zygote pids among a worker's children (a worker has one; ps shows them as NAME)."""
    found = set()
    for pid in children_of(worker):
        try:
            with open(f"/proc/{pid}/comm", "rb") as comm:
                if comm.read().strip() == NAME:
                    found.add(pid)
        except OSError:
            pass  # ended meanwhile
    return found


def _read_exactly(fd: int, size: int) -> bytes:
    parts, left = [], size
    while left:
        data = os.read(fd, left)
        if not data:
            raise EOFError
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


class Zygote:
    """The worker's handle on its zygote. `run_child(request)` is what every child runs (in the
    child, from the zygote's memory); it must end the process and never return."""

    def __init__(self, run_child: Callable[[bytes], None], close_in_zygote: tuple[int, ...] = ()):
        requests_read, self._requests = os.pipe()
        self._replies, replies_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                for fd in (self._requests, self._replies, *close_in_zygote):
                    os.close(fd)
                _serve(requests_read, replies_write, run_child)
            finally:
                os._exit(0)
        os.close(requests_read)
        os.close(replies_write)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a dead zygote: EPIPE for the worker, not death
        self.pid = pid

    def spawn(self, request: bytes) -> int:
        """Start a child for `request` and return its pid (a child of the calling worker)."""
        message = len(request).to_bytes(4, "little") + request
        view = memoryview(message)
        while view:
            view = view[os.write(self._requests, view) :]
        pid = int.from_bytes(_read_exactly(self._replies, 4), "little", signed=True)
        if pid < 0:
            raise OSError(-pid, f"the zygote could not fork: {os.strerror(-pid)}")
        return pid

    def close(self) -> None:
        """The zygote ends when its request pipe closes; reap it (it is our child)."""
        for fd in (self._requests, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


# Modules of the standard library that register fork hooks (os.register_at_fork).
_HOOKED_MODULES = ("random", "threading", "logging", "concurrent.futures.thread")


def _nothing() -> None:
    pass


def needs_fork_hooks() -> bool:
    """CPython's fork hooks repair what other threads held at the fork (locks, the GIL, thread
    states) and run the hooks modules registered (random reseeds itself). A zygote with one thread
    and none of those modules has nothing to repair, and skipping them spares every child some 60 page
    copies (a fifth of a short sample's cost)."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return True
    return threads != 1 or any(name in sys.modules for name in _HOOKED_MODULES)


def _become_zygote() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # what the samples inherit, as from any shell
    libc = landlock.libc()
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(NAME), 0, 0, 0)
    libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)  # never outlive the worker
    trim = getattr(libc, "malloc_trim", None)  # glibc: free heap pages need not be copied per fork
    if trim is not None:
        trim(0)


def _read_into(fd: int, view: memoryview) -> None:
    while view:
        count = os.readv(fd, [view])
        if not count:
            raise EOFError
        view = view[count:]


def _requests_of(requests: int) -> Iterator[memoryview]:
    """The worker's requests, until it closes the pipe or is gone. Each is read into one reused
    buffer, wiped once the child that needs it is forked: the next child, a copy of this memory,
    finds no trace of an earlier sample's program (freed bytes objects would have kept it)."""
    header, buffer = bytearray(4), bytearray(1 << 16)
    while True:
        try:
            _read_into(requests, memoryview(header))
            size = int.from_bytes(header, "little")
            if size > len(buffer):
                ctypes.memset((ctypes.c_char * len(buffer)).from_buffer(buffer), 0, len(buffer))
                buffer = bytearray(size)
            view = memoryview(buffer)[:size]
            _read_into(requests, view)
            yield view
            view.release()
            ctypes.memset((ctypes.c_char * size).from_buffer(buffer), 0, size)
        except EOFError:
            return


def _reply(replies: int, pid: int) -> None:
    os.write(replies, pid.to_bytes(4, "little", signed=True))


def _serve(requests: int, replies: int, run_child: Callable[[memoryview], None]) -> None:
    _become_zygote()
    libc = landlock.libc()
    if needs_fork_hooks():
        api = ctypes.pythonapi
        before, after_child, after_parent = (
            api.PyOS_BeforeFork,
            api.PyOS_AfterFork_Child,
            api.PyOS_AfterFork_Parent,
        )
    else:
        before = after_child = after_parent = _nothing
    clone, flags, zero = libc.syscall, ctypes.c_long(_CLONE_PARENT | _SIGCHLD), ctypes.c_long(0)
    for request in _requests_of(requests):
        before()
        pid = clone(_SYS_CLONE, flags, zero, zero, zero, zero)  # a fork whose parent is the worker
        if pid == 0:
            after_child()
            try:
                run_child(request)
            finally:
                os._exit(0)
        error = ctypes.get_errno() if pid < 0 else 0
        after_parent()
        _reply(replies, pid if pid > 0 else -(error or 1))
