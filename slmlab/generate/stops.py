"""Stop sequences: where a completion ends, checked per sequence as its text grows.

The engine only takes stop strings: each benchmark's own set comes from its file in slmlab/tasks/
(`slmlab.tasks.lookup(name).stops_for(mode)`).
"""

from __future__ import annotations

import re

# Chat answers are markdown: the code is in the first fenced block, and what follows it is prose.
# This marker ends an answer right after that block closes (the code is extracted afterwards).
CLOSED_CODE_BLOCK = "<closed code block>"
_CLOSED_FENCE = re.compile(r"```[^\n]*\n(?:.*?\n)?```", re.DOTALL)


class StopFinder:
    """Finds the earliest stop sequence in a text that only grows, rescanning only the new end.
    The CLOSED_CODE_BLOCK marker stops after the first closed fenced block instead."""

    def __init__(self, stops: tuple[str, ...]):
        self.fence = CLOSED_CODE_BLOCK in stops
        self.stops = tuple(s for s in stops if s and s != CLOSED_CODE_BLOCK)
        self.overlap = max((len(s) for s in self.stops), default=1) - 1
        self.scanned = 0

    def find(self, text: str) -> int | None:
        """Index where `text` ends: where the earliest stop sequence begins, or just after the
        first closed code block; None while neither is there."""
        if self.fence and "```" in text:
            block = _CLOSED_FENCE.search(text)
            if block:
                return block.end()
        if not self.stops:
            return None
        start = max(0, self.scanned - self.overlap)
        self.scanned = len(text)
        found = [i for i in (text.find(s, start) for s in self.stops) if i >= 0]
        return min(found) if found else None


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """The text before the earliest stop sequence, and whether one was found."""
    index = StopFinder(stops).find(text)
    return (text, False) if index is None else (text[:index], True)
