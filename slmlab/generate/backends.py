"""The backends by name (`--backend`): each engine file registers itself with
`slmlab.generate.base.register_backend`; adding an engine is one file plus its import here."""

from __future__ import annotations

from slmlab.errors import UserError
from slmlab.generate import hf  # noqa: F401  registers "hf"
from slmlab.generate.base import BACKENDS, Generator


def backend(name: str):
    """The generator class registered as `name`, or one line naming the choices."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}': choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


def open_generator(name: str, model: str, **settings) -> Generator:
    """The `name` engine with `model` loaded (settings: dtype, device, quantization, batch_size)."""
    return backend(name).open(model, **settings)
