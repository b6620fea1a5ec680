"""Benchmarks as plain `Task` records, each registered by its own file (see registry.py)."""

# Each benchmark file registers itself when imported; the order here is the order of the names
# in "unknown benchmark" messages: the code benchmarks, then math.
from slmlab.tasks import humaneval, jsonl, mbpp, minibench  # noqa: F401  isort: skip
from slmlab.tasks import gsm8k  # noqa: F401  isort: skip
from slmlab.tasks.base import Task
from slmlab.tasks.registry import BENCHMARKS, Benchmark, load_benchmark, lookup, register

__all__ = ["BENCHMARKS", "Benchmark", "Task", "load_benchmark", "lookup", "register"]
