"""`slmlab cluster status`: what a run on the cluster would get, asked of every node before it runs:
its cores, GPUs and memory, the sandbox tier it gives (or why it refuses), and where the generator
replicas would go."""

from __future__ import annotations

from dataclasses import asdict

from slmlab.cluster.connect import alive_nodes, connect
from slmlab.cluster.replicas import placements
from slmlab.errors import UserError


def _tier_here(requested: str) -> tuple[str | None, str]:
    """On a node: (the tier's label, or None; what it lacks, or why it refuses)."""
    from slmlab.execute.tiers import select_tier

    try:
        tier = select_tier(requested)
    except UserError as refused:
        return None, str(refused)
    return tier.label, ", ".join(tier.gaps)


def cluster_status(address: str | None, sandbox: str = "auto", replicas: int | None = None) -> dict:
    """The cluster's nodes (with the sandbox tier each gives) and the replicas a run would start."""
    from slmlab.execute.tiers import select_tier

    ray = connect(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = alive_nodes(ray)
    wanted = select_tier(sandbox).name if sandbox == "auto" else sandbox
    probe = ray.remote(num_cpus=0)(_tier_here)
    tiers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.id, soft=False)).remote(wanted)
                     for n in nodes])  # fmt: skip
    planned = placements(ray, replicas)
    return {"ray": ray.__version__, "sandbox": wanted,
            "nodes": [{**asdict(n), "short": n.short, "tier": tier, "tier_note": note}
                      for n, (tier, note) in zip(nodes, tiers, strict=True)],
            "replicas": len(planned), "replica_gpus": sum(p.get("num_gpus", 0) for p in planned),
            "replica_cpus": [p["cpus"] for p in planned]}  # fmt: skip
