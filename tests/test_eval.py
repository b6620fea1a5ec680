"""`slmlab eval` / `run` / `compare` end to end: results, reports, resume after kill -9,
determinism, and one clear line for bad input."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import REPO, _one_line_error, slmlab
from tests.tiny import save_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return str(save_tiny_model(tmp_path_factory.mktemp("models") / "tiny"))


def stored(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "slmlab.db") as db:
        return db.execute("SELECT task_id, sample_index, completion, judgement IS NOT NULL FROM samples "
                          "ORDER BY task_id, sample_index").fetchall()  # fmt: skip


def eval_args(model: str, out: Path, *extra: str) -> list[str]:
    return ["eval", "--model", model, "--benchmark", "minibench", "--out", str(out), *extra]


def test_eval_end_to_end_writes_store_report_figures_and_samples(tmp_path, tiny_dir):
    out = tmp_path / "runs"
    done = slmlab(*eval_args(tiny_dir, out, "--limit", "3", "--n", "2", "--temperature", "0.8",
                             "--max-new-tokens", "24", "--k", "1,2"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pass@k" in done.stdout and "Outcomes" in done.stdout and "Generation quality" in done.stdout
    assert "sandbox: " in done.stdout  # the isolation tier the verdicts came from is said
    report = Path(done.stdout.strip().splitlines()[-1].split("report: ")[-1])
    assert report.is_file() and report.name == "report.html"
    html = report.read_text()
    assert "minibench/0" in html and "<svg" in html and "filterSamples" in html
    for name in ("outcomes", "pass_at_k", "tasks"):
        assert (report.parent / f"{name}.png").stat().st_size > 10_000  # 300 DPI
        assert (report.parent / f"{name}.svg").is_file()
    rows = stored(out)
    assert len(rows) == 6 and all(checked for *_, checked in rows)
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["pass_at_k"]["1"]["n_tasks"] == 3 and sum(summary["finish_reasons"].values()) == 6
    assert summary["setup"]["prompt_mode"] == "plain" and summary["setup"]["dtype"] in ("float32", "bfloat16")
    lines = [json.loads(line) for line in (report.parent / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {"task_id", "completion", "status"} <= set(lines[0])

    again = slmlab(*eval_args(tiny_dir, out, "--limit", "3", "--n", "2", "--temperature", "0.8",
                              "--max-new-tokens", "24", "--k", "1,2"))  # fmt: skip
    assert again.returncode == 0 and "resumed: 6 of 6" in again.stdout and "generating" not in again.stdout
    assert stored(out) == rows


def test_a_run_killed_mid_way_resumes_to_exactly_the_uninterrupted_samples(tmp_path, tiny_dir):
    args = [
        "--limit",
        "4",
        "--n",
        "3",
        "--temperature",
        "0.8",
        "--max-new-tokens",
        "160",
        "--batch-size",
        "2",
    ]
    reference = tmp_path / "reference"
    assert slmlab(*eval_args(tiny_dir, reference, *args)).returncode == 0
    expected = stored(reference)
    assert len(expected) == 12

    out = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "slmlab.cli", *eval_args(tiny_dir, out, *args)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (out / "slmlab.db").is_file() and process.poll() is None:
            try:
                if 2 <= len(stored(out)) < 12:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = stored(out)
    assert 2 <= len(partial) < 12, "the run was not caught mid-way"

    resumed = slmlab(*eval_args(tiny_dir, out, *args))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    assert stored(out) == expected  # nothing lost, nothing twice, the same completions


def test_same_seed_same_completions_other_seed_others(tmp_path, tiny_dir):
    args = ["--limit", "2", "--n", "2", "--temperature", "1.0", "--max-new-tokens", "16"]
    assert slmlab(*eval_args(tiny_dir, tmp_path / "a", *args)).returncode == 0
    assert slmlab(*eval_args(tiny_dir, tmp_path / "b", *args)).returncode == 0
    assert slmlab(*eval_args(tiny_dir, tmp_path / "c", *args, "--seed", "99")).returncode == 0
    completions = {name: [row[2] for row in stored(tmp_path / name)] for name in "abc"}
    assert completions["a"] == completions["b"]
    assert completions["a"] != completions["c"]


def test_yaml_config_runs_and_bad_configs_get_one_line(tmp_path, tiny_dir):
    out = tmp_path / "runs"
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {tiny_dir}\nbenchmark: minibench\nlimit: 2\nmax_new_tokens: 8\nout: {out}\n")
    done = slmlab("run", str(config))
    assert done.returncode == 0, done.stderr
    before = stored(out)
    assert len(before) == 2

    config.write_text("model: [unclosed\n")
    _one_line_error(slmlab("run", str(config)), "not valid YAML", "line 2")
    config.write_text(f"model: {tiny_dir}\ntemperature: -1\n")
    _one_line_error(slmlab("run", str(config)), "temperature", "-1")
    config.write_text(f"model: {tiny_dir}\ntemprature: 0.5\n")
    _one_line_error(slmlab("run", str(config)), "temprature", "unknown field")
    _one_line_error(slmlab("run", str(tmp_path / "missing.yaml")), "not found")
    _one_line_error(slmlab(*eval_args(tiny_dir, out, "--top-p", "0")), "--top-p")
    _one_line_error(slmlab(*eval_args(tiny_dir, out, "--prompt-mode", "chat")), "no chat template")
    assert stored(out) == before  # failed commands leave the store as it was


def test_bad_models_datasets_and_cache_files_get_one_line(tmp_path, tiny_dir):
    out = tmp_path / "runs"
    _one_line_error(slmlab(*eval_args("smollm2-135m-instrct", out)), "smollm2-135m-instruct")
    env = {"SLMLAB_DATA": str(tmp_path / "nowhere")}
    _one_line_error(
        slmlab("eval", "--model", tiny_dir, "--benchmark", "mbpp", "--out", str(out), env=env), "MBPP"
    )
    _one_line_error(slmlab(*eval_args(tiny_dir, out, "--benchmark", "humanevel")), "humaneval")
    home = tmp_path / "home"
    cached = home / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"GGUF" + b"\0" * 1000)  # a truncated, corrupt cache file
    done = slmlab(
        *eval_args("smollm2-135m-instruct", out),
        env={"SLMLAB_HOME": str(home), "HF_HUB_OFFLINE": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple"},
    )
    _one_line_error(done, "smollm2-135m-instruct")
    assert not (out / "slmlab.db").exists() or stored(out) == []


def test_compare_gives_a_paired_verdict(tmp_path, tiny_dir):
    out = tmp_path / "runs"
    assert slmlab(*eval_args(tiny_dir, out, "--limit", "6", "--max-new-tokens", "8")).returncode == 0
    assert slmlab(*eval_args(tiny_dir, out, "--limit", "6", "--max-new-tokens", "8", "--seed", "5",
                             "--temperature", "1")).returncode == 0  # fmt: skip
    with sqlite3.connect(out / "slmlab.db") as db:
        a, b = [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY created")]
    done = slmlab("compare", a, b[:12], "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "not significant" in done.stdout and "McNemar" in done.stdout and "6 tasks" in done.stdout
    # minibench/5 is the one syntax-heavy task of the six (its reference nests an `if` in a loop)
    heavy = slmlab("compare", a, b, "--out", str(out), "--subset", "syntax-heavy")
    assert heavy.returncode == 0, heavy.stderr
    assert "on the syntax-heavy tasks" in heavy.stdout and "1 task" in heavy.stdout
    _one_line_error(slmlab("compare", a, b, "--out", str(out), "--subset", "heavy"), "syntax-heavy")
    listing = slmlab("runs", "--out", str(out))
    assert a in listing.stdout and b in listing.stdout
    _one_line_error(slmlab("compare", a, "eval-nothing", "--out", str(out)), "no run")


@pytest.mark.slow
def test_smollm2_end_to_end_on_a_few_tasks(tmp_path):
    out = tmp_path / "runs"
    done = slmlab("eval", "--model", "smollm2-135m-instruct", "--benchmark", "minibench", "--limit", "4",
                  "--max-new-tokens", "128", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "prompt mode chat" in done.stdout
    rows = stored(out)
    assert len(rows) == 4 and all(checked for *_, checked in rows)
    with sqlite3.connect(out / "slmlab.db") as db:
        statuses = [json.loads(o)["verdict"] for (o,) in db.execute("SELECT judgement FROM samples")]
    # SmolLM2-135M-Instruct writes add/subtract/multiply correctly (measured: 4/4 greedy)
    assert statuses.count("passed") >= 2, statuses
