"""The one record every judge writes for a sample, whatever it checked: the sandbox's outcome, a math
answer, a syntax verdict, a collapse class. `slmlab runs`, `compare`, the reports and the studies
read every run kind through it: `passed` is the verdict's meaning for pass rates, None where the
judge could not decide (an unchecked syntax, a quality class that is no pass or fail)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Judgement:
    judge: str  # which judge: sandbox, math, syntax, collapse
    verdict: (
        str  # its label: passed / failed_assertion / ..., correct / wrong / no_answer, valid / invalid ...
    )
    passed: bool | None  # None: unchecked, or a judge without pass and fail
    category: str | None = (
        None  # the finer class where there is one (the exception class, the extraction method)
    )
    detail: dict = field(
        default_factory=dict
    )  # the judge's whole record (stdout, line, strict and flexible ...)

    def to_dict(self) -> dict:
        return {"judge": self.judge, "verdict": self.verdict, "passed": self.passed, "category": self.category,
                "detail": self.detail}  # fmt: skip

    @classmethod
    def from_dict(cls, record: dict) -> Judgement:
        return cls(record["judge"], record["verdict"], record["passed"], record.get("category"),
                   record.get("detail") or {})  # fmt: skip


def from_version1(kind: str, outcome: dict) -> Judgement:
    """A sample's `outcome` as stores of schema 1 kept it, as the judgement it stood for. What it meant
    depended on the run kind: a sandbox outcome (eval, budget views of code), both math verdicts
    (budget views of GSM8K), a syntax verdict (LoRA trials)."""
    if kind == "lora-trial":
        status = outcome.get("status", "unchecked")
        return Judgement(
            "syntax", status, None if status == "unchecked" else status == "valid", None, outcome
        )
    if "flexible" in outcome and "strict" in outcome:
        return math_judgement(outcome, "flexible")
    if "status" in outcome:
        status = outcome["status"]
        return Judgement("sandbox", status, status == "passed", outcome.get("error_type"), outcome)
    raise ValueError(f"an outcome of a {kind} run that no judge wrote: {sorted(outcome)}")


def math_judgement(both: dict, match: str) -> Judgement:
    """The math judge's record: `both` holds the strict and flexible extractions; `match` decides."""
    chosen = both[match]
    verdict = "correct" if chosen["correct"] else ("no_answer" if chosen["predicted"] is None else "wrong")
    return Judgement("math", verdict, bool(chosen["correct"]), chosen.get("method"), {**both, "match": match})
