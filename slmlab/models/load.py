"""Loading a resolved model with transformers: tokenizer and causal LM, in the dtype asked for.

GGUF files are converted once and kept as a transformers directory (safetensors) in the cache,
keyed by the file's sha256: converting SmolLM2's GGUF takes ~20 s on a laptop CPU, loading the
export well under a second, and the dense export runs faster than transformers'
packed-GGUF path. torch and transformers are imported only here, when a model is really loaded.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from slmlab.atomic import publish_dir
from slmlab.errors import UserError
from slmlab.models.cache import sha256_file, slmlab_home
from slmlab.models.resolve import ResolvedModel, resolve

DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class LoadedModel:
    name: str
    model: object  # a transformers PreTrainedModel
    tokenizer: object  # a transformers tokenizer
    resolved: ResolvedModel
    dtype: str
    load_seconds: float
    converted: bool  # True when this load converted a GGUF file (slow, once per file)


def choose_dtype(requested: str, device: str = "cpu") -> str:
    """`auto`: bfloat16 where the hardware computes in it natively (CUDA with bf16, CPUs with
    AVX512-BF16 or AMX), float32 elsewhere. Measured on a 2-core AVX2 CPU with SmolLM2: bfloat16 is
    no faster for one sequence (19 vs 17 tok/s) and 3x slower in a batch of 40 (56 vs 185 tok/s),
    because without native support every bf16 matmul is emulated."""
    if requested not in DTYPES:
        raise UserError(f"unknown dtype '{requested}': choose one of {', '.join(DTYPES)}")
    if requested != "auto":
        return requested
    return "bfloat16" if native_bfloat16(device) else "float32"


def native_bfloat16(device: str = "cpu") -> bool:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def export_dir(gguf_sha256: str) -> Path:
    return slmlab_home() / "exports" / gguf_sha256[:24]


def _convert(resolved: ResolvedModel, destination: Path) -> None:
    """GGUF -> transformers directory, written atomically (a killed conversion leaves nothing)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = dict(gguf_file=resolved.gguf_file)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.location, **gguf)
        model = AutoModelForCausalLM.from_pretrained(resolved.location, dtype=torch.float32, **gguf)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a bad file
        raise UserError(
            f"{resolved.location}/{resolved.gguf_file} could not be read as a GGUF model: {exc}"
        ) from None
    # A GGUF-loaded model refuses save_pretrained while it remembers its quantization.
    model.config.quantization_config = None
    model.hf_quantizer = None

    def save(staging: Path) -> None:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    _publish(destination, ".convert-", save)


def _publish(destination: Path, prefix: str, save) -> None:
    """`save(folder)` into a staging folder beside `destination`, renamed into place whole: a killed
    save leaves nothing."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=prefix))
    publish_dir(staging)  # readable by others once in place, as mkdir() would make it
    try:
        save(staging)
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def gguf_tokenizer_dir(resolved: ResolvedModel) -> Path:
    """A folder holding the transformers tokenizer of a GGUF file, for engines that run the file
    itself (llama.cpp, vLLM): slmlab renders chat templates and tokenizes prompts with it, as the hf
    backend does. Read from the file once (Qwen's 150K-token vocabulary takes seconds) and kept."""
    from transformers import AutoTokenizer

    sha = resolved.sha256 or sha256_file(Path(resolved.location, resolved.gguf_file))
    destination = slmlab_home() / "tokenizers" / sha[:24]
    for folder in (export_dir(sha), destination):
        if (folder / "tokenizer_config.json").is_file():
            return folder
    _quiet_gguf_conversion()
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.location, gguf_file=resolved.gguf_file)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a bad file
        raise UserError(f"{resolved.location}/{resolved.gguf_file} has no tokenizer transformers can read: {exc}") from None
    try:
        _publish(destination, ".tokenizer-", tokenizer.save_pretrained)
    except OSError:
        if not (destination / "tokenizer_config.json").is_file():  # not saved by another process first
            raise
    return destination


def gguf_tokenizer(resolved: ResolvedModel):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gguf_tokenizer_dir(resolved))


def _quiet_gguf_conversion() -> None:
    """transformers' GGUF reader shows a tqdm bar of its own, one line per update in a log file:
    keep it on terminals only (disable=None is tqdm's "off when not a tty")."""
    import functools

    from tqdm.auto import tqdm
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    if getattr(gguf_utils, "tqdm", None) is tqdm:
        gguf_utils.tqdm = functools.partial(tqdm, disable=None)


QUANTIZATIONS = ("4bit",)


def pick_device(requested: str) -> str:
    """auto: the first CUDA GPU if torch sees one, else the CPU."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {requested} asked for, but torch sees no CUDA GPU: use --device cpu")
    if not requested.startswith(("cpu", "cuda", "mps")):
        raise UserError(f"unknown device '{requested}': use auto, cpu, cuda or cuda:N")
    return requested


def _quantization_config(quantization: str | None, device: str):
    """bitsandbytes 4-bit (NF4, bf16 compute) for CUDA GPUs; None for full precision."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise UserError(
            f"unknown quantization '{quantization}': use {', '.join(QUANTIZATIONS)} or leave it out"
        )
    if not device.startswith("cuda"):
        raise UserError(
            "4-bit loading (bitsandbytes) needs a CUDA GPU: drop the quantization option on this machine"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("4-bit loading needs bitsandbytes: pip install bitsandbytes") from None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
    )


def load(name: str, dtype: str = "auto", download: bool = True, device: str = "cpu",
         quantization: str | None = None) -> LoadedModel:  # fmt: skip
    """Resolve `name` (see resolve) and load it for generation on `device`, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # slmlab shows its own progress
    _quiet_gguf_conversion()
    started = time.monotonic()
    resolved = resolve(name, download=download)
    if resolved.kind == "lora":
        return _load_adapted(resolved, dtype, download, started, device)
    device = pick_device(device)
    chosen = choose_dtype(dtype, device)
    quantize = _quantization_config(quantization, device)
    converted = False
    location = resolved.location
    if resolved.kind == "gguf":
        sha = resolved.sha256 or sha256_file(Path(resolved.location, resolved.gguf_file))
        target = export_dir(sha)
        if not (target / "config.json").is_file():
            _convert(resolved, target)
            converted = True
        location = str(target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        if quantize is not None:
            model = AutoModelForCausalLM.from_pretrained(
                location, quantization_config=quantize, device_map={"": device}
            )
        else:
            model = AutoModelForCausalLM.from_pretrained(location, dtype=getattr(torch, chosen)).to(device)
    except OSError as exc:
        raise UserError(
            f"model '{name}' could not be loaded from {location}: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    return LoadedModel(
        name, model, tokenizer, resolved, chosen, round(time.monotonic() - started, 2), converted
    )


def _load_adapted(resolved: ResolvedModel, dtype: str, download: bool, started: float,
                  device: str) -> LoadedModel:  # fmt: skip
    """A LoRA adapter's base model with the adapter merged into it."""
    from slmlab.models.trained import adapter_info, apply_adapter

    base = load(adapter_info(resolved.location)["base_model"], dtype=dtype, download=download, device=device)
    model = apply_adapter(base.model, resolved.location)
    model.eval()
    return LoadedModel(resolved.name, model, base.tokenizer, resolved, base.dtype,
                       round(time.monotonic() - started, 2), base.converted)  # fmt: skip
