"""What a run will generate: one planned sample per (task, sample index), seeded by (seed, task,
index) only, so a sample's text does not depend on the order of the tasks, the batch it shares, the
number of samples asked for, or whether the run was resumed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slmlab.generate.base import Request
from slmlab.generate.params import sample_seed
from slmlab.tasks.base import Task
from slmlab.tasks.prompts import Prompt


@dataclass(frozen=True)
class Planned:
    task: Task
    index: int  # the sample's index within its task
    prompt: Prompt
    seed: int
    stops: tuple[str, ...] = ()
    max_new_tokens: int | None = None  # None: the run's sampling parameters
    add_special_tokens: bool | None = None  # None: unless the prompt is a rendered chat template

    @property
    def key(self) -> tuple[str, int]:
        return (self.task.task_id, self.index)

    def request(self) -> Request:
        special = not self.prompt.chat if self.add_special_tokens is None else self.add_special_tokens
        return Request(self.key, self.prompt.text, self.seed, special, self.max_new_tokens, self.stops,
                       self.prompt.messages)  # fmt: skip


def plan(tasks: list[Task], n: int, seed: int, prompt: Callable[[Task], Prompt], stops: tuple[str, ...] = (),
         budget: Callable[[int], int | None] = lambda index: None, add_special_tokens: bool | None = None
         ) -> list[Planned]:  # fmt: skip
    """`n` samples of every task; `budget(index)` gives a sample index its own max_new_tokens."""
    prompts = {task.task_id: prompt(task) for task in tasks}
    return [Planned(task, index, prompts[task.task_id], sample_seed(seed, task.task_id, index), stops,
                    budget(index), add_special_tokens)
            for task in tasks for index in range(n)]  # fmt: skip
