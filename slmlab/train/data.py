"""Token streams for training: a text file tokenized once into a flat array, cut into packed windows.

Documents (source files joined by the corpus separator) are encoded one by one and each is followed by
the EOS id, so windows pack several files with no padding at all. The array is cached next to nothing
else: under the run's directory, keyed by the text file's and the tokenizer's hashes.

Batches are a pure function of their index: window order is a permutation per epoch drawn from
(seed, epoch). Resuming at micro-batch i therefore needs no saved sampler state, and two runs with
the same seed see exactly the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slmlab.errors import UserError
from slmlab.train.corpus import split_documents

IGNORE = -100  # label positions the loss skips (padding); torch's cross_entropy default


def _digest(path: Path) -> str:
    from slmlab.models.cache import sha256_file

    return sha256_file(path)[:16]


def tokenizer_digest(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


@dataclass
class TokenStream:
    tokens: np.ndarray  # flat ids, uint16 or uint32 (memory-mapped)
    chars: int  # characters of the text it came from: bits per character need them
    documents: int

    @property
    def chars_per_token(self) -> float:
        return self.chars / max(len(self.tokens), 1)


def encode_file(path: str | Path, tokenizer, cache_dir: str | Path) -> TokenStream:
    """Tokenize `path` (cached), returning its stream."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"text file {path} does not exist; build one with: slmlab corpus build")
    cache_dir = Path(cache_dir)
    key = f"{path.stem}-{_digest(path)}-{tokenizer_digest(tokenizer)}"
    data, meta_path = cache_dir / f"{key}.bin", cache_dir / f"{key}.json"
    if not meta_path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        docs = split_documents(text)
        if not docs:
            raise UserError(f"{path} holds no text to train on")
        eos = tokenizer.eos_token_id
        dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = data.with_suffix(".bin.tmp")
        with open(staging, "wb") as out:
            for start in range(0, len(docs), 256):
                batch = tokenizer.backend_tokenizer.encode_batch(
                    docs[start : start + 256], add_special_tokens=False
                )
                for encoding in batch:
                    out.write(np.asarray([*encoding.ids, eos], dtype=dtype).tobytes())
        os.replace(staging, data)
        meta = {"dtype": np.dtype(dtype).name, "chars": sum(map(len, docs)), "documents": len(docs),
                "source": str(path)}  # fmt: skip
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    tokens = np.memmap(data, dtype=meta["dtype"], mode="r")
    return TokenStream(tokens, meta["chars"], meta["documents"])


class Windows:
    """Packed windows of seq_len + 1 tokens (inputs and their next tokens), stride seq_len."""

    def __init__(self, stream: TokenStream, seq_len: int, name: str = "data"):
        self.tokens = stream.tokens
        self.seq_len = seq_len
        self.count = (len(self.tokens) - 1) // seq_len
        if self.count < 1:
            raise UserError(
                f"{name} has {len(self.tokens)} tokens, fewer than one sequence of {seq_len + 1}: "
                "use more text or a shorter --seq-len"
            )

    def window(self, index: int) -> np.ndarray:
        start = index * self.seq_len
        return np.asarray(self.tokens[start : start + self.seq_len + 1], dtype=np.int64)

    def batch(self, indices):
        """(inputs, targets) tensors: targets are the inputs shifted by one token."""
        import torch

        rows = torch.from_numpy(np.stack([self.window(int(i)) for i in indices]))
        return rows[:, :-1], rows[:, 1:]


class BatchPlan:
    """Which windows micro-batch i holds: epoch-wise permutations seeded by (seed, epoch)."""

    def __init__(self, windows: int, batch_size: int, seed: int):
        self.windows, self.batch_size, self.seed = windows, batch_size, seed
        self._cache: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            self._cache = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.windows)}
        return self._cache[epoch]

    def indices(self, batch: int) -> list[int]:
        first = batch * self.batch_size
        return [
            int(self._order(i // self.windows)[i % self.windows])
            for i in range(first, first + self.batch_size)
        ]

    def epoch_of(self, batch: int) -> float:
        return batch * self.batch_size / self.windows


def lm_loss(logits, targets, label_smoothing: float = 0.0):
    """Cross-entropy of logits[:, t] against targets[:, t], the token after input t (callers shift:
    see `Windows.batch`). Targets equal to IGNORE (padding) count neither in the sum nor in the
    mean, with or without label smoothing."""
    import torch.nn.functional as F

    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
        ignore_index=IGNORE, label_smoothing=label_smoothing,
    )  # fmt: skip


def evaluate(model, windows: Windows, batches: int, batch_size: int, device: str, autocast) -> float:
    """Mean next-token cross-entropy (nats, no label smoothing) over the first windows of `windows`."""
    import torch

    count = min(windows.count, batches * batch_size)
    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad(), autocast():
        for start in range(0, count, batch_size):
            x, y = windows.batch(range(start, min(start + batch_size, count)))
            x, y = x.to(device), y.to(device)
            logits = model(input_ids=x, use_cache=False).logits
            total += float(lm_loss(logits, y)) * y.numel()
            tokens += y.numel()
    model.train()
    return total / tokens


def next_token_targets(input_ids, attention_mask=None):
    """Targets for a padded batch: each input's next token, IGNORE after the last real token."""
    import torch

    targets = torch.full_like(input_ids, IGNORE)
    targets[:, :-1] = input_ids[:, 1:]
    if attention_mask is not None:
        real_next = torch.zeros_like(attention_mask)
        real_next[:, :-1] = attention_mask[:, 1:]
        targets[real_next == 0] = IGNORE
    return targets
