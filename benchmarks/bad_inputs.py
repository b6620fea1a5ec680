"""Bad inputs through the installed `slmlab` command: does each one end in one clear line?

About 100 mistakes a user makes (usage mistakes, bad values, bad files, unknown names), one per
case, each run in a fresh temporary folder as the working directory, with SLMLAB_HOME pointing at
the user's normal model cache so that the built-in models are found. Each result is classified:

    clear      non-zero exit, exactly one non-empty line on stderr, no traceback, and that line
               names the problem (it matches every pattern the case lists: the flag, value or file
               at fault). What goes to stdout (progress, status lines) is not looked at.
    unclear    non-zero exit and no traceback, but no stderr line, several, or one that does not
               name the problem.
    traceback  "Traceback" anywhere in stdout or stderr (rich's boxed "Traceback (most recent call
               last)" included).
    exit-0     exit code 0 although the input was bad.
    timeout    still running after the per-case limit (killed with its process group).

Two kinds of case are not errors: a command group named with no subcommand may show its help
instead (clear when the help names the group's subcommands and nothing crashes), and
`slmlab --version` must exit 0 and print the version (else it is unclear, or a traceback).

`left_run` counts the run records a case added to any store (slmlab.db) under its folder: a
command that fails validation must leave none.

    .venv/bin/python benchmarks/bad_inputs.py [--only PATTERN] [--json FILE] [--timeout S] [--all]

The default table holds about 100 cases, every command and subcommand; --all adds about 60 more of
the same kinds (other flags, other files).
Cases run one after the other; the whole table takes a few minutes on 2 CPU cores (a handful of
cases load the small built-in smollm2-135m-instruct, with --limit 1 --max-new-tokens 8).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

MODEL = "smollm2-135m-instruct"
SMALL = ["--model", MODEL, "--limit", "1", "--max-new-tokens", "8"]  # an eval that would be quick
TRACEBACK = re.compile(r"Traceback|^\s*File \".*\", line \d+", re.MULTILINE)


# ---- fixtures: files a case's folder holds before the command runs ------------------------------
def files(**contents: str | bytes) -> Callable[[Path], None]:
    """Write each file (name -> text or bytes; '__' in a name stands for '/'); a name ending in
    '_dir' is made an empty folder of that name without the suffix."""

    def setup(root: Path) -> None:
        for name, text in contents.items():
            if name.endswith("_dir"):
                (root / name.removesuffix("_dir").replace("__", "/")).mkdir(parents=True, exist_ok=True)
                continue
            path = root / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def store_with_runs(root: Path, folder: str = "slmlab-runs", *, disjoint: bool = False,
                    unchecked: bool = False) -> None:  # fmt: skip
    """A store with two finished eval runs, eval-aaaa... and eval-bbbb..., one sample per task."""
    from slmlab.judgement import Judgement
    from slmlab.store import SampleRow, Store

    with Store(root / folder / "slmlab.db") as store:
        for prefix, tasks in (("aaaa", ["HumanEval/0", "HumanEval/1"]),
                              ("bbbb", ["HumanEval/2", "HumanEval/3"] if disjoint else
                               ["HumanEval/0", "HumanEval/1"])):  # fmt: skip
            run_id = f"eval-{prefix}000000000000"
            store.db.execute(
                "INSERT INTO runs (run_id, kind, config, environment, created, finished) "
                "VALUES (?, 'eval', ?, '{}', ?, ?)",
                (run_id, json.dumps({"model": f"m-{prefix}", "benchmark": "humaneval", "n": 1}),
                 time.time(), time.time()),
            )  # fmt: skip
            for i, task in enumerate(tasks):
                verdict = "passed" if i % 2 == 0 else "failed_assertion"
                judgement = None if unchecked else Judgement("sandbox", verdict, verdict == "passed")
                store.add_sample(run_id, SampleRow(task, 0, 0, "def f():", "    return 1", {}, judgement))


def two_runs(**kwargs) -> Callable[[Path], None]:
    return lambda root: store_with_runs(root, **kwargs)


ARCH = json.dumps({"arch_type": "transformer", "num_layers": 1, "hidden_dim": 16, "num_heads": 2})
TEXT = "def add(a, b):\n    return a + b\n" * 50
TRAIN_FILES = {"arch.json": ARCH, "train.txt": TEXT, "val.txt": TEXT}
TRAIN = ["train", "--arch-json", "arch.json", "--train-path", "train.txt", "--val-path", "val.txt",
         "--experiment-name", "t", "--tokenizer", "char", "--max-steps", "1", "--batch-size", "2", "--seq-len", "16",
         "--eval-every", "1", "--eval-batches", "1", "--warmup-steps", "0"]  # fmt: skip


def train_with(flag: str, value: str) -> list[str]:
    """TRAIN with one flag's value replaced (given once, as a user would)."""
    args = list(TRAIN)
    args[args.index(flag) + 1] = value
    return args


SEARCH = ["train", "search", "--arch-json", "arch.json", "--train-path", "train.txt",
          "--val-path", "val.txt", "--tokenizer", "char", "--max-steps", "1", "--no-collapse"]  # fmt: skip
SAMPLE = json.dumps({"task_id": "HumanEval/0", "completion": "    return False\n"})
WITH_SAMPLE = files(**{"s.jsonl": SAMPLE})  # the folder of most execute cases
PAIRS = "\n".join(json.dumps({"language": "python", "name": f"add{i}", "doc": "Add two numbers.",
                              "code": f"def add{i}(a, b):\n    return a + b", "signature": f"def add{i}(a, b):",
                              "split": "train"}) for i in range(3))  # fmt: skip
BAD_JSONL = "{not json\n[1, 2\n\x00garbage\n"


@dataclass
class Case:
    name: str
    args: list[str]
    expect: list[str]  # regexes (case-insensitive) the stderr line must all match
    setup: Callable[[Path], None] | None = None
    kind: str = "error"  # error | help (a group without subcommand may show help) | ok (must exit 0)
    timeout: float | None = None


def C(name, args, *expect, setup=None, kind="error", timeout=None) -> Case:  # noqa: N802
    return Case(name, list(args), list(expect), setup, kind, timeout)


def cases() -> list[Case]:
    version = re.escape(metadata.version("slmlab"))
    # fmt: off
    return [
        # ---- the top level -------------------------------------------------------------------
        C("top/no-args", [], "execute", "eval", "study", kind="help"),
        C("top/unknown-command", ["evaluate"], "evaluate"),
        C("top/unknown-group-typo", ["modles", "list"], "modles"),
        C("top/unknown-option", ["--verbose"], "--verbose"),
        C("top/version", ["--version"], version, kind="ok"),
        # ---- eval: usage ---------------------------------------------------------------------
        C("eval/no-args", ["eval"], "--model"),
        C("eval/misspelled-flag", ["eval", *SMALL, "--benchmrk", "humaneval"], "--benchmrk"),
        C("eval/n-abc", ["eval", *SMALL, "--n", "abc"], r"(--|\b)n\b", "abc"),
        C("eval/extra-argument", ["eval", *SMALL, "humaneval"], "humaneval"),
        # ---- eval: bad values ----------------------------------------------------------------
        C("eval/n-zero", ["eval", *SMALL, "--n", "0"], r"\bn\b", "0"),
        C("eval/n-negative", ["eval", *SMALL, "--n", "-3"], r"\bn\b"),
        C("eval/limit-zero", ["eval", "--model", MODEL, "--limit", "0"], "limit"),
        C("eval/temperature-negative", ["eval", *SMALL, "--temperature", "-1"], "temperature"),
        C("eval/top-p-zero", ["eval", *SMALL, "--top-p", "0"], "top.p"),
        C("eval/max-new-tokens-zero", ["eval", "--model", MODEL, "--limit", "1", "--max-new-tokens", "0"],
          "max.new.tokens"),
        C("eval/batch-size-zero", ["eval", *SMALL, "--batch-size", "0"], "batch.size"),
        C("eval/timeout-zero", ["eval", *SMALL, "--timeout", "0"], "timeout"),
        C("eval/few-shot-99", ["eval", *SMALL, "--few-shot", "99"], "few.shot"),
        C("eval/k-zero", ["eval", *SMALL, "--k", "0"], r"\bk\b"),
        C("eval/k-abc", ["eval", *SMALL, "--k", "abc"], "abc"),
        C("eval/sandbox-unknown", ["eval", *SMALL, "--sandbox", "docker"], "sandbox", "docker"),
        C("eval/dtype-unknown", ["eval", *SMALL, "--dtype", "fp8"], "dtype", "fp8"),
        C("eval/prompt-mode-unknown", ["eval", *SMALL, "--prompt-mode", "instruct"], "prompt.mode", "instruct"),
        C("eval/device-cuda-on-cpu", ["eval", *SMALL, "--device", "cuda"], "cuda"),
        C("eval/device-tpu", ["eval", *SMALL, "--device", "tpu"], "tpu"),
        C("eval/capture-layers-99", ["eval", *SMALL, "--capture-layers", "99"], "99"),
        C("eval/capture-layers-abc", ["eval", *SMALL, "--capture-layers", "abc"], "capture.layers"),
        C("eval/steer-layer-alone", ["eval", *SMALL, "--steer-layer", "3"], "steer"),
        C("eval/steer-direction-missing", ["eval", *SMALL, "--steer-layer", "3", "--steer-direction",
                                           "nope.npy", "--steer-scale", "1"], "nope.npy"),
        C("eval/steer-direction-not-npy", ["eval", *SMALL, "--steer-layer", "3", "--steer-direction",
                                           "dir.npy", "--steer-scale", "1"], "dir.npy",
          setup=files(**{"dir.npy": "not an array"})),
        # ---- eval: models, benchmarks, files -------------------------------------------------
        C("eval/unknown-model", ["eval", "--model", "nosuchmodel", "--limit", "1"], "nosuchmodel"),
        C("eval/unknown-hub-id-offline", ["eval", "--model", "nosuchorg/nosuchmodel", "--limit", "1"],
          "nosuchorg/nosuchmodel"),
        C("eval/model-empty-folder", ["eval", "--model", "./emptymodel", "--limit", "1"], "emptymodel",
          setup=files(emptymodel_dir="")),
        C("eval/model-gguf-missing", ["eval", "--model", "nope.gguf", "--limit", "1"], "nope.gguf"),
        C("eval/model-gguf-garbage", ["eval", "--model", "junk.gguf", "--limit", "1", "--max-new-tokens",
                                      "8"], "junk.gguf", setup=files(**{"junk.gguf": b"\x00" * 64})),
        C("eval/unknown-benchmark", ["eval", *SMALL, "--benchmark", "nosuchbench"], "nosuchbench"),
        C("eval/benchmark-jsonl-missing", ["eval", *SMALL, "--benchmark", "tasks.jsonl"], "tasks.jsonl"),
        C("eval/benchmark-jsonl-empty", ["eval", *SMALL, "--benchmark", "empty.jsonl"], "empty.jsonl",
          setup=files(**{"empty.jsonl": ""})),
        C("eval/benchmark-jsonl-malformed", ["eval", *SMALL, "--benchmark", "bad.jsonl"], "bad.jsonl",
          setup=files(**{"bad.jsonl": BAD_JSONL})),
        C("eval/mbpp-without-data", ["eval", *SMALL, "--benchmark", "mbpp", "--data-dir", "nodata"],
          "mbpp|nodata"),
        C("eval/out-read-only", ["eval", *SMALL, "--out", "/proc/x"], "/proc/x"),
        C("eval/out-is-a-file", ["eval", *SMALL, "--out", "afile"], "afile", setup=files(afile="x")),
        C("eval/out-corrupt-store", ["eval", *SMALL, "--out", "st"], "slmlab.db|st",
          setup=files(**{"st__slmlab.db": b"this is not sqlite" * 100})),
        # ---- run (YAML config) ---------------------------------------------------------------
        C("run/no-args", ["run"], "config"),
        C("run/missing-file", ["run", "nope.yaml"], "nope.yaml"),
        C("run/empty-file", ["run", "empty.yaml"], "empty.yaml", setup=files(**{"empty.yaml": ""})),
        C("run/directory", ["run", "cfgdir"], "cfgdir", setup=files(cfgdir_dir="")),
        C("run/malformed-yaml", ["run", "bad.yaml"], "bad.yaml", "line",
          setup=files(**{"bad.yaml": "model: [smollm2\nlimit: : 1\n"})),
        C("run/not-a-mapping", ["run", "list.yaml"], "list.yaml", setup=files(**{"list.yaml": "- a\n- b\n"})),
        C("run/misspelt-key", ["run", "typo.yaml"], "modle",
          setup=files(**{"typo.yaml": f"modle: {MODEL}\nlimit: 1\nmax_new_tokens: 8\n"})),
        C("run/missing-model", ["run", "nomodel.yaml"], "model",
          setup=files(**{"nomodel.yaml": "benchmark: humaneval\nlimit: 1\n"})),
        C("run/bad-value", ["run", "neg.yaml"], r"\bn\b",
          setup=files(**{"neg.yaml": f"model: {MODEL}\nlimit: 1\nmax_new_tokens: 8\nn: -1\n"})),
        C("run/sandbox-unknown", ["run", "sb.yaml"], "sandbox", "docker",
          setup=files(**{"sb.yaml": f"model: {MODEL}\nlimit: 1\nmax_new_tokens: 8\nsandbox: docker\n"})),
        # ---- runs ----------------------------------------------------------------------------
        C("runs/no-store", ["runs", "--out", "nostore"], "nostore"),
        C("runs/out-is-a-file", ["runs", "--out", "afile"], "afile", setup=files(afile="x")),
        C("runs/corrupt-store", ["runs", "--out", "st"], "slmlab.db|st",
          setup=files(**{"st__slmlab.db": b"this is not sqlite" * 100})),
        C("runs/extra-argument", ["runs", "foo"], "foo"),
        # ---- compare -------------------------------------------------------------------------
        C("compare/no-args", ["compare"], "run_a"),
        C("compare/one-run", ["compare", "eval-aaaa"], "run_b", setup=two_runs()),
        C("compare/no-store", ["compare", "A", "B"], "store|slmlab-runs"),
        C("compare/unknown-run", ["compare", "eval-aaaa", "nosuchrun"], "nosuchrun", setup=two_runs()),
        C("compare/ambiguous-prefix", ["compare", "eval", "eval-aaaa"], "eval", setup=two_runs()),
        C("compare/k-zero", ["compare", "eval-aaaa", "eval-bbbb", "--k", "0"], r"\bk\b", setup=two_runs()),
        C("compare/k-abc", ["compare", "eval-aaaa", "eval-bbbb", "--k", "abc"], "abc", setup=two_runs()),
        C("compare/k-above-n", ["compare", "eval-aaaa", "eval-bbbb", "--k", "5"], r"\bk\b|5", setup=two_runs()),
        C("compare/no-shared-task", ["compare", "eval-aaaa", "eval-bbbb"], "share|common",
          setup=two_runs(disjoint=True)),
        C("compare/unexecuted-runs", ["compare", "eval-aaaa", "eval-bbbb"], "execut|finish",
          setup=two_runs(unchecked=True)),
        # ---- probe ---------------------------------------------------------------------------
        C("probe/no-args", ["probe"], "run"),
        C("probe/no-store", ["probe", "eval-aaaa"], "store|slmlab-runs"),
        C("probe/unknown-run", ["probe", "nosuchrun"], "nosuchrun", setup=two_runs()),
        C("probe/run-without-capture", ["probe", "eval-aaaa"], "capture", setup=two_runs()),
        C("probe/kind-unknown", ["probe", "eval-aaaa", "--kind", "last_token"], "kind|last_token",
          setup=two_runs()),
        C("probe/layer-abc", ["probe", "eval-aaaa", "--layer", "abc"], "layer", setup=two_runs()),
        # ---- sandbox -------------------------------------------------------------------------
        C("sandbox/extra-argument", ["sandbox", "bwrap"], "bwrap"),
        C("sandbox/unknown-option", ["sandbox", "--tier", "bwrap"], "--tier"),
        # ---- execute -------------------------------------------------------------------------
        C("execute/no-args", ["execute"], "sample"),
        C("execute/missing-file", ["execute", "nope.jsonl"], "nope.jsonl"),
        C("execute/empty-file", ["execute", "empty.jsonl"], "empty.jsonl", setup=files(**{"empty.jsonl": ""})),
        C("execute/directory", ["execute", "sdir"], "sdir", setup=files(sdir_dir="")),
        C("execute/every-line-malformed", ["execute", "bad.jsonl"], "bad.jsonl",
          setup=files(**{"bad.jsonl": BAD_JSONL})),
        C("execute/not-utf8", ["execute", "latin.jsonl"], "latin.jsonl|utf",
          setup=files(**{"latin.jsonl": b'{"task_id": "HumanEval/0", "completion": "\xe9\xff"}\n'})),
        C("execute/unknown-task-ids", ["execute", "tid.jsonl"], "Nope/1",
          setup=files(**{"tid.jsonl": json.dumps({"task_id": "Nope/1", "completion": "pass"}) + "\n"})),
        C("execute/unknown-benchmark", ["execute", "s.jsonl", "--benchmark", "nosuchbench"], "nosuchbench",
          setup=WITH_SAMPLE),
        C("execute/mbpp-without-data", ["execute", "s.jsonl", "--benchmark", "mbpp", "--data-dir", "nodata"],
          "mbpp|nodata", setup=WITH_SAMPLE),
        C("execute/sandbox-unknown", ["execute", "s.jsonl", "--sandbox", "docker"], "docker",
          setup=WITH_SAMPLE),
        C("execute/timeout-zero", ["execute", "s.jsonl", "--timeout", "0"], "timeout",
          setup=WITH_SAMPLE),
        C("execute/timeout-abc", ["execute", "s.jsonl", "--timeout", "abc"], "abc",
          setup=WITH_SAMPLE),
        C("execute/memory-mb-zero", ["execute", "s.jsonl", "--memory-mb", "0"], "memory",
          setup=WITH_SAMPLE),
        C("execute/workers-zero", ["execute", "s.jsonl", "--workers", "0"], "workers",
          setup=WITH_SAMPLE),
        C("execute/park-unknown", ["execute", "s.jsonl", "--park", "sometimes"], "park|sometimes",
          setup=WITH_SAMPLE),
        C("execute/k-zero", ["execute", "s.jsonl", "--k", "0"], r"\bk\b", setup=WITH_SAMPLE),
        C("execute/limit-zero", ["execute", "s.jsonl", "--limit", "0"], "limit",
          setup=WITH_SAMPLE),
        C("execute/out-read-only", ["execute", "s.jsonl", "--out", "/proc/x/r.jsonl"], "/proc/x",
          setup=WITH_SAMPLE),
        C("execute/out-is-a-folder", ["execute", "s.jsonl", "--out", "odir"], "odir",
          setup=files(**{"s.jsonl": SAMPLE, "odir_dir": ""})),
        # ---- models --------------------------------------------------------------------------
        C("models/no-args", ["models"], "list", "pull", kind="help"),
        C("models/unknown-subcommand", ["models", "fetch"], "fetch"),
        C("models/pull-no-name", ["models", "pull"], "name"),
        C("models/pull-unknown", ["models", "pull", "nosuchmodel"], "nosuchmodel"),
        C("models/list-extra-argument", ["models", "list", "foo"], "foo"),
        # ---- study ---------------------------------------------------------------------------
        C("study/no-args", ["study"], "bottleneck", "collapse", "budget", kind="help"),
        C("study/unknown-study", ["study", "scaling"], "scaling"),
        C("study/bottleneck-config-missing", ["study", "bottleneck", "--config", "nope.yaml"], "nope.yaml"),
        C("study/bottleneck-config-malformed", ["study", "bottleneck", "--config", "bad.yaml"], "bad.yaml",
          setup=files(**{"bad.yaml": "models: [a\nprobe_model: : b\n"})),
        C("study/bottleneck-misspelt-key", ["study", "bottleneck", "--config", "typo.yaml"], "modles",
          setup=files(**{"typo.yaml": f"modles: [{MODEL}]\nprobe_model: {MODEL}\n"})),
        C("study/bottleneck-batch-size-zero", ["study", "bottleneck", "--batch-size", "0"], "batch.size"),
        C("study/collapse-config-unknown-name", ["study", "collapse", "--config", "huge"], "huge"),
        C("study/collapse-misspelt-key", ["study", "collapse", "--config", "c.yaml"], "setpus",
          setup=files(**{"c.yaml": "arch: {num_layers: 1, hidden_dim: 16, num_heads: 2}\n"
                                   "setpus: [{name: a, tokenizer: char}]\n"})),
        C("study/collapse-arch-misspelt", ["study", "collapse", "--config", "c.yaml", "--out", "co"],
          "num_layer", setup=files(**{"c.yaml": "corpus: [python:./src]\narch: {num_layer: 1, hidden_dim: 16, "
                                                "num_heads: 2}\nsetups: [{name: a, tokenizer: char}]\n",
                                      "src__a.py": TEXT})),
        C("study/lora-sweep-unknown", ["study", "lora", "--sweep", "depth"], "depth|sweep"),
        C("study/lora-parallel-zero", ["study", "lora", "--parallel", "0"], "parallel"),
        C("study/budget-phase-unknown", ["study", "budget", "--phase", "9", "--model", MODEL], "phase|9"),
        C("study/budget-num-samples-zero", ["study", "budget", "--num-samples", "0", "--model", MODEL],
          "num.samples"),
        C("study/budget-unknown-benchmark", ["study", "budget", "--benchmark", "nosuchbench", "--model", MODEL,
                                             "--num-samples", "1"], "nosuchbench"),
        C("study/budget-unknown-model", ["study", "budget", "--model", "nosuchmodel", "--benchmark", "humaneval",
                                         "--num-samples", "1"],
          "nosuchmodel"),
        # ---- train ---------------------------------------------------------------------------
        C("train/no-args", ["train"], "arch.json|train.path"),
        C("train/arch-json-missing", ["train", "--arch-json", "nope.json", "--train-path", "train.txt",
                                      "--val-path", "val.txt", "--experiment-name", "t"], "nope.json", setup=files(**TRAIN_FILES)),
        C("train/arch-json-malformed", TRAIN, "arch.json",
          setup=files(**{**TRAIN_FILES, "arch.json": '{"num_layers": 1, "hidden_dim": 16,'})),
        C("train/arch-json-misspelt-key", TRAIN, "num_layer",
          setup=files(**{**TRAIN_FILES, "arch.json": '{"num_layer": 1, "hidden_dim": 16, "num_heads": 2}'})),
        C("train/arch-type-unknown", TRAIN, "arch_type|gpt",
          setup=files(**{**TRAIN_FILES, "arch.json": '{"arch_type": "gpt", "num_layers": 1, '
                                                      '"hidden_dim": 16, "num_heads": 2}'})),
        C("train/arch-heads-not-divisor", TRAIN, "num_heads|hidden_dim",
          setup=files(**{**TRAIN_FILES, "arch.json": '{"num_layers": 1, "hidden_dim": 16, "num_heads": 3}'})),
        C("train/no-train-path", ["train", "--arch-json", "arch.json"], "train.path", setup=files(**TRAIN_FILES)),
        C("train/train-path-missing", [*TRAIN[:4], "nope.txt", *TRAIN[5:]], "nope.txt",
          setup=files(**TRAIN_FILES)),
        C("train/train-path-empty", [*TRAIN[:4], "empty.txt", *TRAIN[5:]], "empty.txt",
          setup=files(**{**TRAIN_FILES, "empty.txt": ""})),
        C("train/max-steps-zero", train_with("--max-steps", "0"), "max.steps", setup=files(**TRAIN_FILES)),
        C("train/max-steps-abc", train_with("--max-steps", "abc"), "abc", setup=files(**TRAIN_FILES)),
        C("train/tokenizer-wordpiece", train_with("--tokenizer", "wordpiece"), "wordpiece",
          setup=files(**TRAIN_FILES)),
        C("train/device-cuda-on-cpu", [*TRAIN, "--device", "cuda"], "cuda", setup=files(**TRAIN_FILES)),
        C("train/device-tpu", [*TRAIN, "--device", "tpu"], "tpu", setup=files(**TRAIN_FILES)),
        C("train/dtype-unknown", [*TRAIN, "--dtype", "fp8"], "dtype|fp8", setup=files(**TRAIN_FILES)),
        C("train/lr-negative", [*TRAIN, "--lr", "-1"], r"\blr\b", setup=files(**TRAIN_FILES)),
        C("train/log-dir-read-only", [*TRAIN, "--log-dir", "/proc/x"], "/proc/x", setup=files(**TRAIN_FILES)),
        C("train/log-dir-is-a-file", [*TRAIN, "--log-dir", "afile"], "afile",
          setup=files(**{**TRAIN_FILES, "afile": "x"})),
        C("train/search-no-args", ["train", "search"], "arch.json|space"),
        C("train/search-space-no-equals", [*SEARCH, "--space", "nope"], "nope", setup=files(**TRAIN_FILES)),
        C("train/search-space-unknown-field", [*SEARCH, "--space", "colour=1,2"], "colour",
          setup=files(**TRAIN_FILES)),
        C("train/search-mode-unknown", [*SEARCH, "--space", "num_layers=1", "--mode", "bayes"], "mode|bayes",
          setup=files(**TRAIN_FILES)),
        C("train/search-parallel-zero", [*SEARCH, "--space", "num_layers=1", "--parallel", "0"], "parallel",
          setup=files(**TRAIN_FILES)),
        # ---- corpus --------------------------------------------------------------------------
        C("corpus/no-args", ["corpus"], "build", kind="help"),
        C("corpus/build-no-args", ["corpus", "build"], "source|--out"),
        C("corpus/build-no-out", ["corpus", "build", "python:./src"], "--out", setup=files(src__a_dir="")),
        C("corpus/build-unknown-language", ["corpus", "build", "cobol:./src", "--out", "c"], "cobol",
          setup=files(**{"src__a.py": TEXT})),
        C("corpus/build-missing-folder", ["corpus", "build", "python:./nope", "--out", "c"], "nope"),
        C("corpus/build-empty-folder", ["corpus", "build", "python:./src", "--out", "c"], "src",
          setup=files(src_dir="")),
        C("corpus/build-unknown-package", ["corpus", "build", "js:nosuchpkg", "--out", "c"], "nosuchpkg"),
        C("corpus/build-out-read-only", ["corpus", "build", "python:./src", "--out", "/proc/x"], "/proc/x",
          setup=files(**{"src__a.py": TEXT})),
        C("corpus/build-max-mb-zero", ["corpus", "build", "python:./src", "--out", "c", "--max-mb", "0"],
          "max.mb", setup=files(**{"src__a.py": TEXT})),
        C("corpus/build-val-fraction-two", ["corpus", "build", "python:./src", "--out", "c", "--val-fraction",
                                            "2"], "val.fraction", setup=files(**{"src__a.py": TEXT})),
        C("corpus/build-near-dup-two", ["corpus", "build", "python:./src", "--out", "c", "--near-dup", "2"],
          "near.dup", setup=files(**{"src__a.py": TEXT})),
        # ---- tokenizer -----------------------------------------------------------------------
        C("tokenizer/no-args", ["tokenizer"], "train", kind="help"),
        C("tokenizer/train-wordpiece", ["tokenizer", "train", "wordpiece", "--out", "t", "--train-path",
                                        "train.txt"], "wordpiece", "char", setup=files(**TRAIN_FILES)),
        C("tokenizer/train-bpe-zero", ["tokenizer", "train", "bpe-0", "--out", "t", "--train-path", "train.txt"],
          "bpe", r"\b0\b", setup=files(**TRAIN_FILES)),
        C("tokenizer/train-no-out", ["tokenizer", "train", "char", "--train-path", "train.txt"], "--out",
          setup=files(**TRAIN_FILES)),
        C("tokenizer/train-no-text", ["tokenizer", "train", "bpe-8k", "--out", "t"], "train.path"),
        C("tokenizer/train-text-missing", ["tokenizer", "train", "char", "--out", "t", "--train-path",
                                           "nope.txt"], "nope.txt"),
        C("tokenizer/train-text-empty", ["tokenizer", "train", "bpe-4k", "--out", "t", "--train-path",
                                         "empty.txt"], "empty.txt", setup=files(**{"empty.txt": ""})),
        C("tokenizer/train-out-read-only", ["tokenizer", "train", "char", "--out", "/proc/x", "--train-path",
                                            "train.txt"], "/proc/x", setup=files(**TRAIN_FILES)),
        # ---- pairs ---------------------------------------------------------------------------
        C("pairs/no-args", ["pairs"], "build", kind="help"),
        C("pairs/build-no-language", ["pairs", "build", "src", "--out", "p.jsonl"], "--language",
          setup=files(**{"src__a.py": TEXT})),
        C("pairs/build-unknown-language", ["pairs", "build", "src", "--language", "cobol", "--out", "p.jsonl"],
          "cobol", setup=files(**{"src__a.py": TEXT})),
        C("pairs/build-missing-source", ["pairs", "build", "nope", "--language", "python", "--out", "p.jsonl"],
          "nope"),
        C("pairs/build-limit-zero", ["pairs", "build", "src", "--language", "python", "--out", "p.jsonl",
                                     "--limit", "0"], "limit", setup=files(**{"src__a.py": TEXT})),
        C("pairs/build-min-above-max", ["pairs", "build", "src", "--language", "python", "--out", "p.jsonl",
                                        "--min-lines", "50", "--max-lines", "10"], "lines",
          setup=files(**{"src__a.py": TEXT})),
        C("pairs/build-out-read-only", ["pairs", "build", "src", "--language", "python", "--out",
                                        "/proc/x/p.jsonl"], "/proc/x", setup=files(**{"src__a.py": TEXT})),
        # ---- lora ----------------------------------------------------------------------------
        C("lora/no-args", ["lora"], "train", kind="help"),
        C("lora/train-no-data", ["lora", "train", "--model", MODEL, "--out", "a"], "pairs|benchmark"),
        C("lora/train-pairs-missing", ["lora", "train", "--model", MODEL, "--out", "a", "--pairs", "nope.jsonl"],
          "nope.jsonl", "slmlab pairs build"),
        C("lora/train-pairs-malformed", ["lora", "train", "--model", MODEL, "--out", "a", "--pairs",
                                         "bad.jsonl"], "bad.jsonl", setup=files(**{"bad.jsonl": BAD_JSONL})),
        C("lora/train-rank-zero", ["lora", "train", "--model", MODEL, "--out", "a", "--pairs", "p.jsonl",
                                   "--rank", "0"], "rank", setup=files(**{"p.jsonl": PAIRS})),
        C("lora/train-epochs-zero", ["lora", "train", "--model", MODEL, "--out", "a", "--pairs", "p.jsonl",
                                     "--epochs", "0"], "epochs", setup=files(**{"p.jsonl": PAIRS})),
        C("lora/train-unknown-model", ["lora", "train", "--model", "nosuchmodel", "--out", "a", "--pairs",
                                       "p.jsonl"], "nosuchmodel", setup=files(**{"p.jsonl": PAIRS})),
        C("lora/train-device-cuda-on-cpu", ["lora", "train", "--model", MODEL, "--out", "a", "--pairs",
                                            "p.jsonl", "--device", "cuda"], "cuda",
          setup=files(**{"p.jsonl": PAIRS})),
        C("lora/train-out-read-only", ["lora", "train", "--model", MODEL, "--out", "/proc/x", "--pairs",
                                       "p.jsonl"], "/proc/x", setup=files(**{"p.jsonl": PAIRS})),
        C("lora/train-target-modules-unknown", ["lora", "train", "--model", MODEL, "--out", "a", "--pairs",
                                                "p.jsonl", "--limit", "1", "--epochs", "1", "--target-modules",
                                                "nosuch_proj"], "nosuch_proj", setup=files(**{"p.jsonl": PAIRS})),
    ]
    # fmt: on


EXTRA = {  # more of the same kinds of mistake: run with --all
    "compare/ambiguous-prefix",
    "compare/k-abc",
    "compare/k-above-n",
    "compare/one-run",
    "corpus/build-empty-folder",
    "corpus/build-max-mb-zero",
    "corpus/build-near-dup-two",
    "corpus/build-no-out",
    "corpus/build-unknown-package",
    "eval/batch-size-zero",
    "eval/benchmark-jsonl-empty",
    "eval/benchmark-jsonl-missing",
    "eval/capture-layers-abc",
    "eval/extra-argument",
    "eval/few-shot-99",
    "eval/k-abc",
    "eval/model-gguf-missing",
    "eval/n-negative",
    "eval/out-corrupt-store",
    "eval/steer-layer-alone",
    "eval/temperature-negative",
    "eval/timeout-zero",
    "eval/top-p-zero",
    "execute/directory",
    "execute/k-zero",
    "execute/limit-zero",
    "execute/memory-mb-zero",
    "execute/not-utf8",
    "execute/park-unknown",
    "execute/timeout-abc",
    "execute/timeout-zero",
    "lora/train-epochs-zero",
    "lora/train-out-read-only",
    "lora/train-unknown-model",
    "models/list-extra-argument",
    "pairs/build-limit-zero",
    "pairs/build-no-language",
    "pairs/build-out-read-only",
    "probe/layer-abc",
    "probe/no-store",
    "run/directory",
    "run/missing-model",
    "run/not-a-mapping",
    "run/sandbox-unknown",
    "runs/out-is-a-file",
    "sandbox/unknown-option",
    "study/bottleneck-batch-size-zero",
    "study/bottleneck-config-malformed",
    "study/bottleneck-config-missing",
    "study/collapse-config-unknown-name",
    "study/lora-parallel-zero",
    "tokenizer/train-no-out",
    "tokenizer/train-no-text",
    "tokenizer/train-text-empty",
    "top/unknown-group-typo",
    "train/arch-heads-not-divisor",
    "train/arch-json-missing",
    "train/device-tpu",
    "train/dtype-unknown",
    "train/lr-negative",
    "train/max-steps-abc",
    "train/no-train-path",
    "train/search-mode-unknown",
    "train/search-parallel-zero",
    "train/search-space-no-equals",
    "train/train-path-empty",
}


# ---- running and classifying --------------------------------------------------------------------
@dataclass
class Result:
    case: str
    args: list[str]
    category: str
    rc: int | None
    left_run: int
    seconds: float
    line: str  # the first non-empty stderr line (for a traceback: its last line, the exception)
    stderr_lines: int
    expect: list[str]
    stderr_tail: list[str] = field(default_factory=list)


def run_count(root: Path) -> int:
    total = 0
    for db in root.rglob("slmlab.db"):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                total += conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        except sqlite3.Error:
            continue  # not a store (or one the case made corrupt on purpose)
    return total


def slmlab_home() -> str:
    return str(Path(os.environ.get("SLMLAB_HOME") or "~/.cache/slmlab").expanduser().resolve())


def classify(case: Case, rc: int | None, out: str, err: str) -> tuple[str, str, int]:
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if rc is None:
        return "timeout", first, len(lines)
    if TRACEBACK.search(out) or TRACEBACK.search(err):
        last = lines[-1] if lines else (out.strip().splitlines() or [""])[-1]
        return "traceback", last, len(lines)
    names = lambda text: all(re.search(p, text, re.IGNORECASE) for p in case.expect)  # noqa: E731
    if case.kind == "ok":
        return (
            ("clear" if rc == 0 and names(out + err) else "unclear"),
            first or out.strip()[:200],
            len(lines),
        )
    if case.kind == "help" and re.search(r"usage", out + err, re.IGNORECASE) and names(out + err):
        return "clear", first or "(help shown)", len(lines)
    if rc == 0:
        return "exit-0", first, len(lines)
    if len(lines) == 1 and names(first):
        return "clear", first, 1
    return "unclear", first, len(lines)


def run_case(case: Case, slmlab: str, env: dict, default_timeout: float) -> Result:
    root = Path(tempfile.mkdtemp(prefix="bad-input-"))
    start = time.monotonic()
    try:
        try:
            if case.setup:
                case.setup(root)
        except Exception as exc:  # a fixture the current code cannot make: say so, run nothing
            return Result(case.name, case.args, "setup-error", None, 0, 0.0, f"{type(exc).__name__}: {exc}",
                          0, case.expect)  # fmt: skip
        before = run_count(root)
        proc = subprocess.Popen([slmlab, *case.args], cwd=root, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
        try:
            out, err = proc.communicate(timeout=case.timeout or default_timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the command and the workers it started
            out, err = proc.communicate()
            rc = None
        out_text, err_text = out.decode(errors="replace"), err.decode(errors="replace")
        category, line, n_lines = classify(case, rc, out_text, err_text)
        return Result(case.name, case.args, category, rc, run_count(root) - before, time.monotonic() - start,
                      line, n_lines, case.expect, [s for s in err_text.splitlines() if s.strip()][-20:])  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


CATEGORIES = ("clear", "unclear", "traceback", "exit-0", "timeout", "setup-error")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", metavar="PATTERN", help="run the cases whose name matches this regex")
    parser.add_argument("--json", metavar="FILE", help="save every result (with stderr's last lines) here")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case [120]")
    parser.add_argument("--slmlab", default=None, help="the command (default: the one beside this Python)")
    parser.add_argument("--all", action="store_true", help=f"also the {len(EXTRA)} extra cases (slower)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--width", type=int, default=110, help="trim the stderr line to this many characters")
    args = parser.parse_args()

    selected = [c for c in cases() if (args.all or c.name not in EXTRA)
                and (not args.only or re.search(args.only, c.name))]  # fmt: skip
    if args.list:
        for c in selected:
            print(f"{c.name:40} slmlab {' '.join(c.args)}")
        return
    if not selected:
        sys.exit(f"no case matches {args.only!r}")
    slmlab = args.slmlab or str(Path(sys.executable).with_name("slmlab"))
    if not Path(slmlab).is_file():
        slmlab = shutil.which("slmlab") or sys.exit("no slmlab command found: give --slmlab PATH")
    env = {**os.environ, "SLMLAB_HOME": slmlab_home()}

    width = max(len(c.name) for c in selected)
    print(f"{len(selected)} cases through {slmlab} (SLMLAB_HOME={env['SLMLAB_HOME']})", flush=True)
    print(
        f"{'case':{width}}  {'category':11} {'rc':>4} {'left_run':>8} {'s':>5}  first stderr line", flush=True
    )
    results, started = [], time.monotonic()
    for case in selected:
        r = run_case(case, slmlab, env, args.timeout)
        results.append(r)
        line = r.line if len(r.line) <= args.width else r.line[: args.width - 3] + "..."
        rc = "-" if r.rc is None else str(r.rc)
        print(
            f"{r.case:{width}}  {r.category:11} {rc:>4} {r.left_run:>8} {r.seconds:5.1f}  {line}", flush=True
        )

    totals = {cat: sum(r.category == cat for r in results) for cat in CATEGORIES}
    print(f"\n{len(results)} cases in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{cat} {n}" for cat, n in totals.items() if n or cat in CATEGORIES[:4])
          + f"; cases that left a run behind: {sum(r.left_run > 0 for r in results)}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"slmlab": slmlab, "totals": totals,
                                               "results": [asdict(r) for r in results]}, indent=1))  # fmt: skip
        print(f"results: {args.json}")


if __name__ == "__main__":
    main()
