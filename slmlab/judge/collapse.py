"""The collapse judge (seeds 003 and 004): the quality class of a completion after its prompt
(good, collapsed, repetitive, ...) with the features the class was read from. It has no pass or
fail: `passed` is None, and the collapse study counts the classes."""

from __future__ import annotations

from slmlab.judge.base import Candidate, PlainJudge, register_judge
from slmlab.judgement import Judgement
from slmlab.metrics.collapse import features


@register_judge("collapse")
class CollapseJudge(PlainJudge):
    description = "collapse class"

    def judge_one(self, candidate: Candidate) -> Judgement:
        found = features(candidate.task.prompt, candidate.text)
        return Judgement("collapse", found["quality"], None, None, found)
