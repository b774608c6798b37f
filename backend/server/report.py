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
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from flask import Blueprint, Response, jsonify, request

from ..engine.stream import restored_in_words
from ..errors import EngineError, HTTPError, LabelStudioError
from ..ids import parse_project_id, whole_number

RARE_SHOWN = 30  # rows of the rarest-keywords table
EXAMPLES_SHOWN = 3  # example tasks per keyword
SCATTER_SAMPLE = 4000  # points of the scatter beyond front 0 and the budget
FRONT0_CAP = 10_000  # front-0 points drawn at most (only many-signal fronts get this big)
BUDGET_CAP = 1_000  # budget points beyond front 0 drawn at most
FREQ_POINTS = 1500  # points of the frequency curve at most (log-spaced ranks)
FAILURES_SHOWN = 20
RARE_OBJECTS_SHOWN = 12  # tasks of the rarest-objects table
SNIPPET_CHARS = 90
HOLDERS_LOOKED_UP = 100  # tasks per rare keyword whose labeling state is asked (earliest in the queue)
LABELING_LOOKUP_MAX = 5_000  # budget tasks whose labeling state is asked at most (about 6 s of listings)
NEXT_SHOWN = 8  # unlabeled budget tasks listed as next in the queue
DEFAULT_BUDGET_SHARE = 0.05
BUDGET_DIGITS = 12  # a budget beyond any project's size is cut to it; a longer number is refused

FRONT_COLOURS = ("#d62728", "#ff7f0e", "#2ca02c")  # fronts 0, 1, 2
REST_COLOUR = "#9aa5b1"
LABELED_COLOUR = "#1a7f37"  # budget tasks labeled already
TO_LABEL_COLOUR = "#d62728"  # budget tasks still to label
CURVE_COLOUR = "#1f5f99"
TAIL_COLOUR = "#fdd9a0"

_RENDER_LOCK = threading.Lock()  # matplotlib's rcParams are process-wide
_NUMBER = re.compile(r"-?\d+\.\d{3,}")
_ROUNDED_ATTR = re.compile(r'(\s(?:x|y|d|transform|points)=")([^"]*)(")')
_MARKERS = re.compile(r'<g clip-path="(url\(#[^"]+\))">\n((?:<use [^>]*/>\n)+)</g>')
_STYLE = re.compile(r' style="([^"]*)"')


def report_blueprint(engine: Any) -> Blueprint:
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


# ------------------------------------------------------------------------------- data
def _project_param(raw: str | None) -> int:
    if raw is None or not raw.strip():
        raise HTTPError(400, "the query parameter 'project' is required, e.g. /report?project=1")
    try:
        return parse_project_id(raw)
    except ValueError as exc:
        raise HTTPError(400, f"'project': {exc}") from None


def _budget_param(raw: str | None, n_tasks: int) -> int:
    if raw is None or raw.strip() == "":
        return min(n_tasks, max(1, math.ceil(DEFAULT_BUDGET_SHARE * n_tasks))) if n_tasks else 0
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise HTTPError(400, f"'budget' must be a whole number of tasks (0 or more), got {text[:40]!r}")
    budget = whole_number(text, BUDGET_DIGITS)
    if budget is None:
        raise HTTPError(400, f"'budget' must be at most {10**BUDGET_DIGITS - 1} tasks")
    return min(budget, n_tasks)


@dataclass
class Keyword:
    name: str
    df: int
    examples: list[tuple[int, str]]  # (task id, snippet)
    holders: list[int] = field(default_factory=list)  # tasks holding it, earliest in the queue first (capped)


@dataclass
class Labeling:
    """What annotators have done so far, as Label Studio counted it when the page was rendered."""

    state: dict[int, tuple[bool, int]]  # task id -> (labeled, annotations); tasks asked about only
    budget_ids: list[int]  # the budget's tasks in queue order (the first LABELING_LOOKUP_MAX)
    budget: int  # the budget's size

    def labeled(self, task_id: int) -> bool:
        return self.state.get(task_id, (False, 0))[0]

    @property
    def budget_labeled(self) -> int:
        return sum(self.labeled(t) for t in self.budget_ids)

    @property
    def budget_started(self) -> int:
        """Budget tasks with an annotation that Label Studio does not count as labeled yet
        (the project's overlap asks for more annotations)."""
        return sum(1 for t in self.budget_ids if not self.labeled(t) and self.state.get(t, (False, 0))[1] > 0)

    def next_up(self) -> list[tuple[int, int]]:
        """(place in the queue, task id) of the first unlabeled budget tasks."""
        out = []
        for place, t in enumerate(self.budget_ids, 1):
            if t in self.state and not self.labeled(t):
                out.append((place, t))
                if len(out) == NEXT_SHOWN:
                    break
        return out


@dataclass
class ObjectRow:
    """A task's rarest object, as the object view shows it."""

    task_id: int
    place: int  # in the labeling queue, 1 = first
    label: str | None
    score: float | None
    box: tuple[float, float, float, float]  # left, top, width, height: fractions of the image
    size: tuple[int, int] | None  # the image's original pixels, when the detector gave them
    keywords: list[tuple[str, int]]  # rarest first, with object-scope document frequencies
    thumbnail: bytes | None = None  # JPEG of this object's crop, kept when it was mined; None: the sketch


@dataclass
class ObjectView:
    """The object scope of a project that mines objects."""

    n_objects: int  # documents of the object scope: detected objects, and scenes when counted
    n_scenes: int  # of which whole images (OBJECT_WITH_SCENE)
    vocab: int
    singletons: int
    freq_svg: str
    rarest: list[ObjectRow]


@dataclass
class ReportData:
    pid: int
    version: str
    progress: dict[str, Any]
    failures: list[tuple[int, str]]
    n_tasks: int
    link_base: str | None
    freq_svg: str | None = None
    progress_svg: str | None = None
    scatter_svg: str | None = None
    vocab: int = 0
    singletons: int = 0
    rare: list[Keyword] | None = None
    budget: int = 0
    y_label: str = ""
    shown_points: int = 0
    sample_note: str = ""
    other_signals: list[str] | None = None
    objects: ObjectView | None = None
    labeling: Labeling | None = None  # None: Label Studio was not asked (labeling_note says why)
    labeling_note: str = ""
    seconds: float = 0.0


def link_base(engine: Any, pid: int) -> str | None:
    """``{LABEL_STUDIO_URL}/projects/{pid}/data?task=`` when Label Studio's address is known."""
    url = engine.settings.label_studio_url
    if not url:
        connection = getattr(engine, "_setup_connection", None)
        url = connection[0] if connection else None
    if not url or not url.startswith(("http://", "https://")):
        return None
    # a user:password in the address must not end up in the page's links
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    url = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))
    return f"{url.rstrip('/')}/projects/{pid}/data?task="


def collect(engine: Any, pid: int, budget_raw: str | None = None) -> ReportData:
    """Everything the page shows, charts rendered."""
    started = time.perf_counter()
    progress = engine.progress(pid)
    failures = engine.view(pid).failures(FAILURES_SHOWN)
    arrays = engine.view(pid).index_arrays()
    data = ReportData(pid=pid, version=str(progress.get("version") or ""), progress=progress, failures=failures,
                      n_tasks=arrays.n_tasks, link_base=link_base(engine, pid))
    budget = _budget_param(budget_raw, arrays.n_tasks)
    with _RENDER_LOCK:
        import matplotlib

        with matplotlib.rc_context(_RC):
            data.progress_svg = progress_chart(progress)
    if arrays.n_tasks == 0:
        data.seconds = time.perf_counter() - started
        return data
    _, result = engine.ranker.rank(pid)
    if result is None:  # every task left the index in between
        data.n_tasks = 0
        data.seconds = time.perf_counter() - started
        return data
    # the ranking read its own snapshot: align its places with ours by task id
    place = _align(arrays.task_ids, result.task_ids, result.position)

    df = arrays.df
    present = np.flatnonzero(df > 0)
    data.vocab = int(present.size)
    data.singletons = int(np.count_nonzero(df == 1))
    data.rare = _rarest(engine, pid, arrays, place, present)
    data.budget = min(budget, result.task_ids.size)
    data.labeling, data.labeling_note = _labeling(engine, pid, result, data.budget, data.rare)
    labeled = None
    if data.labeling is not None:
        done = np.fromiter((t for t, (is_done, _) in data.labeling.state.items() if is_done), dtype=np.int64)
        labeled = np.isin(np.asarray(result.task_ids, dtype=np.int64), done)
    head = present[np.argsort(-df[present], kind="stable")[:3]]
    head_names = engine.view(pid).keyword_names(head.tolist()) if head.size else []

    signals = result.signals
    # what the ranking used: a left-out signal (nearly constant, or repeating another, such as
    # object mining's object_novelty, ranked as the novelty itself) is not drawn
    ranked = result.ranked or tuple(signals)
    others = [name for name in ranked if name != "novelty"]
    second = "uncertainty" if "uncertainty" in others else (others[0] if others else None)
    data.other_signals = others
    with _RENDER_LOCK:
        import matplotlib

        with matplotlib.rc_context(_RC):
            data.freq_svg = frequency_chart(np.sort(df[present])[::-1],
                                            list(zip(head_names, df[head].tolist())))
            if second is not None:
                y = np.asarray(signals[second], dtype=float)
                data.y_label = second
            else:
                y = result.position.astype(float) + 1.0
                data.y_label = "place in the queue"
            data.scatter_svg, data.shown_points, data.sample_note = scatter_chart(
                np.asarray(result.novelty, dtype=float), y, result.front, result.position, data.budget,
                y_label=data.y_label, is_place=second is None, n_signals=len(ranked), labeled=labeled)
    data.objects = _object_view(engine, pid, result)
    data.seconds = time.perf_counter() - started
    return data


def _object_view(engine: Any, pid: int, result: Any) -> ObjectView | None:
    """The object scope's long tail and the tasks whose rarest object is rarest (by the
    ranking's ``object_novelty``); None when the project mines no objects."""
    novelty = result.signals.get("object_novelty")
    if novelty is None:
        return None
    arrays = engine.view(pid).object_index_arrays()
    if arrays.n_tasks == 0:
        return None
    df = arrays.df
    present = np.flatnonzero(df > 0)
    head = present[np.argsort(-df[present], kind="stable")[:3]]
    head_names = engine.view(pid).object_keyword_names(head.tolist()) if head.size else []
    values = np.asarray(novelty, dtype=float)
    has = np.flatnonzero(np.isfinite(values))
    # rarest first; ties: earlier in the queue first
    order = has[np.lexsort((np.asarray(result.position)[has], -values[has]))][:RARE_OBJECTS_SHOWN]
    ids = [int(result.task_ids[i]) for i in order]
    found = engine.explainer.rarest_objects(pid, ids)
    # the crops' thumbnails stored at mining: shown only for the object that is still the rarest
    thumbs = engine.view(pid).thumbnails(list(found))
    rows = []
    for i, t in zip(order.tolist(), ids):
        rare = found.get(t)
        if rare is None:
            continue
        size = rare.item.get("size")
        box = rare.box  # left, top, right, bottom
        rows.append(ObjectRow(task_id=t, place=int(result.position[i]) + 1, label=rare.label, score=rare.score,
                              box=(box.left, box.top, box.width, box.height),
                              size=(int(size[0]), int(size[1])) if size else None, keywords=list(rare.keywords),
                              thumbnail=thumbs[t][1] if t in thumbs and thumbs[t][0] == rare.slot else None))
    with _RENDER_LOCK:
        import matplotlib

        with matplotlib.rc_context(_RC):
            svg = frequency_chart(np.sort(df[present])[::-1], list(zip(head_names, df[head].tolist())),
                                  holders="objects")
    scenes = next((int(r.scenes) for r in found.values()), 0)  # the engine's one count of them
    return ObjectView(n_objects=int(arrays.n_tasks), n_scenes=scenes, vocab=int(present.size),
                      singletons=int(np.count_nonzero(df == 1)), freq_svg=svg, rarest=rows)


def _labeling(engine: Any, pid: int, result: Any, budget: int, rare: list[Keyword] | None
              ) -> tuple[Labeling | None, str]:
    """The labeling state of the budget's tasks and of the rarest keywords' tasks, asked of Label
    Studio now; or None and why it could not be asked (the rest of the page does without)."""
    position = np.asarray(result.position)
    rows = np.flatnonzero(position < budget)
    rows = rows[np.argsort(position[rows], kind="stable")][:LABELING_LOOKUP_MAX]
    budget_ids = [int(t) for t in np.asarray(result.task_ids)[rows]]
    wanted = set(budget_ids) | {t for kw in rare or [] for t in kw.holders}
    if not wanted:
        return Labeling({}, [], budget), ""
    try:
        state = engine.labeling_state(pid, wanted)
    except EngineError:
        return None, ("the backend has no Label Studio connection yet (set LABEL_STUDIO_URL and "
                      "LABEL_STUDIO_API_KEY, or open the project's model settings in Label Studio).")
    except LabelStudioError as exc:  # its message carries no token (the client scrubs it)
        return None, f"{exc}."
    return Labeling(state, budget_ids, budget), ""


def _align(ids: np.ndarray, ranked_ids: np.ndarray, position: np.ndarray) -> np.ndarray:
    """The queue place of each of ``ids`` (a huge number where the ranking lacks it)."""
    out = np.full(ids.size, np.iinfo(np.int64).max, dtype=np.int64)
    if ranked_ids.size == 0 or ids.size == 0:
        return out
    idx = np.clip(np.searchsorted(ranked_ids, ids), 0, ranked_ids.size - 1)
    hit = ranked_ids[idx] == ids
    out[hit] = np.asarray(position)[idx[hit]]
    return out


def _rarest(engine: Any, pid: int, arrays: Any, place: np.ndarray, present: np.ndarray) -> list[Keyword]:
    """The RARE_SHOWN rarest keywords; ties go to keywords of tasks earlier in the queue."""
    if present.size == 0:
        return []
    kw = arrays.keyword_ids.astype(np.int64)
    rows = np.repeat(np.arange(arrays.n_tasks), np.diff(arrays.indptr))
    best = np.full(arrays.vocab_size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, kw, place[rows])
    df = arrays.df
    chosen = present[np.lexsort((present, best[present], df[present]))][:RARE_SHOWN]
    names = engine.view(pid).keyword_names(chosen.tolist())
    # example tasks: the earliest in the queue that hold each chosen keyword
    hold = np.flatnonzero(np.isin(kw, chosen))
    k_hold, row_hold = kw[hold], rows[hold]
    by = np.lexsort((place[row_hold], k_hold))  # keyword, then queue place
    k_sorted, row_sorted = k_hold[by], row_hold[by]
    nth = np.arange(k_sorted.size) - np.searchsorted(k_sorted, k_sorted, side="left")
    keep = nth < EXAMPLES_SHOWN
    examples: dict[int, list[int]] = {}
    for k, task in zip(k_sorted[keep].tolist(), arrays.task_ids[row_sorted[keep]].tolist()):
        examples.setdefault(k, []).append(int(task))
    # every task holding it (up to HOLDERS_LOOKED_UP): whether an annotation covers the keyword yet
    holders: dict[int, list[int]] = {}
    held = nth < HOLDERS_LOOKED_UP
    for k, task in zip(k_sorted[held].tolist(), arrays.task_ids[row_sorted[held]].tolist()):
        holders.setdefault(k, []).append(int(task))
    wanted = sorted({t for ts in examples.values() for t in ts})
    records = engine.view(pid).task_records(wanted) if wanted else {}
    out = []
    for k, name in zip(chosen.tolist(), names):
        shown = []
        for t in examples.get(k, []):
            rec = records.get(t)
            shown.append((t, _snippet(rec.description if rec else None)))
        out.append(Keyword(name=name, df=int(df[k]), examples=shown, holders=holders.get(k, [])))
    return out


def _snippet(text: str | None) -> str:
    if not text:
        return ""
    text = " ".join(str(text).split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "\u2026"


# ------------------------------------------------------------------------------- charts
_RC = {
    "svg.fonttype": "none",  # text stays text: selectable, searchable, small
    "text.parse_math": False,  # a keyword with '$' in it is not TeX
    "font.size": 10,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e7eb",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#6b7785",
    "axes.labelcolor": "#222",
    "xtick.color": "#444",
    "ytick.color": "#444",
    "legend.frameon": False,
    "svg.hashsalt": None,
}


def _figure(width: float = 6.3, height: float = 4.3):
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    # no pyplot: the figure is bound to the SVG canvas itself, so no GUI backend (nor Agg) is ever
    # selected or loaded, and nothing global is touched outside _RENDER_LOCK
    FigureCanvasSVG(fig)
    return fig


def _svg(fig: Any, title: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.08,
                metadata={"Date": None, "Creator": None, "Title": title})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: inlined into HTML

    def rounded(m: re.Match) -> str:
        values = _NUMBER.sub(lambda n: f"{float(n.group()):.2f}".rstrip("0").rstrip("."), m.group(2))
        return m.group(1) + values + m.group(3)

    text = _ROUNDED_ATTR.sub(rounded, text)  # 2 decimals of a pixel are plenty: a third of the bytes
    text = re.sub(r">\n\s*<", ">\n<", text)
    text = _MARKERS.sub(_hoist_style, text)
    # scale with the page: keep the viewBox, let CSS size it
    text = re.sub(r'^<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img" aria-label="' +
                  html.escape(title) + '"', text, count=1)
    return text


def _hoist_style(m: re.Match) -> str:
    """Markers of one series share their style: state it once on the group, not on every point."""
    uses = m.group(2)
    styles = set(_STYLE.findall(uses))
    if len(styles) != 1 or uses.count("<use ") != uses.count(" style="):
        return m.group(0)
    return f'<g clip-path="{m.group(1)}" style="{styles.pop()}">\n{_STYLE.sub("", uses)}</g>'


def frequency_chart(df_desc: np.ndarray, head: list[tuple[str, int]], holders: str = "tasks") -> str:
    """Document frequency against rank, log-log; the tail (df <= 2) shaded."""
    fig = _figure()
    ax = fig.add_subplot()
    v = int(df_desc.size)
    if v == 0:
        ax.text(0.5, 0.5, "no keywords yet", ha="center", va="center", transform=ax.transAxes, color="#666")
        ax.set_axis_off()
        return _svg(fig, "keyword frequency curve")
    ranks = np.arange(1, v + 1)
    if v > FREQ_POINTS:
        keep = np.unique(np.concatenate([
            np.round(np.logspace(0, math.log10(v), FREQ_POINTS)).astype(np.int64) - 1,
            # the ends of each df level, so the steps of the tail stay sharp
            np.flatnonzero(np.diff(df_desc) != 0), np.flatnonzero(np.diff(df_desc) != 0) + 1, [v - 1]]))
        keep = keep[(keep >= 0) & (keep < v)]
        if keep.size > 3 * FREQ_POINTS:
            keep = np.unique(np.round(np.logspace(0, math.log10(v), 3 * FREQ_POINTS)).astype(np.int64) - 1)
        x, y = ranks[keep], df_desc[keep]
    else:
        x, y = ranks, df_desc
    tail = np.flatnonzero(df_desc <= 2)
    if tail.size:
        start = int(tail[0]) + 1
        ax.axvspan(max(start - 0.5, 0.8), v * 1.15, color=TAIL_COLOUR, alpha=0.55, lw=0,
                   label=f"long tail: {tail.size:,} keywords in \u2264 2 tasks")
    ax.plot(x, y, color=CURVE_COLOUR, lw=1.6, marker="o", ms=2.2 if x.size < 400 else 0, mew=0,
            label=f"{v:,} keywords")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log(ax.xaxis)
    _plain_log(ax.yaxis)
    ax.set_xlim(0.8, v * 1.15)
    ax.set_ylim(0.8, max(float(df_desc[0]) * 1.6, 2.0))
    if head:
        lines = "\n".join(f"{_short(name, 22)}  {count:,}" for name, count in head)
        ax.text(0.03, 0.04, "most common:\n" + lines, transform=ax.transAxes, fontsize=8.5, color="#333",
                va="bottom", ha="left", linespacing=1.35)
    ax.set_xlabel("keyword rank (most common first)")
    ax.set_ylabel(f"document frequency ({holders} holding the keyword)")
    ax.legend(loc="upper right", fontsize=8.5)
    return _svg(fig, "keyword frequency curve")


def _points_to_draw(front: np.ndarray, picked: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Which tasks the scatter chart draws: every front-0 task (up to FRONT0_CAP), the
    budget (up to BUDGET_CAP more), a sample of SCATTER_SAMPLE of the rest. Returns the
    mask, the groups drawn whole and a note per group sampled. Where a group is sampled,
    its budget tasks are kept first: a ring the legend promises is never sampled away."""
    rng = np.random.default_rng(seed)
    shown = np.zeros(front.size, dtype=bool)
    full, sampled = [], []
    for what, rows, cap in (("front 0", np.flatnonzero(front == 0), FRONT0_CAP),
                            ("the budget", np.flatnonzero(picked & (front != 0)), BUDGET_CAP),
                            ("the rest", np.flatnonzero(~picked & (front != 0)), SCATTER_SAMPLE)):
        if rows.size > cap:
            sampled.append(f"{cap:,} of {rows.size:,} tasks of {what}")
            first, others = rows[picked[rows]], rows[~picked[rows]]
            if first.size >= cap:
                rows = rng.choice(first, cap, replace=False)
            else:
                rows = np.concatenate([first, rng.choice(others, cap - first.size, replace=False)])
        elif rows.size:
            full.append(what)
        shown[rows] = True
    return shown, full, sampled


def scatter_chart(novelty: np.ndarray, y: np.ndarray, front: np.ndarray, position: np.ndarray, budget: int,
                  y_label: str, is_place: bool, n_signals: int, seed: int = 0,
                  labeled: np.ndarray | None = None) -> tuple[str, int, str]:
    """Novelty against ``y``, coloured by what decides the order, the first ``budget`` tasks marked.

    With two signals or more the Pareto fronts are coloured and the budget ringed. With novelty
    alone a front is just a run of equal novelty (one task each, the rest "3+"), so the dots
    are coloured by the queue instead: the budget's tasks (labeled or still to label, when
    ``labeled``, Label Studio's state by task, is known) and the rest.

    Big projects are subsampled: every front-0 task (up to FRONT0_CAP) and the budget (up
    to BUDGET_CAP more) are drawn, the rest sampled to SCATTER_SAMPLE points. Returns the
    SVG, the number of points drawn and what was sampled (empty when nothing was).
    """
    n = novelty.size
    front = np.asarray(front)
    position = np.asarray(position)
    picked = position < budget
    shown, full, sampled = _points_to_draw(front, picked, seed)
    picked_shown = picked & shown
    fig = _figure()
    ax = fig.add_subplot()
    size = 3.6 if shown.sum() < 1500 else 2.4
    if n_signals < 2:
        groups = [("the rest of the queue", ~picked, REST_COLOUR, 0.55, size)]
        if labeled is None:
            groups.append((f"budget: the first {int(picked.sum()):,} to label", picked, TO_LABEL_COLOUR, 1.0,
                           size + 2.2))
        else:
            groups += [("budget, still to label", picked & ~labeled, TO_LABEL_COLOUR, 1.0, size + 2.2),
                       ("budget, labeled", picked & labeled, LABELED_COLOUR, 1.0, size + 2.2)]
    else:
        groups = [("fronts 3+", front >= 3, REST_COLOUR, 0.55, size),
                  ("front 2", front == 2, FRONT_COLOURS[2], 0.9, size + 1.6),
                  ("front 1", front == 1, FRONT_COLOURS[1], 0.95, size + 1.6),
                  ("front 0 (no task beats it)", front == 0, FRONT_COLOURS[0], 1.0, size + 2.2)]
    for label, mask, colour, alpha, ms in groups:
        sel = mask & shown
        if not sel.any():
            continue
        ax.plot(novelty[sel], y[sel], "o", ls="none", ms=ms, mew=0, color=colour, alpha=alpha,
                label=f"{label}: {int(mask.sum()):,}")
    if n_signals == 2 and not is_place:
        # front 0 as the staircase it is: nothing lies above and to the right of it
        f0 = np.flatnonzero(front == 0)
        f0 = f0[np.lexsort((-y[f0], novelty[f0]))]
        ax.step(novelty[f0], y[f0], where="post", color=FRONT_COLOURS[0], lw=0.9, alpha=0.7)
    if picked.any() and n_signals >= 2:
        if labeled is None:
            ax.plot(novelty[picked_shown], y[picked_shown], "o", ls="none", ms=size + 7, mfc="none", mec="#1d2733",
                    mew=0.8, alpha=0.9, label=f"budget: the first {int(picked.sum()):,} to label")
        else:
            for label, mask, colour, width in (("budget, still to label", picked & ~labeled, "#1d2733", 0.8),
                                               ("budget, labeled", picked & labeled, LABELED_COLOUR, 1.6)):
                if mask.any():
                    sel = mask & shown
                    ax.plot(novelty[sel], y[sel], "o", ls="none", ms=size + 7, mfc="none", mec=colour, mew=width,
                            alpha=0.9, label=f"{label}: {int(mask.sum()):,}")
    if is_place:
        ax.invert_yaxis()
        if n > 50:
            ax.set_yscale("log")
            _plain_log(ax.yaxis)
    ax.set_xlabel("novelty (\u2212log of pooled keyword frequency)")
    ax.set_ylabel(y_label)
    title = f"Novelty against {y_label}"
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8.5, markerscale=1.2)
    note = ""
    if sampled:
        note = (f"{int(shown.sum()):,} of {n:,} tasks drawn: " + (f"all of {' and '.join(full)}, " if full else "")
                + f"and a random sample of {', '.join(sampled)}")
    return _svg(fig, title.lower()), int(shown.sum()), note


def progress_chart(progress: dict[str, Any]) -> str:
    """One stacked bar: mined, failed and pending tasks (of Label Studio's total when known)."""
    mined, failed = int(progress.get("mined") or 0), int(progress.get("failed") or 0)
    pending = progress.get("pending")
    total = progress.get("total")
    parts = [("mined", mined, "#2e8540"), ("failed", failed, "#b42318")]
    if isinstance(pending, int) and pending > 0:
        parts.append(("pending", pending, "#c9d1d9"))
    whole = max(sum(v for _, v, _ in parts), 1)
    fig = _figure(12.0, 1.2)
    ax = fig.add_subplot()
    left = 0
    for name, value, colour in parts:
        if value:
            ax.barh([0], [value], left=left, height=0.62, color=colour, label=f"{name}: {value:,}")
            if value / whole > 0.07:
                ax.text(left + value / 2, 0, f"{name} {value:,}", ha="center", va="center", fontsize=9,
                        color="#fff" if name != "pending" else "#333")
            left += value
    if left == 0:
        ax.text(0.5, 0.5, "no task seen yet", ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xlim(0, whole)
    ax.set_ylim(-0.5, 0.5)
    ax.set_yticks([])
    ax.grid(False)
    ax.spines["left"].set_visible(False)
    done = 100 * (mined + failed) / whole
    of = f"{total:,} tasks in Label Studio" if isinstance(total, int) else "total unknown until a webhook says"
    ax.set_title(f"Mining progress: {done:.0f}% done ({of})", loc="left", fontsize=10.5, fontweight="bold")
    if left:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.05), fontsize=8.5)
    return _svg(fig, "mining progress")


def _plain_log(axis: Any) -> None:
    """Log-scale ticks as plain numbers (1, 10, 100, 1,000; no TeX), minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _short(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"


# ------------------------------------------------------------------------------- HTML
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    return "unknown" if value is None else f"{value:,}" if isinstance(value, int) else _e(value)


def _task(data: ReportData, task_id: int) -> str:
    if data.link_base:
        return (f'<a href="{_e(data.link_base + str(int(task_id)))}" target="_blank" rel="noopener noreferrer">'
                f"#{int(task_id)}</a>")
    return f"#{int(task_id)}"


_CSS = """
:root{--fg:#1d2733;--muted:#5b6773;--line:#e3e7eb;--bg:#f6f8fa;--card:#fff;--accent:#1f5f99}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
header{padding:18px 28px 10px;background:var(--card);border-bottom:1px solid var(--line)}
h1{margin:0 0 2px;font-size:20px}h2{font-size:16px;margin:0 0 8px}
.sub{color:var(--muted);font-size:12.5px}
main{padding:16px 28px 32px;max-width:1400px}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0 4px}
.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:6px 14px;min-width:104px}
.card b{display:block;font-size:19px}.card span{color:var(--muted);font-size:12px}
.card.failed b{color:#b42318}
.grid{display:flex;flex-wrap:wrap;gap:16px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:0 0 16px}
.grid section{flex:1 1 560px;min-width:0}
figure{margin:0}svg{max-width:100%;height:auto;display:block}
figcaption,.note{color:var(--muted);font-size:12.5px;margin-top:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;white-space:nowrap}
th[data-sort]{cursor:pointer;user-select:none}th[data-sort]:after{content:" \\2195";color:#b0b8c1}
td.num{text-align:right;font-variant-numeric:tabular-nums;width:3.5em}
td.kw{font-weight:600;white-space:nowrap}
img.crop{display:block;max-width:64px;max-height:64px;border:1px solid var(--line)}
.ex{display:inline-block;margin:0 14px 2px 0;max-width:100%}
.ex q{color:var(--muted);quotes:"\\201C" "\\201D"}
a{color:var(--accent)}
.empty{padding:26px;text-align:center;color:var(--muted);font-size:15px}
.err{color:#b42318}
.big{font-size:15px;margin:4px 0}
.bar{height:12px;background:var(--line);border-radius:6px;overflow:hidden;max-width:640px;margin:4px 0 10px}
.bar span{display:block;height:100%;background:#1a7f37}
.chips{display:flex;flex-wrap:wrap;gap:4px;margin:6px 0}
.chip{background:#eef1f4;color:var(--muted);border-radius:10px;padding:1px 9px;font-size:12.5px}
.chip.done{background:#dafbe1;color:#1a7f37;font-weight:600}
td.done{color:#1a7f37;font-weight:600}
"""

_JS = """
(function () {
  var table = document.getElementById("rare");
  if (table) {
    var body = table.tBodies[0];
    Array.prototype.forEach.call(table.querySelectorAll("th[data-sort]"), function (th) {
      th.tabIndex = 0;
      var sort = function () {
        var col = th.cellIndex, numeric = th.getAttribute("data-sort") === "num";
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(table.querySelectorAll("th"), function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
          var c = numeric ? (parseFloat(x) - parseFloat(y)) : x.localeCompare(y);
          return c * dir;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { sort(); } });
    });
  }
  document.body.setAttribute("data-ready", String(document.querySelectorAll("svg").length));
})();
"""


def render_page(data: ReportData, nonce: str) -> str:
    p = data.progress
    title = f"VLMine report \u2014 project {data.pid}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<div class="sub">model version <code>{_e(data.version)}</code> \u00b7 generated '
        f'{_e(time.strftime("%Y-%m-%d %H:%M:%S %Z"))}</div>',
        _progress_html(p),
        _stream_html(p),
        "</header><main>",
    ]
    if data.n_tasks == 0:
        parts.append(f'<section class="empty">Nothing is mined yet for project {data.pid}: no task is in the keyword '
                     "index. Import tasks (the backend mines them in the background) or let Label Studio call "
                     "<code>/predict</code>, then reload this page.</section>")
    else:
        parts.append(_labeling_html(data))
        parts.append('<div class="grid">')
        parts.append(_frequency_html(data))
        parts.append(_scatter_html(data))
        parts.append("</div>")
        parts.append(_rare_html(data))
        if data.objects is not None:
            parts.append(_objects_html(data))
    parts.append(_failures_html(data))
    parts.append(f'<p class="note">Rendered in {data.seconds:.2f} s. Every chart is drawn on the server; this page '
                 "loads nothing from elsewhere.</p>")
    parts.append(f'</main><script nonce="{_e(nonce)}">{_JS}</script></body></html>')
    return "\n".join(parts)


def _stream_html(p: dict[str, Any]) -> str:
    """How annotators get the queue, and the last time the backend had to put Label Studio's
    settings for it back, in plain words."""
    mode = p.get("label_stream")
    if not mode:
        return ""
    how = ("Annotators who press \u201cLabel All Tasks\u201d get the rarest unlabeled task first (the project's "
           "task sampling is \u201cUncertainty sampling\u201d: lowest score first)" if mode == "uncertainty" else
           "Annotators label the \u201cLong-tail first\u201d tab from the top (highest score first; the task "
           "sampling is left to the admin)")
    out = f'<div class="sub" id="stream">{_e(how)}.'
    restored = restored_in_words(p.get("stream_restored"))
    if restored:
        out += f' <span id="stream-restored">{_e(restored)}</span>'
    return out + "</div>"


def _labeling_html(data: ReportData) -> str:
    """How far labeling has come: the budget's labeled share, the next tasks in the queue, and
    the rarest keywords an annotation covers already."""
    view = data.labeling
    head = '<section id="labeling"><h2>Labeling progress</h2>'
    if view is None:
        return (head + f'<p class="note" id="labeling-unknown">Labeling progress is read from Label Studio when this '
                f"page is rendered, and it could not be read now: {_e(data.labeling_note)}</p></section>")
    done, total = view.budget_labeled, view.budget
    share = 100 * done / total if total else 0.0
    asked = len(view.budget_ids)
    counted = (f" (counted over the first {asked:,} of them)" if asked < total else "")
    started = view.budget_started
    more = (f" {started:,} more have an annotation but need more of them (the project's overlap)."
            if started else "")
    bar = (f'<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="{total}" aria-valuenow="{done}">'
           f'<span style="width:{share:.1f}%"></span></div>')
    out = [head, f'<p class="big" id="budget-progress"><b>{done:,}</b> of <b>{total:,}</b> tasks of the budget '
                 f"labeled ({share:.0f}%){counted}.{more}</p>{bar}"]
    upcoming = view.next_up()
    if upcoming:
        items = ", ".join(f"{_task(data, t)} (place {place:,})" for place, t in upcoming)
        out.append(f'<p class="note" id="next-up">Next in the queue, not labeled yet: {items}.</p>')
    elif total:
        out.append('<p class="note" id="next-up">Every task of the budget is labeled: raise '
                   "<code>?budget=K</code> to follow the next ones.</p>")
    rare = [kw for kw in data.rare or [] if kw.holders]
    covered = [kw for kw in rare if any(view.labeled(t) for t in kw.holders)]
    chips = "".join(f'<span class="chip{" done" if kw in covered else ""}">{_e(kw.name)}</span>' for kw in rare)
    out.append(f'<p class="big" id="rare-covered"><b>{len(covered):,}</b> of the <b>{len(rare):,}</b> rarest '
               "keywords are covered by a labeled task.</p>"
               f'<p class="chips">{chips}</p><p class="note">Green: at least one task holding the keyword is '
               "labeled; grey: none yet. Read from Label Studio now: <i>labeled</i> as Label Studio counts it "
               "(as many annotations as the project's overlap asks).</p>")
    out.append("</section>")
    return "".join(out)


def _progress_html(p: dict[str, Any]) -> str:
    total, mined, failed, pending = p.get("total"), p.get("mined") or 0, p.get("failed") or 0, p.get("pending")
    cards = [("total", total, "tasks in Label Studio"), ("mined", mined, "mined"), ("failed", failed, "failed"),
             ("pending", pending, "pending"), ("indexed", p.get("indexed"), "in the keyword index")]
    out = ['<div class="cards" id="progress">']
    for key, value, label in cards:
        out.append(f'<div class="card {key}" data-key="{key}"><b>{_num(value)}</b><span>{_e(label)}</span></div>')
    out.append("</div>")
    return "".join(out)


def _frequency_html(data: ReportData) -> str:
    share = 100 * data.singletons / data.vocab if data.vocab else 0
    return (f'<section id="frequency"><h2>The long tail of keywords</h2><figure>{data.freq_svg}'
            f"<figcaption>Each keyword's document frequency (how many of the {data.n_tasks:,} mined tasks hold it) "
            f"against its rank, both on log scales. {data.singletons:,} of {data.vocab:,} keywords "
            f"({share:.0f}%) occur in a single task: the flat stretch at the bottom right. Tasks made of such "
            "keywords get the highest novelty.</figcaption></figure></section>")


def _scatter_html(data: ReportData) -> str:
    others = data.other_signals or []
    if others:
        what = (f"Each dot is a task: its novelty against its <b>{_e(data.y_label)}</b>, the second signal of the "
                "ranking. ")
        if len(others) > 1:
            what += (f"The fronts are computed over all {len(others) + 1} signals "
                     f"({_e(', '.join(['novelty', *others]))}); two are drawn. ")
    note = ""
    if data.sample_note:
        note = (f'<p class="note" id="subsampled">Subsampled for size: {_e(data.sample_note)}. The counts in the '
                "legend are of all tasks.</p>")
    budget = (f"the first {data.budget:,} tasks of the queue (<code>?budget=K</code>, default 5% of the tasks)")
    if others:
        colours = ("Front 0 (red) holds the tasks no other task beats (as good on every signal, better by a margin "
                   "on one), then front 1 (orange), "
                   f"front 2 (green), the rest grey. The ringed dots are the budget: {budget}"
                   + ("; a green ring marks one labeled already (as Label Studio counts it now)."
                      if data.labeling is not None else "."))
    else:
        what = ("Each dot is a task: its novelty against its place in the labeling queue (1 = label first). "
                "Novelty is the only signal (set <code>UNCERTAINTY_SOURCE</code> to add one), so the queue follows "
                "novelty (its head re-ordered to show distinct rare keywords first) and there are no Pareto fronts "
                "to tell apart. ")
        colours = (f"The coloured dots are the budget: {budget}"
                   + ("; red still to label, green labeled (as Label Studio counts it now)"
                      if data.labeling is not None else "") + ". Grey: the rest of the queue.")
    return (f'<section id="scatter"><h2>What gets labeled first</h2><figure>{data.scatter_svg}'
            f"<figcaption>{what}{colours}</figcaption></figure>{note}</section>")


def _rare_html(data: ReportData) -> str:
    rows = []
    view = data.labeling
    for i, kw in enumerate(data.rare or [], 1):
        ex = "".join(f'<span class="ex">{_task(data, t)}' + (" \u2713" if view and view.labeled(t) else "")
                     + (f" <q>{_e(s)}</q>" if s else "") + "</span>" for t, s in kw.examples)
        labeled = ""
        if view is not None:
            n = sum(view.labeled(t) for t in kw.holders)
            of = f"{n:,} of {len(kw.holders):,}" + ("+" if len(kw.holders) < kw.df else "")
            labeled = f'<td class="num{" done" if n else ""}" data-v="{n}">{of}</td>'
        rows.append(f'<tr><td class="num" data-v="{i}">{i}</td><td class="kw" data-v="{_e(kw.name)}">{_e(kw.name)}'
                    f'</td><td class="num" data-v="{kw.df}">{kw.df:,}</td>{labeled}<td data-v="{i}">{ex}</td></tr>')
    labeled_head = '<th data-sort="num">labeled</th>' if view is not None else ""
    links = ("Task ids open the task in Label Studio." if data.link_base else
             "Set <code>LABEL_STUDIO_URL</code> (or connect the project from Label Studio) to link the task ids.")
    return (f'<section id="rarest"><h2>The rarest keywords</h2>'
            f'<p class="note">The {len(data.rare or [])} keywords held by the fewest tasks (ties: keywords of tasks '
            f"earlier in the queue first), with up to {EXAMPLES_SHOWN} example tasks each, earliest in the queue "
            f"first. {links}" + (" <i>labeled</i>: how many of the tasks holding it are labeled (\u2713 on an "
                                 "example: labeled)." if view is not None else "") + " Click a column header to sort.</p>"
            '<table id="rare"><thead><tr><th data-sort="num">#</th><th data-sort="text">keyword</th>'
            f'<th data-sort="num">df</th>{labeled_head}<th>example tasks</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></section>")


def _box_svg(row: ObjectRow) -> str:
    """Where the object sits: the image's frame (its aspect when known) and the box in it.
    Drawn from the recorded box, so the page downloads no image."""
    w, h = row.size if row.size and row.size[0] > 0 and row.size[1] > 0 else (4, 3)
    width, height = 96.0, 96.0 * h / w
    if height > 96.0:
        width, height = 96.0 * w / h, 96.0
    left, top, bw, bh = row.box
    return (f'<svg class="where" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.1f} {height:.1f}" '
            f'role="img" aria-label="box at {_e(_box_words(row.box))}">'
            f'<rect x="0.5" y="0.5" width="{width - 1:.1f}" height="{height - 1:.1f}" fill="#eef1f4" stroke="#9aa5b1"/>'
            f'<rect x="{left * width:.1f}" y="{top * height:.1f}" width="{max(bw * width, 1.5):.1f}" '
            f'height="{max(bh * height, 1.5):.1f}" fill="#d6272833" stroke="#d62728" stroke-width="1.5"/></svg>')


def _crop_img(row: ObjectRow) -> str:
    """The object's crop as stored when it was mined, inlined as a data URI (no request)."""
    assert row.thumbnail is not None
    data = base64.b64encode(row.thumbnail).decode("ascii")
    return (f'<img class="crop" src="data:image/jpeg;base64,{data}" '
            f'alt="crop of {_e(row.label or "an unlabelled box")} in task {row.task_id}">')


def _box_words(box: tuple[float, float, float, float]) -> str:
    left, top, width, height = box
    return f"x {100 * left:.0f}%, y {100 * top:.0f}%, {100 * width:.0f}% \u00d7 {100 * height:.0f}%"


def _objects_html(data: ReportData) -> str:
    view = data.objects
    assert view is not None
    share = 100 * view.singletons / view.vocab if view.vocab else 0
    rows = []
    for row in view.rarest:
        words = ", ".join(f"{_e(k)} ({n:,})" for k, n in row.keywords[:6]) or "no keywords"
        score = f"{row.score:.2f}" if isinstance(row.score, (int, float)) else "\u2014"
        rows.append(f'<tr><td class="num">{row.place:,}</td><td>{_task(data, row.task_id)}</td>'
                    f'<td class="kw">{_e(row.label or "no label")}</td><td class="num">{score}</td>'
                    f"<td>{words}</td><td>{_crop_img(row) if row.thumbnail else ''}</td>"
                    f"<td>{_box_svg(row)}<div class=\"note\">{_e(_box_words(row.box))}</div></td></tr>")
    table = ('<table id="rare-objects"><thead><tr><th>place</th><th>task</th><th>detector label</th><th>score</th>'
             '<th>keywords (objects holding each)</th><th>crop</th><th>where</th></tr></thead><tbody>'
             + "".join(rows) + "</tbody></table>")
    among = (f"{view.n_objects - view.n_scenes:,} objects and {view.n_scenes:,} scenes (whole images)"
             if view.n_scenes else f"{view.n_objects:,} objects")
    return (f'<section id="objects"><h2>Objects: the long tail of what the detector found</h2><div class="grid">'
            f'<figure style="flex:1 1 480px;min-width:0">{view.freq_svg}<figcaption>Each object keyword\'s '
            f"document frequency (how many of the {among} hold it) against its "
            f"rank. {view.singletons:,} of {view.vocab:,} object keywords ({share:.0f}%) describe a single object."
            f'</figcaption></figure><div style="flex:1 1 560px;min-width:0"><p class="note">The {len(view.rarest)} '
            "tasks whose rarest object is rarest, with that object: the detector's label and score, the keywords "
            "the VLM gave its crop, the crop itself (a thumbnail kept when it was mined; none when the "
            "rarest object changed since or its image was never decoded here) and where its box sits in the image "
            "(drawn from the box, no image is loaded)."
            f"</p>{table}</div></div></section>")


def _failures_html(data: ReportData) -> str:
    failed = data.progress.get("failed") or 0
    if not data.failures:
        body = '<p class="note">No task failed.</p>'
    else:
        rows = "".join(f'<tr><td class="num">{_task(data, t)}</td><td class="err">{_e(e or "unknown error")}</td></tr>'
                       for t, e in data.failures)
        body = (f'<p class="note">The last {len(data.failures)} of {failed:,} failed tasks, newest first. A failed '
                "task is put at the end of the queue (the score Label Studio serves last) and its reason stays here "
                "until it is mined again."
                f'</p><table id="failures"><thead><tr><th>task</th><th>reason</th></tr></thead><tbody>{rows}'
                "</tbody></table>")
    chart = f"<figure>{data.progress_svg}</figure>" if data.progress_svg else ""
    return f'<section id="failed"><h2>Mining progress and failures</h2>{chart}{body}</section>'
