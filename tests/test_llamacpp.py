"""The llama.cpp backend on SmolLM2's GGUF file, through a real llama.cpp server: stops, finish
reasons, per-sample seeds, token ids, the run's engine record and identity, and agreement with the
hf engine. Skipped, with the reason, where llama.cpp is not built (./scripts/build_llamacpp.sh)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from slmlab.generate import Request, SamplingParams
from slmlab.generate.llama_server import find_server
from tests.test_cli import _one_line_error, slmlab

pytestmark = pytest.mark.skipif(find_server() is None, reason="llama.cpp's server is not built here "
                                "(./scripts/build_llamacpp.sh)")  # fmt: skip

MODEL = "smollm2-135m-instruct"
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def engine():
    from slmlab.generate.backends import open_generator

    generator = open_generator("llamacpp", MODEL, batch_size=4)
    yield generator
    generator.close()


def generate(engine, requests, **params):
    results = {}
    engine.generate(requests, SamplingParams(**params), lambda g: results.__setitem__(g.key, g))
    return results


def test_stops_finish_reasons_and_token_ids(engine):
    tokenizer = engine.tokenizer
    done = generate(engine, [
        Request("budget", "def fibonacci(n):", 1, max_new_tokens=5),
        Request("stop", "def fibonacci(n):", 1, max_new_tokens=200, stops=("\n",)),
        Request("eos", CHAT.format("What is 2+2? Answer with one number."), 1, add_special_tokens=False,
                max_new_tokens=100),
    ], temperature=0.0)  # fmt: skip
    budget, stop, eos = done["budget"], done["stop"], done["eos"]
    assert budget.finish_reason == "length" and budget.tokens == 5 == len(budget.token_ids)
    assert tokenizer.decode(list(budget.token_ids), skip_special_tokens=True) == budget.text
    assert stop.finish_reason == "stop" and "\n" not in stop.text
    assert tokenizer.decode(list(stop.token_ids), skip_special_tokens=True).startswith(stop.text + "\n")
    assert eos.finish_reason == "eos" and eos.token_ids[-1] == tokenizer.eos_token_id and "4" in eos.text
    assert eos.prompt_tokens == len(tokenizer(eos_prompt := CHAT.format("What is 2+2? Answer with one number."),
                                              add_special_tokens=False)["input_ids"]) and eos_prompt  # fmt: skip


def test_same_seed_same_text_and_different_seeds_different_samples(engine):
    prompt = "def is_prime(n):"
    alone = generate(engine, [Request("a", prompt, 7, max_new_tokens=40)], temperature=1.0)["a"]
    again = generate(engine, [Request("a", prompt, 7, max_new_tokens=40)], temperature=1.0)["a"]
    assert again.text == alone.text and again.token_ids == alone.token_ids
    others = generate(engine, [Request(i, prompt, i, max_new_tokens=40) for i in range(8)], temperature=1.0)
    assert len({g.text for g in others.values()}) > 1
    # Not asserted, because it does not hold: beside other sequences a sample's tokens can differ
    # from its tokens alone (llama.cpp multiplies a batch of rows with other kernels than one row,
    # so the sums round differently; measured here: 1 run in 2 differed from the 25th token on).
    # The README says so: on llama.cpp a resumed run may draw other samples for what it generates.


def test_eval_records_the_engine_and_runs_apart_from_hf(tmp_path):
    out = tmp_path / "runs"
    args = ["eval", "--model", MODEL, "--benchmark", "minibench", "--limit", "3", "--max-new-tokens", "64", "--out",
            str(out)]  # fmt: skip
    done = slmlab(*args, "--backend", "llamacpp")
    assert done.returncode == 0, done.stderr
    assert "engine: llamacpp (llama.cpp" in done.stdout
    hf = slmlab(*args, "--backend", "hf")
    assert hf.returncode == 0, hf.stderr
    with sqlite3.connect(out / "slmlab.db") as db:
        configs = [json.loads(c) for (c,) in db.execute("SELECT config FROM runs ORDER BY created")]
        setups = [json.loads(v) for (v,) in db.execute("SELECT value FROM metrics WHERE name = 'generation_setup'")]
    assert len(configs) == 2 and configs[0]["backend"] == "llamacpp" and configs[0]["engine"].startswith("llama.cpp")
    assert "backend" not in configs[1]  # hf runs keep the identity they had before backends existed
    assert {s["backend"] for s in setups} == {"llamacpp", "hf"}
    assert next(s for s in setups if s["backend"] == "llamacpp")["quantization"] == "Q4_1"
    compared = slmlab("compare", *[r for r in _run_ids(out)], "--out", str(out))
    assert compared.returncode == 0, compared.stderr
    assert "different engines" in compared.stdout


def _run_ids(out) -> list[str]:
    with sqlite3.connect(out / "slmlab.db") as db:
        return [r for (r,) in db.execute("SELECT run_id FROM runs ORDER BY created")]


def test_greedy_pass_rates_agree_with_the_hf_engine(tmp_path):
    """The same model greedy on the same tasks: each engine's pass@1 inside the other's interval."""
    rates = {}
    for name in ("hf", "llamacpp"):
        out = tmp_path / name
        done = slmlab("eval", "--model", MODEL, "--benchmark", "minibench", "--limit", "10", "--backend", name,
                      "--max-new-tokens", "128", "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads(next(out.glob("eval-*/summary.json")).read_text())
        rates[name] = summary["pass_at_k"]["1"]
    for mine, other in ((rates["hf"], rates["llamacpp"]), (rates["llamacpp"], rates["hf"])):
        assert other["low"] <= mine["value"] <= other["high"], rates


def test_what_llamacpp_cannot_do_is_one_line(tmp_path, monkeypatch):
    base = ["eval", "--benchmark", "minibench", "--limit", "1", "--out", str(tmp_path / "runs"), "--backend", "llamacpp"]
    for extra, expected in (
        (["--model", MODEL, "--capture-layers", "0"], "cannot capture activations"),
        (["--model", MODEL, "--dtype", "float32"], "--dtype float32 is for --backend hf"),
        (["--model", str(tmp_path)], "is neither a .gguf file"),
    ):
        _one_line_error(slmlab(*base, *extra), expected)
    _one_line_error(slmlab(*base, "--model", MODEL, env={"SLMLAB_LLAMA_SERVER": str(tmp_path / "nothing")}),
                    "SLMLAB_LLAMA_SERVER")  # fmt: skip
    assert not (tmp_path / "runs" / "slmlab.db").exists() or not _run_ids(tmp_path / "runs")
