"""Verdicts nobody can forge: wrong answers that attack an in-process harness are failed on every
tier, correct answers next to them still pass, and the tests' conversion to cases (execute/cases.py)
keeps their verdicts."""

from __future__ import annotations

import pytest

from slmlab.execute import Executor
from slmlab.execute.cases import HARNESS, IN_PROCESS, call_sites, compare
from slmlab.execute.tiers import detect
from slmlab.judge import Candidate, JudgeSettings, make_judge
from slmlab.tasks import load_benchmark
from tests.forgeries import FORGERIES, INNOCENTS

TIERS = [name for name, tier in detect().items() if tier.available]
HUMANEVAL = {t.task_id: t for t in load_benchmark("humaneval")}


@pytest.fixture(scope="module", params=TIERS)
def judged(request):
    """Every forgery, each between two correct answers, judged once per tier."""
    candidates, roles = [], []
    for forgery in FORGERIES:
        task = HUMANEVAL[forgery.task_id]
        for role, text in (("innocent", INNOCENTS[task.task_id]), (forgery.name, forgery.program),
                           ("innocent", INNOCENTS[task.task_id] + "\n# another\n")):  # fmt: skip
            candidates.append(Candidate(task, text, whole_program=True))
            roles.append(role)
    found = {}
    with make_judge("sandbox", JudgeSettings(sandbox=request.param, workers=2, timeout=3.0)) as judge:
        judge.judge(candidates, found.__setitem__)
        after = {}  # a later batch on the same workers: nothing the forgeries did carries over
        judge.judge([Candidate(HUMANEVAL["HumanEval/0"], INNOCENTS["HumanEval/0"] + "\n# later\n", True)],
                    after.__setitem__)  # fmt: skip
    return {"tier": detect()[request.param], "verdicts": [(roles[i], found[i]) for i in range(len(roles))],
            "after": after[0]}  # fmt: skip


@pytest.mark.parametrize("forgery", FORGERIES, ids=[f.name for f in FORGERIES])
def test_a_forged_pass_is_a_failure_on_every_tier(judged, forgery):
    if forgery.gap and forgery.gap in judged["tier"].gaps:
        pytest.skip(f"{judged['tier'].name} does not contain {forgery.gap} here (reported in its gaps)")
    verdict = next(j for role, j in judged["verdicts"] if role == forgery.name)
    assert verdict.passed is False, (verdict.verdict, verdict.detail.get("detail"))
    assert verdict.detail["extra"].get("verdict") == HARNESS


def test_correct_answers_next_to_forgeries_keep_their_verdict(judged):
    innocents = [j for role, j in judged["verdicts"] if role == "innocent"]
    assert innocents and all(j.passed for j in innocents), [j.detail.get("detail") for j in innocents if not j.passed]
    assert judged["after"].passed


def test_output_that_is_not_plain_data_has_its_own_category():
    task = HUMANEVAL["HumanEval/0"]
    found = {}
    with make_judge("sandbox", JudgeSettings(sandbox="process", workers=1)) as judge:
        judge.judge([Candidate(task, FORGERIES[0].program, True)], found.__setitem__)
    assert found[0].verdict == "unsupported_output" and found[0].category == "Anything"


def test_every_humaneval_reference_passes_its_converted_cases_and_one_task_stays_in_process():
    tasks = list(HUMANEVAL.values())
    with make_judge("sandbox", JudgeSettings(sandbox="process")) as judge:
        found = {}
        judge.judge([Candidate(t, t.reference) for t in tasks], found.__setitem__)
    assert all(found[i].passed for i in range(len(tasks)))
    in_process = {t.task_id for i, t in enumerate(tasks) if found[i].detail["extra"]["verdict"] == IN_PROCESS}
    assert in_process == {"HumanEval/32"}  # a property test: any root of the polynomial is right


def test_converted_verdicts_agree_with_the_original_tests():
    """Known-good and known-bad answers (the reference; a body that returns None; the reference of
    another task; an off-by-one), judged by the tests in the sandbox and by cases outside it."""
    tasks = list(HUMANEVAL.values())[:60]
    programs, candidates = [], []
    for i, task in enumerate(tasks):
        other = tasks[(i + 1) % len(tasks)]
        off_by_one = task.reference.replace(" + 1", " + 2", 1).replace(" - 1", " - 2", 1)
        for text in (task.reference, "    return None\n", other.reference, off_by_one):
            programs.append(task.program(text))
            candidates.append(Candidate(task, text))
    with Executor("process") as executor:
        original = [o.passed for o in executor.run(programs)]
    found = {}
    with make_judge("sandbox", JudgeSettings(sandbox="process")) as judge:
        judge.judge(candidates, found.__setitem__)
    converted = [found[i].passed for i in range(len(candidates))]
    assert sum(original) >= 60 and sum(not p for p in original) >= 100  # both kinds are there
    disagree = [(candidates[i].task.task_id, candidates[i].text[:60]) for i in range(len(candidates))
                if original[i] != converted[i]]  # fmt: skip
    assert disagree == []


def test_call_sites_read_how_the_tests_compare():
    tests = (
        "def check(candidate):\n"
        "    assert candidate(1) == 2, str(candidate(1))\n"
        "    assert not candidate(0)\n"
        "    assert abs(candidate(0.5) - 1.5) <= 1e-6\n"
        "    assert tuple(candidate([1])) == (2,)\n"
        "    assert candidate(None) is None\n"
        "    assert math.isclose(candidate(2), 3.0, rel_tol=0.001)\n"
        "    try:\n"
        "        candidate('x')\n"
        "    except TypeError:\n"
        "        pass\n"
    )
    sites = call_sites(tests, "f")
    assert [(s.kind, s.wrapper) for _, s in sorted(sites.items())] == [
        ("eq", None), ("truth", "bool"), ("close", None), ("eq", "tuple"), ("is", None), ("isclose", None),
        ("raises", None)]  # fmt: skip
    assert "not a comparison" in call_sites("def check(candidate):\n    x = candidate(1)\n", "f")


def test_the_first_wrong_answer_decides_as_the_tests_would_stop_there():
    import marshal

    def line(answer):
        return marshal.dumps(answer).hex().encode()

    expected = (("eq", 2, 0.0, False, 0.0), ("eq", 3, 0.0, False, 0.0))
    two, three, four = (line(("value", marshal.dumps(n))) for n in (2, 3, 4))
    assert compare(expected, [two, three]) == (None, 2)
    assert compare(expected, [two]) == (None, 1)  # the caller decides what a missing answer means
    failure, answered = compare(expected, [four, three])
    assert failure["status"] == "failed_assertion" and "case 1 of 2" in failure["detail"] and answered == 0
    # a raised exception whose record claims a pass is still a failure
    forged = line(("raised", ("ValueError",), {"status": "passed", "detail": "x"}))
    assert compare(expected, [forged])[0]["status"] == "runtime_error"


def test_a_checked_conversion_is_cached_for_later_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path))
    tasks = [HUMANEVAL["HumanEval/1"], HUMANEVAL["HumanEval/32"]]  # 32 cannot be converted: never cached
    with make_judge("sandbox", JudgeSettings(sandbox="process", workers=1)) as judge:
        judge.convert(tasks)
    assert len(list((tmp_path / "cases").iterdir())) == 1
    with make_judge("sandbox", JudgeSettings(sandbox="process", workers=1)) as judge:
        runs = []
        real = judge.executor.run
        monkeypatch.setattr(judge.executor, "run", lambda programs, **kw: runs.append(len(programs)) or real(programs, **kw))
        judge.convert(tasks)
        assert runs == []  # 1 is cached; 32 is found unconvertible by reading its tests
        found = {}
        judge.judge([Candidate(tasks[0], tasks[0].reference)], found.__setitem__)
    assert found[0].passed and found[0].detail["extra"]["verdict"] == HARNESS


def test_tasks_judged_in_process_are_counted_apart_in_the_summary():
    from slmlab.judgement import Judgement
    from slmlab.pipeline.summary import RunSummary
    from slmlab.store import SampleRow

    def row(task_id, passed, verdict_by):
        judgement = Judgement("sandbox", "passed" if passed else "failed_assertion", passed, None,
                              {"extra": {"verdict": verdict_by}})  # fmt: skip
        return SampleRow(task_id, 0, 0, "p", "c", {}, judgement)

    summary = RunSummary("r", {}, [row("HumanEval/1", True, HARNESS), row("HumanEval/2", False, HARNESS),
                                   row("HumanEval/32", True, IN_PROCESS)])  # fmt: skip
    record = summary.metrics()["judged_in_process"]
    assert record["tasks"] == ["HumanEval/32"]
    assert record["pass_at_1_judged_outside"]["value"] == 0.5  # 1 of the 2 tasks judged outside
