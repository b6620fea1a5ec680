"""Mount-namespace helpers for a worker running as root.

Reaching the interpreter: let the unprivileged sandbox uids reach it.

A Python installed under a private directory (pyenv under /root, mode 0700) cannot be run or
imported from by another uid. As root, a worker moves itself into a private mount namespace where
each such private ancestor is covered by an empty tmpfs into which only the interpreter's own
directories are bind-mounted read-only: the sandbox reaches Python and nothing else that directory
held (it also hides /root's other files). The host's mounts are not touched (private propagation).
"""

from __future__ import annotations

import ctypes
import os
import stat

from slmlab.execute import landlock

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = (
    1,
    2,
    4,
    32,
    4096,
    16384,
    1 << 18,
)


def private_ancestor(path: str) -> str | None:
    """The first directory on the way to `path` that other users cannot traverse, if any."""
    current = "/"
    for part in [p for p in os.path.abspath(path).split("/") if p]:
        current = os.path.join(current, part)
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return None
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return current
    return None


_in_private_namespace = False


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _private_mount_namespace() -> None:
    """Move this process into a mount namespace of its own (once), with no propagation to the host."""
    global _in_private_namespace
    if _in_private_namespace:
        return
    libc = landlock.libc()
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    _in_private_namespace = True


def expose(paths: list[str]) -> list[str]:
    """Make `paths` reachable by every uid in this process's (new) mount namespace.

    Returns the private ancestors that were covered; [] when nothing needed it. Raises OSError
    when it is needed but not permitted (no CAP_SYS_ADMIN).
    """
    needed: dict[str, list[str]] = {}
    for path in paths:
        ancestor = private_ancestor(path)
        if ancestor is not None and ancestor != path:
            needed.setdefault(ancestor, []).append(path)
    if not needed:
        return []
    _private_mount_namespace()
    libc = landlock.libc()
    # Opened inside the new namespace (a bind source must be a mount of the caller's namespace) and
    # before the tmpfs hides them.
    fds = {path: os.open(path, os.O_PATH) for paths_ in needed.values() for path in paths_}
    for ancestor, inside in needed.items():
        _check(libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=755"),
               f"tmpfs on {ancestor}")  # fmt: skip
        for path in sorted(inside, key=len):
            os.makedirs(path, exist_ok=True)
            source = f"/proc/self/fd/{fds[path]}".encode()
            _check(libc.mount(source, path.encode(), None, _MS_BIND | _MS_REC, None), f"bind {path}")
            _check(libc.mount(None, path.encode(), None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None),
                   f"read-only {path}")  # fmt: skip
    for fd in fds.values():
        os.close(fd)
    return sorted(needed)


def private_tmpfs(path: str, size_mb: int) -> None:
    """Mount a size-limited tmpfs on `path`, seen only by this process and its children.

    Sample directories in memory are a quarter faster than on disk, and the size cap keeps a program
    that writes many files from filling memory. Raises OSError where mounting is not permitted.
    """
    _private_mount_namespace()
    options = f"size={size_mb}m,mode=711".encode()
    _check(landlock.libc().mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options),
           f"tmpfs on {path}")  # fmt: skip


def hide(paths: list[str]) -> None:
    """Cover each directory with an empty, read-only tmpfs, seen only by this process and its
    children: the answer keys a tier without Landlock (subprocess) would otherwise show its samples.
    Raises OSError where mounting is not permitted."""
    _private_mount_namespace()
    libc = landlock.libc()
    for path in paths:
        if os.path.isdir(path):
            _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_RDONLY, b"size=4k,mode=0"),
                   f"tmpfs over {path}")  # fmt: skip


def unmount(path: str) -> None:
    """Detach a mount made by private_tmpfs (lazily: nothing may still use it)."""
    _check(landlock.libc().umount2(path.encode(), 2), f"umount {path}")  # MNT_DETACH
