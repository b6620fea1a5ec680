"""Landlock (Linux >= 5.13): unprivileged restriction of file, network and signal access.

Written against the kernel ABI with ctypes because the Python package `landlock` covers file rules
only; slmlab also needs TCP rules (ABI 4) and signal / abstract-socket scoping (ABI 6), so that a
sandboxed program cannot connect out or signal the harness even when it runs as the same user.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import sys

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same number on every arch
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# File-system rights, with the ABI version that introduced them.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = (
    1 << 8,
    1 << 9,
    1 << 10,
    1 << 11,
    1 << 12,
)
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

_FS_V1 = (1 << 13) - 1
READ_ONLY = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = None


def libc() -> ctypes.CDLL:
    """The C library, loaded once per process: forked children reuse the parent's handle instead of
    loading their own (which costs page copies in every child)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _syscall():
    return libc().syscall


def abi_version() -> int:
    """The Landlock ABI the running kernel offers; 0 when there is none."""
    if sys.platform != "linux":
        return 0
    try:
        version = _syscall()(
            _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
        )
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def handled_fs(abi: int) -> int:
    rights = _FS_V1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def open_paths(paths: list[str]) -> dict[str, int]:
    """O_PATH descriptors for the paths that exist. Opened while still privileged, so that a rule can
    name a directory the sandbox uid could not reach by path (a Python installed under /root)."""
    fds = {}
    for path in paths:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # a path that does not exist needs no rule
        # Above the standard streams and the result descriptor, which a child re-points (0-3).
        fds[path] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
    return fds


def rule_pairs(abi: int, read: dict[str, int], device_files: dict[str, int]) -> list[tuple[int, int]]:
    """(descriptor, allowed rights) pairs for Rules. Each argument maps paths to O_PATH descriptors.
    read: directories readable and executable; device_files: files readable and writable (/dev/null)."""
    fs = handled_fs(abi)
    pairs = []
    for fds, rights in ((read, READ_ONLY & fs), (device_files, FILE_RIGHTS & fs)):
        for fd in fds.values():
            pairs.append((fd, rights if os.path.isdir(f"/proc/self/fd/{fd}") else rights & FILE_RIGHTS))
    return pairs


class Rules:
    """The rules of a ruleset as C structures, built once: a process that forks sandboxed children
    builds them before forking, and each child only makes the system calls (every Python object a
    forked child touches costs it a page copy). The ruleset allows the rules' paths and nothing else
    of the file system; it also denies all TCP bind/connect (ABI >= 4) and signals and abstract unix
    sockets outside the sandbox (ABI >= 6)."""

    def __init__(self, abi: int, pairs: list[tuple[int, int]]):
        attr = _RulesetAttr(fs=handled_fs(abi))
        size = 8
        if abi >= 4:
            attr.net = NET_BIND_TCP | NET_CONNECT_TCP
            size = 16
        if abi >= 6:
            attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
            size = 24
        self._attr, self._size = attr, ctypes.c_size_t(size)
        self._rules = [_PathBeneath(allowed=allowed, parent_fd=fd) for fd, allowed in pairs]

    def create(self, directories: list[tuple[int, int]]) -> int:
        """A ruleset descriptor with these rules, and `directories` ((descriptor, rights) pairs) too."""
        call, zero = _syscall(), ctypes.c_uint32(0)
        ruleset = call(_SYS_CREATE_RULESET, ctypes.byref(self._attr), self._size, zero)
        if ruleset < 0:
            raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
        extra = [_PathBeneath(allowed=allowed, parent_fd=fd) for fd, allowed in directories]
        try:
            for rule in self._rules + extra:
                if call(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), zero) < 0:
                    raise OSError(
                        ctypes.get_errno(), f"landlock_add_rule failed for descriptor {rule.parent_fd}"
                    )
        except BaseException:
            os.close(ruleset)
            raise
        return ruleset


def restrict_self(ruleset: int) -> None:
    """Enforce a ruleset on the calling process and its future children, for good."""
    if libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if _syscall()(_SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)
