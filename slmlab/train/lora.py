"""LoRA fine-tuning with peft on any slmlab model, and fine-tuned models as ordinary model names.

`train_lora(base, examples, settings, out)` trains an adapter on (prompt, completion) pairs: the loss
counts the completion's tokens only (the prompt and padding are masked), as the model will be asked
to continue prompts. GGUF models are fine-tuned on their safetensors export (slmlab.models.load
converts them once): a GGUF-loaded model cannot be trained.

The adapter directory holds peft's files, the tokenizer and `slmlab_lora.json` (the base model's
name and weights hash, the settings, the loss curve), so `lora:DIR` names the fine-tuned model
everywhere a model name is accepted (eval, probes, the LoRA study): the base is loaded, the adapter
applied and merged for generation speed.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from slmlab.errors import UserError
from slmlab.models.trained import ADAPTER_INFO_FILE as INFO_FILE
from slmlab.models.trained import adapter_info as adapter_info
from slmlab.models.trained import apply_adapter as apply_adapter
from slmlab.models.trained import peft_reading_deprecated_property


class LoraSettings(BaseModel):
    """Seed 001's defaults: alpha 32, dropout 0.1, 3 epochs, lr 1e-4, length 512."""

    model_config = ConfigDict(extra="forbid", validate_default=True)  # 32 and 32.0: one identity

    rank: int = Field(16, gt=0)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"  # peft's shortcut: every linear layer but the head
    epochs: int = Field(3, gt=0)
    lr: float = Field(1e-4, gt=0)
    max_length: int = Field(512, gt=8)
    batch_size: int = Field(8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    curriculum: bool = False  # keep the examples' order (simple to complex) instead of shuffling
    seed: int = 0


@dataclass
class LoraResult:
    adapter: str
    base_model: str
    examples: int
    steps: int
    trainable_parameters: int
    total_parameters: int
    seconds: float
    peak_rss_mb: float
    losses: list[float] = field(default_factory=list)  # mean loss per epoch

    def to_dict(self) -> dict:
        return asdict(self)


def encode_examples(
    tokenizer, examples: list[tuple[str, str]], max_length: int
) -> list[tuple[list[int], int]]:
    """(token ids of prompt + completion + EOS, number of prompt tokens), cut to max_length."""
    encoded = []
    for prompt, completion in examples:
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        completion_ids = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        ids = (prompt_ids + completion_ids)[:max_length]
        if len(prompt_ids) < len(ids):  # some completion left after the cut
            encoded.append((ids, len(prompt_ids)))
    return encoded


def collate(batch: list[tuple[list[int], int]], pad_id: int):
    """Right-padded inputs, attention mask, and targets for position t (token t+1), IGNORE on the
    prompt and on padding."""
    import torch

    from slmlab.train.data import IGNORE

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.full((len(batch), width), IGNORE)
    for row, (ids, prompt_length) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        targets[row, prompt_length - 1 : len(ids) - 1] = torch.tensor(ids[prompt_length:])
    return input_ids, mask, targets


def train_lora(base_model: str, examples: list[tuple[str, str]], settings: LoraSettings, out: str | Path,
               console=None, device: str = "auto") -> LoraResult:  # fmt: skip
    """Fine-tune an adapter for `base_model` (any slmlab model name) on `device` and save it in `out`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from slmlab.models.load import load
    from slmlab.train.data import lm_loss

    if not examples:
        raise UserError("no training examples: LoRA needs at least one (prompt, completion) pair")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Writing model shards" when the adapter is saved
    started = time.monotonic()
    loaded = load(base_model, dtype="float32", device=device)
    tokenizer = loaded.tokenizer
    encoded = encode_examples(tokenizer, examples, settings.max_length)
    if not encoded:
        raise UserError(f"every example's prompt is longer than max_length {settings.max_length}: raise it")
    torch.manual_seed(settings.seed)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=settings.target_modules, task_type="CAUSAL_LM")  # fmt: skip
    try:
        with peft_reading_deprecated_property():
            model = get_peft_model(loaded.model, config)
    except ValueError as exc:  # peft's word for target modules the model does not have
        if "not found" not in str(exc).lower() and "target modules" not in str(exc).lower():
            raise
        names = sorted({n.rsplit(".", 1)[-1] for n, m in loaded.model.named_modules()
                        if isinstance(m, torch.nn.Linear)})  # fmt: skip
        asked = settings.target_modules
        asked = asked if isinstance(asked, str) else ",".join(asked)
        raise UserError(f"--target-modules {asked}: not in {base_model}, whose linear layers are "
                        f"{', '.join(names)} (or use all-linear)") from None
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = list(range(len(encoded)))
    generator = torch.Generator().manual_seed(settings.seed)
    losses, steps = [], 0
    for _ in range(settings.epochs):
        if not settings.curriculum:
            # Shuffled, then grouped by length within each shuffle window: a batch is padded to its
            # longest example, and random batches of code pad away about half their tokens.
            order = get_length_grouped_indices([len(ids) for ids, _ in encoded], settings.batch_size,
                                               generator=generator)  # fmt: skip
        total, count = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            batch = [encoded[i] for i in order[start : start + settings.batch_size]]
            input_ids, mask, targets = (t.to(loaded.model.device) for t in collate(batch, pad_id))
            # Logits only from the first target on: the prompt's would be thrown away by the loss, and
            # at a 49K vocabulary they are most of the step's memory.
            first = min(prompt_length for _, prompt_length in batch) - 1
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False,
                           logits_to_keep=input_ids.shape[1] - first).logits  # fmt: skip
            loss = lm_loss(logits, targets[:, first:])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total, count, steps = total + float(loss.detach()), count + 1, steps + 1
        losses.append(total / count)
        if console is not None:
            console.print(f"  epoch {len(losses)}: loss {losses[-1]:.4f}")
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    result = LoraResult(
        adapter=str(out), base_model=base_model, examples=len(encoded), steps=steps,
        trainable_parameters=sum(p.numel() for p in trainable), total_parameters=sum(p.numel() for p in model.parameters()),
        seconds=round(time.monotonic() - started, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), losses=losses,
    )  # fmt: skip
    info = {"base_model": base_model, "base_source": loaded.resolved.source, "settings": settings.model_dump(),
            "result": result.to_dict()}  # fmt: skip
    (out / INFO_FILE).write_text(json.dumps(info, indent=2))
    return result
