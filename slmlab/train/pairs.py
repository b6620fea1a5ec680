"""Function-level (doc, code) pairs for LoRA fine-tuning, cut out of real code with tree-sitter.

    ds = build_pairs(["python:json", "python:email"], "python", limit=300, test_size=100)
    ds.to_jsonl("pairs.jsonl"); ds = read_pairs("pairs.jsonl")
    curriculum_order(ds.train)        # simple -> complex, as seed 001's future work suggests

Extraction rules (CodeSearchNet-style):
  - python: every `def` (methods included) whose body starts with a docstring and has code after it.
    The docstring's lines are removed from `code` (so the model must write code, not copy the doc).
  - java: method and constructor declarations with a body, whose previous sibling is a `/** */`
    Javadoc comment (blank lines between are allowed, as the javadoc tool allows them).
  - javascript: function declarations, methods (class bodies, object shorthand), `const|let|var f = function/arrow`
    declarations (also under `export`), preceded by a `/** */` comment or a block of `//` line comments
    ending on the line just above (a trailing `x(); // note` comment does not start a block).
  - `doc` is the first paragraph of the comment in every language: it stops at a blank line, a block
    tag (`@param`, `:param x:`, `Args:`, `>>>`, ...) or, in Javadoc, an HTML block (`<p>`, `<pre>`, ...).
    Comment markers, HTML tags and `{@code x}`-style inline tags are removed, whitespace collapsed to
    single spaces. A function whose doc is then empty (only tags, `{@inheritDoc}`) is skipped.
  - A documented function inside another extracted function is skipped: its code is already in the
    outer pair. Functions in undocumented wrappers (closures, IIFEs) are kept.
  - Functions with a parse error, and Java/JS functions without a body, are skipped.
  - `code` is dedented by the indentation of the function's first line and right-stripped per line.
  - `complexity` is lizard's cyclomatic complexity summed over all functions lizard finds in `code`
    (1 + every decision point, nested functions and callbacks included).

build_pairs: sources are resolved by the corpus builder's resolvers (directories, packages, stdlib,
JDK src.zip, npm packages) plus single files; pairs are filtered by length, exact duplicates (code
with whitespace collapsed) dropped, then complexity filtered. The split is a pure function of (seed,
id), and each split is ordered by that same hash, so `limit=50` is a subset of `limit=150`.
"""

from __future__ import annotations

import ast
import hashlib
import html
import inspect
import json
import re
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from slmlab.atomic import atomic_writer
from slmlab.errors import UserError
from slmlab.execute.syntax import treesitter
from slmlab.train.corpus import (
    LANGUAGES,
    MB,
    CorpusSource,
    SourceFile,
    normalise,
    resolve_source,
    split_score,
)

__all__ = [
    "FunctionPair",
    "PairsDataset",
    "build_pairs",
    "curriculum_order",
    "cyclomatic_complexity",
    "extract_pairs",
    "read_pairs",
]

MAX_FILE_BYTES = 1 * MB  # larger source files are generated tables, not code worth learning from
_ID_CHARS = 16


@dataclass(frozen=True)
class FunctionPair:
    """One documented function. `id` and `lines` are derived from `language` and `code`."""

    language: str
    name: str
    doc: str
    code: str
    signature: str
    path: str = ""
    start_line: int = 0  # 1-based line of the function (its decorators/annotations) in `path`
    complexity: int = 1
    id: str = field(init=False)
    lines: int = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(f"{self.language}\n{self.code}".encode()).hexdigest()
        object.__setattr__(self, "id", digest[:_ID_CHARS])
        object.__setattr__(self, "lines", self.code.count("\n") + 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> FunctionPair:
        names = {f.name for f in fields(cls) if f.init}
        missing = {"language", "name", "doc", "code", "signature"} - row.keys()
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in row.items() if k in names})


# --- comments -> doc ---------------------------------------------------------------------------

# Where the description paragraph ends: block tags of Javadoc/JSDoc, Sphinx/Google/numpy sections, doctests.
_STOP = re.compile(
    r"^(@\w|:\w[^:]*:|>>>|(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Throws|Examples?|"
    r"Notes?|See Also|Attributes|Keyword Arguments|Usage)\s*:?\s*$)"
)
_HTML_BLOCK = re.compile(r"^<(p|pre|ul|ol|li|table|blockquote|h\d|dl|hr|div)\b", re.IGNORECASE)
# Only known HTML tags are stripped, so generics such as `List<String>` in a doc survive.
_HTML_TAG = re.compile(
    r"</?(p|a|b|i|u|s|em|strong|code|pre|tt|var|kbd|samp|cite|small|big|sup|sub|span|div|br|hr|ul|ol|li|"
    r"table|thead|tbody|tr|td|th|caption|h\d|blockquote|dl|dt|dd|img)\b[^<>]*>",
    re.IGNORECASE,
)
_INLINE_TAG = re.compile(r"\{@(\w+)\s*([^{}]*)\}")
# Tool directives are not documentation.
_DIRECTIVE = re.compile(r"^(eslint|jshint|jslint|jscs|global\s|istanbul|c8\s|prettier-ignore|@ts-|tslint|#)")


def _inline(match: re.Match[str]) -> str:
    tag, arg = match.group(1), match.group(2).strip()
    if tag == "inheritDoc":
        return ""
    if tag in ("link", "linkplain"):
        ref, _, label = arg.partition(" ")
        return label.strip() or ref.lstrip("#").replace("#", ".")
    return arg


def _first_paragraph(lines: Iterable[str], html_blocks: bool = False) -> str:
    out: list[str] = []
    for raw in lines:
        line = raw.strip()
        if _STOP.match(line):
            break
        if not line or (html_blocks and out and _HTML_BLOCK.match(line)):
            if out:
                break
            continue
        out.append(line)
    text = " ".join(out)
    if html_blocks:
        text = _INLINE_TAG.sub(_inline, _HTML_TAG.sub("", text))
        text = html.unescape(text)
    text = " ".join(text.split())
    return text if any(c.isalnum() for c in text) else ""


def _block_comment_doc(comment: str) -> str:
    """The description of a `/** ... */` comment (Javadoc or JSDoc)."""
    body = comment.removeprefix("/**").removesuffix("*/")
    lines = []
    for line in body.split("\n"):
        line = line.strip()
        if line.startswith("*"):
            line = line[1:]
        lines.append(line)
    return _first_paragraph(lines, html_blocks=True)


def _line_comments_doc(comments: Sequence[str]) -> str:
    lines = [c.removeprefix("//").lstrip("/").strip() for c in comments]
    return _first_paragraph(line for line in lines if not _DIRECTIVE.match(line))


def _python_doc(literal: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in old docstrings warn
            value = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return ""
    if not isinstance(value, str):
        return ""  # a bytes literal is not a docstring
    return _first_paragraph(inspect.cleandoc(value).split("\n"))


# --- tree-sitter -------------------------------------------------------------------------------

_QUERIES = {
    "python": "(function_definition) @f",
    "java": "[(method_declaration) (constructor_declaration)] @f",
    "javascript": "[(function_declaration) (generator_function_declaration) (method_definition)"
    " (lexical_declaration) (variable_declaration)] @f",
}
_JS_FUNCTION_VALUES = {"function_expression", "function", "arrow_function", "generator_function"}
_compiled: dict[str, Any] = {}


def _parse(text: str, lang: str) -> tuple[bytes, Any, Any]:
    """(source bytes, tree, compiled query), with the project's shared tree-sitter parser."""
    reason = treesitter.unavailable_reason(lang)
    if reason is not None:
        raise UserError(f"cannot extract {lang} functions: {reason}; pip install -e . in this environment")
    parser, lock = treesitter.parser_for(lang)
    data = text.encode("utf-8", "replace")
    with lock:
        tree = parser.parse(data)
        if lang not in _compiled:
            _compiled[lang] = parser.language.query(_QUERIES[lang])
    return data, tree, _compiled[lang]


def _text(node: Any) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _cut(data: bytes, start: int, end: int, drop_rows: set[int] | None = None, first_row: int = 0) -> str:
    """data[start:end] as a snippet: dedented by its first line's indentation, lines right-stripped.
    `drop_rows` are file rows to leave out (a Python docstring); `first_row` is the row of `start`."""
    line_start = data.rfind(b"\n", 0, start) + 1
    before = data[line_start:start].decode("utf-8", "replace")
    indent = before[: len(before) - len(before.lstrip(" \t"))]
    lines = data[start:end].decode("utf-8", "replace").split("\n")
    out = []
    for i, line in enumerate(lines):
        if drop_rows and first_row + i in drop_rows:
            continue
        # Lines without the indentation (inside a multi-line string) are kept as they are.
        out.append((line.removeprefix(indent) if i else line).rstrip())
    return "\n".join(out).strip("\n")


def _header(data: bytes, start: int, end: int) -> str:
    return " ".join(data[start:end].decode("utf-8", "replace").split())


@dataclass
class _Found:
    name: str
    doc: str
    code: str
    signature: str
    start: int  # byte range of the pair's code, for the nesting rule
    end: int
    row: int


def _python(node: Any, data: bytes) -> _Found | str:
    anchor = node.parent if node.parent is not None and node.parent.type == "decorated_definition" else node
    body = node.child_by_field_name("body")
    name = node.child_by_field_name("name")
    if body is None or name is None:
        return "parse_error"
    statements = [c for c in body.named_children if c.type != "comment"]
    first = statements[0] if statements else None
    if (
        first is None
        or first.type != "expression_statement"
        or first.named_child_count != 1
        or first.named_children[0].type not in ("string", "concatenated_string")
    ):
        return "undocumented"
    doc = _python_doc(_text(first.named_children[0]))
    if not doc:
        return "empty_doc"
    if len(statements) == 1:
        return "no_code"  # only a docstring (an abstract method, a stub)
    # The docstring must own its lines (`def f(): "doc"; return 1` cannot lose it cleanly).
    line_start = data.rfind(b"\n", 0, first.start_byte) + 1
    line_end = data.find(b"\n", first.end_byte)
    line_end = len(data) if line_end < 0 else line_end
    if data[line_start : first.start_byte].strip() or data[first.end_byte : line_end].strip():
        return "inline_docstring"
    drop = set(range(first.start_point[0], first.end_point[0] + 1))
    # Blank lines right after the docstring go with it.
    row, pos = first.end_point[0] + 1, line_end + 1
    while pos < node.end_byte:
        nxt = data.find(b"\n", pos)
        nxt = len(data) if nxt < 0 else nxt
        if data[pos:nxt].strip():
            break
        drop.add(row)
        row, pos = row + 1, nxt + 1
    colon = next((c for c in node.children if c.type == ":"), body)
    return _Found(
        name=_text(name),
        doc=doc,
        code=_cut(data, anchor.start_byte, node.end_byte, drop, anchor.start_point[0]),
        signature=_header(data, node.start_byte, colon.end_byte),
        start=anchor.start_byte,
        end=node.end_byte,
        row=anchor.start_point[0],
    )


def _is_doc_block(comment: Any) -> bool:
    return (
        comment is not None
        and comment.type in ("block_comment", "comment")
        and _text(comment).startswith("/**")
        and not _text(comment).startswith("/**/")
    )


def _java(node: Any, data: bytes) -> _Found | str:
    body = node.child_by_field_name("body")
    name = node.child_by_field_name("name")
    if body is None or name is None:
        return "no_body"
    comment = node.prev_named_sibling
    if not _is_doc_block(comment):
        return "undocumented"
    doc = _block_comment_doc(_text(comment))
    if not doc:
        return "empty_doc"
    # The signature leaves out annotations (@Override, @SuppressWarnings(...)): they are in `code`.
    head = node.start_byte
    modifiers = node.children[0] if node.children and node.children[0].type == "modifiers" else None
    if modifiers is not None:
        rest = [c for c in modifiers.children if c.type not in ("marker_annotation", "annotation")]
        after = modifiers.next_sibling
        head = rest[0].start_byte if rest else after.start_byte if after is not None else head
    return _Found(
        name=_text(name),
        doc=doc,
        code=_cut(data, node.start_byte, node.end_byte),
        signature=_header(data, head, body.start_byte),
        start=node.start_byte,
        end=node.end_byte,
        row=node.start_point[0],
    )


def _js_doc(anchor: Any) -> str | None:
    """The doc of the comment right above `anchor`: None if there is no such comment."""
    prev = anchor.prev_named_sibling
    if prev is None or prev.type != "comment" or prev.end_point[0] < anchor.start_point[0] - 1:
        return None
    if _is_doc_block(prev):
        return _block_comment_doc(_text(prev))
    comments: list[str] = []
    expected = anchor.start_point[0] - 1
    node = prev
    while node is not None and node.type == "comment" and _text(node).startswith("//"):
        if node.end_point[0] != expected:
            break
        before = node.prev_sibling
        if before is not None and before.end_point[0] == node.start_point[0]:
            break  # a trailing comment of the code before it
        comments.append(_text(node))
        expected = node.start_point[0] - 1
        node = node.prev_named_sibling
    return _line_comments_doc(comments[::-1]) if comments else None


def _js_function(declaration: Any) -> tuple[Any, Any] | None:
    """(declarator, function value) of `const f = function/arrow`, or None for any other declaration."""
    declarators = [c for c in declaration.named_children if c.type == "variable_declarator"]
    value = declarators[0].child_by_field_name("value") if len(declarators) == 1 else None
    if value is None or value.type not in _JS_FUNCTION_VALUES:
        return None
    return declarators[0], value


def _javascript(node: Any, data: bytes) -> _Found | str:
    if node.type in ("lexical_declaration", "variable_declaration"):
        declarator, value = _js_function(node) or (None, None)
        if declarator is None:
            return "parse_error"
        name = declarator.child_by_field_name("name")
        if name is None or name.type != "identifier":
            return "unnamed"  # a destructuring pattern
        body = value.child_by_field_name("body")
    else:
        name = node.child_by_field_name("name")
        body = node.child_by_field_name("body")
    if name is None or body is None:
        return "no_body"
    anchor = node.parent if node.parent is not None and node.parent.type == "export_statement" else node
    doc = _js_doc(anchor)
    if doc is None:
        return "undocumented"
    if not doc:
        return "empty_doc"
    return _Found(
        name=_text(name),
        doc=doc,
        code=_cut(data, node.start_byte, node.end_byte),
        signature=_header(data, node.start_byte, body.start_byte),
        start=node.start_byte,
        end=node.end_byte,
        row=node.start_point[0],
    )


_HANDLERS = {"python": _python, "java": _java, "javascript": _javascript}


def _language(language: str) -> str:
    if not isinstance(language, str):
        raise UserError(f"language must be a string such as 'python', got {type(language).__name__}")
    return CorpusSource(language).lang


def _extract(text: str, lang: str, path: str, stats: Counter[str] | None = None) -> list[FunctionPair]:
    """Pairs with complexity left at 1 (computing it is the slow part; build_pairs filters first)."""
    data, tree, query = _parse(text, lang)
    handler = _HANDLERS[lang]
    nodes = sorted((n for n, _ in query.captures(tree.root_node)), key=lambda n: (n.start_byte, -n.end_byte))
    pairs: list[FunctionPair] = []
    outer_end = -1  # end of the last extracted function: anything starting before it is inside it
    for node in nodes:
        if node.type in ("lexical_declaration", "variable_declaration") and _js_function(node) is None:
            continue  # a variable that does not hold a function
        if stats is not None:
            stats["functions"] += 1
        found = "parse_error" if node.has_error else handler(node, data)
        if isinstance(found, str):
            if stats is not None:
                stats[found] += 1
            continue
        if found.start < outer_end:
            if stats is not None:
                stats["nested"] += 1
            continue
        outer_end = found.end
        if stats is not None:
            stats["extracted"] += 1
        pairs.append(
            FunctionPair(lang, found.name, found.doc, found.code, found.signature, path, found.row + 1)
        )
    return pairs


# --- complexity --------------------------------------------------------------------------------

_LIZARD_FILE = {"python": "snippet.py", "java": "Snippet.java", "javascript": "snippet.js"}
_JS_STANDALONE = re.compile(r"^(export\s+)?(async\s+)?(function\b|const\s|let\s|var\s)")


def cyclomatic_complexity(code: str, language: str) -> int:
    """1 + the decision points lizard counts in `code`, over every function it finds there."""
    import lizard

    lang = _language(language)
    if lang == "javascript" and not _JS_STANDALONE.match(code):
        code = "class _ {\n" + code + "\n}"  # lizard only sees a bare method inside a class body
    try:
        functions = lizard.analyze_file.analyze_source_code(_LIZARD_FILE[lang], code).function_list
    except Exception:  # lizard has no error contract; a snippet it chokes on counts as straight-line
        return 1
    # No function found (lizard could not analyse the snippet): fall back to 1, straight-line code.
    return 1 + sum(max(0, f.cyclomatic_complexity - 1) for f in functions)


def extract_pairs(text: str, language: str, path: str = "") -> list[FunctionPair]:
    """The documented functions of one source file, in source order, with their complexity."""
    lang = _language(language)
    if not isinstance(text, str):
        raise UserError(f"extract_pairs needs source text (str), got {type(text).__name__}")
    return [replace(p, complexity=cyclomatic_complexity(p.code, lang)) for p in _extract(text, lang, path)]


# --- the dataset -------------------------------------------------------------------------------

_BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 7), (8, 10), (11, 20), (21, None))


def _distribution(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    histogram = {}
    for lo, hi in _BUCKETS:
        label = str(lo) if lo == hi else f"{lo}-{hi}" if hi is not None else f"{lo}+"
        histogram[label] = sum(1 for v in ordered if v >= lo and (hi is None or v <= hi))
    return {
        "count": len(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "mean": round(statistics.fmean(ordered), 2),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max": ordered[-1],
        "histogram": histogram,
    }


@dataclass
class PairsDataset:
    """Train and test pairs, each in hash order. `stats` counts files and functions: "functions" seen,
    why some were not extracted ("undocumented", "no_body", "nested", ...), "extracted", then why pairs
    were dropped ("too_short", "duplicate", "below_min_complexity", ...; "over_limit"/"over_test_size"
    count pairs past a cap, whose complexity was never computed) and "kept" (train + test)."""

    train: list[FunctionPair]
    test: list[FunctionPair]
    stats: dict[str, int] = field(default_factory=dict)  # what extraction and filtering kept and dropped
    params: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Counts per split, complexity and length distributions, and the extraction stats."""
        splits = {"train": self.train, "test": self.test}
        return {
            "train": len(self.train),
            "test": len(self.test),
            "languages": dict(Counter(p.language for p in self.train + self.test)),
            "complexity": {k: _distribution([p.complexity for p in v]) for k, v in splits.items()},
            "lines": {k: _distribution([p.lines for p in v]) for k, v in splits.items()},
            "stats": dict(self.stats),
            "seconds": round(self.seconds, 2),
        }

    def to_jsonl(self, path: str | Path) -> Path:
        """One JSON object per pair, train first, each with a "split" field; written atomically."""
        path = Path(path)
        with atomic_writer(path) as f:
            for split, pairs in (("train", self.train), ("test", self.test)):
                for pair in pairs:
                    f.write(json.dumps({"split": split, **pair.to_dict()}, ensure_ascii=False) + "\n")
        return path


def read_pairs(path: str | Path) -> PairsDataset:
    """The dataset written by `PairsDataset.to_jsonl` (ids are recomputed from the code)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"pairs file {path} does not exist: build one with "
            f"slmlab pairs build python:stdlib --language python --out {path} (see slmlab pairs build --help)"
        )
    splits: dict[str, list[FunctionPair]] = {"train": [], "test": []}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                split = row.get("split", "train")
                if split not in splits:
                    raise ValueError(f"unknown split {split!r}")
                splits[split].append(FunctionPair.from_dict(row))
            except (ValueError, TypeError, AttributeError) as e:
                raise UserError(
                    f"{path}:{number} is not a function pair ({e}); rebuild the file with slmlab pairs build"
                ) from None
    return PairsDataset(splits["train"], splits["test"])


def curriculum_order(pairs: Iterable[FunctionPair]) -> list[FunctionPair]:
    """Simple to complex: by cyclomatic complexity, then lines, then characters (id breaks ties)."""
    return sorted(pairs, key=lambda p: (p.complexity, p.lines, len(p.code), p.id))


_SPEC_LANGUAGES = {"python", "py", "java", "javascript", "js", "node"}


def _sources(sources: Any, lang: str) -> list[CorpusSource | Path]:
    if isinstance(sources, (str, Path, CorpusSource)):
        sources = [sources]
    out: list[CorpusSource | Path] = []
    for item in sources or []:
        if isinstance(item, CorpusSource):
            source = item
        elif isinstance(item, (str, Path)):
            text = str(item)
            path = Path(text).expanduser()
            prefix = text.partition(":")[0].lower()
            if path.is_file() and path.suffix in LANGUAGES[lang]:
                out.append(path)  # a single source file: the corpus resolvers take folders and archives
                continue
            if isinstance(item, str) and not path.exists() and prefix in _SPEC_LANGUAGES:
                source = CorpusSource.parse(text)  # "java", "python:json", "js:lodash"
            else:
                source = CorpusSource(lang, text)
        else:
            raise UserError(
                f"a pairs source must be a path, 'LANGUAGE:LOCATION' or CorpusSource, got {item!r}"
            )
        if source.lang != lang:
            raise UserError(f"source {item!s} is {source.lang}, but the pairs are being built for {lang}")
        out.append(source)
    if not out:
        raise UserError(f"no sources given; pass files, folders or e.g. '{lang}:...' (see CorpusSource)")
    return out


def _candidates(
    sources: list[CorpusSource | Path], stack: ExitStack, info: list[dict]
) -> Iterator[SourceFile]:
    for source in sources:
        if isinstance(source, Path):
            path = source.resolve()
            info.append({"kind": "file", "resolved": str(path)})
            yield SourceFile("", "", str(path), path.stat().st_size, path.read_bytes)
            continue
        resolved = resolve_source(source, stack)
        info.append(resolved.info)
        yield from resolved.candidates


def _check(name: str, value: Any, low: float, high: float | None = None, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value >= high):
        bound = f">= {low}" + (f" and < {high}" if high is not None else "")
        raise UserError(f"{name} must be a number {bound}, got {value!r}")


def build_pairs(
    sources: Any,
    language: str,
    *,
    min_lines: int = 3,
    max_lines: int = 60,
    max_chars: int = 4000,
    min_complexity: int = 1,
    max_complexity: int | None = None,
    limit: int | None = None,
    test_size: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> PairsDataset:
    """Extract, filter, deduplicate and split function pairs from `sources` (see the module doc).

    `sources`: paths (file, folder, JDK src.zip), "LANGUAGE:LOCATION" specs as the corpus builder takes
    them ("python:json", "java", "js:lodash") or CorpusSource objects. `limit` caps the train split,
    `test_size` the test split; both take the first pairs in hash order, so a smaller cap is a subset."""
    started = time.perf_counter()
    lang = _language(language)
    _check("min_lines", min_lines, 1)
    _check("max_lines", max_lines, min_lines)
    _check("max_chars", max_chars, 1)
    _check("min_complexity", min_complexity, 1)
    _check("max_complexity", max_complexity, min_complexity, optional=True)
    _check("limit", limit, 0, optional=True)
    _check("test_size", test_size, 0, optional=True)
    _check("test_fraction", test_fraction, 0, 1)
    parsed = _sources(sources, lang)

    stats: Counter[str] = Counter()
    info: list[dict[str, Any]] = []
    seen: set[str] = set()
    kept: list[FunctionPair] = []
    with ExitStack() as stack:
        for c in _candidates(parsed, stack, info):
            stats["files"] += 1
            if c.path.endswith((".min.js", ".min.mjs")):
                stats["files_minified"] += 1
                continue
            if c.size > MAX_FILE_BYTES:
                stats["files_too_large"] += 1
                continue
            try:
                text = normalise(c.read().decode("utf-8"))
            except UnicodeDecodeError:
                stats["files_not_utf8"] += 1
                continue
            for pair in _extract(text, lang, f"{c.source}::{c.path}" if c.source else c.path, stats):
                if pair.lines < min_lines:
                    stats["too_short"] += 1
                elif pair.lines > max_lines:
                    stats["too_long"] += 1
                elif len(pair.code) > max_chars:
                    stats["too_many_chars"] += 1
                elif (key := " ".join(pair.code.split())) in seen:
                    stats["duplicate"] += 1
                else:
                    seen.add(key)
                    kept.append(pair)

    # Walk in hash order and stop filling a split at its cap: lizard (the slow part) then only sees the
    # pairs that can still be taken, and the result equals filtering everything, then taking the first N.
    scores = {p.id: split_score(seed, p.id) for p in kept}
    splits: dict[str, list[FunctionPair]] = {"train": [], "test": []}
    caps = {"train": limit, "test": test_size}
    for pair in sorted(kept, key=lambda p: (scores[p.id], p.id)):
        split = "test" if scores[pair.id] < test_fraction else "train"
        cap = caps[split]
        if cap is not None and len(splits[split]) >= cap:
            stats[f"over_{'limit' if split == 'train' else 'test_size'}"] += 1  # complexity not computed
            continue
        pair = replace(pair, complexity=cyclomatic_complexity(pair.code, lang))
        if pair.complexity < min_complexity:
            stats["below_min_complexity"] += 1
        elif max_complexity is not None and pair.complexity > max_complexity:
            stats["above_max_complexity"] += 1
        else:
            splits[split].append(pair)
    train, test = splits["train"], splits["test"]
    stats["kept"] = len(train) + len(test)
    if not stats["kept"] and not stats["over_limit"] and not stats["over_test_size"]:
        raise UserError(
            f"no {lang} function pairs left from {stats['files']} files ({dict(stats)}); add sources or "
            "relax min_lines/max_lines/max_chars/complexity"
        )
    params = {
        "language": lang,
        "min_lines": min_lines,
        "max_lines": max_lines,
        "max_chars": max_chars,
        "min_complexity": min_complexity,
        "max_complexity": max_complexity,
        "limit": limit,
        "test_size": test_size,
        "test_fraction": test_fraction,
        "seed": seed,
    }
    return PairsDataset(train, test, dict(stats), params, info, time.perf_counter() - started)
