"""The backends by name (`--backend`): each engine file registers itself with
`slmlab.generate.base.register_backend`; adding an engine is one file plus its import here.

`auto` picks the fastest engine that can do what the run asks, from what this machine has: vLLM on a
GPU where it is installed; on a CPU, llama.cpp for a GGUF model where its server is built, unless
the CPU computes bfloat16 natively (AVX512-BF16, AMX): there the hf engine's bfloat16 batches were
faster (benchmarks/generation_throughput.py on 2 Zen 4 cores, 200 HumanEval samples: 215 against
123 useful tokens/s for SmolLM2, 134 against 72 for Qwen2.5-Coder-0.5B), while without it the hf
engine runs float32 at about half its speed; the hf engine otherwise, and always for activation
capture, steering or a torch dtype or quantization.
"""

from __future__ import annotations

import importlib.util

from slmlab.errors import UserError
from slmlab.generate import hf, llamacpp, openai_api, vllm_engine  # noqa: F401  register themselves
from slmlab.generate.base import BACKENDS, Generator
from slmlab.generate.llama_server import find_server
from slmlab.generate.vllm_engine import gpu_present
from slmlab.models.load import native_bfloat16


def choices() -> tuple[str, ...]:
    """What `--backend` takes: auto, then every registered engine."""
    return ("auto", *BACKENDS)


def backend(name: str):
    """The generator class registered as `name`, or one line naming the choices."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}': choose one of {', '.join(choices())}")
    return BACKENDS[name]


def runs_gguf(model: str) -> bool:
    """Whether `model` names a GGUF file: a built-in model (all are GGUF) or a .gguf path."""
    from slmlab.models.registry import find_spec

    return find_spec(model) is not None or model.endswith(".gguf")


def choose(requested: str, model: str, needs: frozenset[str] = frozenset(), dtype: str = "auto",
           device: str = "auto", quantization: str | None = None) -> tuple[str, str]:
    """(backend, why) for a run that asked for `requested` and needs these capabilities."""
    if requested != "auto":
        return requested, "asked for"
    if needs & {"capture", "steer"}:
        return "hf", "the only engine that reaches inside the model"
    if dtype != "auto" or quantization:
        return "hf", f"--dtype {dtype}" if dtype != "auto" else f"--quantization {quantization}"
    wants_gpu = device.startswith("cuda") or device == "auto"
    if wants_gpu and not runs_gguf(model) and importlib.util.find_spec("vllm") and gpu_present():
        return "vllm", "a GPU and vLLM are here"
    on_cpu = device == "cpu" or (device == "auto" and not gpu_present())
    if on_cpu and runs_gguf(model) and find_server() is not None:
        if not native_bfloat16("cpu"):
            return "llamacpp", "the fastest engine for a GGUF model on a CPU without native bfloat16"
        return "hf", "in bfloat16, native on this CPU, the hf engine's batches outrun llama.cpp's (--backend llamacpp to choose it)"
    return "hf", "no faster engine here for this model" + (
        "" if find_server() else " (llama.cpp is not built: ./scripts/build_llamacpp.sh)"
    )


def open_generator(name: str, model: str, **settings) -> Generator:
    """The `name` engine with `model` loaded (settings: dtype, device, quantization, batch_size, and
    a server's base_url, api_key_env, concurrency, request_timeout, max_retries)."""
    if name == "auto":
        name, _ = choose(name, model, dtype=settings.get("dtype", "auto"), device=settings.get("device", "auto"),
                         quantization=settings.get("quantization"))  # fmt: skip
    return backend(name).open(model, **settings)
