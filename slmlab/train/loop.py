"""Pre-training from scratch: packed sequences, AdamW with warmup and cosine decay, gradient
accumulation and clipping, evaluation every N steps, checkpoints, exact resumption.

The loop is written out (not transformers' Trainer) because exact resumption here is a promise the
tests keep: the data order is a function of the step (see data.BatchPlan), and the optimizer,
scheduler and RNG states travel in every checkpoint, so N steps in one go and N/2 + resume + N/2
give the same losses bit for bit on a CPU.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slmlab.atomic import write_text_atomic
from slmlab.errors import UserError
from slmlab.models.load import pick_device
from slmlab.train import checkpoint as ckpt
from slmlab.train.arch import build_model, describe
from slmlab.train.config import TrainConfig, parse_tokenizer_spec
from slmlab.train.data import BatchPlan, Windows, encode_file, evaluate, lm_loss
from slmlab.train.flops import flops_per_token, peak_flops


@dataclass
class TrainSummary:
    experiment: str
    run_dir: str
    steps: int
    tokens: int
    train_loss: float | None
    val_loss: float | None
    val_ppl: float | None
    val_bits_per_char: float | None
    best_val_loss: float | None
    best_step: int | None
    seconds: float
    tokens_per_second: float
    mfu: float | None
    mfu_basis: str
    device: str
    dtype: str
    model: dict
    tokenizer: dict
    data: dict
    checkpoints: list[str]
    resumed_from: int | None = None
    paused: bool = False
    warnings: list[str] = field(default_factory=list)
    checks: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def prepare_tokenizer(spec: str, train_path: Path, val_path: Path, run_dir: Path):
    """A tokenizer directory as given, or one made into the run directory (char, bpe-N, gpt2)."""
    from slmlab.train.tokenizer import load_tokenizer, train_tokenizer

    parsed = parse_tokenizer_spec(spec)
    if parsed is None:
        return load_tokenizer(spec), {"path": str(Path(spec).resolve())}
    target = run_dir / "tokenizer"
    if not (target / "tokenizer.json").is_file():
        kind, size = parsed
        report = train_tokenizer(kind, [train_path], target, vocab_size=size, eval_files=[val_path])
        (target / "slmlab_tokenizer.json").write_text(json.dumps(report.to_dict(), indent=2))
    info = json.loads((target / "slmlab_tokenizer.json").read_text())
    return load_tokenizer(target), {"spec": spec, "path": str(target), **info}


def _lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup to lr, then cosine to min_lr at max_steps."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.max_steps - config.warmup_steps, 1)
    progress = min(max(step - config.warmup_steps, 0) / span, 1.0)
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def make_optimizer(model, config: TrainConfig, device: str):
    """AdamW; weight decay on matrices only (not on norms, biases)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # The fused kernel (CUDA and CPU) does the whole update in one pass per tensor.
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


def optimizer_step(model, forward, batches, optimizer, config: TrainConfig, device: str, autocast) -> float:
    """One optimizer step over `batches` (grad_accum micro-batches of (inputs, targets)): the mean
    training loss (with label smoothing). The benchmark times exactly this against nanoGPT's step."""
    import torch

    step_loss = 0.0
    for x, y in batches:  # use_cache=False: training never reads a KV cache, so do not build one
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast():
            loss = lm_loss(forward(input_ids=x, use_cache=False).logits, y, config.label_smoothing)
        (loss / config.grad_accum).backward()
        step_loss += float(loss.detach()) / config.grad_accum
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss


class _Log:
    """The run's JSONL log; on resume it is cut back to the checkpoint's step."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        if resume_step is None:
            path.write_text("")
        elif path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line and json.loads(line)["step"] <= resume_step
            ]
            write_text_atomic(path, "".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_log(run_dir: Path, experiment: str) -> list[dict]:
    path = Path(run_dir) / f"{experiment}_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def train(config: TrainConfig, console=None, resume: bool = False, stop_at: int | None = None,
          progress: bool = True) -> TrainSummary:  # fmt: skip
    """Train (or resume) and return the summary also written to <run>/<experiment>_summary.json.
    `stop_at`: pause after that step with a resumable checkpoint (the schedule still ends at max_steps)."""
    import torch
    from transformers.utils import logging as transformers_logging

    from slmlab.train.sanity import run_checks

    transformers_logging.disable_progress_bar()  # "Writing model shards" at every checkpoint
    started = time.monotonic()
    run_dir = config.run_dir
    start = _Start(run_dir)  # until the loop begins, a failure takes back what this call made
    try:
        device = pick_device(config.device)
        dtype = _dtype(config.dtype, device)
        resume_from = ckpt.latest_resumable(run_dir) if resume else None
        if resume and resume_from is None:
            raise UserError(
                f"nothing to resume in {run_dir}: no checkpoint with trainer state; start without --resume"
            )
        if not resume and ckpt.list_checkpoints(run_dir):
            raise UserError(f"{run_dir} already holds checkpoints: pass --resume to continue, or choose another "
                            "--experiment-name / --log-dir")  # fmt: skip
        saved = run_dir / "train_config.json"
        if resume_from is not None and saved.is_file():
            before, now = json.loads(saved.read_text()), json.loads(config.model_dump_json())
            changed = sorted(k for k in now if before.get(k) != now[k])
            if changed:
                raise UserError(f"{run_dir} was trained with other {', '.join(changed)}: resume with the same settings, "
                                "or start a new run with another --experiment-name")  # fmt: skip

        tokenizer, tokenizer_info = prepare_tokenizer(
            config.tokenizer, config.train_path, config.val_path, run_dir
        )
        train_stream = encode_file(config.train_path, tokenizer, run_dir / "tokens")
        val_stream = encode_file(config.val_path, tokenizer, run_dir / "tokens")
        train_windows = Windows(train_stream, config.seq_len, "the training text")
        val_windows = Windows(val_stream, config.seq_len, "the validation text")
        vocab = len(tokenizer)
        plan = BatchPlan(train_windows.count, config.batch_size, config.seed)

        model = build_model(config.arch, vocab, tokenizer.eos_token_id, seed=config.seed).to(device)
        model.train()
        optimizer = make_optimizer(model, config, device)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_at(s, config) / config.lr)
        start_step, best = 0, (None, None)
        if resume_from is not None:
            state = ckpt.load_state(resume_from)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"]["torch"])
            if device.startswith("cuda") and state["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"], torch.device(device))
            start_step, best = state["step"], tuple(state["best"])
        else:
            torch.manual_seed(config.seed)
        forward = torch.compile(model) if config.compile else model

        size = describe(config.arch, vocab)
        per_token = flops_per_token(size["parameters"], vocab, config.arch.hidden_dim, config.arch.num_layers,
                                    config.seq_len)  # fmt: skip
        peak, peak_basis = peak_flops(device, dtype, config.peak_tflops)
        # Written once everything training needs is there: a start that failed leaves no run behind.
        write_text_atomic(saved, config.model_dump_json(indent=2))
    except BaseException:
        start.undo()
        raise
    log = _Log(run_dir / f"{config.experiment_name}_log.jsonl", start_step if resume_from else None)

    def autocast():
        if dtype == "bfloat16":
            return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        return nullcontext()

    def state_now(step: int) -> dict:
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(torch.device(device)) if device.startswith("cuda") else None}  # fmt: skip
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng, "step": step, "best": list(best)}  # fmt: skip

    def save(name: str, step: int, val_loss: float | None, with_state: bool = True) -> None:
        info = {"step": step, "val_loss": val_loss, "experiment": config.experiment_name,
                "tokens": step * config.tokens_per_step}  # fmt: skip
        ckpt.save_checkpoint(ckpt.checkpoints_dir(run_dir) / name, model, tokenizer, info,
                             state_now(step) if with_state else None)  # fmt: skip

    window_loss, window_steps, window_started, window_tokens = 0.0, 0, time.monotonic(), 0
    last_train, last_val, tok_rate, mfu = None, None, 0.0, None
    end = min(config.max_steps, stop_at) if stop_at else config.max_steps
    bar = _progress(console, progress)
    task = bar.add_task("training", total=config.max_steps, completed=start_step, info="") if bar else None
    step = start_step
    try:
        with bar or nullcontext():
            for step in range(start_step + 1, end + 1):
                micro = range((step - 1) * config.grad_accum, step * config.grad_accum)
                batches = (train_windows.batch(plan.indices(i)) for i in micro)
                step_loss = optimizer_step(model, forward, batches, optimizer, config, device, autocast)
                scheduler.step()
                window_loss += step_loss
                window_steps += 1
                window_tokens += config.tokens_per_step
                record = {"step": step, "loss": step_loss, "lr": scheduler.get_last_lr()[0]}
                if step % config.log_every == 0 or step == end:
                    elapsed = max(time.monotonic() - window_started, 1e-9)
                    tok_rate = window_tokens / elapsed
                    mfu = tok_rate * per_token / peak if peak else None
                    last_train = window_loss / window_steps
                    record.update(
                        tokens_per_s=round(tok_rate, 1),
                        mfu=mfu,
                        epoch=round(plan.epoch_of(step * config.grad_accum), 4),
                    )
                    window_loss, window_steps, window_tokens, window_started = 0.0, 0, 0, time.monotonic()
                paused_at = time.monotonic()  # evaluation and saving are not training speed
                if step % config.eval_every == 0 or step == config.max_steps or step == end:
                    last_val = evaluate(
                        model, val_windows, config.eval_batches, config.batch_size, device, autocast
                    )
                    record.update(val_loss=last_val, val_ppl=math.exp(min(last_val, 50)))
                    if best[0] is None or last_val < best[0]:
                        best = (last_val, step)
                        save("best", step, last_val, with_state=False)
                    save("last", step, last_val)
                    if console is not None:
                        console.print(f"step {step}: loss {step_loss:.4f} | val {last_val:.4f} (ppl {math.exp(min(last_val, 50)):.2f})"
                                      f" | {tok_rate:,.0f} tok/s" + (f" | MFU {mfu:.1%}" if mfu is not None else ""))  # fmt: skip
                if config.save_every and step % config.save_every == 0 and step != config.max_steps:
                    save(f"step-{step:07d}", step, last_val)
                window_started += time.monotonic() - paused_at
                log.write(record)
                if bar:
                    info = f"loss {step_loss:.3f} | {tok_rate:,.0f} tok/s" + (
                        f" | MFU {mfu:.1%}" if mfu is not None else ""
                    )
                    bar.update(task, completed=step, info=info)
    except KeyboardInterrupt:
        save("last", step, last_val)
        raise UserError(f"interrupted at step {step}; checkpoint saved: resume with --resume") from None

    paused = end < config.max_steps
    if not paused:
        save("final", step, last_val, with_state=False)
    seconds = time.monotonic() - started
    val_bpc = last_val / math.log(2) / val_stream.chars_per_token if last_val is not None else None
    summary = TrainSummary(
        experiment=config.experiment_name, run_dir=str(run_dir), steps=step, tokens=step * config.tokens_per_step,
        train_loss=last_train, val_loss=last_val, val_ppl=math.exp(min(last_val, 50)) if last_val is not None else None,
        val_bits_per_char=val_bpc, best_val_loss=best[0], best_step=best[1], seconds=round(seconds, 1),
        tokens_per_second=round(tok_rate, 1), mfu=mfu, mfu_basis=peak_basis, device=device, dtype=dtype,
        model={**size, "arch": config.arch.model_dump()}, tokenizer=tokenizer_info,
        data={"train_tokens": len(train_stream.tokens), "val_tokens": len(val_stream.tokens),
              "train_documents": train_stream.documents, "val_documents": val_stream.documents,
              "val_chars_per_token": round(val_stream.chars_per_token, 3),
              "epochs": round(plan.epoch_of(step * config.grad_accum), 3)},
        checkpoints=[name for name, _ in ckpt.list_checkpoints(run_dir)],
        resumed_from=start_step if resume_from else None, paused=paused,
    )  # fmt: skip
    if not paused:
        checks = run_checks(summary, model, tokenizer, config, train_windows, val_windows, device)
        summary.checks, summary.warnings = checks.to_dict(), checks.warnings
    write_text_atomic(
        run_dir / f"{config.experiment_name}_summary.json", json.dumps(summary.to_dict(), indent=2)
    )
    return summary


class _Start:
    """What a start of training made in the file system, so that a start that fails (a missing file,
    a bad tokenizer, an interrupt while it is prepared) takes it back and leaves nothing that looks
    like a run: the run folder and the folders above it that it made, or, in a folder that was
    there already, the entries that were not."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.made = []  # folders that did not exist, the run folder first
        folder = run_dir.absolute()
        while not folder.exists() and folder != folder.parent:
            self.made.append(folder)
            folder = folder.parent
        if not self.made and not run_dir.is_dir():
            raise UserError(
                f"{run_dir} is a file, not a folder: choose another --log-dir or --experiment-name"
            )
        self.before = set() if self.made else {entry.name for entry in run_dir.iterdir()}
        run_dir.mkdir(parents=True, exist_ok=True)

    def undo(self) -> None:
        import shutil

        if self.made:
            shutil.rmtree(self.made[0], ignore_errors=True)
            for folder in self.made[1:]:
                try:
                    folder.rmdir()  # only while empty: something else may have put a file there since
                except OSError:
                    break
            return
        for entry in self.run_dir.iterdir():
            if entry.name not in self.before:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def _dtype(requested: str, device: str) -> str:
    from slmlab.models.load import native_bfloat16

    if requested != "auto":
        return requested
    return "bfloat16" if native_bfloat16(device) else "float32"


def _progress(console, enabled: bool):
    if console is None or not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console, transient=False)  # fmt: skip
