"""LoRA fine-tuning: an adapter trained a few steps changes outputs, reloads to identical logits,
merges within tolerance, and names a model (`lora:DIR`) like any other."""

from __future__ import annotations

import pytest
import torch

from slmlab.errors import UserError
from slmlab.models.load import load
from slmlab.train.data import IGNORE
from slmlab.train.lora import LoraSettings, apply_adapter, collate, train_lora
from tests.tiny import save_tiny_model, tiny_tokenizer

EXAMPLES = [("def add(a, b):\n", "    return a + b\n"), ("def neg(x):\n", "    return -x\n"),
            ("def sq(x):\n", "    return x * x\n")] * 4  # fmt: skip


def _logits(model, text: str) -> torch.Tensor:
    ids = tiny_tokenizer()(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    base = save_tiny_model(root / "base")
    settings = LoraSettings(rank=4, epochs=3, lr=5e-3, batch_size=4, dropout=0.0)
    result = train_lora(str(base), EXAMPLES, settings, root / "adapter")
    return base, root / "adapter", result


def test_the_loss_counts_the_completion_only():
    input_ids, mask, targets = collate([([10, 11, 12, 13], 2), ([20, 21, 22], 1)], pad_id=0)
    assert input_ids.tolist() == [[10, 11, 12, 13], [20, 21, 22, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    # Position t predicts token t+1: only completion tokens are targets.
    assert targets.tolist() == [[IGNORE, 12, 13, IGNORE], [21, 22, IGNORE, IGNORE]]


def test_an_adapter_changes_outputs_and_reloads_identically(adapter):
    base_dir, adapter_dir, result = adapter
    assert result.losses[-1] < result.losses[0]
    assert 0 < result.trainable_parameters < result.total_parameters
    base = load(str(base_dir), dtype="float32").model
    text = "def add(a, b):\n"
    before = _logits(base, text)
    unmerged = apply_adapter(load(str(base_dir), dtype="float32").model, adapter_dir, merge=False)
    again = apply_adapter(load(str(base_dir), dtype="float32").model, adapter_dir, merge=False)
    assert not torch.allclose(_logits(unmerged, text), before, atol=1e-4)
    assert torch.equal(_logits(unmerged, text), _logits(again, text))
    merged = apply_adapter(load(str(base_dir), dtype="float32").model, adapter_dir, merge=True)
    assert torch.allclose(_logits(merged, text), _logits(unmerged, text), atol=1e-4)


def test_a_fine_tuned_model_is_a_model_name(adapter):
    base_dir, adapter_dir, _ = adapter
    loaded = load(f"lora:{adapter_dir}", dtype="float32")
    assert "LoRA adapter" in loaded.resolved.source
    direct = apply_adapter(load(str(base_dir), dtype="float32").model, adapter_dir, merge=True)
    assert torch.equal(_logits(loaded.model, "def sq(x):\n"), _logits(direct, "def sq(x):\n"))
    with pytest.raises(UserError, match="not a LoRA adapter"):
        load(f"lora:{base_dir}")


def test_pair_examples_put_the_doc_in_the_prompt_and_the_body_in_the_completion():
    from slmlab.train.examples import pair_example
    from slmlab.train.pairs import extract_pairs

    python = 'def area(w, h=(1, 2)):\n    """Area of a box."""\n    if w < 0:\n        return 0\n    return w * h\n'
    prompt, completion = pair_example(extract_pairs(python, "python")[0])
    assert prompt == 'def area(w, h=(1, 2)):\n    """Area of a box."""\n'
    assert completion == "    if w < 0:\n        return 0\n    return w * h"
    java = "class A {\n  /** Twice x. */\n  int twice(int x) {\n    int y = x * 2;\n    return y;\n  }\n}\n"
    prompt, completion = pair_example(extract_pairs(java, "java")[0])
    assert prompt == "/** Twice x. */\nint twice(int x) {" and "return y;" in completion
    js = "/** Add two. */\nfunction add(a, {b} = {}) {\n  const s = a + b;\n  return s;\n}\n"
    prompt, completion = pair_example(extract_pairs(js, "javascript")[0])
    assert prompt == "/** Add two. */\nfunction add(a, {b} = {}) {" and completion.strip().endswith("}")


def test_pairs_lora_and_eval_commands_chain(tmp_path):
    from tests.test_cli import slmlab

    source = tmp_path / "src"
    source.mkdir()
    for i in range(6):
        (source / f"m{i}.py").write_text(
            f'def f{i}(x):\n    """Scale x by {i}."""\n    y = x * {i}\n    if y > 3:\n        y -= 1\n    return y\n'
        )
    done = slmlab("pairs", "build", str(source), "--language", "python", "--out", str(tmp_path / "p.jsonl"))
    assert done.returncode == 0, done.stderr
    base = save_tiny_model(tmp_path / "base")
    done = slmlab("lora", "train", "--model", str(base), "--pairs", str(tmp_path / "p.jsonl"), "--out",
                  str(tmp_path / "adapter"), "--rank", "2", "--epochs", "1", "--batch-size", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "lora:" in done.stdout
    done = slmlab("eval", "--model", f"lora:{tmp_path / 'adapter'}", "--benchmark", "minibench", "--limit", "1",
                  "--prompt-mode", "plain", "--max-new-tokens", "4", "--out", str(tmp_path / "runs"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    bad = slmlab("lora", "train", "--model", str(base), "--out", str(tmp_path / "a2"))
    assert bad.returncode != 0 and "--pairs" in bad.stderr and "Traceback" not in bad.stderr
