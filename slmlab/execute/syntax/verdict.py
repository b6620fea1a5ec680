"""The verdict one syntax checker gives on one snippet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["valid", "invalid", "unchecked"]


@dataclass(frozen=True, slots=True)
class SyntaxVerdict:
    """What one checker said about one snippet."""

    status: Status
    checker: str  # "python-compile", "javac", "node-vm", "tree-sitter (grammar only)" or "none"
    grammar_only: bool = False  # True when only a grammar (tree-sitter) looked, not the real compiler
    line: int | None = None  # 1-based line of the first error, when known
    message: str = ""
    wrapped: bool = False  # java: parsed only inside `class __Wrapper { ... }` (a bare method)

    @property
    def ok(self) -> bool:
        return self.status == "valid"
