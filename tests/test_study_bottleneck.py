"""`slmlab eval --capture-layers` and `slmlab study bottleneck` end to end on tiny models."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from slmlab.probe import load_activations
from slmlab.probe.arrays import activations_dir, read_layout, read_rows
from tests.test_cli import _one_line_error, slmlab
from tests.tiny import save_tiny_model


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("models")
    return str(save_tiny_model(root / "tiny-a", seed=0)), str(save_tiny_model(root / "tiny-b", seed=1))


def test_eval_captures_activations_into_indexed_files(tmp_path, tiny_models):
    out = tmp_path / "runs"
    args = ["eval", "--model", tiny_models[0], "--benchmark", "minibench", "--limit", "3", "--n", "2",
            "--temperature", "0.8", "--max-new-tokens", "10", "--capture-layers", "0,-1", "--capture-tokens",
            "--out", str(out)]  # fmt: skip
    done = slmlab(*args)
    assert done.returncode == 0, done.stderr
    assert "capturing layers 0,1" in done.stdout
    with sqlite3.connect(out / "slmlab.db") as db:
        (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
        index = db.execute("SELECT row, token_start, n_tokens FROM activations ORDER BY row").fetchall()
        tokens = dict(db.execute("SELECT task_id || '/' || sample_index, json_extract(generation, '$.tokens') "
                                 "FROM samples").fetchall())  # fmt: skip
    assert [row for row, _, _ in index] == list(range(6))
    assert sum(n for *_, n in index) == sum(tokens.values())
    directory = activations_dir(out / "slmlab.db", run_id)
    assert read_layout(directory).layers == [0, 1]
    values = read_rows(directory, "generated_mean", 1, list(range(6)))
    assert values.shape == (6, 32) and np.isfinite(values).all()
    loaded, samples = load_activations(out / "slmlab.db", run_id, layer=-1 % 2)
    assert loaded.shape == (6, 32) and {s["status"] for s in samples} <= {"passed", "failed_assertion",
                                                                          "runtime_error", "syntax_error"}  # fmt: skip
    # Resuming a finished run adds nothing to the files.
    sizes = {p.name: p.stat().st_size for p in directory.iterdir()}
    assert slmlab(*args).returncode == 0
    assert {p.name: p.stat().st_size for p in directory.iterdir()} == sizes


def test_bottleneck_study_runs_every_stage_and_writes_its_report(tmp_path, tiny_models):
    small, large = tiny_models
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({
        "models": [small, large], "pairs": [[small, large]], "benchmarks": ["minibench"], "limit": 4, "n": 1,
        "max_new_tokens": 12, "probe_model": small, "probe_limit": 4, "probe_n": 2, "capture_layers": "all",
        "shuffles": 2, "random_pairs": 2, "out": str(tmp_path / "runs"),
    }))  # fmt: skip
    done = slmlab("study", "bottleneck", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "Scaling comparison" in done.stdout and "Negative scaling" in done.stdout
    report = Path(done.stdout.strip().splitlines()[-1].split("report: ")[-1])
    results = json.loads((report.parent / "results.json").read_text())
    assert [row["model"] for row in results["scaling"]] == [small, large]
    assert {pair["subset"] for pair in results["pairs"]} <= {"all", "syntax-heavy"}
    # Random tiny models pass nothing: every pair is a tie, and the verdict says so out loud.
    for pair in results["pairs"]:
        assert not pair["comparison"]["significant"], pair
        assert "no significant difference" in pair["verdict"] and "not significant" in pair["verdict"], pair
    # Random tiny models pass nothing: the study says there is nothing to probe instead of inventing a finding.
    assert "too few samples of one class" in results["probe"]["note"]
    assert (report.parent / "outcomes_by_model.png").stat().st_size > 10_000
    assert "<svg" in report.read_text()
    # Every stage is a stored run: the same command resumes without generating anything.
    again = slmlab("study", "bottleneck", "--config", str(config))
    assert again.returncode == 0 and "generating" not in again.stdout


def test_bad_study_config_gets_one_clear_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("models: [a]\nprobe_model: a\nshuffle: 3\n")
    _one_line_error(slmlab("study", "bottleneck", "--config", str(config)), "shuffle", "unknown field")
    _one_line_error(slmlab("study", "bottleneck", "--config", str(tmp_path / "missing.yaml")), "not found")
    config.write_text("models: [a, b]\npairs: [[a, c]]\nprobe_model: a\n")
    _one_line_error(slmlab("study", "bottleneck", "--config", str(config)), "'c'", "not in models")


def test_capture_and_steering_options_are_validated_and_keep_old_run_ids(tmp_path):
    from slmlab.errors import UserError
    from slmlab.eval.config import EvalConfig, make_config

    plain = EvalConfig(model="m")
    assert "capture_layers" not in plain.identity() and "steer_scale" not in plain.identity()
    assert EvalConfig(model="m", capture_layers=[11, -1]).capture_layers == "11,-1"
    with pytest.raises(UserError, match="--capture-layers"):
        make_config({"model": "m", "capture_layers": "eleven"})
    with pytest.raises(UserError, match="steer_layer and steer_direction"):
        make_config({"model": "m", "steer_layer": 3})
    direction = tmp_path / "d.npy"
    np.save(direction, np.ones(4))
    zero = EvalConfig(model="m", steer_layer=1, steer_direction=str(direction), steer_scale=0.0)
    assert zero.identity() == plain.identity()  # no shift: the same run as no steering
    shifted = EvalConfig(model="m", steer_layer=1, steer_direction=str(direction), steer_scale=2.0)
    assert shifted.identity()["steer_direction"] != str(direction)  # the content's hash, not the name


def test_probe_command_finds_a_planted_signal_in_a_capture_run(tmp_path, tiny_models):
    out = tmp_path / "runs"
    done = slmlab("eval", "--model", tiny_models[0], "--benchmark", "minibench", "--n", "2", "--temperature", "0.8",
                  "--max-new-tokens", "6", "--capture-layers", "all", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(out / "slmlab.db")
    (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    index = db.execute("SELECT task_id, sample_index, row FROM activations").fetchall()
    values = read_rows(
        activations_dir(out / "slmlab.db", run_id), "generated_mean", 1, [r for *_, r in index]
    )
    # Plant the outcome in one dimension of layer 1: passed where dim 5 is above its median.
    passed = values[:, 5] > np.median(values[:, 5])
    with db:
        for (task_id, sample_index, _), ok in zip(index, passed, strict=True):
            status = "passed" if ok else "failed_assertion"
            judgement = {"judge": "sandbox", "verdict": status, "passed": bool(ok), "detail": {"status": status}}
            db.execute("UPDATE samples SET judgement = ? WHERE task_id = ? AND sample_index = ?",
                       (json.dumps(judgement), task_id, sample_index))  # fmt: skip
    db.close()
    done = slmlab(
        "probe", run_id[:12], "--out", str(out), "--layer", "1", "--shuffles", "19", "--random-pairs", "5"
    )
    assert done.returncode == 0, done.stderr
    report = Path(done.stdout.strip().splitlines()[-1].split("report: ")[-1])
    found = json.loads((report.parent / "probe.json").read_text())
    assert found["analysis"]["layer"] == 1 and 5 in found["analysis"]["pair"]
    assert found["analysis"]["pair_chosen_inside_folds"]["beats_control"]
    for name in ("fig4_two_dims", "probe_by_layer", "pca"):
        assert (report.parent / f"{name}.png").stat().st_size > 10_000
    _one_line_error(
        slmlab("probe", run_id[:12], "--out", str(out), "--layer", "7"), "layer 7", "out of range"
    )


def test_built_in_study_configs_are_valid():
    from slmlab.studies.bottleneck import load_study_config

    default, full = load_study_config(None, {}), load_study_config("full", {"out": "elsewhere"})
    for config in (default, full):
        assert {"qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"} <= set(config.models)
        assert ["smollm2-135m-instruct", "gemma3-270m"] in [list(pair) for pair in config.pairs]
    assert full.limit is None and full.n >= 10 and set(full.benchmarks) == {"humaneval", "mbpp-sanitized"}
    assert full.out == "elsewhere" and default.study_id() != full.study_id()
