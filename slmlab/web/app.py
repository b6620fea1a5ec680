"""`slmlab serve`: a local web app over one or more stores (Starlette, Jinja2, htmx).

Pages are rendered on the server; htmx (2.0.11, BSD Zero-Clause, shipped in `static/` from the npm
registry, so the app works offline) swaps the filtered sample table in place. Model output is
untrusted text: Jinja2 escapes everything it renders (autoescape on every template), and code is
highlighted by Pygments, which escapes it too. The stores are read-only here; URLs name a store by
its place in the list given, never by a path.
"""

from __future__ import annotations

import hmac
import itertools
import math
import re
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlparse

import jinja2
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from slmlab.store import Store, natural_key
from slmlab.tasks.schemes import scheme_for, suggest
from slmlab.web.data import PAGE, Filters, Stores, raised_flags

HERE = Path(__file__).parent
TOKEN_COOKIE = "slmlab_token"


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else ""


def _code(text: str, language: str = "python", mark: int | None = None) -> str:
    """Highlighted, escaped HTML of `text`, line `mark` (1-based) marked."""
    lexer = PythonLexer() if language == "python" else TextLexer()
    formatter = HtmlFormatter(nowrap=False, linenos="inline", hl_lines=[mark] if mark else [], cssclass="code")
    return highlight(text, lexer, formatter)


def make_app(folders: list[str | Path], token: str | None = None) -> Starlette:
    """The app over the stores in `folders`; with `token`, every request must carry it (once as
    ?token=..., then as a cookie)."""
    stores = Stores(folders)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    templates = Jinja2Templates(env=environment)
    templates.env.filters["when"] = _when
    templates.env.globals["PAGE"] = PAGE

    def page(request: Request, name: str, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context)

    def the_run(request: Request) -> tuple[int, str, dict | Response]:
        """(store, run id, the run) named by the URL; a 404 response in place of a run it does not name."""
        store, run_id = request.path_params["store"], request.path_params["run_id"]
        return store, run_id, _or_404(lambda: stores.run(store, run_id))

    def runs(request: Request) -> HTMLResponse:
        query, kind = request.query_params.get("q", "").strip(), request.query_params.get("kind", "")
        order = request.query_params.get("sort", "created")
        found = stores.runs() + [_training_row(number, t) for number, t in enumerate(stores.trainings())]
        kinds = sorted({r["kind"] for r in found})
        if kind:
            found = [r for r in found if r["kind"] == kind]
        if query:
            found = [r for r in found if query.lower() in f"{r['run_id']} {r['model']} {r['benchmark']}".lower()]
        keys = {"created": lambda r: -(r["created"] or 0), "model": lambda r: r["model"],
                "rate": lambda r: -(r["rate"][0] if r["rate"] else -1), "samples": lambda r: -r["samples"]}  # fmt: skip
        found.sort(key=keys.get(order, keys["created"]))
        partial = request.headers.get("HX-Request") == "true"
        return page(request, "runs_table.html" if partial else "runs.html", runs=found, kinds=kinds, q=query,
                    kind=kind, sort=order, writing=any(not r["finished"] for r in found))  # fmt: skip

    def run(request: Request) -> Response:
        store, run_id, found = the_run(request)
        if isinstance(found, Response):
            return found
        return page(request, "run.html", store=store, run=found, filters=_filters(request))

    def progress(request: Request) -> Response:
        """The line that counts a run's samples, polled while the run is being written."""
        store, run_id, found = the_run(request)
        if isinstance(found, Response):
            return found
        return page(request, "progress.html", store=store, run=found)

    def samples(request: Request) -> Response:
        store, run_id = request.path_params["store"], request.path_params["run_id"]
        filters = _filters(request)
        try:
            rows, total = stores.samples(store, run_id, filters)
        except KeyError:
            return PlainTextResponse("no such store", status_code=404)
        return page(request, "samples_table.html", store=store, run_id=run_id, rows=rows, total=total,
                    filters=filters, pages=max(1, math.ceil(total / PAGE)))  # fmt: skip

    def sample(request: Request) -> Response:
        store, run_id = request.path_params["store"], request.path_params["run_id"]
        task, index = request.query_params.get("task", ""), _number(request.query_params.get("index"))
        found = _or_404(lambda: stores.sample(store, run_id, task, index))
        if isinstance(found, Response):
            return found
        judgement = found["judgement"] or {}
        detail = judgement.get("detail") or {}
        line = detail.get("line") if isinstance(detail, dict) else None
        whole = found["generation"].get("whole_program")
        prompt_lines = 0 if whole else found["prompt"].count("\n")
        mark = line - prompt_lines if isinstance(line, int) and line > prompt_lines else None
        return page(request, "sample.html", store=store, run_id=run_id, sample=found, judgement=judgement,
                    detail=detail if isinstance(detail, dict) else {"detail": detail},
                    completion_html=_code(found["completion"], mark=mark), failed_line=line, marked=mark,
                    flags=raised_flags(found["generation"]),
                    activations=stores.activations(store, run_id, task, index))  # fmt: skip

    def compare(request: Request) -> Response:
        """Two runs on the tasks both hold: the paired verdict, and the tasks where only one passed,
        their completions side by side."""
        from slmlab.metrics.compare import compare_runs

        picked = [_run_reference(request.query_params.get(side, "")) for side in ("a", "b")]
        everything = stores.runs()
        choices = {"a": request.query_params.get("a", ""), "b": request.query_params.get("b", "")}
        if None in picked:
            return page(request, "compare.html", runs=everything, choices=choices, result=None)
        try:
            (a_store, a_run), (b_store, b_run) = picked
            a, b = stores.outcomes(a_store, a_run), stores.outcomes(b_store, b_run)
        except KeyError:
            return PlainTextResponse("no such store", status_code=404)
        shared = sorted(set(a) & set(b), key=natural_key)
        if not shared:
            return page(request, "compare.html", runs=everything, choices=choices, result=None,
                        problem="the two runs share no judged task: compare runs on the same benchmark, once judged")  # fmt: skip
        verdict = compare_runs(a, b, k=1)
        split = [t for t in shared if any(a[t]) != any(b[t])]
        pairs = [(t, stores.first_sample(a_store, a_run, t, any(a[t])), stores.first_sample(b_store, b_run, t, any(b[t])))
                 for t in split[:100]]  # fmt: skip
        return page(request, "compare.html", runs=everything, choices=choices, result=verdict, a_run=a_run, b_run=b_run,
                    a_store=a_store, b_store=b_store, shared=len(shared), split=split, pairs=pairs,
                    only_a=sum(any(a[t]) for t in split), only_b=sum(any(b[t]) for t in split))  # fmt: skip

    def annotate(request: Request) -> Response:
        """One failed sample at a time, the scheme's labels to pick from the keyboard, the automatic
        suggestion pre-selected and marked; a pick is stored and the next sample shown."""
        store, run_id, found = the_run(request)
        if isinstance(found, Response):
            return found
        annotator = request.query_params.get("annotator", "").strip()
        scheme = _scheme(stores, store, found)
        if not _ANNOTATOR.fullmatch(annotator):
            return page(request, "annotate.html", store=store, run=found, scheme=scheme, annotator="", sample=None)
        position = _number(request.query_params.get("position"))
        sample, total = stores.failed_at(store, run_id, position)
        mine, suggestion = None, None
        if sample is not None:
            mine = next((label for label in stores.labels(store, run_id) if label["annotator"] == annotator
                         and (label["task_id"], label["sample_index"]) == (sample["task_id"], sample["sample_index"])), None)  # fmt: skip
            suggestion = suggest(scheme, sample["completion"], sample["generation"], sample["judgement"])
        return page(request, "annotate.html", store=store, run=found, scheme=scheme, annotator=annotator, sample=sample,
                    position=position, total=total, mine=mine, suggestion=suggestion)  # fmt: skip

    async def save_label(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin and urlparse(origin).netloc != request.headers.get("host"):  # another site's page posting here
            return PlainTextResponse("labels are saved from this app's own pages", status_code=403)
        store, run_id, found = the_run(request)
        if isinstance(found, Response):
            return found
        form = await request.form()
        annotator, label = str(form.get("annotator", "")), str(form.get("label", ""))
        scheme = _scheme(stores, store, found)
        if not _ANNOTATOR.fullmatch(annotator) or label not in scheme.names:
            return PlainTextResponse(f"give an annotator name and one of: {', '.join(scheme.names)}", status_code=400)
        position = _number(form.get("position"))
        task, index = str(form.get("task", "")), _number(form.get("index"))
        if stores.sample(store, run_id, task, index) is None:
            return PlainTextResponse("no such sample", status_code=404)
        try:
            with Store(stores.paths[store]) as writable:
                writable.annotate(run_id, task, index, annotator, label, suggested=form.get("suggested") == label)
        except (OSError, sqlite3.Error) as error:
            return PlainTextResponse(f"the store cannot be written ({error}): nothing was saved", status_code=503)
        following = position + (-1 if form.get("go") == "previous" else 1)
        return RedirectResponse(f"/annotate/{store}/{quote(run_id)}?annotator={quote(annotator)}&position={max(0, following)}",
                                status_code=303)  # fmt: skip

    def agreement(request: Request) -> Response:
        """Cohen's kappa of every two annotators on the samples both labelled, and where they differ."""
        store, run_id, found = the_run(request)
        if isinstance(found, Response):
            return found
        pairs = agreements(stores.labels(store, run_id))
        return page(request, "agreement.html", store=store, run=found, pairs=pairs)

    def studies(request: Request) -> HTMLResponse:
        return page(request, "studies.html", studies=stores.studies())

    def study(request: Request) -> Response:
        """A study's own report inside the app, with links to the runs it came from. The report runs
        in a sandboxed frame of its own origin: its scripts never reach the app."""
        found = stores.studies()
        number = request.path_params["number"]
        if number >= len(found):
            return PlainTextResponse("not found", status_code=404)
        if request.url.path.endswith("/report"):
            return HTMLResponse(found[number]["path"].read_text(errors="replace"),
                                headers={"Content-Security-Policy": "sandbox allow-scripts"})  # fmt: skip
        return page(request, "study.html", study=found[number], number=number)

    def training(request: Request) -> Response:
        found = stores.trainings()
        number = request.path_params["number"]
        if number >= len(found):
            return PlainTextResponse("not found", status_code=404)
        return page(request, "training.html", training=found[number])

    def styles(request: Request) -> Response:
        return PlainTextResponse(HtmlFormatter(cssclass="code").get_style_defs(".code"), media_type="text/css")

    app = Starlette(routes=[
        Route("/", runs), Route("/run/{store:int}/{run_id}", run), Route("/run/{store:int}/{run_id}/samples", samples),
        Route("/run/{store:int}/{run_id}/progress", progress),
        Route("/run/{store:int}/{run_id}/sample", sample), Route("/compare", compare), Route("/code.css", styles),
        Route("/annotate/{store:int}/{run_id}", annotate), Route("/annotate/{store:int}/{run_id}", save_label, methods=["POST"]),
        Route("/agreement/{store:int}/{run_id}", agreement), Route("/studies", studies),
        Route("/study/{number:int}", study), Route("/study/{number:int}/report", study),
        Route("/training/{number:int}", training),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ])  # fmt: skip
    if token:
        app.add_middleware(_TokenGate, token=token)
    return app


def _training_row(number: int, training: dict) -> dict:
    """A training run as a row of the runs list: its size and validation bits per character."""
    summary = training["summary"]
    parameters = (summary.get("model") or {}).get("parameters")
    return {"store": training["store"], "run_id": summary["experiment"], "link": f"/training/{number}",
            "kind": "training", "model": f"{parameters / 1e6:.1f}M parameters" if parameters else "",
            "benchmark": "", "created": training["modified"], "finished": True, "samples": 0, "judged": 0,
            "rate": None, "measure": f"val {summary['val_bits_per_char']:.3f} bits/char" if summary["val_bits_per_char"]
            else "", "steps": summary["steps"]}  # fmt: skip


def _scheme(stores: Stores, store: int, run: dict):
    """The annotation scheme of a run: by its benchmark, or by what judged it."""
    first, _ = stores.failed_at(store, run["run_id"], 0)
    judge = ((first or {}).get("judgement") or {}).get("judge")
    return scheme_for(str(run["config"].get("benchmark", "")), judge)


def _number(text) -> int:
    """A page, position or sample index from the URL or a form: 0 unless it is a whole number >= 0."""
    return int(text) if isinstance(text, str) and text.isascii() and text.isdigit() else 0


def _filters(request: Request) -> Filters:
    q = request.query_params
    return Filters(verdict=q.get("verdict", ""), error=q.get("error", ""), flag=q.get("flag", ""),
                   task=q.get("task", ""), text=q.get("text", ""), page=_number(q.get("page")))  # fmt: skip


_ANNOTATOR = re.compile(r"[\w.@-]{1,64}")  # a name, as it is stored with each label


def agreements(labels: list[dict]) -> list[dict]:
    """For every two annotators: samples both labelled, Cohen's kappa on them, and their disagreements."""
    from sklearn.metrics import cohen_kappa_score

    by_annotator: dict[str, dict[tuple, str]] = {}
    for label in labels:
        by_annotator.setdefault(label["annotator"], {})[(label["task_id"], label["sample_index"])] = label["label"]
    found = []
    for first, second in itertools.combinations(sorted(by_annotator), 2):
        a, b = by_annotator[first], by_annotator[second]
        shared = sorted(set(a) & set(b), key=lambda key: (natural_key(key[0]), key[1]))
        if not shared:
            continue
        left, right = [a[k] for k in shared], [b[k] for k in shared]
        # kappa is undefined when both gave one same label throughout: agreement is then total
        kappa = 1.0 if len(set(left) | set(right)) == 1 else float(cohen_kappa_score(left, right))
        found.append({"a": first, "b": second, "shared": len(shared), "agree": sum(x == y for x, y in zip(left, right, strict=True)),
                      "kappa": kappa, "differ": [(k[0], k[1], a[k], b[k]) for k in shared if a[k] != b[k]]})  # fmt: skip
    return found


def _run_reference(text: str) -> tuple[int, str] | None:
    """`STORE:RUN_ID` (how the compare form names a run) as (store, run id)."""
    store, _, run_id = text.partition(":")
    return (int(store), run_id) if store.isascii() and store.isdigit() and run_id else None


def _or_404(fetch):
    try:
        found = fetch()
    except KeyError:
        found = None
    return found if found is not None else PlainTextResponse("not found", status_code=404)


class _TokenGate:
    """Every request carries the token (?token=... once, then the cookie it sets): for a server
    bound to an address others can reach."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return await PlainTextResponse("a token is needed: open the address slmlab serve printed",
                                           status_code=403)(scope, receive, send)  # fmt: skip

        async def send_with_cookie(message):
            if message["type"] == "http.response.start" and request.query_params.get("token"):
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


def new_token() -> str:
    return secrets.token_urlsafe(24)
