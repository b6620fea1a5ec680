from __future__ import annotations

import hashlib
import importlib
import json
import random
import sys
import zipfile
from pathlib import Path

import pytest

from slmlab.errors import UserError
from slmlab.train import corpus
from slmlab.train.corpus import DOC_SEPARATOR, CorpusSource, build_corpus, read_documents


def _code(seed: int, lines: int = 20) -> str:
    """A Python file sharing almost no word 5-grams with any other seed's file."""
    rng = random.Random(seed)
    words = [f"w{rng.randrange(10**6)}" for _ in range(lines * 3)]
    return "".join(f"{words[3 * i]} = {words[3 * i + 1]}({words[3 * i + 2]}, {i})\n" for i in range(lines))


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    return root


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _sha(doc: str) -> str:
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


def test_exact_duplicates_removed(tmp_path: Path) -> None:
    text = _code(1)
    # Same content up to line endings and trailing whitespace: one document.
    src = _write(
        tmp_path / "src",
        {"a.py": text, "b.py": text.replace("\n", "  \r\n"), "c.py": _code(2), "d.py": _code(3)},
    )
    report = build_corpus([CorpusSource("python", str(src))], tmp_path / "out")
    docs = read_documents(tmp_path / "out/train.txt") + read_documents(tmp_path / "out/val.txt")
    assert sorted(docs) == sorted([text, _code(2), _code(3)])
    rows = {r["path"]: r for r in _manifest(tmp_path / "out")}
    assert rows["b.py"]["drop"] == "exact_duplicate"
    assert rows["b.py"]["duplicate_of"].endswith("::a.py")
    assert rows["a.py"]["drop"] is None and rows["a.py"]["split"] in ("train", "val")
    assert report.exact_duplicates == 1 and report.near_duplicates == 0


def test_near_duplicate_removed_and_recorded(tmp_path: Path) -> None:
    lines = [f"value_{i} = compute_{i}(alpha_{i}, beta_{i})  # step {i}" for i in range(60)]
    changed = list(lines)
    changed[30] = "value_30 = something_else(gamma, delta)  # changed"
    src = _write(
        tmp_path / "src",
        {
            "a.py": "\n".join(lines) + "\n",
            "b.py": "\n".join(changed) + "\n",
            "c.py": _code(7),
            "d.py": _code(8),
        },
    )
    report = build_corpus([f"python:{src}"], tmp_path / "out")
    rows = {r["path"]: r for r in _manifest(tmp_path / "out")}
    assert rows["b.py"]["drop"] == "near_duplicate"
    assert rows["b.py"]["duplicate_of"].endswith("::a.py")
    assert 0.8 <= rows["b.py"]["similarity"] < 1.0
    assert [rows[p]["drop"] for p in ("a.py", "c.py", "d.py")] == [None, None, None]
    assert report.near_duplicates == 1
    docs = read_documents(tmp_path / "out/train.txt") + read_documents(tmp_path / "out/val.txt")
    assert "something_else" not in "".join(docs)
    # With the threshold above their similarity, both are kept.
    report = build_corpus([f"python:{src}"], tmp_path / "out2", near_dup_threshold=0.99)
    assert report.near_duplicates == 0 and report.train.files + report.val.files == 4


def test_split_disjoint_and_deterministic(tmp_path: Path) -> None:
    src = _write(tmp_path / "src", {f"m{i:03d}.py": _code(i) for i in range(200)})
    build_corpus([f"python:{src}"], tmp_path / "a", val_fraction=0.2, seed=3)
    build_corpus([f"python:{src}"], tmp_path / "b", val_fraction=0.2, seed=3)
    for name in ("train.txt", "val.txt", "manifest.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    train = {_sha(d) for d in read_documents(tmp_path / "a/train.txt")}
    val = {_sha(d) for d in read_documents(tmp_path / "a/val.txt")}
    assert train and val and not train & val
    assert len(train) + len(val) == 200
    # The seed matters: another seed gives another split of the same files.
    build_corpus([f"python:{src}"], tmp_path / "c", val_fraction=0.2, seed=4)
    assert {_sha(d) for d in read_documents(tmp_path / "c/val.txt")} != val


def test_val_fraction_roughly_respected(tmp_path: Path) -> None:
    src = _write(tmp_path / "src", {f"m{i:03d}.py": _code(i, lines=3) for i in range(400)})
    report = build_corpus([f"python:{src}"], tmp_path / "out", val_fraction=0.1)
    assert 20 <= report.val.files <= 65
    assert report.train.files + report.val.files == 400
    # Even a tiny corpus gets one val file.
    small = _write(tmp_path / "small", {"a.py": _code(1), "b.py": _code(2)})
    report = build_corpus([f"python:{small}"], tmp_path / "out2", val_fraction=0.05)
    assert (report.train.files, report.val.files) == (1, 1)


def test_java_zip_source(tmp_path: Path) -> None:
    zpath = tmp_path / "src.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("java.base/java/lang/", "")
        zf.writestr("java.base/java/lang/B.java", "class B {\n    int b = 2;\n}\n")
        zf.writestr("java.base/java/lang/A.java", "class A {\n    int a = 1;\n}\n")
        zf.writestr("java.base/README.txt", "not java")
    report = build_corpus([CorpusSource("java", str(zpath))], tmp_path / "out")
    rows = _manifest(tmp_path / "out")
    assert [r["path"] for r in rows] == ["java.base/java/lang/A.java", "java.base/java/lang/B.java"]
    docs = read_documents(tmp_path / "out/train.txt") + read_documents(tmp_path / "out/val.txt")
    assert sorted(docs) == ["class A {\n    int a = 1;\n}\n", "class B {\n    int b = 2;\n}\n"]
    assert report.languages["java"]["train"].files + report.languages["java"]["val"].files == 2
    bad = tmp_path / "bad.zip"
    bad.write_text("this is not a zip")
    with pytest.raises(UserError, match="not a readable zip"):
        build_corpus([f"java:{bad}"], tmp_path / "out2")


def test_java_default_src_zip_skips_dangling_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jvm/a-jdk/lib").mkdir(parents=True)
    (tmp_path / "jvm/a-jdk/lib/src.zip").symlink_to(tmp_path / "missing.zip")
    (tmp_path / "jvm/b-jdk/lib").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "jvm/b-jdk/lib/src.zip", "w") as zf:
        zf.writestr("X.java", "class X {}\n")
        zf.writestr("Y.java", "class Y {}\n")
    monkeypatch.setattr(corpus, "JDK_SRC_GLOB", str(tmp_path / "jvm/*/lib/src.zip"))
    report = build_corpus(["java"], tmp_path / "out")
    assert report.sources[0]["resolved"] == str(tmp_path / "jvm/b-jdk/lib/src.zip")
    (tmp_path / "jvm/b-jdk/lib/src.zip").unlink()
    with pytest.raises(UserError, match="openjdk-17-source"):
        build_corpus(["java"], tmp_path / "out")


def test_javascript_directory_skips_minified(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "src",
        {
            "lib/a.js": "function a(x) {\n  return x + 1;\n}\n",
            "lib/b.mjs": "export const b = (y) => y * 2;\n",
            "dist/c.min.js": "function c(){return 3}\n",
            "types.ts": "let t: number = 1;\n",
            ".cache/hidden.js": "var hidden = 1;\n",
        },
    )
    report = build_corpus([f"js:{src}"], tmp_path / "out")
    rows = {r["path"]: r for r in _manifest(tmp_path / "out")}
    assert set(rows) == {"dist/c.min.js", "lib/a.js", "lib/b.mjs"}
    assert rows["dist/c.min.js"]["drop"] == "minified"
    text = (tmp_path / "out/train.txt").read_text() + (tmp_path / "out/val.txt").read_text()
    assert "function a" in text and "export const b" in text and "function c" not in text
    assert report.skipped == {"minified": 1}


def test_max_mb_cap(tmp_path: Path) -> None:
    src = _write(tmp_path / "src", {f"m{i:02d}.py": _code(i, lines=60) for i in range(50)})
    size = len(_code(0, lines=60).encode())
    full = build_corpus([f"python:{src}"], tmp_path / "full")
    assert full.train.files + full.val.files == 50
    cap_mb = 10 * size / 1e6
    report = build_corpus([f"python:{src}"], tmp_path / "capped", max_mb=cap_mb)
    written = sum((tmp_path / "capped" / n).stat().st_size for n in ("train.txt", "val.txt"))
    assert 0 < written <= cap_mb * 1e6
    rows = _manifest(tmp_path / "capped")
    kept = [r["path"] for r in rows if r["split"]]
    assert 5 <= len(kept) < 10
    assert kept == [f"m{i:02d}.py" for i in range(len(kept))]  # a prefix in path order
    assert all(r["drop"] == "over_max_mb" for r in rows[len(kept) :])
    assert report.skipped == {"over_max_mb": 50 - len(kept)}


def test_filters_skip_bad_files(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "src",
        {
            "good.py": _code(1),
            "latin1.py": "# caf\u00e9\nx = 1\n".encode("latin-1"),
            "empty.py": "  \n\n",
            "minified.py": "x = [" + ", ".join(["1"] * 600) + "]\n",
            "big.py": _code(2, lines=200),
            "sep.py": f'EOT = "{DOC_SEPARATOR}"\n',
        },
    )
    report = build_corpus([f"python:{src}"], tmp_path / "out", max_file_mb=0.005)
    rows = {r["path"]: r["drop"] for r in _manifest(tmp_path / "out")}
    assert rows == {
        "good.py": None,
        "latin1.py": "not_utf8",
        "empty.py": "empty",
        "minified.py": "long_lines",
        "big.py": "too_large",
        "sep.py": "contains_separator",
    }
    assert read_documents(tmp_path / "out/train.txt") == [_code(1)]
    assert report.val.files == 0 and report.warnings


def test_bad_input_gives_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        build_corpus([f"python:{tmp_path / 'missing'}"], tmp_path / "out")
    with pytest.raises(UserError, match="not installed"):
        build_corpus(["python:no_such_package_zz9"], tmp_path / "out")
    _write(tmp_path / "txt", {"notes.txt": "hello"})
    with pytest.raises(UserError, match="no .py files found"):
        build_corpus([f"python:{tmp_path / 'txt'}"], tmp_path / "out")
    with pytest.raises(UserError, match="unknown corpus language"):
        build_corpus(["cobol:x"], tmp_path / "out")
    with pytest.raises(UserError, match="val_fraction"):
        build_corpus([f"python:{tmp_path / 'txt'}"], tmp_path / "out", val_fraction=1.0)
    assert not (tmp_path / "out").exists()


def test_installed_package_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "site", {"slm_fake_pkg/__init__.py": _code(1), "slm_fake_pkg/sub/mod.py": _code(2)})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    report = build_corpus(["python:slm_fake_pkg"], tmp_path / "out")
    assert report.sources[0]["kind"] == "package"
    assert sorted(r["path"] for r in _manifest(tmp_path / "out")) == ["__init__.py", "sub/mod.py"]


def test_manifest_and_report_match_outputs(tmp_path: Path) -> None:
    # crlf.py: bytes and sha256 are those of the written (normalised) document, not of the file.
    files = {f"m{i:02d}.py": _code(i) for i in range(39)} | {
        "dup.py": _code(0),
        "crlf.py": _code(99).replace("\n", " \r\n"),
    }
    src = _write(tmp_path / "src", files)
    report = build_corpus(
        [f"python:{src}"], tmp_path / "out", val_fraction=0.2, count_tokens=lambda t: len(t.split())
    )
    saved = json.loads((tmp_path / "out/corpus.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))
    rows = _manifest(tmp_path / "out")
    assert len(rows) == 41 == saved["files_seen"]
    for split in ("train", "val"):
        docs = read_documents(tmp_path / "out" / f"{split}.txt")
        mine = [r for r in rows if r["split"] == split]
        assert [_sha(d) for d in docs] == [r["sha256"] for r in mine]
        assert [len(d.encode()) for d in docs] == [r["bytes"] for r in mine]
        stats = saved["splits"][split]
        assert stats["files"] == len(docs) and stats["bytes"] == sum(r["bytes"] for r in mine)
        assert stats["tokens"] == sum(len(d.split()) for d in docs)
    assert saved["exact_duplicates"] == 1 and saved["skipped"] == {"exact_duplicate": 1}
    assert saved["params"]["val_fraction"] == 0.2 and saved["sources"][0]["files_seen"] == 41


_FAKE_NPM = """#!{python}
import io, json, os, sys, tarfile
args = sys.argv[1:]
dest = args[args.index("--pack-destination") + 1]
files = {{
    "package/package.json": '{{"name": "fakepkg", "version": "1.2.3"}}',
    "package/index.js": "module.exports = function fake(x) {{ return x; }};\\n",
    "package/dist/fake.min.js": "function f(){{}}\\n",
}}
with tarfile.open(os.path.join(dest, "fakepkg-1.2.3.tgz"), "w:gz") as tf:
    for name, text in files.items():
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
print(json.dumps([{{"filename": "fakepkg-1.2.3.tgz"}}]))
"""


def test_npm_package_fetched_once_into_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(_FAKE_NPM.format(python=sys.executable))
    npm.chmod(0o755)
    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(bin_dir))
    report = build_corpus(["js:fakepkg"], tmp_path / "out")
    assert read_documents(tmp_path / "out/train.txt") == [
        "module.exports = function fake(x) { return x; };\n"
    ]
    assert report.sources[0]["version"] == "1.2.3"
    assert (tmp_path / "home/npm/fakepkg/package/index.js").is_file()
    # The cached copy is reused, so npm is not needed a second time ...
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    build_corpus(["js:fakepkg"], tmp_path / "out2")
    # ... but a new package without npm is a clear error.
    with pytest.raises(UserError, match="npm is not installed"):
        build_corpus(["js:otherpkg"], tmp_path / "out3")


def test_read_documents_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(DOC_SEPARATOR.join(["a = 1\n", "b = 2\n"]))
    assert read_documents(path) == ["a = 1\n", "b = 2\n"]
    path.write_text("")
    assert read_documents(path) == []
