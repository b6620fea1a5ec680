"""The trials of a sweep as Ray tasks (`executor: ray` in a LoRA study or `train search`): each asks
for its resources, and Ray runs as many at once as the cluster holds, on whichever nodes have them.

Each trial asks for `cpus` cores (its torch threads), a GPU where the cluster has any, and `memory`
where given. A trial whose worker or node dies is run again by Ray (a trial resumes from its
checkpoints, or starts afresh: its results do not depend on where it ran). The trials write their
runs and checkpoints under the sweep's folder, which every node must see (a shared filesystem on a
real cluster; the same disk on one machine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from slmlab.cluster.connect import alive_nodes, connect
from slmlab.errors import CallFailed

_RETRIES = 3  # runs of a trial whose worker or node died, before the sweep gives up on it


class RayExecutor:
    name = "ray"

    def __init__(self, parallel: int = 1, address: str | None = None, cpus: int | None = None,
                 memory_gb: float | None = None):  # fmt: skip
        self.ray = connect(address)
        nodes = alive_nodes(self.ray)
        self.gpus = 1 if any(n.gpus for n in nodes) else 0
        # Without a request: the cluster's cores shared by `parallel` trials, as the local executor shares them.
        self.cpus = cpus or max(1, sum(n.cpus for n in nodes) // max(1, parallel))
        self.cpus = min(self.cpus, max(n.cpus for n in nodes))  # a trial fits on one node
        self.memory = int(memory_gb * 2**30) if memory_gb else None

    def run_each(self, function: Callable, calls: list[tuple]) -> Iterator[tuple[int, object]]:
        """(index of the call, its result) as each trial finishes; a trial that raises cancels the
        rest and CallFailed says which."""
        from ray.exceptions import RayTaskError

        if not calls:
            return
        options = {"num_cpus": self.cpus, "num_gpus": self.gpus, "max_retries": _RETRIES, "retry_exceptions": False,
                   **({"memory": self.memory} if self.memory else {})}  # fmt: skip
        remote = self.ray.remote(function).options(**options)
        pending = {remote.remote(*call, threads=self.cpus): index for index, call in enumerate(calls)}
        while pending:
            [ready], _ = self.ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready)
            try:
                result = self.ray.get(ready)
            except RayTaskError as failed:
                for ref in pending:
                    self.ray.cancel(ref, force=True)
                cause = failed.cause if isinstance(getattr(failed, "cause", None), BaseException) else failed
                raise CallFailed(index, cause) from None
            yield index, result
