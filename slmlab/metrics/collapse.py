"""Generation quality of one completion, and the collapse rate of a batch (seeds 003 and 004).

`classify(prompt, completion)` gives one of `QUALITY_CLASSES`; the first rule that applies wins:
1. mode_collapse / 2. repetitive: the `quality_flags` that the eval pipeline stores with every
   completion (slmlab.metrics.repetition, measured on the completion alone) say so; mode collapse is
   a periodic tail covering >= 50% of the text (a `):):):` or `:::::` loop, or a run of 32 or more
   spaces) or <= 3 distinct words.
3. noise: the completion is empty or whitespace (short of such a loop).
4. good: prompt + completion parses with `ast`, and the completion holds real code: outside strings
   and comments, a Python keyword (`keyword.kwlist`), an operator or assignment (`+ == += :=` ...)
   or a call `name(`. A completion cut by the token budget still counts: up to `MAX_DROPPED_LINES`
   trailing lines may be dropped, and a block header left open at the end (`for x in y:`) gets a
   `pass` body for the parse only.
5. partial: at least half of the completion's non-blank lines look like Python: they start with a
   statement keyword (`def`, `return`, `if`, `import` ...), a decorator `@name`, a string literal
   or a `# comment`, or they hold an assignment (`x = ...`, `a, b = ...`, `x += ...`,
   `self.n: int = ...`) or a call or subscript (`name(`, `name[`).
6. noise: anything else (random characters, prose fragments).

`CollapseMetrics` aggregates a batch the way seed 004 reported it: the collapse rate is the share
classified repetitive or mode_collapse (its 84.6% = 53.8% + 30.8%), with a Wilson 95% interval.
"""

from __future__ import annotations

import ast
import io
import keyword
import math
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field

from slmlab.metrics.intervals import wilson
from slmlab.metrics.repetition import quality_flags, repetition_ratio

QUALITY_CLASSES = ("good", "partial", "noise", "repetitive", "mode_collapse")
RULES_VERSION = 2  # bump when a rule changes: cached classifications made with older rules are redone
COLLAPSED_CLASSES = ("repetitive", "mode_collapse")
# A budget cut breaks the last statement, which may span a few lines (an open call or literal).
MAX_DROPPED_LINES = 3
PARTIAL_MIN_CODE_LINES = 0.5

_OPERATORS = frozenset(
    ("+", "-", "*", "/", "//", "%", "**", "@", "==", "!=", "<", ">", "<=", ">=", "&", "|", "^", "~",
     "<<", ">>", "=", ":=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", "@=", "&=", "|=", "^=", ">>=", "<<=")
)  # fmt: skip
_STATEMENT_KEYWORDS = (
    "def", "class", "return", "if", "elif", "else", "for", "while", "try", "except", "finally", "with",
    "import", "from", "raise", "assert", "pass", "break", "continue", "yield", "del", "global",
    "nonlocal", "lambda", "async", "await",
)  # fmt: skip
_KEYWORD_WORD = re.compile(r"\b(?:" + "|".join(keyword.kwlist) + r")\b")
_OPERATOR_TEXT = re.compile(r"[-+*/%=<>&|^~]|!=")
_CODE_LINE = re.compile(
    r"^(?:(?:"
    + "|".join(_STATEMENT_KEYWORDS)
    + r")\b"
    + r"""
      | @[A-Za-z_] | [rRbBfFuU]{0,2}['"] | \#[\sA-Za-z])                # decorator, string, comment
    | ^[A-Za-z_][\w.]*(?:\[[^\]]*\])?(?:\s*,\s*[A-Za-z_][\w.]*)*      # assignment target(s) ...
      \s*(?::[^=]+)?(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)               # ... annotation, (aug)assign
    | [A-Za-z_]\w*[(\[]                                                # call or subscript
    """,
    re.VERBOSE,
)


def _end_position(text: str) -> tuple[int, int]:
    """(row, col) where `text` ends, in tokenize's coordinates (rows from 1)."""
    return text.count("\n") + 1, len(text) - (text.rfind("\n") + 1)


def _has_real_code(prompt: str, kept: str) -> bool:
    """A keyword, operator or call among the tokens of `kept` (strings and comments excluded)."""
    start = _end_position(prompt)
    previous = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(prompt + kept).readline):
            if tok.start >= start:
                if tok.type == tokenize.NAME and keyword.iskeyword(tok.string):
                    return True
                if tok.type == tokenize.OP and (
                    tok.string in _OPERATORS
                    or (tok.string == "(" and previous is not None and previous.type == tokenize.NAME)
                ):
                    return True
            previous = tok
    except (tokenize.TokenError, SyntaxError):
        return False
    return False


def _parses(source: str) -> bool:
    candidates = [source]
    last = source.rstrip().rsplit("\n", 1)[-1]
    if last.rstrip().endswith(":"):
        # An open block header at the cut: give it a body so the code before it can be judged.
        indent = last[: len(last) - len(last.lstrip())]
        candidates.append(source.rstrip() + "\n" + indent + "    pass\n")
    for candidate in candidates:
        try:
            ast.parse(candidate)
        except (SyntaxError, ValueError):  # ValueError: null bytes in the text
            continue
        return True
    return False


def _is_good(prompt: str, completion: str) -> bool:
    lines = completion.rstrip().split("\n")
    for _ in range(MAX_DROPPED_LINES + 1):
        kept = "\n".join(lines)
        if _has_real_code(prompt, kept) and _parses(prompt + kept):
            return True
        lines = lines[:-1]
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            break
    return False


def _looks_like_python(completion: str) -> bool:
    lines = [line.strip() for line in completion.split("\n") if line.strip()]
    code = sum(1 for line in lines if _CODE_LINE.search(line))
    return bool(lines) and code / len(lines) >= PARTIAL_MIN_CODE_LINES


def classify(prompt: str, completion: str) -> str:
    """The quality class of `completion` generated after `prompt` (rules in the module docstring)."""
    flags = quality_flags(completion, "stop")
    if flags["mode_collapse"]:
        return "mode_collapse"
    if flags["repetitive"]:
        return "repetitive"
    if not completion.strip():
        return "noise"
    if _is_good(prompt, completion):
        return "good"
    return "partial" if _looks_like_python(completion) else "noise"


def features(prompt: str, completion: str) -> dict:
    """Per-sample features of the completion (seed 004's table), with its quality class."""
    return {
        "repetition_ratio": repetition_ratio(completion),
        "unique_chars": len(set(completion)),
        "has_keyword": bool(_KEYWORD_WORD.search(completion)),
        "has_operator": bool(_OPERATOR_TEXT.search(completion)),
        "has_parens": "(" in completion and ")" in completion,
        "quality": classify(prompt, completion),
    }


@dataclass(frozen=True)
class CollapseMetrics:
    """Quality of a batch of completions; shares and means are nan for an empty batch."""

    n: int
    counts: dict[str, int] = field(default_factory=dict)
    collapse_rate: float = math.nan
    collapse_low: float = 0.0
    collapse_high: float = 1.0
    mean_repetition_ratio: float = math.nan
    keyword_share: float = math.nan
    operator_share: float = math.nan
    parens_share: float = math.nan
    mean_unique_chars: float = math.nan

    @property
    def collapsed(self) -> int:
        return sum(self.counts.get(name, 0) for name in COLLAPSED_CLASSES)

    def to_dict(self) -> dict:
        """JSON-ready: nan becomes None."""

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "n": self.n,
            "counts": {name: self.counts.get(name, 0) for name in QUALITY_CLASSES},
            "collapsed": self.collapsed,
            "collapse_rate": clean(self.collapse_rate),
            "collapse_interval": [self.collapse_low, self.collapse_high],
            "mean_repetition_ratio": clean(self.mean_repetition_ratio),
            "keyword_share": clean(self.keyword_share),
            "operator_share": clean(self.operator_share),
            "parens_share": clean(self.parens_share),
            "mean_unique_chars": clean(self.mean_unique_chars),
        }


def collapse_metrics(samples: Iterable[tuple[str, str]], confidence: float = 0.95) -> CollapseMetrics:
    """Aggregate `(prompt, completion)` pairs into a `CollapseMetrics`."""
    rows = [features(prompt, completion) for prompt, completion in samples]
    n = len(rows)
    counts = {name: sum(1 for row in rows if row["quality"] == name) for name in QUALITY_CLASSES}
    collapsed = sum(counts[name] for name in COLLAPSED_CLASSES)
    low, high = wilson(collapsed, n, confidence)

    def mean(key: str) -> float:
        return sum(float(row[key]) for row in rows) / n if n else math.nan

    return CollapseMetrics(
        n=n,
        counts=counts,
        collapse_rate=collapsed / n if n else math.nan,
        collapse_low=low,
        collapse_high=high,
        mean_repetition_ratio=mean("repetition_ratio"),
        keyword_share=mean("has_keyword"),
        operator_share=mean("has_operator"),
        parens_share=mean("has_parens"),
        mean_unique_chars=mean("unique_chars"),
    )
