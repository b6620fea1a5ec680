"""Model FLOPs utilisation: the share of the device's peak that training turns into model FLOPs.

FLOPs per token follow the PaLM appendix (as nanoGPT prints them): 6 per weight that takes part in
a matmul (forward + backward), plus 12 * layers * hidden * sequence for attention scores. The
input embedding is a lookup, not a matmul, so it is left out.
"""

from __future__ import annotations

import re
from pathlib import Path

# Dense peak throughput per device for bfloat16 matmuls (vendor figures, no sparsity).
GPU_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
                 "RTX 4090": 165e12, "RTX 5090": 209e12, "A10": 125e12}  # fmt: skip


def flops_per_token(parameters: int, vocab_size: int, hidden: int, layers: int, seq_len: int) -> float:
    matmul_weights = parameters - vocab_size * hidden
    return 6 * matmul_weights + 12 * layers * hidden * seq_len


def _cpu_ghz() -> float | None:
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        return int(khz) / 1e6
    except (OSError, ValueError):
        pass
    try:
        match = re.search(r"^cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        return None
    return float(match.group(1)) / 1000 if match else None


def peak_flops(device: str, dtype: str, override_tflops: float | None = None) -> tuple[float | None, str]:
    """(peak FLOP/s, how it was found); (None, why not) when unknown."""
    if override_tflops:
        return override_tflops * 1e12, f"--peak-tflops {override_tflops}"
    import torch

    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        for key, peak in GPU_PEAK_BF16.items():
            if key in name:
                # float32 matmuls run as TF32 on these GPUs: half the bf16 rate.
                scale = 1.0 if dtype == "bfloat16" else 0.5
                return peak * scale, f"{name}, {'bf16' if scale == 1 else 'tf32'} dense peak"
        return None, f"peak of {name} unknown: pass --peak-tflops"
    ghz = _cpu_ghz()
    if ghz is None:
        return None, "CPU clock unknown: pass --peak-tflops"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    # Two FMA units per core, 8 (AVX2) or 16 (AVX-512) float32 lanes, 2 FLOPs per FMA.
    lanes = 16 if re.search(r"\bavx512f\b", flags) else 8 if re.search(r"\bfma\b", flags) else 4
    threads = torch.get_num_threads()
    return (
        threads * ghz * 1e9 * 2 * lanes * 2,
        f"{threads} CPU threads x {ghz:.2f} GHz x {4 * lanes} FLOP/cycle",
    )
