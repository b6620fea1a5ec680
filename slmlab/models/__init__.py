"""Models: named specs, ordered sources (local path, cache, registry package, hub id), the cache."""

from slmlab.models.registry import BUILTIN_MODELS, ModelSpec, find_spec
from slmlab.models.resolve import ResolvedModel, pull, resolve

__all__ = ["BUILTIN_MODELS", "ModelSpec", "ResolvedModel", "find_spec", "pull", "resolve"]
