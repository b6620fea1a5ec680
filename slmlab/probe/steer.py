"""Interventions: shift the residual stream at one layer along a direction while the model generates.

The shift is `scale` activation units along the unit vector of `direction`, added to the layer's
output at every position (prompt and generated tokens alike), so a probe's finding can be tested
causally: if moving samples across the boundary changes the pass rate, the direction matters to
the model, not only to the probe. A scale of 0 adds no hook at all, so it cannot change anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from slmlab.errors import UserError
from slmlab.probe.capture import decoder_layers


def unit_direction(direction: np.ndarray) -> np.ndarray:
    direction = np.asarray(direction, dtype=np.float64).ravel()
    norm = float(np.linalg.norm(direction))
    if not np.isfinite(norm) or norm == 0:
        raise UserError("the steering direction is zero or not finite; give a vector with some length")
    return direction / norm


def dims_direction(dims: list[int], signs: list[float], hidden_size: int) -> np.ndarray:
    """A direction on chosen dimensions only (e.g. the seed's dims 810 and 457), as a unit vector."""
    vector = np.zeros(hidden_size)
    for dim, sign in zip(dims, signs, strict=True):
        if not 0 <= dim < hidden_size:
            raise UserError(f"dimension {dim} is out of range for hidden size {hidden_size}")
        vector[dim] = sign
    return unit_direction(vector)


def load_direction(path: str | Path, hidden_size: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"steering direction {path} not found; give a .npy file with one vector")
    try:
        vector = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path} is not a .npy array ({exc})") from None
    if vector.size != hidden_size:
        raise UserError(f"{path} has {vector.size} values; this model's hidden size is {hidden_size}")
    return unit_direction(vector)


class Steering:
    """Context manager: while active, layer `layer`'s output is shifted by scale * unit(direction)."""

    def __init__(self, model, layer: int, direction: np.ndarray, scale: float):
        self.model, self.layer, self.scale = model, layer, float(scale)
        self.shift = torch.tensor(unit_direction(direction) * self.scale, dtype=torch.float32)
        self._handle = None
        count = len(decoder_layers(model))  # checked here, before a run is recorded with it
        if not -count <= layer < count:
            raise UserError(f"steering layer {layer} is out of range: the model has {count} layers (0..{count - 1})")

    def __enter__(self) -> Steering:
        if self.scale != 0:
            self._handle = decoder_layers(self.model)[self.layer].register_forward_hook(self._shift)
        return self

    def __exit__(self, *_exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _shift(self, _module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        shifted = hidden + self.shift.to(hidden.dtype)
        return (shifted, *output[1:]) if isinstance(output, tuple) else shifted
