"""Seed 000's bottleneck study, made testable: scaling comparison, probes with controls, interventions.

One command runs four stages, each an ordinary slmlab run in the shared store (so every stage
resumes, and every run can be opened, compared and exported on its own):
1. scaling: every model on the same tasks with the same decoding; pass@1 with intervals, the outcome
   taxonomy (repetitive collapse included), a paired test per (smaller, larger) pair on all tasks and
   on the syntax-heavy subset (slmlab.tasks.structure), and a plain verdict on negative scaling;
2. capture: the probe model again on more samples, with activations of the chosen layers captured;
3. probes: every captured layer probed for passed vs failed with a shuffled-label control, and the
   best layer analysed in the seed's terms (two dimensions, their accuracy alone, margins in
   activation units) against random pairs, plus a probe per failure type;
4. intervention: the best layer shifted along the probe's direction by +/- some units during
   generation, and the pass rate compared with the unshifted run by a paired test: if the direction
   only correlates with failure, shifting it changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.console import Console

from slmlab.eval.config import EvalConfig
from slmlab.pipeline.settings import (
    CLUSTER_FIELDS,
    SERVER_FIELDS,
    ClusterSettings,
    EngineSettings,
    ExecutionSettings,
    PathSettings,
    Sectioned,
)
from slmlab.probe.findings import ProbeFindings
from slmlab.store import run_key
from slmlab.studies.configs import load_config

BUILTIN_CONFIGS = {"default": "bottleneck.yaml", "full": "bottleneck-full.yaml"}


class InterventionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    direction: Literal["probe", "dims"] = "probe"  # the full probe's normal, or the top two dimensions
    # Shifts in units of the spread (standard deviation) of the activations along the direction;
    # `scales` gives them in raw activation units instead.
    spreads: list[float] = Field(default_factory=lambda: [-8.0, 8.0])
    scales: list[float] | None = None


class BottleneckConfig(Sectioned, PathSettings, ClusterSettings, ExecutionSettings, EngineSettings):
    """The shared sections (execution, paths) and the study's own settings; its models all run with
    the same decoding, given here once."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(min_length=1)
    pairs: list[tuple[str, str]] = Field(default_factory=list)  # (smaller, larger)
    benchmarks: list[str] = Field(default_factory=lambda: ["humaneval"], min_length=1)
    limit: int | None = Field(20, ge=1)
    n: int = Field(1, ge=1)
    temperature: float = Field(0.8, ge=0.0)  # the seed's decoding
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(384, ge=1)
    seed: int = 1234
    probe_model: str
    probe_benchmark: str | None = None  # default: the first benchmark
    probe_limit: int | None = Field(40, ge=1)
    probe_n: int = Field(4, ge=1)
    capture_layers: str = "all"
    probe_kind: Literal["generated_mean", "prompt_last"] = "generated_mean"
    # The layer analysed in depth and intervened at; "best": the one whose probe has the highest AUC.
    probe_layer: int | Literal["best"] = "best"
    folds: int = Field(5, ge=2)
    shuffles: int = Field(20, ge=0)
    random_pairs: int = Field(30, ge=1)
    intervention: InterventionConfig = Field(default_factory=InterventionConfig)

    @model_validator(mode="after")
    def _pairs_name_models(self) -> BottleneckConfig:
        for pair in self.pairs:
            unknown = [name for name in pair if name not in self.models]
            if unknown:
                raise ValueError(f"pair {list(pair)} names {unknown[0]!r}, which is not in models")
        return self

    def eval_config(self, model: str, benchmark: str, **overrides) -> EvalConfig:
        values = dict(model=model, benchmark=benchmark, data_dir=self.data_dir, limit=self.limit, n=self.n,
                      temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                      seed=self.seed, timeout=self.timeout, sandbox=self.sandbox, workers=self.workers,
                      backend=self.backend, **self.engine_settings(), k=[1], out=self.out)  # fmt: skip
        # The scaling stage's evals spread over the cluster; capture and steering hook a model in this process.
        if not {"capture_layers", "steer_layer"} & set(overrides):
            values |= {name: getattr(self, name) for name in CLUSTER_FIELDS}
        return EvalConfig(**(values | overrides))

    def study_id(self) -> str:
        identity = self.model_dump(exclude={"out", "batch_size", "data_dir", "workers", "device", "backend", *SERVER_FIELDS,
                                            *CLUSTER_FIELDS})  # fmt: skip
        return run_key("bottleneck", identity | self.engine_identity())


def load_study_config(name_or_path: str | None, overrides: dict) -> BottleneckConfig:
    """A built-in config ('default', 'full') or a YAML file, with CLI overrides applied on top."""
    return load_config(
        name_or_path, BUILTIN_CONFIGS, BottleneckConfig, overrides, "models: ..., probe_model: ..."
    )


# ---- results ---------------------------------------------------------------------------------
@dataclass
class ModelResult:
    model: str
    benchmark: str
    run_id: str
    summary: object  # RunSummary
    heavy_tasks: set[str]
    prompt_mode: str  # chat or plain: a pair that differs in it differs in more than size

    def by_task(self, heavy_only: bool = False) -> dict[str, list[bool]]:
        tasks = self.summary.by_task
        return {t: v for t, v in tasks.items() if t in self.heavy_tasks} if heavy_only else tasks


@dataclass
class PairResult:
    benchmark: str
    smaller: str
    larger: str
    subset: str  # "all" or "syntax-heavy"
    comparison: object  # metrics.Comparison, larger (B) against smaller (A)
    prompt_modes: tuple[str, str] = ("?", "?")  # (smaller, larger)

    @property
    def negative_scaling(self) -> bool:
        return self.comparison.significant and self.comparison.difference < 0

    def verdict(self) -> str:
        c = self.comparison
        if self.negative_scaling:
            head = f"negative scaling: {self.larger} is significantly worse than {self.smaller}"
        elif c.significant:
            head = f"positive scaling: {self.larger} is significantly better than {self.smaller}"
        else:
            head = f"no significant difference between {self.larger} and {self.smaller}"
        caveat = ""
        if self.prompt_modes[0] != self.prompt_modes[1]:
            caveat = (f"; the two differ in more than size (prompt mode {self.prompt_modes[0]} vs "
                      f"{self.prompt_modes[1]}: an instruct model against a base one)")  # fmt: skip
        return f"{self.benchmark}, {self.subset} tasks ({c.n_tasks}): {head} ({c.brief()}){caveat}"


@dataclass
class InterventionPoint:
    scale: float
    run_id: str
    pass_rate: object  # PassAtK
    comparison: object | None  # against scale 0; None for the baseline itself


@dataclass
class StudyResult:
    study_id: str
    directory: Path
    config: BottleneckConfig
    models: list[ModelResult] = field(default_factory=list)
    pairs: list[PairResult] = field(default_factory=list)
    probe: ProbeFindings | None = None
    intervention: list[InterventionPoint] = field(default_factory=list)
    intervention_layer: int | None = None
    # What a unit means there: the spread of the samples along the direction, and the size of the
    # activations themselves (median L2 norm).
    intervention_spread: float | None = None
    activation_norm: float | None = None

    def intervention_title(self) -> str:
        return (f"Intervention at layer {self.intervention_layer} (1 sd along the direction = "
                f"{self.intervention_spread:.3g} units; median activation norm {self.activation_norm:.3g})")  # fmt: skip


# ---- stages ----------------------------------------------------------------------------------
def _scaling(config: BottleneckConfig, result: StudyResult, console: Console) -> None:
    from slmlab.eval.job import select_tasks
    from slmlab.metrics import compare_runs
    from slmlab.studies.runs import eval_run
    from slmlab.tasks.structure import is_syntax_heavy

    for benchmark in config.benchmarks:
        tasks = select_tasks(config.eval_config(config.models[0], benchmark))
        heavy = {t.task_id for t in tasks if is_syntax_heavy(t)}
        for model in config.models:
            console.rule(f"scaling: {model} on {benchmark}")
            run = eval_run(config.eval_config(model, benchmark), console)
            result.models.append(ModelResult(model, benchmark, run.run_id, run.summary, heavy,
                                             run.setup.get("prompt_mode", "?")))  # fmt: skip
        found = {m.model: m for m in result.models if m.benchmark == benchmark}
        for smaller, larger in config.pairs:
            for subset in ("all", "syntax-heavy"):
                a = found[smaller].by_task(subset != "all")
                b = found[larger].by_task(subset != "all")
                if set(a) & set(b):
                    modes = (found[smaller].prompt_mode, found[larger].prompt_mode)
                    result.pairs.append(
                        PairResult(benchmark, smaller, larger, subset, compare_runs(a, b, k=1), modes)
                    )


def _probes(config: BottleneckConfig, result: StudyResult, console: Console) -> None:
    from slmlab.probe.findings import probe_run
    from slmlab.studies.runs import eval_run

    benchmark = config.probe_benchmark or config.benchmarks[0]
    console.rule(f"capture: {config.probe_model} on {benchmark}, layers {config.capture_layers}")
    capture = config.eval_config(config.probe_model, benchmark, limit=config.probe_limit, n=config.probe_n,
                                 capture_layers=config.capture_layers)  # fmt: skip
    run = eval_run(capture, console)
    console.rule("probes")
    result.probe = probe_run(run.store_path, run.run_id, config.probe_kind, config.probe_layer, config.folds,
                             config.shuffles, config.random_pairs, config.seed, console)  # fmt: skip
    console.print(result.probe.summary())


def _direction(config: BottleneckConfig, result: StudyResult) -> np.ndarray:
    from slmlab.probe.steer import dims_direction

    layer = result.probe.layer
    if config.intervention.direction == "probe":
        return layer.direction
    effects = dict(layer.top_dims)
    return dims_direction(
        list(layer.pair), [np.sign(effects[d]) or 1.0 for d in layer.pair], len(layer.direction)
    )


def _intervention(config: BottleneckConfig, result: StudyResult, console: Console) -> None:
    from slmlab.metrics import compare_runs, pass_at_k_summary
    from slmlab.studies.runs import eval_run

    settings = config.intervention
    if not settings.enabled or result.probe is None or result.probe.layer is None:
        return
    layer = result.intervention_layer = result.probe.layer.layer
    direction = _direction(config, result)
    path = result.directory / f"direction_layer{layer}.npy"
    np.save(path, direction)
    spread = result.intervention_spread = float(np.std(result.probe.values @ direction))
    result.activation_norm = float(np.median(np.linalg.norm(result.probe.values, axis=1)))
    scales = (
        settings.scales if settings.scales is not None else [round(s * spread, 3) for s in settings.spreads]
    )
    benchmark = config.probe_benchmark or config.benchmarks[0]
    runs = {}
    for scale in sorted({0.0, *scales}):
        console.rule(
            f"intervention: layer {layer}, shift {scale:+g} units along the {settings.direction} direction"
        )
        steer = dict(steer_layer=layer, steer_direction=str(path), steer_scale=scale) if scale else {}
        runs[scale] = eval_run(config.eval_config(config.probe_model, benchmark, **steer), console)
    base = runs[0.0].summary.by_task
    for scale, run in runs.items():
        by_task = run.summary.by_task
        rate = pass_at_k_summary(by_task, ks=(1,))[1]
        versus = compare_runs(base, by_task, k=1) if scale else None
        result.intervention.append(InterventionPoint(scale, run.run_id, rate, versus))


def run_study(config: BottleneckConfig, console: Console) -> StudyResult:
    from slmlab.report.bottleneck import write_study_report

    study_id = config.study_id()
    directory = Path(config.out) / study_id
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config.model_dump(), indent=2))
    result = StudyResult(study_id, directory, config)
    _scaling(config, result, console)
    _probes(config, result, console)
    _intervention(config, result, console)
    write_study_report(result)
    return result
