"""The syntax judge: each candidate through its language's real checker (compile, javac, node), one
warm checker per batch. An empty answer is invalid: it parses, but nothing was written."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from slmlab.execute.syntax import check_many
from slmlab.judge.base import Candidate, StatelessJudge, register_judge
from slmlab.judgement import Judgement


def _verdict_judgement(verdict, empty: bool) -> Judgement:
    status = "invalid" if empty else verdict.status
    message = "empty body" if empty else verdict.message
    return Judgement("syntax", status, None if status == "unchecked" else status == "valid", verdict.checker,
                     {"status": status, "message": message, "checker": verdict.checker, "line": verdict.line})  # fmt: skip


@register_judge("syntax")
class SyntaxJudge(StatelessJudge):
    description = "syntax (the language's own checker)"

    def judge(self, candidates: Sequence[Candidate], on_result: Callable[[int, Judgement], None]) -> None:
        by_language: dict[str, list[int]] = {}
        for index, c in enumerate(candidates):
            by_language.setdefault(c.task.language, []).append(index)
        for language, indices in by_language.items():
            verdicts = check_many([candidates[i].text for i in indices], language)
            for index, verdict in zip(indices, verdicts, strict=True):
                on_result(index, _verdict_judgement(verdict, candidates[index].empty))
