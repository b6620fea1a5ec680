"""Training throughput: slmlab's training step against nanoGPT's, same dimensions, batch and dtype.

Seed 003's shape (8 layers, hidden 512, 8 heads, sequence 256, 8K vocabulary), with nanoGPT's 4x MLP
and nanoGPT's tied input/output embeddings, so both models have the same matmuls and parameters. slmlab runs its own `optimizer_step` (label smoothing off,
clip 1.0, fused AdamW) on two of its families: GPT-NeoX (rope, seed 003's choice) and GPT-2
(learned positions, nanoGPT's own architecture). nanoGPT runs its `GPT` model and the step of its
train.py (model(X, Y) -> loss, backward, clip 1.0, the AdamW from configure_optimizers).

nanoGPT's code is not part of slmlab: fetch it and point at its folder,
    git clone https://github.com/karpathy/nanoGPT /tmp/nanogpt
    .venv/bin/python benchmarks/train_throughput.py --nanogpt /tmp/nanogpt [--device cuda --dtype bfloat16]
Rounds alternate between the contenders so drifts in machine load hit all of them; the median of
each contender's per-round tokens/s is reported, with the ratio to nanoGPT.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import statistics
import sys
import time
from pathlib import Path

import torch

from slmlab.train.arch import ArchConfig, build_model, describe
from slmlab.train.config import TrainConfig
from slmlab.train.flops import flops_per_token, peak_flops
from slmlab.train.loop import make_optimizer, optimizer_step


def _load_nanogpt(folder: Path):
    path = folder / "model.py"
    if not path.is_file():
        sys.exit(f"no nanoGPT model.py in {folder}: git clone https://github.com/karpathy/nanoGPT there")
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _autocast(device: str, dtype: str):
    if dtype == "bfloat16":
        return lambda: torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext


def slmlab_contender(args, position: str):
    arch = ArchConfig(num_layers=args.layers, hidden_dim=args.hidden, num_heads=args.heads, ffn_multiplier=4.0,
                      position_encoding=position, max_seq_len=args.seq, tie_embeddings=True)  # fmt: skip
    model = build_model(arch, args.vocab, eos_id=0).to(args.device)
    model.train()
    config = TrainConfig(arch=arch, experiment_name="bench", train_path="-", val_path="-",
                         batch_size=args.batch, seq_len=args.seq, grad_clip=1.0)  # fmt: skip
    optimizer = make_optimizer(model, config, args.device)
    forward = torch.compile(model) if args.compile else model
    autocast = _autocast(args.device, args.dtype)

    def step(x, y):
        optimizer_step(model, forward, [(x, y)], optimizer, config, args.device, autocast)

    return step, describe(arch, args.vocab)["parameters"]


def nanogpt_contender(args, nanogpt):
    config = nanogpt.GPTConfig(block_size=args.seq, vocab_size=args.vocab, n_layer=args.layers, n_head=args.heads,
                               n_embd=args.hidden, dropout=0.0, bias=True)  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter counts
        model = nanogpt.GPT(config).to(args.device)
        optimizer = model.configure_optimizers(0.01, 3e-4, (0.9, 0.95), args.device.split(":")[0])
    model.train()
    forward = torch.compile(model) if args.compile else model
    autocast = _autocast(args.device, args.dtype)

    def step(x, y):  # nanoGPT train.py's inner step, without its DDP and scaler branches
        with autocast():
            _, loss = forward(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())

    return step, sum(p.numel() for p in model.parameters())


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path, required=True, help="folder with nanoGPT's model.py")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    nanogpt = _load_nanogpt(args.nanogpt)
    contenders = {
        "nanoGPT (GPT, learned)": nanogpt_contender(args, nanogpt),
        "slmlab GPT-2 (learned)": slmlab_contender(args, "learned"),
        "slmlab GPT-NeoX (rope)": slmlab_contender(args, "rope"),
    }
    x = torch.randint(0, args.vocab, (args.batch, args.seq), device=args.device)
    y = torch.randint(0, args.vocab, (args.batch, args.seq), device=args.device)
    for step, _ in contenders.values():  # warm-up: allocator, autotuning, compilation
        for _ in range(2):
            step(x, y)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (step, _) in contenders.items():
            _sync(args.device)
            started = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            _sync(args.device)
            rates[name].append(args.steps * args.batch * args.seq / (time.perf_counter() - started))

    peak, basis = peak_flops(args.device, args.dtype)
    anchor = statistics.median(rates["nanoGPT (GPT, learned)"])
    print(f"L{args.layers} H{args.hidden} heads {args.heads}, vocab {args.vocab}, sequence {args.seq}, batch {args.batch}, "
          f"{args.dtype} on {args.device}{' (compiled)' if args.compile else ''}; peak: {basis}")  # fmt: skip
    print(
        f"{'contender':26} {'params':>12} {'tokens/s':>10} {'rounds min-max':>15} {'vs nanoGPT':>10} {'MFU':>7}"
    )
    for name, (_, params) in contenders.items():
        rate = statistics.median(rates[name])
        mfu = (
            rate * flops_per_token(params, args.vocab, args.hidden, args.layers, args.seq) / peak
            if peak
            else None
        )
        spread = f"{min(rates[name]):,.0f}-{max(rates[name]):,.0f}"
        mfu_text = f"{mfu:>7.1%}" if mfu is not None else f"{'-':>7}"
        print(f"{name:26} {params:>12,} {rate:>10,.0f} {spread:>15} {rate / anchor:>9.2f}x {mfu_text}")


if __name__ == "__main__":
    main()
