"""Syntax checking: the real checkers, the tree-sitter fallback, and "unchecked" when nothing can look.

The helpers are real processes (a JVM, a node); the whole file runs in a few seconds because each is
started once and reused.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

import slmlab.execute.syntax as syntax
import slmlab.execute.syntax.helper as warm
import slmlab.execute.syntax.java as syntax_java
from slmlab.execute.syntax import SyntaxVerdict, available_checkers, check_many, check_syntax

# (name, code, expected line of the first error or None when valid)
PYTHON_VALID = [
    ("function", "def add(a, b):\n    return a + b\n"),
    ("async", "import asyncio\n\nasync def f():\n    await asyncio.sleep(0)\n"),
    (
        "match",
        "def f(x):\n    match x:\n        case [a, *rest]:\n            return a\n        case _:\n            return None\n",
    ),
    ("walrus_fstring", "if (n := len('ab')) > 1:\n    print(f'{n=}')\n"),
    ("class_decorator", "import functools\n\n@functools.total_ordering\nclass A:\n    x: int = 1\n"),
    ("invalid_escape_is_only_a_warning", "import re\npattern = re.compile('\\d+')\n"),
]
PYTHON_INVALID = [
    ("missing_colon", "def f(x)\n    return x\n", 1),
    ("unbalanced_paren", "x = 1\nprint((x + 2)\n", 2),
    ("bad_indent", "def f():\nreturn 1\n", 2),
    ("keyword_as_name", "class = 3\n", 1),
    ("return_outside_function", "x = 1\nreturn x\n", 2),  # only the compiler, not the grammar, sees it
    ("null_byte", "x = 1\ny = 2\0\n", 2),
]

JAVA_VALID = [
    ("class", "public class Solution {\n    public int add(int a, int b) { return a + b; }\n}\n"),
    (
        "missing_import_is_not_a_syntax_error",
        "import com.example.Missing;\n\nclass A {\n    Missing m = new Missing();\n    Unknown u;\n}\n",
    ),
    (
        "generics_lambda",
        "import java.util.*;\nclass A {\n    List<Integer> f(List<Integer> xs) {\n"
        "        return xs.stream().map(x -> x * 2).toList();\n    }\n}\n",
    ),
    (
        "record_enum_interface",
        "record P(int x, int y) {}\nenum Color { RED, GREEN }\ninterface Shape { double area(); }\n",
    ),
    (
        "switch_expression_text_block",
        'class A {\n    String f(int d) {\n        String s = """\n            hi\n            """;\n'
        '        return switch (d) { case 1 -> s; default -> "x"; };\n    }\n}\n',
    ),
]
JAVA_BARE_METHOD = "public static int add(int a, int b) {\n    return a + b;\n}\n"
JAVA_INVALID = [
    ("missing_semicolon", "class A {\n    int f() {\n        int x = 1\n        return x;\n    }\n}\n", 3),
    ("unbalanced_braces", "class A {\n    void f() {\n        if (true) {\n    }\n}\n", 5),
    ("keyword_as_name", "class A {\n    void f() {\n        int class = 5;\n    }\n}\n", 3),
    ("modifier_order", "class A {\n    public void static f() {}\n}\n", 2),
    ("bare_method_missing_semicolon", "int f() {\n    int x = 1\n    return x;\n}\n", 2),
    ("statement_in_class_body", 'class A {\n    System.out.println("x");\n}\n', 2),
]

JS_VALID = [
    ("optional_chaining_nullish", "const a = {b: null};\nconst c = a?.b?.c ?? 'default';\n"),
    (
        "class_private_static_block",
        "class Counter {\n  #n = 0;\n  static zero;\n  static { Counter.zero = new Counter(); }\n"
        "  inc() { return ++this.#n; }\n  get value() { return this.#n; }\n}\n",
    ),
    (
        "async_arrow_destructuring",
        "const f = async ({a, ...rest}, [b] = []) => {\n  await null;\n  return {a, b, ...rest};\n};\n",
    ),
    (
        "bigint_regex_groups",
        "const big = 10n ** 20n;\nconst m = /(?<year>\\d{4})/.exec('2024')?.groups.year;\n",
    ),
    ("commonjs", "function add(a, b) { return a + b; }\nmodule.exports = { add };\n"),
    ("es_module", "import fs from 'fs';\nexport function read(p) { return fs.readFileSync(p); }\n"),
]
JS_INVALID = [
    ("unclosed_brace", "function f() {\n  return 1;\n", 3),
    ("missing_initializer", "const x;\n", 1),
    ("duplicate_let", "let a = 1;\nlet a = 2;\n", 2),
    ("top_level_return", "const x = 1;\nreturn x;\n", 2),
    ("bad_token", "let x = 1 +;\n", 1),
    ("optional_chain_assignment", "const a = {};\na?.b = 1;\n", 2),
    ("keyword_as_name", "var class = 1;\n", 1),
]
# Errors the grammar alone also sees. The rest need the real compiler: e.g. tree-sitter's Java and
# JavaScript grammars accept `class` as a variable name, and none of them knows early errors.
GRAMMAR_DETECTS = {
    "python": {"missing_colon", "unbalanced_paren", "keyword_as_name", "null_byte"},
    "java": {"missing_semicolon", "unbalanced_braces", "modifier_order", "bare_method_missing_semicolon"},
    "javascript": {"unclosed_brace", "bad_token"},
}

needs_javac = pytest.mark.skipif(shutil.which("javac") is None, reason="no javac on PATH")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH")

FIXTURES = {
    "python": (PYTHON_VALID, PYTHON_INVALID),
    "java": (JAVA_VALID, JAVA_INVALID),
    "javascript": (JS_VALID, JS_INVALID),
}
REAL = {"python": "python-compile", "java": "javac", "javascript": "node-vm"}


@pytest.fixture(autouse=True, scope="module")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Compile the Java helper into a throwaway SLMLAB_HOME, and stop the helpers after this module."""
    old = os.environ.get("SLMLAB_HOME")
    os.environ["SLMLAB_HOME"] = str(tmp_path_factory.mktemp("slmlab-home"))
    syntax_java.compiled_server.cache_clear()
    yield
    syntax.close_checkers()
    syntax_java.compiled_server.cache_clear()
    if old is None:
        os.environ.pop("SLMLAB_HOME", None)
    else:
        os.environ["SLMLAB_HOME"] = old


def _no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a machine without a JDK or node."""
    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *a, **k: None if name in ("java", "javac", "node") else real_which(name, *a, **k),
    )


def _no_treesitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate tree-sitter grammars not being installed."""
    for module in ("tree_sitter_python", "tree_sitter_java", "tree_sitter_javascript"):
        monkeypatch.setitem(sys.modules, module, None)


def _assert_real(language: str) -> None:
    valid, invalid = FIXTURES[language]
    verdicts = check_many([case[1] for case in valid + invalid], language)
    for (name, _), verdict in zip(valid, verdicts[: len(valid)], strict=True):
        assert verdict.status == "valid" and verdict.ok, (name, verdict)
        assert verdict.checker == REAL[language] and not verdict.grammar_only, (name, verdict)
    for (name, _, line), verdict in zip(invalid, verdicts[len(valid) :], strict=True):
        assert verdict.status == "invalid" and not verdict.ok, (name, verdict)
        assert verdict.line == line, (name, verdict)
        assert verdict.message, (name, verdict)


# --- the real checkers -----------------------------------------------------------------------------


def test_python_compile_gets_every_fixture_right() -> None:
    _assert_real("python")


@needs_javac
def test_javac_gets_every_fixture_right() -> None:
    _assert_real("java")


@needs_node
def test_node_gets_every_fixture_right() -> None:
    _assert_real("javascript")


@needs_javac
def test_bare_java_method_is_valid_when_wrapped_and_says_so() -> None:
    verdict = check_syntax(JAVA_BARE_METHOD, "java")
    assert verdict.ok and verdict.wrapped and "__Wrapper" in verdict.message
    assert not check_syntax(JAVA_VALID[0][1], "java").wrapped


@needs_javac
def test_bare_method_error_line_is_in_the_original_source() -> None:
    # The wrapper adds a line at the top; the reported line must not include it.
    verdict = check_syntax("void f() {\n  int x = 1;\n  x++\n}\n", "java")
    assert verdict.status == "invalid" and verdict.line == 3 and verdict.wrapped


@needs_node
def test_es_module_is_reported_as_such() -> None:
    assert check_syntax("export default 1;\n", "js").message == "valid as an ES module"


def test_aliases_and_single_check() -> None:
    assert check_syntax("x = 1", "py").ok
    assert check_syntax("x = 1", " Python ").ok
    if shutil.which("node"):
        assert check_syntax("let x = 1;", "js").checker == "node-vm"


def test_unknown_language_is_unchecked() -> None:
    verdict = check_syntax("print('hi')", "cobol")
    assert verdict.status == "unchecked" and not verdict.ok and verdict.checker == "none"
    assert "unknown language 'cobol'" in verdict.message


def test_bad_checker_argument_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown checker"):
        check_syntax("x = 1", "python", checker="pyflakes")
    with pytest.raises(ValueError, match="does not check python"):
        check_syntax("x = 1", "python", checker="javac")


def test_empty_batch() -> None:
    assert check_many([], "java") == []


# --- fallbacks: tree-sitter when the real checker is missing, then "unchecked" -----------------------


@pytest.mark.parametrize("language", ["java", "javascript"])
def test_without_the_real_checker_tree_sitter_answers_grammar_only(
    monkeypatch: pytest.MonkeyPatch, language: str
) -> None:
    _no_tools(monkeypatch)
    assert available_checkers()[language] == "tree-sitter (grammar only)"
    _assert_grammar_only(language, check_many)


@pytest.mark.parametrize("language", ["python", "java", "javascript"])
def test_tree_sitter_can_be_chosen_explicitly(language: str) -> None:
    _assert_grammar_only(language, lambda codes, lang: check_many(codes, lang, checker="tree-sitter"))


def _assert_grammar_only(language: str, run) -> None:
    valid, invalid = FIXTURES[language]
    verdicts = run([case[1] for case in valid + invalid], language)
    assert all(v.grammar_only and v.checker == "tree-sitter (grammar only)" for v in verdicts), verdicts
    assert all(v.status in ("valid", "invalid") for v in verdicts)
    by_name = dict(zip([name for name, *_ in valid + invalid], verdicts, strict=True))
    for name, *_ in valid:
        # The grammar knows these constructs (bare Java methods included), so none is a false alarm.
        assert by_name[name].ok, (name, by_name[name])
    for name in GRAMMAR_DETECTS[language]:
        assert by_name[name].status == "invalid" and by_name[name].line is not None, (name, by_name[name])


@pytest.mark.parametrize("language", ["java", "javascript"])
def test_with_no_checker_at_all_nothing_passes(monkeypatch: pytest.MonkeyPatch, language: str) -> None:
    _no_tools(monkeypatch)
    _no_treesitter(monkeypatch)
    assert available_checkers()[language] == "unchecked"
    valid, invalid = FIXTURES[language]
    for verdict in check_many([case[1] for case in valid + invalid], language):
        assert verdict.status == "unchecked" and not verdict.ok and verdict.checker == "none"
        assert "no javac on PATH" in verdict.message or "no node on PATH" in verdict.message


def test_explicit_checker_that_is_missing_is_unchecked_not_a_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_tools(monkeypatch)
    verdict = check_syntax("class A {}", "java", checker="javac")
    assert verdict.status == "unchecked" and not verdict.ok
    _no_treesitter(monkeypatch)
    verdict = check_syntax("x = 1", "python", checker="tree-sitter")
    assert verdict.status == "unchecked" and "tree_sitter_python is not installed" in verdict.message


def test_available_checkers_names_every_language() -> None:
    found = available_checkers()
    assert set(found) == {"python", "java", "javascript"}
    assert found["python"] == "python-compile"


# --- the warm helpers ------------------------------------------------------------------------------


def _helper_for(checker: str) -> warm.WarmHelper:
    key = {"javac": "JavaSyntaxServer", "node-vm": "syntax_server.js"}[checker]
    return next(h for h in warm._helpers.values() if any(key in part for part in h.argv))


@pytest.mark.parametrize(
    ("language", "checker"),
    [
        pytest.param("java", "javac", marks=needs_javac),
        pytest.param("javascript", "node-vm", marks=needs_node),
    ],
)
def test_a_killed_helper_is_restarted(language: str, checker: str) -> None:
    # Earlier tests may have left helpers for another SLMLAB_HOME (another compiled server): start clean.
    warm.close_checkers()
    assert check_syntax(FIXTURES[language][0][0][1], language).ok
    helper = _helper_for(checker)
    old_pid = helper.pid
    assert old_pid is not None
    os.kill(old_pid, 9)
    verdict = check_syntax(FIXTURES[language][0][0][1], language)
    assert verdict.ok and verdict.checker == checker
    assert helper.pid not in (None, old_pid)


@needs_node
def test_threads_share_one_helper() -> None:
    codes = [code for _, code in JS_VALID] * 20 + ["let = ;"]
    expected = [v.status for v in check_many(codes, "js")]
    results: list[list[str]] = []

    def worker() -> None:
        results.append([v.status for v in check_many(codes, "js")])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


@needs_node
def test_large_batch_is_pipelined_without_deadlock() -> None:
    # Far more than a pipe buffer in each direction.
    codes = [f"const v{i} = {{a: [{', '.join(map(str, range(50)))}]}};" for i in range(3000)] + ["}"]
    verdicts = check_many(codes, "javascript")
    assert all(v.ok for v in verdicts[:-1]) and verdicts[-1].status == "invalid"


def test_close_checkers_leaves_no_process() -> None:
    if not shutil.which("node"):
        pytest.skip("no node on PATH")
    check_syntax("1", "js")
    procs = [h._proc for h in warm._helpers.values() if h._proc is not None]
    syntax.close_checkers()
    assert procs and all(p.poll() is not None for p in procs)  # exited and reaped
    assert warm._helpers == {}
    assert check_syntax("1", "js").ok  # and a later check starts afresh


# WarmHelper on its own, with tiny Python stand-ins for the JVM and node.
_READY = "import sys; sys.stdout.write('{\"ready\": true}\\n'); sys.stdout.flush();"
_ECHO = (
    _READY
    + "\nwhile True:\n    n = sys.stdin.buffer.readline()\n    if not n: break\n"
    + "    src = sys.stdin.buffer.read(int(n))\n"
    + "    if src == b'crash': sys.exit(7)\n"
    + "    if src == b'hang': import time; time.sleep(60)\n"
    + '    sys.stdout.write(\'{"status": "valid", "echo": %d}\\n\' % len(src)); sys.stdout.flush()\n'
)


def _fake(script: str, **kwargs) -> warm.WarmHelper:
    return warm.WarmHelper("fake helper", [sys.executable, "-c", script], **kwargs)


def test_helper_times_out_kills_and_carries_on() -> None:
    helper = _fake(_ECHO, request_timeout=0.5)
    try:
        replies = helper.request_many([b"a", b"hang", b"abc"])
        assert replies[0]["echo"] == 1 and replies[2]["echo"] == 3
        assert replies[1]["status"] == "error" and "timed out" in replies[1]["message"]
    finally:
        helper.close()
    assert helper.pid is None


def test_helper_crash_is_retried_once_then_reported() -> None:
    helper = _fake(_ECHO)
    try:
        replies = helper.request_many([b"a", b"crash", b"ab"])
        assert replies[0]["echo"] == 1 and replies[2]["echo"] == 2
        assert replies[1]["status"] == "error" and "exited with status 7" in replies[1]["message"]
    finally:
        helper.close()


def test_helper_gives_up_a_batch_after_repeated_failures() -> None:
    helper = _fake(_ECHO, request_timeout=0.2)
    try:
        replies = helper.request_many([b"hang"] * 3 + [b"a"] * 50)
        assert [r["status"] for r in replies] == ["error"] * 53
        assert "gave up after 3 failed requests in a row" in replies[-1]["message"]
        assert helper.request_many([b"abcd"])[0]["echo"] == 4  # the next batch starts afresh
    finally:
        helper.close()


def test_helper_that_cannot_start_says_why_and_is_not_retried() -> None:
    helper = _fake("import sys; sys.stderr.write('boom: no compiler'); sys.exit(3)")
    replies = helper.request_many([b"a", b"b"])
    assert all(r["status"] == "error" for r in replies)
    assert "exited with status 3" in replies[0]["message"] and "boom: no compiler" in replies[0]["message"]
    assert helper.broken is not None
    missing = warm.WarmHelper("missing", ["/nonexistent/java"])
    assert "could not start" in missing.request_many([b"x"])[0]["message"]


@needs_javac
def test_java_helper_failure_is_unchecked_not_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    # A JVM that cannot run the helper must not turn into a pass.
    monkeypatch.setattr(syntax_java, "JVM_OPTIONS", ("-Xmx256m", "-XX:+NoSuchOption"))
    verdict = check_syntax("class A {}", "java")
    assert verdict.status == "unchecked" and verdict.checker == "javac" and not verdict.ok
    assert "failed to start" in verdict.message


@needs_javac
def test_java_helper_is_compiled_once_into_the_cache() -> None:
    check_syntax("class A {}", "java")
    javac = shutil.which("javac")
    assert javac is not None
    classes = syntax_java.compiled_server(javac)
    assert (classes / "JavaSyntaxServer.class").is_file()
    assert classes.parent == Path(os.environ["SLMLAB_HOME"]) / "javac"


def test_verdict_ok_only_for_valid() -> None:
    assert SyntaxVerdict("valid", "x").ok
    assert not SyntaxVerdict("invalid", "x").ok
    assert not SyntaxVerdict("unchecked", "none").ok
