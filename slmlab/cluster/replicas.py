"""Generation across a Ray cluster: replicas of any engine, each a Ray actor that loads the model
once, behind one Generator the pipeline drives as it drives a local engine.

One replica per GPU where the cluster has GPUs, otherwise one per node, holding that node's cores
(`--replicas N` spreads N replicas over the cluster instead). Requests are ordered by length (budget,
then prompt) and handed out in chunks as replicas free up, longest first, so each chunk batches
alike lengths and the last ones are short; each generation streams back to the driver as it
finishes and is stored there. Every sample carries its own seed, so its text does not depend on
which replica ran it or what it shared a batch with (on engines that are batch-invariant: the hf
engine is; llama.cpp is not, see the README). A replica lost with its node gives its unfinished
requests back to the others.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from slmlab.cluster.connect import alive_nodes, describe, headline
from slmlab.cluster.spread import AllLost, Worker, chunked, close_actors, spread
from slmlab.errors import UserError
from slmlab.generate.base import Generation, Request
from slmlab.generate.params import SamplingParams

_STEP_EVERY = 0.5  # seconds: progress steps are summed on the replica and sent at most this often
_DEFAULT_BATCH = 64
_NODES_EVERY = 60.0  # seconds between lines of samples generated per node


def _set_threads(cpus: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(max(1, cpus))


class GeneratorReplica:
    """A Ray actor: one engine with the model loaded, generating the chunks it is given."""

    def __init__(self, backend: str, model: str, settings: dict, cpus: int):
        import ray

        _set_threads(cpus)
        self.node = ray.get_runtime_context().get_node_id()
        self.generator, self.error = None, None
        try:
            from slmlab.generate.backends import open_generator

            self.generator = open_generator(backend, model, **settings)
        except UserError as error:
            self.error = str(error)
        except Exception as error:  # noqa: BLE001 - told to the driver, which fails the run with it
            self.error = headline(error)

    def ready(self) -> tuple[str | None, str, int]:
        """(why the model could not be loaded, or None; this replica's node id; its process id)."""
        return self.error, self.node, os.getpid()

    def describe(self) -> tuple[dict, object, frozenset[str]]:
        """The engine's setup, its tokenizer (the driver renders prompts with it) and capabilities."""
        g = self.generator
        return g.setup(), g.tokenizer, frozenset(g.capabilities)

    def generate(self, chunk: list[tuple], params: SamplingParams):
        """Streams ("done", key, generation) as each request finishes, and ("step", None, tokens)."""
        events: queue.SimpleQueue = queue.SimpleQueue()

        def work() -> None:
            try:
                self.generator.generate([request for _, request in chunk], params,
                                        lambda g: events.put(("done", g.key, g)),
                                        on_step=lambda n: events.put(("step", None, n)))  # fmt: skip
                events.put(("end", None, None))
            except BaseException as error:  # noqa: BLE001 - raised again on the actor's thread below
                events.put(("raised", None, error))

        threading.Thread(target=work, daemon=True).start()
        steps, sent = 0, time.monotonic()
        while True:
            try:
                kind, key, value = events.get(timeout=_STEP_EVERY)
            except queue.Empty:
                kind, key, value = "tick", None, None
            if kind == "step":
                steps += value
            elif kind == "raised":
                raise value
            elif kind == "end":
                break
            elif kind == "done":
                yield kind, key, value
            if steps and (kind == "done" or time.monotonic() - sent >= _STEP_EVERY):
                yield "step", None, steps
                steps, sent = 0, time.monotonic()
        if steps:
            yield "step", None, steps

    def close(self) -> None:
        if self.generator is not None and hasattr(self.generator, "close"):
            self.generator.close()


def placements(ray, replicas: int | None) -> list[dict]:
    """Each replica's Ray options: a GPU each where there are GPUs, else a node's cores each."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in alive_nodes(ray) if n.cpus or n.gpus]
    gpus = sum(n.gpus for n in nodes)
    if gpus:
        return [{"num_gpus": 1, "num_cpus": 1, "cpus": 1}] * (replicas or gpus)
    if replicas is None:
        return [{"num_cpus": n.cpus, "cpus": n.cpus,
                 "scheduling_strategy": NodeAffinitySchedulingStrategy(n.id, soft=False)} for n in nodes]  # fmt: skip
    cpus = max(1, sum(n.cpus for n in nodes) // replicas)
    return [{"num_cpus": cpus, "cpus": cpus, "scheduling_strategy": "SPREAD"}] * replicas


class ReplicaGenerator:
    """The Generator the pipeline sees: `name` is the replicas' engine, so the run's identity is that
    of the same engine run locally. Results come back to the driver, which stores them."""

    overlaps_judging = True  # the driver's cores are free while replicas generate: judge alongside

    def __init__(self, ray, backend: str, model: str, settings: dict, replicas: int | None = None,
                 say: Callable[[str], None] = print):  # fmt: skip
        self.ray, self.say, self.name = ray, say, backend
        actor = ray.remote(max_restarts=0, max_task_retries=0)(GeneratorReplica)
        self.actors, self.workers = [], []
        for placement in placements(ray, replicas):
            options = {k: v for k, v in placement.items() if k != "cpus"}
            self.actors.append(actor.options(**options).remote(backend, model, settings, placement["cpus"]))
        nodes = {n.id: n.short for n in alive_nodes(ray)}
        try:
            for handle, (error, node, _pid) in zip(self.actors, ray.get([a.ready.remote() for a in self.actors]),
                                                   strict=True):  # fmt: skip
                if error:
                    raise UserError(f"a generator replica could not load {model} on node {nodes.get(node, node[:6])}: {error}")
                self.workers.append(Worker(handle, nodes.get(node, node[:6])))
            setup, self.tokenizer, self.capabilities = ray.get(self.actors[0].describe.remote())
        except BaseException:
            self.close()
            raise
        self.capabilities = self.capabilities - {"capture", "steer"}  # hooks reach a local model only
        self.batch_size = settings.get("batch_size", _DEFAULT_BATCH)
        self.per_node: Counter = Counter()
        self._setup = {**setup, "cluster": describe(ray), "replicas": len(self.workers),
                       "replica_nodes": dict(Counter(w.node for w in self.workers))}  # fmt: skip

    def setup(self) -> dict:
        return dict(self._setup)

    def generate(self, requests: Iterable[Request], params: SamplingParams, on_result: Callable[[Generation], None],
                 on_step: Callable[[int], None] | None = None) -> None:  # fmt: skip
        ordered = sorted(requests, key=lambda r: (r.max_new_tokens or params.max_new_tokens, len(r.prompt)), reverse=True)
        if not ordered:
            return
        # A replica's engine batches only what one chunk holds, and drains its batch at the chunk's end:
        # chunks of two batches at least (the quick start's 20 samples on one replica: one chunk, as
        # fast as the local engine; chunks of 5 ran at 29 tokens/s against 67), four a replica where
        # there are many (for balance), and one a replica at least.
        total, replicas = len(ordered), len(self.workers)
        size = min(math.ceil(total / replicas), max(2 * self.batch_size, math.ceil(total / (4 * replicas))))
        chunks = chunked([(r.key, r) for r in ordered], size)

        def start(actor, chunk):
            return actor.generate.options(num_returns="streaming").remote(chunk, params)

        try:
            self._collect(spread(self.ray, self.workers, chunks, start), on_result, on_step)
        except AllLost as lost:
            raise UserError(f"every generator replica was lost ({lost}); the samples generated are stored: "
                            "run the same command again to generate the rest") from None

    def _collect(self, events, on_result, on_step) -> None:
        shown = time.monotonic()
        for worker, kind, _key, value in events:
            if kind == "done":
                self.per_node[worker.node] += 1
                on_result(value)
                if time.monotonic() - shown >= _NODES_EVERY:  # a node that fell behind shows here
                    shown = time.monotonic()
                    self.say("generated so far per node: " + ", ".join(f"{node} {count}" for node, count
                                                                    in sorted(self.per_node.items())))  # fmt: skip
            elif kind == "step" and on_step is not None:
                on_step(value)
            elif kind == "lost":
                self.say(f"generator replica on node {worker.node} was lost ({value}); its unfinished requests "
                         "go to the others")  # fmt: skip

    def close(self) -> None:
        close_actors(self.ray, self.actors)
        self.actors = []
