"""Tests for the collapse evaluation: quality classes, batch metrics and the prompt sets."""

from __future__ import annotations

import ast
import json
import math
import tokenize
from io import StringIO

import pytest

from slmlab.metrics.collapse import (
    QUALITY_CLASSES,
    CollapseMetrics,
    classify,
    collapse_metrics,
    features,
)
from slmlab.metrics.repetition import quality_flags
from slmlab.tasks.collapse_prompts import (
    FEW_SHOT_TEMPLATES,
    context_length_prompts,
    few_shot_prompt,
    load_collapse_prompts,
)

ADD = "def add(a, b):"

# --- classify --------------------------------------------------------------------------------


def test_seed_loops_are_mode_collapse() -> None:
    # Seed 004's two failure patterns; a loop covering the whole output is the degenerate case.
    assert classify(ADD, "):" * 40) == "mode_collapse"
    assert classify("class Stack:", ":" * 64) == "mode_collapse"
    assert classify("def fibonacci(n):", ")" * 30) == "mode_collapse"


def test_a_loop_after_some_code_is_repetitive() -> None:
    completion = "\n    x = compute(a, b)\n    y = other(a)\n" + "):" * 8
    share = quality_flags(completion, "stop")["periodic_share"]
    assert 0.25 <= share < 0.5
    assert classify(ADD, completion) == "repetitive"


def test_classes_agree_with_the_stored_flags() -> None:
    samples = ["):" * 40, "\n    x = compute(a, b)\n    y = other(a)\n" + "):" * 8, "\n    return a + b\n"]
    for completion in samples:
        flags = quality_flags(completion, "length")
        quality = classify(ADD, completion)
        assert (quality == "mode_collapse") == flags["mode_collapse"]
        assert (quality in ("repetitive", "mode_collapse")) == flags["repetitive"]


@pytest.mark.parametrize(
    ("prompt", "completion"),
    [
        (ADD, "\n    return a + b\n"),
        (ADD, "    return a + b"),  # same line: `def add(a, b):    return a + b`
        ("class Stack:", "\n    def __init__(self):\n        self.items = []\n"),
        ("import numpy as np", "\nprint(np.zeros(3))"),  # a call is code too
        ("for i in range(10):", "\n    total += i"),
        (
            'def gcd(a, b):\n    """Return the gcd."""',
            "\n    while b:\n        a, b = b, a % b\n    return a\n",
        ),
    ],
)
def test_good(prompt: str, completion: str) -> None:
    assert classify(prompt, completion) == "good"


@pytest.mark.parametrize(
    "completion",
    [
        "\n    total = a + b\n    return (total *",  # cut mid-line by the token budget
        "\n    for i in range(a):\n        if i % 2 == 0:\n            b +=",  # and an open block left
        "\n    return a + b\n\ndef _A_b(s, b, b, b_b,",  # seed 003's cut second function
    ],
)
def test_budget_cut_code_is_good(completion: str) -> None:
    assert classify(ADD, completion) == "good"


def test_too_much_broken_tail_is_not_good() -> None:
    # Only MAX_DROPPED_LINES (3) trailing lines may be dropped.
    tail = "\n    if a >:\n        return a b\n    else\n        return b a\n"
    assert classify(ADD, "\n    x = a + b" + tail) == "partial"


@pytest.mark.parametrize(
    ("prompt", "completion"),
    [
        (ADD, "\n    if a >:\n        return a b\n    else\n        return b a\n"),
        (ADD, "\n    total = price quantity\n"),
        (ADD, "\n    result = compute(a,\n                     b"),  # no complete statement yet
        (ADD, '\n    """Add a and b."""\n'),  # parses, but a docstring is no code
        ("class Stack:", "\n    def push(self item):\n        self.items.append(item"),
    ],
)
def test_partial(prompt: str, completion: str) -> None:
    assert classify(prompt, completion) == "partial"


@pytest.mark.parametrize(
    "completion",
    [
        "",
        "   \n\n",
        "%$#@!^&*~`|? qzx",
        "The result is (roughly) the sum of both numbers.",
        "\n    This is a a Series with the raise a a\n",
        "\n    x\n",  # parses, but neither code nor Python-looking
        "):)",
    ],
)
def test_noise(completion: str) -> None:
    assert classify(ADD, completion) == "noise"


def test_partial_needs_half_of_the_lines_to_look_like_python() -> None:
    assert classify(ADD, "\n    x = a +\n    y = (b\nthe quick brown fox") == "partial"  # 2 of 3
    assert classify(ADD, "\n    x = a +\nthe quick brown fox\njumps over the lazy dog") == "noise"  # 1 of 3


def test_odd_input_does_not_crash() -> None:
    for completion in ["\n    return 1\x00", "\n\treturn 1\n        x = 2", "'''", "\\"]:
        assert classify(ADD, completion) in QUALITY_CLASSES


def test_features() -> None:
    assert features(ADD, "):" * 40) == {
        "repetition_ratio": pytest.approx(1 - 2 / 77),
        "unique_chars": 2,
        "has_keyword": False,
        "has_operator": False,
        "has_parens": False,
        "quality": "mode_collapse",
    }
    row = features(ADD, "\n    return max(a, b)\n")
    assert row["has_keyword"] and row["has_parens"] and not row["has_operator"]
    assert row["unique_chars"] == len(set("\n    return max(a, b)\n"))
    assert not features(ADD, "thesis")["has_keyword"]  # `is` inside a word is no keyword
    assert features(ADD, "x == y")["has_operator"]


# --- aggregate --------------------------------------------------------------------------------


def test_collapse_metrics_exact() -> None:
    samples = [
        (ADD, "):" * 40),  # mode_collapse, ratio 75/77, 2 chars
        ("class Stack:", ":" * 64),  # mode_collapse, ratio 60/61, 1 char
        (ADD, "\n    return a + b\n"),  # good, ratio 0, keyword + operator
        (ADD, "%$#@!^&*~`|? qzx"),  # noise, operator chars
    ]
    m = collapse_metrics(samples)
    assert m.n == 4
    assert m.counts == {"good": 1, "partial": 0, "noise": 1, "repetitive": 0, "mode_collapse": 2}
    assert m.collapsed == 2 and m.collapse_rate == 0.5
    assert (m.collapse_low, m.collapse_high) == (
        pytest.approx(0.1500, abs=1e-4),
        pytest.approx(0.8500, abs=1e-4),
    )
    assert m.mean_repetition_ratio == pytest.approx((75 / 77 + 60 / 61) / 4)
    assert m.keyword_share == 0.25
    assert m.operator_share == 0.5
    assert m.parens_share == 0.0
    assert m.mean_unique_chars == pytest.approx((2 + 1 + 10 + 16) / 4)
    out = json.loads(json.dumps(m.to_dict()))
    assert out["counts"]["mode_collapse"] == 2 and out["collapse_rate"] == 0.5
    assert out["collapse_interval"] == pytest.approx([0.15, 0.85], abs=1e-4)


def test_seed_004_distribution() -> None:
    # 28 repetitive + 16 mode_collapse out of 52 is seed 004's 84.6%.
    repetitive = (ADD, "\n    x = compute(a, b)\n    y = other(a)\n" + "):" * 8)
    samples = [repetitive] * 28 + [(ADD, ":" * 64)] * 16 + [(ADD, "qzx")] * 7 + [(ADD, "\n    x = a b\n")]
    m = collapse_metrics(samples)
    assert m.counts == {"good": 0, "partial": 1, "noise": 7, "repetitive": 28, "mode_collapse": 16}
    assert round(m.collapse_rate, 3) == 0.846
    assert m.collapse_low < 0.846 < m.collapse_high


def test_empty_batch() -> None:
    m = collapse_metrics([])
    assert isinstance(m, CollapseMetrics) and m.n == 0 and math.isnan(m.collapse_rate)
    out = m.to_dict()
    assert out["collapse_rate"] is None and out["collapse_interval"] == [0.0, 1.0]
    json.dumps(out, allow_nan=False)


# --- prompts ---------------------------------------------------------------------------------


def _open_at_end(prompt: str) -> bool:
    """The prompt stops inside an open bracket (`squares = [x * x for x in`)."""
    try:
        list(tokenize.generate_tokens(StringIO(prompt).readline))
    except tokenize.TokenError as err:
        return "multi-line statement" in str(err)
    return False


def test_collapse_prompts() -> None:
    prompts = load_collapse_prompts()
    assert len(prompts) == 52
    assert len({p["id"] for p in prompts}) == 52
    assert len({p["prompt"] for p in prompts}) == 52
    assert len({p["kind"] for p in prompts}) >= 10
    for p in prompts:
        text = p["prompt"]
        assert set(p) == {"id", "prompt", "kind"} and text.strip() and text == text.rstrip()
        # A well-formed Python prefix: it parses, or parses once its open block gets a body, or
        # it stops inside a bracket for the model to close.
        indent = " " * (len(text.split("\n")[-1]) - len(text.split("\n")[-1].lstrip()))
        with_body = text + "\n" + indent + "    pass\n"
        ok = any(_parses(source) for source in (text, with_body)) or _open_at_end(text)
        assert ok, p["id"]


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def test_few_shot_prompt() -> None:
    assert {"function", "typed_function", "class"} <= set(FEW_SHOT_TEMPLATES)
    for name, prefix in FEW_SHOT_TEMPLATES.items():
        assert 2 <= prefix.count("\ndef ") + prefix.count("\nclass ") <= 6, name
        assert _parses(prefix), name
        text = few_shot_prompt(name, ADD)
        assert text.endswith(ADD) and text.startswith(prefix) and len(text) > len(ADD)
        assert classify(text, "\n    return a + b\n") == "good"
    assert "-> int:" in FEW_SHOT_TEMPLATES["typed_function"]
    with pytest.raises(ValueError, match="unknown few-shot template 'nope'.*class, function, typed_function"):
        few_shot_prompt("nope", ADD)


def test_context_length_prompts() -> None:
    rows = context_length_prompts()
    assert [k for k, _ in rows] == [0, 1, 2, 3]
    for k, text in rows:
        assert text.endswith("def foo(n):")
        assert text.count("def ") == k + 1
        assert _parses(text + "\n    return n\n")
    assert rows[0][1] == "def foo(n):"
    assert context_length_prompts("def bar(x):", 1)[1][1].endswith("\n\ndef bar(x):")
    with pytest.raises(ValueError):
        context_length_prompts(max_examples=99)


def test_a_whitespace_loop_is_mode_collapse_but_a_short_blank_is_noise():
    # The char-level and GPT-2-vocabulary models of the default collapse study emit only spaces.
    assert classify("def add(a, b):", "\n" + " " * 63) == "mode_collapse"
    assert classify("def add(a, b):", "\n    return a + b\n" + " " * 60) == "mode_collapse"
    assert classify("def add(a, b):", "   ") == "noise"
    assert classify("def add(a, b):", "\n    return a + b\n        ") == "good"
