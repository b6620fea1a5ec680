"""The Generator seam: requests in, generations out, whatever the engine.

A generator takes requests (a prompt, its per-sample seed, budget and stop sequences) with one set of
sampling parameters, and calls back with each generation as soon as it is finished (text, token
ids, finish reason, timings and, where asked, activations). It declares what it can do beyond
that; asking for a capability it lacks is one clear line, before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from slmlab.errors import UserError
from slmlab.generate.params import SamplingParams

# What a generator may declare beyond text: activation capture, steering, the generated token ids.
CAPABILITIES = {
    "capture": "capture activations",
    "steer": "steer a layer",
    "token_ids": "give the generated token ids",
}
FINISH_REASONS = ("stop", "eos", "length", "error")


@dataclass(frozen=True)
class Request:
    key: Hashable  # e.g. (task_id, sample_index)
    prompt: str  # the text the model continues (a chat prompt rendered with the model's template)
    seed: int  # this sample's own seed: its tokens do not depend on the batch it shares
    add_special_tokens: bool = True  # False when the prompt is already a rendered chat template
    max_new_tokens: int | None = None  # this sample's budget; None: the sampling parameters'
    stops: tuple[str, ...] | None = None  # this sample's stop sequences; None: the generator's
    messages: tuple[dict, ...] = ()  # a chat prompt's turns, for engines that take messages


@dataclass(frozen=True)
class Generation:
    key: Hashable
    text: str  # cut before the stop sequence; no special tokens
    tokens: int  # generated tokens, up to and including the one that ended it
    finish_reason: str  # stop | eos | length (length means truncated) | error (no text: see `error`)
    seconds: float  # from starting this sample to finishing it
    prompt_tokens: int
    token_ids: tuple[int, ...] = ()  # the generated ids, the one that ended it included
    # With activation capture: "prompt_last" and "generated_mean" as float16 [layers, hidden], and
    # "generated" [tokens, layers, hidden] when every token is kept (see slmlab.probe.capture).
    activations: dict[str, Any] | None = None
    # Why the engine gave no generation (a server that kept failing): the sample is not stored, and
    # the run says so; nothing is charged to the model.
    error: str | None = None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class Generator(Protocol):
    """One engine with one model loaded."""

    name: str  # the backend's name: hf, llamacpp, vllm, openai
    capabilities: frozenset[str]  # a subset of CAPABILITIES
    tokenizer: Any  # renders chat templates and decodes token ids (None where the engine keeps its own)
    # Optional, default False: the engine computes off the CPU (a GPU, a server), so samples are
    # judged alongside generation (slmlab.pipeline.run.generate_and_judge).
    overlaps_judging: bool

    @staticmethod
    def identify(model: str) -> tuple[str | None, str]: ...  # (weights' sha256 if known, their source)

    def setup(self) -> dict: ...  # what the run records: engine, version, model source, dtype ...

    def generate(self, requests: Iterable[Request], params: SamplingParams, on_result: Callable[[Generation], None],
                 on_step: Callable[[int], None] | None = None) -> None: ...  # fmt: skip

    # Optional: `close()` frees what the engine holds (a server process) before the process ends.


def require(generator: Generator, capability: str, asked_by: str) -> None:
    """One line when `generator` cannot do what the run asks."""
    if capability not in generator.capabilities:
        able = ", ".join(name for name, cls in BACKENDS.items() if capability in cls.capabilities)
        raise UserError(f"the {generator.name} backend cannot {CAPABILITIES[capability]} ({asked_by}): "
                        f"use --backend {able or 'hf'}")  # fmt: skip


BACKENDS: dict[str, Any] = {}  # name -> generator class with `open(model, settings)`


def register_backend(name: str):
    """Class decorator: make a generator known as `--backend name`."""

    def add(cls):
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return add
