"""Useful tokens per second of slmlab's engines and of llama.cpp alone, side by side in one run.

Workloads (SmolLM2-135M-Instruct unless --model):
  quickstart  the Quick start's eval: 20 HumanEval tasks, chat prompts, greedy, 512 tokens, n = 1;
  sampling    20 HumanEval prompts x 10 samples, temperature 0.8, top-p 0.95, 128 tokens, plain
              prompts ending at HumanEval's stop sequences.
Ways:
  hf          slmlab's hf backend (transformers, slmlab's batched engine, batch 64);
  llamacpp    slmlab's llamacpp backend (llama.cpp's server, 16 slots);
  openai      slmlab's openai backend against llama.cpp's server (16 slots, 16 requests in flight);
  naive, batched (sampling only, not run by default: --ways naive,batched,hf) transformers' own
              `generate`, one call per sample (how the seeds did it) or one per prompt with its n
              samples as the batch and a stop criterion (lm-evaluation-harness, bigcode's harness);
  anchor      llama.cpp's server driven by a bare HTTP client, no slmlab: 16 requests in flight, each
              prompt's samples kept on one slot (its fastest configuration found here), the server
              stopping at the stop sequences (the chat workload's closed code block is watched in
              the stream, as no server stop string can express it).
Useful tokens: each sample's tokens up to the one that ends it (stop, end of sequence or budget).
Each way runs in its own child process, model and server start excluded; the ways are interleaved
over --rounds rounds, as the machine's speed drifts. Run it alone on the machine.

    .venv/bin/python benchmarks/generation_throughput.py [--workloads quickstart,sampling] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from slmlab.generate import Request, SamplingParams, cut_at_stop
from slmlab.generate.base import Generation
from slmlab.generate.concurrent import run_concurrently
from slmlab.generate.llama_server import LlamaServer
from slmlab.generate.llamacpp import DEFAULT_SLOTS, PromptAffinity
from slmlab.generate.stops import CLOSED_CODE_BLOCK
from slmlab.models import resolve
from slmlab.models.load import gguf_tokenizer
from slmlab.tasks import load_benchmark, lookup
from slmlab.tasks.humaneval import HUMANEVAL_STOPS as _STOPS

SLOTS = DEFAULT_SLOTS
_CLOSED_FENCE = re.compile(r"```[^\n]*\n(?:.*?\n)?```", re.DOTALL)


def workload(name: str, model: str, prompts: int) -> tuple[list[Request], SamplingParams]:
    benchmark, tasks = lookup("humaneval"), load_benchmark("humaneval")[:prompts]
    if name == "quickstart":
        tokenizer = gguf_tokenizer(resolve(model))
        stops = benchmark.stops_for("chat")
        requests = []
        for task in tasks:
            prompt = benchmark.prompt(task, "chat", tokenizer, [])
            requests.append(Request((task.task_id, 0), prompt.text, 1234, False, None, stops, prompt.messages))
        return requests, SamplingParams(temperature=0.0, max_new_tokens=512)
    stops = benchmark.stops_for("plain")
    requests = [Request((t.task_id, j), t.prompt, 1000 * i + j, True, None, stops) for i, t in enumerate(tasks)
                for j in range(10)]  # fmt: skip
    return requests, SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=128)


class GeneratedTextStops(StoppingCriteria):
    """bigcode's criterion: every sequence's generated text (not the prompt) holds a stop sequence."""

    def __init__(self, start: int, tokenizer):
        self.start, self.tokenizer = start, tokenizer

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids[:, self.start :], skip_special_tokens=True)
        return torch.tensor([cut_at_stop(t, _STOPS)[1] for t in texts], dtype=torch.bool)


def useful_tokens(ids: list[int], tokenizer, eos: set[int]) -> int:
    """Tokens up to the stop sequence (binary search: a prefix's text holds a stop from some length on)."""
    for i, token in enumerate(ids):
        if token in eos:
            ids = ids[: i + 1]
            break
    if not cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), _STOPS)[1]:
        return len(ids)
    low, high = 1, len(ids)
    while low < high:
        mid = (low + high) // 2
        if cut_at_stop(tokenizer.decode(ids[:mid], skip_special_tokens=True), _STOPS)[1]:
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


def transformers_generate(way: str, model: str, requests: list[Request], params: SamplingParams) -> int:
    from slmlab.models import load

    loaded = load(model)
    eos = {loaded.tokenizer.eos_token_id}
    prompts = list(dict.fromkeys(r.prompt for r in requests))
    n = len(requests) // len(prompts)
    torch.manual_seed(0)
    with torch.inference_mode():
        if way == "naive":
            return sum(hf_generate(loaded.model, loaded.tokenizer, p, 1, params, eos) for p in prompts for _ in range(n))
        return sum(hf_generate(loaded.model, loaded.tokenizer, p, n, params, eos) for p in prompts)


def anchor(server: LlamaServer, requests: list[Request], params: SamplingParams) -> int:
    """llama.cpp alone: its /completion endpoint, no slmlab in the loop (slmlab's thread runner only
    hands out requests, pinned to slots as PromptAffinity does)."""
    import httpx2 as httpx

    client = httpx.Client(base_url=server.url, timeout=None, limits=httpx.Limits(max_connections=SLOTS + 1))

    def one(request: Request, slot: int, _steps) -> Generation:
        body = {"prompt": request.prompt, "n_predict": params.max_new_tokens, "seed": request.seed,
                "temperature": params.temperature, "top_p": params.top_p, "top_k": 0, "min_p": 0.0,
                "cache_prompt": True, "id_slot": slot,
                "stop": [s for s in request.stops if s != CLOSED_CODE_BLOCK]}  # fmt: skip
        if CLOSED_CODE_BLOCK not in request.stops:
            tokens = client.post("/completion", json=body).json()["tokens_predicted"]
            return Generation(request.key, "", tokens, "stop", 0.0, 0)
        tokens, text = 0, ""
        with client.stream("POST", "/completion", json=body | {"stream": True}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    tokens, text = chunk.get("tokens_predicted", tokens), text + chunk.get("content", "")
                    if chunk.get("stop") or _CLOSED_FENCE.search(text):
                        break
        return Generation(request.key, "", tokens, "stop", 0.0, 0)

    results: list[Generation] = []
    run_concurrently(PromptAffinity(requests), one, SLOTS, results.append)
    return sum(g.tokens for g in results)


def measure(way: str, name: str, args) -> dict:
    requests, params = workload(name, args.model, args.prompts)
    resolved = resolve(args.model)
    gguf = Path(resolved.location, resolved.gguf_file)
    if way in ("anchor", "openai"):
        server = LlamaServer(gguf, SLOTS, SLOTS * 4096, args.threads).start()
    if way == "hf":
        from slmlab.generate.backends import open_generator

        engine = open_generator("hf", args.model, batch_size=64)
    elif way == "llamacpp":
        from slmlab.generate.backends import open_generator

        engine = open_generator("llamacpp", args.model, batch_size=SLOTS)
    elif way == "openai":
        from slmlab.generate.openai_api import OpenAIGenerator

        engine = OpenAIGenerator.open(args.model, base_url=server.url + "/v1", concurrency=SLOTS)
    started = time.perf_counter()
    if way in ("naive", "batched"):
        tokens = transformers_generate(way, args.model, requests, params)
    elif way == "anchor":
        tokens = anchor(server, requests, params)
    else:
        results: list[Generation] = []
        engine.generate(requests, params, results.append)
        tokens = sum(g.tokens for g in results)
        if way == "openai":  # the server's count includes what it generated past slmlab's cut
            tokenizer = gguf_tokenizer(resolve(args.model))
            tokens = sum(len(tokenizer(g.text, add_special_tokens=False)["input_ids"]) + (g.finish_reason != "length")
                         for g in results)  # fmt: skip
    seconds = time.perf_counter() - started
    if hasattr(locals().get("engine"), "close"):
        engine.close()
    if way in ("anchor", "openai"):
        server.stop()
    return {"way": way, "workload": name, "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--workloads", default="quickstart,sampling")
    parser.add_argument("--ways", default="hf,llamacpp,openai,anchor")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args)))
        return
    for name in args.workloads.split(","):
        speeds: dict[str, list[float]] = {}
        for round_ in range(args.rounds):
            for way in args.ways.split(","):
                child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", way, name],
                                       capture_output=True, text=True)  # fmt: skip
                if child.returncode:
                    print(f"{name} {way}: failed\n{child.stderr[-2000:]}", flush=True)
                    continue
                r = json.loads(child.stdout.strip().splitlines()[-1])
                speeds.setdefault(way, []).append(r["tokens_per_s"])
                print(f"{name:10s} round {round_ + 1} {way:8s} {r['tokens']:6d} useful tokens in {r['seconds']:6.1f} s"
                      f" = {r['tokens_per_s']:6.1f} tok/s", flush=True)  # fmt: skip
        medians = {way: statistics.median(values) for way, values in speeds.items()}
        print(f"{name}: median tok/s " + ", ".join(f"{w} {v:.1f}" for w, v in medians.items()))
        if "anchor" in medians:
            for way in ("llamacpp", "openai", "hf"):
                if way in medians:
                    print(f"{name}: {way} / llama.cpp alone = {medians[way] / medians['anchor']:.2f}x")


if __name__ == "__main__":
    main()
