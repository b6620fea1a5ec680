"""Warm helper processes (one JVM, one node) that check many snippets each, and tool lookup.

Shared by java.py and javascript.py: the length-prefixed request / JSON-line reply protocol,
pipelining without deadlock, restarts, time limits, and the process-wide registry.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from slmlab.execute.syntax.verdict import SyntaxVerdict

REQUEST_TIMEOUT_S = 20.0  # per snippet: javac parses a normal snippet in under a millisecond
START_TIMEOUT_S = 60.0  # a cold JVM on a loaded machine can take several seconds


def verdict_from_reply(reply: dict[str, Any], checker: str) -> SyntaxVerdict:
    """A helper's JSON reply as a verdict; anything but valid/invalid is a failure of the helper."""
    status = reply.get("status")
    line = reply.get("line") if isinstance(reply.get("line"), int) else None
    message = str(reply.get("message") or "")
    if status in ("valid", "invalid"):
        return SyntaxVerdict(status, checker, line=line, message=message, wrapped=bool(reply.get("wrapped")))
    # A helper failure is not a verdict on the code: say so rather than guess.
    return SyntaxVerdict("unchecked", checker, message=message or f"unexpected reply {reply!r}")


_which_cache: dict[tuple[str, str | None, object], str | None] = {}


def which(name: str) -> str | None:
    """shutil.which, remembered per PATH: a lookup costs ~35 us, more than node takes to parse a snippet.
    The function itself is part of the key, so a test that patches shutil.which to hide a tool (or
    changes PATH) is obeyed at once. A tool installed later on an unchanged PATH is not noticed."""
    key = (name, os.environ.get("PATH"), shutil.which)
    if key not in _which_cache:
        _which_cache[key] = shutil.which(name)
    return _which_cache[key]


class HelperError(RuntimeError):
    """A helper process could not be started (the message says why and what it printed)."""


_helpers: dict[tuple[str, ...], WarmHelper] = {}
_helpers_lock = threading.Lock()


def warm_helper(name: str, argv: Sequence[str]) -> WarmHelper:
    """The process-wide helper for `argv`, created on first use (it starts on its first request)."""
    key = tuple(argv)
    with _helpers_lock:
        helper = _helpers.get(key)
        if helper is None:
            helper = _helpers[key] = WarmHelper(name, key)
        return helper


def close_checkers() -> None:
    """Stop every warm helper process. Safe to call twice; later checks start fresh helpers."""
    with _helpers_lock:
        helpers = list(_helpers.values())
        _helpers.clear()
    for helper in helpers:
        helper.close()


atexit.register(close_checkers)

# A helper that failed to start is not retried on every snippet of a batch; this says how to retry.
_RETRY_HINT = " (not retried until close_checkers() is called)"


class WarmHelper:
    """One long-lived checker process speaking the length-prefixed protocol.

    A request is `<byte length>\\n<UTF-8 bytes>`; each reply is one JSON line; the process first prints
    a JSON line with "ready". Requests are pipelined (written while replies are read, via poll, so
    neither pipe can deadlock) under a lock, so one helper serves many threads one batch at a time.
    """

    MAX_FAILURES_IN_A_ROW = 3

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        request_timeout: float | None = None,
        start_timeout: float | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._request_timeout = request_timeout
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None  # a temporary file: an unread stderr pipe could fill and block the helper
        self._owner_pid = os.getpid()
        self.broken: str | None = None  # why it cannot start; set once so a batch does not retry forever
        self._pending = bytearray()  # bytes read from the helper but not yet a whole line

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def request_many(self, payloads: Sequence[bytes]) -> list[dict[str, Any]]:
        """One reply per payload. A failed request gets {"status": "error", "message": ...}: a helper
        that dies is restarted and the same request retried once; one that times out is killed and
        restarted for the rest. After MAX_FAILURES_IN_A_ROW failed requests the rest of the batch
        fails at once, so a sick helper cannot cost 20 s per snippet for a whole batch."""
        with self._lock:
            if self._owner_pid != os.getpid():
                self._forget()
            replies: list[dict[str, Any]] = []
            retried, failures = False, 0
            while len(replies) < len(payloads):
                try:
                    self._ensure_started()
                except HelperError as exc:
                    failure = {"status": "error", "message": str(exc)}
                    replies.extend([failure] * (len(payloads) - len(replies)))
                    break
                got, problem, may_retry = self._exchange(payloads[len(replies) :])
                replies.extend(got)
                if problem is None:
                    break
                self._stop(kill=True)
                if got:
                    retried, failures = False, 0  # the failure is on a new request: it gets its own retry
                if retried or not may_retry:
                    replies.append({"status": "error", "message": f"{self.name} {problem}"})
                    retried, failures = False, failures + 1
                    if failures >= self.MAX_FAILURES_IN_A_ROW:
                        why = (
                            f"{self.name} gave up after {failures} failed requests in a row; last: {problem}"
                        )
                        replies.extend([{"status": "error", "message": why}] * (len(payloads) - len(replies)))
                else:
                    retried = True  # restart once and resend the same request
            return replies

    def close(self) -> None:
        with self._lock:
            if self._owner_pid != os.getpid():
                self._forget()
            self._stop(kill=False)

    # -- internals (called with the lock held) --

    def _timeout(self, kind: str) -> float:
        own = self._request_timeout if kind == "request" else self._start_timeout
        return own if own is not None else (REQUEST_TIMEOUT_S if kind == "request" else START_TIMEOUT_S)

    def _forget(self) -> None:
        """After a fork the process belongs to our parent: drop our copies of its pipes, leave it running."""
        for stream in (self._proc and self._proc.stdin, self._proc and self._proc.stdout, self._stderr):
            if stream is not None:
                stream.close()
        self._proc, self._stderr, self._owner_pid = None, None, os.getpid()
        self._pending = bytearray()

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if self.broken is not None:
            raise HelperError(self.broken)
        self._stop(kill=True)
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
                close_fds=True,
            )
        except OSError as exc:
            self.broken = f"{self.name} could not start ({' '.join(self.argv)}): {exc}{_RETRY_HINT}"
            raise HelperError(self.broken) from exc
        assert self._proc.stdin is not None
        os.set_blocking(self._proc.stdin.fileno(), False)  # writes go through poll, never block
        self._pending = bytearray()
        line, problem = self._read_line(time.monotonic() + self._timeout("start"))
        ready: Any = None
        if line is not None:
            try:
                ready = json.loads(line)
            except ValueError:
                problem = f"printed {line[:200]!r} instead of its ready line"
        if not (isinstance(ready, dict) and ready.get("ready")):
            self._stop(kill=True)
            why = problem or "no ready line"
            self.broken = f"{self.name} failed to start ({' '.join(self.argv)}): {why}{_RETRY_HINT}"
            raise HelperError(self.broken)

    def _exchange(self, payloads: Sequence[bytes]) -> tuple[list[dict[str, Any]], str | None, bool]:
        """Send all payloads and collect replies. If the helper fails it stops early and says why, and
        whether the failed request is worth retrying (a crash is; a timeout would only time out again)."""
        assert self._proc is not None and self._proc.stdin is not None and self._proc.stdout is not None
        data = memoryview(b"".join(b"%d\n%s" % (len(p), p) for p in payloads))
        out_fd, in_fd = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        poller = select.poll()
        poller.register(in_fd, select.POLLIN)
        poller.register(out_fd, select.POLLOUT)
        writing, sent = True, 0
        replies: list[dict[str, Any]] = []
        deadline = time.monotonic() + self._timeout("request")  # renewed by every reply
        while len(replies) < len(payloads):
            while (newline := self._pending.find(b"\n")) >= 0:
                line = bytes(self._pending[:newline])
                del self._pending[: newline + 1]
                try:
                    reply = json.loads(line)
                except ValueError:
                    return replies, f"sent a malformed reply {line[:200]!r}", True
                replies.append(
                    reply if isinstance(reply, dict) else {"status": "error", "message": repr(reply)}
                )
                deadline = time.monotonic() + self._timeout("request")
            if len(replies) == len(payloads):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return replies, f"timed out after {self._timeout('request'):g}s on one snippet", False
            for fd, event in poller.poll(remaining * 1000):
                if fd == out_fd:
                    try:
                        sent += os.write(out_fd, data[sent : sent + (1 << 16)])
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:
                        return replies, self._death(), True
                    if sent == len(data) and writing:
                        poller.unregister(out_fd)
                        writing = False
                elif event & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    chunk = os.read(in_fd, 1 << 16)
                    if not chunk:
                        return replies, self._death(), True
                    self._pending += chunk
        return replies, None, True

    def _read_line(self, deadline: float) -> tuple[bytes | None, str | None]:
        assert self._proc is not None and self._proc.stdout is not None
        in_fd = self._proc.stdout.fileno()
        while (newline := self._pending.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, f"no reply within {self._timeout('start'):g}s"
            ready, _, _ = select.select([in_fd], [], [], remaining)
            if ready:
                chunk = os.read(in_fd, 1 << 16)
                if not chunk:
                    return None, self._death()
                self._pending += chunk
        line = bytes(self._pending[:newline])
        del self._pending[: newline + 1]
        return line, None

    def _death(self) -> str:
        """Why the process went away: its exit status and the end of what it printed to stderr."""
        assert self._proc is not None
        try:
            code: int | None = self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        tail = ""
        if self._stderr is not None:
            self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, self._stderr.tell() - 2000))
            tail = self._stderr.read().decode("utf-8", "replace").strip()
        status = "closed its output" if code is None else f"exited with status {code}"
        return status + (f"; stderr: {tail}" if tail else "")

    def _stop(self, kill: bool) -> None:
        """End the process and reap it (no zombies): EOF on stdin asks it to exit, else kill."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            if kill:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
