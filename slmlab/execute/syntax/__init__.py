"""Syntax checking of model-written code in python, java and javascript, behind one API.

    from slmlab.execute.syntax import check_syntax, check_many
    check_syntax("int x = 1", "java")          # SyntaxVerdict(status="invalid", checker="javac", line=1, ...)
    check_many(snippets, "js")                 # one warm node process for the whole batch

Nothing passes by default: a language without a working checker gets status "unchecked", whose `ok` is
False. Each language has a real checker (CPython's compile, javac's parser, V8 via node's vm.Script);
when that is missing, tree-sitter answers instead and the verdict says `grammar_only=True`.

Java and JavaScript checks go to warm helper processes (one JVM, one node) that live until
`close_checkers()` or interpreter exit; helper.py is the plumbing both share.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from slmlab.execute.syntax.helper import close_checkers
from slmlab.execute.syntax.verdict import SyntaxVerdict

__all__ = [
    "CHECKER_CHOICES",
    "LANGUAGES",
    "SyntaxVerdict",
    "available_checkers",
    "check_many",
    "check_syntax",
    "close_checkers",
    "normalize_language",
]

LANGUAGES = ("python", "java", "javascript")
_ALIASES = {"py": "python", "python": "python", "python3": "python", "java": "java"}
_ALIASES |= {"js": "javascript", "javascript": "javascript"}
# "native" means the language's real checker, whichever it is; the names below pick it explicitly.
CHECKER_CHOICES = ("auto", "native", "tree-sitter", "python-compile", "javac", "node-vm")
NO_CHECKER = "none"


class _Checker(Protocol):
    """What python.py, java.py and javascript.py each provide."""

    CHECKER: str

    def unavailable_reason(self) -> str | None: ...

    def check_many(self, codes: Sequence[str]) -> list[SyntaxVerdict]: ...


def _native(language: str) -> _Checker:
    # Imported on first use: the Java and JavaScript modules are not needed to check Python.
    return cast(_Checker, importlib.import_module(f"{__name__}.{language}"))


def _treesitter() -> Any:
    return importlib.import_module(f"{__name__}.treesitter")


def normalize_language(language: str) -> str | None:
    """The canonical name for `language` ("js" -> "javascript"), or None if it is not one we check."""
    return _ALIASES.get(language.strip().lower()) if isinstance(language, str) else None


def check_syntax(code: str, language: str, checker: str = "auto") -> SyntaxVerdict:
    """Check one snippet. `checker`: "auto" (real checker, else tree-sitter, else unchecked), "native"
    or the real checker's name (only it), or "tree-sitter" (only the grammar)."""
    return check_many([code], language, checker=checker)[0]


def check_many(codes: Sequence[str], language: str, checker: str = "auto") -> list[SyntaxVerdict]:
    """Check a batch with one checker; Java and JavaScript batches stream through one warm helper."""
    codes = list(codes)
    if not codes:
        return []
    if checker not in CHECKER_CHOICES:
        raise ValueError(f"unknown checker {checker!r}; choose one of {', '.join(CHECKER_CHOICES)}")
    lang = normalize_language(language)
    if lang is None:
        why = f"unknown language {language!r}: no syntax checker (known: {', '.join(LANGUAGES)})"
        return [SyntaxVerdict("unchecked", NO_CHECKER, message=why)] * len(codes)
    run, why = _choose(lang, checker)
    if run is None:
        return [SyntaxVerdict("unchecked", NO_CHECKER, message=why)] * len(codes)
    return run(codes)


def _choose(lang: str, checker: str) -> tuple[Callable[[list[str]], list[SyntaxVerdict]] | None, str]:
    """The batch function to run for `lang` under `checker`, or (None, why nothing can run)."""
    native = _native(lang)
    if checker not in ("auto", "native", "tree-sitter") and checker != native.CHECKER:
        raise ValueError(f"checker {checker!r} does not check {lang} (its checker is {native.CHECKER!r})")
    reasons: list[str] = []
    if checker != "tree-sitter":
        reason = native.unavailable_reason()
        if reason is None:
            return native.check_many, ""
        reasons.append(f"{native.CHECKER}: {reason}")
    if checker in ("auto", "tree-sitter"):
        treesitter = _treesitter()
        reason = treesitter.unavailable_reason(lang)
        if reason is None:
            return lambda codes: treesitter.check_many(codes, lang), ""
        reasons.append(f"tree-sitter: {reason}")
    return None, f"no {lang} syntax checker available ({'; '.join(reasons)})"


def available_checkers() -> dict[str, str]:
    """Language -> the checker "auto" would use now, or "unchecked". Starts no helper process."""
    found: dict[str, str] = {}
    for lang in LANGUAGES:
        native = _native(lang)
        if native.unavailable_reason() is None:
            found[lang] = native.CHECKER
        elif (treesitter := _treesitter()).unavailable_reason(lang) is None:
            found[lang] = treesitter.CHECKER
        else:
            found[lang] = "unchecked"
    return found
