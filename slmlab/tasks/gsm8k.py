"""GSM8K: grade-school math word problems, from `gsm8k/{test,train}.jsonl` in the data directory,
prompted in seed 002's three ways (chat; plain zero-shot; plain after solved train problems) and
judged by their final answer."""

from __future__ import annotations

import functools
import json
import random
import re

from slmlab.errors import UserError
from slmlab.metrics.answers import format_number, ground_truth
from slmlab.tasks.base import Task
from slmlab.tasks.datadir import resolve_data_file
from slmlab.tasks.prompts import Completion, Prompt, chat_prompt
from slmlab.tasks.registry import Benchmark, register

FEW_SHOT_STOPS = ("\n\nQuestion:", "\nQuestion:")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: 48/2=<<48/2=24>>24
# Qwen's own math instruction. Asked instead to "end with '#### N'", Qwen2.5-Coder-0.5B gave a third of
# 30 GSM8K problems that line alone, without reasoning.
CHAT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def load_gsm8k(split: str = "test", data_dir: str | None = None, limit: int | None = None) -> list[Task]:
    """The split's problems as tasks: the id is the line index, the prompt the question, the reference
    the worked solution (calculator annotations removed, ending in '#### N'), the answer N."""
    path = resolve_data_file(f"gsm8k/{split}.jsonl", data_dir, "GSM8K")
    problems = []
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            if limit is not None and len(problems) >= limit:
                break
            try:
                row = json.loads(line)
                solution = _CALCULATOR.sub("", row["answer"]).strip()
                problems.append(Task(task_id=str(index), prompt=row["question"].strip(), test="", entry_point="",
                                     reference=solution, benchmark="gsm8k", language="math",
                                     answer=format_number(ground_truth(solution))))  # fmt: skip
            except (json.JSONDecodeError, KeyError, ValueError) as exc:
                raise UserError(
                    f"{path} line {index + 1} is not a GSM8K record ({exc}): use the dataset's jsonl"
                ) from None
    return problems


def few_shot_pool(train: list[Task], count: int, seed: int) -> list[Task]:
    """`count` solved train problems, drawn once with `seed`: every question sees the same ones."""
    return random.Random(seed).sample(train, count) if count else []


def _shots(task: Task, tasks: list[Task], count: int, seed: int, data_dir: str | None) -> list[Task]:
    return few_shot_pool(_train_split(data_dir), count, seed) if count else []


@functools.cache
def _train_split(data_dir: str | None) -> list[Task]:
    return load_gsm8k("train", data_dir)


def _qa(problem: Task, with_solution: bool) -> str:
    answer = f" {problem.reference}" if with_solution else ""
    return f"Question: {problem.prompt}\nAnswer:{answer}"


def build_math_prompt(problem: Task, mode: str, tokenizer=None, examples: list[Task] = ()) -> Prompt:
    """chat: the model's chat template, asked to reason and box the answer; plain: "Let's think step
    by step." after the question (zero-shot), or solved examples before it (few-shot)."""
    if mode == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise UserError("this model has no chat template: use prompting: zero-shot or few-shot")
        return chat_prompt([{"role": "user", "content": f"{problem.prompt}\n\n{CHAT_INSTRUCTION}"}], tokenizer)
    if not examples:
        return Prompt(f"{_qa(problem, False)} Let's think step by step.", chat=False)
    shots = "".join(_qa(example, True) + "\n\n" for example in examples)
    return Prompt(shots + _qa(problem, False), chat=False)


def _answer_text(task: Task, text: str, mode: str, sanitize: bool) -> Completion:
    return Completion(text, whole_program=False)


# The solution is judged as it is written: the math judge reads its final answer. Plain prompts
# continue with the next 'Question:' unless stopped there.
register(Benchmark(names=("gsm8k",), load=lambda data_dir: load_gsm8k("test", data_dir), stops=FEW_SHOT_STOPS,
                   language="math", judge="math", chat_stops=(), prompt=build_math_prompt, shots=_shots,
                   extract=_answer_text))  # fmt: skip
