"""Limits for a sample's whole process tree: a cgroup per slot, for memory and processes.

rlimits bound each process: a sample that spreads over its 16 processes may use 16 times the memory
limit, and the files it writes in memory (the worker's tmpfs) count against no limit at all. A
cgroup bounds them together: memory (the sample's own pages and the tmpfs pages it writes alike) and
the number of its processes. A worker makes one group per slot where it may write the cgroup tree
(as root, cgroup v1 or v2; with v2, where the memory and pids controllers are already delegated to
its cgroup's children), and each sample joins its slot's group before it runs anything. Elsewhere
only the rlimits apply, and `slmlab sandbox` says so.

Hand-written: the cgroup file interface is a handful of writes, and the libraries that wrap it
(cgroupspy, systemd's) either support only v1 or need a running systemd.
"""

from __future__ import annotations

import contextlib
import os

_CONTROLLERS = ("memory", "pids")


def _mounts() -> dict[str, str]:
    """controller (or "unified") -> where its hierarchy is mounted."""
    found: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = right.split()
                if len(fields) < 3:
                    continue
                point = left.split()[4]
                if fields[0] == "cgroup":
                    for option in fields[2].split(","):
                        if option in _CONTROLLERS:
                            found.setdefault(option, point)
                elif fields[0] == "cgroup2":
                    found.setdefault("unified", point)
    except OSError:
        pass
    return found


def _own_directories() -> dict[str, str]:
    """controller -> this process's cgroup directory: {"memory": ..., "pids": ...} on v1 (preferred
    where both are mounted), {"unified": ...} on v2; {} where neither can be used."""
    mounts, own = _mounts(), {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                controllers, _, path = line.rstrip("\n").partition(":")[2].partition(":")
                for name in controllers.split(",") if controllers else ["unified"]:
                    if name in mounts:
                        own[name] = os.path.join(mounts[name], path.lstrip("/"))
    except OSError:
        return {}
    if all(c in own for c in _CONTROLLERS):
        return {c: own[c] for c in _CONTROLLERS}
    unified = own.get("unified")
    if unified:
        try:
            with open(os.path.join(unified, "cgroup.subtree_control")) as f:
                if set(_CONTROLLERS) <= set(f.read().split()):
                    return {"unified": unified}
        except OSError:
            pass
    return {}


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def available() -> str:
    """'v1' or 'v2' where this process may make per-sample groups, else ''."""
    if os.geteuid() != 0:
        return ""
    own = _own_directories()
    return "" if not own else ("v2" if "unified" in own else "v1")


class SlotGroup:
    """The cgroup(s) of one slot. make() returns None where groups cannot be made here."""

    def __init__(self, directories: dict[str, str]):
        self.directories = directories
        self.v2 = "unified" in directories
        self.limits: tuple[int, int] | None = None
        self._ooms = self._oom_kills()

    @classmethod
    def make(cls, name: str, uid: int | None) -> SlotGroup | None:
        """A group named `name` under this process's own; uid: who may join it (a fresh interpreter
        joins after it became the slot's uid)."""
        if not available():
            return None
        made: dict[str, str] = {}
        try:
            for controller, parent in _own_directories().items():
                path = os.path.join(parent, name)
                os.mkdir(path)
                made[controller] = path
                if uid is not None:
                    os.chown(os.path.join(path, "cgroup.procs"), uid, uid)
        except OSError:
            for path in made.values():
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            return None
        return cls(made)

    def procs_files(self) -> list[str]:
        return [os.path.join(path, "cgroup.procs") for path in self.directories.values()]

    def set_limits(self, memory_bytes: int, max_processes: int) -> None:
        if self.limits == (memory_bytes, max_processes):
            return
        if self.v2:
            base = self.directories["unified"]
            _write(os.path.join(base, "memory.max"), str(memory_bytes))
            with contextlib.suppress(OSError):  # no swap configured: the file is absent
                _write(os.path.join(base, "memory.swap.max"), "0")
            _write(os.path.join(base, "pids.max"), str(max_processes))
        else:
            _write(os.path.join(self.directories["memory"], "memory.limit_in_bytes"), str(memory_bytes))
            _write(os.path.join(self.directories["pids"], "pids.max"), str(max_processes))
        self.limits = (memory_bytes, max_processes)

    def _oom_kills(self) -> int:
        """How many processes the kernel has killed in this group for its memory limit so far."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        path = os.path.join(self.directories["unified" if self.v2 else "memory"], name)
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def memory_exceeded(self) -> bool:
        """Whether a process of the sample that just ended was killed at the group's memory limit."""
        count = self._oom_kills()
        exceeded, self._ooms = count > self._ooms, count
        return exceeded

    def close(self) -> None:
        for path in self.directories.values():
            with contextlib.suppress(OSError):
                os.rmdir(path)


def join(procs_files: list[str]) -> None:
    """Move the calling process into the group (its children follow it)."""
    pid = str(os.getpid())
    for path in procs_files:
        _write(path, pid)


def remove_leftovers(worker_pid: int) -> None:
    """Remove the groups a worker that was killed left behind (best effort: a group still holding a
    process stays until the process is gone)."""
    prefix = f"slmlab-{worker_pid}-"
    for parent in _own_directories().values():
        with contextlib.suppress(OSError):
            for entry in os.listdir(parent):
                if entry.startswith(prefix):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(parent, entry))
