"""Where a run's independent units of heavy work run: the trials of a sweep (a LoRA trial, a
`train search` trial), each a function call that trains and scores on its own. The local executor
runs them in fresh processes on this machine's cores; the Ray executor (slmlab.cluster.trials)
takes the same calls as Ray tasks on a cluster.

Each call runs in its own process, `spawn`ed rather than forked (a forked copy of a process that
already ran torch's thread pool can deadlock), one call per process (its peak memory is its own,
and is given back), with the machine's cores shared out as torch threads.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from slmlab.errors import CallFailed, UserError


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


EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", parallel: int = 1, address: str | None = None):
    """The executor `name`: `local`, or `ray` (the cluster at `address`, or one on this machine)."""
    if name == "local":
        return LocalExecutor(parallel)
    if name == "ray":
        from slmlab.cluster.trials import RayExecutor

        return RayExecutor(parallel, address)
    raise UserError(f"unknown executor '{name}': choose one of {', '.join(EXECUTORS)}")
