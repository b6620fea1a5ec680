"""How torch uses the CPU under slmlab, settled in the environment before torch loads OpenMP
(`slmlab/__init__.py` calls `configure`, so every entry point gets it). Both are defaults: a
user's own OMP_WAIT_POLICY and OMP_NUM_THREADS win. A program that imports torch before slmlab
keeps OpenMP's defaults; set OMP_WAIT_POLICY=PASSIVE in its environment instead.

Waiting: an OpenMP thread that runs out of work spins on its core for a while before it sleeps.
On a machine busy with other work that spinning thread holds a core its partner thread needs, and
every one of the hundreds of parallel regions a token takes can wait out a scheduler time slice.
SmolLM2-135M generation with torch's 2 threads on a 2-core machine beside two CPU-burning
processes ran at 1.4 tok/s with the default and 30 tok/s with PASSIVE, which makes waiting threads
sleep (benchmarks/cpu_contention.py; 4.4 against 47 tok/s with the machine's other load alone).

Threads: OpenMP starts one per CPU this process may run on, and does not see a container's CPU
quota (cgroup), so under a 2-CPU quota on a 64-core host it would start 64 threads that take
turns on 2 CPUs; there the count is capped to the quota. With passive waiting, all the cores
stayed faster than one thread on the busy machine too (30 against 13 tok/s), so that is kept.
"""

from __future__ import annotations

import math
import os
from collections.abc import MutableMapping
from pathlib import Path


def cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs this process's cgroup may use (cgroup v2 cpu.max, v1 cfs quota); None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _affinity() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), no more than its cgroup quota allows."""
    quota = cpu_quota()
    return max(1, min(_affinity(), math.ceil(quota))) if quota else _affinity()


OURS = "SLMLAB_SET_OMP_WAIT_POLICY"


def configure(environ: MutableMapping[str, str] = os.environ) -> None:
    """Passive OpenMP waiting, and no more threads than the CPU quota, unless the user said otherwise."""
    if "OMP_WAIT_POLICY" not in environ:
        environ["OMP_WAIT_POLICY"] = "PASSIVE"
        environ[OURS] = "OMP_WAIT_POLICY"  # so that engines of their own can be started without it
    cpus = usable_cpus()
    if cpus < _affinity():
        environ.setdefault("OMP_NUM_THREADS", str(cpus))


def without_passive_waiting(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """`environ` for a native engine with its own threads (llama.cpp's server), less the passive
    waiting slmlab set for torch: ggml's threads meet at a barrier hundreds of times per token, and
    sleeping there made llama.cpp 3x slower per token (51 against 144 tokens/s, one SmolLM2 stream
    on 2 cores). A policy the user chose is kept."""
    environment = dict(environ)
    if environment.pop(OURS, None):
        environment.pop("OMP_WAIT_POLICY", None)
    return environment
