"""The OpenAI-compatible backend against a real server: llama.cpp's server with SmolLM2, reached
through a proxy the tests control, which can answer 500, hang, or drop connections. Completions
and chat endpoints, retries that recover, a request that times out, a server that is down or goes
down: one clear line, the store intact, and the same command resumes."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slmlab.generate.llama_server import LlamaServer, find_server, free_port
from tests.test_cli import _one_line_error, slmlab

pytestmark = pytest.mark.skipif(find_server() is None, reason="llama.cpp's server is not built here "
                                "(./scripts/build_llamacpp.sh)")  # fmt: skip

MODEL = "smollm2-135m-instruct"


class FaultyProxy(ThreadingHTTPServer):
    """Forwards to the real server, except what `rule(path, body, count)` says: "500", "hang" or
    "drop" (close the connection unanswered); None forwards."""

    daemon_threads = True

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream, self.rule, self.count, self.lock = upstream, None, 0, threading.Lock()
        self.release = threading.Event()
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization header) of every request
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _forward(self, method: str) -> None:
        import httpx2 as httpx

        proxy: FaultyProxy = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with proxy.lock:
            proxy.count += 1
            count = proxy.count
            proxy.seen.append((self.path, self.headers.get("Authorization")))
        action = proxy.rule(self.path, body, count) if proxy.rule else None
        if action == "500":
            self._answer(500, b'{"error": {"message": "injected failure"}}')
            return
        if action == "hang":
            proxy.release.wait(60)
            return
        if action == "drop":
            self.close_connection = True
            return
        answer = httpx.request(method, proxy.upstream + self.path, content=body or None, timeout=120,
                               headers={"Content-Type": "application/json"})  # fmt: skip
        self._answer(answer.status_code, answer.content)

    def _answer(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout the test asked for)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._forward("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._forward("POST")


@pytest.fixture(scope="module")
def server():
    from slmlab.models import resolve

    resolved = resolve(MODEL)
    with LlamaServer(Path(resolved.location, resolved.gguf_file), 4, 4 * 2048, 2) as running:
        yield running


@pytest.fixture
def proxy(server):
    proxied = FaultyProxy(server.url)
    thread = threading.Thread(target=proxied.serve_forever, daemon=True)
    thread.start()
    yield proxied
    proxied.release.set()
    proxied.shutdown()


def run(proxy_url: str, out: Path, *extra: str, env: dict | None = None, tokens: int = 48):
    return slmlab("eval", "--model", MODEL, "--benchmark", "minibench", "--limit", "4", "--max-new-tokens", str(tokens),
                  "--backend", "openai", "--base-url", proxy_url, "--out", str(out), *extra, env=env)  # fmt: skip


def rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "slmlab.db") as db:
        return db.execute("SELECT task_id, sample_index, completion, generation FROM samples "
                          "ORDER BY task_id, sample_index").fetchall()  # fmt: skip


def test_completions_and_chat_endpoints_with_the_key_from_the_environment(proxy, tmp_path):
    for mode, endpoint in (("plain", "/v1/completions"), ("chat", "/v1/chat/completions")):
        out = tmp_path / mode
        done = run(proxy.url, out, "--prompt-mode", mode, "--api-key-env", "TEST_SERVER_KEY",
                   env={"TEST_SERVER_KEY": "secret-key-123"})  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "engine: openai" in done.stdout
        stored = rows(out)
        assert len(stored) == 4
        generations = [json.loads(g) for *_, g in stored]
        assert all(g["tokens"] > 0 and g["prompt_tokens"] > 0 for g in generations)  # the server's usage
        assert {g["finish_reason"] for g in generations} <= {"stop", "eos", "length"}
        assert "secret-key-123" not in (out / "slmlab.db").read_bytes().decode(errors="replace")
        assert sum(path == endpoint for path, _ in proxy.seen) == 4
    assert all(key == "Bearer secret-key-123" for _, key in proxy.seen)
    unset = run(proxy.url, tmp_path / "nokey", "--api-key-env", "NOT_SET_ANYWHERE")
    _one_line_error(unset, "NOT_SET_ANYWHERE")


def test_a_server_that_fails_then_recovers_loses_nothing(proxy, tmp_path):
    proxy.rule = lambda path, body, count: "500" if "completions" in path and count <= 4 else None
    done = run(proxy.url, tmp_path / "runs", "--max-retries", "5")
    assert done.returncode == 0, done.stderr
    assert len(rows(tmp_path / "runs")) == 4
    assert proxy.count >= 4 + 4  # the failures were retried


def test_a_hanging_request_times_out_is_recorded_and_the_same_command_resumes(proxy, tmp_path):
    out = tmp_path / "runs"
    # minibench/2's prompt asks for `multiply`: its requests hang, the others are answered
    proxy.rule = lambda path, body, count: "hang" if b"multiply" in body else None
    started = time.monotonic()
    # Answered requests take well under a second even on a busy machine (8 tokens); a hung one is
    # given up after 10 s, twice.
    done = run(proxy.url, out, "--request-timeout", "10", "--max-retries", "1", "--prompt-mode", "plain", tokens=8)
    assert time.monotonic() - started < 90
    _one_line_error(done, "1 of 4 samples could not be generated", "run the same command again")
    assert [task for task, *_ in rows(out)] == ["minibench/0", "minibench/1", "minibench/3"]
    with sqlite3.connect(out / "slmlab.db") as db:
        (errors,) = db.execute("SELECT value FROM metrics WHERE name = 'generation_errors'").fetchone()
    assert json.loads(errors)[0]["task_id"] == "minibench/2" and "Timeout" in json.loads(errors)[0]["error"]
    proxy.rule = None
    proxy.release.set()
    again = run(proxy.url, out, "--request-timeout", "30", "--prompt-mode", "plain", tokens=8)
    assert again.returncode == 0, again.stderr
    assert "resumed: 3 of 4" in again.stdout
    assert [task for task, *_ in rows(out)] == [f"minibench/{i}" for i in range(4)]


def test_a_server_that_is_down_or_goes_down(proxy, tmp_path):
    out = tmp_path / "runs"
    down = run(f"http://127.0.0.1:{free_port()}/v1", out)
    _one_line_error(down, "no OpenAI-compatible server answers", "--base-url")
    assert not (out / "slmlab.db").exists() or rows(out) == []

    # It answers the first two completions, then drops every connection.
    answered = []
    proxy.rule = lambda path, body, count: None if "completions" not in path or len(answered) < 2 and not answered.append(1) else "drop"
    gone = run(proxy.url, out, "--max-retries", "1")
    _one_line_error(gone, "could not be generated", "stopped answering")
    assert len(rows(out)) == 2
    proxy.rule = None
    back = run(proxy.url, out)
    assert back.returncode == 0, back.stderr
    assert len(rows(out)) == 4 and "resumed: 2 of 4" in back.stdout
