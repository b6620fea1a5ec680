"""Answer extraction on a labelled set of crafted model outputs: the #### marker, "the answer is",
boxed answers and the last number, with commas, currency, units, percent, decimals and fractions."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from slmlab.metrics.answers import extract_answer, format_number, ground_truth, is_correct, parse_number

CASES = [json.loads(line) for line in (Path(__file__).parent / "data" / "answer_extraction.jsonl").open()]


def test_the_labelled_set_is_large_enough_and_covers_every_format():
    assert len(CASES) >= 40
    methods = {extract_answer(c["output"], "flexible").method for c in CASES}
    assert methods == {"marker", "answer_is", "boxed", "last_number", None}
    text = " ".join(c["output"] for c in CASES)
    for form in ("1,234", "$", "%", "/", ".5", "\\frac", "\u20ac", "dollars", "\u2212"):
        assert form in text


@pytest.mark.parametrize("case", CASES, ids=[c["output"][:40] for c in CASES])
@pytest.mark.parametrize("mode", ["strict", "flexible"])
def test_extraction_matches_the_label(case, mode):
    found = extract_answer(case["output"], mode)
    expected = case[mode]
    assert found.value == (None if expected is None else parse_number(expected))
    truth = parse_number(case["truth"])
    assert is_correct(case["output"], truth, mode) == (
        expected is not None and parse_number(expected) == truth
    )


def test_strict_never_reads_an_unstated_answer_and_flexible_falls_back_to_the_last_number():
    text = "She has 5 + 7 = 12 apples."
    assert extract_answer(text, "strict").value is None
    assert extract_answer(text, "flexible").value == 12
    with pytest.raises(ValueError):
        extract_answer(text, "loose")


def test_ground_truth_and_canonical_form():
    assert ground_truth("48/2 = 24 clips\n#### 1,072") == 1072
    with pytest.raises(ValueError):
        ground_truth("no marker here")
    assert [format_number(Fraction(x)) for x in ("12.50", "18", "-3/4", "2/3")] == [
        "12.5",
        "18",
        "-0.75",
        "2/3",
    ]


def test_every_gsm8k_train_solution_reads_back_as_its_own_answer(data_dir):
    from slmlab.tasks.gsm8k import load_gsm8k

    problems = load_gsm8k("train", data_dir)
    wrong = [p.task_id for p in problems for mode in ("strict", "flexible")
             if extract_answer(p.reference, mode).value != Fraction(p.answer)]  # fmt: skip
    assert len(problems) == 7473 and wrong == []
