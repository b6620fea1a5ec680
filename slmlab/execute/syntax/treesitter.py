"""Grammar-only syntax check with tree-sitter: the fallback when a language's real checker is missing.

A tree-sitter grammar accepts things the real compiler rejects (duplicate declarations, `return`
outside a function, ...), so every verdict from here says `grammar_only=True`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

from slmlab.execute.syntax.verdict import SyntaxVerdict

CHECKER = "tree-sitter (grammar only)"

_GRAMMARS = {
    "python": "tree_sitter_python",
    "java": "tree_sitter_java",
    "javascript": "tree_sitter_javascript",
}

# One parser per grammar, built on first use; a Parser is not safe to share between threads unlocked.
_parsers: dict[str, tuple[Any, threading.Lock]] = {}
_parsers_lock = threading.Lock()


def _grammar(language: str) -> Any:
    """The grammar's binding module; imported on every call (a dict lookup once loaded) so that a test
    can hide it with sys.modules[name] = None."""
    return importlib.import_module(_GRAMMARS[language])


def unavailable_reason(language: str) -> str | None:
    if language not in _GRAMMARS:
        return f"no tree-sitter grammar for {language}"
    try:
        importlib.import_module("tree_sitter")
        _grammar(language)
    except ImportError as exc:
        return f"{exc.name or 'tree_sitter'} is not installed"
    return None


def parser_for(language: str) -> tuple[Any, threading.Lock]:
    from tree_sitter import Language, Parser

    grammar = _grammar(language)
    with _parsers_lock:
        if language not in _parsers:
            _parsers[language] = (Parser(Language(grammar.language())), threading.Lock())
        return _parsers[language]


def check_many(codes: Sequence[str], language: str) -> list[SyntaxVerdict]:
    parser, lock = parser_for(language)
    verdicts = []
    for code in codes:
        with lock:
            tree = parser.parse(code.encode("utf-8", "replace"))
        verdicts.append(_verdict(tree.root_node))
    return verdicts


def check(code: str, language: str) -> SyntaxVerdict:
    return check_many([code], language)[0]


def _verdict(root: Any) -> SyntaxVerdict:
    if not root.has_error:
        return SyntaxVerdict("valid", CHECKER, grammar_only=True)
    node = _first_error(root)
    if node is None:  # has_error with no ERROR/MISSING node found: still not valid
        return SyntaxVerdict("invalid", CHECKER, grammar_only=True, message="syntax error")
    if node.is_missing:
        message = f"missing {node.type!r}"
    else:
        text = " ".join((node.text or b"").decode("utf-8", "replace").split())  # one line, for logs
        message = f"unexpected {text[:40]!r}" if text else "syntax error"
    return SyntaxVerdict("invalid", CHECKER, grammar_only=True, line=node.start_point[0] + 1, message=message)


def _first_error(root: Any) -> Any:
    """The first ERROR or MISSING node in source order (iterative: deep trees must not recurse)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            return node
        # Only subtrees that contain an error are worth entering; reversed keeps source order on a stack.
        stack.extend(child for child in reversed(node.children) if child.has_error or child.is_missing)
    return None
