"""Batched generation with slot refill: a sample leaves the batch the step it stops, and new
samples join as soon as enough slots are free, so the batch stays full instead of waiting for its
slowest member (what plain batched `model.generate` does).

transformers gives the model, its KV cache and the logits processors; what it does not give on CPU
is this scheduling over a dynamic cache, so it is written here: the cache of rows that finished is
dropped, and a new group's prefilled cache is left-padded to the running one and concatenated
(every row stays left-padded, so positions are the cumulative sum of the attention mask). Samples
of the same prompt share one prefill, and prompts join in order of length, so padding stays small.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from slmlab.generate.base import Generation, Request
from slmlab.generate.sampling import SamplingParams, logits_processors, make_generator, next_tokens
from slmlab.generate.stops import StopFinder

if TYPE_CHECKING:
    from slmlab.probe.capture import ActivationCapture


@dataclass
class _Row:
    request: Request
    prompt_ids: list[int]
    generator: torch.Generator
    limit: int  # max new tokens for this row (the context may be shorter than the setting)
    stops: StopFinder
    started: float
    ids: list[int] = field(default_factory=list)


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _cache_keyword(model) -> str:
    """The name under which the model's forward takes its KV cache: `cache` in current transformers
    (`past_key_values` there is a deprecated alias that warns on every run), `past_key_values` in
    4.x and in model classes that still declare it. Read from the signature, not the version,
    because remote-code classes follow their own; past a PEFT wrapper or a subclass whose forward
    only passes keywords on, from the first forward that names one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for cls in type(base).__mro__:
        if "forward" in vars(cls):
            names = inspect.signature(vars(cls)["forward"]).parameters
            if "cache" in names or "past_key_values" in names:
                return "cache" if "cache" in names else "past_key_values"
    return "past_key_values"


class BatchGenerator:
    """Generates completions for many requests with one model, `batch_size` rows at a time."""

    def __init__(
        self,
        model,
        tokenizer,
        params: SamplingParams,
        stops: tuple[str, ...] = (),
        batch_size: int = 32,
        refill: bool = True,
        capture: ActivationCapture | None = None,
    ):
        self.model, self.tokenizer, self.params = model, tokenizer, params
        self.capture = capture
        self.stops = stops
        self.batch_size = max(1, batch_size)
        self.processors = logits_processors(params)
        self.eos_ids = self._eos_ids()
        self.context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        # Merging caches is only exact for plain full-attention layers; sliding-window caches
        # (Gemma 3) keep their own bookkeeping, so those models run batch after batch instead.
        probe = DynamicCache(config=model.config)
        self.plain_cache = all(type(layer) is DynamicLayer for layer in probe.layers)
        self.refill = refill and self.plain_cache
        self.min_admit = max(1, self.batch_size // 8)
        self.device = next(model.parameters()).device
        self.cache_keyword = _cache_keyword(model)
        self._encoded: dict[tuple[str, bool], list[int]] = {}

    def _eos_ids(self) -> set[int]:
        ids = set()
        for source in (
            getattr(self.model.generation_config, "eos_token_id", None),
            self.tokenizer.eos_token_id,
        ):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(source)
        return ids

    def _encode(self, request: Request) -> list[int]:
        key = (request.prompt, request.add_special_tokens)
        if key not in self._encoded:
            self._encoded[key] = self.tokenizer(
                request.prompt, add_special_tokens=request.add_special_tokens
            )["input_ids"]
        return self._encoded[key]

    # ---- the loop ----------------------------------------------------------------------------
    @torch.inference_mode()
    def run(self, requests: Iterable[Request], on_result: Callable[[Generation], None],
            on_step: Callable[[int], None] | None = None) -> None:  # fmt: skip
        """Generate every request; `on_result` gets each sample the moment it is finished, and
        `on_step` (when given) the number of tokens each step produced, so that progress moves
        with every token instead of with every finished sample."""
        queue = sorted(requests, key=lambda r: (len(self._encode(r)), r.prompt))
        pending = deque(queue)
        self.rows: list[_Row] = []
        self.cache = None
        self.mask = None
        self.last: list[int] = []  # each row's newest token, not yet fed to the model
        # With capture, aligned with self.rows: the last prompt token's states, the sum of the states
        # that chose each generated token, and (optionally) those states one by one.
        self.first_states: torch.Tensor | None = None
        self.state_sums: torch.Tensor | None = None
        self.token_states: list[list[torch.Tensor]] = []
        self.on_result = on_result
        self.on_step = on_step
        while pending or self.rows:
            free = self.batch_size - len(self.rows)
            if pending and (not self.rows or (self.refill and free >= min(self.min_admit, len(pending)))):
                self._admit([pending.popleft() for _ in range(min(free, len(pending)))])
            if self.rows:
                self._step()

    def _admit(self, requests: list[Request]) -> None:
        now = time.monotonic()
        prompts: dict[tuple[str, bool], int] = {}
        for r in requests:
            prompts.setdefault((r.prompt, r.add_special_tokens), len(prompts))
        encoded = [self._encoded[key] for key in prompts]
        width = max(len(ids) for ids in encoded)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=self.device
        )
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                         use_cache=True, logits_to_keep=1, **{self.cache_keyword: cache})  # fmt: skip
        # One prefill per distinct prompt, then one row per request.
        which = torch.tensor(
            [prompts[(r.prompt, r.add_special_tokens)] for r in requests], device=self.device
        )
        cache.batch_select_indices(which)
        logits = out.logits[which, -1]
        mask = mask[which]
        rows = []
        for r in requests:
            ids = self._encoded[(r.prompt, r.add_special_tokens)]
            budget = r.max_new_tokens if r.max_new_tokens is not None else self.params.max_new_tokens
            stops = r.stops if r.stops is not None else self.stops
            rows.append(_Row(r, ids, make_generator(r.seed), max(0, min(budget, self.context - len(ids))),
                             StopFinder(stops), now))  # fmt: skip
        self._merge(cache, mask)
        self.rows.extend(rows)
        self.last.extend([0] * len(rows))
        states = None
        if self.capture is not None:
            states = self.capture.take()[which.cpu()]
            old = self.rows[: -len(rows)]
            self.first_states = states if not old else torch.cat([self.first_states, states])
            zeros = torch.zeros_like(states)
            self.state_sums = zeros if not old else torch.cat([self.state_sums, zeros])
            self.token_states.extend([] for _ in rows)
        self._advance(logits, first=len(self.rows) - len(rows), states=states)

    def _merge(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        if self.cache is None or not self.rows:
            self.cache, self.mask = cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_left_pad(old.keys, width, -2), _left_pad(new.keys, width, -2)])
            old.values = torch.cat([_left_pad(old.values, width, -2), _left_pad(new.values, width, -2)])
        self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(mask, width, 1)])

    def _step(self) -> None:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        out = self.model(input_ids=torch.tensor(self.last, device=self.device)[:, None], attention_mask=self.mask,
                         position_ids=self.mask.sum(-1, keepdim=True) - 1, use_cache=True, logits_to_keep=1,
                         **{self.cache_keyword: self.cache})  # fmt: skip
        self._advance(out.logits[:, -1], first=0, states=self.capture.take() if self.capture else None)

    def _advance(self, logits: torch.Tensor, first: int, states: torch.Tensor | None = None) -> None:
        """Choose the next token of rows first.. (one per row of `logits`), finish those that end.

        `states`: the captured states of those rows, the ones that choose these tokens."""
        rows = self.rows[first:]
        if states is not None:
            self.state_sums[first:] += states
            if self.capture.tokens:
                for offset, state in enumerate(states.to(torch.float16)):
                    self.token_states[first + offset].append(state)
        histories = [r.prompt_ids + r.ids for r in rows] if self.params.repetition_penalty != 1.0 else None
        logits = logits.float().cpu()  # each row samples with its own CPU generator
        chosen = next_tokens(logits, self.params, self.processors, histories, [r.generator for r in rows])
        if self.on_step is not None:  # every row appends one token unless its prompt fills the context
            self.on_step(sum(1 for row in rows if row.limit))
        finished = []
        for offset, (row, token) in enumerate(zip(rows, chosen, strict=True)):
            index = first + offset
            if row.limit == 0:  # the prompt alone fills the context
                finished.append(index)
                self._finish(index, "", "length")
                continue
            row.ids.append(token)
            self.last[index] = token
            if token in self.eos_ids:
                finished.append(index)
                self._finish(index, self.tokenizer.decode(row.ids[:-1], skip_special_tokens=True), "eos")
                continue
            text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
            cut = row.stops.find(text)
            if cut is not None:
                finished.append(index)
                self._finish(index, text[:cut], "stop")
            elif len(row.ids) >= row.limit:
                finished.append(index)
                self._finish(index, text, "length")
        if finished:
            self._drop(finished)

    def _finish(self, index: int, text: str, reason: str) -> None:
        row = self.rows[index]
        self.on_result(Generation(row.request.key, text, len(row.ids), reason,
                                  round(time.monotonic() - row.started, 4), len(row.prompt_ids), tuple(row.ids),
                                  self._activations(index)))  # fmt: skip

    def _activations(self, index: int) -> dict[str, np.ndarray] | None:
        if self.capture is None:
            return None
        count = len(self.rows[index].ids)
        mean = (
            self.state_sums[index] / count if count else torch.full_like(self.state_sums[index], float("nan"))
        )
        found = {
            "prompt_last": self.first_states[index].half().numpy(),
            "generated_mean": mean.half().numpy(),
        }
        if self.capture.tokens:
            steps = self.token_states[index][:count]
            found["generated"] = (torch.stack(steps) if steps else self.first_states.new_zeros(
                (0, *self.first_states.shape[1:]))).half().numpy()  # fmt: skip
        return found

    def _drop(self, finished: list[int]) -> None:
        gone = set(finished)
        keep = [i for i in range(len(self.rows)) if i not in gone]
        self.rows = [self.rows[i] for i in keep]
        self.last = [self.last[i] for i in keep]
        if self.capture is not None:
            self.token_states = [self.token_states[i] for i in keep]
        if not keep:
            self.cache, self.mask = None, None
            return
        index = torch.tensor(keep, device=self.device)
        if self.capture is not None:
            self.first_states, self.state_sums = self.first_states[index.cpu()], self.state_sums[index.cpu()]
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        # Columns that are padding in every remaining row are dead weight: drop them. Not from a
        # sliding-window cache, which counts the positions it has seen apart from its tensors.
        if not self.plain_cache:
            return
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else 0
        if start:
            self.mask = self.mask[:, start:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., start:, :]
                layer.values = layer.values[..., start:, :]
