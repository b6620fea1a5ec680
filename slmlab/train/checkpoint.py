"""Checkpoints: a transformers model directory (weights, config, tokenizer) that loads anywhere as a
model, plus `trainer_state.pt` with what exact resumption needs (optimizer, scheduler, RNG, step).

Each is written to a staging directory and renamed into place, so a run killed while saving keeps
the previous checkpoint intact. Reading one by name (`ckpt:PATH`) is slmlab.models.trained's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from slmlab.atomic import publish_dir
from slmlab.models.trained import CHECKPOINT_INFO_FILE as INFO_FILE
from slmlab.models.trained import checkpoint_info as checkpoint_info
from slmlab.models.trained import checkpoints_dir as checkpoints_dir
from slmlab.models.trained import resolve_checkpoint as resolve_checkpoint

STATE_FILE = "trainer_state.pt"


def save_checkpoint(path: Path, model, tokenizer, info: dict, state: dict | None = None) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    try:
        publish_dir(staging)  # mkdtemp's 0700 would keep the checkpoint from other users once in place
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if state is not None:
            torch.save(state, staging / STATE_FILE)
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2))
        retired = None
        if path.exists():
            retired = path.with_name(f".{path.name}-retired")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(path, retired)
        os.replace(staging, path)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[tuple[str, dict]]:
    """(name, info) of every complete checkpoint of a run, by step."""
    root = checkpoints_dir(run_dir)
    found = []
    if root.is_dir():
        for path in root.iterdir():
            if not path.name.startswith(".") and (path / INFO_FILE).is_file():
                found.append((path.name, checkpoint_info(path)))
    return sorted(found, key=lambda item: (item[1]["step"], item[0]))


def latest_resumable(run_dir: Path) -> Path | None:
    """The checkpoint with trainer state at the highest step."""
    best = None
    for name, info in list_checkpoints(run_dir):
        path = checkpoints_dir(run_dir) / name
        if (path / STATE_FILE).is_file() and (best is None or info["step"] >= best[0]):
            best = (info["step"], path)
    return best[1] if best else None


def load_state(path: Path) -> dict:
    import torch

    return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)
