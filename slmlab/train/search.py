"""Architecture search: short proxy trainings over a grid or a random sample of a space, run in
parallel, ranked by validation bits per character (comparable across tokenizers, unlike loss per
token) and then by collapse rate on the 52 prompts.

Every trial is an ordinary training run in <out>/trials/<id>; a finished trial is never run again,
so an interrupted search resumes. Trials run in worker processes that split the cores between
them (torch's intra-op threads), which keeps a 2-core laptop and a many-core node equally busy.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from slmlab.errors import UserError
from slmlab.store import run_key
from slmlab.train.arch import ArchConfig
from slmlab.train.config import TrainConfig

ARCH_FIELDS = set(ArchConfig.model_fields)
TRAIN_FIELDS = set(TrainConfig.model_fields) - {
    "arch",
    "experiment_name",
    "train_path",
    "val_path",
    "log_dir",
}


def parse_space(entries: list[str]) -> dict[str, list]:
    """`field=v1,v2,...` entries: architecture or training fields, values parsed as JSON where they
    can be (numbers, true/false), as strings otherwise."""
    space: dict[str, list] = {}
    for entry in entries:
        name, sep, values = entry.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise UserError(f"--space {entry!r}: write FIELD=V1,V2 (e.g. num_layers=2,4)")
        if name not in ARCH_FIELDS | TRAIN_FIELDS:
            raise UserError(f"--space {entry!r}: {name} is neither an architecture nor a training field")
        space[name] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    return space


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def trial_settings(space: dict[str, list], mode: str, trials: int, seed: int) -> list[dict]:
    grid = [dict(zip(space, combo, strict=True)) for combo in itertools.product(*space.values())]
    if mode == "grid":
        return grid
    if mode != "random":
        raise UserError(f"unknown search mode {mode!r}: use grid or random")
    return random.Random(seed).sample(grid, min(trials, len(grid)))


@dataclass
class Trial:
    trial_id: str
    settings: dict
    config: TrainConfig


def make_trials(
    base: TrainConfig, settings: list[dict], out: Path, tokenizers: dict[str, str]
) -> list[Trial]:
    """One training config per setting; `tokenizers` maps each tokenizer spec to the directory made for it."""
    from slmlab.train.arch import parse_arch
    from slmlab.train.config import make_train_config

    trials = []
    for chosen in settings:
        arch = parse_arch({**base.arch.model_dump(), **{k: v for k, v in chosen.items() if k in ARCH_FIELDS}},
                          f"trial {chosen}")  # fmt: skip
        trial_id = run_key("trial", chosen)
        values = {**base.model_dump(), **{k: v for k, v in chosen.items() if k in TRAIN_FIELDS}, "arch": arch,
                  "experiment_name": trial_id, "log_dir": out / "trials" / trial_id}  # fmt: skip
        values["tokenizer"] = tokenizers.get(values["tokenizer"], values["tokenizer"])
        trials.append(Trial(trial_id, chosen, make_train_config(values, f"trial {chosen}")))
    return trials


def _run_trial(config_json: str, collapse: bool, *, threads: int) -> dict:
    """In a worker process: train (or reuse) one trial and measure its collapse rate."""
    import torch

    torch.set_num_threads(threads)
    config = TrainConfig.model_validate_json(config_json)
    summary_path = config.run_dir / f"{config.experiment_name}_summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
    else:
        from slmlab.train.checkpoint import list_checkpoints
        from slmlab.train.loop import train

        summary = train(config, None, resume=bool(list_checkpoints(config.run_dir)), progress=False).to_dict()
    result = {"summary": summary, "collapse_rate": None}
    if collapse:  # the collapse prompts through the pipeline, into the search's store
        from slmlab.generate import open_generator
        from slmlab.store import STORE_NAME, Store
        from slmlab.tasks.collapse_prompts import load_collapse_prompts
        from slmlab.train.quality import evaluate_quality

        model = f"ckpt:{config.run_dir / 'checkpoints' / 'final'}"
        with Store(config.run_dir.parent / STORE_NAME) as store:
            quality = evaluate_quality(model, lambda: open_generator("hf", model, dtype="float32"),
                                       load_collapse_prompts(), store)  # fmt: skip
        result["collapse_rate"] = quality.metrics.collapse_rate
    return result


def run_search(base: TrainConfig, space: dict[str, list], out: Path, mode: str = "grid", trials: int = 8,
               parallel: int = 2, collapse: bool = True, seed: int = 0, on_done=None, executor: str = "local",
               ray_address: str | None = None) -> list[dict]:  # fmt: skip
    """Every trial's settings and results, best first."""
    from slmlab.train.loop import prepare_tokenizer

    if not space:
        raise UserError("the search space is empty: give at least one --space FIELD=V1,V2")
    out.mkdir(parents=True, exist_ok=True)
    chosen = trial_settings(space, mode, trials, seed)
    # Tokenizers are made once, before the workers start, and shared by path.
    specs = {c.get("tokenizer", base.tokenizer) for c in chosen}
    made = {spec: str(prepare_tokenizer(spec, base.train_path, base.val_path, out / "tokenizers" / run_key("tok", {"s": spec}))[1]["path"])
            for spec in specs}  # fmt: skip
    planned = make_trials(base, chosen, out, made)
    from slmlab.pipeline.executor import CallFailed, make_executor

    results = []
    calls = [(t.config.model_dump_json(), collapse) for t in planned]
    try:
        for index, outcome in make_executor(executor, parallel, ray_address).run_each(_run_trial, calls):
            trial, summary = planned[index], outcome["summary"]
            row = {"trial": trial.trial_id, **trial.settings, "parameters": summary["model"]["parameters"],
                   "val_loss": summary["val_loss"], "val_bits_per_char": summary["val_bits_per_char"],
                   "collapse_rate": outcome["collapse_rate"], "tokens_per_second": summary["tokens_per_second"],
                   "seconds": summary["seconds"], "warnings": summary["warnings"]}  # fmt: skip
            results.append(row)
            if on_done:
                on_done(row, len(results), len(planned))
    except CallFailed as failed:
        raise failed.error from None
    results.sort(key=lambda r: (r["val_bits_per_char"], r["collapse_rate"] or 0.0))
    (out / "search.json").write_text(json.dumps({"space": space, "mode": mode, "results": results}, indent=2))
    return results
