"""Where a run's independent units of heavy work run: the trials of a sweep (a LoRA trial, a
`train search` trial), each a function call that trains and scores on its own. The local executor
runs them in fresh processes on this machine's cores; an executor for a cluster takes the same
calls (`EXECUTORS` names them).

Each call runs in its own process, `spawn`ed rather than forked (a forked copy of a process that
already ran torch's thread pool can deadlock), one call per process (its peak memory is its own,
and is given back), with the machine's cores shared out as torch threads.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from slmlab.errors import UserError


class CallFailed(Exception):
    """Call `index` raised `error` (the calls not started were cancelled)."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(f"call {index} failed: {type(error).__name__}: {error}")
        self.index, self.error = index, error


class LocalExecutor:
    """`parallel` calls at a time, in processes on this machine."""

    name = "local"

    def __init__(self, parallel: int = 1):
        self.parallel = max(1, parallel)

    def run_each(self, function: Callable, calls: list[tuple]) -> Iterator[tuple[int, object]]:
        """(index of the call, its result) as each call finishes. `function(*call, threads=T)` gets
        its share of the cores. A call that raises cancels the calls not started: CallFailed says which."""
        if not calls:
            return
        workers = min(self.parallel, len(calls))
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, max_tasks_per_child=1) as pool:
            futures = {pool.submit(function, *call, threads=threads): i for i, call in enumerate(calls)}
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:
                    pool.shutdown(cancel_futures=True)
                    raise CallFailed(futures[future], exc) from exc
                yield futures[future], result


EXECUTORS = {"local": LocalExecutor}


def make_executor(name: str = "local", parallel: int = 1) -> LocalExecutor:
    if name not in EXECUTORS:
        raise UserError(f"unknown executor '{name}': choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name](parallel)
