"""The math judge (GSM8K): the final answer extracted from the solution, strict (`#### N` or a boxed
answer) and flexible (the last number), against the task's answer; `match` decides which counts."""

from __future__ import annotations

from fractions import Fraction

from slmlab.judge.base import Candidate, PlainJudge, register_judge
from slmlab.judgement import Judgement, math_judgement
from slmlab.metrics.answers import extract_answer


@register_judge("math")
class MathJudge(PlainJudge):
    def describe(self) -> str:
        return f"judge: math answers ({self.settings.match} match)"

    def judge_one(self, candidate: Candidate) -> Judgement:
        truth = Fraction(candidate.task.answer)
        both = {}
        for mode in ("strict", "flexible"):
            found = extract_answer(candidate.text, mode)
            both[mode] = {"predicted": found.text, "method": found.method, "correct": found.value == truth}
        return math_judgement(both, self.settings.match)
