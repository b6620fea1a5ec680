"""Benchmarks as plain `Task` records: HumanEval, MBPP (full and sanitized)."""

from slmlab.tasks.base import Task
from slmlab.tasks.registry import BENCHMARKS, load_benchmark

__all__ = ["BENCHMARKS", "Task", "load_benchmark"]
