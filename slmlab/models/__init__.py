"""Models: named specs, ordered sources (local path, cache, registry package, hub id), the cache,
and loading with transformers (torch is imported only when a model is loaded)."""

from slmlab.models.load import LoadedModel, load
from slmlab.models.registry import BUILTIN_MODELS, ModelSpec, find_spec
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
]
