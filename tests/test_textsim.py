"""BLEU and CodeBLEU with intervals, and similarity against correctness."""

from __future__ import annotations

import pytest

from slmlab.errors import UserError
from slmlab.metrics.textsim import code_bleu, corpus_bleu, sentence_bleu, similarity_vs_correctness

REFS = [
    "def add(a, b):\n    return a + b\n",
    "def neg(x):\n    return -x\n",
    "def sq(x):\n    return x * x\n",
]


def test_bleu_is_100_for_copies_low_for_strangers_with_an_interval():
    same = corpus_bleu(REFS, REFS, n_boot=50)
    assert same.value == pytest.approx(100.0) and same.low == pytest.approx(100.0)
    other = corpus_bleu(["print('hello world')"] * 3, REFS, n_boot=50)
    assert other.value < 10
    mixed = corpus_bleu([REFS[0], "x", REFS[2]], REFS, n_boot=200)
    assert mixed.low <= mixed.value <= mixed.high and mixed.low < mixed.high
    assert sentence_bleu(REFS[0], REFS[0]) == pytest.approx(100.0)


def test_codebleu_in_each_language_and_bad_input():
    assert code_bleu(REFS, REFS, "python", n_boot=10).value == pytest.approx(1.0)
    # codebleu itself gives an empty prediction 0.25 (a data-flow match of 0 counts as 1)
    assert (
        code_bleu(
            ["", ""], ["    y = x + 1\n    return y\n", "    z = 2 * x\n    return z\n"], "python"
        ).value
        == 0
    )
    java = ["int add(int a, int b) { return a + b; }"]
    assert code_bleu(java, java, "java", n_boot=5).value == pytest.approx(1.0)
    js = ["function add(a, b) { return a + b; }"]
    worse = code_bleu(["function add(a, b) { return a * b * 2; }"], js, "javascript", n_boot=5)
    assert worse.value < 1.0
    with pytest.raises(UserError, match="does not support"):
        code_bleu(REFS, REFS, "cobol")
    with pytest.raises(UserError, match="pair up"):
        corpus_bleu(REFS, REFS[:2])


def test_similarity_against_correctness():
    related = similarity_vs_correctness([90, 80, 85, 10, 20, 15], [True, True, True, False, False, False])
    assert related["r"] > 0.9 and related["p_value"] < 0.05
    assert related["mean_correct"] == pytest.approx(85.0)
    constant = similarity_vs_correctness([50, 60], [True, True])
    assert constant["r"] is None and constant["mean_incorrect"] is None
