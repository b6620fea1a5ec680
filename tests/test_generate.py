"""Generation: batching and slot refill change nothing but speed; stops, finish reasons, seeds."""

from __future__ import annotations

import importlib

import pytest
import torch

from slmlab.generate import BatchGenerator, Request, SamplingParams, StopFinder, cut_at_stop
from slmlab.generate.stops import CLOSED_CODE_BLOCK
from slmlab.metrics.repetition import periodic_tail, quality_flags, repetition_ratio
from slmlab.tasks.humaneval import HUMANEVAL_STOPS
from slmlab.tasks.registry import lookup
from tests.tiny import scripted_model, tiny_model, tiny_tokenizer

PROMPTS = [
    "def add(a, b):\n",
    "x = 1\n",
    "def f(n):\n    if n < 2:\n        return n\n",
    "import os\n",
    "y",
    "# hello world\n",
]


def generate(model, requests, params, stops=(), batch_size=4, tokenizer=None):
    results = {}
    BatchGenerator(model, tokenizer or tiny_tokenizer(), params, stops, batch_size=batch_size).run(
        requests, lambda g: results.__setitem__(g.key, g)
    )
    return results


def requests_for(prompts, n=1, seed=7):
    return [Request((i, j), p, seed * 1000 + i * 10 + j) for i, p in enumerate(prompts) for j in range(n)]


def test_batched_greedy_equals_one_at_a_time_and_transformers_generate():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    params = SamplingParams(max_new_tokens=12)
    alone = generate(model, requests_for(PROMPTS), params, batch_size=1)
    # batch of 2 over 6 prompts of different lengths: rows leave and join (slot refill, left padding)
    batched = generate(model, requests_for(PROMPTS), params, batch_size=2)
    assert {k: g.text for k, g in alone.items()} == {k: g.text for k, g in batched.items()}
    for i, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        expected = tokenizer.decode(out[0, ids.input_ids.shape[1] :], skip_special_tokens=True)
        assert alone[(i, 0)].text == expected[: len(alone[(i, 0)].text)]
        assert alone[(i, 0)].finish_reason in ("eos", "length")


def test_samples_do_not_depend_on_their_batch_and_seeds_decide():
    model = tiny_model()
    params = SamplingParams(temperature=1.0, top_p=0.95, top_k=50, max_new_tokens=10, seed=3)
    requests = requests_for(PROMPTS[:3], n=3)
    one = generate(model, requests, params, batch_size=1)
    many = generate(model, list(reversed(requests)), params, batch_size=5)
    again = generate(model, requests, params, batch_size=5)
    assert (
        {k: g.text for k, g in one.items()}
        == {k: g.text for k, g in many.items()}
        == {k: g.text for k, g in again.items()}
    )
    reseeded = generate(model, requests_for(PROMPTS[:3], n=3, seed=8), params, batch_size=5)
    assert [g.text for g in reseeded.values()] != [g.text for g in one.values()]
    # n samples of one prompt differ from each other when sampling
    assert len({one[(0, j)].text for j in range(3)}) > 1


def test_repetition_penalty_changes_greedy_output_and_stays_batch_independent():
    model = tiny_model()
    plain = generate(model, requests_for(PROMPTS[:3]), SamplingParams(max_new_tokens=16), batch_size=3)
    penalised_params = SamplingParams(max_new_tokens=16, repetition_penalty=1.8)
    penalised = generate(model, requests_for(PROMPTS[:3]), penalised_params, batch_size=3)
    alone = generate(model, requests_for(PROMPTS[:3]), penalised_params, batch_size=1)
    assert {k: g.text for k, g in penalised.items()} == {k: g.text for k, g in alone.items()}
    assert [g.text for g in plain.values()] != [g.text for g in penalised.values()]


@pytest.mark.parametrize(
    ("script", "stops", "max_new", "text", "reason", "tokens"),
    [
        ("    return a + b\ndef g():\n", HUMANEVAL_STOPS, 64, "    return a + b", "stop", 20),
        ("    return a + b\n", HUMANEVAL_STOPS, 64, "    return a + b\n", "eos", 18),  # eos counted
        ("    return a + b\n    # more\n", (), 8, "    retu", "length", 8),
        (
            "Sure:\n```python\ndef f():\n    pass\n```\nIt works.",
            (CLOSED_CODE_BLOCK,),
            200,
            "Sure:\n```python\ndef f():\n    pass\n```",
            "stop",
            37,
        ),
    ],
)
def test_stop_sequences_and_finish_reasons(script, stops, max_new, text, reason, tokens):
    prompt = "def add(a, b):\n"
    model = scripted_model(script, prompt_length=len(prompt))
    # two rows of the same prompt in one batch: each is cut on its own
    results = generate(
        model, requests_for([prompt], n=2), SamplingParams(max_new_tokens=max_new), stops, batch_size=2
    )
    for g in results.values():
        assert (g.text, g.finish_reason, g.tokens) == (text, reason, tokens)
        assert g.truncated == (reason == "length")
        assert quality_flags(g.text, g.finish_reason)["truncated"] == (reason == "length")


def test_stop_finder_sees_stops_split_across_tokens_and_ignores_the_prompt():
    finder = StopFinder(("\ndef",))
    assert finder.find("    return 1\n") is None
    assert finder.find("    return 1\nde") is None
    assert finder.find("    return 1\ndef g") == len("    return 1")
    assert cut_at_stop("```\nx", ("\n```",)) == ("```\nx", False)  # a fence at the very start is not "\n```"
    assert lookup("mbpp-sanitized").stops_for("plain") != lookup("humaneval").stops_for("plain")
    assert lookup("humaneval").stops_for("chat") == (CLOSED_CODE_BLOCK,)


def test_quality_flags_catch_collapse_and_spare_ordinary_code():
    assert periodic_tail("def fibonacci(n):" + "):" * 20) == (2, 42)
    collapsed = quality_flags("def fibonacci(n):" + "):" * 20, "length")
    assert collapsed["repetitive"] and collapsed["mode_collapse"] and collapsed["truncated"]
    loop = quality_flags("    x = foo(x)\n    y = bar(y)\n" + "    print(x)\n    print(y)\n" * 12, "stop")
    assert loop["repetitive"] and repetition_ratio("a b c d " * 10) > 0.5
    code = "    result = []\n    for x in items:\n        if x not in seen:\n            seen.add(x)\n            result.append(x)\n    return result\n"
    ordinary = quality_flags(code, "stop")
    assert not ordinary["repetitive"] and not ordinary["mode_collapse"] and not ordinary["empty"]
    assert quality_flags("  \n", "eos")["empty"]


def test_a_prompt_longer_than_the_context_finishes_as_truncated():
    model = tiny_model()
    long_prompt = "x" * 600  # the tiny model's context is 512
    results = generate(
        model, [Request("long", long_prompt, 1), Request("short", "y", 2)], SamplingParams(max_new_tokens=4)
    )
    assert results["long"].finish_reason == "length" and results["long"].text == ""
    assert results["short"].tokens >= 1


def test_dtype_auto_is_float32_without_native_bfloat16(monkeypatch):
    load_module = importlib.import_module("slmlab.models.load")  # the package exports a function `load`

    monkeypatch.setattr(load_module, "native_bfloat16", lambda device="cpu": False)
    assert load_module.choose_dtype("auto") == "float32"
    monkeypatch.setattr(load_module, "native_bfloat16", lambda device="cpu": True)
    assert load_module.choose_dtype("auto") == "bfloat16"
    assert load_module.choose_dtype("float32") == "float32"
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(0.8, 0, 0.95), (1.0, 50, 0.9), (1.0, 0, 1.0), (0.7, 300, 1.0), (1.0, 400, 0.99), (3.0, 0, 0.99)],
)
def test_fast_sampling_distribution_equals_transformers_warpers(temperature, top_k, top_p):
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from slmlab.generate.sampling import sampling_distribution

    torch.manual_seed(0)
    # peaked rows (nucleus among the candidates) and flat ones (nucleus wider than the candidates)
    scores = torch.randn(6, 1000) * torch.tensor([[8.0], [1.0], [0.1], [3.0], [5.0], [0.5]])
    warpers = [TemperatureLogitsWarper(temperature)] + ([TopKLogitsWarper(top_k)] if top_k else [])
    warpers += [TopPLogitsWarper(top_p)] if top_p < 1 else []
    expected = torch.softmax(LogitsProcessorList(warpers)(None, scores.clone()), dim=-1)
    ids, probs = sampling_distribution(
        scores, SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    )
    ours = torch.zeros_like(expected).scatter_add_(1, ids, probs / probs.sum(-1, keepdim=True))
    assert torch.allclose(ours, expected, atol=1e-6)
    assert torch.equal(ours > 0, expected > 0)


def tiny_gemma3(model_class):
    """A two-layer Gemma 3 whose first layer has an 8-token sliding window (the character tokenizer's ids)."""
    from transformers import Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=256,
                              eos_token_id=256, pad_token_id=257)  # fmt: skip
    return model_class(config).eval()


def test_sliding_window_rows_continue_exactly_after_a_longer_row_leaves():
    # The long prompt's row ends first, leaving columns that are padding for every remaining row;
    # a sliding-window cache counts every position it has seen, so those columns must stay.
    from transformers import Gemma3ForCausalLM

    class EndsAtPosition(Gemma3ForCausalLM):
        def forward(self, *args, position_ids=None, **kwargs):
            out = super().forward(*args, position_ids=position_ids, **kwargs)
            for row, position in enumerate(position_ids[:, -1].tolist()):
                if position >= 40:
                    out.logits[row, -1, 256] += 1e4
            return out

    model = tiny_gemma3(EndsAtPosition)
    prompts = ["# a prompt much longer than the other one\n", "x"]
    params = SamplingParams(max_new_tokens=60)
    batched = generate(model, requests_for(prompts), params, batch_size=2)
    alone = generate(model, requests_for(prompts), params, batch_size=1)
    assert [g.finish_reason for g in batched.values()] == ["eos", "eos"]
    assert batched[(0, 0)].tokens < batched[(1, 0)].tokens  # the long prompt's row left first
    assert {k: g.text for k, g in batched.items()} == {k: g.text for k, g in alone.items()}


def test_sliding_window_models_run_batch_after_batch_with_the_same_results():
    from transformers import Gemma3ForCausalLM

    model = tiny_gemma3(Gemma3ForCausalLM)
    engine = BatchGenerator(model, tiny_tokenizer(), SamplingParams(max_new_tokens=20), batch_size=2)
    assert not engine.refill  # a sliding-window cache is never merged
    params = SamplingParams(max_new_tokens=20)  # longer than the window
    batched = generate(model, requests_for(PROMPTS[:4]), params, batch_size=2)
    alone = generate(model, requests_for(PROMPTS[:4]), params, batch_size=1)
    assert {k: g.text for k, g in batched.items()} == {k: g.text for k, g in alone.items()}
