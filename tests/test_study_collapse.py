"""The collapse study end to end on a tiny corpus and tiny models: every stage runs, resumes from what
it kept, and reports seed 004's table, the progression, the analyses and the paired tests."""

from __future__ import annotations

import json

import pytest
import yaml
from rich.console import Console

from slmlab.errors import UserError
from slmlab.studies.collapse import load_study_config, run_study

TINY = {
    "corpus": ["python:json"],
    "corpus_mb": 0.3,
    "arch": {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "ffn_multiplier": 2.0, "max_seq_len": 512},
    "train": {"max_steps": 6, "batch_size": 4, "seq_len": 64, "warmup_steps": 2, "eval_every": 3, "save_every": 3,
              "eval_batches": 2, "lr": 0.003},
    "setups": [{"name": "char", "tokenizer": "char", "label_smoothing": 0.1},
               {"name": "bpe", "tokenizer": "bpe-400", "label_smoothing": 0.1},
               {"name": "bpe-no-ls", "tokenizer": "bpe-400"}],
    "comparisons": [["bpe-no-ls", "bpe"]],
    "max_new_tokens": 12,
    "minibench_max_new_tokens": 16,
}  # fmt: skip


@pytest.mark.slow
def test_the_study_runs_every_stage_and_resumes(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path / "out")}))
    config = load_study_config(str(path), {})
    study = run_study(config, Console(file=open(tmp_path / "log.txt", "w")))
    assert [s.name for s in study.setups] == ["char", "bpe", "bpe-no-ls"]
    for setup in study.setups:
        assert setup.bare["metrics"]["n"] == 52 and setup.few_shot["metrics"]["n"] == 52
        assert [p["step"] for p in setup.progression] == [3, 6]
        assert [c["examples"] for c in setup.context] == [0, 1, 2, 3]
        assert setup.minibench["tasks"] == 20
        assert setup.summary["val_bits_per_char"] > 0
    assert study.setups[0].summary["model"]["vocab_size"] < study.setups[1].summary["model"]["vocab_size"]
    assert {c["prompts"] for c in study.comparisons} == {"bare", "few_shot"}
    # Each verdict says its test's answer out loud, and the answer it says is the test's.
    for c in study.comparisons:
        said = "significant" if c["significant"] else "not significant"
        assert c["verdict"].endswith(f": {said}"), c["verdict"]
    report = (study.report_dir / "report.html").read_text()
    assert "params / vocab item" in report and "<svg" in report
    for figure in ("training_curves", "collapse_progression", "context_length"):
        assert (study.report_dir / f"{figure}.png").is_file()
    results = json.loads((study.report_dir / "results.json").read_text())
    assert len(results["setups"]) == 3

    # A second run reuses the corpus, the trained runs and the measurements.
    again = run_study(config, Console(file=open(tmp_path / "log2.txt", "w")))
    assert again.setups[1].bare == study.setups[1].bare
    assert "train char" not in (tmp_path / "log2.txt").read_text()


def test_bad_study_configs_are_refused_clearly(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, "comparisons": [["char", "missing"]]}))
    with pytest.raises(UserError, match="names a setup that is not listed"):
        load_study_config(str(path), {})
    path.write_text(yaml.safe_dump({**TINY, "train": {"tokenizer": "gpt2"}}))
    with pytest.raises(UserError, match="the study sets them per setup"):
        load_study_config(str(path), {})
    with pytest.raises(UserError, match="not found"):
        load_study_config(str(tmp_path / "nope.yaml"), {})
    assert load_study_config("default", {}).setups[0].name == "char"
    assert load_study_config("full", {}).train["max_steps"] == 50000
