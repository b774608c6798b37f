"""``GET /report?project=ID``: the project's long tail as one self-contained HTML page.

The page shows, for one project:

1. the keyword frequency curve (document frequency against rank, log-log), where the
   long tail is the flat stretch at the bottom right;
2. the rarest keywords with their df and a few example tasks, linked to Label Studio
   when its address is known;
3. novelty against the second signal (uncertainty) with the Pareto fronts coloured and
   the labeling budget (the first ``?budget=K`` tasks of the queue) marked; with no
   second signal, novelty against the place in the queue;
4. mining progress and the last failures with their reasons;
4a. labeling progress, read from Label Studio when the page is rendered: how many of the
   budget's tasks are labeled, the next ones in the queue, and which of the rarest
   keywords an annotation covers already;
5. with object mining on (docs/objects.md), the object view: the long tail of object
   keywords (the object scope's own frequency curve) and the tasks whose rarest object is
   rarest, each with its detector label, score, keywords and where the box sits.

Charts are server-rendered SVG (matplotlib, no GUI backend, text kept as text) inlined
into the page; nothing is loaded from elsewhere, so the page works offline. Every
string that comes from tasks or keywords is HTML-escaped, and a Content-Security-Policy
lets only the page's own (nonce'd) script run.

Which module holds what:

- this module: the route, its ``?project=`` check and its response headers;
- :mod:`.data`: gathering the page's data from the engine and Label Studio (``collect``,
  ``ReportData``), the ``?budget=`` check and the table sizes;
- :mod:`.charts`: the matplotlib charts rendered to SVG, under one lock (``chart_rendering``);
- :mod:`.page`: the HTML, CSS and script of the page (``render_page``).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from ...errors import HTTPError
from ...ids import parse_project_id
from .data import collect
from .page import render_page

if TYPE_CHECKING:
    from ...engine.engine import Engine


def report_blueprint(engine: Engine) -> Blueprint:
    """The ``/report`` route for ``engine``; register it on the app after its own routes."""
    bp = Blueprint("report", __name__)

    @bp.get("/report")
    def report() -> Response:
        try:
            pid = _project_param(request.args.get("project"))
            if engine.view(pid).state() is None:
                raise HTTPError(404, f"project {pid} is unknown to this backend")
            data = collect(engine, pid, request.args.get("budget"))
        except HTTPError as exc:
            resp = jsonify(error=exc.message)
            resp.status_code = exc.status
            return resp
        nonce = secrets.token_urlsafe(16)
        resp = Response(render_page(data, nonce), mimetype="text/html")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        # nothing from elsewhere, and only the page's own script runs
        resp.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
            "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
        return resp

    return bp


def _project_param(raw: str | None) -> int:
    """The ``?project=`` parameter as a project id; a 400 that says how to ask when it is missing or bad."""
    if raw is None or not raw.strip():
        raise HTTPError(400, "the query parameter 'project' is required, e.g. /report?project=1")
    try:
        return parse_project_id(raw)
    except ValueError as exc:
        raise HTTPError(400, f"'project': {exc}") from None
