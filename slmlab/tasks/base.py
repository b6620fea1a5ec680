"""The Task record every benchmark loader produces, and how a completion becomes a program."""

from __future__ import annotations

from dataclasses import dataclass

from slmlab.execute.pool import Program


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str  # what the model sees
    test: str  # test code; for HumanEval it defines check(candidate)
    entry_point: str
    reference: str  # the benchmark's own solution (a completion of the prompt, or a whole program)
    benchmark: str
    language: str = "python"
    # HumanEval-style tasks: the completion continues `prompt`, which is part of the program.
    # MBPP-style tasks: the prompt is prose and the completion is the whole program.
    completion_continues_prompt: bool = True
    test_setup: str = ""  # run after the program, before the tests (MBPP's test_setup_code)
    answer: str = ""  # a math problem's final answer (GSM8K); the reference is its worked solution

    def program(
        self, completion: str, whole_program: bool = False, timeout_s: float | None = None
    ) -> Program:
        """The program that tests `completion`. whole_program: the text already includes the prompt
        (evalplus' `solution` field)."""
        if self.completion_continues_prompt and not whole_program:
            definitions = self.prompt + completion
        else:
            definitions = completion
        tests = self.test_setup + "\n" + self.test
        if self.completion_continues_prompt:
            tests += f"\ncheck({self.entry_point})\n"
        return Program(
            definitions=definitions, tests=tests, entry_point=self.entry_point, timeout_s=timeout_s
        )

    def reference_program(self, timeout_s: float | None = None) -> Program:
        return self.program(self.reference, timeout_s=timeout_s)
