"""Lazy package exports: a package names what it offers, and a submodule is imported only when one
of its names is first used (so `import slmlab.execute` in the sandbox, or a config check, does not
pay for torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(exports: dict[str, str], renames: dict[str, str] | None = None) -> Callable[[str], object]:
    """A module-level `__getattr__` serving `exports` (public name -> module), where `renames` maps
    a public name to its name inside the module when they differ."""
    renames = renames or {}

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(name)
        return getattr(importlib.import_module(exports[name]), renames.get(name, name))

    return __getattr__
