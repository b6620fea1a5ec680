"""Generation tokens per second when other processes want the CPU too: torch's default OpenMP
waiting against slmlab's settings (slmlab/cpu.py), on the machine as it is and beside CPU burners.

Each setting is a worker process that loads the model once and then, on each request, generates
the same batch with slmlab's BatchGenerator (greedy, no stops, so every run is the same work); the
settings take turns, so a change in the machine's load hits them all alike. Settings:

- default: torch imported before slmlab, OMP_WAIT_POLICY unset (what slmlab did before), all cores;
- slmlab: slmlab imported first (passive waiting), all cores;
- slmlab, 1 thread: the same on one thread, the other choice of thread count.

    .venv/bin/python benchmarks/cpu_contention.py [--burners 2] [--repeats 2] [--max-new-tokens 8]

The model load is not timed. With OpenMP's default waiting a loaded run can be 20x slower, so
keep --max-new-tokens small.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import sys, time
if sys.argv[1] == "default":
    import torch  # OpenMP reads its settings now, before slmlab can set any
import slmlab
import torch
if sys.argv[2] != "all":
    torch.set_num_threads(int(sys.argv[2]))
from slmlab.generate import BatchGenerator, Request, SamplingParams
from slmlab.models import load

loaded = load(sys.argv[3])
params = SamplingParams(temperature=0.0, max_new_tokens=int(sys.argv[4]), seed=0)
prompts = ["def fibonacci(n):\n", "def is_prime(n):\n", "def reverse_words(s):\n", "def mean(xs):\n"]

def once():
    engine = BatchGenerator(loaded.model, loaded.tokenizer, params, (), batch_size=len(prompts))
    tokens = []
    started = time.perf_counter()
    engine.run([Request(i, p, i) for i, p in enumerate(prompts)], lambda g: tokens.append(g.tokens))
    return sum(tokens) / (time.perf_counter() - started)

once()
print("ready", flush=True)
for _ in sys.stdin:
    print(f"{once():.2f}", flush=True)
"""

SETTINGS = {"default (OMP policy unset), all cores": ("default", "all"),
            "slmlab (PASSIVE), all cores": ("slmlab", "all"),
            "slmlab (PASSIVE), 1 thread": ("slmlab", "1")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--burners", type=int, default=2, help="CPU-burning processes in the loaded phase")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    workers = {name: subprocess.Popen([sys.executable, "-c", WORKER, how, threads, args.model, str(args.max_new_tokens)],
                                      env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for name, (how, threads) in SETTINGS.items()}  # fmt: skip
    burners: list[subprocess.Popen] = []
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for worker in workers.values():
            assert worker.stdout.readline().strip() == "ready"
        for phase in ("as it is", f"{args.burners} burners"):
            if phase != "as it is":
                burners = [
                    subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)
                ]
                time.sleep(1)
            for repeat in range(args.repeats):
                for name, worker in workers.items():
                    worker.stdin.write("go\n")
                    worker.stdin.flush()
                    value = float(worker.stdout.readline())
                    results.setdefault((phase, name), []).append(value)
                    print(f"{phase:10s} #{repeat} {name:38s} {value:6.1f} tok/s (load average "
                          f"{os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
        for worker in workers.values():
            worker.stdin.close()
            worker.wait(30)
    print(f"\n{os.cpu_count()} CPUs, {args.max_new_tokens} new tokens x 4 prompts per run")
    for (phase, name), values in results.items():
        print(f"{phase:10s} {name:38s} mean {sum(values) / len(values):6.1f} tok/s  "
              f"({', '.join(f'{v:.1f}' for v in values)})")  # fmt: skip


if __name__ == "__main__":
    main()
