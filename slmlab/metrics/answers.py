"""Final answers of math word problems: what number a model's solution ends on, and whether it is
the right one.

GSM8K's truth follows `####`. A model states its answer in many ways: the `####` marker, "The
answer is 18", `\\boxed{18}`, or only as the last number it wrote, with commas, currency, units,
percent signs, decimals and fractions around it. Two match modes, both reported:

- strict: only an explicit answer statement counts (`####`, "the answer is" / "answer:", boxed);
  a solution that never states its answer is wrong even if its last number is right.
- flexible: an explicit statement if there is one, else the last number in the text.

Numbers are compared exactly as fractions, so "12.50", "12.5" and "25/2" are one answer, and
"$1,234" equals 1234. No library extracts answers in all these formats (lm-evaluation-harness has
two regexes inside its task configs), hence this module.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction

MATCH_MODES = ("strict", "flexible")

# A number as written in solutions: -1,234.5  $12  .5  3/4  1 1/2 (thousands groups only with commas).
_NUMBER = re.compile(
    r"(?<![\w.])-?\$?\s?(?:\d+ \d+/\d+|(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:\s?/\s?\d+(?:\.\d+)?)?)"
)
_MARKER = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS = re.compile(r"(?:final\s+answer|answer)\s*(?:is|:|=)\s*:?\s*([^\n]*)", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")


@dataclass(frozen=True)
class Extraction:
    value: Fraction | None
    method: str | None  # marker | answer_is | boxed | last_number; None: no answer found

    @property
    def text(self) -> str | None:
        return None if self.value is None else format_number(self.value)


def format_number(value: Fraction) -> str:
    """18, -0.75, 2/3: an integer, else a terminating decimal, else a fraction."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:
        return f"{float(value):.10f}".rstrip("0").rstrip(".")
    return f"{value.numerator}/{value.denominator}"


def _clean(text: str) -> str:
    text = text.replace("\u2212", "-").replace("\u2013", "-").replace("\\$", "$").replace("\\%", "%")
    text = _LATEX_FRACTION.sub(r"\1/\2", text)
    return text.replace("\\!", "").replace("{,}", ",")


def numbers_in(text: str) -> list[Fraction]:
    """Every number written in `text`, in order."""
    found = []
    for match in _NUMBER.finditer(_clean(text)):
        token = match.group().replace("$", "").replace(",", "").strip()
        if not any(ch.isdigit() for ch in token):
            continue
        whole = Fraction(0)
        try:
            if " " in token.lstrip("-").strip() and "/" in token:  # a mixed number: 1 1/2
                sign = -1 if token.startswith("-") else 1
                head, token = token.lstrip("-").split(" ", 1)
                whole, token = sign * Fraction(head), ("-" if sign < 0 else "") + token
            token = token.replace(" ", "")
            if "/" in token:
                top, bottom = token.split("/")
                value = Fraction(top) / Fraction(bottom)
            else:
                value = Fraction(token)
        except (ValueError, ZeroDivisionError):
            continue
        found.append(whole + value)
    return found


def parse_number(text: str) -> Fraction | None:
    """The first number in `text` ("$1,234.50 per week" -> 1234.5), or None."""
    numbers = numbers_in(text)
    return numbers[0] if numbers else None


def _boxed(text: str) -> str | None:
    """The content of the last \\boxed{...}, braces balanced."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    return text[start:]


def extract_answer(text: str, mode: str = "flexible") -> Extraction:
    """The answer `text` states (the last statement wins), or under `flexible` its last number."""
    if mode not in MATCH_MODES:
        raise ValueError(f"match mode must be one of {MATCH_MODES}, got {mode!r}")
    statements = []  # (position, method, value)
    for method, pattern in (("marker", _MARKER), ("answer_is", _ANSWER_IS)):
        for match in pattern.finditer(text):
            value = parse_number(match.group(1))
            if value is not None:
                statements.append((match.start(), method, value))
    boxed = _boxed(text)
    if boxed is not None and (value := parse_number(boxed)) is not None:
        statements.append((text.rfind("\\", 0, text.rfind(boxed)), "boxed", value))
    if statements:
        _, method, value = max(statements, key=lambda s: s[0])
        return Extraction(value, method)
    if mode == "flexible":
        numbers = numbers_in(text)
        if numbers:
            return Extraction(numbers[-1], "last_number")
    return Extraction(None, None)


def ground_truth(answer: str) -> Fraction:
    """GSM8K's answer field: the number after `####`."""
    marker = _MARKER.search(answer)
    value = parse_number(marker.group(1)) if marker else None
    if value is None:
        raise ValueError(f"no '#### <number>' in the reference answer: {answer[-80:]!r}")
    return value


def is_correct(text: str, truth: Fraction, mode: str = "flexible") -> bool:
    return extract_answer(text, mode).value == truth


# Written by hand: recomputing the arithmetic a solution wrote (`12 x 3 = 38`) is no library's job.
_EXPRESSION = re.compile(
    r"((?:\$?\(?-?\d[\d,]*(?:\.\d+)?\)?\s*(?:[-+*/×÷]|\bx\b)\s*)+\$?\(?-?\d[\d,]*(?:\.\d+)?\)?)\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)"
)


def _evaluate(node) -> Fraction:
    """+ - * / over numbers only: the arithmetic a solution wrote, recomputed exactly."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right
    raise ValueError("not plain arithmetic")


def arithmetic_slips(text: str) -> list[dict]:
    """Every `a op b = c` whose c is not what a op b makes (allowing rounding to c's decimals)."""
    slips = []
    for line_number, line in enumerate(text.splitlines(), 1):
        for match in _EXPRESSION.finditer(line):
            expression = match.group(1).replace("$", "").replace(",", "").replace("×", "*").replace("÷", "/")
            expression = re.sub(r"\bx\b", "*", expression)
            stated = match.group(2).replace(",", "")
            try:
                computed = _evaluate(ast.parse(expression.strip(), mode="eval"))
            except (SyntaxError, ValueError, ZeroDivisionError):
                continue
            decimals = len(stated.split(".")[1]) if "." in stated else 0
            if abs(computed - Fraction(stated)) > Fraction(1, 2 * 10**decimals):
                slips.append({"line": line_number, "text": match.group(0).strip(),
                              "should_be": float(computed)})  # fmt: skip
    return slips
