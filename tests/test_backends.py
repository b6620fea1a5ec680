"""Choosing an engine (`--backend auto`), what a run records of it, and vLLM: its tests run where a
GPU and vLLM are present and are skipped with the reason elsewhere; without them, asking for it is
one clear line."""

from __future__ import annotations

import importlib.util
import json
import sqlite3

import pytest

from slmlab.generate.backends import choose, gpu_present
from slmlab.generate.llama_server import find_server
from tests.test_cli import _one_line_error, slmlab

HAS_VLLM = importlib.util.find_spec("vllm") is not None and gpu_present()


def test_auto_picks_what_can_do_what_the_run_asks(monkeypatch, tmp_path):
    monkeypatch.setattr("slmlab.generate.backends.find_server", lambda: tmp_path / "llama-server")
    monkeypatch.setattr("slmlab.generate.backends.gpu_present", lambda: False)
    monkeypatch.setattr("slmlab.generate.backends.native_bfloat16", lambda device: True)
    name, why = choose("auto", "smollm2-135m-instruct")
    assert name == "hf" and "bfloat16" in why  # measured faster in batches where bf16 is native
    monkeypatch.setattr("slmlab.generate.backends.native_bfloat16", lambda device: False)
    assert choose("auto", "smollm2-135m-instruct")[0] == "llamacpp"  # built-in models are GGUF
    assert choose("auto", str(tmp_path / "model.gguf"))[0] == "llamacpp"
    assert choose("auto", "smollm2-135m-instruct", frozenset({"capture"}))[0] == "hf"
    assert choose("auto", "smollm2-135m-instruct", frozenset({"steer"}))[0] == "hf"
    assert choose("auto", "smollm2-135m-instruct", dtype="float32")[0] == "hf"
    assert choose("auto", "HuggingFaceTB/SmolLM2-135M-Instruct")[0] == "hf"  # not GGUF, no GPU
    assert choose("auto", "ckpt:runs/tiny")[0] == "hf"
    assert choose("hf", "smollm2-135m-instruct") == ("hf", "asked for")
    monkeypatch.setattr("slmlab.generate.backends.find_server", lambda: None)
    name, why = choose("auto", "smollm2-135m-instruct")
    assert name == "hf" and "build_llamacpp.sh" in why


def test_unknown_backends_and_missing_server_addresses_are_one_line(tmp_path):
    base = ["eval", "--model", "smollm2-135m-instruct", "--benchmark", "minibench", "--limit", "1",
            "--out", str(tmp_path)]  # fmt: skip
    _one_line_error(slmlab(*base, "--backend", "ollama"), "auto, hf, llamacpp, openai, vllm")
    _one_line_error(slmlab(*base, "--backend", "openai"), "--base-url")


@pytest.mark.skipif(HAS_VLLM, reason="vLLM and a GPU are here: the vLLM tests below run instead")
def test_vllm_without_a_gpu_is_one_line(tmp_path):
    done = slmlab("eval", "--model", "smollm2-135m-instruct", "--benchmark", "minibench", "--limit", "1",
                  "--backend", "vllm", "--out", str(tmp_path))  # fmt: skip
    _one_line_error(done, "vllm backend needs")
    assert not (tmp_path / "slmlab.db").exists() or not sqlite3.connect(tmp_path / "slmlab.db").execute(
        "SELECT COUNT(*) FROM runs").fetchone()[0]  # fmt: skip


@pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM (pip install 'slmlab[vllm]') and an NVIDIA GPU")
def test_vllm_generates_with_seeds_stops_and_token_ids():
    from slmlab.generate import Request, SamplingParams
    from slmlab.generate.backends import open_generator

    engine = open_generator("vllm", "qwen2.5-coder-0.5b-instruct")
    results = {}
    requests = [Request("budget", "def fibonacci(n):", 1, max_new_tokens=5),
                Request("stop", "def fibonacci(n):", 1, max_new_tokens=200, stops=("\n",)),
                *(Request(("seeded", i), "def is_prime(n):", 7, max_new_tokens=30) for i in range(2))]  # fmt: skip
    engine.generate(requests, SamplingParams(temperature=1.0), lambda g: results.__setitem__(g.key, g))
    assert results["budget"].finish_reason == "length" and len(results["budget"].token_ids) == 5
    assert results["stop"].finish_reason == "stop" and "\n" not in results["stop"].text
    assert results[("seeded", 0)].text == results[("seeded", 1)].text  # same seed, same text


@pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM (pip install 'slmlab[vllm]') and an NVIDIA GPU")
@pytest.mark.skipif(find_server() is None, reason="llama.cpp's server is not built here")
def test_vllm_greedy_agrees_with_llamacpp(tmp_path):
    rates = {}
    for name in ("vllm", "llamacpp"):
        done = slmlab("eval", "--model", "qwen2.5-coder-0.5b-instruct", "--benchmark", "humaneval", "--limit", "40",
                      "--backend", name, "--out", str(tmp_path / name))  # fmt: skip
        assert done.returncode == 0, done.stderr
        rates[name] = json.loads(next((tmp_path / name).glob("eval-*/summary.json")).read_text())["pass_at_k"]["1"]
    assert rates["llamacpp"]["low"] <= rates["vllm"]["value"] <= rates["llamacpp"]["high"], rates
