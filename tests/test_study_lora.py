"""The LoRA study end to end on tiny fixtures: sweeps plan the right trials, each trial trains (or
is the baseline), is scored with real checkers, lands in the CSV, and is reused when run again."""

from __future__ import annotations

import csv

import pytest
from rich.console import Console

from slmlab.studies.lora import LoraStudyConfig, load_study_config, plan_trials, run_study
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
    assert plan_trials(config) == [{"language": "python", "rank": 0, "size": 0},
                                   {"language": "python", "rank": 4, "size": 10},
                                   {"language": "python", "rank": 16, "size": 10}]  # fmt: skip
    everything = plan_trials(LoraStudyConfig(sweep="all", rank_size=50, lang_size=50, sizes=[25, 50]))
    assert sum(t["rank"] == 0 for t in everything) == 3  # one baseline per language
    assert len(everything) == len({tuple(t.values()) for t in everything})  # (python, 16, 50) only once
    assert load_study_config("default", {}).model == "smollm2-135m-instruct"
    assert load_study_config("full", {"sweep": "lang"}).sweep == "lang"


@pytest.mark.slow
def test_the_study_scores_every_trial_and_resumes(tmp_path):
    base = save_tiny_model(tmp_path / "base")
    config = LoraStudyConfig(model=str(base), sweep="lang", sources=_sources(tmp_path), lang_size=4, test_size=3,
                             lora=LoraSettings(rank=2, epochs=1, batch_size=2, max_length=128), max_new_tokens=12,
                             mbpp=False, out=str(tmp_path / "out"))  # fmt: skip
    log = tmp_path / "log.txt"
    records = run_study(config, Console(file=open(log, "w")))
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
    rows = list(csv.DictReader(open(tmp_path / "out" / "results_lang.csv")))
    assert len(rows) == 6 and rows[0]["rank"] == "0"
    from slmlab.report.lora import print_sweep

    print_sweep(Console(file=open(tmp_path / "table.txt", "w"), width=200), config, records)
    table = (tmp_path / "table.txt").read_text()
    assert "base" in table and "unchecked" in table and "results_lang.csv" in table
    report = (tmp_path / "out" / "report" / "report.html").read_text()
    assert "<svg" in report and "Does BLEU track valid code?" in report
    assert (tmp_path / "out" / "report" / "sweep_lang.png").is_file()

    again = run_study(config, Console(file=open(tmp_path / "log2.txt", "w")))
    assert [r["trial"] for r in again] == [r["trial"] for r in records]
    assert "lora" not in (tmp_path / "log2.txt").read_text()


def test_an_empty_body_is_not_valid_code():
    from slmlab.studies.lora import _has_code

    assert not _has_code("\n") and not _has_code("\n}") and not _has_code("  {  }  ")
    assert _has_code("    return x\n") and _has_code("\n  return 1;\n}")
