"""Probing a stored capture run: its activations against its outcomes, every layer, then one in depth.

Used by `slmlab probe RUN` and by the bottleneck study; the numbers come from slmlab.probe.analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from slmlab.probe.analysis import LayerAnalysis, analyse_layer, best_layer_p_value, enough, layer_sweep
from slmlab.probe.arrays import activations_dir, read_layout, read_rows
from slmlab.probe.capture import resolve_layers
from slmlab.store import Store


@dataclass
class ProbeFindings:
    """What probing a run found; `summary()` says it in one paragraph."""

    run_id: str
    kind: str
    note: str = ""  # why nothing was probed, when nothing was
    sweep: list = field(default_factory=list)  # [(layer, ProbeScore | None)]
    best_layer: int | None = None
    family_p: float | None = None  # the best layer's p-value, corrected for choosing it among all layers
    layer: LayerAnalysis | None = None  # the layer analysed in depth
    labels: np.ndarray | None = None  # 1 = passed
    values: np.ndarray | None = None  # activations at that layer, one row per probed sample

    def summary(self) -> str:
        if self.layer is None:
            return self.note
        best = ""
        if self.best_layer is not None and len(self.sweep) > 1:
            verdict = "above chance" if self.family_p <= 0.05 else "NOT above chance"
            best = (f"Best of {len(self.sweep)} layers: layer {self.best_layer}, p = {self.family_p:.3f} corrected "
                    f"for choosing it among them: {verdict}. ")  # fmt: skip
        return best + self.layer.headline()


def probe_data(store: Store, run_id: str):
    """The probed samples of a capture run: activation rows, labels (1 = passed), tasks, statuses.
    Harness errors (ours, not the model's) and samples without generated tokens are left out."""
    index = store.activation_index(run_id)
    rows, labels, groups, statuses = [], [], [], []
    for s in store.samples(run_id):
        where = index.get((s.task_id, s.sample_index))
        if s.passed is None or where is None or s.judgement.verdict == "harness_error":
            continue
        if s.generation.get("tokens", 0) == 0:
            continue
        rows.append(where[0])
        labels.append(int(s.passed))
        groups.append(s.task_id)
        statuses.append(s.judgement.verdict)
    return rows, np.array(labels, dtype=int), np.array(groups), np.array(statuses)


def probe_run(store_path: Path, run_id: str, kind: str = "generated_mean", layer: int | str = "best",
              folds: int = 5, shuffles: int = 20, random_pairs: int = 30, seed: int = 0,
              console: Console | None = None) -> ProbeFindings:  # fmt: skip
    """Probe every captured layer, then analyse `layer` ("best": the highest AUC) in depth."""
    console = console or Console(quiet=True)
    with Store(store_path) as store:
        rows, y, groups, statuses = probe_data(store, run_id)
    directory = activations_dir(store_path, run_id)
    layout = read_layout(directory)
    findings = ProbeFindings(run_id, kind)
    if not enough(y):
        findings.note = (f"too few samples of one class to probe: {int(y.sum())} passed, {len(y) - int(y.sum())} "
                         "failed; draw more samples (--n, --limit) or use a stronger model")  # fmt: skip
        return findings

    def load(index: int) -> np.ndarray:
        return read_rows(directory, kind, index, rows)

    with console.status(f"probing {len(layout.layers)} layers, {len(y)} samples ({int(y.sum())} passed)"):
        findings.sweep = layer_sweep(load, layout.layers, y, groups, folds, shuffles, seed)
    findings.best_layer, findings.family_p = best_layer_p_value(findings.sweep)
    chosen = findings.best_layer
    if layer != "best":
        chosen = resolve_layers([int(layer)], layout.layers[-1] + 1)[0]
    with console.status(f"analysing layer {chosen}"):
        findings.values = load(chosen)
        findings.layer = analyse_layer(findings.values, y, groups, chosen, kind, statuses, folds, shuffles,
                                       random_pairs, seed)  # fmt: skip
    findings.labels = y
    return findings


def load_activations(store_path: Path, run_id: str, layer: int, kind: str = "generated_mean"):
    """A capture run's activations at one layer with what each row is, for notebooks:
    (float32 array [samples, hidden], [{"task_id", "sample_index", "status"}, ...]) in store order."""
    with Store(store_path) as store:
        index = store.activation_index(run_id)
        samples = [s for s in store.samples(run_id) if (s.task_id, s.sample_index) in index]
    rows = [index[(s.task_id, s.sample_index)][0] for s in samples]
    values = read_rows(activations_dir(store_path, run_id), kind, layer, rows)
    meta = [{"task_id": s.task_id, "sample_index": s.sample_index,
             "status": s.judgement.verdict if s.judgement else None} for s in samples]  # fmt: skip
    return values, meta
