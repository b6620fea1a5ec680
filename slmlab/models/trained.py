"""Models slmlab made itself, as names: `ckpt:PATH` (a checkpoint, or a training run and its best
checkpoint) and `lora:DIR` (a LoRA adapter on the base model it records).

Reading them belongs here, with every other name; writing them belongs to `slmlab.train`, which
imports these file names from here so that the two sides cannot drift apart.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

from slmlab.errors import UserError

CHECKPOINT_INFO_FILE = "checkpoint.json"
ADAPTER_INFO_FILE = "slmlab_lora.json"


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_info(path: Path) -> dict:
    return json.loads((Path(path) / CHECKPOINT_INFO_FILE).read_text())


def resolve_checkpoint(location: str) -> Path:
    """`ckpt:PATH`: a checkpoint directory, or a training run directory (its best checkpoint, else
    its final one)."""
    path = Path(location).expanduser()
    if (path / "config.json").is_file():
        return path
    for name in ("best", "final", "last"):
        candidate = checkpoints_dir(path) / name
        if (candidate / "config.json").is_file():
            return candidate
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    raise UserError(f"{path} is neither a checkpoint (with config.json) nor a training run with checkpoints")


def adapter_info(location: str | Path) -> dict:
    path = Path(location).expanduser()
    try:
        return json.loads((path / ADAPTER_INFO_FILE).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is not a LoRA adapter made by slmlab (no {ADAPTER_INFO_FILE})") from None


def trained_weights(name: str) -> Path:
    """The weights file behind a `ckpt:` or `lora:` name (what a run's identity hashes)."""
    if name.startswith("lora:"):
        return Path(name.removeprefix("lora:")).expanduser() / "adapter_model.safetensors"
    return resolve_checkpoint(name.removeprefix("ckpt:")) / "model.safetensors"


@contextlib.contextmanager
def peft_reading_deprecated_property():
    """peft (0.21.2, the newest) reads transformers' `is_gradient_checkpointing`, which transformers 5
    deprecates with a FutureWarning on every adapter made or loaded; slmlab calls peft's current API,
    so that one warning, and only it, is kept out of the user's output until peft reads the new name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def apply_adapter(model, location: str | Path, merge: bool = True):
    """The base `model` with the adapter in `location` applied (merged into the weights by default)."""
    from peft import PeftModel

    with peft_reading_deprecated_property():
        peft_model = PeftModel.from_pretrained(model, str(location))
    return peft_model.merge_and_unload() if merge else peft_model


def trained_weights_sha256(name: str) -> str:
    from slmlab.models.cache import sha256_file

    weights = trained_weights(name)
    try:
        return sha256_file(weights)
    except OSError as exc:
        raise UserError(f"model {name}: cannot read {weights} ({exc.strerror})") from None
