"""The similarity judge: how close a generation is to the task's reference, as sentence BLEU
(sacrebleu, 0-100). It has no pass or fail (`passed` is None); corpus BLEU and CodeBLEU with their
intervals are computed over a run's samples by the analysis (slmlab.metrics.textsim)."""

from __future__ import annotations

from slmlab.judge.base import Candidate, PlainJudge, register_judge
from slmlab.judgement import Judgement
from slmlab.metrics.textsim import sentence_bleu


@register_judge("similarity")
class SimilarityJudge(PlainJudge):
    description = "similarity to the reference (sentence BLEU)"

    def judge_one(self, candidate: Candidate) -> Judgement:
        reference = candidate.task.reference
        if not reference.strip():
            return Judgement("similarity", "no_reference", None, None, {})
        return Judgement("similarity", "scored", None, None, {"bleu": sentence_bleu(candidate.text, reference)})
