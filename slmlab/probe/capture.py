"""Residual-stream activations of chosen layers, captured while the model generates.

A forward hook on each chosen decoder layer keeps that layer's output at the newest position of
every row: during prefill that is the last prompt token, during decoding the token just fed in.
Each of those states is the one whose logits chose the next generated token, so a sample's
"generated" activations are the states that chose its tokens (the last prompt token's first), and
their mean is taken over exactly as many states as the sample has generated tokens. The engine
(slmlab.generate.engine) keeps the per-row sums aligned with its rows as they join and leave.

The output of a decoder layer is the residual stream after that layer; for the last layer this is
before the model's final norm (transformers' `hidden_states[-1]` is after it).
"""

from __future__ import annotations

import torch

from slmlab.errors import UserError

KINDS = ("prompt_last", "generated_mean")  # always captured; "generated" (every token) on request


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's stack of decoder layers, whatever the architecture calls it (layers, h, ...)."""
    count = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise UserError(f"cannot find the {count} decoder layers of {type(model).__name__} to capture from")


def resolve_layers(spec: str | list[int] | None, n_layers: int) -> list[int]:
    """'all', '11,-1' or [11, -1] as sorted non-negative layer indices; negative ones count from the end."""
    if spec is None or spec == []:
        return []
    if isinstance(spec, str):
        if spec.strip() == "all":
            return list(range(n_layers))
        try:
            spec = [int(part) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise UserError(
                f"layers {spec!r}: give 'all' or comma-separated integers such as 11,-1"
            ) from None
    layers = set()
    for index in spec:
        if not -n_layers <= index < n_layers:
            raise UserError(
                f"layer {index} is out of range: the model has {n_layers} layers (0..{n_layers - 1})"
            )
        layers.add(index % n_layers)
    return sorted(layers)


def _hidden(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


class ActivationCapture:
    """Hooks on `layers` of `model`; `take()` gives the newest states as a [rows, layers, hidden] tensor."""

    def __init__(self, model, layers: list[int], tokens: bool = False):
        self.model, self.layers, self.tokens = model, list(layers), tokens
        self.hidden_size = model.config.hidden_size
        self._latest: list[torch.Tensor | None] = [None] * len(self.layers)
        self._handles = []

    def __enter__(self) -> ActivationCapture:
        stack = decoder_layers(self.model)
        for slot, index in enumerate(self.layers):
            self._handles.append(stack[index].register_forward_hook(self._hook(slot)))
        return self

    def __exit__(self, *_exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, slot: int):
        def keep_newest(_module, _inputs, output) -> None:
            # Only the newest position is kept, copied to the CPU (so the prefill's full tensor can be
            # freed, and a GPU run stores the same arrays).
            self._latest[slot] = _hidden(output)[:, -1, :].float().to("cpu", copy=True)

        return keep_newest

    def take(self) -> torch.Tensor:
        if any(state is None for state in self._latest):
            raise RuntimeError("take() before a forward pass through every captured layer")
        states = torch.stack(self._latest, dim=1)
        self._latest = [None] * len(self.layers)
        return states
