"""Seed 002 as one command: how accuracy saturates as the generation budget grows, on GSM8K (and
pass@1 on code benchmarks), why errors persist, where the cliff sits and how solutions change.

The budget is max_new_tokens, never prompt + output. Each sample is generated once, at the largest
budget any phase needs, and every smaller budget is read from its first N tokens: each sample draws
from its own seeded generator, so its first N tokens are exactly what a run with max_new_tokens = N
gives (a sample that ended before N is the same at N). One generation thus serves the seven phase-1
budgets and the eleven cliff budgets alike.

Stages, each resumable through the store (`<out>/store/slmlab.db`):
1. generate: one run (kind `budget-gen`): sample 0 of every problem at the largest budget, samples
   1..k-1 at phase 1b's largest; generated token ids are kept.
2. budget views: one run per budget (kind `budget-view`): the solution cut at that budget, tokens
   used, whether the budget cut it, and its verdict (the extracted answer, strict and flexible, for
   GSM8K; the sandbox's outcome for code). The seed's per-budget JSON files are exports of these.
3. phases: 1 (saturation table, recommended budget), 1b (spread over k samples), 2-prepare /
   2-analyze (annotation sheets pre-filled with automatic suggestions, read back and validated),
   3 (cliff: gain per token; structure: setup / computation / verification), then figures 1-5 and
   report.html.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator
from rich.console import Console

from slmlab.atomic import atomic_writer, write_text_atomic
from slmlab.errors import UserError
from slmlab.generate.params import SamplingParams
from slmlab.pipeline.settings import (
    ClusterSettings,
    EngineSettings,
    ExecutionSettings,
    ModelSettings,
    PathSettings,
    Sectioned,
)
from slmlab.store import STORE_NAME, SampleRow, Store
from slmlab.studies import budget_analysis as analysis
from slmlab.studies.configs import load_config

BUILTIN_CONFIGS = {"default": "budget.yaml", "full": "budget-full.yaml"}
PHASES = ("1", "1b", "2-prepare", "2-analyze", "3", "all")
ERROR_TYPES = ("arithmetic", "setup", "logic", "incomplete", "format", "hallucination")
RECOVERABLE = ("yes", "no", "unknown")
SHEET_FIELDS = ["problem_id", "budget", "tokens_used", "truncated", "ground_truth", "predicted", "suggestion",
                "error_type", "error_location", "recoverable", "notes", "question", "generated"]  # fmt: skip


def _budget_list(values: list[int]) -> list[int]:
    if not values or min(values) < 1:
        raise ValueError("budgets must be positive token counts")
    return sorted(set(values))


class BudgetStudyConfig(Sectioned, PathSettings, ClusterSettings, ExecutionSettings, EngineSettings, ModelSettings):
    """The shared sections (model, execution, paths) and the study's own settings."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("qwen2.5-coder-0.5b-instruct", min_length=1)
    benchmark: str = "gsm8k"  # or a code benchmark (humaneval, mbpp-test, ...): pass@1 vs budget
    num_samples: int | None = Field(None, ge=1)  # the first N problems of the test split; None: all
    prompting: Literal["chat", "zero-shot", "few-shot"] = "chat"
    few_shot: int = Field(8, ge=1, le=20)  # solved train problems before each question (few-shot)
    budgets: list[int] = Field(default_factory=lambda: [32, 64, 128, 256, 512, 1024, 2048])
    stochastic_budgets: list[int] = Field(default_factory=lambda: [512, 1024])
    stochastic_samples: int = Field(5, ge=2, le=100)
    cliff_budgets: list[int] = Field(default_factory=lambda: list(range(96, 257, 16)))
    annotation_samples: dict[int, int] = Field(default_factory=lambda: {128: 30, 256: 30, 512: 50, 1024: 50})
    temperature: float = Field(0.7, ge=0.0, le=10.0)  # the seed samples at 0.7, top-p 0.9
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    seed: int = 1234
    match: Literal["strict", "flexible"] = "flexible"
    tolerance: float = Field(0.01, ge=0.0, lt=1.0)  # recommended budget: within this of the best accuracy
    quantization: Literal["4bit"] | None = None  # bitsandbytes 4-bit, CUDA only
    out: str = "slmlab-runs/studies/budget"

    _budgets = field_validator("budgets", "stochastic_budgets", "cliff_budgets")(_budget_list)

    @property
    def benchmark_spec(self):
        from slmlab.tasks.registry import lookup

        return lookup(self.benchmark)

    @property
    def math(self) -> bool:
        """Solutions judged by their final answer (GSM8K), not executed: phase 2 and the structure
        analysis read math solutions."""
        return self.benchmark_spec.judge == "math"

    @property
    def prompt_mode(self) -> str:
        return "chat" if self.prompting == "chat" else "plain"

    @property
    def shots(self) -> int:
        return self.few_shot if self.prompting == "few-shot" else 0

    @property
    def label(self) -> str:
        """The model's name as it goes into file names."""
        return re.sub(r"[^\w.-]+", "_", self.model).strip("_")


def load_study_config(name_or_path: str | None, overrides: dict) -> BudgetStudyConfig:
    return load_config(
        name_or_path, BUILTIN_CONFIGS, BudgetStudyConfig, overrides, "model: ..., budgets: [...]"
    )


# ---- stage 1: generation -----------------------------------------------------------------------
def _limits(config: BudgetStudyConfig) -> tuple[int, int]:
    """Tokens generated for sample 0, and for samples 1..k-1."""
    first = max(
        [*config.budgets, *config.cliff_budgets, *config.stochastic_budgets, *config.annotation_samples]
    )
    return first, max(config.stochastic_budgets)


def _generation_identity(config: BudgetStudyConfig, first_prompt: str) -> dict:
    import hashlib

    from slmlab.models.trained import trained_weights_sha256

    first, rest = _limits(config)
    # Not the number of problems or samples: each sample is seeded by (problem, index), so a larger
    # --num-samples only generates the problems not stored yet.
    identity = {"model": config.model, "benchmark": config.benchmark,
                "prompting": config.prompting, "few_shot": config.shots,
                "temperature": config.temperature, "top_p": config.top_p, "seed": config.seed, "dtype": config.dtype,
                "quantization": config.quantization, "limit": first, "stochastic_limit": rest,
                # the prompt as built (template, instruction, examples), so a new prompt is a new run
                "prompt_sha256": hashlib.sha256(first_prompt.encode()).hexdigest()[:16]}  # fmt: skip
    if config.model.startswith(("ckpt:", "lora:")):
        identity["model_weights"] = trained_weights_sha256(config.model)
    return identity | config.engine_identity(config.model, frozenset({"token_ids"}))


def _tasks(config: BudgetStudyConfig) -> list:
    """The problems (GSM8K) or tasks (code), the first num_samples of the test split; loading says
    what is missing before minutes go into loading a model."""
    from slmlab.tasks.registry import load_benchmark

    tasks = load_benchmark(config.benchmark, config.data_dir)[: config.num_samples]
    if config.shots and tasks:  # the few-shot examples' data too (GSM8K's train split)
        config.benchmark_spec.shots(tasks[0], tasks, config.shots, config.seed, config.data_dir)
    return tasks


def _plan(config: BudgetStudyConfig, tasks: list, tokenizer, k: int) -> list:
    """Sample 0 of every problem at the largest budget any phase needs, samples 1..k-1 at phase
    1b's largest; each seeded by (seed, problem, index) like every pipeline sample."""
    from slmlab.pipeline.plan import plan

    spec, mode = config.benchmark_spec, config.prompt_mode
    first, rest = _limits(config)

    def prompt(task):
        return spec.prompt(
            task, mode, tokenizer, spec.shots(task, tasks, config.shots, config.seed, config.data_dir)
        )

    return plan(
        tasks, k, config.seed, prompt, spec.stops_for(mode), budget=lambda index: rest if index else first
    )


class _Model:
    """The generator, opened the first time something needs it (generation, or the tokenizer to cut
    stored samples at a new budget)."""

    def __init__(self, config: BudgetStudyConfig, console: Console):
        self.config, self.console, self._generator = config, console, None

    @property
    def generator(self):
        if self._generator is None:
            from slmlab.generate import require
            from slmlab.pipeline.engines import open_engine

            name, _ = self.config.chosen_backend(self.config.model, frozenset({"token_ids"}))
            self._generator = open_engine(name, self.config.model, {"quantization": self.config.quantization,
                                                                    **self.config.engine_settings()},
                                          self.config.section("cluster"), self.console)  # fmt: skip
            require(self._generator, "token_ids", "the budget study reads smaller budgets from them")
        return self._generator


# ---- stage 2: budget views ---------------------------------------------------------------------
def cut_at_budget(text: str, tokens: int, finish_reason: str, ids: list[int], budget: int, decode,
                  stops: tuple[str, ...]) -> tuple[str, int, bool]:  # fmt: skip
    """(text, tokens used, cut by the budget) of a sample as a run with max_new_tokens = `budget`
    would have produced it. `decode` turns token ids into text."""
    from slmlab.generate.stops import cut_at_stop

    if tokens <= budget:
        return text, tokens, finish_reason == "length"
    cut, stopped = cut_at_stop(decode(ids[:budget]), stops)
    return cut, budget, not stopped


def _view_identity(gen_run: str, budget: int, match: str) -> dict:
    identity = {"generation": gen_run, "budget": budget, "scoring": 1}
    if match != "flexible":  # views judged by the default match keep the ids they had before it was a setting
        identity["match"] = match
    return identity


def _view_runs(config: BudgetStudyConfig, store: Store, gen_run: str, tasks: list, budgets: list[int],
               indices: dict[int, int], model: _Model, console: Console) -> dict[int, str]:  # fmt: skip
    """The view run of each budget: its missing samples cut from the generation run, then judged
    by the benchmark's judge through the pipeline. `indices`: budget -> how many sample indices it needs."""
    from slmlab.judge import make_judge
    from slmlab.pipeline import run

    spec, mode = config.benchmark_spec, config.prompt_mode
    runs, pending = {}, []
    for budget in budgets:
        run_id, _ = store.open_run("budget-view", _view_identity(gen_run, budget, config.match))
        runs[budget] = run_id
        wanted = [(task.task_id, i) for task in tasks for i in range(indices[budget])]
        pending += [(budget, run_id, key) for key in store.missing(run_id, wanted)]
    by_id = {task.task_id: task for task in tasks}
    if pending:
        generated = {(row.task_id, row.sample_index): row for row in store.samples(gen_run)}
        tokenizer = model.generator.tokenizer
        stops = spec.stops_for(mode)

        def decode(ids):
            return tokenizer.decode(ids, skip_special_tokens=True)

        for budget, run_id, key in pending:
            row = generated[key]
            g = row.generation
            text, used, truncated = cut_at_budget(row.completion, g["tokens"], g["finish_reason"], g["ids"], budget,
                                                  decode, stops)  # fmt: skip
            completion = spec.extract(by_id[row.task_id], text, mode, True)
            store.add_sample(run_id, SampleRow(row.task_id, row.sample_index, row.seed, "", completion.code,
                                               {"text": text, "tokens_used": used, "truncated": truncated,
                                                "budget": budget, "whole_program": completion.whole_program}, None))  # fmt: skip
        console.print(f"cut {len(pending)} solutions at {len({p[0] for p in pending})} budgets")
    with make_judge(spec.judge, config.judge_settings(match=config.match)) as judge:
        described = False
        for budget in budgets:
            judged = run.judge(store, runs[budget], by_id, judge, console, label=f"judging at {budget} tokens",
                               describe=not described)  # fmt: skip
            described = described or bool(judged)
    return runs


def _records(store: Store, run_id: str, tasks: dict, budget: int, match: str) -> list[dict]:
    """The seed's record schema, one per judged solution at this budget: the prediction is the
    extracted answer (math, by `match`) or the sandbox's verdict (code)."""
    records = []
    for row in store.samples(run_id):
        task = tasks.get(row.task_id)
        if task is None or row.judgement is None:
            continue
        judgement = row.judgement
        predicted = judgement.detail[match]["predicted"] if judgement.judge == "math" else judgement.verdict
        records.append({"problem_id": int(row.task_id) if row.task_id.isdigit() else row.task_id,
                        "sample_index": row.sample_index, "question": task.prompt,
                        "ground_truth": task.answer or task.reference, "generated": row.generation.get("text", row.completion),
                        "predicted": predicted, "correct": bool(judgement.passed),
                        "tokens_used": row.generation["tokens_used"], "truncated": row.generation["truncated"],
                        "budget": budget})  # fmt: skip
    return records


# ---- phase 2: annotation sheets ----------------------------------------------------------------
def prepare_sheets(records_by_budget: dict[int, list[dict]], sizes: dict[int, int], folder: Path,
                   seed: int) -> list[tuple[Path, int, bool]]:  # fmt: skip
    """One TSV per budget of wrong solutions to annotate, pre-filled where the record shows the error.
    The same problems are chosen at every budget where they are wrong (one seeded order), so the
    evolution matrix has pairs. An existing sheet is never overwritten: it may hold annotations."""
    order = {pid: random.Random(f"{seed}-{pid}").random() for r in records_by_budget.values() for pid in
             [x["problem_id"] for x in r]}  # fmt: skip
    written = []
    for budget, size in sorted(sizes.items()):
        path = folder / f"annotate_errors_budget{budget}.tsv"
        wrong = sorted(
            (r for r in records_by_budget.get(budget, []) if not r["correct"]),
            key=lambda r: order[r["problem_id"]],
        )
        chosen = sorted(wrong[:size], key=lambda r: str(r["problem_id"]))
        if path.exists():
            written.append((path, len(chosen), False))
            continue
        with atomic_writer(path) as f:
            writer = csv.DictWriter(f, fieldnames=SHEET_FIELDS, dialect="excel-tab")  # quotes \r too
            writer.writeheader()
            for record in chosen:
                suggestion = analysis.suggest_error(record)
                writer.writerow({**{k: record[k] for k in ("problem_id", "budget", "tokens_used", "truncated",
                                                           "ground_truth", "question", "generated")},
                                 "predicted": record["predicted"] or "", "suggestion": suggestion["evidence"],
                                 "error_type": suggestion["error_type"], "error_location": suggestion["error_location"],
                                 "recoverable": suggestion["recoverable"], "notes": ""})  # fmt: skip
        written.append((path, len(chosen), True))
    return written


def read_sheets(folder: Path, required: bool = True) -> list[dict]:
    """Every annotated row, validated: a bad value names its file, line, and the values allowed.
    `required`: no sheet at all is an error (it is not where the store holds labels instead)."""
    paths = sorted(folder.glob("annotate_errors_budget*.tsv"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    if not paths and required:
        raise UserError(
            f"no annotation sheets in {folder}: run `slmlab study budget --phase 2-prepare` first"
        )
    rows, problems = [], []
    for path in paths:
        budget = int(re.sub(r"\D", "", path.stem))
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, dialect="excel-tab")
            missing = [name for name in ("problem_id", "error_type", "error_location", "recoverable", "notes")
                       if name not in (reader.fieldnames or [])]  # fmt: skip
            if missing:
                raise UserError(
                    f"{path}: columns {', '.join(missing)} are missing; keep the header 2-prepare wrote"
                )
            for number, row in enumerate(reader, 2):  # the row number a spreadsheet shows (header: 1)
                error_type = (row["error_type"] or "").strip().lower()
                recoverable = (row["recoverable"] or "").strip().lower()
                where = f"{path.name} row {number}"
                if error_type and error_type not in ERROR_TYPES:
                    problems.append(
                        f"{where}: error_type '{row['error_type']}' is not one of {', '.join(ERROR_TYPES)}"
                    )
                if recoverable and recoverable not in RECOVERABLE:
                    problems.append(
                        f"{where}: recoverable '{row['recoverable']}' is not one of {', '.join(RECOVERABLE)}"
                    )
                if str(row.get("budget", budget)).strip() not in ("", str(budget)):
                    problems.append(f"{where}: budget {row['budget']} in the sheet of budget {budget}")
                if not (row["problem_id"] or "").strip():
                    problems.append(f"{where}: problem_id is empty")
                rows.append({"budget": budget, "problem_id": (row["problem_id"] or "").strip(), "error_type": error_type,
                             "error_location": (row["error_location"] or "").strip(), "recoverable": recoverable,
                             "notes": (row["notes"] or "").strip()})  # fmt: skip
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise UserError(
            "bad annotation rows: " + "; ".join(problems[:5]) + more + ": fix them and run 2-analyze again"
        )
    return rows


def stored_labels(store: Store, view_runs: dict[int, str]) -> list[dict]:
    """The error types given in `slmlab serve` to the first sample of each budget's view, as sheet
    rows. Where several people labelled, the labels of the one who labelled most are read (the app's
    agreement page compares them)."""
    labels = {budget: [a for a in store.annotations(run_id) if a["sample_index"] == 0]
              for budget, run_id in view_runs.items()}  # fmt: skip
    given = Counter(a["annotator"] for found in labels.values() for a in found)
    if not given:
        return []
    annotator = min(given, key=lambda name: (-given[name], name))
    return [{"budget": budget, "problem_id": a["task_id"], "error_type": a["label"], "error_location": "",
             "recoverable": "", "notes": f"labelled by {annotator} in slmlab serve"}
            for budget, found in sorted(labels.items()) for a in found
            if a["annotator"] == annotator and a["label"] in ERROR_TYPES]  # fmt: skip


def with_stored_labels(sheets: list[dict], stored: list[dict]) -> list[dict]:
    """The sheets' rows, each replaced by the store's label of the same problem at the same budget."""
    from_store = {(r["budget"], str(r["problem_id"])): r for r in stored}
    kept = [r for r in sheets if (r["budget"], str(r["problem_id"])) not in from_store]
    return kept + list(from_store.values())


def analyze_sheets(rows: list[dict], correct_at: dict[int, set[str]]) -> dict:
    """Distributions by budget, persistent vs recovered errors, and the evolution matrix.
    `correct_at`: budget -> ids of problems solved there (from phase 1)."""
    budgets = sorted({r["budget"] for r in rows})
    annotated = [r for r in rows if r["error_type"]]
    distribution = {b: {t: sum(r["error_type"] == t for r in annotated if r["budget"] == b) for t in ERROR_TYPES}
                    for b in budgets}  # fmt: skip
    recoverable = {b: {v: sum(r["recoverable"] == v for r in annotated if r["budget"] == b) for v in RECOVERABLE}
                   for b in budgets}  # fmt: skip
    later = sorted(correct_at)
    fates = {"recovered": 0, "persistent": 0}
    by_type = {t: {"recovered": 0, "persistent": 0} for t in ERROR_TYPES}
    for r in annotated:
        bigger = [b for b in later if b > r["budget"]]
        fate = "recovered" if any(r["problem_id"] in correct_at[b] for b in bigger) else "persistent"
        fates[fate] += 1
        by_type[r["error_type"]][fate] += 1
    labels = {(r["budget"], r["problem_id"]): r["error_type"] or "unannotated" for r in rows}
    evolution = {}
    for low, high in pairwise(budgets):
        matrix: dict[str, dict[str, int]] = {}
        for (budget, pid), label in labels.items():
            if budget != low:
                continue
            after = labels.get((high, pid)) or (
                "correct" if pid in correct_at.get(high, set()) else "not sampled"
            )
            matrix.setdefault(label, {}).setdefault(after, 0)
            matrix[label][after] += 1
        evolution[f"{low}->{high}"] = matrix
    return {"rows": len(rows), "annotated": len(annotated), "unannotated": len(rows) - len(annotated),
            "distribution": distribution, "recoverable": recoverable, "fates": fates, "fates_by_type": by_type,
            "evolution": evolution}  # fmt: skip


# ---- the study ---------------------------------------------------------------------------------
def _phases(phase: str) -> set[str]:
    if phase not in PHASES:
        raise UserError(f"unknown phase '{phase}': choose one of {', '.join(PHASES)}")
    return {"1", "1b", "2-prepare", "2-analyze", "3"} if phase == "all" else {phase}


def _write_records(path: Path, records: list[dict]) -> None:
    write_text_atomic(path, json.dumps(records, indent=2))


def run_study(config: BudgetStudyConfig, phase: str, console: Console) -> dict:
    """The phases asked for; returns what they found (and writes it under config.out)."""
    phases = _phases(phase)
    out = Path(config.out)
    results, annotations = out / "results", out / "annotations"
    results.mkdir(parents=True, exist_ok=True)
    if not config.math:
        skipped = phases & {"2-prepare", "2-analyze"}
        if skipped:
            console.print("[yellow]phase 2 (error annotation) and the structure analysis are for math solutions: "
                          f"skipped on {config.benchmark}[/yellow]")  # fmt: skip
            phases -= skipped
    tasks = _tasks(config)
    if not tasks:
        raise UserError(f"{config.benchmark} has no problems in {config.data_dir or 'the data directory'}")
    if "2-analyze" in phases and "2-prepare" not in phases:
        read_sheets(annotations, required=False)  # bad sheets: say so before generating anything
    model = _Model(config, console)
    study: dict = {"config": config.model_dump(), "phases": sorted(phases)}
    with Store(out / "store" / STORE_NAME) as store:
        from slmlab.pipeline import run

        tokenizer = model.generator.tokenizer if config.prompting == "chat" else None
        k = config.stochastic_samples if "1b" in phases else 1
        planned = _plan(config, tasks, tokenizer, k)
        gen_run, _ = store.open_run("budget-gen", _generation_identity(config, planned[0].prompt.text))
        if "1b" in phases and config.temperature == 0:
            console.print("[yellow]note: greedy decoding makes phase 1b's samples identical (std 0)[/yellow]")
        missing = store.missing(gen_run, [p.key for p in planned])
        console.print(f"{config.benchmark}: {len(tasks)} problems, generation run {gen_run} "
                      f"({len(missing)} samples to generate)")  # fmt: skip
        if missing:
            params = SamplingParams(temperature=config.temperature, top_p=config.top_p, seed=config.seed,
                                    max_new_tokens=_limits(config)[0])  # fmt: skip
            # Sample 0 of every problem first, then the others: batched in bfloat16, a sample's tokens
            # depend on the batch it shares (measured: 2 of 4 GSM8K answers changed between batch 4 and
            # 1), so the studies stored before the pipeline keep their numbers with the batches they had.
            for group, limit in (([p for p in planned if p.index == 0], _limits(config)[0]),
                                 ([p for p in planned if p.index > 0], _limits(config)[1])):  # fmt: skip
                run.generate(store, gen_run, group, model.generator, params, console, keep_ids=True,
                             label=f"generating at up to {limit} tokens")  # fmt: skip
        store.finish_run(gen_run)
        budgets = []  # read at sample 0 only
        if phases & {"1", "2-prepare", "2-analyze", "3"}:
            budgets += config.budgets
        if "3" in phases:
            budgets += config.cliff_budgets
        if phases & {"2-prepare", "2-analyze"}:
            budgets += list(config.annotation_samples)
        needed = dict.fromkeys(budgets, 1)  # budget -> how many sample indices it is read at
        if "1b" in phases:
            needed |= dict.fromkeys(config.stochastic_budgets, k)
        runs = _view_runs(config, store, gen_run, tasks, sorted(needed), needed, model, console)
        by_id = {task.task_id: task for task in tasks}
        records = {b: _records(store, runs[b], by_id, b, config.match) for b in sorted(needed)}
        stored = stored_labels(store, {b: runs[b] for b in config.annotation_samples}) if "2-analyze" in phases else []
    first = {b: [r for r in rs if r["sample_index"] == 0] for b, rs in records.items()}
    name = config.label
    if "1" in phases:
        table = analysis.budget_table({b: first[b] for b in config.budgets})
        study["phase1"] = {
            "table": table,
            "recommended": analysis.recommended_budget(table, config.tolerance),
        }
        for b in config.budgets:
            _write_records(results / f"phase1_main_{name}_budget{b}.json", first[b])
        write_text_atomic(results / f"phase1_combined_{name}.json", json.dumps(study["phase1"], indent=2))
    if "1b" in phases:
        spread = {b: analysis.sample_spread(records[b]) for b in config.stochastic_budgets}
        study["phase1b"] = spread
        for b in config.stochastic_budgets:
            _write_records(results / f"phase1b_stochastic_{name}_budget{b}.json", records[b])
        write_text_atomic(results / f"phase1b_stochastic_{name}.json", json.dumps(spread, indent=2))
    if "3" in phases:
        cliff_table = analysis.budget_table({b: first[b] for b in config.cliff_budgets})
        study["phase3_cliff"] = {"table": cliff_table, **analysis.cliff(cliff_table)}
        for b in config.cliff_budgets:
            _write_records(results / f"phase3_cliff_{name}_budget{b}.json", first[b])
        write_text_atomic(results / f"phase3_cliff_{name}.json", json.dumps(study["phase3_cliff"], indent=2))
        if config.math:
            study["phase3_structure"] = analysis.structure_by_budget({b: first[b] for b in config.budgets})
            write_text_atomic(results / f"phase3_structure_analysis_{name}.json",
                              json.dumps(study["phase3_structure"], indent=2))  # fmt: skip
    if "2-prepare" in phases:
        annotations.mkdir(parents=True, exist_ok=True)
        sheets = prepare_sheets(first, config.annotation_samples, annotations, config.seed)
        study["phase2_sheets"] = [{"path": str(p), "rows": n, "written": w} for p, n, w in sheets]
    if "2-analyze" in phases:
        correct_at = {b: {str(r["problem_id"]) for r in first[b] if r["correct"]} for b in config.budgets}
        rows = with_stored_labels(read_sheets(annotations, required=not stored), stored)
        study["phase2"] = analyze_sheets(rows, correct_at)
        study["phase2"]["from_store"] = len(stored)
        write_text_atomic(results / "phase2_error_analysis.json", json.dumps(study["phase2"], indent=2))
    from slmlab.report.budget import write_report

    study["report"] = str(write_report(config, study))
    return study
