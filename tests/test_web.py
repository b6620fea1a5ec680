"""`slmlab serve`: the pages over a real store, hostile model output shown as text (in the app and in
the static report), the token gate, and a real headless Chromium clicking through the app."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from slmlab.judgement import Judgement
from slmlab.store import SampleRow, Store
from slmlab.web.app import make_app

HOSTILE = ["</script><script>window.pwned = 1</script>", '<img src=x onerror="window.pwned = 1">',
           "</pre><b id=injected>bold</b>"]  # fmt: skip


def _store(folder: Path, samples: int = 30, model: str = "tiny", passes=lambda i: i % 2 == 0) -> tuple[Path, str]:
    """A finished eval run: task t/K sample i, every third one hostile, half of them failing."""
    folder.mkdir(parents=True, exist_ok=True)
    with Store(folder / "slmlab.db") as store:
        run_id, _ = store.open_run("eval", {"model": model, "benchmark": "humaneval", "n": 3})
        for i in range(samples):
            task, index = f"HumanEval/{i // 3}", i % 3
            completion = HOSTILE[i % 3] if i % 3 == 0 else f"    return x + {i}\n"
            passed = passes(i)
            judgement = Judgement("sandbox", "passed" if passed else "failed_assertion", passed,
                                  None if passed else ("NameError" if i == 1 else "AssertionError"),
                                  {"status": "passed" if passed else "failed_assertion", "line": 3,
                                   "detail": "" if passed else f"assert {HOSTILE[1]}", "stdout": HOSTILE[0]})  # fmt: skip
            generation = {"text": completion, "tokens": 7, "prompt_tokens": 5, "finish_reason": "stop",
                          "seconds": 0.1, "flags": {"empty": False, "truncated": i == 4, "repetitive": False,
                                                    "mode_collapse": False}}  # fmt: skip
            store.add_sample(run_id, SampleRow(task, index, i, f"def f(x):\n    '''{HOSTILE[2]}'''\n", completion,
                                               generation, judgement))  # fmt: skip
        store.finish_run(run_id)
    return folder, run_id


def _assert_no_raw_markup(html: str) -> None:
    for hostile in HOSTILE:
        assert hostile not in html
    assert "&lt;/script&gt;&lt;script&gt;" in html or "&lt;img" in html  # shown, as text


def test_the_pages_show_runs_samples_and_hostile_output_as_text(tmp_path):
    folder, run_id = _store(tmp_path / "runs")
    client = TestClient(make_app([folder]))
    runs = client.get("/")
    assert runs.status_code == 200 and run_id in runs.text and "0.500 [" in runs.text  # pass rate, interval
    assert client.get("/?q=nothing-like-it").text.count(run_id) == 0
    run = client.get(f"/run/0/{run_id}")
    assert run.status_code == 200 and "failed_assertion" in run.text and "AssertionError" in run.text
    page = client.get(f"/run/0/{run_id}/samples")
    assert "30 samples match" in page.text and page.text.count("sample-link") == 30
    _assert_no_raw_markup(page.text)
    failing = client.get(f"/run/0/{run_id}/samples?verdict=failed_assertion&text=return")
    assert "10 samples match" in failing.text  # 15 fail; 5 of them are hostile, not `return`
    assert "1 samples match" in client.get(f"/run/0/{run_id}/samples?flag=truncated").text
    assert "14 samples match" in client.get(f"/run/0/{run_id}/samples?error=AssertionError").text
    assert "3 samples match" in client.get(f"/run/0/{run_id}/samples?task=HumanEval/2").text
    sample = client.get(f"/run/0/{run_id}/sample", params={"task": "HumanEval/1", "index": 0})
    assert sample.status_code == 200 and 'id="verdict">failed_assertion' in sample.text
    _assert_no_raw_markup(sample.text)
    assert "&lt;/pre&gt;&lt;b id=injected&gt;" in sample.text
    # Paths never come from the URL: a store is its place in the list given; the rest is 404.
    assert client.get(f"/run/1/{run_id}").status_code == 404
    assert client.get("/run/0/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/static/../data.py").status_code == 404


def test_two_runs_compared_give_the_paired_verdict_and_the_tasks_only_one_passed(tmp_path):
    folder, a = _store(tmp_path / "runs")
    _, b = _store(tmp_path / "runs", model="other", passes=lambda i: i < 12)  # B: tasks 0-3 pass, 4-9 fail; A: all pass
    client = TestClient(make_app([folder]))
    assert "choose a run" in client.get("/compare").text
    done = client.get("/compare", params={"a": f"0:{a}", "b": f"0:{b}"})
    assert done.status_code == 200
    assert "10 tasks in both; 6 where exactly one run passed: A alone 6, B alone 0" in done.text
    from html import escape

    from slmlab.metrics.compare import compare_runs

    by_task = [{f"HumanEval/{t}": [passes(3 * t + j) for j in range(3)] for t in range(10)}
               for passes in (lambda i: i % 2 == 0, lambda i: i < 12)]  # fmt: skip
    assert escape(compare_runs(*by_task).verdict, quote=False) in done.text  # as `slmlab compare` says it
    assert done.text.count('class="pair"') == 6
    _assert_no_raw_markup(done.text)


def test_labels_are_stored_with_who_and_when_and_two_annotators_agreement_is_their_kappa(tmp_path):
    from sklearn.metrics import cohen_kappa_score

    folder, run_id = _store(tmp_path / "runs")
    client = TestClient(make_app([folder]))
    assert 'id="annotator-form"' in client.get(f"/annotate/0/{run_id}").text  # who is labelling, first
    first = client.get(f"/annotate/0/{run_id}", params={"annotator": "ann"})
    assert "failed sample 1 of 15" in first.text and "HumanEval/0 #1" in first.text
    # HumanEval/0 #1 failed with a NameError: the code scheme's suggestion, pre-selected and marked
    assert 'value="hallucinated_api" data-key="6" checked' in first.text and "suggested" in first.text
    labels = {"ann": ["hallucinated_api", "edge_case", "edge_case", "syntax", "other"],
              "bob": ["hallucinated_api", "edge_case", "syntax", "syntax", "wrong_algorithm"]}
    for annotator, picks in labels.items():
        for position, label in enumerate(picks):
            page = client.get(f"/annotate/0/{run_id}", params={"annotator": annotator, "position": position}).text
            task = page.split('name="task" value="')[1].split('"')[0]
            index = page.split('name="index" value="')[1].split('"')[0]
            saved = client.post(f"/annotate/0/{run_id}", data={"annotator": annotator, "task": task, "index": index,
                                "position": position, "label": label, "suggested": "hallucinated_api" if position == 0 else ""},
                                follow_redirects=False)  # fmt: skip
            assert saved.status_code == 303 and saved.headers["location"].endswith(f"position={position + 1}")
    assert client.post(f"/annotate/0/{run_id}", data={"annotator": "ann", "task": "HumanEval/0", "index": 1,
                                                      "label": "not-a-label"}).status_code == 400  # fmt: skip
    with Store(folder / "slmlab.db") as store:
        stored = store.annotations(run_id)
    assert len(stored) == 10 and all(row["created"] > 0 for row in stored)
    assert {(r["annotator"], r["label"], r["suggested"]) for r in stored if r["task_id"] == "HumanEval/0"} == \
        {("ann", "hallucinated_api", True), ("bob", "hallucinated_api", True)}  # fmt: skip
    agreement = client.get(f"/agreement/0/{run_id}").text
    kappa = cohen_kappa_score(labels["ann"], labels["bob"])
    assert f"<strong>{kappa:.3f}</strong> on 5 samples both labelled (3 the same)" in agreement


def test_the_static_report_shows_hostile_output_as_text(tmp_path):
    from slmlab.pipeline.summary import RunSummary
    from slmlab.report.write import write_report

    folder, run_id = _store(tmp_path / "runs")
    with Store(folder / "slmlab.db") as store:
        summary = RunSummary(run_id, store.run_config(run_id), list(store.samples(run_id)), (1,))
    html = write_report(summary, {}, tmp_path / "report").read_text()
    _assert_no_raw_markup(html)


def test_beyond_this_machine_every_request_needs_the_token(tmp_path):
    folder, _ = _store(tmp_path / "runs", samples=3)
    client = TestClient(make_app([folder], token="s3cret"))
    assert client.get("/").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert client.get("/?token=s3cret").status_code == 200
    assert client.get("/").status_code == 200  # the cookie it set


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    import uvicorn

    folder, run_id = _store(tmp_path / "runs", samples=120)
    _store(tmp_path / "runs", samples=120, model="other", passes=lambda i: i < 60)  # a second run to compare with
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(make_app([folder]), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", run_id, folder
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (./scripts/setup.sh --with-browser)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_a_browser_pages_through_filters_and_opens_a_sample_with_no_script_run(served, browser):
    address, run_id, _ = served
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(address + "/")
    with page.expect_response(lambda response: "q=tiny" in response.url):
        page.fill("#run-search", "tiny")  # htmx asks for the filtered table after its input delay
    page.locator(f"text={run_id}").click()
    page.wait_for_selector("#sample-count")
    assert "120 samples match; page 1 of 3" in page.inner_text("#sample-count")
    page.click("#next-page")
    page.wait_for_function("document.querySelector('#sample-count').innerText.includes('page 2 of 3')")
    page.select_option("#filter-verdict", "failed_assertion")
    page.wait_for_function("document.querySelector('#sample-count').innerText.startsWith('60 samples match')")
    page.fill("#filter-task", "HumanEval/3")
    page.wait_for_function("document.querySelector('#sample-count').innerText.startsWith('2 samples match')")
    page.click("a.sample-link")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "failed_assertion"
    assert HOSTILE[0] in page.inner_text("#stdout")  # the hostile text is shown, as text
    assert page.evaluate("window.pwned") is None and not dialogs  # and nothing of it ran
    assert page.query_selector("#injected") is None
    # compare the two runs from the form
    page.goto(address + "/compare")
    options = page.eval_on_selector_all("#compare-a option", "options => options.map(o => o.value)")
    tiny = next(o for o in options if o.endswith(run_id))
    other = next(o for o in options if o and o != tiny)
    page.select_option("#compare-a", tiny)
    page.select_option("#compare-b", other)
    with page.expect_navigation():
        page.click("#compare-go")
    assert "40 tasks in both; 20 where exactly one run passed: A alone 20, B alone 0" in page.inner_text("main")
    assert "significant" in page.inner_text("#compare-verdict")
    assert page.evaluate("window.pwned") is None and not dialogs


def test_serve_names_a_folder_without_a_store_in_one_line(tmp_path):
    from tests.test_cli import _one_line_error, slmlab

    _one_line_error(slmlab("serve", "--out", str(tmp_path / "nothing"), "--no-open"), "no slmlab store there")
    _one_line_error(slmlab("serve", "--port", "0", "--no-open"), "--port")


def _annotate_by_keyboard(page, keys: list[str]) -> None:
    """Press each key on the annotation page; each saves (or moves) and loads the next sample."""
    for key in keys:
        with page.expect_navigation():
            page.keyboard.press(key)
        page.wait_for_selector("#annotate-position")


def test_two_annotators_label_by_keyboard_at_once_and_every_label_is_kept(served, browser):
    address, run_id, folder = served
    annotators = {"ann": ["Enter", "2", "3", "1", "8"], "bob": ["6", "2", "4", "1", "7"]}  # 5 samples each
    pages = {}
    for name in annotators:
        pages[name] = browser.new_context().new_page()  # two browsers' worth of sessions
        pages[name].goto(f"{address}/run/0/{run_id}")
        pages[name].click("#annotate-link")
        pages[name].fill("#annotator", name)
        _annotate_by_keyboard(pages[name], ["Enter"])
    for step in range(5):  # interleaved: the two save at the same moments
        for name, keys in annotators.items():
            _annotate_by_keyboard(pages[name], [keys[step]])
    _annotate_by_keyboard(pages["ann"], ["p"])  # back one, without saving
    assert pages["ann"].inner_text("#annotate-position").startswith("failed sample 5 of")
    assert "yours" in pages["ann"].inner_text("#annotate-form")
    with Store(folder / "slmlab.db") as store:
        stored = store.annotations(run_id)
    scheme = ("wrong_algorithm", "edge_case", "misread_task", "syntax", "incomplete", "hallucinated_api",
              "degenerate", "other")  # fmt: skip
    for name, keys in annotators.items():
        mine = [r for r in stored if r["annotator"] == name]
        expected = ["hallucinated_api" if key == "Enter" else scheme[int(key) - 1] for key in keys]
        assert [r["label"] for r in mine] == expected  # in task order, every one kept
    assert [r["suggested"] for r in stored if r["annotator"] == "ann"][0] is True  # Enter kept the suggestion
    pages["bob"].goto(f"{address}/agreement/0/{run_id}")
    assert "on 5 samples both labelled (3 the same)" in pages["bob"].inner_text("body")


def test_numbers_from_the_url_that_are_not_numbers_are_the_first_page(tmp_path):
    folder, run_id = _store(tmp_path / "runs", samples=6)
    client = TestClient(make_app([folder]))
    assert client.get(f"/run/0/{run_id}/samples", params={"page": "²"}).status_code == 200
    assert client.get(f"/run/0/{run_id}/sample", params={"task": "HumanEval/0", "index": "x"}).status_code == 200
    assert client.get("/compare", params={"a": "¹:x", "b": "0:y"}).status_code == 200
    assert client.get(f"/annotate/0/{run_id}", params={"annotator": "a", "position": "-3"}).status_code == 200


def test_a_run_judged_by_the_math_judge_is_annotated_with_seed_002s_error_types():
    from slmlab.tasks.schemes import scheme_for, suggest

    assert scheme_for("", "math").name == scheme_for("gsm8k").name == "gsm8k"  # a budget view names no benchmark
    assert scheme_for("mbpp").name == "code"
    gsm8k = scheme_for("gsm8k")
    assert suggest(gsm8k, "12 x 3 = 38, so 38", {"flags": {}}, None) == "arithmetic"
    assert suggest(gsm8k, "Step 1", {"flags": {"truncated": True}}, None) == "incomplete"
    assert suggest(gsm8k, "12 x 3 = 36", {"flags": {}}, None) is None


def test_study_reports_beside_a_store_are_pages_linked_to_their_runs(tmp_path):
    folder, run_id = _store(tmp_path / "runs", samples=3)
    (folder / run_id).mkdir()
    (folder / run_id / "report.html").write_text("<title>a run's own report</title>")
    (folder / "bottleneck-0123456789abcdef").mkdir()
    (folder / "bottleneck-0123456789abcdef" / "report.html").write_text(
        f"<html><title>Bottleneck study</title><body>scaling from {run_id} and eval-ffffffffffffffff</body></html>")
    client = TestClient(make_app([folder]))
    listing = client.get("/studies").text
    assert "Bottleneck study" in listing and "a run&#39;s own report" not in listing and "own report" not in listing
    page = client.get("/study/0").text
    assert f'href="/run/0/{run_id}"' in page and "eval-ffffffffffffffff" not in page  # only runs the stores hold
    report = client.get("/study/0/report")
    assert "scaling from" in report.text and report.headers["content-security-policy"] == "sandbox allow-scripts"
    assert client.get("/study/9").status_code == 404


def test_a_capture_runs_sample_shows_its_activations_and_probe_score(tmp_path):
    import json

    import numpy as np

    from slmlab.probe.arrays import ActivationWriter, Layout, activations_dir

    folder, run_id = _store(tmp_path / "runs", samples=0)
    layout = Layout(layers=[0, 1], hidden_size=4, tokens=False)
    mean = np.array([[1, 0, 0, 0], [3, 4, 0, 0]], dtype=np.float16)  # layer norms 1 and 5
    with Store(folder / "slmlab.db") as store, ActivationWriter(activations_dir(store.path, run_id), layout, 0, 0) as writer:
        where = writer.append({"prompt_last": np.zeros((2, 4)), "generated_mean": mean})
        store.add_sample(run_id, SampleRow("HumanEval/0", 0, 1, "def f(x):\n", "    return x\n", {"flags": {}}, None),
                         (where.row, where.token_start, where.n_tokens))  # fmt: skip
    probe = folder / run_id / "probe"
    probe.mkdir(parents=True)
    (probe / "probe.json").write_text(json.dumps({"kind": "generated_mean", "analysis": {"layer": 1, "margins": {
        "dims": [0, 1], "weights": [0.5, -1.0], "bias": 0.25, "median_distance_passed": 1.0, "median_distance_failed": -1.0}}}))
    page = TestClient(make_app([folder])).get(f"/run/0/{run_id}/sample", params={"task": "HumanEval/0", "index": 0}).text
    assert "layer 0" in page and ">1.0<" in page and ">5.0<" in page  # each layer's norm
    assert "signed distance <strong>-2.250</strong>" in page  # 0.5 * 3 - 1.0 * 4 + 0.25


def test_training_runs_beside_a_store_are_in_the_runs_list(tmp_path):
    import json

    folder, run_id = _store(tmp_path / "runs", samples=3)
    (folder / "train" / "tiny-lm").mkdir(parents=True)
    (folder / "train" / "tiny-lm" / "tiny-lm_summary.json").write_text(json.dumps({
        "experiment": "tiny-lm", "steps": 300, "tokens": 9600, "val_loss": 1.1, "val_bits_per_char": 1.234,
        "model": {"parameters": 2_900_000}}))  # fmt: skip
    client = TestClient(make_app([folder]))
    runs = client.get("/").text
    assert run_id in runs and "tiny-lm" in runs and "2.9M parameters" in runs and "val 1.234 bits/char" in runs
    assert "tiny-lm" not in client.get("/?kind=eval").text
    assert 'id="val-bits">1.234<' in client.get("/training/0").text


def test_a_run_being_written_shows_its_progress_and_refreshes_it(tmp_path):
    folder, run_id = _store(tmp_path / "runs", samples=3)
    with Store(folder / "slmlab.db") as store:
        store.db.execute("UPDATE runs SET finished = NULL")
    client = TestClient(make_app([folder]))
    page = client.get(f"/run/0/{run_id}").text
    assert "being written" in page and f'hx-get="/run/0/{run_id}/progress" hx-trigger="every 5s"' in page
    assert 'hx-trigger="every 5s"' in client.get("/").text  # the runs list refreshes too
    with Store(folder / "slmlab.db") as store:
        store.add_sample(run_id, SampleRow("HumanEval/9", 0, 9, "p", "c", {"flags": {}}, None))
        store.finish_run(run_id)
    line = client.get(f"/run/0/{run_id}/progress").text
    assert "4 samples, 3 judged" in line and "hx-trigger" not in line  # finished: no more polling


def test_every_scheme_label_has_its_whole_help_text():
    from slmlab.tasks.schemes import schemes

    code = dict(schemes()["code"].labels)
    assert code["wrong_algorithm"] == "solves another problem, or the approach cannot work"
    assert all(len(help_text.split()) >= 3 for scheme in schemes().values() for _, help_text in scheme.labels)


def test_another_sites_page_cannot_save_labels(tmp_path):
    folder, run_id = _store(tmp_path / "runs", samples=3)
    client = TestClient(make_app([folder]))
    form = {"annotator": "eve", "task": "HumanEval/0", "index": 1, "label": "other"}
    assert client.post(f"/annotate/0/{run_id}", data=form, headers={"origin": "http://evil.example"}).status_code == 403
    with Store(folder / "slmlab.db") as store:
        assert store.annotations(run_id) == []
    assert client.post(f"/annotate/0/{run_id}", data=form, headers={"origin": "http://testserver"},
                       follow_redirects=False).status_code == 303  # fmt: skip
