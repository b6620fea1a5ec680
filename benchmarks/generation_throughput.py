"""Useful tokens per second of three ways to sample n completions per HumanEval prompt, in one run.

(a) naive: one `model.generate` call per sample (how the seeds did it);
(b) batched: one `model.generate` call per prompt with its n samples as the batch and a stopping
    criterion on the generated text (how lm-evaluation-harness and bigcode-evaluation-harness do it);
(c) slmlab: BatchGenerator, which refills a batch slot the moment its sample stops.

Same model, dtype (slmlab's choice for this machine unless --dtype), prompts, sampling settings and HumanEval stop sequences for all three. Useful
tokens: each sample's tokens up to and including the one that completes its stop sequence (or its
end-of-sequence token, or the budget). Each way runs in its own child process so its peak memory
(max RSS) is its own; the model load is excluded from the timings.

    .venv/bin/python benchmarks/generation_throughput.py [--prompts 20] [--n 10] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from slmlab.generate import BatchGenerator, Request, SamplingParams, cut_at_stop
from slmlab.models import load
from slmlab.tasks import load_benchmark
from slmlab.tasks.humaneval import HUMANEVAL_STOPS


class GeneratedTextStops(StoppingCriteria):
    """bigcode's criterion: every sequence's generated text (not the prompt) holds a stop sequence."""

    def __init__(self, start: int, tokenizer):
        self.start, self.tokenizer = start, tokenizer

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids[:, self.start :], skip_special_tokens=True)
        return torch.tensor([cut_at_stop(t, HUMANEVAL_STOPS)[1] for t in texts], dtype=torch.bool)


def useful_tokens(ids: list[int], tokenizer, eos: set[int]) -> int:
    """Tokens up to the stop sequence (binary search: a prefix's text holds a stop from some length on)."""
    for i, token in enumerate(ids):
        if token in eos:
            ids = ids[: i + 1]
            break
    if not cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), HUMANEVAL_STOPS)[1]:
        return len(ids)
    low, high = 1, len(ids)
    while low < high:
        mid = (low + high) // 2
        if cut_at_stop(tokenizer.decode(ids[:mid], skip_special_tokens=True), HUMANEVAL_STOPS)[1]:
            high = mid
        else:
            low = mid + 1
    return low


def hf_generate(model, tokenizer, prompt: str, n: int, params: SamplingParams, eos: set[int]) -> int:
    encoded = tokenizer(prompt, return_tensors="pt")
    start = encoded.input_ids.shape[1]
    sampling = (
        dict(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        if not params.greedy
        else dict(do_sample=False)
    )
    out = model.generate(**encoded, **sampling, max_new_tokens=params.max_new_tokens, num_return_sequences=n,
                         stopping_criteria=StoppingCriteriaList([GeneratedTextStops(start, tokenizer)]),
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)  # fmt: skip
    return sum(useful_tokens(row[start:].tolist(), tokenizer, eos) for row in out)


def measure(way: str, args) -> dict:
    loaded = load(args.model, dtype=args.dtype)
    model, tokenizer = loaded.model, loaded.tokenizer
    torch.manual_seed(0)
    prompts = [t.prompt for t in load_benchmark("humaneval")[: args.prompts]]
    params = SamplingParams(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens
    )
    eos = {tokenizer.eos_token_id}
    started = time.perf_counter()
    tokens = 0
    with torch.inference_mode():
        if way == "naive":
            tokens = sum(
                hf_generate(model, tokenizer, p, 1, params, eos) for p in prompts for _ in range(args.n)
            )
        elif way == "batched":
            tokens = sum(hf_generate(model, tokenizer, p, args.n, params, eos) for p in prompts)
        else:
            results = []
            engine = BatchGenerator(model, tokenizer, params, HUMANEVAL_STOPS, batch_size=args.batch_size)
            engine.run([Request((i, j), p, i * 1000 + j) for i, p in enumerate(prompts) for j in range(args.n)],
                       results.append)  # fmt: skip
            tokens = sum(g.tokens for g in results)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"way": way, "dtype": loaded.dtype, "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 2),
            "peak_rss_mb": round(peak_mb)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument(
        "--dtype", default="auto", help="auto: what slmlab picks here (float32 on CPUs without native bf16)"
    )
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ways", default="naive,batched,slmlab")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return
    results = {}
    for way in args.ways.split(","):
        child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", way],
                               capture_output=True, text=True, check=True)  # fmt: skip
        results[way] = json.loads(child.stdout.strip().splitlines()[-1])
        r = results[way]
        print(f"{way:8s} {r['tokens']:6d} useful tokens in {r['seconds']:7.1f} s = {r['tokens_per_s']:7.1f} tok/s, "
              f"peak RSS {r['peak_rss_mb']} MB ({r['dtype']})", flush=True)  # fmt: skip
    if "slmlab" in results:
        for anchor in ("naive", "batched"):
            if anchor in results:
                ratio = results["slmlab"]["tokens_per_s"] / results[anchor]["tokens_per_s"]
                print(f"slmlab / {anchor}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
