"""Opening a run's engine where its executor says: in this process, or as replicas on a Ray cluster
(slmlab.cluster.replicas), which the pipeline drives the same way."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from slmlab.errors import UserError
from slmlab.generate.base import Generator
from slmlab.pipeline.settings import ClusterSettings


def open_engine(name: str, model: str, settings: dict, cluster: ClusterSettings, console: Console,
                needs: frozenset[str] = frozenset()) -> Generator:  # fmt: skip
    """The `name` engine with `model` loaded (`settings`: EngineSettings.engine_settings() and more)."""
    if cluster.executor != "ray":
        from slmlab.generate import open_generator

        with console.status(f"loading {model} ({name})"):
            return open_generator(name, model, **settings)
    if needs & {"capture", "steer"}:
        raise UserError("activation capture and steering hook the model in this process: run them with "
                        "--executor local")  # fmt: skip
    from slmlab.cluster.connect import connect
    from slmlab.cluster.replicas import ReplicaGenerator

    with console.status(f"joining the Ray cluster and loading {model} ({name}) on its replicas"):
        generator = ReplicaGenerator(connect(cluster.ray_address), name, model, settings, cluster.replicas,
                                     say=lambda line: console.print(escape(line)))  # fmt: skip
    setup = generator.setup()
    console.print(f"ray: {setup['replicas']} generator replicas on {len(setup['replica_nodes'])} nodes")
    return generator


def sandbox_pool(cluster: ClusterSettings):
    """What makes the sandbox's executor (JudgeSettings.pool): None, this machine's; on the Ray
    executor, a sandbox on every node of the cluster."""
    if cluster.executor != "ray":
        return None
    from functools import partial

    from slmlab.cluster.sandbox import ClusterSandbox

    return partial(ClusterSandbox, address=cluster.ray_address)
