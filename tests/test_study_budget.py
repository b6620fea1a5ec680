"""The token-budget study: a budget is an exact max_new_tokens (and reading a longer sample's first
N tokens gives the same answer), phase 2's sheets round-trip with clear errors on bad rows, the
cliff and structure analyses find what synthetic results contain, and the study runs end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from rich.console import Console

from slmlab.errors import UserError
from slmlab.generate import BatchGenerator, Request, SamplingParams
from slmlab.studies import budget_analysis as analysis
from slmlab.studies.budget import (
    BudgetStudyConfig,
    analyze_sheets,
    cut_at_budget,
    load_study_config,
    prepare_sheets,
    read_sheets,
    run_study,
)
from tests.tiny import save_tiny_model, tiny_model, tiny_tokenizer

PROMPTS = ["Question: 2 + 2?\nAnswer:", "Question: how many legs has a cat?\nAnswer:", "x"]


def _generate(model, params, stops=()):
    found = {}
    requests = [Request(i, p, 100 + i) for i, p in enumerate(PROMPTS)]
    BatchGenerator(model, tiny_tokenizer(), params, stops, batch_size=2).run(
        requests, lambda g: found.__setitem__(g.key, g)
    )
    return found


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_a_budget_stops_at_exactly_that_many_tokens_and_a_longer_sample_cut_there_is_the_same(temperature):
    model, tokenizer = tiny_model(), tiny_tokenizer()
    long = _generate(model, SamplingParams(temperature=temperature, max_new_tokens=40, seed=5))
    for budget in (1, 7, 16):
        short = _generate(model, SamplingParams(temperature=temperature, max_new_tokens=budget, seed=5))
        for key, g in short.items():
            assert (
                g.tokens == budget and g.finish_reason == "length" and g.truncated
            )  # the random model never ends
            assert len(g.token_ids) == budget
            full = long[key]
            text, used, truncated = cut_at_budget(full.text, full.tokens, full.finish_reason, list(full.token_ids),
                                                  budget, lambda ids: tokenizer.decode(ids, skip_special_tokens=True), ())  # fmt: skip
            assert (text, used, truncated) == (g.text, budget, True)


def test_a_sample_that_ended_before_the_budget_is_not_cut():
    assert cut_at_budget("#### 4", 5, "eos", [1, 2, 3, 4, 5], 8, None, ()) == ("#### 4", 5, False)
    assert cut_at_budget("abcdef", 6, "length", list(b"abcdef"), 6, None, ()) == ("abcdef", 6, True)
    # a stop sequence inside the first N tokens ends the text there, as the budgeted run would
    decode = lambda ids: bytes(ids).decode()  # noqa: E731
    assert cut_at_budget("", 9, "stop", list(b"ab\nQuestion"), 3, decode, ("\nQ",)) == ("ab\n", 3, True)
    assert cut_at_budget("", 9, "stop", list(b"ab\nQuestion"), 4, decode, ("\nQ",)) == ("ab", 4, False)


def _record(pid, budget, correct, generated="", truncated=False, predicted="1"):
    return {"problem_id": pid, "sample_index": 0, "question": f"q{pid}", "ground_truth": "18", "generated": generated,
            "predicted": predicted, "correct": correct, "tokens_used": budget, "truncated": truncated, "budget": budget}  # fmt: skip


def test_phase_two_round_trip_with_suggestions_and_clear_errors(tmp_path):
    records = {
        128: [_record(1, 128, False, "Janet sells 16 - 3", truncated=True),
              _record(2, 128, False, "16 - 7 = 8\n8 * 2 = 16\n#### 16", predicted="16"),
              _record(3, 128, False, "The total is 18 eggs.\nSo #### 9", predicted="9"),
              _record(4, 128, True)],
        256: [_record(1, 256, True), _record(2, 256, False, "16 - 7 = 8\n#### 16", predicted="16"),
              _record(3, 256, False, "I do not know"), _record(4, 256, True)],
    }  # fmt: skip
    sheets = prepare_sheets(records, {128: 30, 256: 30}, tmp_path, seed=0)
    assert [(p.name, n, w) for p, n, w in sheets] == [("annotate_errors_budget128.tsv", 3, True),
                                                     ("annotate_errors_budget256.tsv", 2, True)]  # fmt: skip
    rows = list(
        csv.DictReader(open(tmp_path / "annotate_errors_budget128.tsv", newline=""), dialect="excel-tab")
    )
    assert [(r["problem_id"], r["error_type"]) for r in rows] == [
        ("1", "incomplete"),
        ("2", "arithmetic"),
        ("3", "format"),
    ]
    assert rows[0]["recoverable"] == "yes" and "16 - 7 = 8 (is 9)" in rows[1]["suggestion"]
    # the annotator fills a blank row and corrects another
    path = tmp_path / "annotate_errors_budget256.tsv"
    sheet = list(csv.DictReader(open(path, newline=""), dialect="excel-tab"))
    sheet[1]["error_type"], sheet[1]["recoverable"], sheet[1]["notes"] = "setup", "no", "misread the question"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(sheet[0]), dialect="excel-tab")
        writer.writeheader()
        writer.writerows(sheet)
    result = analyze_sheets(read_sheets(tmp_path), {128: {"4"}, 256: {"1", "4"}})
    assert result["annotated"] == 5 and result["distribution"][256] == {
        "arithmetic": 1, "setup": 1, "logic": 0, "incomplete": 0, "format": 0, "hallucination": 0}  # fmt: skip
    assert result["fates"] == {"recovered": 1, "persistent": 4}  # problem 1 is solved at 256
    assert result["evolution"]["128->256"] == {"incomplete": {"correct": 1}, "arithmetic": {"arithmetic": 1},
                                               "format": {"setup": 1}}  # fmt: skip
    # an existing sheet is never overwritten
    assert not prepare_sheets(records, {256: 30}, tmp_path, seed=0)[0][2]
    assert "misread the question" in path.read_text()
    # bad values name the file, the line and what is allowed
    sheet[0]["error_type"], sheet[1]["recoverable"] = "arith", "maybe"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(sheet[0]), dialect="excel-tab")
        writer.writeheader()
        writer.writerows(sheet)
    with pytest.raises(UserError, match=r"budget256.tsv row 2: error_type 'arith' is not one of arithmetic.*"
                                        r"row 3: recoverable 'maybe' is not one of yes, no, unknown"):  # fmt: skip
        read_sheets(tmp_path)
    with pytest.raises(UserError, match="2-prepare"):
        read_sheets(tmp_path / "empty")


def _table(points):
    return [{"budget": b, "accuracy": a, "mean_tokens": b / 2} for b, a in points]


def test_the_cliff_is_where_accuracy_climbs_fastest_per_token():
    table = _table([(96, 0.10), (112, 0.12), (128, 0.14), (144, 0.20), (160, 0.40), (176, 0.52), (192, 0.55)])
    found = analysis.cliff(table)
    assert [(w["from"], w["to"]) for w in found["steepest"]] == [(144, 160), (160, 176), (128, 144)]
    assert found["steepest"][0]["gain_per_token"] == pytest.approx(0.2 / 16)
    assert len(found["windows"]) == 6


def test_recommended_budget_is_the_smallest_within_tolerance_of_saturation():
    table = _table([(128, 0.50), (256, 0.64), (512, 0.68), (1024, 0.688), (2048, 0.688)])
    chosen = analysis.recommended_budget(table, tolerance=0.01)
    assert chosen["budget"] == 512 and chosen["tokens_saved_per_problem"] == 768
    assert analysis.recommended_budget(table, tolerance=0.0)["budget"] == 1024


def test_solution_structure_finds_setup_computation_and_verification():
    solution = ("Janet's ducks lay 16 eggs a day.\nShe uses 3 + 4 = 7 of them.\nShe sells 16 - 7 = 9 eggs, "
                "and makes 9 * 2 = $18.\nLet's check: 9 eggs at $2 is 18 dollars, which matches.\n#### 18")  # fmt: skip
    shape = analysis.solution_structure(solution, 100)
    assert shape["verifies"] and shape["steps"] >= 3 and shape["operations"] == 3
    assert all(shape["tokens"][p] > 0 for p in analysis.PHASES)
    assert sum(shape["tokens"].values()) == pytest.approx(100)
    plain = analysis.solution_structure("16 - 7 = 9\n9 * 2 = 18\n#### 18", 20)
    assert not plain["verifies"] and plain["tokens"]["setup"] == 0
    rows = analysis.structure_by_budget({128: [_record(1, 128, False, "16 - 7 = 9")],
                                         256: [_record(1, 256, True, solution)]})  # fmt: skip
    assert [r["verify_share"] for r in rows] == [0.0, 1.0] and rows[1]["accuracy_verifying"] == 1.0


def test_arithmetic_slips_allow_rounding_and_catch_wrong_results():
    assert analysis.arithmetic_slips("10 / 3 = 3.33 and 2.5 * 4 = 10.0 and $1,200 + 300 = 1,500") == []
    slips = analysis.arithmetic_slips("a\n12 x 3 = 38\n(4 + 2) * 3 = 18")
    assert slips == [{"line": 2, "text": "12 x 3 = 38", "should_be": 36.0}]


def test_configs_load_and_reject_bad_values():
    assert load_study_config("default", {}).num_samples == 30
    full = load_study_config("full", {"num_samples": 5})
    assert full.model == "qwen2.5-coder-1.5b-instruct" and full.num_samples == 5
    with pytest.raises(UserError, match="budgets"):
        load_study_config("default", {"budgets": [0, 64]})


@pytest.mark.slow
def test_the_study_runs_end_to_end_and_resumes(tmp_path, data_dir):
    base = save_tiny_model(tmp_path / "base")
    config = BudgetStudyConfig(model=str(base), num_samples=3, prompting="zero-shot", budgets=[8, 16, 32],
                               stochastic_budgets=[16, 32], stochastic_samples=2, cliff_budgets=[8, 12, 16],
                               annotation_samples={16: 2, 32: 2}, dtype="float32", data_dir=data_dir,
                               out=str(tmp_path / "out"))  # fmt: skip
    study = run_study(config, "all", Console(file=open(tmp_path / "log.txt", "w")))
    assert [r["budget"] for r in study["phase1"]["table"]] == [8, 16, 32]
    assert all(r["n"] == 3 for r in study["phase1"]["table"])
    assert study["phase1b"][16]["samples"] == 2 and len(study["phase3_cliff"]["windows"]) == 2
    out = Path(config.out)
    import json

    records = json.loads((out / "results" / f"phase1_main_{config.label}_budget16.json").read_text())
    assert set(records[0]) >= {"problem_id", "question", "ground_truth", "generated", "predicted", "correct",
                               "tokens_used", "budget"} and all(r["tokens_used"] <= 16 for r in records)  # fmt: skip
    for figure in (
        "fig1_saturation_curve",
        "fig3_cliff_detail",
        "fig4_solution_structure",
        "fig5_verification_accuracy",
    ):
        assert (out / "figures" / f"{figure}.png").is_file()
    assert "Phase 1: saturation" in (out / "report.html").read_text()
    again = run_study(config, "1", Console(file=open(tmp_path / "log2.txt", "w"), width=200))
    assert again["phase1"] == study["phase1"]
    assert "(0 samples to generate)" in (tmp_path / "log2.txt").read_text()

    # Labels given in `slmlab serve` are read from the store, over the sheet's row for the same problem.
    from slmlab.store import Store

    with Store(out / "store" / "slmlab.db") as store:
        views = {store.run_config(r["run_id"])["budget"]: r["run_id"] for r in store.runs() if r["kind"] == "budget-view"}
        wrong = next(row for row in store.samples(views[16]) if row.sample_index == 0 and row.passed is False)
        store.annotate(views[16], wrong.task_id, 0, "ann", "logic")
        store.annotate(views[16], wrong.task_id, 0, "bob", "setup")  # fewer labels than ann: not read
        store.annotate(views[32], wrong.task_id, 0, "ann", "incomplete")
    analyzed = run_study(config, "2-analyze", Console(file=open(tmp_path / "log3.txt", "w")))["phase2"]
    assert analyzed["from_store"] == 2 and analyzed["distribution"][16]["logic"] >= 1
    assert analyzed["distribution"][16]["setup"] == sum(r["error_type"] == "setup" for r in read_sheets(out / "annotations")
                                                        if r["budget"] == 16 and r["problem_id"] != wrong.task_id)  # fmt: skip


def test_bad_input_gets_one_clear_line(tmp_path):
    from tests.test_cli import _one_line_error, slmlab

    out = str(tmp_path / "out")
    _one_line_error(slmlab("study", "budget", "--phase", "5", "--out", out), "unknown phase", "2-prepare")
    _one_line_error(slmlab("study", "budget", "--data-dir", str(tmp_path), "--out", out), "gsm8k/test.jsonl")
    _one_line_error(slmlab("study", "budget", "--benchmark", "humaneva", "--out", out), "humaneval")
    _one_line_error(slmlab("study", "budget", "--phase", "2-analyze", "--config", "nope.yaml"), "nope.yaml")


@pytest.mark.slow
def test_code_benchmarks_give_pass_at_1_by_budget_through_the_sandbox(tmp_path):
    base = save_tiny_model(tmp_path / "base")
    config = BudgetStudyConfig(model=str(base), benchmark="humaneval", num_samples=2, prompting="zero-shot",
                               budgets=[4, 8], stochastic_budgets=[8], cliff_budgets=[4, 6, 8], dtype="float32",
                               out=str(tmp_path / "out"))  # fmt: skip
    study = run_study(config, "all", Console(file=open(tmp_path / "log.txt", "w"), width=200))
    assert [(r["budget"], r["n"], r["accuracy"]) for r in study["phase1"]["table"]] == [
        (4, 2, 0.0),
        (8, 2, 0.0),
    ]
    assert "phase2" not in study and "phase3_structure" not in study and "phase3_cliff" in study
    log = (tmp_path / "log.txt").read_text()
    assert "sandbox: " in log and "skipped on humaneval" in log
    import json

    records = json.loads(
        (Path(config.out) / "results" / f"phase1_main_{config.label}_budget8.json").read_text()
    )
    assert {r["predicted"] for r in records} <= {
        "syntax_error",
        "runtime_error",
        "failed_assertion",
        "no_tests_run",
    }
