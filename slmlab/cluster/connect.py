"""Joining a Ray cluster, and what it holds.

`--ray-address ADDR` joins the cluster there (`auto`: the one this machine belongs to, as `ray
start` left it); without it a one-machine cluster is started for the run and ends with it. The
run records the cluster it used (`describe`): its nodes, their CPUs, GPUs and memory, and versions.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from slmlab.errors import UserError

MISSING = "the ray executor needs Ray, an optional extra: pip install 'slmlab[ray]' (or ./scripts/setup.sh --with-ray)"
# Passed to every worker: where models are cached and found on a cluster made on one machine (a
# real cluster's nodes set their own).
_PASSED_ON = ("SLMLAB_HOME", "SLMLAB_LLAMA_SERVER", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def require_ray():
    """The ray module, or one line on how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(MISSING) from None
    return ray


def connect(address: str | None = None):
    """Ray, joined to the cluster at `address` (or to a new one on this machine), quiet on the console."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address:
        _check_reachable(address)
    env = {name: os.environ[name] for name in _PASSED_ON if name in os.environ}
    try:
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 runtime_env={"env_vars": env} if env else None)  # fmt: skip
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as error:
        raise UserError(f"could not join the Ray cluster at {address or 'this machine'} ({headline(error)}): start one with "
                        "`ray start --head`, or leave out --ray-address for one on this machine") from None  # fmt: skip
    return ray


def headline(error: BaseException) -> str:
    """An error in one line: its type and its message's first line (a load error can run on for pages)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _check_reachable(address: str) -> None:
    """One line at once for a cluster that is not there: Ray itself retries a dead address for minutes."""
    if address.startswith("ray://"):
        return  # Ray Client: its own connection says what is wrong
    if address == "auto":
        recorded = Path(tempfile.gettempdir(), "ray", "ray_current_cluster")
        address = os.environ.get("RAY_ADDRESS") or (recorded.read_text().strip() if recorded.is_file() else "")
        if not address:
            raise UserError("--ray-address auto: no Ray cluster was started on this machine; start one with "
                            "`ray start --head`, or give its address (host:port)")  # fmt: skip
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: give the cluster's host:port (e.g. 10.0.0.1:6379), auto or ray://...")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise UserError(f"no Ray cluster answers at {address} ({error.strerror or error}): start one there with "
                        "`ray start --head`, or leave out --ray-address for one on this machine") from None  # fmt: skip


@dataclass(frozen=True)
class Node:
    id: str
    address: str
    cpus: int
    gpus: int
    memory_gb: float

    @property
    def short(self) -> str:
        """How progress lines name it: its address and the start of its id (nodes may share an address)."""
        return f"{self.address}/{self.id[:6]}"


def alive_nodes(ray) -> list[Node]:
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        nodes.append(Node(node["NodeID"], node.get("NodeManagerAddress", "?"), int(resources.get("CPU", 0)),
                          int(resources.get("GPU", 0)), round(resources.get("memory", 0) / 2**30, 1)))  # fmt: skip
    return sorted(nodes, key=lambda n: (n.address, n.id))


def describe(ray) -> dict:
    """What a run records of the cluster it used."""
    import slmlab

    nodes = alive_nodes(ray)
    return {"executor": "ray", "ray": ray.__version__, "python": platform.python_version(),
            "slmlab": getattr(slmlab, "__version__", "?"), "nodes": [asdict(n) for n in nodes],
            "cpus": sum(n.cpus for n in nodes), "gpus": sum(n.gpus for n in nodes)}  # fmt: skip


def node_of(ray, node_id: str) -> str:
    """A node's short name, for progress lines."""
    return next((n.short for n in alive_nodes(ray) if n.id == node_id), node_id[:6])
