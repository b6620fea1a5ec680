"""Structural features of a task's reference solution, and the "syntax-heavy" subset they define.

Seed 000 says the larger model loses on "syntax-heavy tasks" without saying which. slmlab defines
them by a fixed, checkable rule on the benchmark's own reference solution, so any run can be cut
the same way: a task is syntax-heavy when its reference nests blocks at least SYNTAX_HEAVY_DEPTH
deep (a loop or comprehension inside a loop, an `if` inside a loop inside a `with`, ...), counting
compound statements and comprehensions inside the function bodies. Such code needs the model to
keep indentation, brackets and scopes consistent across lines, which is where a small model's
syntax breaks first.
"""

from __future__ import annotations

import ast

from slmlab.tasks.base import Task

SYNTAX_HEAVY_DEPTH = 2
_BLOCKS = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda, ast.Match)  # fmt: skip
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def nesting_depth(source: str) -> int | None:
    """The deepest nesting of blocks (see _BLOCKS) in `source`, or None if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None

    def depth(node: ast.AST, level: int) -> int:
        here = level + 1 if isinstance(node, _BLOCKS) else (0 if isinstance(node, _SCOPES) else level)
        deepest = here
        for child in ast.iter_child_nodes(node):
            elif_branch = isinstance(node, ast.If) and node.orelse == [child] and isinstance(child, ast.If)
            deepest = max(deepest, depth(child, level if elif_branch else here))  # elif: same level as its if
        return deepest

    return depth(tree, 0)


def reference_program(task: Task) -> str:
    return task.prompt + task.reference if task.completion_continues_prompt else task.reference


def is_syntax_heavy(task: Task) -> bool:
    depth = nesting_depth(reference_program(task))
    return depth is not None and depth >= SYNTAX_HEAVY_DEPTH
