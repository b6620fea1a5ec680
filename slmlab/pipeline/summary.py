"""What a finished run amounts to, computed once from its stored samples and shared by the printed
summary, the figures, the HTML report and the stored metrics. It reads judgements, so it reads
every run kind alike: pass rates count the samples whose judge decided (`passed` is not None)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from slmlab.execute.outcome import STATUS_ORDER
from slmlab.metrics import pass_at_k_summary, rate
from slmlab.store import SampleRow, natural_key

QUALITY_FLAGS = ("empty", "truncated", "repetitive", "mode_collapse")


@dataclass
class RunSummary:
    run_id: str
    config: dict
    samples: list[SampleRow]
    ks: tuple[int, ...] = (1, 10, 100)
    by_task: dict[str, list[bool]] = field(init=False)
    statuses: Counter = field(init=False)

    def __post_init__(self):
        self.by_task = {}  # decided samples only: an unchecked sample is not a failure
        for s in self.samples:
            if s.passed is not None:
                self.by_task.setdefault(s.task_id, []).append(s.passed)
        self.statuses = Counter(s.judgement.verdict for s in self.samples if s.judgement is not None)

    @property
    def checked(self) -> int:
        return sum(self.statuses.values())

    def pass_at_k(self):
        return pass_at_k_summary(self.by_task, ks=self.ks) if self.by_task else {}

    def pass_at_1_record(self) -> dict:
        """pass@1 with its interval and the outcome counts, as the studies store them."""
        passk = self.pass_at_k().get(1)
        return {"tasks": len(self.by_task), "pass_at_1": passk.value if passk else None,
                "interval": [passk.low, passk.high] if passk else None,
                "outcomes": {status: count for status, count, _ in self.outcome_rates()}}  # fmt: skip

    def outcome_rates(self) -> list[tuple[str, int, object]]:
        """(verdict, count, Rate) of the verdicts that occurred: the sandbox's in its taxonomy's
        order, other judges' (correct, wrong; valid, invalid) after them by name."""
        total = self.checked
        order = [s.value for s in STATUS_ORDER]
        verdicts = sorted(self.statuses, key=lambda v: (order.index(v) if v in order else len(order), v))
        return [(v, self.statuses[v], rate(self.statuses[v], total)) for v in verdicts]

    def flag_rates(self) -> list[tuple[str, int, object]]:
        total = len(self.samples)
        counts = {
            f: sum(1 for s in self.samples if s.generation.get("flags", {}).get(f)) for f in QUALITY_FLAGS
        }
        return [(f, counts[f], rate(counts[f], total)) for f in QUALITY_FLAGS] if total else []

    def in_process_tasks(self) -> list[str]:
        """Tasks the sandbox judged by running their tests inside it (tests not convertible to cases),
        counted apart: their verdicts are not out of the model's reach."""
        found = {s.task_id for s in self.samples if s.judgement is not None and s.judgement.judge == "sandbox"
                 and (s.judgement.detail.get("extra") or {}).get("verdict") == "in-process"}  # fmt: skip
        return sorted(found, key=natural_key)

    def finish_reasons(self) -> Counter:
        return Counter(s.generation.get("finish_reason", "?") for s in self.samples)

    def task_pass_rates(self) -> dict[str, float]:
        return {task: sum(p) / len(p) for task, p in self.by_task.items()}

    def dominant_failure(self, task_id: str) -> str:
        failures = Counter(s.judgement.verdict for s in self.samples
                           if s.task_id == task_id and s.passed is False)  # fmt: skip
        return failures.most_common(1)[0][0] if failures else "passed"

    def worst_tasks(self, count: int = 10) -> list[tuple[str, float, str]]:
        rates = self.task_pass_rates()
        ordered = sorted(rates, key=lambda t: (rates[t], natural_key(t)))[:count]
        return [(t, rates[t], self.dominant_failure(t)) for t in ordered if rates[t] < 1.0]

    def generation_totals(self) -> dict:
        tokens = sum(s.generation.get("tokens", 0) for s in self.samples)
        return {"samples": len(self.samples), "tokens": tokens,
                "mean_tokens": tokens / len(self.samples) if self.samples else 0.0}  # fmt: skip

    def metrics(self) -> dict:
        """The numbers stored with the run."""
        return {
            "pass_at_k": {str(k): vars(v) for k, v in self.pass_at_k().items()},
            "outcomes": {
                status: {"count": count, "share": r.value, "low": r.low, "high": r.high}
                for status, count, r in self.outcome_rates()
            },  # fmt: skip
            "quality": {
                flag: {"count": count, "share": r.value, "low": r.low, "high": r.high}
                for flag, count, r in self.flag_rates()
            },  # fmt: skip
            "finish_reasons": dict(self.finish_reasons()),
            "generation": self.generation_totals(),
            "judged_in_process": self.in_process_record(),
        }

    def in_process_record(self) -> dict:
        """The tasks judged by their tests inside the sandbox, and pass@1 over the others alone."""
        inside = self.in_process_tasks()
        outside = {t: v for t, v in self.by_task.items() if t not in set(inside)}
        passk = pass_at_k_summary(outside, ks=(1,)).get(1) if outside and inside else None
        return {"tasks": inside, "pass_at_1_judged_outside": vars(passk) if passk else None}
