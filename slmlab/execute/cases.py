"""Verdicts decided outside the sandbox: a task's tests turned into inputs and expected outputs.

A program in the sandbox shares its interpreter with whatever checks run there, so it can reach and
rewrite them (swap the test function, forge the result record, return an object whose `__eq__` is
always true). So, as evalplus does, the tests are run once with the benchmark's reference solution
in the sandbox, recording every call the tests make to the function under test: its arguments and
what the reference returned. A candidate then only computes: the sandbox calls its function on
the recorded arguments and reports the results as plain data (marshal: numbers, strings, bytes,
lists, tuples, dicts, sets, None, bools; marshal refuses every other type, subclasses included),
and the worker, outside the sandbox, compares them with the reference's. Knowing the expected
values is the only way to forge a pass, and they never enter the sandbox.

How each call's result is compared is read from the tests' source (`call_sites`): the assertion
around the call decides it, so the tests' semantics are kept:
  assert f(x) == y          -> equal (Python's ==, between plain values)
  assert f(x) is True       -> identical to the constant
  assert f(x) / assert not f(x) -> truthiness (bool() applied in the sandbox, as the test would)
  assert abs(f(x) - y) < t  -> within t of the reference's result
  assert math.isclose(f(x), y, rel_tol=r) -> math.isclose with the reference's result, same tolerances
  a call whose exception the test expects (inside try/with) -> raises an exception of that class
  tuple(f(x)), list(...), set(...), sorted(...), int(...), ... around the call: applied in the
  sandbox to the result before it is reported, as the test applies it.
A task whose tests use a result any other way (a property test such as HumanEval/32's root
finder), or whose reference does not pass its own converted cases, cannot be converted: it is judged
by its tests in the sandbox and labelled so (`IN_PROCESS`).

Pure functions: the judge analyses and builds, the runner (in the sandbox) computes, the worker
compares.
"""

from __future__ import annotations

import ast
import marshal
import math
from dataclasses import dataclass

# Functions a test may wrap around the call; the runner applies the pristine builtin of that name.
WRAPPERS = frozenset({"tuple", "list", "set", "frozenset", "sorted", "int", "float", "str", "bool", "len"})
_CANDIDATE_NAMES = ("candidate",)  # HumanEval's check(candidate); MBPP calls the entry point by name
_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, tuple, list, dict, set, frozenset)
MAX_CALLS = 2000  # a test that calls the function more often is judged in process
HARNESS, IN_PROCESS = "harness", "in-process"  # how a verdict was reached (Outcome.extra["verdict"])

Position = tuple[int, int, int, int]  # (line, end line, column, end column) of the call


@dataclass(frozen=True)
class Site:
    """How the tests use the result of one call of the function under test."""

    kind: str  # "eq" | "is" | "truth" | "close" | "isclose" | "raises"
    wrapper: str | None = None  # applied to the result in the sandbox
    tolerance: float = 0.0  # "close": the largest difference accepted; "isclose": rel_tol
    inclusive: bool = False  # "close": <= rather than <
    absolute: float = 0.0  # "isclose": abs_tol


@dataclass(frozen=True)
class Conversion:
    """A task's tests as cases: what the sandbox computes, and (kept outside) what is expected."""

    cases: bytes  # marshal of [(marshal of (args, kwargs), wrapper or None)], sent to the sandbox
    expected: tuple  # per case: (kind, value, tolerance, inclusive, absolute); never sent to the sandbox


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _number(node.operand)
        return None if value is None else -value
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    return None


def _in_message(node: ast.AST, parents: dict) -> bool:
    """Inside an assert's message: evaluated only after the assertion failed, never recorded."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Assert) and parent.msg is node:
            return True
        node = parent
    return False


def _site(call: ast.Call, parents: dict) -> Site | None:
    node, wrapper = call, None
    parent = parents.get(node)
    if (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id in WRAPPERS
            and parent.args == [node] and not parent.keywords):  # fmt: skip
        wrapper, node, parent = parent.func.id, parent, parents.get(parent)
    above = parents.get(parent)
    if isinstance(parent, ast.Assert) and parent.test is node:
        return Site("truth", wrapper or "bool")
    if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not) and isinstance(above, ast.Assert):
        return Site("truth", wrapper or "bool")
    if isinstance(parent, ast.Compare) and len(parent.ops) == 1 and isinstance(above, ast.Assert):
        other = parent.comparators[0] if parent.left is node else parent.left
        if isinstance(parent.ops[0], ast.Eq):
            return Site("eq", wrapper)
        if isinstance(parent.ops[0], ast.Is) and isinstance(other, ast.Constant) and other.value in (True, False, None):
            return Site("is", wrapper)
        return None
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Sub):  # abs(f(x) - y) < tol
        call_abs, compare = above, parents.get(above)
        if (isinstance(call_abs, ast.Call) and isinstance(call_abs.func, ast.Name) and call_abs.func.id == "abs"
                and isinstance(compare, ast.Compare) and compare.left is call_abs and len(compare.ops) == 1
                and isinstance(compare.ops[0], (ast.Lt, ast.LtE)) and isinstance(parents.get(compare), ast.Assert)):  # fmt: skip
            tolerance = _number(compare.comparators[0])
            if tolerance is not None:
                return Site("close", wrapper, tolerance, isinstance(compare.ops[0], ast.LtE))
        return None
    if isinstance(parent, ast.Expr) and isinstance(above, (ast.Try, ast.With)) and parent in above.body:
        return Site("raises", wrapper)
    if _is_isclose(parent) and node in parent.args and isinstance(above, ast.Assert) and above.test is parent:
        tolerances = {"rel_tol": 1e-09, "abs_tol": 0.0}  # math.isclose's defaults
        for keyword in parent.keywords:
            value = _number(keyword.value)
            if keyword.arg not in tolerances or value is None:
                return None
            tolerances[keyword.arg] = value
        return Site("isclose", wrapper, tolerances["rel_tol"], absolute=tolerances["abs_tol"])
    return None


def _is_isclose(node) -> bool:
    """math.isclose(a, b, ...) or isclose(a, b, ...) with two positional arguments."""
    if not isinstance(node, ast.Call) or len(node.args) != 2:
        return False
    function = node.func
    if isinstance(function, ast.Attribute):
        return function.attr == "isclose" and isinstance(function.value, ast.Name) and function.value.id == "math"
    return isinstance(function, ast.Name) and function.id == "isclose"


def call_sites(tests: str, entry_point: str) -> dict[Position, Site] | str:
    """Every call of the function under test in `tests`, with how its result is used; or, when one
    cannot be compared outside the sandbox, the reason (one line)."""
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return f"the tests do not parse: {exc}"
    parents = _parents(tree)
    names = (*_CANDIDATE_NAMES, entry_point)
    sites: dict[Position, Site] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names):
            continue
        if _in_message(node, parents):
            continue
        site = _site(node, parents)
        if site is None:
            return f"line {node.lineno}: the tests use the result of {node.func.id}(...) in a way that is not a comparison"
        sites[(node.lineno, node.end_lineno, node.col_offset, node.end_col_offset)] = site
    if not sites:
        return "the tests never call the function"
    return sites


def recording_sites(sites: dict[Position, Site]) -> dict[Position, str | None]:
    """What the recorder in the sandbox needs of the sites: the wrapper to apply at each."""
    return {position: site.wrapper for position, site in sites.items()}


def conversion(calls: list, sites: dict[Position, Site]) -> Conversion | str:
    """The cases from the calls the reference made while it passed its tests (runner.record_calls):
    [(position, args (marshal), answer)], answer as the runner reports it (see compare)."""
    if not calls:
        return "the tests made no call to the function"
    if len(calls) > MAX_CALLS:
        return f"the tests call the function {len(calls)} times (more than {MAX_CALLS})"
    cases, expected = [], []
    for position, arguments, answer in calls:
        site = sites.get(tuple(position))
        if site is None:
            return f"a call at line {position[0]} was not found in the tests"
        if arguments is None:
            return f"line {position[0]}: the arguments are not plain data"
        kind = answer[0]
        if site.kind == "raises":
            if kind != "raised":
                return f"line {position[0]}: the reference did not raise where the tests expect it"
            value = answer[1][0]  # the class the reference raised; the candidate's must be one
        elif kind != "value":
            return f"line {position[0]}: the reference's result is not plain data ({answer[1]})"
        else:
            value = marshal.loads(answer[1])
        cases.append((arguments, site.wrapper))
        expected.append((site.kind, value, site.tolerance, site.inclusive, site.absolute))
    return Conversion(marshal.dumps(cases), tuple(expected))


def is_plain(value) -> bool:
    """Only the builtin data types, all the way down (iteratively: results can be deeply nested)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) not in _PLAIN_TYPES:
            return False
        if type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif type(item) in (tuple, list, set, frozenset):
            stack.extend(item)
    return True


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _matches(kind: str, want, got, tolerance: float, inclusive: bool, absolute: float) -> bool:
    if kind == "eq":
        return bool(got == want)
    if kind == "is":
        return got is want
    if kind == "truth":
        return bool(got) is bool(want)
    if kind == "close":
        difference = abs(got - want)
        return bool(difference <= tolerance if inclusive else difference < tolerance)
    if kind == "isclose":
        return math.isclose(got, want, rel_tol=tolerance, abs_tol=absolute)
    return False


# What an exception in the sandbox may be reported as; the sandbox never reports its own pass.
_RAISED_STATUSES = frozenset({"runtime_error", "memory_exceeded", "sandbox_violation", "output_limit", "no_tests_run",
                              "failed_assertion"})  # fmt: skip


def _raised_failure(record, where: str) -> dict:
    """The failure record of a case that raised, from what the runner classified: only its failure
    statuses and text fields are taken (a program could have rewritten the classifier)."""
    record = record if type(record) is dict else {}
    status = record.get("status")
    failure = {"status": status if status in _RAISED_STATUSES else "runtime_error", "phase": "tests"}
    for key in ("error_type", "detail"):
        if type(record.get(key)) is str:
            failure[key] = record[key]
    if type(record.get("line")) is int:
        failure["line"] = record["line"]
    failure["detail"] = f"{where}: {failure.get('detail', 'raised an exception')}"
    return failure


def compare(expected: tuple, answers: list[bytes]) -> tuple[dict | None, int]:
    """(the failure record of the first case that does not match, or None; how many cases were
    answered). `answers`: the lines the runner wrote, one per case, in order; fewer than the cases
    when the program ended early (the caller decides what that means). Runs in the worker, on data
    that only marshal decoded: nothing of the program's runs here."""
    for index, line in enumerate(answers[: len(expected)]):
        kind, want, tolerance, inclusive, absolute = expected[index]
        where = f"case {index + 1} of {len(expected)}"
        try:
            answer = marshal.loads(bytes.fromhex(line.decode("ascii")))
            tag = answer[0]
        except (ValueError, EOFError, TypeError, IndexError, UnicodeDecodeError):
            return {"status": "harness_error", "detail": f"{where}: the sandbox's answer is unreadable"}, index
        if tag == "raised":
            names, record = answer[1], answer[2]
            if kind == "raises" and want in names:
                continue
            return _raised_failure(record, where), index
        if kind == "raises":
            return {"status": "failed_assertion", "phase": "tests",
                    "detail": f"{where}: expected {want} to be raised; it returned"}, index  # fmt: skip
        if tag == "unsupported":
            return {"status": "unsupported_output", "error_type": answer[1], "phase": "tests",
                    "detail": f"{where}: returned a {answer[1]}, which is not plain data"}, index  # fmt: skip
        try:
            got = marshal.loads(answer[1])
            ok = is_plain(got) and _matches(kind, want, got, tolerance, inclusive, absolute)
        except (ValueError, EOFError, TypeError, OverflowError, RecursionError, MemoryError):
            ok, got = False, "<unreadable>"
        if not ok:
            return {"status": "failed_assertion", "phase": "tests",
                    "detail": f"{where}: expected {_short(want)}, got {_short(got)}"}, index  # fmt: skip
    return None, min(len(answers), len(expected))
