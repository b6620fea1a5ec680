"""The Ray executor against the local one, on the same machine, in one run.

  overhead  the Quick start's eval (SmolLM2-135M-Instruct, 20 HumanEval tasks, greedy, 512 tokens)
            with --executor local and with --executor ray (a one-node cluster started by the run),
            interleaved over --rounds rounds; beside it Ray's own start-up (ray.init of a new local
            cluster, one actor's round trip, shutdown) measured alone. Target: Ray adds no more
            than its start-up.
  scaling   an eval (--scaling-tasks HumanEval tasks x 4 samples, temperature 0.8, 128 tokens) on
            a local Ray cluster of 1, 2 and 3 simulated nodes (ray.cluster_utils), each node one
            logical CPU and its replica one torch thread: generated samples per second, and how the
            samples spread over the nodes. On 2 cores, 3 nodes oversubscribe the machine: this shows
            that the work spreads and the driver keeps up, not a speed-up.

Every eval runs as the CLI a user runs (a child process), into a fresh store. Run it alone on the
machine: .venv/bin/python benchmarks/ray_executor.py [--parts overhead,scaling] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "smollm2-135m-instruct"
QUICKSTART = ["--model", MODEL, "--benchmark", "humaneval", "--limit", "20"]


def slmlab(args: list[str], out: Path) -> tuple[float, dict, str]:
    """(wall seconds, the run's summary, its stdout) of one `slmlab eval`."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "slmlab.cli", "eval", *args, "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, "SLMLAB_PROGRESS_INTERVAL": "600"})  # fmt: skip
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"slmlab eval {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads(next(out.glob("eval-*/summary.json")).read_text())
    return wall, summary, done.stdout


RAY_START = """
import time, ray
started = time.monotonic()
ray.init(address="local", include_dashboard=False, log_to_driver=False)
@ray.remote
class Echo:
    def ping(self):
        return 1
assert ray.get(Echo.remote().ping.remote()) == 1
ray.shutdown()
print(time.monotonic() - started)
"""


def ray_start_up() -> float:
    done = subprocess.run([sys.executable, "-c", RAY_START], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def overhead(rounds: int, scratch: Path) -> None:
    times: dict[str, list[float]] = {"local": [], "ray": [], "ray start-up": []}
    for r in range(rounds):
        times["ray start-up"].append(ray_start_up())
        for way, extra in (("local", []), ("ray", ["--executor", "ray"])):
            wall, summary, _ = slmlab(QUICKSTART + extra, scratch / f"{way}-{r}")
            times[way].append(wall)
            p1 = summary["pass_at_k"]["1"]["value"]
            print(f"round {r + 1}: {way:5s} {wall:6.1f} s  (pass@1 {p1:.3f})", flush=True)
        print(f"round {r + 1}: ray start-up {times['ray start-up'][-1]:.1f} s", flush=True)
    local, ray, start = (statistics.median(times[k]) for k in ("local", "ray", "ray start-up"))
    print(f"\noverhead (medians of {rounds} rounds): local {local:.1f} s, ray {ray:.1f} s: ratio {ray / local:.2f}x; "
          f"ray adds {ray - local:.1f} s against its start-up of {start:.1f} s")  # fmt: skip


def scaling(tasks: int, scratch: Path) -> None:
    from ray.cluster_utils import Cluster

    args = ["--model", MODEL, "--benchmark", "humaneval", "--limit", str(tasks), "--n", "4", "--temperature", "0.8",
            "--max-new-tokens", "128", "--prompt-mode", "plain"]  # fmt: skip
    rates = {}
    for nodes in (1, 2, 3):
        cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        try:
            wall, summary, stdout = slmlab(args + ["--executor", "ray", "--ray-address", cluster.address],
                                           scratch / f"nodes-{nodes}")  # fmt: skip
        finally:
            cluster.shutdown()
        setup = summary["setup"]
        samples = sum(setup["generated_per_node"].values())
        rates[nodes] = samples / setup["seconds"]
        spread = sorted(setup["generated_per_node"].values(), reverse=True)
        print(f"{nodes} node(s): {samples} samples generated in {setup['seconds']:.1f} s = {rates[nodes]:.2f} samples/s "
              f"({setup['tokens_per_s']:.0f} tok/s; per node {spread}; wall {wall:.1f} s)", flush=True)  # fmt: skip
    print("\nscaling: " + ", ".join(f"{n} node(s) {rate:.2f} samples/s ({rate / rates[1]:.2f}x)" for n, rate in rates.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="overhead,scaling")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scaling-tasks", type=int, default=12)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slmlab-ray-bench-") as scratch:
        for part in options.parts.split(","):
            print(f"== {part}", flush=True)
            if part == "overhead":
                overhead(options.rounds, Path(scratch))
            elif part == "scaling":
                scaling(options.scaling_tasks, Path(scratch))
            else:
                raise SystemExit(f"unknown part {part!r}: overhead or scaling")


if __name__ == "__main__":
    main()
