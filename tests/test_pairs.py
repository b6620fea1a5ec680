from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from slmlab.errors import UserError
from slmlab.train.pairs import (
    FunctionPair,
    build_pairs,
    curriculum_order,
    cyclomatic_complexity,
    extract_pairs,
    read_pairs,
)

PYTHON = '''"""Module docstring: not a function."""
import os


def add(a, b):
    """Add two numbers.

    Args:
        a: the first.
    """

    return a + b


def count_positive(xs):
    \'\'\'Count the positive
    numbers in `xs`.\'\'\'
    n = 0
    for x in xs:
        if x > 0:
            n += 1
    return n


def undocumented(x):
    return x * 2


@cache
def outer(x):
    r"""Apply a nested helper."""
    def inner(y):
        """Inner doc: already part of outer's code."""
        return y + 1
    return inner(x)


class Box:
    """A box."""

    def get(self, default=None):
        """Return the value, or `default`.

        More text.
        """
        if self.v is None:
            return default
        return self.v

    def stub(self):
        """Only a docstring: nothing to generate."""
'''

JAVA = """package demo;

/** A class comment is not a method's. */
public abstract class Shapes {
    private final int n;

    /**
     * Creates shapes with {@code n} sides.
     *
     * @param n the number of sides
     */
    public Shapes(int n) {
        this.n = n;
    }

    /**
     * Returns the sum of the first {@link #n} numbers,
     * see {@link java.util.List the list}.
     * <p>
     * Second paragraph.
     * @return the sum
     */
    @Override
    public synchronized int sum(List<String> xs) throws IOException {
        int s = 0;
        for (int i = 0; i < n; i++) {
            if (i % 2 == 0) s += i;
        }
        return s;
    }

    // A line comment is not Javadoc.
    int plain() { return 1; }

    /** No body, nothing to learn. */
    abstract void noBody();

    /** {@inheritDoc} */
    public String toString() { return "x"; }
}
"""

JAVASCRIPT = """'use strict';

/**
 * Clamp a number between `lo` and `hi`.
 *
 * @param {number} x
 * @returns {number}
 */
function clamp(x, lo, hi) {
  if (x < lo) return lo;
  return x > hi ? hi : x;
}

// Double every element
// of an array.
export const doubleAll = (xs) => {
  return xs.map((x) => x * 2);
};

const y = 1; // a trailing comment does not document the next function
function notDocumented() {
  return 2;
}

class Stack {
  /** Push an item, returning the new size. */
  push(item) {
    this.items.push(item);
    return this.items.length;
  }
}
"""


def _by_name(pairs: list[FunctionPair]) -> dict[str, FunctionPair]:
    return {p.name: p for p in pairs}


def test_python_extraction() -> None:
    pairs = extract_pairs(PYTHON, "python", "mod.py")
    assert [p.name for p in pairs] == ["add", "count_positive", "outer", "get"]
    by = _by_name(pairs)
    assert by["add"].doc == "Add two numbers."
    assert by["count_positive"].doc == "Count the positive numbers in `xs`."
    assert by["outer"].doc == "Apply a nested helper."
    assert by["get"].doc == "Return the value, or `default`."
    # The docstring and the blank line after it are gone; the method is dedented.
    assert by["add"].code == "def add(a, b):\n    return a + b"
    assert by["get"].code == (
        "def get(self, default=None):\n    if self.v is None:\n        return default\n    return self.v"
    )
    assert by["outer"].code.startswith("@cache\ndef outer(x):\n    def inner(y):\n")
    assert by["get"].signature == "def get(self, default=None):"
    assert by["add"].start_line == 5 and by["add"].path == "mod.py" and by["add"].lines == 2
    assert all('"""' not in p.code.split("\n")[1] for p in pairs)
    assert by["count_positive"].complexity == 3  # one if, one for


def test_java_extraction() -> None:
    pairs = extract_pairs(JAVA, "java")
    assert [p.name for p in pairs] == ["Shapes", "sum"]
    ctor, method = pairs
    assert ctor.doc == "Creates shapes with n sides."
    assert ctor.code == "public Shapes(int n) {\n    this.n = n;\n}"
    assert method.doc == "Returns the sum of the first n numbers, see the list."
    assert method.signature == "public synchronized int sum(List<String> xs) throws IOException"
    assert method.code.startswith("@Override\npublic synchronized int sum(")
    assert method.code.endswith("    return s;\n}")
    assert (ctor.complexity, method.complexity) == (1, 3)  # the method has a for and an if


def test_javascript_extraction() -> None:
    pairs = extract_pairs(JAVASCRIPT, "js", "util.js")
    assert [p.name for p in pairs] == ["clamp", "doubleAll", "push"]
    clamp, double, push = pairs
    assert clamp.doc == "Clamp a number between `lo` and `hi`."
    assert double.doc == "Double every element of an array."
    assert push.doc == "Push an item, returning the new size."
    assert clamp.signature == "function clamp(x, lo, hi)"
    assert double.signature == "const doubleAll = (xs) =>"
    assert double.code == "const doubleAll = (xs) => {\n  return xs.map((x) => x * 2);\n};"
    assert push.code == "push(item) {\n  this.items.push(item);\n  return this.items.length;\n}"
    assert clamp.complexity == 3  # an if and a ternary


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "def f(xs):\n    for x in xs:\n        if x:\n            return x\n    return None"),
        ("java", "int f(int[] xs) {\n  for (int x : xs) {\n    if (x > 0) return x;\n  }\n  return 0;\n}"),
        (
            "javascript",
            "function f(xs) {\n  for (const x of xs) {\n    if (x) return x;\n  }\n  return 0;\n}",
        ),
        ("javascript", "find(xs) {\n  for (const x of xs) {\n    if (x) return x;\n  }\n  return 0;\n}"),
    ],
)
def test_complexity_of_if_and_for_is_3(language: str, code: str) -> None:
    assert cyclomatic_complexity(code, language) == 3
    assert cyclomatic_complexity(code.replace("if", "iff"), language) == 2


def _function(i: int, branches: int = 0, body_lines: int = 2, indent: str = "    ") -> str:
    """A documented Python function with `branches` ifs (complexity 1 + branches)."""
    lines = [f"def f{i}(x):", f'{indent}"""Function number {i}."""']
    lines += [f"{indent}if x == {b}:\n{indent}{indent}return {b}" for b in range(branches)]
    lines += [f"{indent}y{k} = x + {i * 100 + k}" for k in range(body_lines)]
    return "\n".join(lines) + "\n"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_dedup_keeps_one_of_exact_duplicates(tmp_path: Path) -> None:
    one = _function(1) + "\n\n" + _function(2)
    # The same function again, with other indentation and trailing spaces: still a duplicate.
    again = _function(1, indent="  ").replace("\n", "   \n") + "\n\n" + _function(3)
    src = _tree(tmp_path, {"a.py": one, "b.py": again})
    ds = build_pairs([src], "python", min_lines=1, test_fraction=0.0)
    assert sorted(p.name for p in ds.train) == ["f1", "f2", "f3"]
    assert ds.stats["duplicate"] == 1
    assert next(p for p in ds.train if p.name == "f1").path == f"python:{src}::a.py"


def test_split_is_disjoint_deterministic_and_nested(tmp_path: Path) -> None:
    src = _tree(tmp_path, {f"m{i}.py": _function(i) for i in range(80)})
    ds = build_pairs(src, "python", test_fraction=0.25)
    again = build_pairs(str(src), "python", test_fraction=0.25)
    train_ids, test_ids = [p.id for p in ds.train], [p.id for p in ds.test]
    assert not set(train_ids) & set(test_ids)
    assert len(train_ids) + len(test_ids) == 80 and 8 <= len(test_ids) <= 32
    assert ([p.id for p in again.train], [p.id for p in again.test]) == (train_ids, test_ids)
    assert [p.id for p in build_pairs(src, "python", seed=1, test_fraction=0.25).test] != test_ids
    small = build_pairs(src, "python", test_fraction=0.25, limit=10, test_size=3)
    assert [p.id for p in small.train] == train_ids[:10]
    assert [p.id for p in small.test] == test_ids[:3]
    assert small.stats["over_limit"] == len(train_ids) - 10
    # A function's split does not depend on which other files are present.
    fewer = build_pairs([src / f"m{i}.py" for i in range(40)], "python", test_fraction=0.25)
    assert {p.id for p in fewer.test} == {p.id for p in ds.test if int(p.name[1:]) < 40}


def test_length_and_complexity_filters(tmp_path: Path) -> None:
    files = {
        "short.py": _function(1, body_lines=1),  # 2 lines once the docstring is gone
        "long.py": _function(2, body_lines=30),  # 31 lines
        "simple.py": _function(3, body_lines=3),  # complexity 1, 4 lines
        "branchy.py": _function(4, branches=2),  # complexity 3, 7 lines
        "very.py": _function(5, branches=6),  # complexity 7, 15 lines
    }
    src = _tree(tmp_path, files)
    names = lambda ds: sorted(p.name for p in ds.train + ds.test)  # noqa: E731
    everything = build_pairs(src, "python", min_lines=1, max_lines=100)
    assert names(everything) == ["f1", "f2", "f3", "f4", "f5"]
    assert {p.name: p.complexity for p in everything.train + everything.test} == {
        "f1": 1, "f2": 1, "f3": 1, "f4": 3, "f5": 7
    }  # fmt: skip
    by_lines = build_pairs(src, "python", min_lines=3, max_lines=20)
    assert names(by_lines) == ["f3", "f4", "f5"]
    assert by_lines.stats["too_short"] == 1 and by_lines.stats["too_long"] == 1
    assert names(build_pairs(src, "python", min_lines=1, max_lines=100, max_chars=150)) == ["f1", "f3", "f4"]
    by_cc = build_pairs(src, "python", min_lines=1, max_lines=100, min_complexity=2, max_complexity=5)
    assert names(by_cc) == ["f4"]
    assert by_cc.stats["below_min_complexity"] == 3 and by_cc.stats["above_max_complexity"] == 1
    summary = everything.summary()
    assert summary["train"] + summary["test"] == 5
    merged = [summary["complexity"][s].get("histogram", {}) for s in ("train", "test")]
    assert sum(h.get("1", 0) for h in merged) == 3 and sum(h.get("3-4", 0) for h in merged) == 1


def test_curriculum_order() -> None:
    def pair(name: str, cc: int, lines: int) -> FunctionPair:
        code = "\n".join([f"def {name}():"] + ["    pass"] * (lines - 1))
        return FunctionPair("python", name, "doc", code, f"def {name}():", complexity=cc)

    pairs = [pair("c", 3, 2), pair("a", 1, 5), pair("d", 3, 1), pair("b", 1, 2)]
    assert [p.name for p in curriculum_order(pairs)] == ["b", "a", "d", "c"]


def test_jsonl_round_trip(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {f"m{i}.py": _function(i, branches=i % 3) for i in range(20)})
    ds = build_pairs(src, "python", test_fraction=0.3)
    path = ds.to_jsonl(tmp_path / "pairs.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["split"] for r in rows] == ["train"] * len(ds.train) + ["test"] * len(ds.test)
    back = read_pairs(path)
    assert (back.train, back.test) == (ds.train, ds.test)


def test_java_zip_and_single_file_sources(tmp_path: Path) -> None:
    archive = tmp_path / "src.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("java.base/demo/Shapes.java", JAVA)
        zf.writestr("java.base/demo/README.txt", "not java")
    ds = build_pairs([archive], "java", min_lines=1, test_fraction=0.0)
    assert sorted(p.name for p in ds.train) == ["Shapes", "sum"]
    assert ds.train[0].path.endswith("src.zip::java.base/demo/Shapes.java")
    js = tmp_path / "util.js"
    js.write_text(JAVASCRIPT)
    assert sorted(p.name for p in build_pairs([js], "js", test_fraction=0.0).train) == [
        "clamp",
        "doubleAll",
        "push",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"language": "cobol"}, "unknown corpus language"),
        ({"min_lines": 0}, "min_lines"),
        ({"max_lines": 2}, "max_lines"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"max_complexity": 0}, "max_complexity"),
        ({"limit": -1}, "limit"),
    ],
)
def test_bad_arguments_are_user_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    src = _tree(tmp_path, {"a.py": _function(1)})
    args = {"language": "python"} | kwargs
    with pytest.raises(UserError, match=message):
        build_pairs(src, **args)


def test_bad_sources_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        build_pairs(tmp_path / "missing", "python")
    with pytest.raises(UserError, match="no sources"):
        build_pairs([], "python")
    with pytest.raises(UserError, match="is java"):
        build_pairs(["java:/x/src.zip"], "python")
    src = _tree(tmp_path / "undocumented", {"a.py": "def f(x):\n    return x\n"})
    with pytest.raises(UserError, match="no python function pairs left"):
        build_pairs(src, "python")
    with pytest.raises(UserError, match="does not exist"):
        read_pairs(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"split": "train", "name": "f"}\n')
    with pytest.raises(UserError, match="bad.jsonl:1"):
        read_pairs(bad)
