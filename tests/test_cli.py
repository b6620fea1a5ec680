"""The command line as a user meets it: results, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def slmlab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "slmlab.cli", *args], capture_output=True, text=True,
                          env=environment, cwd=REPO, timeout=300)  # fmt: skip


def test_execute_the_demo_samples(tmp_path):
    out = tmp_path / "results.jsonl"
    done = slmlab("execute", "examples/humaneval_samples.jsonl", "--benchmark", "humaneval", "--timeout", "2",
                  "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 16
    assert {"task_id", "status", "passed", "result", "error_type", "duration_s", "sandbox"} <= set(records[0])
    statuses = {r["status"] for r in records}
    assert {"passed", "failed_assertion", "syntax_error", "runtime_error", "timeout", "no_tests_run",
            "sandbox_violation"} <= statuses  # fmt: skip
    assert "pass@k" in done.stdout and "Outcomes" in done.stdout and "landlock" in done.stdout


def test_reference_self_check_on_mbpp(tmp_path, data_dir):
    out = tmp_path / "ref.jsonl"
    done = slmlab("execute", "--reference", "--benchmark", "mbpp-sanitized", "--data-dir", data_dir, "--limit", "40",
                  "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert all(json.loads(line)["passed"] for line in out.read_text().splitlines())


def _one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0]


def test_bad_input_gets_one_clear_line(tmp_path):
    env = {"SLMLAB_DATA": ""}
    _one_line_error(slmlab("execute", "examples/humaneval_samples.jsonl", "--benchmark", "mbpp", env=env),
                    "--data-dir", "SLMLAB_DATA")  # fmt: skip
    _one_line_error(
        slmlab("execute", "x.jsonl", "--benchmark", "mbpp", "--data-dir", str(tmp_path)), "not found"
    )
    _one_line_error(
        slmlab("execute", "examples/humaneval_samples.jsonl", "--benchmark", "humaneva"), "humaneval"
    )
    _one_line_error(slmlab("execute", str(tmp_path / "missing.jsonl")), "not found")
    _one_line_error(slmlab("execute", "examples/humaneval_samples.jsonl", "--k", "0"), "--k")
    _one_line_error(slmlab("execute", "examples/humaneval_samples.jsonl", "--sandbox", "docker"), "sandbox")


def test_sandbox_command_lists_tiers():
    done = slmlab("sandbox")
    assert done.returncode == 0
    assert "process" in done.stdout and "subprocess" in done.stdout and "(auto)" in done.stdout


def test_models_list_and_bad_names(tmp_path):
    env = {"SLMLAB_HOME": str(tmp_path)}
    done = slmlab("models", "list", env=env)
    assert done.returncode == 0
    for name in (
        "smollm2-135m-instruct",
        "gemma3-270m",
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-1.5b-instruct",
    ):
        assert name in done.stdout
    _one_line_error(slmlab("models", "pull", "qwen-coder-0.5b", env=env), "unknown model", "did you mean")
