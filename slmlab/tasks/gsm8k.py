"""GSM8K: grade-school math word problems, from `gsm8k/{test,train}.jsonl` in the data directory,
and the three ways seed 002's study prompts for them."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from slmlab.errors import UserError
from slmlab.metrics.answers import format_number, ground_truth
from slmlab.tasks.datadir import resolve_data_file
from slmlab.tasks.prompts import Prompt

PROMPTINGS = ("chat", "zero-shot", "few-shot")
FEW_SHOT_STOPS = ("\n\nQuestion:", "\nQuestion:")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: 48/2=<<48/2=24>>24
# Qwen's own math instruction. Asked instead to "end with '#### N'", Qwen2.5-Coder-0.5B gave a third of
# 30 GSM8K problems that line alone, without reasoning.
CHAT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Problem:
    problem_id: int  # line index in the split's file
    question: str
    solution: str  # the reference solution, calculator annotations removed, ending in '#### N'
    truth: Fraction

    @property
    def ground_truth(self) -> str:
        return format_number(self.truth)


def load_gsm8k(split: str = "test", data_dir: str | None = None, limit: int | None = None) -> list[Problem]:
    path = resolve_data_file(f"gsm8k/{split}.jsonl", data_dir, "GSM8K")
    problems = []
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            if limit is not None and len(problems) >= limit:
                break
            try:
                row = json.loads(line)
                solution = _CALCULATOR.sub("", row["answer"])
                problems.append(
                    Problem(index, row["question"].strip(), solution.strip(), ground_truth(solution))
                )
            except (json.JSONDecodeError, KeyError, ValueError) as exc:
                raise UserError(
                    f"{path} line {index + 1} is not a GSM8K record ({exc}): use the dataset's jsonl"
                ) from None
    return problems


def few_shot_pool(train: list[Problem], count: int, seed: int) -> list[Problem]:
    """`count` solved train problems, drawn once with `seed`: every question sees the same ones."""
    return random.Random(seed).sample(train, count) if count else []


def _qa(problem: Problem, with_solution: bool) -> str:
    answer = f" {problem.solution}" if with_solution else ""
    return f"Question: {problem.question}\nAnswer:{answer}"


def build_math_prompt(
    problem: Problem, prompting: str, tokenizer=None, examples: list[Problem] = ()
) -> Prompt:
    """chat: the model's chat template, asked to reason and box the answer; zero-shot: plain text
    with "Let's think step by step."; few-shot: plain text after solved examples."""
    if prompting == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise UserError("this model has no chat template: use prompting: zero-shot or few-shot")
        message = f"{problem.question}\n\n{CHAT_INSTRUCTION}"
        text = tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
        return Prompt(text, chat=True)
    if prompting == "zero-shot":
        return Prompt(f"{_qa(problem, False)} Let's think step by step.", chat=False)
    if prompting == "few-shot":
        shots = "".join(_qa(example, True) + "\n\n" for example in examples)
        return Prompt(shots + _qa(problem, False), chat=False)
    raise UserError(f"unknown prompting '{prompting}': choose one of {', '.join(PROMPTINGS)}")


def is_math_benchmark(name: str) -> bool:
    """Whether `name` is GSM8K, which the budget study loads as math problems (not code `Task`s)."""
    return name == "gsm8k"


def math_stops(prompting: str) -> tuple[str, ...]:
    """Plain prompts continue with the next 'Question:' unless stopped there."""
    return () if prompting == "chat" else FEW_SHOT_STOPS
