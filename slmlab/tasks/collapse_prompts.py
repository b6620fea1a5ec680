"""Prompts for the generation-quality (collapse) evaluation of seeds 003 and 004.

- `load_collapse_prompts()`: 52 short Python prompts of many shapes (functions, classes, imports,
  decorators, loops, comprehensions, async, try/except, with ...), written here: seed 004's
  "52 diverse Python patterns", the bare prompts on which small code LMs collapse into `):):):`.
- `FEW_SHOT_TEMPLATES` / `few_shot_prompt()`: seed 003's remedy, 2-3 example definitions before
  the prompt (its collapse rate fell from ~90% on bare prompts to ~15% with them).
- `context_length_prompts()`: one target preceded by 0, 1, 2, ... example functions, for seed 003's
  "first token after `def foo(n):` with k examples in context" analysis.
"""

from __future__ import annotations

import json
from importlib import resources
from types import MappingProxyType

_DATA_FILE = "collapse_prompts.jsonl"

FEW_SHOT_TEMPLATES = MappingProxyType(
    {
        # Seed 003's eval template, verbatim.
        "function": '''# Python function examples

def add(a, b):
    """Add two numbers."""
    return a + b

def multiply(a, b):
    """Multiply two numbers."""
    return a * b

''',
        # Seed 003's production guideline: type hints and docstrings, then a "# Task" marker.
        "typed_function": '''# Example functions

def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b

def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b

def is_even(n: int) -> bool:
    """Return True if n is even."""
    return n % 2 == 0

# Task
''',
        "class": '''# Python class examples

class Counter:
    """Count how many times increment() was called."""

    def __init__(self):
        self.count = 0

    def increment(self):
        self.count += 1
        return self.count

class Greeter:
    """Greet people by name."""

    def __init__(self, greeting="Hello"):
        self.greeting = greeting

    def greet(self, name):
        return f"{self.greeting}, {name}!"

''',
    }
)

# Examples for the context-length sweep; none is named like a typical target.
_CONTEXT_EXAMPLES = (
    'def add(a, b):\n    """Add two numbers."""\n    return a + b\n',
    'def multiply(a, b):\n    """Multiply two numbers."""\n    return a * b\n',
    'def square(x):\n    """Return x squared."""\n    return x * x\n',
    'def is_even(n):\n    """Return True if n is even."""\n    return n % 2 == 0\n',
    'def maximum(a, b):\n    """Return the larger of a and b."""\n    if a > b:\n        return a\n    return b\n',
)


def load_collapse_prompts() -> list[dict]:
    """The 52 prompts, as dicts with `id`, `prompt` and `kind`, in file order."""
    text = resources.files("slmlab.tasks").joinpath("data", _DATA_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def few_shot_prompt(template_name: str, prompt: str) -> str:
    """The template's example prefix followed by `prompt`."""
    try:
        prefix = FEW_SHOT_TEMPLATES[template_name]
    except KeyError:
        known = ", ".join(sorted(FEW_SHOT_TEMPLATES))
        raise ValueError(f"unknown few-shot template '{template_name}': choose one of {known}") from None
    return prefix + prompt


def context_length_prompts(target: str = "def foo(n):", max_examples: int = 3) -> list[tuple[int, str]]:
    """`(k, prompt)` for k = 0 .. max_examples: `target` after the first k example functions."""
    if not 0 <= max_examples <= len(_CONTEXT_EXAMPLES):
        raise ValueError(f"max_examples must be between 0 and {len(_CONTEXT_EXAMPLES)}, got {max_examples}")
    return [
        (k, "".join(example + "\n" for example in _CONTEXT_EXAMPLES[:k]) + target)
        for k in range(max_examples + 1)
    ]
