"""Python syntax: CPython's own compile(), in process (no helper needed, always available)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence

from slmlab.execute.syntax.verdict import SyntaxVerdict

CHECKER = "python-compile"

# warnings.catch_warnings swaps process-wide state, so compiles take turns.
_lock = threading.Lock()


def unavailable_reason() -> str | None:
    return None


def check_many(codes: Sequence[str]) -> list[SyntaxVerdict]:
    return [check(code) for code in codes]


def check(code: str) -> SyntaxVerdict:
    # "exec" compiles to bytecode, not just an AST: `return` outside a function, `await` outside async
    # and `nonlocal` at module level are only caught by the compiler.
    try:
        with _lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning (e.g. "\d" escapes) is not an error
            compile(code, "<candidate>", "exec", dont_inherit=True)
    except SyntaxError as exc:  # includes IndentationError and TabError
        return _invalid(exc.lineno or _nul_line(code), f"{type(exc).__name__}: {exc.msg}")
    except ValueError as exc:  # older 3.11 releases report null bytes as ValueError
        return _invalid(_nul_line(code), f"ValueError: {exc}")
    except (RecursionError, MemoryError) as exc:  # CPython itself cannot compile it, so neither can a run
        return _invalid(None, f"{type(exc).__name__}: too deeply nested or too large to compile")
    return SyntaxVerdict("valid", CHECKER)


def _invalid(line: int | None, message: str) -> SyntaxVerdict:
    return SyntaxVerdict("invalid", CHECKER, line=line if line and line > 0 else None, message=message)


def _nul_line(code: str) -> int | None:
    """The line of the first null byte, which CPython rejects without saying where."""
    nul = code.find("\0")
    return code.count("\n", 0, nul) + 1 if nul >= 0 else None
