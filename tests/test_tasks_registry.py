"""The Task seam: a benchmark is one file plus its registration, and nothing outside slmlab/tasks/
tests a benchmark's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slmlab.errors import UserError
from slmlab.generate.stops import CLOSED_CODE_BLOCK
from slmlab.tasks import BENCHMARKS, Benchmark, Task, load_benchmark, lookup, register
from slmlab.tasks.humaneval import HUMANEVAL_STOPS
from slmlab.tasks.mbpp import MBPP_STOPS
from slmlab.tasks.registry import unregister

SLMLAB = Path(__file__).resolve().parent.parent / "slmlab"


def _toy_tasks(data_dir=None) -> list[Task]:
    return [Task(task_id=f"toy/{i}", prompt=f"def f{i}():\n", test="def check(candidate):\n    assert True\n",
                 entry_point=f"f{i}", reference="    return 1\n", benchmark="toy") for i in range(2)]  # fmt: skip


@pytest.fixture
def toy():
    benchmark = register(
        Benchmark(
            names=("toy", "toy-alias"), load=_toy_tasks, stops=("\nSTOP",), task_id=lambda raw: f"toy/{raw}"
        )
    )
    yield benchmark
    unregister(benchmark)
    assert "toy" not in BENCHMARKS


def test_a_benchmark_registered_in_a_test_loads_and_gives_its_stops(toy):
    assert [t.task_id for t in load_benchmark("toy")] == ["toy/0", "toy/1"]
    assert [t.task_id for t in load_benchmark(" Toy-Alias ")] == [
        "toy/0",
        "toy/1",
    ]  # names as before: case, spaces
    assert lookup("toy").stops_for("plain") == ("\nSTOP",)
    assert lookup("toy").stops_for("chat") == (CLOSED_CODE_BLOCK,)
    assert lookup("toy").judge == "sandbox" and lookup("toy").language == "python"  # a code benchmark's defaults
    assert lookup("toy").task_id(3) == "toy/3"
    with pytest.raises(ValueError, match="registered twice"):
        register(Benchmark(names=("toy",), load=_toy_tasks, stops=()))


def test_the_built_in_benchmarks_keep_their_stops_ids_and_message():
    assert (
        lookup("humaneval").stops
        == HUMANEVAL_STOPS
        == ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```")
    )
    assert lookup("minibench").stops == HUMANEVAL_STOPS
    for name in ("mbpp", "mbpp-sanitized", "mbpp-prompt", "mbpp-test", "mbpp-validation", "mbpp-train"):
        assert lookup(name).stops == MBPP_STOPS == ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```")
        assert lookup(name).task_id("11") == lookup(name).task_id("MBPP/11") == "Mbpp/11"
    assert lookup("humaneval").task_id("HumanEval/0") == "HumanEval/0"
    assert lookup("my_tasks.jsonl").stops == HUMANEVAL_STOPS  # a task file is claimed before any name
    with pytest.raises(
        UserError, match=r"unknown benchmark 'mbpx' \(did you mean mbpp\?\): choose one of humaneval, "
    ):
        load_benchmark("mbpx")


def test_a_task_file_is_a_benchmark(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"task_id": "a", "prompt": "def f():\\n", "test": "def check(c):\\n    pass\\n", '
                    '"entry_point": "f"}\n')  # fmt: skip
    assert [t.task_id for t in load_benchmark(str(path))] == ["a"]
    assert lookup(str(path)).names == ("mine",)
    assert lookup(str(path)).stops == HUMANEVAL_STOPS


def test_a_task_file_of_mbpp_shaped_tasks_ends_where_mbpp_does(tmp_path):
    path = tmp_path / "whole_programs.jsonl"
    path.write_text('{"task_id": 1, "text": "add", "code": "def add(a, b):\\n    return a + b", '
                    '"test_list": ["assert add(1, 2) == 3"]}\n')  # fmt: skip
    assert lookup(str(path)).stops == MBPP_STOPS
    assert [t.task_id for t in load_benchmark(str(path))] == ["1"]


# A name comparison on a benchmark's name: `x.startswith("mbpp`, `== "humaneval"`, `in ("gsm8k", ...`.
_NAMES = "|".join(re.escape(n) for n in ("humaneval", "mbpp", "minibench", "gsm8k"))
_COMPARISON = re.compile(
    rf"""(?:startswith|endswith)\(\s*\(?\s*["'](?:{_NAMES})|[=!]=\s*["'](?:{_NAMES})|["'](?:{_NAMES})[^"']*["']\s*[=!]=|"""
    rf"""\bin\s*[(\[{{]\s*["'](?:{_NAMES})""",
    re.IGNORECASE,
)


def test_nothing_outside_slmlab_tasks_tests_a_benchmark_name():
    offenders = [
        f"{path.relative_to(SLMLAB.parent)}:{number}: {line.strip()}"
        for path in sorted(SLMLAB.rglob("*.py"))
        if "tasks" not in path.relative_to(SLMLAB).parts[:1]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _COMPARISON.search(line)
    ]
    assert offenders == [], "register the benchmark in its own file and ask slmlab.tasks.lookup instead"


def test_the_name_check_catches_what_it_looks_for():
    for line in ('benchmark.startswith("mbpp")', "name == 'humaneval'", 'self.benchmark != "gsm8k"',
                 'b.lower().startswith(("mbpp", "x"))', 'if name in ("minibench", "x")', '"mbpp" == name'):  # fmt: skip
        assert _COMPARISON.search(line), line
    for line in ('benchmark="minibench"', 'execution.get("mbpp-test", {})', "minibench: bool = True"):
        assert not _COMPARISON.search(line), line


def test_gsm8k_is_a_registered_benchmark_with_its_prompts_stops_and_judge(data_dir):
    gsm8k = lookup("gsm8k")
    problems = gsm8k.load(data_dir)
    assert len(problems) == 1319 and problems[0].task_id == "0" and problems[0].answer == "18"
    assert (gsm8k.judge, gsm8k.language, gsm8k.stops_for("chat")) == ("math", "math", ())
    assert gsm8k.stops_for("plain") == ("\n\nQuestion:", "\nQuestion:")
    zero = gsm8k.prompt(problems[0], "plain", None, [])
    assert zero.text.startswith("Question: Janet") and zero.text.endswith("Answer: Let's think step by step.")
    shots = gsm8k.shots(problems[0], problems, 2, 1234, data_dir)
    assert shots == gsm8k.shots(problems[5], problems, 2, 1234, data_dir)  # the same solved examples for every question
    few = gsm8k.prompt(problems[0], "plain", None, shots)
    assert few.text.count("Question:") == 3 and "####" in few.text and few.text.endswith("Answer:")
    assert gsm8k.extract(problems[0], "so 18", "plain", True).code == "so 18"  # judged as written
