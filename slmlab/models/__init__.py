"""Models: named specs, ordered sources (local path; for a built-in name the verified cache, the hub
file, then the registry packages; for a hub id the hub, then the local hub cache), the cache, and
loading with transformers (torch is imported only when a model is loaded)."""

from slmlab.models.load import LoadedModel, load
from slmlab.models.registry import BUILTIN_MODELS, ModelSpec, find_spec, source_order
from slmlab.models.resolve import ResolvedModel, pull, resolve

__all__ = [
    "BUILTIN_MODELS",
    "LoadedModel",
    "ModelSpec",
    "ResolvedModel",
    "find_spec",
    "load",
    "pull",
    "resolve",
    "source_order",
]
