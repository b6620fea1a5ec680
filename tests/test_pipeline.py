"""Contract tests of the seams with an in-process fake generator and fake judge: the pipeline's
seeding, resume and storage, capability checks, each real judge's typed judgement, and `slmlab
eval` driven end to end by a backend that is one class (no torch, no model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

from slmlab.errors import UserError
from slmlab.generate.base import BACKENDS, Generation, Request, register_backend, require
from slmlab.generate.params import SamplingParams
from slmlab.judge import Candidate, JudgeSettings, make_judge
from slmlab.judge.base import PlainJudge, known_judges, register_judge
from slmlab.judgement import Judgement
from slmlab.pipeline import run
from slmlab.pipeline.plan import plan
from slmlab.pipeline.summary import RunSummary
from slmlab.store import Store
from slmlab.tasks import lookup
from slmlab.tasks.base import Task
from slmlab.tasks.prompts import Prompt

QUIET = Console(quiet=True)
TASKS = [Task(f"t/{i}", f"prompt {i}\n", "", "", "", "toy") for i in range(4)]


class FakeGenerator:
    """Writes the sample's seed, cut at its budget (one character per token) and at its stops."""

    name = "fake"
    capabilities = frozenset({"token_ids"})
    tokenizer = None

    def __init__(self, answers: dict[str, str] | None = None):
        self.requests: list[Request] = []
        self.answers = answers or {}

    @staticmethod
    def identify(model: str) -> tuple[None, str]:
        return None, "made up"

    def setup(self) -> dict:
        return {"backend": self.name}

    def generate(self, requests, params: SamplingParams, on_result, on_step=None) -> None:
        for r in requests:
            self.requests.append(r)
            text = self.answers.get(r.prompt, str(r.seed))
            budget = r.max_new_tokens or params.max_new_tokens
            reason = "length" if len(text) > budget else "eos"
            text = text[:budget]
            for stop in r.stops or ():
                if stop in text:
                    text, reason = text[: text.index(stop)], "stop"
            on_result(Generation(r.key, text, min(budget, len(text) + 1), reason, 0.0, len(r.prompt),
                                 tuple(map(ord, text))))  # fmt: skip


@register_judge("even-seed")
class EvenSeedJudge(PlainJudge):
    """Passes a sample whose text (a seed) is even: a judge is one class."""

    def __init__(self, settings: JudgeSettings):
        self.calls = 0

    def judge_one(self, candidate: Candidate) -> Judgement:
        even = int(candidate.text or "1") % 2 == 0
        return Judgement(self.name, "even" if even else "odd", even)


def _prompt(task: Task) -> Prompt:
    return Prompt(task.prompt, chat=False)


def test_a_samples_seed_depends_on_its_task_and_index_only():
    one = {p.key: p.seed for p in plan(TASKS, 2, 7, _prompt)}
    other = {p.key: p.seed for p in plan(list(reversed(TASKS)) + [Task("t/9", "x", "", "", "", "toy")], 3, 7, _prompt)}
    assert all(other[key] == seed for key, seed in one.items())  # order, n and the other tasks change nothing
    assert len(set(one.values())) == len(one)  # every sample its own seed
    assert {p.seed for p in plan(TASKS, 2, 8, _prompt)}.isdisjoint(one.values())  # the run's seed matters


def test_the_pipeline_generates_only_what_is_missing_and_judges_only_what_is_unjudged(tmp_path):
    planned = plan(TASKS, 3, 1, _prompt, stops=("\n",), budget=lambda index: 5 if index == 0 else None)
    with Store(tmp_path / "slmlab.db") as store:
        run_id, _ = store.open_run("eval", {"toy": 1})
        first = FakeGenerator()
        done = run.generate(store, run_id, planned[:5], first, SamplingParams(max_new_tokens=40), QUIET)
        assert done.samples == 5 and len(first.requests) == 5
        assert [r.max_new_tokens for r in first.requests[:4]] == [5, None, None, 5]  # a budget per sample
        assert all(r.stops == ("\n",) for r in first.requests)
        again = FakeGenerator()  # resumed: only the seven that are missing
        run.generate(store, run_id, planned, again, SamplingParams(max_new_tokens=40), QUIET)
        assert sorted(r.key for r in again.requests) == sorted(p.key for p in planned[5:])
        run.generate(store, run_id, planned, lambda: pytest.fail("nothing is missing: nothing is opened"),
                     SamplingParams(), QUIET)  # fmt: skip
        samples = list(store.samples(run_id))
        assert len(samples) == 12 and all(s.judgement is None for s in samples)
        assert all(len(s.completion) <= 5 for s in samples if s.sample_index == 0)
        with make_judge("even-seed") as judge:
            assert run.judge(store, run_id, {t.task_id: t for t in TASKS}, judge, QUIET) == 12
            assert run.judge(store, run_id, {t.task_id: t for t in TASKS}, judge, QUIET) == 0
        summary = RunSummary(run_id, {}, list(store.samples(run_id)), (1,))
    parity = [int(s.completion) % 2 == 0 for s in sorted(samples, key=lambda s: (s.task_id, s.sample_index))]
    assert [p for task in summary.by_task.values() for p in task] == parity
    assert summary.statuses["even"] == sum(parity) and summary.checked == 12


def test_asking_a_generator_for_a_capability_it_lacks_is_one_line():
    require(FakeGenerator(), "token_ids", "the budget study")
    with pytest.raises(UserError, match=r"the fake backend cannot capture activations \(--capture-layers\): "
                                        r"use --backend hf"):  # fmt: skip
        require(FakeGenerator(), "capture", "--capture-layers")


def test_judges_are_made_by_name_and_an_unknown_one_is_one_line():
    assert {"sandbox", "math", "syntax", "collapse", "similarity"} <= set(known_judges())
    with pytest.raises(UserError, match="unknown judge 'nope'"):
        make_judge("nope")


def _judge_all(name: str, candidates: list[Candidate], settings: JudgeSettings | None = None) -> list[Judgement]:
    found: dict[int, Judgement] = {}
    with make_judge(name, settings) as judge:
        judge.judge(candidates, found.__setitem__)
    return [found[i] for i in range(len(candidates))]


def test_the_math_judge_writes_both_extractions_and_decides_by_its_match():
    problem = Task("0", "How many?", "", "", "#### 18", "gsm8k", language="math", answer="18")
    texts = ["so the total is 18 apples", "The answer is 17.\n#### 17", "no number here"]
    flexible = _judge_all("math", [Candidate(problem, t) for t in texts])
    assert [(j.verdict, j.passed) for j in flexible] == [("correct", True), ("wrong", False), ("no_answer", False)]
    strict = _judge_all("math", [Candidate(problem, texts[0])], JudgeSettings(match="strict"))[0]
    assert (strict.passed, strict.detail["flexible"]["correct"]) == (False, True)  # both kept, one decides


def test_the_syntax_judge_uses_the_languages_checker_and_an_empty_body_is_invalid():
    task = Task("f", "def f(x):\n", "", "", "", "held-out", language="python")
    judged = _judge_all("syntax", [Candidate(task, "def f(x):\n    return x\n"), Candidate(task, "def f(x):\n    return (\n"),
                                   Candidate(task, "def f(x):\n    pass\n", empty=True)])  # fmt: skip
    assert [(j.verdict, j.passed) for j in judged] == [("valid", True), ("invalid", False), ("invalid", False)]
    assert judged[2].detail["message"] == "empty body" and judged[0].category == "python-compile"


def test_the_collapse_judge_classifies_without_a_pass_or_fail():
    task = Task("p", "def foo(n):\n", "", "", "", "collapse prompts")
    judged = _judge_all("collapse", [Candidate(task, "):):):):):):):):):):):):):):):)"), Candidate(task, "    return n + 1\n")])
    assert all(j.passed is None for j in judged)
    assert judged[0].verdict != judged[1].verdict and judged[1].verdict == judged[1].detail["quality"]


def test_the_sandbox_judge_runs_a_program_that_candidates_share_once(monkeypatch):
    task = lookup("minibench").load(None)[0]
    seen = []
    with make_judge("sandbox", JudgeSettings(sandbox="process", workers=1)) as judge:
        judge.convert([task])  # its reference, run once to derive its cases
        real = judge.executor.run
        monkeypatch.setattr(judge.executor, "run", lambda programs, progress: (seen.append(len(programs)), real(programs, progress=progress)))
        found = {}
        judge.judge([Candidate(task, task.reference), Candidate(task, task.reference), Candidate(task, "    return None\n")],
                    found.__setitem__)  # fmt: skip
        judge.judge([Candidate(task, task.reference)], found.__setitem__)  # known while the judge is open
    assert seen == [2] and [found[i].verdict for i in range(3)] == ["passed", "passed", "failed_assertion"]


@pytest.fixture
def reference_backend():
    """A backend, registered for `--backend reference`, that answers every minibench prompt with its
    task's reference solution, except for odd tasks, where it returns None."""

    @register_backend("reference")
    class ReferenceGenerator(FakeGenerator):
        @classmethod
        def open(cls, model: str, **settings):
            tasks = lookup("minibench").load(None)
            return cls({t.prompt: t.reference if i % 2 == 0 else "    return None\n" for i, t in enumerate(tasks)})

    yield ReferenceGenerator
    del BACKENDS["reference"]


def test_slmlab_eval_runs_on_any_backend_through_the_same_pipeline(tmp_path, reference_backend):
    from slmlab.eval import make_config, run_eval

    config = make_config({"model": str(tmp_path), "backend": "reference", "benchmark": "minibench", "limit": 6,
                          "prompt_mode": "plain", "sandbox": "process", "k": [1], "out": str(tmp_path / "runs")})  # fmt: skip
    result = run_eval(config, QUIET)
    assert (result.generated, result.executed) == (6, 6)
    assert result.summary.by_task == {f"minibench/{i}": [i % 2 == 0] for i in range(6)}
    assert result.setup["backend"] == "reference" and config.identity()["backend"] == "reference"
    again = run_eval(config, QUIET)  # the same run, resumed: nothing to do
    assert (again.run_id, again.generated, again.executed) == (result.run_id, 0, 0)


def test_a_backend_without_capture_refuses_a_capture_run_before_it_is_recorded(tmp_path, reference_backend):
    from slmlab.eval import make_config, run_eval

    config = make_config({"model": str(tmp_path), "backend": "reference", "benchmark": "minibench", "limit": 2,
                          "capture_layers": "0", "out": str(tmp_path / "runs")})  # fmt: skip
    with pytest.raises(UserError, match="reference backend cannot capture activations"):
        run_eval(config, QUIET)
    with Store(Path(tmp_path / "runs" / "slmlab.db")) as store:
        assert store.runs() == []


def _stored_run(store: Store, kind: str, identity: dict, tasks: list[Task], texts: list[str], judge: str) -> str:
    """A run of any kind, made through the pipeline: the fake generator writes `texts`, the real judge judges."""
    run_id, _ = store.open_run(kind, identity)
    answers = {t.prompt: text for t, text in zip(tasks, texts, strict=True)}
    run.generate(store, run_id, plan(tasks, 1, 0, _prompt), FakeGenerator(answers), SamplingParams(), QUIET)
    with make_judge(judge, JudgeSettings(sandbox="process", workers=1)) as chosen:
        run.judge(store, run_id, {t.task_id: t for t in tasks}, chosen, QUIET)
    return run_id


def test_compare_reads_eval_runs_budget_views_and_lora_trials_alike(tmp_path):
    from tests.test_cli import slmlab

    code = lookup("minibench").load(None)[:6]
    right, wrong = [t.reference for t in code], ["    return None\n"] * 6
    problems = [Task(str(i), f"q{i}", "", "", "", "gsm8k", language="math", answer=str(i)) for i in range(6)]
    functions = [Task(f"f{i}", f"def f{i}(x):\n", "", "", "    return x\n", "held-out", language="python") for i in range(6)]
    with Store(tmp_path / "slmlab.db") as store:
        runs = {
            "eval": _stored_run(store, "eval", {"model": "a"}, code, right[:4] + wrong[4:], "sandbox"),
            "code view": _stored_run(store, "budget-view", {"budget": 8}, code, right[:1] + wrong[1:], "sandbox"),
            "math view 1": _stored_run(store, "budget-view", {"budget": 1}, problems, ["0", "x", "x", "x", "x", "x"], "math"),
            "math view 2": _stored_run(store, "budget-view", {"budget": 2}, problems, [f"#### {i}" for i in range(6)], "math"),
            "trial 1": _stored_run(store, "lora-trial", {"rank": 0}, functions,
                                   [f"def f{i}(x):\n    return (\n" for i in range(6)], "syntax"),
            "trial 2": _stored_run(store, "lora-trial", {"rank": 4}, functions,
                                   [f"def f{i}(x):\n    return x\n" for i in range(6)], "syntax"),
        }  # fmt: skip
    for a, b, alone in [("eval", "code view", "B alone solved 0 tasks, A alone solved 3"),
                        ("math view 1", "math view 2", "B alone solved 5 tasks, A alone solved 0"),
                        ("trial 1", "trial 2", "B alone solved 6 tasks, A alone solved 0")]:  # fmt: skip
        done = slmlab("compare", runs[a], runs[b], "--out", str(tmp_path))
        assert done.returncode == 0, (a, b, done.stderr)
        text = " ".join(done.stdout.split())
        assert f"A: {runs[a]}" in text and f"B: {runs[b]}" in text and alone in text, (a, b, text)
    assert "budget 8" in slmlab("compare", runs["eval"], runs["code view"], "--out", str(tmp_path)).stdout
    listing = slmlab("runs", "--out", str(tmp_path), env={"COLUMNS": "250"}).stdout
    rows = {line.split("│")[1].strip(): line for line in listing.splitlines() if line.count("│") > 5}
    expected = {"eval": "0.667", "code view": "0.167", "math view 1": "0.167", "math view 2": "1.000", "trial 2": "1.000"}
    for name, rate in expected.items():  # every kind of run with its pass@1, from its judgements
        assert rate in rows[runs[name]], (name, rows[runs[name]])


def test_the_similarity_judge_scores_against_the_reference_without_a_verdict():
    task = Task("f", "def f(x):\n", "", "", "    return x + 1\n", "held-out")
    same, other = _judge_all("similarity", [Candidate(task, "    return x + 1\n"), Candidate(task, "pass")])
    assert same.detail["bleu"] > 99 and other.detail["bleu"] < 10 and same.passed is other.passed is None
    assert _judge_all("similarity", [Candidate(Task("g", "", "", "", "", "toy"), "x")])[0].verdict == "no_reference"


class _ChatTokenizer:
    chat_template = "turns"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


def test_a_chat_prompt_reaches_the_generator_as_text_and_as_turns():
    minibench = lookup("minibench")
    task = minibench.load(None)[0]
    prompt = minibench.prompt(task, "chat", _ChatTokenizer(), [])
    request = plan([task], 1, 0, lambda t: prompt)[0].request()
    assert request.prompt.startswith("<user>") and not request.add_special_tokens
    assert [m["role"] for m in request.messages] == ["user"] and task.prompt in request.messages[0]["content"]


def _square_or_fail(x: int, *, threads: int) -> tuple[int, int]:
    if x < 0:
        raise ValueError("negative")
    return x * x, threads


def test_the_local_executor_runs_each_call_in_its_own_process_and_says_which_failed():
    from slmlab.pipeline.executor import CallFailed, make_executor

    executor = make_executor("local", parallel=2)
    done = dict(executor.run_each(_square_or_fail, [(2,), (3,), (4,)]))
    assert {i: square for i, (square, _) in done.items()} == {0: 4, 1: 9, 2: 16}
    assert all(threads >= 1 for _, threads in done.values())  # each call gets its share of the cores
    with pytest.raises(CallFailed) as failed:
        list(make_executor("local", parallel=1).run_each(_square_or_fail, [(1,), (-1,)]))
    assert failed.value.index == 1 and isinstance(failed.value.error, ValueError)
    with pytest.raises(UserError, match="unknown executor 'cloud'"):
        make_executor("cloud")


def test_the_ray_executor_without_its_extra_or_its_cluster_is_one_line(tmp_path):
    from tests.test_cli import _one_line_error, slmlab

    (tmp_path / "ray.py").write_text("raise ImportError('No module named ray')\n")  # Ray not installed
    without = {"PYTHONPATH": str(tmp_path)}
    _one_line_error(slmlab("cluster", "status", env=without), "pip install 'slmlab[ray]'")
    _one_line_error(slmlab("eval", "--model", "smollm2-135m-instruct", "--limit", "1", "--executor", "ray",
                           "--out", str(tmp_path / "runs"), env=without), "pip install 'slmlab[ray]'")  # fmt: skip
    _one_line_error(slmlab("cluster", "status", "--ray-address", "127.0.0.1:1"), "no Ray cluster answers")
    _one_line_error(slmlab("eval", "--model", "x", "--replicas", "2"), "--executor ray")


def test_a_config_gives_its_sections_nested_or_flat_with_the_same_identity():
    from slmlab.eval.config import make_config
    from slmlab.studies.budget import BudgetStudyConfig

    nested = make_config({"model": "m", "sampling": {"temperature": 0.8, "seed": 7}, "execution": {"sandbox": "process"},
                          "engine": {"dtype": "float32"}, "paths": {"out": "elsewhere"}})  # fmt: skip
    flat = make_config({"model": "m", "temperature": 0.8, "seed": 7, "sandbox": "process", "dtype": "float32",
                        "out": "elsewhere"})  # fmt: skip
    assert nested == flat and nested.identity() == flat.identity()
    assert nested.section("sampling") == SamplingParams(temperature=0.8, seed=7)
    assert BudgetStudyConfig(execution={"timeout": 2.0}).judge_settings(match="strict").timeout == 2.0
    for values, problem in [({"sampling": {"temprature": 1}}, "unknown field 'sampling.temprature' (did you mean "
                                                              "'sampling.temperature'?)"),
                            ({"temperature": 1, "sampling": {"temperature": 2}}, "'temperature' is given twice"),
                            ({"sampling": 5}, "sampling: give a mapping of its fields")]:  # fmt: skip
        with pytest.raises(UserError, match=re.escape(f"cfg.yaml: {problem}")):
            make_config({"model": "m", **values}, "cfg.yaml")


def test_judging_alongside_generation_stores_the_same_judgements(tmp_path):
    planned = plan(TASKS, 3, 1, _prompt)
    results = {}
    for overlap in (False, True):
        console = Console(record=True, width=200)
        with Store(tmp_path / f"{overlap}.db") as store, make_judge("even-seed") as judge:
            run_id, _ = store.open_run("eval", {"toy": 1})
            generated, judged = run.generate_and_judge(store, run_id, planned, FakeGenerator(), SamplingParams(),
                                                       console, {t.task_id: t for t in TASKS}, judge, overlap)  # fmt: skip
            results[overlap] = [(s.task_id, s.sample_index, s.judgement) for s in store.samples(run_id)]
        assert (generated.samples, judged) == (12, 12)
        assert ("judging alongside generation: 12 samples" in console.export_text()) is overlap
    assert results[True] == results[False]


def test_slmlab_eval_judges_alongside_a_generator_that_leaves_the_cpu_free(tmp_path, reference_backend, monkeypatch):
    from slmlab.eval import make_config, run_eval

    monkeypatch.setattr(reference_backend, "overlaps_judging", True, raising=False)
    config = make_config({"model": str(tmp_path), "backend": "reference", "benchmark": "minibench", "limit": 4,
                          "sandbox": "process", "k": [1], "out": str(tmp_path / "runs")})  # fmt: skip
    result = run_eval(config, QUIET)
    assert result.executed == 4 and result.summary.by_task == {f"minibench/{i}": [i % 2 == 0] for i in range(4)}
