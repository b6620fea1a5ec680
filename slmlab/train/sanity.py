"""Checks that a validation perplexity means what it seems to.

Seed 004 reported a validation perplexity of 1.036 (0.036 nats per GPT-2 token, about 0.02 bits per
character of Python) for a 28M-parameter model whose samples were 85% `):):):`: a number no code
model reaches, so a bug. Its usual causes each get a measurement here, and a warning when the
measurement says so:

- implausible: below PLAUSIBLE_BITS_PER_CHAR. Large code models reach roughly 0.5-1 bit per
  character of Python; a small model trained from scratch sits well above that.
- overlap: validation files also in training (exact, after normalising whitespace), and the share of
  validation 5-line windows (lines of >= 8 non-blank characters) that occur in training text.
- padding: the loss counted on padding. Packed windows have none; a validation stream made mostly
  of pad/EOS tokens or of long runs of one token makes the loss mostly about filler.
- shift: labels equal to the inputs (not shifted) teach the model to copy the token it sees; a
  causal mask that lets a position see the future makes earlier outputs depend on later inputs.
  Both are measured on the trained model itself.
"""

from __future__ import annotations

import hashlib
import math
import re
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slmlab.train.corpus import split_documents
from slmlab.train.data import evaluate

PLAUSIBLE_BITS_PER_CHAR = 0.3
OVERLAP_WARN = 0.2  # share of validation 5-line windows found in training
PADDING_WARN = 0.1  # share of validation tokens that are filler
LONG_RUN = 32
COPY_RATE_WARN = 0.5
LINE_WINDOW = 5
VAL_BELOW_TRAIN = 0.7  # validation loss under 70% of training loss
_BLANK = re.compile(r"\s+")


@dataclass
class Checks:
    warnings: list[str] = field(default_factory=list)
    measurements: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _normalised(text: str) -> str:
    return _BLANK.sub(" ", text).strip()


def _hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def _line_windows(text: str) -> set[bytes]:
    lines = [_normalised(line) for line in text.splitlines()]
    lines = [line for line in lines if len(line) >= 8]
    return {_hash("\n".join(lines[i : i + LINE_WINDOW])) for i in range(len(lines) - LINE_WINDOW + 1)}


def overlap(train_text: str, val_text: str) -> dict:
    """Validation files duplicated in training, and the share of validation 5-line windows seen there."""
    train_docs = {_hash(_normalised(d)) for d in split_documents(train_text)}
    val_docs = split_documents(val_text)
    shared_files = sum(_hash(_normalised(d)) in train_docs for d in val_docs)
    train_windows: set[bytes] = set()
    for doc in split_documents(train_text):
        train_windows |= _line_windows(doc)
    val_windows: set[bytes] = set()
    for doc in val_docs:
        val_windows |= _line_windows(doc)
    shared = len(val_windows & train_windows)
    return {
        "val_files": len(val_docs),
        "val_files_in_train": shared_files,
        "val_line_windows": len(val_windows),
        "val_line_windows_in_train": shared,
        "line_window_overlap": shared / len(val_windows) if val_windows else 0.0,
    }


def padding(tokens, tokenizer) -> dict:
    """How much of a token stream is special tokens (pad, EOS) and long runs of one repeated token,
    the two shapes padding takes. Code repeats spaces, but not 32 identical tokens in a row often."""
    import numpy as np

    ids = np.asarray(tokens, dtype=np.int64)
    special = {t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None}
    special_share = float(np.isin(ids, list(special)).mean()) if special else 0.0
    starts = np.flatnonzero(np.diff(ids, prepend=ids[0] - 1))  # first index of each run
    lengths = np.diff(np.append(starts, len(ids)))
    long = lengths >= LONG_RUN
    longest = int(lengths.argmax())
    return {
        "special_share": special_share,
        "long_run_share": float(lengths[long].sum() / len(ids)),
        "longest_run": int(lengths[longest]),
        "longest_run_token": tokenizer.convert_ids_to_tokens(int(ids[starts[longest]])),
    }


def shift(model, windows, device: str, batches: int = 2, batch_size: int = 8) -> dict:
    """Next-token accuracy against the copy rate (predicting the input token itself), and how far
    the outputs at the first half of a sequence move when only its second half changes."""
    import torch

    model.eval()
    count = min(windows.count, batches * batch_size)
    next_hits = copy_hits = total = 0
    leak = 0.0
    with torch.no_grad():
        for start in range(0, count, batch_size):
            x, y = windows.batch(range(start, min(start + batch_size, count)))
            x, y = x.to(device), y.to(device)
            logits = model(input_ids=x).logits.float()
            guess = logits.argmax(-1)
            next_hits += int((guess == y).sum())
            copy_hits += int((guess == x).sum())
            total += y.numel()
            half = x.size(1) // 2
            changed = x.clone()
            changed[:, half:] = (
                torch.roll(x[:, half:], shifts=1, dims=0)
                if x.size(0) > 1
                else (x[:, half:] + 1) % logits.size(-1)
            )
            moved = model(input_ids=changed).logits.float()[:, :half] - logits[:, :half]
            leak = max(leak, float(moved.abs().max()))
    model.train()
    return {"next_token_accuracy": next_hits / total, "copy_rate": copy_hits / total, "future_leak": leak}


def run_checks(summary, model, tokenizer, config, train_windows, val_windows, device: str) -> Checks:
    checks = Checks()
    m = checks.measurements
    bpc = summary.val_bits_per_char
    m["val_bits_per_char"] = bpc
    if bpc is not None and bpc < PLAUSIBLE_BITS_PER_CHAR:
        checks.warnings.append(
            f"validation perplexity {summary.val_ppl:.3f} is {bpc:.3f} bits per character: implausibly low "
            f"(below {PLAUSIBLE_BITS_PER_CHAR}; large code models do not get there), so suspect a bug; the checks below say which"
        )  # fmt: skip
    m["overlap"] = overlap(Path(config.train_path).read_text(encoding="utf-8"),
                           Path(config.val_path).read_text(encoding="utf-8"))  # fmt: skip
    o = m["overlap"]
    if o["val_files_in_train"]:
        checks.warnings.append(f"{o['val_files_in_train']} of {o['val_files']} validation files are also in the "
                               "training text: split the corpus by file (slmlab corpus build does)")  # fmt: skip
    if o["line_window_overlap"] > OVERLAP_WARN:
        checks.warnings.append(f"{o['line_window_overlap']:.0%} of validation 5-line windows also occur in the "
                               "training text: near-duplicate files leak across the split")  # fmt: skip
    m["padding"] = padding(val_windows.tokens, tokenizer)
    p = m["padding"]
    if p["special_share"] > PADDING_WARN or p["long_run_share"] > PADDING_WARN:
        checks.warnings.append(f"{max(p['special_share'], p['long_run_share']):.0%} of validation tokens are "
                               f"padding, EOS or long runs of one token (longest: {p['longest_run']} x "
                               f"{p['longest_run_token']!r}): the loss is mostly about filler")  # fmt: skip
    m["shift"] = shift(model, val_windows, device)
    s = m["shift"]
    if s["copy_rate"] > COPY_RATE_WARN and s["copy_rate"] > s["next_token_accuracy"]:
        checks.warnings.append(f"the model predicts the token it is given {s['copy_rate']:.0%} of the time: "
                               "labels were not shifted by one position")  # fmt: skip
    if s["future_leak"] > 1e-3:
        checks.warnings.append(f"outputs change by up to {s['future_leak']:.3g} when only later tokens change: "
                               "attention sees the future (causal mask)")  # fmt: skip
    m["val_ppl"] = summary.val_ppl
    m["val_minus_train"] = None
    if summary.val_loss is not None and not math.isnan(summary.val_loss):
        train_loss = evaluate(
            model, train_windows, config.eval_batches, config.batch_size, device, nullcontext
        )
        m["train_eval_loss"] = train_loss
        m["val_minus_train"] = summary.val_loss - train_loss
        if summary.val_loss < VAL_BELOW_TRAIN * train_loss:
            checks.warnings.append(f"validation loss {summary.val_loss:.3f} is far below the training loss "
                                   f"{train_loss:.3f} on the same model: validation text is easier or seen")  # fmt: skip
    return checks
