"""Requests to a server, several at once, with every result handed back on the caller's thread.

The engines behind a server (llama.cpp's slots, an OpenAI-compatible endpoint) batch the requests
that are in flight together, so each request gets a thread of its own, up to a limit. The caller's
callbacks store results through a SQLite connection made on its own thread, so they run there:
worker threads only post to a queue, which the caller drains.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable, Iterable

from slmlab.generate.base import Generation, Request

Work = Callable[[Request, int, Callable[[int], None]], Generation]  # (request, worker, report tokens) -> generation


class Halted(Exception):
    """Raised inside a worker that reports tokens after the call was given up (an error elsewhere,
    an interruption), so that a streaming request stops instead of running to its end."""


class InOrder:
    """Hands the requests out in the order given, whichever worker asks."""

    def __init__(self, requests: Iterable[Request]):
        self.requests = collections.deque(requests)
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.requests)

    def take(self, worker: int) -> Request | None:
        with self.lock:
            return self.requests.popleft() if self.requests else None


def run_concurrently(requests: Iterable[Request] | InOrder, work: Work, workers: int,
                     on_result: Callable[[Generation], None], on_step: Callable[[int], None] | None = None) -> None:  # fmt: skip
    """`work` on every request with `workers` threads, each taking its next request from `requests`
    (an InOrder, or a scheduler with the same `take(worker)`); `on_result` and `on_step` are called
    on this thread. An exception in `work` ends the call with it: requests not started are dropped,
    and those in flight stop at their next token."""
    schedule = requests if hasattr(requests, "take") else InOrder(requests)
    total = len(schedule)
    posted: queue.SimpleQueue = queue.SimpleQueue()
    halt = threading.Event()

    def steps(count: int) -> None:
        if halt.is_set():
            raise Halted
        posted.put(("step", count))

    def worker(index: int) -> None:
        try:
            while not halt.is_set() and (request := schedule.take(index)) is not None:
                posted.put(("result", work(request, index, steps)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            posted.put(("error", exc))
        finally:
            posted.put(("done", index))

    threads = [threading.Thread(target=worker, args=(i,), name=f"slmlab-request-{i}", daemon=True)
               for i in range(max(1, min(workers, total)))] if total else []  # fmt: skip
    failure: BaseException | None = None
    try:
        for thread in threads:
            thread.start()
        running = len(threads)
        while running:
            kind, value = posted.get()
            if kind == "done":
                running -= 1
            elif kind == "error" and failure is None:
                failure = value
                halt.set()
            elif failure is None and kind == "step" and on_step is not None:
                on_step(value)
            elif failure is None and kind == "result":
                on_result(value)
    finally:
        halt.set()
        for thread in threads:
            thread.join()
    if failure is not None and not isinstance(failure, Halted):
        raise failure
