"""The vLLM backend (`--backend vllm`, GPU): vLLM's offline engine, in this process.

Every sample is its own request with its own seed (slmlab's per-sample seeds: a sample's text does
not depend on how many were asked for), so `n` samples of a prompt are n requests that share its
prefix: prefix caching computes the prompt once. Prompts go in as the ids slmlab's tokenizer gives,
as on every engine. Results are handed back as each request finishes (the engine is stepped here
rather than through `LLM.generate`, which returns only at the end). `lora:` adapters are served as
vLLM's LoRA requests on their base model; `ckpt:` checkpoints and hub ids load as vLLM loads any
transformers directory; built-in GGUF files load through vLLM's GGUF reader with slmlab's tokenizer.

An optional extra (`pip install 'slmlab[vllm]'`) that needs an NVIDIA GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from slmlab.errors import UserError
from slmlab.generate.base import Generation, Request, register_backend
from slmlab.generate.hf import HFGenerator
from slmlab.generate.params import SamplingParams
from slmlab.generate.stops import CLOSED_CODE_BLOCK, StopFinder

GPU_MEMORY = 0.85  # of the GPU's memory for weights and cache; the rest for torch and the sandbox


def gpu_present() -> bool:
    """An NVIDIA GPU torch can use; without NVIDIA's driver, known without importing torch (2 s)."""
    import os

    if not os.path.exists("/proc/driver/nvidia/gpus"):
        return False
    import torch

    return torch.cuda.is_available()


def require_vllm():
    try:
        import vllm
    except ImportError:
        raise UserError("the vllm backend needs vLLM and an NVIDIA GPU: pip install 'slmlab[vllm]'") from None
    if not gpu_present():
        raise UserError("the vllm backend needs an NVIDIA GPU, and this machine has none: use --backend llamacpp or hf")
    return vllm


def _where(model: str) -> tuple[dict, Path | None, object]:
    """(what vLLM loads, the LoRA adapter's folder or None, the resolved model)."""
    from slmlab.models import resolve
    from slmlab.models.trained import adapter_info

    resolved = resolve(model, download=True)
    adapter = None
    if resolved.kind == "lora":
        adapter = Path(resolved.location)
        resolved = resolve(adapter_info(adapter)["base_model"], download=True)
    if resolved.kind == "gguf":
        from slmlab.models.load import gguf_tokenizer_dir

        return ({"model": str(Path(resolved.location, resolved.gguf_file)),
                 "tokenizer": str(gguf_tokenizer_dir(resolved))}, adapter, resolved)  # fmt: skip
    return {"model": resolved.location}, adapter, resolved


@register_backend("vllm")
class VLLMGenerator:
    capabilities = frozenset({"token_ids"})
    overlaps_judging = True  # the GPU generates; the CPU's cores judge meanwhile

    def __init__(self, llm, resolved, adapter: Path | None, dtype: str):
        self.llm, self.resolved, self.adapter, self.dtype = llm, resolved, adapter, dtype
        self.tokenizer = llm.get_tokenizer()
        self.lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(adapter.name, 1, str(adapter))

    @classmethod
    def open(cls, model: str, dtype: str = "auto", device: str = "auto", batch_size: int = 256,
             **_) -> VLLMGenerator:  # fmt: skip
        vllm = require_vllm()
        if device not in ("auto", "cuda") and not device.startswith("cuda"):
            raise UserError(f"the vllm backend runs on a GPU: --device {device} needs --backend hf or llamacpp")
        loads, adapter, resolved = _where(model)
        lora = {}
        if adapter is not None:
            from slmlab.models.trained import adapter_info

            lora = {"enable_lora": True, "max_lora_rank": max(8, int(adapter_info(adapter).get("rank", 16)))}
        llm = vllm.LLM(**loads, dtype=dtype, enable_prefix_caching=True, gpu_memory_utilization=GPU_MEMORY,
                       max_num_seqs=batch_size, seed=0, **lora)  # fmt: skip
        return cls(llm, resolved, adapter, dtype)

    identify = staticmethod(HFGenerator.identify)  # the same weights, resolved the same way

    @staticmethod
    def engine_version() -> str:
        try:
            return f"vllm {metadata.version('vllm')}"
        except metadata.PackageNotFoundError:
            return "vllm (not installed)"

    def setup(self) -> dict:
        config = self.llm.llm_engine.model_config
        return {"backend": self.name, "engine_version": self.engine_version(), "model_location": self.resolved.location,
                "model_source": self.resolved.source, "model_sha256": self.resolved.sha256,
                "dtype": str(config.dtype).removeprefix("torch."), "lora": str(self.adapter) if self.adapter else None,
                "prefix_caching": True}  # fmt: skip

    def generate(self, requests: Iterable[Request], params: SamplingParams, on_result: Callable[[Generation], None],
                 on_step: Callable[[int], None] | None = None) -> None:  # fmt: skip
        import vllm

        engine = self.llm.llm_engine
        pending: dict[str, tuple[Request, float, int]] = {}
        for number, request in enumerate(requests):
            ids = self.tokenizer(request.prompt, add_special_tokens=request.add_special_tokens)["input_ids"]
            stops = [s for s in (request.stops or ()) if s != CLOSED_CODE_BLOCK]
            asked = vllm.SamplingParams(n=1, seed=request.seed, temperature=params.temperature, top_p=params.top_p,
                                        top_k=params.top_k or -1, repetition_penalty=params.repetition_penalty,
                                        max_tokens=request.max_new_tokens or params.max_new_tokens, stop=stops,
                                        detokenize=True, skip_special_tokens=True)  # fmt: skip
            engine.add_request(str(number), {"prompt_token_ids": ids}, asked, lora_request=self.lora)
            pending[str(number)] = (request, time.monotonic(), len(ids))
        produced: dict[str, int] = {}
        while engine.has_unfinished_requests():
            for output in engine.step():
                completion = output.outputs[0]
                if on_step is not None:
                    grown = len(completion.token_ids) - produced.get(output.request_id, 0)
                    produced[output.request_id] = len(completion.token_ids)
                    on_step(grown)
                if output.finished:
                    request, started, prompt_tokens = pending.pop(output.request_id)
                    on_result(self._generation(request, completion, started, prompt_tokens))

    def _generation(self, request: Request, completion, started: float, prompt_tokens: int) -> Generation:
        ids = list(completion.token_ids)
        text = completion.text
        cut = StopFinder(request.stops or ()).find(text)  # the chat marker, which vLLM cannot stop on
        if cut is not None:
            reason, text = "stop", text[:cut]
            while len(ids) > 1 and StopFinder(request.stops).find(self.tokenizer.decode(ids[:-1], skip_special_tokens=True)) is not None:
                ids.pop()  # the tokens up to the one that ended it, as the other engines count
        elif completion.finish_reason == "length":
            reason = "length"
        else:
            reason = "stop" if isinstance(completion.stop_reason, str) else "eos"
        return Generation(request.key, text, len(ids), reason, round(time.monotonic() - started, 4), prompt_tokens,
                          tuple(ids))  # fmt: skip
