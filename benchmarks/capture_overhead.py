"""Cost of activation capture: the same generation with and without capturing one layer, in one run.

The same model, prompts (HumanEval), seeds and sampling settings go through BatchGenerator three
ways: no capture, capture of one layer (the issue's target: at most 15% slower), and capture of
every layer with every generated token kept (for reference). Runs alternate over `--repeats`
rounds so drift in machine load hits all three alike; the model load is excluded, and each way's
best round is reported. Completions must be identical: capture only reads the residual stream.

    .venv/bin/python benchmarks/capture_overhead.py [--model smollm2-135m-instruct] [--prompts 24] [--layer 11]
"""

from __future__ import annotations

import argparse
import contextlib
import time

from slmlab.generate import BatchGenerator, Request, SamplingParams
from slmlab.models import load
from slmlab.probe.capture import ActivationCapture, decoder_layers
from slmlab.tasks import load_benchmark
from slmlab.tasks.humaneval import HUMANEVAL_STOPS


def run(loaded, prompts, params, batch_size: int, layers=None, tokens=False):
    results = {}
    capture = (
        ActivationCapture(loaded.model, layers, tokens) if layers is not None else contextlib.nullcontext()
    )
    with capture as active:
        engine = BatchGenerator(loaded.model, loaded.tokenizer, params, HUMANEVAL_STOPS, batch_size=batch_size,
                                capture=active)  # fmt: skip
        requests = [Request(i, prompt, seed=i) for i, prompt in enumerate(prompts)]
        start = time.perf_counter()
        engine.run(requests, lambda g: results.__setitem__(g.key, g))
        seconds = time.perf_counter() - start
    return seconds, sum(g.tokens for g in results.values()), {k: g.text for k, g in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--layer", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    loaded = load(args.model)
    n_layers = len(decoder_layers(loaded.model))
    prompts = [task.prompt for task in load_benchmark("humaneval")[: args.prompts]]
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=1)
    ways = {"no capture": (None, False), f"capture layer {args.layer}": ([args.layer % n_layers], False),
            f"capture all {n_layers} layers + every token": (list(range(n_layers)), True)}  # fmt: skip
    best, texts = {}, {}
    run(loaded, prompts[:2], params, args.batch_size)  # warm-up
    for _ in range(args.repeats):
        for name, (layers, tokens) in ways.items():
            seconds, count, texts[name] = run(loaded, prompts, params, args.batch_size, layers, tokens)
            best[name] = min(best.get(name, float("inf")), seconds)
    base = best["no capture"]
    print(f"{args.model} ({loaded.dtype}), {len(prompts)} HumanEval prompts, batch {args.batch_size}, "
          f"{count} tokens per run, best of {args.repeats}")  # fmt: skip
    for name, seconds in best.items():
        same = "identical completions" if texts[name] == texts["no capture"] else "COMPLETIONS DIFFER"
        print(
            f"{name:40} {seconds:7.2f} s {count / seconds:7.1f} tok/s  {100 * (seconds / base - 1):+6.1f}%  {same}"
        )


if __name__ == "__main__":
    main()
