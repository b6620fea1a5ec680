"""The run store: exactly once under kill -9, resumable, clear errors on a bad file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from slmlab.errors import UserError
from slmlab.judgement import Judgement
from slmlab.store import SampleRow, Store, run_key

CONFIG = {"model": "tiny", "benchmark": "humaneval", "n": 3, "seed": 1}
WANTED = [(f"T/{t}", i) for t in range(40) for i in range(3)]

# A stand-in for the generation loop: stores every missing sample, slowly enough to be killed mid-run.
WRITER = """
import sys, time
from slmlab.store import SampleRow, Store
store = Store(sys.argv[1])
run_id, _ = store.open_run("eval", {config!r})
wanted = [(f"T/{{t}}", i) for t in range(40) for i in range(3)]
for task_id, index in store.missing(run_id, wanted):
    row = SampleRow(task_id, index, index, "prompt " + task_id, f"completion {{task_id}} {{index}}", {{"tokens": index}}, None)
    store.add_sample(run_id, row)
    time.sleep(0.01)
print("done")
"""


def _run_writer(path, kill_after: float | None) -> None:
    process = subprocess.Popen([sys.executable, "-c", WRITER.format(config=CONFIG), str(path)])
    if kill_after is None:
        assert process.wait(timeout=120) == 0
        return
    time.sleep(kill_after)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_a_run_killed_at_any_moment_resumes_with_nothing_lost_or_doubled(tmp_path):
    interrupted, reference = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    _run_writer(interrupted, kill_after=0.8)
    with Store(interrupted) as store:
        run_id, resumed = store.open_run("eval", CONFIG)
        partial = len(list(store.samples(run_id)))
    assert 0 < partial < len(WANTED), partial  # really interrupted mid-run
    _run_writer(interrupted, kill_after=None)  # the same command again
    _run_writer(reference, kill_after=None)  # an uninterrupted run
    with Store(interrupted) as a, Store(reference) as b:
        rows_a, rows_b = list(a.samples(run_id)), list(b.samples(run_id))
    assert resumed
    assert len(rows_a) == len(WANTED) and rows_a == rows_b


def test_runs_are_found_again_by_their_configuration(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        first, resumed_first = store.open_run("eval", CONFIG)
        again, resumed_again = store.open_run("eval", dict(reversed(list(CONFIG.items()))))
        other, _ = store.open_run("eval", {**CONFIG, "seed": 2})
        assert (first, resumed_first, resumed_again) == (again, False, True)
        assert other != first and first == run_key("eval", CONFIG)
        assert "packages" in json.loads(store.db.execute("SELECT environment FROM runs").fetchone()[0])


def test_outcomes_metrics_and_human_eval_export(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        run_id, _ = store.open_run("eval", CONFIG)
        assert store.add_sample(run_id, SampleRow("T/0", 0, 0, "p", "    return 1\n", {"tokens": 4}, None))
        assert not store.add_sample(run_id, SampleRow("T/0", 0, 0, "p", "other", {}, None))  # exactly once
        assert [r.task_id for r in store.unjudged(run_id)] == ["T/0"]
        store.set_judgement(run_id, "T/0", 0, Judgement("sandbox", "harness_error", None))
        assert [r.task_id for r in store.unjudged(run_id)] == ["T/0"]  # our fault: judged again on resume
        store.set_judgement(run_id, "T/0", 0, Judgement("sandbox", "passed", True))
        assert store.unjudged(run_id) == []
        assert next(store.samples(run_id)).judgement == Judgement("sandbox", "passed", True)
        store.set_metric(run_id, "pass@1", {"value": 1.0})
        assert store.metrics(run_id) == {"pass@1": {"value": 1.0}}
        assert store.export_human_eval(run_id, tmp_path / "out.jsonl") == 1
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line == {
        "task_id": "T/0",
        "completion": "    return 1\n",
        "sample_index": 0,
        "status": "passed",
        "passed": True,
    }


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(UserError, match="not a usable slmlab store"):
        Store(bad)
    assert bad.read_bytes() == b"not a database at all" * 100  # left as it was


# A store as slmlab wrote it before judgements were typed (schema 1): `outcome` meant a sandbox
# outcome, both math verdicts or a syntax verdict, depending on the run kind.
_VERSION1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
CREATE TABLE runs (run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, environment TEXT NOT NULL,
                   created REAL NOT NULL, finished REAL);
CREATE TABLE samples (run_id TEXT NOT NULL REFERENCES runs(run_id), task_id TEXT NOT NULL,
                      sample_index INTEGER NOT NULL, seed INTEGER, prompt TEXT NOT NULL, completion TEXT NOT NULL,
                      generation TEXT NOT NULL, outcome TEXT, PRIMARY KEY (run_id, task_id, sample_index));
CREATE TABLE metrics (run_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, name));
"""
_OLD_OUTCOMES = {
    ("eval", "eval-a"): {"status": "failed_assertion", "error_type": "AssertionError", "passed": False},
    ("budget-view", "budget-view-math"): {
        "strict": {"predicted": None, "method": "none", "correct": False},
        "flexible": {"predicted": "18", "method": "last number", "correct": True},
    },
    ("budget-view", "budget-view-code"): {"status": "passed", "passed": True},
    ("lora-trial", "lora-trial-x"): {"status": "unchecked", "message": "no javac"},
}


def test_a_schema_1_store_is_migrated_in_place_with_a_copy_and_nothing_lost(tmp_path):
    import sqlite3

    path = tmp_path / "slmlab.db"
    with sqlite3.connect(path) as db:
        db.executescript(_VERSION1)
        for (kind, run_id), outcome in _OLD_OUTCOMES.items():
            db.execute("INSERT INTO runs VALUES (?, ?, '{}', '{}', 0, 1)", (run_id, kind))
            db.execute(
                "INSERT INTO samples VALUES (?, 'T/1', 0, 7, 'p', 'c', '{}', ?)",
                (run_id, json.dumps(outcome)),
            )
            db.execute("INSERT INTO samples VALUES (?, 'T/2', 0, 8, 'p', 'c', '{}', NULL)", (run_id,))
    with Store(path) as store:
        judged = {run_id: [s.judgement for s in store.samples(run_id)] for _, run_id in _OLD_OUTCOMES}
    assert (tmp_path / "slmlab.db.schema1").is_file()
    with sqlite3.connect(
        tmp_path / "slmlab.db.schema1"
    ) as db:  # the copy is the old store, readable as it was
        assert db.execute("SELECT COUNT(*) FROM samples WHERE outcome IS NOT NULL").fetchone() == (4,)
    assert [j[1] for j in judged.values()] == [None] * 4  # an unjudged sample stays unjudged
    first = {run_id: j[0] for run_id, j in judged.items()}
    assert (first["eval-a"].judge, first["eval-a"].verdict, first["eval-a"].passed) == (
        "sandbox",
        "failed_assertion",
        False,
    )
    assert first["eval-a"].category == "AssertionError"
    assert (first["budget-view-math"].verdict, first["budget-view-math"].passed) == ("correct", True)
    assert first["budget-view-math"].detail["strict"]["correct"] is False  # both verdicts are kept
    assert (first["budget-view-code"].verdict, first["budget-view-code"].passed) == ("passed", True)
    assert (first["lora-trial-x"].judge, first["lora-trial-x"].passed) == ("syntax", None)
    with Store(path) as store:  # opened again: already schema 2, nothing changes
        assert [s.judgement for s in store.samples("eval-a")][0] == first["eval-a"]


def test_a_store_from_a_newer_slmlab_is_refused_with_what_to_do(tmp_path):
    import sqlite3

    path = tmp_path / "slmlab.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema', '99');"
        )
    with pytest.raises(UserError, match="newer slmlab.*upgrade slmlab"):
        Store(path)
