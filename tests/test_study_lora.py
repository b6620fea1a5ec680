"""The LoRA study end to end on tiny fixtures: sweeps plan the right trials, each trial trains (or
is the baseline), is scored with real checkers, lands in the CSV, and is reused when run again."""

from __future__ import annotations

import csv

import pytest
from rich.console import Console

from slmlab.store import Store
from slmlab.studies.lora import (
    STORE_NAME,
    LoraStudyConfig,
    compare_trials,
    load_study_config,
    plan_trials,
    planned_comparisons,
    run_study,
)
from slmlab.train.lora import LoraSettings
from tests.tiny import save_tiny_model


def _sources(root):
    python, java, js = root / "py", root / "java", root / "js"
    for folder in (python, java, js):
        folder.mkdir()
    for i in range(8):
        (python / f"m{i}.py").write_text(
            f'def f{i}(x):\n    """Scale x by {i}."""\n    y = x * {i}\n    if y > 3:\n        y -= 1\n    return y\n'
        )
        (java / f"C{i}.java").write_text(
            f"class C{i} {{\n  /** Twice plus {i}. */\n  int twice(int x) {{\n    int y = x * 2;\n"
            f"    return y + {i};\n  }}\n}}\n"
        )
        (js / f"m{i}.js").write_text(
            f"/** Add {i}. */\nfunction add{i}(a) {{\n  const s = a + {i};\n  return s;\n}}\n")  # fmt: skip
    return {"python": [str(python)], "java": [str(java)], "javascript": [str(js)]}


def test_sweeps_plan_their_trials_with_baselines():
    config = LoraStudyConfig(sweep="rank", ranks=[4, 16], rank_size=10)
    assert plan_trials(config) == [{"language": "python", "rank": 0, "size": 0, "curriculum": False},
                                   {"language": "python", "rank": 4, "size": 10, "curriculum": False},
                                   {"language": "python", "rank": 16, "size": 10, "curriculum": False}]  # fmt: skip
    assert [(a[0], b[0]) for _, a, b in planned_comparisons(config)] == [
        ("base", "rank 4"), ("base", "rank 16"), ("rank 4", "rank 16")]  # fmt: skip
    everything = plan_trials(LoraStudyConfig(sweep="all", rank_size=50, lang_size=50, sizes=[25, 50]))
    assert sum(t["rank"] == 0 for t in everything) == 3  # one baseline per language
    assert len(everything) == len({tuple(t.values()) for t in everything})  # (python, 16, 50) only once
    assert not any(t["curriculum"] for t in everything)  # seed 001's three sweeps
    curriculum = LoraStudyConfig(sweep="curriculum", rank_size=50)
    assert sum(t["curriculum"] for t in plan_trials(curriculum)) == 1  # the twin of (python, 16, 50)
    assert [(a[0], b[0]) for _, a, b in planned_comparisons(curriculum)][-1] == ("shuffled", "curriculum")
    assert load_study_config("default", {}).model == "smollm2-135m-instruct"
    assert load_study_config("full", {"sweep": "lang"}).sweep == "lang"


@pytest.mark.slow
def test_the_study_scores_every_trial_stores_it_and_resumes(tmp_path):
    base = save_tiny_model(tmp_path / "base")
    config = LoraStudyConfig(model=str(base), sweep="lang", sources=_sources(tmp_path), lang_size=4, test_size=3,
                             lora=LoraSettings(rank=2, epochs=1, batch_size=2, max_length=128), max_new_tokens=12,
                             mbpp=False, parallel=2, out=str(tmp_path / "out"))  # fmt: skip
    log = tmp_path / "log.txt"
    study = run_study(config, Console(file=open(log, "w")))
    records = study["trials"]
    assert [(r["language"], r["rank"]) for r in records] == [
        ("python", 0), ("java", 0), ("javascript", 0), ("python", 16), ("java", 16), ("javascript", 16)]  # fmt: skip
    for record in records:
        scores = record["scores"]
        assert 1 <= scores["examples"] <= 3 and len(scores["samples"]) == scores["examples"]
        assert 0 <= scores["bleu"]["value"] <= 100 and 0 <= scores["codebleu"]["value"] <= 1
        checked = scores["syntax_pass"]["checked"] if scores["syntax_pass"] else 0
        assert checked + scores["unchecked"] == scores["examples"]
        assert "peft" in record["versions"] and record["peak_rss_mb"] > 0
    assert {c for r in records for c in r["scores"]["syntax_checker"]} & {"python-compile"}
    assert records[0]["training"] is None and records[3]["training"]["examples"] == 4
    assert records[0]["execution"]["minibench"]["tasks"] == 20
    assert "trial 6/6 done" in log.read_text()
    # Each tuned model is tested against its language's base on the same functions.
    assert [(c["a"], c["b"]) for c in study["comparisons"]] == [
        ("python base", "python"), ("java base", "java"), ("javascript base", "javascript")]  # fmt: skip
    for comparison in study["comparisons"]:
        assert comparison["bleu"]["brief"].endswith("significant") and 0 <= comparison["bleu"]["p_value"] <= 1
    rows = list(csv.DictReader(open(tmp_path / "out" / "results_lang.csv")))
    assert len(rows) == 6 and rows[0]["rank"] == "0"
    # Trials are runs in the store, one sample per held-out function.
    with Store(tmp_path / "out" / "store" / STORE_NAME) as store:
        trials = [r for r in store.runs() if r["run_id"].startswith("lora-trial")]
        assert len(trials) == 6 and all(r["finished"] for r in trials)
        assert sum(r["samples"] for r in trials) == sum(r["scores"]["examples"] for r in records)
    from slmlab.report.lora import print_sweep

    print_sweep(Console(file=open(tmp_path / "table.txt", "w"), width=200), config, study)
    table = (tmp_path / "table.txt").read_text()
    assert "base" in table and "unchecked" in table and "results_lang.csv" in table and "McNemar" in table
    report = (tmp_path / "out" / "report" / "report_lang.html").read_text()
    assert "<svg" in report and "Does BLEU track valid code?" in report and "Paired tests" in report
    assert (tmp_path / "out" / "report" / "sweep_lang.png").is_file()

    again = run_study(config, Console(file=open(tmp_path / "log2.txt", "w")))
    assert again["trials"] == records
    assert "6 of 6 trials already done" in (tmp_path / "log2.txt").read_text()
    # A record scored by an older text-metric version is rescored from its samples, not re-run.
    with Store(tmp_path / "out" / "store" / STORE_NAME) as store:
        stale = store.metrics(records[3]["trial"])["record"]
        stale["scores"].update(text_metrics=1, codebleu={"value": 0.25, "interval": [0.25, 0.25], "n": 3})
        store.set_metric(records[3]["trial"], "record", stale)
    rescored = run_study(config, Console(file=open(tmp_path / "log3.txt", "w")))
    assert rescored["trials"][3]["scores"]["codebleu"] == records[3]["scores"]["codebleu"]
    assert "6 of 6 trials already done" in (tmp_path / "log3.txt").read_text()


def test_paired_tests_compare_trials_on_the_same_functions():
    def trial(name, verdicts, bodies):
        samples = [{"id": f"f{i}", "prompt": "", "reference": "return x + 1", "generated": body, "syntax": verdict,
                    "message": ""} for i, (verdict, body) in enumerate(zip(verdicts, bodies, strict=True))]  # fmt: skip
        return {"trial": name, "scores": {"samples": samples}}

    base = trial("base", ["invalid"] * 12, [""] * 12)
    tuned = trial("tuned", ["valid"] * 11 + ["unchecked"], ["return x + 1"] * 12)
    result = compare_trials(base, tuned)
    assert (
        result["syntax"]["functions"] == 11 and result["syntax"]["significant"]
    )  # 11 of 11 discordant pairs
    assert result["syntax"]["difference"] == 1.0 and result["bleu"]["significant"]
    same = compare_trials(tuned, tuned)
    assert (
        not same["syntax"]["significant"]
        and same["bleu"]["p_value"] == 1.0
        and not same["bleu"]["significant"]
    )


def test_an_empty_body_is_not_valid_code():
    from slmlab.studies.lora import _has_code

    assert not _has_code("\n") and not _has_code("\n}") and not _has_code("  {  }  ")
    assert _has_code("    return x\n") and _has_code("\n  return 1;\n}")
