"""Seeds 003 and 004 as one command: train small code LMs from scratch in several setups (vocabulary,
label smoothing, capacity, regularisation) on one corpus, and measure how their generations collapse.

Stages, each resumable (re-running the command picks up where it stopped):
1. corpus: `slmlab corpus build` on the configured sources, split by file;
2. training: one run per setup (its tokenizer made on the training split), checkpoints every
   `save_every` steps for the progression table;
3. quality: the 52 prompts bare and after a few-shot template, classified for collapse, at every
   checkpoint; the next-token distribution after `def foo(n):` with 0-3 example functions; the corpus
   frequency of the tokens collapsed outputs are made of; the mini benchmark executed in the sandbox;
4. comparison: seed 004's table, paired McNemar tests for the configured pairs, an HTML report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.console import Console

from slmlab.errors import CallFailed, UserError
from slmlab.studies.configs import load_config

BUILTIN_CONFIGS = {"default": "collapse.yaml", "full": "collapse-full.yaml"}
_RESERVED_TRAIN = {"arch", "experiment_name", "train_path", "val_path", "tokenizer", "log_dir"}


class SetupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[\w.-]+$")
    tokenizer: str  # char | bpe-<size> | gpt2 | a tokenizer directory
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    arch: dict = Field(default_factory=dict)  # overrides of the study's architecture
    train: dict = Field(default_factory=dict)  # overrides of the study's training settings


class CollapseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus: list[str] = Field(default_factory=lambda: ["python:stdlib"], min_length=1)
    corpus_mb: float | None = Field(8.0, gt=0)
    val_fraction: float = Field(0.05, gt=0, lt=1)
    arch: dict  # seed 003's architecture JSON fields
    train: dict = Field(default_factory=dict)  # slmlab train settings shared by every setup
    setups: list[SetupConfig] = Field(min_length=1)
    comparisons: list[tuple[str, str]] = Field(default_factory=list)  # (A, B): does B collapse less?
    samples: int = Field(1, ge=1)  # completions per prompt
    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(40, ge=0)
    max_new_tokens: int = Field(64, ge=1)
    few_shot_template: str = "function"
    minibench: bool = True
    minibench_few_shot: int = Field(2, ge=0)
    minibench_max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(52, ge=1)  # generation batch
    out: str = "slmlab-runs/studies/collapse"
    # ray: the setups' trainings run first as Ray tasks over a cluster's nodes (a GPU each where it
    # has GPUs, `parallel` at a time on CPUs); what follows reads them back, as a re-run does.
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    parallel: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> CollapseConfig:
        names = [s.name for s in self.setups]
        if len(set(names)) != len(names):
            raise ValueError(f"setup names must be unique, got {names}")
        for a, b in self.comparisons:
            if a not in names or b not in names:
                raise ValueError(
                    f"comparison ({a}, {b}) names a setup that is not listed ({', '.join(names)})"
                )
        for setup in [None, *self.setups]:
            train = self.train if setup is None else setup.train
            if _RESERVED_TRAIN & set(train):
                raise ValueError(f"train settings cannot set {', '.join(sorted(_RESERVED_TRAIN & set(train)))}: "
                                 "the study sets them per setup")  # fmt: skip
        from slmlab.tasks.collapse_prompts import FEW_SHOT_TEMPLATES

        if self.few_shot_template not in FEW_SHOT_TEMPLATES:
            raise ValueError(f"few_shot_template must be one of {', '.join(FEW_SHOT_TEMPLATES)}")
        return self


def load_study_config(name_or_path: str | None, overrides: dict) -> CollapseConfig:
    config = load_config(name_or_path, BUILTIN_CONFIGS, CollapseConfig, overrides, "arch: ..., setups: ...")
    for setup in config.setups:  # each setup's architecture and training settings, before anything runs
        try:
            train_config_for(config, setup, Path(config.out) / "corpus")
        except UserError as exc:
            raise UserError(f"{name_or_path or 'built-in config default'}: {exc}") from None
    return config


@dataclass
class SetupResult:
    name: str
    tokenizer: str
    label_smoothing: float
    summary: dict  # the training summary
    bare: dict  # QualityResult.to_dict() on the bare prompts
    few_shot: dict
    progression: list[dict]  # per checkpoint: step, collapse metrics bare and few-shot
    context: list[dict]  # next-token distribution with 0..3 examples
    frequency: list[dict]  # collapse tokens in the corpus
    minibench: dict | None
    curve: list[dict]  # the training log


@dataclass
class CollapseStudy:
    config: CollapseConfig
    corpus: dict
    setups: list[SetupResult]
    comparisons: list[dict] = field(default_factory=list)
    report_dir: Path | None = None


# ---- stages ----------------------------------------------------------------------------------
def _corpus(config: CollapseConfig, console: Console) -> tuple[Path, dict]:
    from slmlab.store import run_key
    from slmlab.train.corpus import build_corpus

    settings = {"sources": config.corpus, "max_mb": config.corpus_mb, "val_fraction": config.val_fraction}
    folder = Path(config.out) / "corpus" / run_key("corpus", settings)
    if not (folder / "corpus.json").is_file():
        console.print(f"[bold]corpus[/bold]: {', '.join(config.corpus)} (up to {config.corpus_mb} MB)")
        build_corpus(config.corpus, folder, max_mb=config.corpus_mb, val_fraction=config.val_fraction)
    return folder, json.loads((folder / "corpus.json").read_text())


def train_config_for(config: CollapseConfig, setup: SetupConfig, corpus: Path):
    from slmlab.train.arch import parse_arch
    from slmlab.train.config import make_train_config

    arch = parse_arch({**config.arch, **setup.arch}, f"setup {setup.name}: arch")
    values = {**config.train, **setup.train, "arch": arch, "experiment_name": setup.name,
              "train_path": corpus / "train.txt", "val_path": corpus / "val.txt", "tokenizer": setup.tokenizer,
              "log_dir": Path(config.out) / "runs" / setup.name, "label_smoothing": setup.label_smoothing}  # fmt: skip
    return make_train_config(values, f"setup {setup.name}")


def _train(train_config, console: Console) -> dict:
    """Train, resume, or reuse a finished run with the same settings."""
    from slmlab.train.checkpoint import checkpoints_dir, list_checkpoints
    from slmlab.train.loop import train

    run_dir = train_config.run_dir
    saved = run_dir / "train_config.json"
    if saved.is_file() and json.loads(saved.read_text()) != json.loads(train_config.model_dump_json()):
        raise UserError(f"{run_dir} was trained with other settings: remove it or choose another --out")
    summary_path = run_dir / f"{train_config.experiment_name}_summary.json"
    if (checkpoints_dir(run_dir) / "final").is_dir() and summary_path.is_file():
        return json.loads(summary_path.read_text())
    console.print(f"[bold]train[/bold] {train_config.experiment_name}: tokenizer {train_config.tokenizer}, "
                  f"label smoothing {train_config.label_smoothing}, {train_config.max_steps} steps")  # fmt: skip
    summary = train(train_config, console, resume=bool(list_checkpoints(run_dir)))
    return summary.to_dict()


def _quality(config: CollapseConfig, train_config, console: Console) -> dict:
    """Every quality measurement of one setup: its samples are runs of the store (kind `quality`, one
    per checkpoint and prompt set), so a re-run reads them back and loads a checkpoint only to
    generate what is missing, or for the final one's next-token measurements."""
    import functools

    from slmlab.generate import open_generator
    from slmlab.generate.params import SamplingParams
    from slmlab.store import STORE_NAME, Store
    from slmlab.tasks.collapse_prompts import (
        FEW_SHOT_TEMPLATES,
        context_length_prompts,
        load_collapse_prompts,
    )
    from slmlab.train.checkpoint import checkpoints_dir, list_checkpoints
    from slmlab.train.data import encode_file
    from slmlab.train.quality import collapse_token_frequency, evaluate_quality, next_token_distribution

    run_dir = train_config.run_dir
    params = SamplingParams(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
                            max_new_tokens=config.max_new_tokens)  # fmt: skip
    prompts = load_collapse_prompts()
    prefix = FEW_SHOT_TEMPLATES[config.few_shot_template]
    progression = []
    result: dict = {}
    periodic = [name for name, _ in list_checkpoints(run_dir) if name.startswith("step-")]
    with Store(Path(config.out) / "store" / STORE_NAME) as store:
        for name in [*periodic, "final"]:
            model = f"ckpt:{checkpoints_dir(run_dir) / name}"
            opened = functools.cache(lambda model=model: open_generator("hf", model, dtype="float32",
                                                                        batch_size=config.batch_size))  # fmt: skip
            bare = evaluate_quality(model, opened, prompts, store, params, config.samples, console=console)
            few = evaluate_quality(model, opened, prompts, store, params, config.samples, prefix, console)
            step = json.loads((checkpoints_dir(run_dir) / name / "checkpoint.json").read_text())["step"]
            progression.append({"checkpoint": name, "step": step, "bare": bare.metrics.to_dict(),
                                "few_shot": few.metrics.to_dict()})  # fmt: skip
            console.print(f"  {train_config.experiment_name} step {step}: collapse {bare.metrics.collapse_rate:.0%} "
                          f"bare, {few.metrics.collapse_rate:.0%} few-shot")  # fmt: skip
            if name == "final":
                model, tokenizer = opened().model, opened().tokenizer
                stream = encode_file(train_config.train_path, tokenizer, run_dir / "tokens")
                result = {
                    "bare": bare.to_dict(), "few_shot": few.to_dict(),
                    "context": next_token_distribution(model, tokenizer, context_length_prompts()),
                    "frequency": collapse_token_frequency(bare.samples + few.samples, tokenizer, stream.tokens),
                }  # fmt: skip
    result["progression"] = progression
    return result


def _minibench(config: CollapseConfig, train_config, console: Console) -> dict | None:
    """The mini benchmark through the main job: generation, sandboxed execution, outcome taxonomy."""
    if not config.minibench:
        return None
    from slmlab.eval.config import EvalConfig
    from slmlab.studies.runs import eval_run
    from slmlab.train.checkpoint import checkpoints_dir

    final = checkpoints_dir(train_config.run_dir) / "final"
    eval_config = EvalConfig(model=f"ckpt:{final}", benchmark="minibench", prompt_mode="plain",
                             few_shot=config.minibench_few_shot, temperature=config.temperature, top_p=config.top_p,
                             top_k=config.top_k, max_new_tokens=config.minibench_max_new_tokens, dtype="float32",
                             k=[1], batch_size=config.batch_size, out=str(Path(config.out) / "store"))  # fmt: skip
    result = eval_run(eval_config, console)
    return {"run_id": result.run_id, **result.summary.pass_at_1_record()}


def _compare(study: CollapseStudy) -> list[dict]:
    """Paired by prompt (one sample each), exact McNemar: does B collapse less than A, and does it
    write Python keywords more often?"""
    from slmlab.metrics.collapse import COLLAPSED_CLASSES
    from slmlab.metrics.compare import compare_runs

    measures = {
        "collapse rate": lambda s: s["quality"] in COLLAPSED_CLASSES,
        "keyword share": lambda s: s["has_keyword"],
    }
    by_name = {s.name: s for s in study.setups}
    rows = []
    for a, b in study.config.comparisons:
        for mode in ("bare", "few_shot"):
            for measure, hit in measures.items():
                per_prompt = {}
                for name in (a, b):
                    grouped: dict[str, list[bool]] = {}
                    for sample in getattr(by_name[name], mode)["samples"]:
                        grouped.setdefault(sample["id"], []).append(bool(hit(sample)))
                    per_prompt[name] = grouped
                comparison = compare_runs(per_prompt[a], per_prompt[b])
                rows.append({"a": a, "b": b, "prompts": mode, "measure": measure, "value_a": comparison.value_a,
                             "value_b": comparison.value_b, "method": comparison.method,
                             "significant": comparison.significant,
                             "verdict": f"{measure} {b} - {a}: {comparison.brief()}"})  # fmt: skip
    return rows


def _train_process(train_config_json: str, *, threads: int) -> dict:
    """A Ray task: one setup's training on `threads` cores."""
    import torch

    from slmlab.train.config import TrainConfig

    torch.set_num_threads(threads)
    return _train(TrainConfig.model_validate_json(train_config_json), Console(quiet=True))


def _train_on_cluster(config: CollapseConfig, corpus_dir: Path, console: Console) -> None:
    from slmlab.pipeline.executor import make_executor

    configs = [train_config_for(config, setup, corpus_dir) for setup in config.setups]
    calls = [(c.model_dump_json(),) for c in configs]
    console.print(f"training {len(calls)} setups on the Ray cluster, {config.parallel} at a time at most")
    try:
        for index, _ in make_executor("ray", config.parallel, config.ray_address).run_each(_train_process, calls):
            console.print(f"trained {config.setups[index].name}")
    except CallFailed as failed:
        raise failed.user_error(f"training {config.setups[failed.index].name}", "finished setups") from None


def run_study(config: CollapseConfig, console: Console) -> CollapseStudy:
    from slmlab.report.collapse import write_study_report
    from slmlab.train.loop import read_log

    corpus_dir, corpus = _corpus(config, console)
    if config.executor == "ray":
        _train_on_cluster(config, corpus_dir, console)
    results = []
    for setup in config.setups:
        train_config = train_config_for(config, setup, corpus_dir)
        summary = _train(train_config, console)
        quality = _quality(config, train_config, console)
        results.append(SetupResult(
            name=setup.name, tokenizer=setup.tokenizer, label_smoothing=setup.label_smoothing, summary=summary,
            bare=quality["bare"], few_shot=quality["few_shot"], progression=quality["progression"],
            context=quality["context"], frequency=quality["frequency"],
            minibench=_minibench(config, train_config, console),
            curve=read_log(train_config.run_dir, setup.name),
        ))  # fmt: skip
    study = CollapseStudy(config, corpus, results)
    study.comparisons = _compare(study)
    study.report_dir = write_study_report(study)
    return study
