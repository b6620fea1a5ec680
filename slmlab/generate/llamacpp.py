"""The llama.cpp backend (`--backend llamacpp`): a GGUF file run as it is (Q4_1, Q4_K_M ...) by
llama.cpp's server, several sequences at once in its parallel slots.

slmlab keeps what defines a sample on its side, so that a sample means the same on every engine:
the prompt is tokenized by the model's own transformers tokenizer (as the hf backend does) and sent
as token ids; each sample carries its own seed; the text is decoded from the generated ids and cut
at the run's stop sequences by slmlab's StopFinder (the chat marker that ends an answer after its
first closed code block is no string a server knows). The server streams each token, so a sample
ends the moment its stop appears. Sampling is pinned to what slmlab asks, not llama.cpp's defaults
(top-k 40, top-p 0.95, min-p 0.05 would otherwise apply).
"""

from __future__ import annotations

import collections
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from slmlab.cpu import usable_cpus
from slmlab.errors import UserError
from slmlab.generate.base import Generation, Request, register_backend
from slmlab.generate.concurrent import run_concurrently
from slmlab.generate.llama_server import LlamaServer, require_server, server_version
from slmlab.generate.params import SamplingParams
from slmlab.generate.stops import StopFinder

# Sequences decoded together. On 2 CPU cores llama.cpp's generation grows up to 16 sequences and
# flattens after (llama-batched-bench: SmolLM2 144 tokens/s for 1, 217 for 8, 223 for 16, 206 for
# 32; Qwen2.5-Coder-0.5B 51, 92, 117, 125); each slot holds a cache of its own, so --batch-size
# is capped at MAX_SLOTS.
DEFAULT_SLOTS = 16
MAX_SLOTS = 32
CONTEXT_PER_SLOT = 4096


def _gguf_model(model: str):
    from slmlab.models import resolve

    resolved = resolve(model, download=True)
    if resolved.kind != "gguf":
        raise UserError(f"the llamacpp backend runs GGUF files, and '{model}' is a {resolved.kind} model: "
                        "use --backend hf, or give a .gguf file")  # fmt: skip
    return resolved


def _quantization(path: Path) -> str:
    """The GGUF file's weight type (Q4_1, Q4_K_M, F16 ...), from its header."""
    try:
        from gguf import GGUFReader
        from gguf.constants import LlamaFileType

        field = GGUFReader(path).get_field("general.file_type")
        return LlamaFileType(int(field.contents())).name.removeprefix("MOSTLY_") if field else "unknown"
    except Exception:  # noqa: BLE001 - a label for the record; the server reads the file itself
        return "unknown"


@register_backend("llamacpp")
class LlamaCppGenerator:
    capabilities = frozenset({"token_ids"})
    overlaps_judging = False  # llama.cpp takes every core, as the sandbox would

    def __init__(self, resolved, tokenizer, server: LlamaServer, version: str):
        self.resolved, self.tokenizer, self.server, self.version = resolved, tokenizer, server, version
        self.path = Path(resolved.location, resolved.gguf_file)
        self.quantization = _quantization(self.path)
        self._stop = weakref.finalize(self, server.stop)  # the server ends with its generator

    @classmethod
    def open(cls, model: str, dtype: str = "auto", device: str = "auto", batch_size: int | None = None,
             threads: int | None = None, quantization: str | None = None, **_) -> LlamaCppGenerator:  # fmt: skip
        from slmlab.models.load import gguf_tokenizer

        if quantization:
            raise UserError(f"the llamacpp backend runs the GGUF file's own quantization: --quantization {quantization} "
                            "is for --backend hf")  # fmt: skip
        if dtype != "auto":
            raise UserError(f"the llamacpp backend runs the GGUF file's own weights: --dtype {dtype} is for --backend hf")
        if device not in ("auto", "cpu"):
            raise UserError(f"slmlab's llama.cpp build runs on the CPU: --device {device} needs --backend hf or vllm")
        binary = require_server()
        resolved = _gguf_model(model)
        tokenizer = gguf_tokenizer(resolved)
        slots = min(batch_size or DEFAULT_SLOTS, MAX_SLOTS)
        server = LlamaServer(Path(resolved.location, resolved.gguf_file), slots, slots * CONTEXT_PER_SLOT,
                             threads or usable_cpus(), binary).start()  # fmt: skip
        return cls(resolved, tokenizer, server, server_version(binary))

    @staticmethod
    def identify(model: str) -> tuple[str | None, str]:
        resolved = _gguf_model(model)
        return resolved.sha256, resolved.source

    @staticmethod
    def engine_version() -> str:
        return server_version(require_server())

    def setup(self) -> dict:
        return {"backend": self.name, "engine_version": self.version, "model_location": str(self.path),
                "model_source": self.resolved.source, "model_sha256": self.resolved.sha256,
                "dtype": self.quantization, "quantization": self.quantization, "slots": self.server.slots,
                "threads": self.server.threads}  # fmt: skip

    def close(self) -> None:
        self._stop()

    def generate(self, requests: Iterable[Request], params: SamplingParams, on_result: Callable[[Generation], None],
                 on_step: Callable[[int], None] | None = None) -> None:  # fmt: skip
        import httpx2 as httpx

        limits = httpx.Limits(max_connections=self.server.slots + 1)
        with httpx.Client(base_url=self.server.url, timeout=httpx.Timeout(None), limits=limits) as client:

            def one(request: Request, slot: int, steps: Callable[[int], None]) -> Generation:
                return self._one(client, request, slot, params, steps)

            run_concurrently(PromptAffinity(requests), one, self.server.slots, on_result, on_step)

    def _one(self, client, request: Request, slot: int, params: SamplingParams, steps: Callable[[int], None]) -> Generation:
        started = time.monotonic()
        prompt = self.tokenizer(request.prompt, add_special_tokens=request.add_special_tokens)["input_ids"]
        budget = request.max_new_tokens or params.max_new_tokens
        finder = StopFinder(request.stops or ())
        ids: list[int] = []
        text, reason = "", "length"
        payload = _payload(prompt, budget, params, request.seed, self.server.context) | {"id_slot": slot}
        with client.stream("POST", "/completion", json=payload) as response:
            if response.status_code != 200:
                raise UserError(f"llama.cpp's server refused a request ({response.status_code}): "
                                f"{response.read().decode(errors='replace')[:300]}")  # fmt: skip
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                chunk = json.loads(line[6:])
                new = chunk.get("tokens") or []
                if new:
                    ids.extend(new)
                    steps(len(new))
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    cut = finder.find(text)
                    if cut is not None:  # leaving the stream cancels the rest on the server
                        text, reason = text[:cut], "stop"
                        break
                if chunk.get("stop"):  # the end-of-generation token, when it ends, is the last id
                    reason = "eos" if chunk.get("stop_type") == "eos" else "length"
                    text = self.tokenizer.decode(ids[:-1] if reason == "eos" else ids, skip_special_tokens=True)
                    break
        return Generation(request.key, text, len(ids), reason, round(time.monotonic() - started, 4), len(prompt),
                          tuple(ids))  # fmt: skip


class PromptAffinity:
    """Which request each slot runs next: the samples of one prompt stay on one slot, one after
    another, so the slot finds that prompt in its cache and only the first sample computes it.
    Prompt processing is llama.cpp's slow part on a CPU (about 340 tokens/s for SmolLM2 on 2
    cores, against 220 generated): n = 10 samples of HumanEval prompts ran at 73 tokens/s when any
    slot took any sample, because each recomputed its prompt. A slot whose prompt is done takes a
    prompt no slot has started, and when none is left, helps with the one that has most to do."""

    def __init__(self, requests: Iterable[Request]):
        self.groups: dict[tuple[str, bool], collections.deque[Request]] = {}
        for request in requests:
            self.groups.setdefault((request.prompt, request.add_special_tokens), collections.deque()).append(request)
        self.untouched = collections.deque(self.groups)
        self.owned: dict[int, tuple[str, bool]] = {}
        self.total = sum(len(group) for group in self.groups.values())
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self.total

    def take(self, slot: int) -> Request | None:
        with self.lock:
            mine = self.owned.get(slot)
            if mine is None or not self.groups[mine]:
                if self.untouched:
                    mine = self.untouched.popleft()
                else:
                    mine = max(self.groups, key=lambda key: len(self.groups[key]), default=None)
                    if mine is None or not self.groups[mine]:
                        return None
                self.owned[slot] = mine
            return self.groups[mine].popleft()


def _payload(prompt: list[int], budget: int, params: SamplingParams, seed: int, context: int) -> dict:
    """llama.cpp's /completion request for one sample, every sampler set as slmlab means it."""
    return {"prompt": prompt, "n_predict": budget, "stream": True, "return_tokens": True, "cache_prompt": True,
            "seed": seed % 2**32,  # llama.cpp's samplers take 32-bit seeds
            "temperature": params.temperature, "top_k": params.top_k, "top_p": params.top_p, "min_p": 0.0,
            "typical_p": 1.0, "repeat_penalty": params.repetition_penalty,
            # the penalty sees the whole sequence, as in the hf engine; 0 turns the sampler off
            "repeat_last_n": context if params.repetition_penalty != 1.0 else 0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0, "dry_multiplier": 0.0, "xtc_probability": 0.0,
            "top_n_sigma": -1.0, "mirostat": 0}  # fmt: skip

