"""JavaScript syntax: V8's parser via `new vm.Script(src)` in a warm node (syntax_server.js).

The code is compiled, never run. Scripts that fail are retried as ES modules (import/export is valid
JavaScript), which needs node's --experimental-vm-modules; --no-warnings keeps its notice off stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slmlab.execute.syntax.helper import verdict_from_reply, warm_helper, which
from slmlab.execute.syntax.verdict import SyntaxVerdict

CHECKER = "node-vm"
SERVER_SCRIPT = Path(__file__).with_name("syntax_server.js")
NODE_OPTIONS = ("--experimental-vm-modules", "--no-warnings", "--max-old-space-size=512")


def find_node() -> str | None:
    """Looked up on every call (cheaply, see `which`) so a test can hide node by patching shutil.which."""
    return which("node")


def unavailable_reason() -> str | None:
    if find_node() is None:
        return "no node on PATH (install Node.js)"
    if not SERVER_SCRIPT.is_file():
        return f"{SERVER_SCRIPT} is missing from the installed package"
    return None


def check_many(codes: Sequence[str]) -> list[SyntaxVerdict]:
    node = find_node()
    if node is None:
        return [SyntaxVerdict("unchecked", CHECKER, message=unavailable_reason() or "no node")] * len(codes)
    helper = warm_helper("node syntax helper", [node, *NODE_OPTIONS, str(SERVER_SCRIPT)])
    replies = helper.request_many([code.encode("utf-8", "replace") for code in codes])
    return [verdict_from_reply(reply, CHECKER) for reply in replies]


def check(code: str) -> SyntaxVerdict:
    return check_many([code])[0]
