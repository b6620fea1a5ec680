"""Activation capture during generation, its storage, and interventions, on tiny models."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from slmlab.generate import BatchGenerator, Request, SamplingParams
from slmlab.probe.arrays import ActivationWriter, Layout, read_rows
from slmlab.probe.capture import ActivationCapture, resolve_layers
from slmlab.probe.steer import Steering, dims_direction
from tests.tiny import tiny_model, tiny_tokenizer

PROMPTS = [
    "def add(a, b):\n",
    "x = [1, 2, 3]\nfor i in x:\n    print(",
    "# a much longer prompt than the others\nimport os\n",
]


def generate(
    model, prompts, layers=(0, 1), tokens=True, batch_size=8, temperature=0.0, max_new=12, steer=None
):
    params = SamplingParams(temperature=temperature, max_new_tokens=max_new, seed=7)
    results = {}
    requests = [Request(i, p, seed=i) for i, p in enumerate(prompts)]
    with contextlib.ExitStack() as stack:
        if steer is not None:  # entered first, as the pipeline does, so capture sees the shift
            stack.enter_context(steer)
        capture = stack.enter_context(ActivationCapture(model, list(layers), tokens=tokens))
        engine = BatchGenerator(model, tiny_tokenizer(), params, batch_size=batch_size, capture=capture)
        engine.run(requests, lambda g: results.__setitem__(g.key, g))
    return results


def forward_states(model, prompt: str, generated_ids: list[int]):
    """Hidden states of a plain forward pass over prompt + generated tokens (transformers' own output)."""
    ids = tiny_tokenizer()(prompt)["input_ids"] + generated_ids
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out, len(ids) - len(generated_ids)


def test_captured_activations_equal_a_plain_forward_pass():
    model = tiny_model()
    results = generate(model, PROMPTS[:1], layers=(0, 1), batch_size=1)
    g = results[0]
    ids = tiny_tokenizer()(g.text, add_special_tokens=False)["input_ids"]
    assert g.tokens >= 1
    out, n_prompt = forward_states(model, PROMPTS[0], ids[: g.tokens - 1])
    # The states that chose each generated token: the last prompt token's, then each generated one fed back.
    choosing = slice(n_prompt - 1, n_prompt - 1 + g.tokens)
    layer0 = out.hidden_states[1][0]
    np.testing.assert_allclose(g.activations["prompt_last"][0], layer0[n_prompt - 1].numpy(), atol=2e-3)
    np.testing.assert_allclose(
        g.activations["generated_mean"][0], layer0[choosing].mean(0).numpy(), atol=2e-3
    )
    np.testing.assert_allclose(g.activations["generated"][:, 0], layer0[choosing].numpy(), atol=2e-3)
    # The last layer is captured before the final norm; transformers' last hidden state is after it.
    last = g.activations["generated"][:, 1].astype(np.float32)
    normed = model.model.norm(torch.from_numpy(last)).detach().numpy()
    np.testing.assert_allclose(normed, out.hidden_states[2][0][choosing].numpy(), atol=5e-3)


def test_activations_do_not_depend_on_the_batch():
    model = tiny_model()
    alone = {i: generate(model, [p], batch_size=1)[0] for i, p in enumerate(PROMPTS)}
    batched = generate(model, PROMPTS * 3, batch_size=4)  # left padding, refill, rows leaving
    for key, g in batched.items():
        ref = alone[key % len(PROMPTS)]
        assert g.text == ref.text
        for kind in ("prompt_last", "generated_mean", "generated"):
            np.testing.assert_allclose(g.activations[kind], ref.activations[kind], atol=2e-3, rtol=1e-3)


def test_layers_resolve_like_python_indices():
    assert resolve_layers("all", 4) == [0, 1, 2, 3]
    assert resolve_layers("1,-1", 4) == [1, 3]
    assert resolve_layers([-4, 0], 4) == [0]
    from slmlab.errors import UserError

    with pytest.raises(UserError, match="out of range"):
        resolve_layers("4", 4)


def test_a_zero_intervention_changes_nothing_and_a_large_one_does():
    model = tiny_model()
    base = generate(model, PROMPTS, temperature=0.8)
    direction = dims_direction([3, 7], [1.0, -1.0], model.config.hidden_size)
    zero = generate(model, PROMPTS, temperature=0.8, steer=Steering(model, 0, direction, 0.0))
    assert {k: g.text for k, g in zero.items()} == {k: g.text for k, g in base.items()}
    pushed = generate(model, PROMPTS, temperature=0.8, steer=Steering(model, 0, direction, 50.0))
    assert {k: g.text for k, g in pushed.items()} != {k: g.text for k, g in base.items()}
    # The shift is visible in the captured layer, by its size along the direction.
    moved = pushed[0].activations["prompt_last"][0].astype(np.float64) - base[0].activations["prompt_last"][0]
    assert moved @ direction == pytest.approx(50.0, abs=0.1)


def test_rows_stream_to_disk_and_a_resumed_writer_drops_unindexed_rows(tmp_path):
    layout = Layout([0, 3], 4, tokens=True)
    rng = np.random.default_rng(0)
    samples = [{"prompt_last": rng.normal(size=(2, 4)), "generated_mean": rng.normal(size=(2, 4)),
                "generated": rng.normal(size=(n, 2, 4))} for n in (3, 1, 2)]  # fmt: skip
    with ActivationWriter(tmp_path, layout, 0, 0) as writer:
        entries = [writer.append(s) for s in samples]
    assert [(e.row, e.token_start, e.n_tokens) for e in entries] == [(0, 0, 3), (1, 3, 1), (2, 4, 2)]
    # As if the process died after writing row 2 but before indexing it: reopen covering rows 0-1.
    with ActivationWriter(tmp_path, layout, 2, 4) as writer:
        again = writer.append(samples[2])
    assert (again.row, again.token_start) == (2, 4)
    got = read_rows(tmp_path, "generated_mean", 3, [0, 1, 2])
    want = np.stack([s["generated_mean"][1] for s in samples]).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert (tmp_path / "generated.f16").stat().st_size == 6 * 2 * 4 * 2
