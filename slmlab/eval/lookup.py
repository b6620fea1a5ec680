"""Finding stored runs by id, unique prefix or report folder, for `slmlab runs` and `compare`."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from slmlab.errors import UserError
from slmlab.pipeline.summary import RunSummary
from slmlab.store import STORE_NAME, Store


def open_store(out: Path) -> Store:
    path = Path(out) / STORE_NAME
    if not path.is_file():
        raise UserError(f"no run store at {path}: run `slmlab eval` first, or point --out at its folder")
    return Store(path)


def find_run(store: Store, reference: str) -> str:
    ids = [r["run_id"] for r in store.runs()]
    if reference in ids:
        return reference
    matches = [i for i in ids if i.startswith(reference) or i.split("-", 1)[-1].startswith(reference)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(
            f"no run '{reference}' in {store.path}: `slmlab runs --out {store.path.parent}` lists them"
        )
    raise UserError(f"'{reference}' matches {len(matches)} runs in {store.path}: give more of the id")


def resolve_run_reference(reference: str, out: Path) -> tuple[Path, str]:
    """A run named by its report folder (slmlab-runs/eval-...) stands for (its store's folder, its id)."""
    folder = Path(reference)
    if folder.is_dir() and (folder.parent / STORE_NAME).is_file():
        return folder.parent, folder.name
    return Path(out), reference


class RunOutcomes(NamedTuple):
    label: str
    by_task: dict[str, list[bool]]  # task -> passed per sample
    setup: dict  # how its samples were generated
    config: dict


def run_outcomes(reference: str, out: Path) -> RunOutcomes:
    """The outcomes of a run named by id or by its report folder."""
    out, reference = resolve_run_reference(reference, out)
    with open_store(out) as store:
        run_id = find_run(store, reference)
        summary = RunSummary(run_id, store.run_config(run_id), list(store.samples(run_id)))
        setup = store.metrics(run_id).get("generation_setup") or {}
    if not summary.by_task:
        raise UserError(
            f"run {run_id} has no executed sample yet: finish it with the same `slmlab eval` command"
        )
    return RunOutcomes(f"{run_id} ({describe_config(summary.config)})", summary.by_task, setup, summary.config)


def syntax_heavy_tasks(config: dict, data_dir: str | None) -> set[str]:
    """The ids of the syntax-heavy tasks (slmlab.tasks.structure) of an eval run's benchmark."""
    from slmlab.tasks import load_benchmark
    from slmlab.tasks.structure import is_syntax_heavy

    if "benchmark" not in config:
        raise UserError("--subset syntax-heavy needs eval runs (a benchmark's tasks); compare these on all tasks")
    return {task.task_id for task in load_benchmark(config["benchmark"], data_dir) if is_syntax_heavy(task)}


def engine_difference(a: dict, b: dict) -> str | None:
    """A line when two runs' samples came from different engines, engine versions or weight
    formats (a quantization, a dtype): their difference is then not the model's alone."""

    def engine(setup: dict) -> tuple[str, str, str]:
        return (setup.get("backend", "hf"), setup.get("engine_version", "?"),
                str(setup.get("quantization") or setup.get("dtype", "?")))  # fmt: skip

    if not a or not b or engine(a) == engine(b):
        return None
    what = "different engines" if engine(a)[:2] != engine(b)[:2] else "different weight formats"
    return (f"note: the runs used {what}: A {'; '.join(engine(a))}, B {'; '.join(engine(b))}; "
            "a difference may come from the engine as well as from the model")  # fmt: skip


def describe_config(config: dict) -> str:
    """A run in a few words: its model and benchmark, or (a study's view, a trial) its own settings."""
    if "model" in config and "benchmark" in config:
        return f"{config['model']} on {config['benchmark']}"
    return ", ".join(f"{key} {value}" for key, value in config.items() if not isinstance(value, dict | list))[:120]
