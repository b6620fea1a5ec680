"""Seed 001 as one command: LoRA sweeps over rank, data size and language, with honest checks.

Trials: `rank` (Python, each rank at `rank_size` examples), `scale` (Python, rank 16, each size),
`lang` (each language at `lang_size`), `all` (their union), plus the base model as a zero-training
baseline per language. Each trial trains an adapter on function pairs cut from real code (nested
sizes: 50 examples are the first 50 of 150), generates bodies for the same held-out documented
headers, and scores them: BLEU and CodeBLEU with bootstrap intervals, the syntax pass rate from the
execution engine's real checker per language (javac, node, compile; `unchecked` is reported and left
out of the rate), the correlation between sentence BLEU and syntactic validity, and for Python the
mini benchmark and MBPP's test split executed in the sandbox (pass@1, outcome taxonomy). Each
trial's record keeps its settings, metrics, time, peak memory and package versions; finished trials
are read back, so an interrupted sweep resumes.
"""

from __future__ import annotations

import csv
import json
import resource
import time
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from slmlab.atomic import atomic_writer, write_text_atomic
from slmlab.errors import UserError
from slmlab.store import run_key
from slmlab.studies.configs import load_config
from slmlab.train.lora import LoraSettings

BUILTIN_CONFIGS = {"default": "lora.yaml", "full": "lora-full.yaml"}
SWEEPS = ("rank", "scale", "lang", "all")
LANGUAGES = ("python", "java", "javascript")
PACKAGES = ("torch", "transformers", "peft", "sacrebleu", "codebleu", "slmlab")


class LoraStudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "smollm2-135m-instruct"
    sweep: Literal["rank", "scale", "lang", "all"] = "all"
    sources: dict[str, list[str]] = Field(
        default_factory=lambda: {"python": ["python:stdlib"], "java": ["java"], "javascript": ["js:lodash"]}
    )
    ranks: list[int] = Field(default_factory=lambda: [4, 16, 64])
    sizes: list[int] = Field(default_factory=lambda: [50, 150, 300])
    rank_size: int = Field(200, gt=0)
    lang_size: int = Field(200, gt=0)
    languages: list[Literal["python", "java", "javascript"]] = Field(default_factory=lambda: list(LANGUAGES))
    test_size: int = Field(40, gt=0)
    max_lines: int = Field(30, gt=2)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(16, gt=0)  # generation
    mbpp: bool = True  # Python trials also run MBPP's test split (from data_dir or $SLMLAB_DATA)
    mbpp_limit: int | None = Field(20, ge=1)  # MBPP test tasks executed per Python trial; None: all 500
    minibench: bool = True
    data_dir: str | None = None
    out: str = "slmlab-runs/studies/lora"


def load_study_config(name_or_path: str | None, overrides: dict) -> LoraStudyConfig:
    return load_config(name_or_path, BUILTIN_CONFIGS, LoraStudyConfig, overrides, "model: ..., sweep: ...")


def plan_trials(config: LoraStudyConfig) -> list[dict]:
    """Every (language, rank, size) the sweep needs, baselines (rank 0) first, without repeats."""
    wanted = []
    if config.sweep in ("rank", "all"):
        wanted += [("python", rank, config.rank_size) for rank in config.ranks]
    if config.sweep in ("scale", "all"):
        wanted += [("python", 16, size) for size in config.sizes]
    if config.sweep in ("lang", "all"):
        wanted += [(language, 16, config.lang_size) for language in config.languages]
    languages = sorted({language for language, _, _ in wanted}, key=LANGUAGES.index)
    trials = [{"language": language, "rank": 0, "size": 0} for language in languages]
    for language, rank, size in wanted:
        trial = {"language": language, "rank": rank, "size": size}
        if trial not in trials:
            trials.append(trial)
    return trials


def _pairs(config: LoraStudyConfig, language: str, size: int, console: Console):
    """The language's pairs (cached as JSONL): the largest size any trial needs, and the test split."""
    from slmlab.train.pairs import build_pairs, read_pairs

    settings = {"sources": config.sources.get(language), "size": size, "test": config.test_size,
                "max_lines": config.max_lines}  # fmt: skip
    if not settings["sources"]:
        raise UserError(f"no sources for {language}: add them under sources: {language}: [...] in the config")
    path = Path(config.out) / "pairs" / f"{language}-{run_key('pairs', settings)}.jsonl"
    if not path.is_file():
        console.print(f"[bold]pairs[/bold] {language}: {', '.join(settings['sources'])}")
        build_pairs(settings["sources"], language, max_lines=config.max_lines, limit=size,
                    test_size=config.test_size).to_jsonl(path)  # fmt: skip
    return read_pairs(path)


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _score(model, tokenizer, language: str, test_pairs, config: LoraStudyConfig) -> dict:
    """Generate a body for each held-out header (greedy) and compare with the real one."""
    from slmlab.execute.syntax import check_many
    from slmlab.execute.syntax.verdict import SyntaxVerdict
    from slmlab.generate.params import SamplingParams
    from slmlab.metrics.intervals import rate
    from slmlab.metrics.textsim import code_bleu, corpus_bleu, sentence_bleu, similarity_vs_correctness
    from slmlab.train.examples import function_source, pair_example, trim_body
    from slmlab.train.quality import sample_completions

    examples = [e for e in map(pair_example, test_pairs) if e is not None]
    params = SamplingParams(temperature=0.0, max_new_tokens=config.max_new_tokens)
    generated = sample_completions(model, tokenizer, [p for p, _ in examples], params, 1, config.batch_size)
    bodies = [trim_body(texts[0], language) for texts in generated]
    references = [body for _, body in examples]
    sources = [function_source(p, b, language) for (p, _), b in zip(examples, bodies, strict=True)]
    # An empty body parses (a Python function of only its docstring, `{}`), but nothing was written.
    verdicts = [v if _has_code(b) else SyntaxVerdict("invalid", v.checker, message="empty body")
                for b, v in zip(bodies, check_many(sources, language), strict=True)]  # fmt: skip
    checked = [v for v in verdicts if v.status != "unchecked"]
    valid = sum(v.ok for v in checked)
    syntax = rate(valid, len(checked)) if checked else None
    sentence = [sentence_bleu(b, r) for b, r in zip(bodies, references, strict=True)]
    return {
        "examples": len(examples),
        "bleu": corpus_bleu(bodies, references).to_dict(),
        "codebleu": code_bleu(bodies, references, language).to_dict(),
        "syntax_pass": None if syntax is None else {"value": syntax.value, "interval": [syntax.low, syntax.high],
                                                    "valid": valid, "checked": len(checked)},
        "syntax_checker": sorted({v.checker for v in verdicts}),
        "unchecked": len(verdicts) - len(checked),
        "bleu_vs_syntax": similarity_vs_correctness(
            [s for s, v in zip(sentence, verdicts, strict=True) if v.status != "unchecked"], [v.ok for v in checked]),
        "empty_bodies": sum(not _has_code(b) for b in bodies),
        "samples": [{"prompt": p, "reference": r, "generated": b, "syntax": v.status, "message": v.message}
                    for (p, r), b, v in zip(examples, bodies, verdicts, strict=True)],
    }  # fmt: skip


def _has_code(body: str) -> bool:
    return bool(body.strip().strip("{}").strip())


def _execute(model_name: str, config: LoraStudyConfig, console: Console) -> dict:
    """Python trials: the mini benchmark and MBPP's test split through the main job."""
    from slmlab.eval.config import EvalConfig
    from slmlab.eval.pipeline import run_eval

    results = {}
    benchmarks = [("minibench", None)] if config.minibench else []
    if config.mbpp:
        benchmarks.append(("mbpp-test", config.mbpp_limit))
    for benchmark, limit in benchmarks:
        eval_config = EvalConfig(model=model_name, benchmark=benchmark, limit=limit, prompt_mode="plain",
                                 max_new_tokens=max(config.max_new_tokens, 192), k=[1], dtype="float32",
                                 batch_size=config.batch_size, data_dir=config.data_dir,
                                 out=str(Path(config.out) / "store"))  # fmt: skip
        summary = run_eval(eval_config, console, show_summary=False).summary
        results[benchmark] = summary.pass_at_1_record()
    return results


def run_trial(config: LoraStudyConfig, trial: dict, console: Console) -> dict:
    """Train (unless baseline), score and record one trial; a recorded trial is read back."""
    from slmlab.models.load import load
    from slmlab.train.examples import pair_example
    from slmlab.train.lora import train_lora
    from slmlab.train.pairs import curriculum_order

    key = run_key("lora-trial", {**trial, "model": config.model, "lora": config.lora.model_dump(),
                                 "test": config.test_size, "tokens": config.max_new_tokens, "scoring": 2})  # fmt: skip
    folder = Path(config.out) / "trials" / key
    record_path = folder / "trial.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    language, rank, size = trial["language"], trial["rank"], trial["size"]
    largest = max([config.rank_size, config.lang_size, *config.sizes])
    pairs = _pairs(config, language, largest, console)
    started = time.monotonic()
    training = None
    model_name = config.model
    if rank:
        train = pairs.train[:size]
        ordered = curriculum_order(train) if config.lora.curriculum else train
        examples = [e for e in map(pair_example, ordered) if e is not None]
        console.print(f"[bold]lora[/bold] {language} rank {rank}, {len(examples)} examples")
        settings = config.lora.model_copy(update={"rank": rank})
        training = train_lora(config.model, examples, settings, folder / "adapter").to_dict()
        model_name = f"lora:{folder / 'adapter'}"
    else:
        console.print(f"[bold]baseline[/bold] {language}: {config.model} without fine-tuning")
    loaded = load(model_name, dtype="float32")
    record = {"trial": key, **trial, "model": config.model, "training": training,
              "scores": _score(loaded.model, loaded.tokenizer, language, pairs.test, config)}  # fmt: skip
    if language == "python":
        record["execution"] = _execute(model_name, config, console)
    record.update(seconds=round(time.monotonic() - started, 1), versions=_versions(),
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record_path, json.dumps(record, indent=2))
    return record


CSV_FIELDS = ["language", "rank", "size", "bleu", "bleu_low", "bleu_high", "codebleu", "syntax_pass",
              "syntax_low", "syntax_high", "syntax_checked", "unchecked", "minibench_pass_at_1",
              "mbpp_pass_at_1", "bleu_syntax_r", "train_seconds", "peak_rss_mb", "trial"]  # fmt: skip


def csv_row(record: dict) -> dict:
    s = record["scores"]
    syntax = s["syntax_pass"] or {"value": None, "interval": [None, None], "checked": 0}
    execution = record.get("execution", {})
    return {"language": record["language"], "rank": record["rank"], "size": record["size"],
            "bleu": s["bleu"]["value"], "bleu_low": s["bleu"]["interval"][0], "bleu_high": s["bleu"]["interval"][1],
            "codebleu": s["codebleu"]["value"], "syntax_pass": syntax["value"], "syntax_low": syntax["interval"][0],
            "syntax_high": syntax["interval"][1], "syntax_checked": syntax["checked"], "unchecked": s["unchecked"],
            "minibench_pass_at_1": execution.get("minibench", {}).get("pass_at_1"),
            "mbpp_pass_at_1": execution.get("mbpp-test", {}).get("pass_at_1"),
            "bleu_syntax_r": s["bleu_vs_syntax"]["r"],
            "train_seconds": (record["training"] or {}).get("seconds"), "peak_rss_mb": record["peak_rss_mb"],
            "trial": record["trial"]}  # fmt: skip


def run_study(config: LoraStudyConfig, console: Console) -> list[dict]:
    records = [run_trial(config, trial, console) for trial in plan_trials(config)]
    out = Path(config.out)
    with atomic_writer(out / f"results_{config.sweep}.csv") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_row(r) for r in records)
    write_text_atomic(out / f"results_{config.sweep}.json", json.dumps(records, indent=2))
    from slmlab.report.lora import write_sweep_report

    write_sweep_report(config, records)
    return records
