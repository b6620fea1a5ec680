"""The model cache under $SLMLAB_HOME (default ~/.cache/slmlab), with verified checksums.

Hashing a 1 GB file takes seconds, so a verified file gets a small marker (its sha256, size and
mtime); it is hashed again only when the file changes, which is how a corrupted cache is caught.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

ENV_VAR = "SLMLAB_HOME"


def slmlab_home() -> Path:
    return Path(os.environ.get(ENV_VAR) or "~/.cache/slmlab").expanduser()


def models_dir() -> Path:
    return slmlab_home() / "models"


def cached_path(spec) -> Path:
    """Where the cache keeps a built-in model (a `registry.ModelSpec`): its GGUF file."""
    return models_dir() / spec.name / spec.gguf_file


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def mark_verified(path: Path, sha256: str, origin: str | None = None) -> None:
    """Remember that `path` has `sha256`, and which source it came from (for messages)."""
    marker = {"sha256": sha256, **_fingerprint(path)}
    if origin:
        marker["origin"] = origin
    _marker(path).write_text(json.dumps(marker))


def _read_marker(path: Path) -> dict:
    try:
        marker = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def cached_origin(path: Path) -> str | None:
    """The source a cached file was fetched from, as recorded when it was verified."""
    return _read_marker(path).get("origin")


def is_verified(path: Path, sha256: str) -> bool:
    """True when `path` has the expected sha256 (cheap when its marker still matches the file)."""
    marker = _read_marker(path)
    if {k: marker.get(k) for k in ("sha256", "size", "mtime_ns")} == {"sha256": sha256, **_fingerprint(path)}:
        return True
    if sha256_file(path) != sha256:
        return False
    mark_verified(path, sha256, marker.get("origin"))
    return True
