"""Captured activations on disk: float16 rows in flat files next to the run store, indexed in it.

One directory per run (`activations/<run_id>/` beside `slmlab.db`) holds one file per kind:
`prompt_last.f16` and `generated_mean.f16` with one [layers, hidden] row per sample, and
`generated.f16` with one [layers, hidden] row per generated token when every token is kept. Rows are
appended as samples finish, so memory stays bounded whatever the number of samples; the store's
`activations` table maps each sample to its row (and token range) in the same transaction that
stores the sample. A run killed between the two leaves rows no index points to: reopening truncates
every file to what the index covers, so resumed rows line up again. Flat files rather than .npy
because .npy cannot be appended to; reading maps them with numpy.memmap.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slmlab.errors import UserError
from slmlab.probe.capture import KINDS

LAYOUT = "layout.json"


def activations_dir(store_path: Path, run_id: str) -> Path:
    return Path(store_path).parent / "activations" / run_id


@dataclass(frozen=True)
class Layout:
    layers: list[int]
    hidden_size: int
    tokens: bool  # every generated token kept too

    @property
    def kinds(self) -> tuple[str, ...]:
        return (*KINDS, "generated") if self.tokens else KINDS

    @property
    def row_values(self) -> int:
        return len(self.layers) * self.hidden_size


@dataclass(frozen=True)
class IndexEntry:
    row: int
    token_start: int
    n_tokens: int


class ActivationWriter:
    """Appends one sample's activations at a time; `append` returns where they went."""

    def __init__(self, directory: Path, layout: Layout, committed_rows: int, committed_tokens: int):
        self.directory, self.layout = Path(directory), layout
        self.directory.mkdir(parents=True, exist_ok=True)
        layout_file = self.directory / LAYOUT
        if layout_file.exists():
            if Layout(**json.loads(layout_file.read_text())) != layout:
                raise UserError(f"{self.directory} holds activations of another layout; use a new --out")
        else:
            layout_file.write_text(json.dumps(layout.__dict__))
        sizes = {"generated": committed_tokens}
        self.files = {}
        for kind in layout.kinds:
            path = self.directory / f"{kind}.f16"
            size = sizes.get(kind, committed_rows) * layout.row_values * 2
            with open(path, "ab") as f:  # creates it; then drop rows no index entry points to
                f.truncate(size)
            self.files[kind] = open(path, "ab")  # noqa: SIM115 - held open for the whole run
        self.rows, self.tokens = committed_rows, committed_tokens

    def append(self, activations: dict[str, np.ndarray]) -> IndexEntry:
        for kind, f in self.files.items():
            array = np.ascontiguousarray(activations[kind], dtype=np.float16)
            f.write(array.tobytes())
            f.flush()  # before the index entry is committed, so an indexed row is always on disk
        n_tokens = len(activations["generated"]) if self.layout.tokens else 0
        entry = IndexEntry(self.rows, self.tokens, n_tokens)
        self.rows += 1
        self.tokens += n_tokens
        return entry

    def close(self) -> None:
        for f in self.files.values():
            os.fsync(f.fileno())
            f.close()

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def read_layout(directory: Path) -> Layout:
    path = Path(directory) / LAYOUT
    if not path.is_file():
        raise UserError(f"no activations in {directory}; run `slmlab eval ... --capture-layers all` first")
    return Layout(**json.loads(path.read_text()))


def read_rows(directory: Path, kind: str, layer: int, rows: list[int]) -> np.ndarray:
    """The activations of `layer` for the given rows, as float32 [len(rows), hidden]."""
    layout = read_layout(directory)
    if kind not in layout.kinds:
        raise UserError(f"activation kind {kind!r} was not captured (captured: {', '.join(layout.kinds)})")
    if layer not in layout.layers:
        raise UserError(f"layer {layer} was not captured (captured: {layout.layers})")
    path = Path(directory) / f"{kind}.f16"
    count = path.stat().st_size // (layout.row_values * 2)
    data = np.memmap(path, dtype=np.float16, mode="r", shape=(count, len(layout.layers), layout.hidden_size))
    return np.asarray(data[rows, layout.layers.index(layer)], dtype=np.float32)
