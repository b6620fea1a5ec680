"""What the web app reads from the stores it was given, read-only, one SQL query a page.

Stores are named by their place in `slmlab serve --out A --out B` (0, 1, ...), never by a path from
the URL. Samples are paged and filtered in SQL (a run of 100,000 samples is never loaded whole):
by verdict, error type, quality flag, task and free text.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slmlab.errors import UserError
from slmlab.metrics.intervals import wilson
from slmlab.pipeline.summary import QUALITY_FLAGS as FLAGS
from slmlab.store import STORE_NAME, natural_key, read_annotations

PAGE = 50  # samples a page
_RUN_ID = re.compile(r"\b[a-z][a-z-]*-[0-9a-f]{16}\b")  # how run ids look (slmlab.store.run_key)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


@dataclass(frozen=True)
class Filters:
    verdict: str = ""  # a judgement's verdict (passed, failed_assertion, ..., or "unjudged")
    error: str = ""  # its category (the error type)
    flag: str = ""  # a quality flag of the generation (truncated, repetitive, ...)
    task: str = ""  # a task id, exactly
    text: str = ""  # words in the completion, prompt, or the judgement's detail
    page: int = 0

    def where(self) -> tuple[str, list]:
        clauses, values = ["run_id = ?"], []
        if self.verdict == "unjudged":
            clauses.append("judgement IS NULL")
        elif self.verdict:
            clauses.append("json_extract(judgement, '$.verdict') = ?")
            values.append(self.verdict)
        if self.error:  # as the run page counts them: a failure without an exception class under its verdict
            clauses.append("json_extract(judgement, '$.passed') = 0 AND "
                           "COALESCE(json_extract(judgement, '$.category'), json_extract(judgement, '$.verdict')) = ?")
            values.append(self.error)
        if self.flag in FLAGS:  # a name of ours, so it may name the JSON path
            clauses.append(f"json_extract(generation, '$.flags.{self.flag}') = 1")
        if self.task:
            clauses.append("task_id = ?")
            values.append(self.task)
        if self.text:
            clauses.append("(instr(completion, ?) > 0 OR instr(prompt, ?) > 0 OR instr(COALESCE(judgement, ''), ?) > 0)")
            values += [self.text] * 3
        return " AND ".join(clauses), values


class Stores:
    """The stores the app serves, each opened read-only per query."""

    def __init__(self, folders: list[str | Path]):
        self.paths = []
        for folder in folders:
            path = Path(folder) / STORE_NAME if Path(folder).is_dir() else Path(folder)
            if not path.is_file():
                raise UserError(f"--out {folder}: no slmlab store there ({STORE_NAME}); name a folder a run wrote")
            self.paths.append(path.resolve())

    def studies(self) -> list[dict]:
        """The study reports beside the stores (a report.html that is not a run's), newest first, each
        with the runs of the stores it names. A study keeps its store in its folder (bottleneck,
        budget) or in `store/` inside it (LoRA, collapse): both are searched, three folders deep."""
        known = {r["run_id"]: r["store"] for r in self.runs()}
        found = []
        for index, reports in enumerate(self._nearby("report.html")):
            for report in reports:
                if report.parent.name in known:
                    continue  # a run's own report: the run's page shows it all
                text = report.read_text(errors="replace")
                title = _TITLE.search(text)
                runs = sorted({run for run in _RUN_ID.findall(text) if run in known})
                found.append({"store": index, "path": report, "title": html.unescape(title.group(1)).strip() if title else report.parent.name,
                              "modified": report.stat().st_mtime, "runs": [(known[r], r) for r in runs]})  # fmt: skip
        found.sort(key=lambda s: -s["modified"])
        return found

    def _nearby(self, name: str) -> list[list[Path]]:
        """Files called `name` beside each store, three folders deep: in the store's folder, or in the
        one above it where the store is a study's `store/` (LoRA, collapse)."""
        found = []
        for path in self.paths:
            roots = {path.parent, *([path.parent.parent] if path.parent.name == "store" else [])}
            found.append(sorted({hit for root in roots for depth in ("", "*/", "*/*/", "*/*/*/")
                                 for hit in root.glob(f"{depth}{name}")}))  # fmt: skip
        return found

    def trainings(self) -> list[dict]:
        """The training runs beside the stores (`slmlab train` writes <run>/<name>_summary.json)."""
        found = []
        for index, summaries in enumerate(self._nearby("*_summary.json")):
            for path in summaries:
                try:
                    summary = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if not isinstance(summary, dict) or not {"experiment", "steps", "val_bits_per_char"} <= set(summary):
                    continue
                found.append({"store": index, "path": path, "summary": summary, "modified": path.stat().st_mtime})
        return found

    def connect(self, store: int) -> sqlite3.Connection:
        if not 0 <= store < len(self.paths):
            raise KeyError(store)
        db = sqlite3.connect(f"{self.paths[store].as_uri()}?mode=ro", uri=True, check_same_thread=False)
        db.row_factory = sqlite3.Row
        return db

    def runs(self) -> list[dict]:
        """Every run of every store: kind, what it ran, samples, judged, pass rate with its interval."""
        found = []
        for index, path in enumerate(self.paths):
            with closing(self.connect(index)) as db:
                rows = db.execute(
                    "SELECT r.run_id, r.kind, r.config, r.created, r.finished, COUNT(s.task_id) AS samples, "
                    "COUNT(s.judgement) AS judged, "
                    "SUM(json_extract(s.judgement, '$.passed') = 1) AS passed, "
                    "(SELECT value FROM metrics m WHERE m.run_id = r.run_id AND m.name = 'pass_at_k') AS pass_at_k "
                    "FROM runs r LEFT JOIN samples s ON s.run_id = r.run_id GROUP BY r.run_id ORDER BY r.created DESC"
                ).fetchall()  # fmt: skip
            for row in rows:
                config = json.loads(row["config"])
                stored = json.loads(row["pass_at_k"]).get("1") if row["pass_at_k"] else None
                if stored:
                    rate = (stored["value"], stored["low"], stored["high"])
                elif row["judged"]:  # runs that store no metric: the share of judged samples that passed
                    passed = row["passed"] or 0
                    rate = (passed / row["judged"], *wilson(passed, row["judged"]))
                else:
                    rate = None
                found.append({"store": index, "store_path": str(path.parent), "run_id": row["run_id"],
                              "kind": row["kind"], "model": str(config.get("model", "")),
                              "benchmark": str(config.get("benchmark", "")), "config": config,
                              "created": row["created"], "finished": row["finished"], "samples": row["samples"],
                              "judged": row["judged"], "rate": rate})  # fmt: skip
        return found

    def run(self, store: int, run_id: str) -> dict | None:
        with closing(self.connect(store)) as db:
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            metrics = {m["name"]: json.loads(m["value"])
                       for m in db.execute("SELECT name, value FROM metrics WHERE run_id = ?", (run_id,))}  # fmt: skip
            # One scan for verdicts, error types and tasks, the judgement's JSON parsed once a row
            # (SQLite 3.40 parses again for every json_extract: with one per field and a scan per
            # chart, a run of 100,000 samples took 370 ms). A finished eval run stored its flag
            # counts; other runs are scanned once more for them.
            groups = db.execute(
                "SELECT task_id, json_extract(judgement, '$.verdict', '$.category', '$.passed'), COUNT(*) "
                "FROM samples WHERE run_id = ? GROUP BY 1, 2", (run_id,)
            ).fetchall()  # fmt: skip
            stored_flags = metrics.get("quality") if row["finished"] else None
            if stored_flags is None:
                flag_paths = ", ".join(f"'$.flags.{f}'" for f in FLAGS)
                flag_groups = db.execute(f"SELECT json_extract(generation, {flag_paths}), COUNT(*) FROM samples "
                                         "WHERE run_id = ? GROUP BY 1", (run_id,)).fetchall()  # fmt: skip
        verdicts, errors, flagged = Counter(), Counter(), Counter()
        tasks: dict[str, list[int]] = {}  # task -> [samples, passed]
        for task, judged, n in groups:
            verdict, category, passed = json.loads(judged) if judged else ("unjudged", None, None)
            verdicts[verdict] += n
            counts = tasks.setdefault(task, [0, 0])
            counts[0] += n
            if passed in (True, 1):
                counts[1] += n
            elif passed in (False, 0):
                errors[category or verdict] += n  # a failed assertion has no exception class
        if stored_flags is not None:
            flagged.update({name: stored_flags.get(name, {}).get("count", 0) for name in FLAGS})
        else:
            for values, n in flag_groups:
                for name, value in zip(FLAGS, json.loads(values) if values else [None] * len(FLAGS), strict=True):
                    flagged[name] += n if value in (True, 1) else 0
        per_task = sorted(({"task_id": task, "n": n, "passed": passed} for task, (n, passed) in tasks.items()),
                          key=lambda t: (t["passed"] / t["n"], natural_key(t["task_id"])))  # fmt: skip
        return {"run_id": run_id, "kind": row["kind"], "config": json.loads(row["config"]),
                "environment": json.loads(row["environment"]), "created": row["created"], "finished": row["finished"],
                "metrics": metrics, "samples": sum(verdicts.values()),
                "judged": sum(n for verdict, n in verdicts.items() if verdict != "unjudged"),
                "verdicts": verdicts.most_common(), "errors": errors.most_common(30),
                "flags": [(name, flagged[name]) for name in FLAGS], "tasks": per_task}  # fmt: skip

    def samples(self, store: int, run_id: str, filters: Filters) -> tuple[list[dict], int]:
        """One page of the run's samples that pass the filters, and how many pass them in all."""
        where, values = filters.where()
        with closing(self.connect(store)) as db:
            total = db.execute(f"SELECT COUNT(*) FROM samples WHERE {where}", [run_id, *values]).fetchone()[0]  # noqa: S608 - clauses are ours, values bound
            rows = db.execute(
                f"SELECT task_id, sample_index, substr(completion, 1, 400) AS head, generation, judgement "  # noqa: S608
                f"FROM samples WHERE {where} ORDER BY task_id, sample_index LIMIT ? OFFSET ?",
                [run_id, *values, PAGE, filters.page * PAGE],
            ).fetchall()  # fmt: skip
        return [_summary_row(row) for row in rows], total

    def outcomes(self, store: int, run_id: str) -> dict[str, list[bool]]:
        """Each task's judged samples as passed or not, in sample order (what a paired test takes)."""
        with closing(self.connect(store)) as db:
            rows = db.execute("SELECT task_id, json_extract(judgement, '$.passed') FROM samples WHERE run_id = ? "
                              "AND json_extract(judgement, '$.passed') IS NOT NULL ORDER BY task_id, sample_index",
                              (run_id,)).fetchall()  # fmt: skip
        by_task: dict[str, list[bool]] = {}
        for task, passed in rows:
            by_task.setdefault(task, []).append(bool(passed))
        return by_task

    def first_sample(self, store: int, run_id: str, task_id: str, passed: bool) -> dict | None:
        """The task's first sample that passed (or failed), to show beside the other run's."""
        with closing(self.connect(store)) as db:
            row = db.execute("SELECT sample_index FROM samples WHERE run_id = ? AND task_id = ? AND "
                             "json_extract(judgement, '$.passed') = ? ORDER BY sample_index LIMIT 1",
                             (run_id, task_id, int(passed))).fetchone()  # fmt: skip
        return self.sample(store, run_id, task_id, row[0]) if row else None

    def failed_at(self, store: int, run_id: str, position: int) -> tuple[dict | None, int]:
        """The run's `position`-th failed sample (task order) and how many failed: what is annotated."""
        with closing(self.connect(store)) as db:
            failed = "run_id = ? AND json_extract(judgement, '$.passed') = 0"
            total = db.execute(f"SELECT COUNT(*) FROM samples WHERE {failed}", (run_id,)).fetchone()[0]  # noqa: S608
            row = db.execute(f"SELECT task_id, sample_index FROM samples WHERE {failed} "  # noqa: S608
                             "ORDER BY task_id, sample_index LIMIT 1 OFFSET ?", (run_id, position)).fetchone()  # fmt: skip
        return (self.sample(store, run_id, row[0], row[1]) if row else None), total

    def labels(self, store: int, run_id: str) -> list[dict]:
        """Every annotator's labels of the run (none in a store made before annotations existed)."""
        with closing(self.connect(store)) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'annotations'").fetchone():
                return []
            return read_annotations(db, run_id)

    def activations(self, store: int, run_id: str, task_id: str, index: int) -> dict | None:
        """For a capture run's sample: the norm of its mean generated-token activation at every layer
        captured and, where `slmlab probe` kept a margin classifier for the run, the sample's signed
        distance to it (with the medians of the passed and the failed samples, to read it by)."""
        with closing(self.connect(store)) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'activations'").fetchone():
                return None
            found = db.execute("SELECT row FROM activations WHERE run_id = ? AND task_id = ? AND sample_index = ?",
                               (run_id, task_id, index)).fetchone()  # fmt: skip
        if found is None:
            return None
        # Imported here: it brings torch (half a second and 170 MiB), which only capture runs need.
        from slmlab.probe.arrays import activations_dir, read_layout, read_rows

        directory = activations_dir(self.paths[store], run_id)
        if not (directory / "layout.json").is_file():
            return None
        layout = read_layout(directory)
        norms = [(layer, float(np.linalg.norm(read_rows(directory, "generated_mean", layer, [found[0]])[0])))
                 for layer in layout.layers]  # fmt: skip
        summary = {"layers": norms, "hidden_size": layout.hidden_size, "probe": None}
        probe = self.paths[store].parent / run_id / "probe" / "probe.json"
        payload = json.loads(probe.read_text()) if probe.is_file() else {}
        analysis = payload.get("analysis") or {}
        margins = analysis.get("margins")
        if margins and payload.get("kind") == "generated_mean" and analysis.get("layer") in layout.layers:
            values = read_rows(directory, "generated_mean", analysis["layer"], [found[0]])[0]
            score = float(np.dot(margins["weights"], values[margins["dims"]]) + margins["bias"])
            summary["probe"] = {"layer": analysis["layer"], "dims": margins["dims"], "score": score,
                                "median_passed": margins.get("median_distance_passed"),
                                "median_failed": margins.get("median_distance_failed")}  # fmt: skip
        return summary

    def sample(self, store: int, run_id: str, task_id: str, index: int) -> dict | None:
        with closing(self.connect(store)) as db:
            row = db.execute("SELECT * FROM samples WHERE run_id = ? AND task_id = ? AND sample_index = ?",
                             (run_id, task_id, index)).fetchone()  # fmt: skip
        if row is None:
            return None
        judgement = json.loads(row["judgement"]) if row["judgement"] else None
        return {"task_id": row["task_id"], "sample_index": row["sample_index"], "seed": row["seed"],
                "prompt": row["prompt"], "completion": row["completion"], "generation": json.loads(row["generation"]),
                "judgement": judgement}  # fmt: skip


def raised_flags(generation: dict) -> list[str]:
    """The quality flags a generation raised."""
    return [f for f in FLAGS if (generation.get("flags") or {}).get(f) is True]


def _summary_row(row: sqlite3.Row) -> dict:
    generation = json.loads(row["generation"])
    judgement = json.loads(row["judgement"]) if row["judgement"] else None
    return {"task_id": row["task_id"], "sample_index": row["sample_index"], "head": row["head"],
            "verdict": judgement["verdict"] if judgement else "unjudged",
            "passed": judgement.get("passed") if judgement else None,
            "category": (judgement or {}).get("category") or "",
            "flags": raised_flags(generation),
            "tokens": generation.get("tokens"), "finish_reason": generation.get("finish_reason", "")}  # fmt: skip
