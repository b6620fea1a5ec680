"""A run's report folder as a reader meets it: samples in numeric order, each error said once, the
configuration's asked and used values told apart, no empty pass@k plot, files others can read."""

from __future__ import annotations

import html
import json
import os
import re
import stat
from contextlib import contextmanager

import pytest

from slmlab.atomic import atomic_writer, write_text_atomic
from slmlab.judgement import from_version1
from slmlab.pipeline.summary import RunSummary
from slmlab.report.html import render_html
from slmlab.report.write import write_report
from slmlab.store import SampleRow, Store, natural_key

CONFIG = {"benchmark": "humaneval", "dtype": "auto", "model": "tiny", "model_sha256": "ab" * 32, "n": 1,
          "prompt_mode": "auto", "temperature": 0.0}  # fmt: skip
SETUP = {"model_location": "/models/tiny", "model_source": "cache /models/tiny/tiny.gguf",
         "model_sha256": "ab" * 32, "dtype": "float32", "prompt_mode": "chat", "stops": ["<closed code block>"],
         "load_seconds": 1.5, "tokens": 100, "seconds": 2.0, "tokens_per_s": 50.0}  # fmt: skip


def _row(task_id: str, index: int = 0, outcome: dict | None = None) -> SampleRow:
    outcome = outcome or {"status": "passed" if index % 2 == 0 else "failed_assertion"}
    return SampleRow(task_id, index, index, f"def f{index}():\n", "    return 1\n",
                     {"tokens": 4, "finish_reason": "stop", "flags": {}}, from_version1("eval", outcome))  # fmt: skip


def _store_order(rows: list[SampleRow]) -> list[SampleRow]:
    """As the store hands samples out: ORDER BY task_id, sample_index (task ids compare as text)."""
    return sorted(rows, key=lambda r: (r.task_id, r.sample_index))


def _listed(page: str) -> list[tuple[str, int]]:
    return [(html.unescape(task), int(index)) for task, index in re.findall(r"<summary>(.*?) #(\d+) ", page)]


def _summary(tasks: int, n: int) -> RunSummary:
    rows = [_row(f"HumanEval/{t}", i) for t in range(tasks) for i in range(n)]
    return RunSummary("eval-test", {**CONFIG, "n": n}, _store_order(rows))


def test_samples_are_listed_in_numeric_order(tmp_path):
    rows = [_row(f"HumanEval/{t}", i) for t in range(12) for i in range(12 if t == 1 else 1)]
    page = render_html(RunSummary("eval-test", CONFIG, _store_order(rows)), SETUP, tmp_path)
    listed = _listed(page)
    assert listed[:3] == [("HumanEval/0", 0), ("HumanEval/1", 0), ("HumanEval/1", 1)]
    assert [i for t, i in listed if t == "HumanEval/1"] == list(range(12))
    assert [t for t, _ in listed if not t.endswith("/1")] == [f"HumanEval/{t}" for t in range(12) if t != 1]
    mbpp = [_row(task) for task in ("Mbpp/11", "Mbpp/9", "Mbpp/100", "Mbpp/2")]
    page = render_html(RunSummary("eval-mbpp", CONFIG, _store_order(mbpp)), SETUP, tmp_path)
    assert [t for t, _ in _listed(page)] == ["Mbpp/2", "Mbpp/9", "Mbpp/11", "Mbpp/100"]
    assert sorted(["10", "9", "x2", "x10", "1²"], key=natural_key) == ["1²", "9", "10", "x2", "x10"]


@pytest.mark.parametrize(
    ("outcome", "shown"),
    [
        ({"status": "runtime_error", "error_type": "NameError", "detail": "NameError: name 'x' is not defined",
          "line": 7}, "NameError: name 'x' is not defined (line 7)"),
        ({"status": "syntax_error", "error_type": "SyntaxError", "line": 7,
          "detail": "line 7: unterminated string literal"}, "SyntaxError: unterminated string literal (line 7)"),
        ({"status": "failed_assertion", "error_type": "AssertionError",
          "detail": "assertion failed at test line 11"}, "AssertionError: assertion failed at test line 11"),
        ({"status": "runtime_error", "error_type": "StopIteration", "detail": "StopIteration", "line": 3},
         "StopIteration (line 3)"),
        ({"status": "timeout", "detail": "still running after 5 s (wall clock); killed"},
         "still running after 5 s (wall clock); killed"),
        ({"status": "passed"}, ""),
    ],
)  # fmt: skip
def test_an_error_names_its_class_and_line_once(tmp_path, outcome, shown):
    from slmlab.report.html import error_text

    assert error_text(outcome) == shown
    page = render_html(RunSummary("eval-test", CONFIG, [_row("HumanEval/0", 0, outcome)]), SETUP, tmp_path)
    (summary,) = re.findall(r"<summary>(.*?)</summary>", page)
    assert html.unescape(summary).endswith(f"</b> {shown}")


def _table_after(page: str, heading: str) -> dict[str, list[str]]:
    table = page.split(f"<h2>{heading}</h2>", 1)[1].split("</table>", 1)[0]
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    names = [row[0] for row in rows if row]
    assert len(names) == len(set(names)), f"a field listed twice under {heading}: {names}"
    return {row[0]: [html.unescape(cell) for cell in row[1:]] for row in rows if row}


def test_the_configuration_lists_each_setting_once_with_what_was_asked_and_used(tmp_path):
    page = render_html(_summary(2, 1), SETUP, tmp_path)
    settings = _table_after(page, "Configuration")
    assert settings["dtype"] == ["auto → float32"]
    assert settings["prompt_mode"] == ["auto → chat"]
    assert settings["model_sha256"] == ["ab" * 32]  # the same asked and used: said once
    assert settings["benchmark"] == ["humaneval"]
    assert "asked → used" in page
    environment = _table_after(page, "Environment and speed")
    assert environment["model_source"] == ["cache /models/tiny/tiny.gguf"]
    assert environment["stops"] == ['["<closed code block>"]']
    assert not set(environment) & set(settings)
    other = render_html(_summary(2, 1), {**SETUP, "model_sha256": "cd" * 32}, tmp_path)
    assert _table_after(other, "Configuration")["model_sha256"] == [f"{'ab' * 32} → {'cd' * 32}"]
    hub = {**CONFIG, "model_sha256": None}
    page = render_html(RunSummary("eval-hub", hub, _store_order([_row("HumanEval/0")])), SETUP, tmp_path)
    assert _table_after(page, "Configuration")["model_sha256"] == [f"(not given) → {'ab' * 32}"]


def test_one_sample_per_task_gets_no_empty_pass_at_k_plot_but_a_reason(tmp_path):
    folder = tmp_path / "run"
    write_report(_summary(4, 3), SETUP, folder)
    assert (folder / "pass_at_k.svg").is_file() and (folder / "pass_at_k.png").is_file()
    assert "no pass@k figure" not in (folder / "report.html").read_text()
    write_report(_summary(4, 1), SETUP, folder)  # the same folder: the earlier figure must not stay
    assert not (folder / "pass_at_k.svg").exists() and not (folder / "pass_at_k.png").exists()
    page = (folder / "report.html").read_text()
    assert "no pass@k figure: with one sample per task only pass@1 can be computed" in page
    assert page.count("<figure>") == 2  # the outcomes and the per-task strip
    assert json.loads((folder / "summary.json").read_text())["pass_at_k"]["1"]["method"] == "wilson"


def test_pass_at_k_curve_covers_every_k_up_to_the_samples_per_task():
    from slmlab.report.figures import curve_ks

    assert curve_ks(3, (1, 10, 100)) == [1, 2, 3]
    many = curve_ks(200, (1, 10, 100))
    assert many[0] == 1 and many[-1] == 200 and {10, 100} <= set(many) and len(many) <= 26


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_report_files_can_be_read_by_others_as_the_umask_allows(tmp_path):
    with _umask(0o022):
        folder = tmp_path / "run"
        write_report(_summary(3, 2), SETUP, folder)
        with Store(tmp_path / "slmlab.db") as store:
            run_id, _ = store.open_run("eval", {"model": "tiny"})
            for row in _store_order([_row(f"HumanEval/{t}") for t in range(3)]):
                store.add_sample(run_id, row)
            store.export_human_eval(run_id, folder / "samples.jsonl")
        files = sorted(p.name for p in folder.iterdir())
        expected = {"report.html", "summary.json", "samples.jsonl", "outcomes.svg", "pass_at_k.png"}
        assert expected <= set(files)
        assert {name: _mode(folder / name) for name in files} == dict.fromkeys(files, 0o644)
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no staging file left
    with _umask(0o077):  # a private umask is honoured, as open() would
        write_text_atomic(tmp_path / "private.txt", "x")
        assert _mode(tmp_path / "private.txt") == 0o600
    with _umask(0o002):
        write_text_atomic(tmp_path / "group.txt", "x")
        assert _mode(tmp_path / "group.txt") == 0o664
        os.chmod(tmp_path / "group.txt", 0o640)  # a file the user narrowed keeps its mode when rewritten
        with atomic_writer(tmp_path / "group.txt") as f:
            f.write("y")
        assert _mode(tmp_path / "group.txt") == 0o640 and (tmp_path / "group.txt").read_text() == "y"


def test_a_checkpoint_folder_gets_the_umask_mode_not_mkdtemps(tmp_path):
    from slmlab.train.checkpoint import save_checkpoint

    class _Saves:
        def save_pretrained(self, folder, **_):
            (folder / "weights.bin").write_bytes(b"0")

    with _umask(0o022):
        save_checkpoint(tmp_path / "checkpoints" / "best", _Saves(), _Saves(), {"step": 1})
    assert _mode(tmp_path / "checkpoints" / "best") == 0o755
    assert _mode(tmp_path / "checkpoints" / "best" / "checkpoint.json") == 0o644
