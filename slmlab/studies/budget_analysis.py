"""What seed 002's phases compute from budgeted results, as plain functions of records: the
saturation table and recommended budget (phase 1), spread over samples (1b), the cliff (3), solution
structure (3), and the automatic error suggestions that pre-fill phase 2's annotation sheets.

A record is one solution at one budget: the seed's schema (`problem_id`, `question`,
`ground_truth`, `generated`, `predicted`, `correct`, `tokens_used`, `budget`) plus `truncated`
(the budget cut it) and `sample_index`.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from fractions import Fraction
from itertools import pairwise

from slmlab.metrics.answers import arithmetic_slips, numbers_in
from slmlab.metrics.intervals import rate

PHASES = ("setup", "computation", "verification")


# ---- phase 1 -----------------------------------------------------------------------------------
def budget_table(records_by_budget: dict[int, list[dict]]) -> list[dict]:
    """Per budget: accuracy with its Wilson interval, mean tokens used, share cut by the budget."""
    rows = []
    for budget in sorted(records_by_budget):
        records = records_by_budget[budget]
        correct = rate(sum(r["correct"] for r in records), len(records))
        rows.append({"budget": budget, "n": len(records), "correct": correct.successes, "accuracy": correct.value,
                     "low": correct.low, "high": correct.high,
                     "mean_tokens": statistics.fmean(r["tokens_used"] for r in records) if records else 0.0,
                     "truncated": sum(r["truncated"] for r in records) / len(records) if records else 0.0})  # fmt: skip
    return rows


def recommended_budget(table: list[dict], tolerance: float) -> dict:
    """The smallest budget within `tolerance` (a fraction: 0.01 = 1 point) of the saturated
    accuracy (the best of the table), and the mean tokens it saves against the largest budget."""
    best = max(row["accuracy"] for row in table)
    chosen = next(row for row in table if row["accuracy"] >= best - tolerance)
    largest = table[-1]
    saved = largest["mean_tokens"] - chosen["mean_tokens"]
    return {"budget": chosen["budget"], "accuracy": chosen["accuracy"], "saturated_accuracy": best,
            "tolerance": tolerance, "largest_budget": largest["budget"], "tokens_saved_per_problem": saved,
            "tokens_saved_share": saved / largest["mean_tokens"] if largest["mean_tokens"] else 0.0}  # fmt: skip


# ---- phase 1b ----------------------------------------------------------------------------------
def sample_spread(records: list[dict]) -> dict:
    """Accuracy of each sample index (each a full pass over the problems), their mean and standard
    deviation: the seed's check that the plateau is not sampling noise."""
    by_index: dict[int, list[bool]] = {}
    for r in records:
        by_index.setdefault(r["sample_index"], []).append(r["correct"])
    accuracies = [sum(v) / len(v) for _, v in sorted(by_index.items())]
    return {"samples": len(accuracies), "accuracies": accuracies, "mean": statistics.fmean(accuracies),
            "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0}  # fmt: skip


# ---- phase 3: the cliff ------------------------------------------------------------------------
def cliff(table: list[dict], top: int = 3) -> dict:
    """Gain per token between neighbouring budgets, and the steepest windows."""
    windows = [{"from": a["budget"], "to": b["budget"], "gain": b["accuracy"] - a["accuracy"],
                "gain_per_token": (b["accuracy"] - a["accuracy"]) / (b["budget"] - a["budget"])}
               for a, b in pairwise(table)]  # fmt: skip
    steepest = sorted(windows, key=lambda w: w["gain_per_token"], reverse=True)[:top]
    return {"windows": windows, "steepest": steepest}


# ---- phase 3: solution structure ---------------------------------------------------------------
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_OPERATION = re.compile(r"\d\s*[-+*/×x÷]\s*\$?\d|\d\s*\\times\s*\d|\\frac")
_EQUATION = re.compile(r"\d[^=\n]*=\s*\$?-?\d")
_VERIFY = re.compile(
    r"\b(check|verif|double[- ]check|confirm|sanity|make sure|plug(?:ging)? (?:it|this|back)|substitut|indeed|"
    r"consistent|let'?s see if|which matches|is correct)", re.IGNORECASE)  # fmt: skip


def segments(text: str) -> list[str]:
    """Lines, and sentences within long lines: the units a solution's phases are made of."""
    parts = []
    for line in text.splitlines():
        parts += [p for p in _SENTENCE.split(line.strip()) if p.strip()]
    return parts


def solution_structure(text: str, tokens_used: int) -> dict:
    """Setup (before the first calculation), computation, verification (a re-check after the first
    calculation), with steps (equations worked out: `... = number`), operations (+ - * / between
    numbers), and tokens per phase (each phase's share of the characters times the tokens used)."""
    parts = segments(text)
    kinds = []
    computing = False
    for part in parts:
        calculates = bool(_OPERATION.search(part) or _EQUATION.search(part))
        if computing and _VERIFY.search(part):
            kinds.append("verification")
        elif calculates or computing:
            computing = True
            kinds.append("computation")
        else:
            kinds.append("setup")
    chars = Counter()
    for part, kind in zip(parts, kinds, strict=True):
        chars[kind] += len(part)
    total = sum(chars.values()) or 1
    return {"steps": sum(len(_EQUATION.findall(p)) for p in parts),
            "operations": sum(len(_OPERATION.findall(p)) for p in parts),
            "verifies": "verification" in kinds,
            "tokens": {phase: tokens_used * chars[phase] / total for phase in PHASES}}  # fmt: skip


def structure_by_budget(records_by_budget: dict[int, list[dict]]) -> list[dict]:
    rows = []
    for budget in sorted(records_by_budget):
        records = records_by_budget[budget]
        shapes = [solution_structure(r["generated"], r["tokens_used"]) for r in records]
        verifying = [r["correct"] for r, s in zip(records, shapes, strict=True) if s["verifies"]]
        plain = [r["correct"] for r, s in zip(records, shapes, strict=True) if not s["verifies"]]
        share = rate(len(verifying), len(records))
        rows.append({"budget": budget, "n": len(records), "verify_share": share.value, "verify_low": share.low,
                     "verify_high": share.high, "mean_steps": statistics.fmean(s["steps"] for s in shapes),
                     "mean_operations": statistics.fmean(s["operations"] for s in shapes),
                     "tokens": {p: statistics.fmean(s["tokens"][p] for s in shapes) for p in PHASES},
                     "accuracy_verifying": sum(verifying) / len(verifying) if verifying else None,
                     "accuracy_not_verifying": sum(plain) / len(plain) if plain else None,
                     "verifying": len(verifying)})  # fmt: skip
    return rows


# ---- phase 2: automatic suggestions ------------------------------------------------------------
def suggest_error(record: dict) -> dict:
    """error_type / error_location / recoverable where the record itself shows them: `incomplete`
    when the budget cut the solution, `arithmetic` at the first wrong calculation, `format` when the
    right number is in the solution but not where the answer was read. Blank otherwise."""
    if record["truncated"]:
        return {"error_type": "incomplete", "error_location": "cut by the budget", "recoverable": "yes",
                "evidence": f"stopped at the {record['budget']}-token budget"}  # fmt: skip
    slips = arithmetic_slips(record["generated"])
    if slips:
        first = slips[0]
        return {"error_type": "arithmetic", "error_location": f"line {first['line']}", "recoverable": "",
                "evidence": f"{first['text']} (is {first['should_be']:g})"}  # fmt: skip
    if Fraction(record["ground_truth"]) in numbers_in(record["generated"]):
        return {"error_type": "format", "error_location": "final answer", "recoverable": "",
                "evidence": f"{record['ground_truth']} is in the solution, but the answer read was "
                            f"{record['predicted'] or 'none'}"}  # fmt: skip
    return {"error_type": "", "error_location": "", "recoverable": "", "evidence": ""}
