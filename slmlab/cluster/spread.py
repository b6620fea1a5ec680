"""Spreading keyed work over Ray actors, each result brought back to the caller's thread.

Chunks go to actors as they free up (the longest work first, so the last chunks are short ones).
An actor streams events back as each item finishes; an actor that dies, or whose node dies, gives
its unfinished items back to the others, so nothing it held is lost, and a key finished twice (an
item that finished just before its actor died) is reported once. Written here because Ray gives
the parts (actors, streaming generators, failure errors), not a work queue that re-queues a lost
actor's share.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from slmlab.errors import UserError

Item = tuple[Hashable, Any]  # (key, payload)
# start(actor, chunk) -> a Ray streaming generator of (kind, key, value) events: ("done", key,
# result) when an item is finished, ("step", None, n) for progress.
Start = Callable[[Any, list[Item]], Any]


@dataclass
class Worker:
    actor: Any
    node: str  # the node's short name, for progress lines


class AllLost(UserError):
    """Every actor was lost with work left."""


class _Chunks:
    """Chunks waiting, and how many are out: `take` waits while a chunk could still come back."""

    def __init__(self, chunks: list[list[Item]]):
        self.waiting = list(reversed(chunks))  # popped from the end: the first chunk first
        self.out = 0
        self.cancelled = False
        self.changed = threading.Condition()

    def take(self) -> list[Item] | None:
        with self.changed:
            while not self.waiting and self.out and not self.cancelled:
                self.changed.wait()
            if self.cancelled or not self.waiting:
                return None
            self.out += 1
            return self.waiting.pop()

    def finish(self, left: list[Item]) -> None:
        """A chunk came back; `left`: its items not finished (its actor was lost), to run elsewhere."""
        with self.changed:
            self.out -= 1
            if left:
                self.waiting.append(left)
            self.changed.notify_all()

    def cancel(self) -> None:
        with self.changed:
            self.cancelled = True
            self.changed.notify_all()


def close_actors(ray, actors: list) -> None:
    """Let each actor free what it holds (an engine's server, a sandbox's workers), then end it."""
    for actor in actors:
        try:
            ray.get(actor.close.remote(), timeout=30)
        except Exception:  # noqa: BLE001, S110 - a lost actor (its process or node died) has nothing left to close
            pass
        ray.kill(actor)


def chunked(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


def spread(ray, workers: list[Worker], chunks: list[list[Item]], start: Start) -> Iterator[tuple[Worker, str, Any, Any]]:
    """(worker, kind, key, value) for every event, on the caller's thread: "done" once per key,
    "step" for progress, "lost" (value: why) when a worker is lost. Raises AllLost when every worker
    is lost with items left, and UserError when an actor's work raised."""
    from ray.exceptions import RayError, RayTaskError

    work = _Chunks(chunks)
    events: queue.SimpleQueue = queue.SimpleQueue()

    def drive(worker: Worker) -> None:
        while (chunk := work.take()) is not None:
            finished: set = set()
            try:
                for ref in start(worker.actor, chunk):
                    kind, key, value = ray.get(ref)
                    if kind == "done":
                        finished.add(key)
                    events.put((worker, kind, key, value))
            except RayTaskError as error:  # the work itself raised: a bug or a broken engine, not a lost node
                work.cancel()
                events.put((worker, "failed", None, _first_line(error)))
                return
            except RayError as error:  # the actor, its process or its node died
                work.finish([item for item in chunk if item[0] not in finished])
                events.put((worker, "lost", None, _first_line(error)))
                return
            work.finish([])
        events.put((worker, "exit", None, None))

    threads = [threading.Thread(target=drive, args=(w,), daemon=True, name=f"slmlab-{w.node}") for w in workers]
    for thread in threads:
        thread.start()
    live, seen, why_lost = len(workers), set(), []
    try:
        while live:
            worker, kind, key, value = events.get()
            if kind in ("exit", "lost"):
                live -= 1
                if kind == "lost":
                    why_lost.append(value)
                    yield worker, kind, key, value
                continue
            if kind == "failed":
                raise UserError(f"the work on node {worker.node} failed: {value}")
            if kind == "done":
                if key in seen:
                    continue
                seen.add(key)
            yield worker, kind, key, value
        left = sum(len(chunk) for chunk in work.waiting)
        if left:
            raise AllLost(f"all {len(workers)} lost, the last: {why_lost[-1]}; {left} items left")
    finally:
        work.cancel()


def _first_line(error: BaseException) -> str:
    """The cause of a Ray error in one line: its own error's type and message where it has one."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(error)):
        error = cause
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"[:300]
