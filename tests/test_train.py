"""Training from scratch: architectures, the loss, exact resumption, checkpoints as models, and the
sanity checks that catch an implausible validation perplexity."""

from __future__ import annotations

import json

import pytest
import torch

from slmlab.errors import UserError
from slmlab.train.arch import FAMILIES, ArchConfig, build_model, parameter_count, parse_arch
from slmlab.train.config import TrainConfig, parse_tokenizer_spec
from slmlab.train.corpus import DOC_SEPARATOR
from slmlab.train.data import IGNORE, lm_loss, next_token_targets
from slmlab.train.loop import read_log, train
from slmlab.train.sanity import overlap, shift
from tests.test_cli import _one_line_error, slmlab
from tests.tiny import tiny_model

SEED_003_ARCH = {"arch_type": "transformer", "num_layers": 8, "hidden_dim": 512, "num_heads": 8,
                 "ffn_multiplier": 3.0, "normalization": "layernorm", "activation": "gelu", "position_encoding": "rope",
                 "attention_dropout": 0.2, "residual_dropout": 0.2}  # fmt: skip


def _arch(position: str, norm: str, act: str, **extra) -> ArchConfig:
    dropout = 0.0 if (norm, act) in {("rmsnorm", "gelu"), ("rmsnorm", "relu")} else 0.1
    return ArchConfig(num_layers=2, hidden_dim=32, num_heads=4, ffn_multiplier=2.5, normalization=norm,
                      activation=act, position_encoding=position, attention_dropout=0.1, residual_dropout=dropout,
                      max_seq_len=64, **extra)  # fmt: skip


@pytest.mark.parametrize("key", sorted(FAMILIES), ids=lambda k: "-".join(k))
def test_every_architecture_trains_and_counts_its_parameters(key):
    arch = _arch(*key)
    model = build_model(arch, vocab_size=97, eos_id=0)
    assert model.num_parameters() == parameter_count(arch, 97)
    x = torch.randint(0, 97, (2, 16))
    loss = lm_loss(model(input_ids=x).logits[:, :-1], x[:, 1:])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_seeds_architecture_json_loads_as_it_is(tmp_path):
    path = tmp_path / "codenas_l8h512_regularized.json"
    path.write_text(json.dumps(SEED_003_ARCH))
    from slmlab.train.arch import describe, load_arch

    arch = load_arch(path)
    assert arch.family == "gpt_neox"
    size = describe(arch, 8000)
    # The seed's 29,180,928 has no linear biases; GPT-NeoX adds 32,768 of them over 8 layers.
    assert size["parameters"] == 29_180_928 + 8 * (3 * 512 + 512 + 1536 + 512)
    assert size["parameters_per_vocab_item"] == pytest.approx(size["parameters"] / 8000, abs=0.1)


def test_impossible_architectures_are_refused_clearly():
    with pytest.raises(UserError, match="learned positions come with layernorm"):
        parse_arch({**SEED_003_ARCH, "position_encoding": "learned", "normalization": "rmsnorm"})
    with pytest.raises(UserError, match="divisible"):
        parse_arch({**SEED_003_ARCH, "num_heads": 7})
    with pytest.raises(UserError, match="unknown field"):
        parse_arch({**SEED_003_ARCH, "hidden_size": 3})


def test_tokenizer_specs():
    assert parse_tokenizer_spec("bpe-8k") == ("bpe", 8000)
    assert parse_tokenizer_spec("bpe-8192") == ("bpe", 8192)
    assert parse_tokenizer_spec("char") == ("char", None)
    assert parse_tokenizer_spec("gpt2") == ("gpt2", None)
    assert parse_tokenizer_spec("runs/tok") is None


def test_loss_ignores_padding_with_and_without_label_smoothing():
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 11)
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    padded_logits = torch.cat([logits, torch.randn(1, 3, 11) * 50], dim=1)  # wild logits on padding
    padded_ids = torch.tensor([[3, 4, 5, 6, 7, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    targets = next_token_targets(padded_ids, mask)
    assert targets.tolist() == [[4, 5, 6, 7, IGNORE, IGNORE, IGNORE, IGNORE]]
    for smoothing in (0.0, 0.1):
        plain = lm_loss(logits[:, :-1], ids[:, 1:], smoothing)
        assert torch.allclose(lm_loss(padded_logits, targets, smoothing), plain)
    assert lm_loss(logits[:, :-1], ids[:, 1:], 0.1) > lm_loss(logits[:, :-1], ids[:, 1:], 0.0) - 1.0


def _corpus(tmp_path, docs_train: list[str], docs_val: list[str]):
    (tmp_path / "train.txt").write_text(DOC_SEPARATOR.join(docs_train))
    (tmp_path / "val.txt").write_text(DOC_SEPARATOR.join(docs_val))
    return tmp_path / "train.txt", tmp_path / "val.txt"


def _python_docs(count: int, offset: int = 0) -> list[str]:
    return [f"def f{i}(x, y={i}):\n    total = x * {i} + y\n    for k in range({i % 7 + 2}):\n        total += k\n"
            f"    return total  # doc {i}\n\n\nclass C{i}:\n    value = {i * 3}\n" for i in range(offset, offset + count)]  # fmt: skip


def _config(tmp_path, name: str, train_path, val_path, **overrides) -> TrainConfig:
    values = dict(arch=_arch("rope", "layernorm", "gelu"), experiment_name=name, train_path=train_path,
                  val_path=val_path, tokenizer="char", log_dir=tmp_path / name, max_steps=6, batch_size=4,
                  seq_len=32, warmup_steps=2, eval_every=3, eval_batches=2, log_every=1, label_smoothing=0.1)  # fmt: skip
    return TrainConfig(**(values | overrides))


def test_resume_gives_the_same_losses_as_one_run(tmp_path):
    train_path, val_path = _corpus(tmp_path, _python_docs(40), _python_docs(5, offset=100))
    whole = train(_config(tmp_path, "whole", train_path, val_path), progress=False)
    paused = train(_config(tmp_path, "split", train_path, val_path), stop_at=3, progress=False)
    assert paused.paused and paused.steps == 3
    resumed = train(_config(tmp_path, "split", train_path, val_path), resume=True, progress=False)
    assert resumed.resumed_from == 3
    one_go = [r["loss"] for r in read_log(tmp_path / "whole", "whole")]
    in_two = [r["loss"] for r in read_log(tmp_path / "split", "split")]
    assert len(one_go) == 6 and one_go == in_two
    assert whole.val_loss == resumed.val_loss
    assert json.loads((tmp_path / "whole" / "train_config.json").read_text())["experiment_name"] == "whole"


def test_a_start_that_fails_leaves_no_run_behind(tmp_path):
    train_path, val_path = _corpus(tmp_path, _python_docs(20), _python_docs(3, offset=100))
    missing = tmp_path / "missing.txt"
    fresh = tmp_path / "runs" / "fresh"  # neither folder is there yet
    with pytest.raises(UserError, match="missing.txt"):
        train(_config(tmp_path, "fresh", missing, val_path, log_dir=fresh), progress=False)
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "kept"  # a folder the user made: it stays, with nothing of the failed start in it
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    short = tmp_path / "short.txt"
    short.write_text("x = 1")
    with pytest.raises(UserError, match="fewer than one sequence"):  # after the tokenizer and tokens are made
        train(_config(tmp_path, "kept", train_path, short, log_dir=kept), progress=False)
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]
    arch = tmp_path / "arch.json"
    arch.write_text(
        json.dumps({**SEED_003_ARCH, "num_layers": 1, "hidden_dim": 32, "num_heads": 4, "max_seq_len": 64})
    )
    failed = slmlab("train", "--arch-json", str(arch), "--experiment-name", "x", "--train-path", str(missing),
                    "--val-path", str(missing), "--log-dir", str(tmp_path / "t1"), "--seq-len", "32")  # fmt: skip
    _one_line_error(failed, "missing.txt")
    assert not (tmp_path / "t1").exists()


def test_a_checkpoint_is_a_model_with_identical_logits(tmp_path):
    from slmlab.models.load import load

    train_path, val_path = _corpus(tmp_path, _python_docs(30), _python_docs(4, offset=50))
    summary = train(
        _config(tmp_path, "ck", train_path, val_path, max_steps=3, label_smoothing=0.0), progress=False
    )
    assert set(summary.checkpoints) >= {"best", "final", "last"}
    from slmlab.train.checkpoint import load_state

    state = load_state(tmp_path / "ck" / "checkpoints" / "last")
    reference = build_model(_arch("rope", "layernorm", "gelu"), len(json.loads(
        (tmp_path / "ck" / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]), eos_id=0)  # fmt: skip
    reference.load_state_dict(state["model"])
    reference.eval()
    loaded = load(f"ckpt:{tmp_path / 'ck'}", dtype="float32")
    ids = loaded.tokenizer("def f(x):\n    return x", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded.model(input_ids=ids).logits, reference(input_ids=ids).logits)
    assert "checkpoint" in loaded.resolved.source


def test_sanity_checks_fire_on_planted_leakage(tmp_path):
    docs = ["print('hello world, this is the one file we have')\n" * 6]
    train_path, val_path = _corpus(tmp_path, docs * 4, docs)
    summary = train(_config(tmp_path, "leak", train_path, val_path, max_steps=80, lr=1e-2, warmup_steps=4,
                            eval_every=80, label_smoothing=0.0, arch=_arch("rope", "layernorm", "gelu")),
                    progress=False)  # fmt: skip
    warnings = " ".join(summary.warnings)
    assert "validation files are also in the training text" in warnings
    assert "implausibly low" in warnings
    assert summary.checks["measurements"]["overlap"]["line_window_overlap"] == 1.0


def test_overlap_counts_shared_files_and_windows():
    train_docs = _python_docs(20)
    clean = overlap(DOC_SEPARATOR.join(train_docs), DOC_SEPARATOR.join(_python_docs(3, offset=500)))
    assert clean["val_files_in_train"] == 0
    leaked = overlap(
        DOC_SEPARATOR.join(train_docs), DOC_SEPARATOR.join(train_docs[:2] + _python_docs(2, offset=900))
    )
    assert leaked["val_files_in_train"] == 2
    assert leaked["line_window_overlap"] > clean["line_window_overlap"]


class _Windows:
    """Two rows of fixed tokens in the shape the checks read."""

    count = 2

    def batch(self, indices):
        rows = torch.tensor([[ord(c) for c in "def f(x): return x + 1 and more"]] * len(list(indices)))
        return rows[:, :-1], rows[:, 1:]


def test_shift_check_catches_a_model_that_copies_its_input():
    class Copier(torch.nn.Module):
        def forward(self, input_ids):
            logits = torch.nn.functional.one_hot(input_ids, 300).float() * 10
            return type("Out", (), {"logits": logits})()

    copied = shift(Copier(), _Windows(), "cpu", batches=1, batch_size=2)
    assert copied["copy_rate"] == 1.0 and copied["future_leak"] == 0.0
    honest = shift(tiny_model(), _Windows(), "cpu", batches=1, batch_size=2)
    assert honest["copy_rate"] < 0.5


def test_train_cli_takes_the_seed_flags_and_reports_bad_input(tmp_path):
    train_path, val_path = _corpus(tmp_path, _python_docs(30), _python_docs(4, offset=50))
    arch = tmp_path / "arch.json"
    arch.write_text(
        json.dumps({**SEED_003_ARCH, "num_layers": 1, "hidden_dim": 32, "num_heads": 4, "max_seq_len": 64})
    )
    done = slmlab("train", "--arch_json", str(arch), "--experiment_name", "cli", "--train_path", str(train_path),
                  "--val_path", str(val_path), "--max_steps", "2", "--use_tokens", "--tokenizer_path", "char",
                  "--log_dir", str(tmp_path / "cli"), "--weight_decay", "0.05", "--label_smoothing", "0.1",
                  "--warmup_steps", "1", "--lr", "3e-4", "--device", "cpu", "--batch-size", "2", "--seq-len", "32")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "val bits per char" in done.stdout
    summary = json.loads((tmp_path / "cli" / "cli_summary.json").read_text())
    assert summary["steps"] == 2 and summary["model"]["family"] == "gpt_neox"
    _one_line_error(slmlab("train", "--arch-json", str(arch)), "--experiment-name", "--train-path")
    again = slmlab("train", "--arch-json", str(arch), "--experiment-name", "cli", "--train-path", str(train_path),
                   "--val-path", str(val_path), "--tokenizer", "char", "--log-dir", str(tmp_path / "cli"), "--seq-len", "32")  # fmt: skip
    _one_line_error(again, "--resume")


def test_search_runs_trials_in_parallel_ranks_them_and_resumes(tmp_path):
    from slmlab.train.search import parse_space, run_search

    train_path, val_path = _corpus(tmp_path, _python_docs(40), _python_docs(5, offset=100))
    base = _config(tmp_path, "base", train_path, val_path, max_steps=3, eval_every=3)
    space = parse_space(["hidden_dim=16,32", "label_smoothing=0,0.1"])
    assert space == {"hidden_dim": [16, 32], "label_smoothing": [0, 0.1]}
    results = run_search(base, space, tmp_path / "search", mode="random", trials=2, parallel=2, collapse=True)
    assert len(results) == 2
    assert [r["val_bits_per_char"] for r in results] == sorted(r["val_bits_per_char"] for r in results)
    assert all(0 <= r["collapse_rate"] <= 1 for r in results)
    stamps = {p: p.stat().st_mtime for p in (tmp_path / "search" / "trials").glob("*/*_summary.json")}
    again = run_search(base, space, tmp_path / "search", mode="random", trials=2, parallel=2, collapse=True)
    assert {r["trial"] for r in again} == {r["trial"] for r in results}
    assert stamps == {p: p.stat().st_mtime for p in (tmp_path / "search" / "trials").glob("*/*_summary.json")}
    with pytest.raises(UserError, match="neither an architecture nor a training field"):
        parse_space(["depth=2,4"])


def test_corpus_and_tokenizer_commands(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for i, doc in enumerate(_python_docs(30)):
        (source / f"m{i}.py").write_text(doc)
    (source / "copy.py").write_text(_python_docs(1)[0])  # an exact duplicate of m0.py
    done = slmlab(
        "corpus", "build", f"python:{source}", "--out", str(tmp_path / "corpus"), "--val-fraction", "0.2"
    )
    assert done.returncode == 0, done.stderr
    assert "1 exact duplicates" in done.stdout and "train:" in done.stdout
    report = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert report["splits"]["train"]["files"] + report["splits"]["val"]["files"] == 30
    done = slmlab("tokenizer", "train", "bpe-300", "--train-path", str(tmp_path / "corpus" / "train.txt"),
                  "--val-path", str(tmp_path / "corpus" / "val.txt"), "--out", str(tmp_path / "tok"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "characters per token" in done.stdout
    _one_line_error(slmlab("tokenizer", "train", "bpe-300", "--out", str(tmp_path / "t2")), "--train-path")
    _one_line_error(
        slmlab("corpus", "build", f"python:{tmp_path / 'missing'}", "--out", str(tmp_path / "c2"))
    )
