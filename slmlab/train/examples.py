"""(prompt, completion) examples for fine-tuning and for scoring generations against references.

A function pair becomes its documented header as the prompt and its body as the completion, in each
language's own form: a Python docstring under the `def` line, a `/** */` comment above a Java or
JavaScript header that ends in `{`. An MBPP task becomes its prompt (description and one test) and
its reference solution. The header/body cut is a scan of brackets and strings, not a parse: the
pairs come from tree-sitter already, and a header is a bracketed parameter list up to `:` or `{`.
"""

from __future__ import annotations

from slmlab.train.pairs import FunctionPair

_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def _header_end(code: str, language: str) -> int | None:
    """Index just past the header: Python's `:` or Java/JavaScript's `{` outside brackets and strings."""
    stop = ":" if language == "python" else "{"
    depth, quote, index = 0, "", 0
    while index < len(code):
        char = code[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char == "#" and language == "python":
            newline = code.find("\n", index)
            index = len(code) if newline < 0 else newline
            continue
        elif char == stop and depth == 0 and (stop == "{" or _ends_line(code, index)):
            return index + 1
        elif char in _CLOSERS:
            depth += 1
        elif char in _CLOSERS.values():
            depth = max(depth - 1, 0)
        index += 1
    return None


def _ends_line(code: str, index: int) -> bool:
    """A Python header's colon ends its line (bar a comment); `lambda x: ...` in a decorator does not."""
    rest = code[index + 1 : code.find("\n", index) if "\n" in code[index:] else len(code)].strip()
    return not rest or rest.startswith("#")


def pair_example(pair: FunctionPair) -> tuple[str, str] | None:
    """(documented header, body) of a function pair; None when the body is empty or not found."""
    end = _header_end(pair.code, pair.language)
    if end is None:
        return None
    header, body = pair.code[:end], pair.code[end:]
    if not body.strip():
        return None
    if pair.language == "python":
        first = next((line for line in body.splitlines() if line.strip()), "    ")
        indent = first[: len(first) - len(first.lstrip())] or "    "
        newline = body.find("\n")
        return f'{header}\n{indent}"""{pair.doc}"""\n', body[newline + 1 :] if newline >= 0 else body
    return f"/** {pair.doc} */\n{header}", body


def task_example(task) -> tuple[str, str]:
    """An MBPP (or any executable) task: its prompt, and its reference solution as the completion."""
    return task.prompt, task.reference.rstrip() + "\n"


_JS_STANDALONE = ("function", "async function", "export", "const ", "let ", "var ")


def trim_body(completion: str, language: str) -> str:
    """A generated body cut where the function ends: Python at the first line back at column 0,
    Java and JavaScript where the braces opened by the header close."""
    if language == "python":
        kept = []
        for line in completion.splitlines():
            if line.strip() and not line[0].isspace():
                break
            kept.append(line)
        return "\n".join(kept).rstrip() + "\n"
    depth, quote = 1, ""
    for index, char in enumerate(completion):
        if quote:
            quote = "" if char == quote and completion[index - 1] != "\\" else quote
        elif char in "\"'`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return completion[: index + 1]
    return completion


def function_source(prompt: str, body: str, language: str) -> str:
    """The whole function to syntax-check: a JavaScript method goes inside a class (javac's checker
    wraps bare Java methods itself)."""
    source = prompt + body
    if language == "javascript":
        header = prompt.split("*/", 1)[-1].strip()
        if not header.startswith(_JS_STANDALONE):
            return "class Snippet {\n" + source + "\n}\n"
    return source
