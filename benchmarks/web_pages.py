"""`slmlab serve` on a store of 100,000 samples: time to first byte of its pages, and its memory.

A synthetic store (one eval run of 100,000 samples over 1,000 tasks, a third failing with one of a
few error types, some flagged, plus 20 small runs) is written once into a temporary folder; the
server runs as `slmlab serve` does (uvicorn, in its own process), and each page is fetched
--repeats times: the runs list, the big run's page, its samples filtered by verdict and by text,
a deep page of them, and one sample. Target: under 300 ms each on 2 cores.

    .venv/bin/python benchmarks/web_pages.py [--samples 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from slmlab.store import Store

SERVER = """
import sys, uvicorn
from slmlab.web.app import make_app
uvicorn.run(make_app([sys.argv[1]]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def build(folder: Path, samples: int) -> str:
    with Store(folder / "slmlab.db") as store:
        big, _ = store.open_run("eval", {"model": "synthetic-1b", "benchmark": "humaneval", "n": samples // 1000})
        for small in range(20):
            store.open_run("eval", {"model": f"small-{small}", "benchmark": "mbpp", "n": 1})
        errors = ("AssertionError", "NameError", "TypeError", "SyntaxError")
        rows = []
        for i in range(samples):
            passed = i % 3 != 0
            category = None if passed else errors[i % 4]
            verdict = "passed" if passed else ("syntax_error" if category == "SyntaxError" else "failed_assertion")
            judgement = {"judge": "sandbox", "verdict": verdict, "passed": passed, "category": category,
                         "detail": {"status": verdict, "detail": "" if passed else f"{category}: case {i}", "line": 3}}  # fmt: skip
            generation = {"text": "", "tokens": 40 + i % 200, "prompt_tokens": 120, "finish_reason": "stop",
                          "seconds": 0.5, "flags": {"empty": False, "truncated": i % 17 == 0,
                                                    "repetitive": i % 29 == 0, "mode_collapse": False}}  # fmt: skip
            completion = f"    # sample {i}\n    total = 0\n    for x in values:\n        total += x * {i % 7}\n    return total\n"
            rows.append((big, f"HumanEval/{i // (samples // 1000)}", i % (samples // 1000), i,
                         "def f(values):\n    '''Sum them.'''\n", completion, json.dumps(generation), json.dumps(judgement)))  # fmt: skip
        with store.db:
            store.db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        # What a finished eval run stores of its flags (slmlab.pipeline.summary), counted here.
        flags = {"truncated": sum(i % 17 == 0 for i in range(samples)), "repetitive": sum(i % 29 == 0 for i in range(samples))}
        store.set_metric(big, "quality", {name: {"count": count} for name, count in flags.items()})
        store.finish_run(big)
    return big


def ttfb(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        response.read(1)
        first = time.perf_counter() - started
        response.read()
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slmlab-web-bench-") as scratch:
        started = time.monotonic()
        run = build(Path(scratch), options.samples)
        print(f"store: {options.samples:,} samples written in {time.monotonic() - started:.1f} s "
              f"({(Path(scratch) / 'slmlab.db').stat().st_size / 2**20:.0f} MiB)")  # fmt: skip
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-c", SERVER, scratch, str(port)])
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(base + "/code.css").read()
                    break
                except OSError:
                    time.sleep(0.1)
            pages = {"runs list": "/", "run page": f"/run/0/{run}",
                     "samples, verdict filter": f"/run/0/{run}/samples?verdict=failed_assertion",
                     "samples, text filter": f"/run/0/{run}/samples?text=sample%2099999",
                     "samples, page 1000": f"/run/0/{run}/samples?page=1000",
                     "a sample": f"/run/0/{run}/sample?task=HumanEval/500&index=7"}  # fmt: skip
            for name, path in pages.items():
                times = [ttfb(base + path) for _ in range(options.repeats)]
                print(f"{name:26s} median {1000 * statistics.median(times):7.1f} ms  max {1000 * max(times):7.1f} ms")
            rss = next(line for line in Path(f"/proc/{server.pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
            print(f"server peak memory: {int(rss.split()[1]) / 1024:.0f} MiB")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
