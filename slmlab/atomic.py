"""Files written whole or not at all: the text goes to a temporary file beside the target, which is
then renamed over it, so an interrupted run never leaves a half-written result or report.

The temporary file (and a staging directory from `tempfile.mkdtemp`) is private (0600 / 0700) while
it is written; before it takes the target's place it gets the permissions `open()` would have given
(0666 less the umask, or an existing target's own mode), so a report can be read by another user or
a web server, as any file the user writes can."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status);
    elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_mode(directory: bool = False) -> int:
    """The mode `open()` (0666) or `mkdir()` (0777) gives a new file or folder under the umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def _mode_for(target: Path) -> int:
    """An existing file keeps its mode when replaced (as when written in place); a new one gets the
    umask's."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return normal_mode()


def publish_dir(path: str | Path) -> None:
    """Give a staging folder made by `tempfile.mkdtemp` (0700) the mode `mkdir()` would have given
    it, before it is renamed into place."""
    os.chmod(path, normal_mode(directory=True))


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            os.fchmod(f.fileno(), _mode_for(path))
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_writer(path) as f:
        f.write(text)
