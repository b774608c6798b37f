"""What the report shows, gathered from the engine: :func:`collect` reads the project's
progress, keyword index and ranking, finds the rarest keywords with example tasks, asks Label
Studio how far labeling has come, and renders the charts (:mod:`.charts`) into a
:class:`ReportData` that :mod:`.page` turns into HTML."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ...errors import HTTPError, LabelStudioError, NoConnection
from ...ids import whole_number
from .charts import chart_rendering, frequency_chart, progress_chart, scatter_chart

if TYPE_CHECKING:
    from ...engine.engine import Engine
    from ...mining import IndexArrays, MiningResult

RARE_SHOWN = 30  # rows of the rarest-keywords table
EXAMPLES_SHOWN = 3  # example tasks per keyword
FAILURES_SHOWN = 20
RARE_OBJECTS_SHOWN = 12  # tasks of the rarest-objects table
SNIPPET_CHARS = 90
HOLDERS_LOOKED_UP = 100  # tasks per rare keyword whose labeling state is asked (earliest in the queue)
LABELING_LOOKUP_MAX = 5_000  # budget tasks whose labeling state is asked at most (about 6 s of listings)
NEXT_SHOWN = 8  # unlabeled budget tasks listed as next in the queue
DEFAULT_BUDGET_SHARE = 0.05
BUDGET_DIGITS = 12  # a budget beyond any project's size is cut to it; a longer number is refused


def _budget_param(raw: str | None, n_tasks: int) -> int:
    """The ``?budget=K`` parameter as a task count, cut to the project's size (default: 5% of
    its tasks); a 400 for anything but a plain whole number, so the page never guesses."""
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
    """One of the rarest keywords, with the tasks that show it on the page."""

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
    """Everything the page shows for one project, charts already rendered to SVG."""

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


def link_base(engine: Engine, pid: int) -> str | None:
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


def collect(engine: Engine, pid: int, budget_raw: str | None = None) -> ReportData:
    """Everything the page shows, charts rendered."""
    started = time.perf_counter()
    progress = engine.progress(pid)
    failures = engine.view(pid).failures(FAILURES_SHOWN)
    arrays = engine.view(pid).index_arrays()
    data = ReportData(pid=pid, version=str(progress.get("version") or ""), progress=progress, failures=failures,
                      n_tasks=arrays.n_tasks, link_base=link_base(engine, pid))
    budget = _budget_param(budget_raw, arrays.n_tasks)
    with chart_rendering():
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
    with chart_rendering():
        data.freq_svg = frequency_chart(np.sort(df[present])[::-1], list(zip(head_names, df[head].tolist())))
        if second is not None:
            y = np.asarray(signals[second], dtype=float)
            data.y_label = second
        else:
            y = result.position.astype(float) + 1.0
            data.y_label = "place in the queue"
        data.scatter_svg, data.shown_points, data.sample_note = scatter_chart(
            np.asarray(result.novelty, dtype=float), y, result.front, result.position, data.budget,
            y_label=data.y_label, is_place=second is None, n_signals=len(ranked), labeled=labeled)
    data.objects = object_view(engine, pid, result)
    data.seconds = time.perf_counter() - started
    return data


def object_view(engine: Engine, pid: int, result: MiningResult) -> ObjectView | None:
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
    with chart_rendering():
        svg = frequency_chart(np.sort(df[present])[::-1], list(zip(head_names, df[head].tolist())), holders="objects")
    scenes = next((int(r.scenes) for r in found.values()), 0)  # the engine's one count of them
    return ObjectView(n_objects=int(arrays.n_tasks), n_scenes=scenes, vocab=int(present.size),
                      singletons=int(np.count_nonzero(df == 1)), freq_svg=svg, rarest=rows)


def _labeling(engine: Engine, pid: int, result: MiningResult, budget: int, rare: list[Keyword] | None
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
    except NoConnection:
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


def _rarest(engine: Engine, pid: int, arrays: IndexArrays, place: np.ndarray, present: np.ndarray) -> list[Keyword]:
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
    """A task's description on one line, cut to SNIPPET_CHARS: enough to recognise the task in a table cell."""
    if not text:
        return ""
    text = " ".join(str(text).split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "\u2026"

