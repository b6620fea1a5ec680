"""Execution across a Ray cluster: a sandbox on every node, one Executor to the sandbox judge.

Each node runs slmlab's own sandbox (slmlab.execute.Executor: the same tiers, limits and hostile-
suite guarantees as on one machine) inside a Ray actor. Every node is asked for the same tier (with
`--sandbox auto`, the one this machine picks), and a node that cannot give it refuses the run with
one line, so every verdict of a run comes from one tier. Programs go out in chunks as nodes free up
and outcomes stream back to the driver, which stores them; a node lost mid-run gives its unfinished
programs back to the others (its sandbox workers die with it: they are killed with their parent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace

from slmlab.cluster.connect import alive_nodes, connect
from slmlab.cluster.spread import AllLost, Worker, chunked, close_actors, spread
from slmlab.errors import UserError
from slmlab.execute import Executor, Limits
from slmlab.execute.outcome import Outcome
from slmlab.execute.pool import Program
from slmlab.execute.tiers import Tier, select_tier

_CHUNK_PER_WORKER = 4  # programs per sandbox worker in one chunk: enough to keep a node's workers busy


class SandboxNode:
    """A Ray actor: one node's sandbox workers."""

    def __init__(self, sandbox: str, limits: Limits, workers: int):
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.executor, self.error = None, None
        try:
            self.executor = Executor(sandbox=sandbox, limits=limits, workers=workers)
        except UserError as error:
            self.error = str(error)

    def ready(self) -> tuple[str | None, str, Tier | None]:
        return self.error, self.node, self.executor.tier if self.executor else None

    def run(self, chunk: list[tuple[int, Program]]):
        """Streams ("done", index, outcome) as each program finishes."""
        for position, outcome in self.executor.imap([program for _, program in chunk]):
            yield "done", chunk[position][0], outcome

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()


class ClusterSandbox:
    """What slmlab.judge.sandbox needs of an Executor (`tier`, `run`, `close`), on every node."""

    def __init__(self, sandbox: str = "auto", limits: Limits | None = None, workers: int | None = None,
                 address: str | None = None):  # fmt: skip
        ray = self.ray = connect(address)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        wanted = select_tier(sandbox).name if sandbox == "auto" else sandbox
        nodes = [n for n in alive_nodes(ray) if n.cpus]
        actor = ray.remote(max_restarts=0, max_task_retries=0, num_cpus=0)(SandboxNode)
        self.actors = [actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.id, soft=False))
                       .remote(wanted, limits or Limits(), workers or n.cpus) for n in nodes]  # fmt: skip
        self.workers, tiers = [], []
        try:
            for node, (error, _, tier) in zip(nodes, ray.get([a.ready.remote() for a in self.actors]), strict=True):
                if error:
                    raise UserError(f"node {node.short} cannot give the sandbox tier '{wanted}' ({error}); "
                                    "ask for a tier every node has with --sandbox")  # fmt: skip
                tiers.append(tier)
            self.workers = [Worker(a, n.short) for a, n in zip(self.actors, nodes, strict=True)]
        except BaseException:
            self.close()
            raise
        gaps = tuple(sorted({gap for tier in tiers for gap in tier.gaps}))  # what any node does not contain
        self.tier = replace(tiers[0], gaps=gaps)
        self.chunk = _CHUNK_PER_WORKER * max(1, workers or min(n.cpus for n in nodes))
        self.per_node: Counter = Counter()

    def run(self, programs: Iterable[Program], progress: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
        """Every program's outcome, in input order (`progress` told of each as it comes)."""
        items = list(enumerate(programs))
        results: dict[int, Outcome] = {}

        def start(actor, chunk):
            return actor.run.options(num_returns="streaming").remote(chunk)

        try:
            for worker, kind, index, outcome in spread(self.ray, self.workers, chunked(items, self.chunk), start):
                if kind != "done":
                    continue
                results[index] = outcome
                self.per_node[worker.node] += 1
                if progress is not None:
                    progress(index, outcome)
        except AllLost as lost:
            raise UserError(f"every node's sandbox was lost ({lost}); the judgements made are stored: "
                            "run the same command again to judge the rest") from None  # fmt: skip
        return [results[i] for i in range(len(items))]

    def close(self) -> None:
        close_actors(self.ray, self.actors)
        self.actors = []
