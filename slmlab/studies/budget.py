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
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from rich.console import Console

from slmlab.atomic import atomic_writer, write_text_atomic
from slmlab.errors import UserError
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


class BudgetStudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "qwen2.5-coder-0.5b-instruct"
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
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = "auto"
    quantization: Literal["4bit"] | None = None  # bitsandbytes 4-bit, CUDA only
    batch_size: int = Field(16, ge=1, le=4096)
    sandbox: Literal["auto", "bwrap", "process", "subprocess"] = "auto"
    timeout: float = Field(5.0, gt=0.0)
    data_dir: str | None = None
    out: str = "slmlab-runs/studies/budget"

    _budgets = field_validator("budgets", "stochastic_budgets", "cliff_budgets")(_budget_list)

    @property
    def math(self) -> bool:
        from slmlab.tasks.gsm8k import is_math_benchmark

        return is_math_benchmark(self.benchmark)

    @property
    def prompt_mode(self) -> str:
        """The code benchmarks' prompt mode for this prompting."""
        return "chat" if self.prompting == "chat" else "plain"

    @property
    def label(self) -> str:
        """The model's name as it goes into file names."""
        return re.sub(r"[^\w.-]+", "_", self.model).strip("_")


def load_study_config(name_or_path: str | None, overrides: dict) -> BudgetStudyConfig:
    return load_config(
        name_or_path, BUILTIN_CONFIGS, BudgetStudyConfig, overrides, "model: ..., budgets: [...]"
    )


@dataclass(frozen=True)
class Item:
    """One problem (GSM8K) or task (code) with the prompt the model sees."""

    task_id: str
    question: str
    truth: str  # GSM8K's answer; for code the reference solution
    prompt_text: str
    chat: bool
    task: object | None = None  # the code Task


# ---- stage 1: generation -----------------------------------------------------------------------
def _limits(config: BudgetStudyConfig) -> tuple[int, int]:
    """Tokens generated for sample 0, and for samples 1..k-1."""
    first = max(
        [*config.budgets, *config.cliff_budgets, *config.stochastic_budgets, *config.annotation_samples]
    )
    return first, max(config.stochastic_budgets)


def _generation_identity(config: BudgetStudyConfig, first_prompt: str) -> dict:
    import hashlib

    from slmlab.eval.config import trained_weights_sha256

    first, rest = _limits(config)
    # Not the number of problems or samples: each sample is seeded by (problem, index), so a larger
    # --num-samples only generates the problems not stored yet.
    identity = {"model": config.model, "benchmark": config.benchmark,
                "prompting": config.prompting, "few_shot": config.few_shot if config.prompting == "few-shot" else 0,
                "temperature": config.temperature, "top_p": config.top_p, "seed": config.seed, "dtype": config.dtype,
                "quantization": config.quantization, "limit": first, "stochastic_limit": rest,
                # the prompt as built (template, instruction, examples), so a new prompt is a new run
                "prompt_sha256": hashlib.sha256(first_prompt.encode()).hexdigest()[:16]}  # fmt: skip
    if config.model.startswith(("ckpt:", "lora:")):
        identity["model_weights"] = trained_weights_sha256(config.model)
    return identity


def _items(config: BudgetStudyConfig, tokenizer) -> list[Item]:
    if config.math:
        from slmlab.tasks.gsm8k import build_math_prompt, few_shot_pool, load_gsm8k

        problems = load_gsm8k("test", config.data_dir, config.num_samples)
        examples = few_shot_pool(load_gsm8k("train", config.data_dir), config.few_shot, config.seed) \
            if config.prompting == "few-shot" else []  # fmt: skip
        items = []
        for problem in problems:
            prompt = build_math_prompt(problem, config.prompting, tokenizer, examples)
            items.append(
                Item(
                    str(problem.problem_id), problem.question, problem.ground_truth, prompt.text, prompt.chat
                )
            )
        return items
    from slmlab.tasks.prompts import build_prompt, few_shot_examples
    from slmlab.tasks.registry import load_benchmark

    tasks = load_benchmark(config.benchmark, config.data_dir)[: config.num_samples]
    mode = config.prompt_mode
    shots = config.few_shot if config.prompting == "few-shot" else 0
    items = []
    for task in tasks:
        prompt = build_prompt(task, mode, tokenizer, few_shot_examples(task, tasks, shots))
        items.append(Item(task.task_id, task.prompt, task.reference, prompt.text, prompt.chat, task))
    return items


def _check_data(config: BudgetStudyConfig) -> None:
    """The dataset is there (before minutes go into loading a model)."""
    if config.math:
        from slmlab.tasks.gsm8k import load_gsm8k

        load_gsm8k("test", config.data_dir, limit=1)
        if config.prompting == "few-shot":
            load_gsm8k("train", config.data_dir, limit=1)
    else:
        from slmlab.tasks.registry import load_benchmark

        load_benchmark(config.benchmark, config.data_dir)


def _stops(config: BudgetStudyConfig) -> tuple[str, ...]:
    from slmlab.generate.stops import default_stops
    from slmlab.tasks.gsm8k import math_stops
    from slmlab.tasks.registry import plain_stops

    if config.math:
        return math_stops(config.prompting)
    return default_stops(plain_stops(config.benchmark), config.prompt_mode)


class _Model:
    """The model, loaded the first time something needs it (generation, or the tokenizer to cut
    stored samples at a new budget)."""

    def __init__(self, config: BudgetStudyConfig, console: Console):
        self.config, self.console, self._loaded = config, console, None

    @property
    def loaded(self):
        if self._loaded is None:
            from slmlab.models.load import load

            with self.console.status(f"loading {self.config.model}"):
                self._loaded = load(self.config.model, dtype=self.config.dtype, device=self.config.device,
                                    quantization=self.config.quantization)  # fmt: skip
        return self._loaded


def _generate(config: BudgetStudyConfig, store: Store, run_id: str, items: list[Item],
              missing: list[tuple[str, int]], limits: tuple[int, int], model: _Model, console: Console) -> None:  # fmt: skip
    """Generate the missing samples, each stored the moment it finishes."""
    from slmlab.generate import BatchGenerator, Request, sample_seed
    from slmlab.generate.params import SamplingParams
    from slmlab.progress import Meter

    by_id = {item.task_id: item for item in items}
    loaded = model.loaded
    for limit, group in (
        (limits[0], [m for m in missing if m[1] == 0]),
        (limits[1], [m for m in missing if m[1] > 0]),
    ):
        if not group:
            continue
        params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_new_tokens=limit,
                                seed=config.seed)  # fmt: skip
        requests = [Request((task_id, index), by_id[task_id].prompt_text, sample_seed(config.seed, task_id, index),
                            add_special_tokens=not by_id[task_id].chat) for task_id, index in group]  # fmt: skip
        engine = BatchGenerator(
            loaded.model, loaded.tokenizer, params, _stops(config), batch_size=config.batch_size
        )
        meter = Meter(console, f"generating at up to {limit} tokens", len(group), limit)

        def store_sample(generation, limit=limit, meter=meter) -> None:
            task_id, index = generation.key
            record = {"tokens": generation.tokens, "finish_reason": generation.finish_reason, "limit": limit,
                      "ids": list(generation.token_ids), "prompt_tokens": generation.prompt_tokens,
                      "seconds": generation.seconds}  # fmt: skip
            store.add_sample(run_id, SampleRow(task_id, index, sample_seed(config.seed, task_id, index),
                                               by_id[task_id].prompt_text, generation.text, record, None))  # fmt: skip
            meter.sample(generation.tokens)

        with meter:
            engine.run(requests, store_sample, on_step=meter.step)


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


def _judge_math(text: str, truth: str) -> dict:
    from fractions import Fraction

    from slmlab.metrics.answers import extract_answer

    verdict = {}
    for mode in ("strict", "flexible"):
        found = extract_answer(text, mode)
        verdict[mode] = {
            "predicted": found.text,
            "method": found.method,
            "correct": found.value == Fraction(truth),
        }
    return verdict


def _view_runs(config: BudgetStudyConfig, store: Store, gen_run: str, items: list[Item], budgets: list[int],
               indices: dict[int, int], model: _Model, console: Console) -> dict[int, str]:  # fmt: skip
    """The view run of each budget, its missing samples cut and judged. `indices`: budget -> how
    many sample indices it needs."""
    by_id = {item.task_id: item for item in items}
    generated = {(row.task_id, row.sample_index): row for row in store.samples(gen_run)}
    runs, pending = {}, []
    for budget in budgets:
        run_id, _ = store.open_run("budget-view", {"generation": gen_run, "budget": budget, "scoring": 1})
        runs[budget] = run_id
        wanted = [(item.task_id, i) for item in items for i in range(indices[budget])]
        pending += [(budget, run_id, key) for key in store.missing(run_id, wanted)]
    if not pending:
        return runs
    tokenizer = model.loaded.tokenizer
    stops = _stops(config)

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=True)

    cuts = []
    for budget, run_id, key in pending:
        row = generated[key]
        g = row.generation
        cuts.append((budget, run_id, row, cut_at_budget(row.completion, g["tokens"], g["finish_reason"], g["ids"],
                                                       budget, decode, stops)))  # fmt: skip
    if config.math:
        outcomes = [_judge_math(text, by_id[row.task_id].truth) for _, _, row, (text, _, _) in cuts]
    else:
        outcomes = _execute_views(
            config, [(by_id[row.task_id], text) for _, _, row, (text, _, _) in cuts], console
        )
    for (budget, run_id, row, (text, used, truncated)), outcome in zip(cuts, outcomes, strict=True):
        store.add_sample(run_id, SampleRow(row.task_id, row.sample_index, row.seed, "", text,
                                           {"tokens_used": used, "truncated": truncated, "budget": budget}, outcome))  # fmt: skip
    console.print(f"cut and judged {len(cuts)} solutions at {len({c[0] for c in cuts})} budgets")
    return runs


def _execute_views(config: BudgetStudyConfig, views: list[tuple[Item, str]], console: Console) -> list[dict]:
    """Code at each budget through the sandbox; a program that several budgets share runs once."""
    from slmlab.execute import Executor, Limits
    from slmlab.tasks.prompts import completion_from_answer

    mode = config.prompt_mode
    programs, where = [], {}
    slots = []
    for item, text in views:
        completion = completion_from_answer(item.task, text, mode)
        program = item.task.program(completion.code, completion.whole_program)
        key = (item.task_id, program.definitions)
        if key not in where:
            where[key] = len(programs)
            programs.append(program)
        slots.append(where[key])
    with Executor(sandbox=config.sandbox, limits=Limits(timeout_s=config.timeout)) as executor:
        console.print(f"executing {len(programs)} distinct programs (sandbox: {executor.tier.label})")
        outcomes = executor.run(programs)
    return [outcomes[i].to_dict() for i in slots]


def _records(
    store: Store, run_id: str, items: dict[str, Item], budget: int, match: str, math: bool
) -> list[dict]:
    """The seed's record schema, one per stored solution at this budget."""
    records = []
    for row in store.samples(run_id):
        item = items.get(row.task_id)
        if item is None:
            continue
        outcome = row.outcome
        if math:
            predicted, correct = outcome[match]["predicted"], outcome[match]["correct"]
        else:
            predicted, correct = outcome["status"], outcome["status"] == "passed"
        records.append({"problem_id": int(row.task_id) if row.task_id.isdigit() else row.task_id,
                        "sample_index": row.sample_index, "question": item.question,
                        "ground_truth": item.truth, "generated": row.completion, "predicted": predicted,
                        "correct": correct, "tokens_used": row.generation["tokens_used"],
                        "truncated": row.generation["truncated"], "budget": budget})  # fmt: skip
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


def read_sheets(folder: Path) -> list[dict]:
    """Every annotated row, validated: a bad value names its file, line, and the values allowed."""
    paths = sorted(folder.glob("annotate_errors_budget*.tsv"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    if not paths:
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
    _check_data(config)
    if "2-analyze" in phases and "2-prepare" not in phases:
        read_sheets(annotations)  # bad or missing sheets: say so before generating anything
    model = _Model(config, console)
    study: dict = {"config": config.model_dump(), "phases": sorted(phases)}
    with Store(out / "store" / STORE_NAME) as store:
        tokenizer = model.loaded.tokenizer if config.prompting == "chat" else None
        items = _items(config, tokenizer)
        if not items:
            raise UserError(
                f"{config.benchmark} has no problems in {config.data_dir or 'the data directory'}"
            )
        limits = _limits(config)
        gen_run, _ = store.open_run("budget-gen", _generation_identity(config, items[0].prompt_text))
        k = config.stochastic_samples if "1b" in phases else 1
        if "1b" in phases and config.temperature == 0:
            console.print("[yellow]note: greedy decoding makes phase 1b's samples identical (std 0)[/yellow]")
        missing = store.missing(gen_run, [(item.task_id, i) for item in items for i in range(k)])
        console.print(f"{config.benchmark}: {len(items)} problems, generation run {gen_run} "
                      f"({len(missing)} samples to generate)")  # fmt: skip
        if missing:
            _generate(config, store, gen_run, items, missing, limits, model, console)
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
        runs = _view_runs(config, store, gen_run, items, sorted(needed), needed, model, console)
        by_id = {item.task_id: item for item in items}
        records = {b: _records(store, runs[b], by_id, b, config.match, config.math) for b in sorted(needed)}
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
        study["phase2"] = analyze_sheets(read_sheets(annotations), correct_at)
        write_text_atomic(results / "phase2_error_analysis.json", json.dumps(study["phase2"], indent=2))
    from slmlab.report.budget import write_report

    study["report"] = str(write_report(config, study))
    return study
