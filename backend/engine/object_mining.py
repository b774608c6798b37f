"""The engine's side of object mining (docs/objects.md): what a mined task's objects
become in the state, the index and the annotator's view.

``backend.objects`` knows boxes, crops and object novelty; ``backend.pipeline`` cuts and
describes the crops. This module owns what the engine keeps of them:

* the task record's ``objects`` (:func:`record_objects`): the boxes' digest, so a sync
  re-mines a task whose predictions changed, every mined object (label, score, box) for
  the explanation and the highlighted box, and the reasons of the objects that failed;
* the keyword documents in the object scope (:func:`index_mined`);
* the payload of a mining job (:func:`task_payload`): the task's data plus the entries
  its boxes are read from, and nothing else of what Label Studio sent;
* the explanation of a task's rarest object (:func:`rarest_objects`, :func:`object_line`)
  and its highlighted box (:func:`highlight`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from ..objects import (
    OBJECT_SLOTS,
    SCENE_SLOT,
    Box,
    DetectedObject,
    TaskObjectKeywords,
    forget_tasks,
    highlight_region,
    index_objects,
    object_novelty,
    objects_digest,
    task_uncertainty,
)
from . import wording
from .ranking_signals import OBJECT_NOVELTY, OBJECT_UNCERTAINTY  # noqa: F401  (the engine reads them here)

if TYPE_CHECKING:
    from ..mining.keyword_index import KeywordIndex
    from ..pipeline.miner import MinedTask
    from ..settings import Settings

#: at most this many object failures are named in one /metrics message
FAILURES_NAMED = 5


def task_payload(task: dict, settings: "Settings") -> dict:
    """What a mining job needs of a task Label Studio listed: its id and data, and with
    OBJECT_MINING the entries its boxes come from (OBJECT_SOURCE), so the worker reads
    the same boxes the sync saw."""
    out = {"id": task["id"], "data": task.get("data") or {}}
    if settings.object_mining:
        key = settings.object_source
        if isinstance(task.get(key), list):
            out[key] = task[key]
    return out


def record_objects(mined: "MinedTask") -> str | None:
    """The task record's ``objects_json`` of a mined task (None: its objects were not mined)."""
    if mined.objects_digest is None:
        return None
    items = []
    for slot, obj in enumerate(mined.objects):
        b = obj.box
        items.append({"slot": slot, "label": obj.label, "score": obj.score, "box": [b.left, b.top, b.right, b.bottom],
                      "region": obj.region_id, "size": list(obj.original_size) if obj.original_size else None,
                      "mined": slot < len(mined.object_keywords) and mined.object_keywords[slot] is not None})
    return json.dumps({"digest": mined.objects_digest, "items": items, "errors": list(mined.object_errors)})


def uncertainty_of(mined: "MinedTask") -> float | None:
    """1 - the least confident mined box's score (None: no box with a score)."""
    value = task_uncertainty(o.score for o in mined.objects)
    return None if math.isnan(value) else value


def index_mined(index: "KeywordIndex", scope: str, mined: Sequence["MinedTask"], with_scene: bool) -> None:
    """Replace the object documents of the mined tasks; a failed task keeps none."""
    keep = {m.task_id: TaskObjectKeywords(objects=m.object_keywords, scene=m.keywords if with_scene else None)
            for m in mined if m.ok and m.objects_digest is not None}
    if keep:
        index_objects(index, scope, keep)
    gone = [m.task_id for m in mined if not m.ok]
    if gone:
        forget_tasks(index, scope, gone)


def failures_message(pid: int, mined: Iterable["MinedTask"]) -> tuple[int, str | None]:
    """(how many objects failed, the /metrics message naming each one's task and reason)."""
    named = [(m.task_id, e) for m in mined if m.ok for e in m.object_errors]
    if not named:
        return 0, None
    shown = "; ".join(f"project {pid} task {t}: {e}" for t, e in named[:FAILURES_NAMED])
    more = len(named) - FAILURES_NAMED
    return len(named), shown + (f" (and {more} more)" if more > 0 else "")


def changed_boxes(task: dict, recorded: dict[str, Any] | None, source: Any) -> bool:
    """Whether the boxes ``task`` holds now (``source``: an ``objects.ObjectSource``) differ
    from those its objects were mined from (``recorded``: the task record's ``objects``)."""
    if recorded is None:
        return True
    return recorded.get("digest") != objects_digest(task, source)


@dataclass(frozen=True)
class RarestObject:
    """A task's rarest detected object: its slot, what was recorded of it, its keywords
    rarest first with their object-scope document frequencies (which count the whole-image
    documents too), and how many detected objects and scenes the scope holds."""

    slot: int
    item: dict[str, Any]
    keywords: list[tuple[str, int]]
    objects: int  # detected objects in the object scope (whole-image documents not counted)
    scenes: int = 0  # whole-image documents in the scope (OBJECT_WITH_SCENE); keyword counts include them

    @property
    def label(self) -> str | None:
        """The detector's label (None: the region had none)."""
        return self.item.get("label")

    @property
    def score(self) -> float | None:
        """The detector's score (None: it gave none)."""
        return self.item.get("score")

    @property
    def box(self) -> Box:
        """Where, in fractions of the image (``box.describe()`` in Label Studio's percent)."""
        return Box(*self.item["box"])

    @property
    def detected(self) -> DetectedObject:
        size = self.item.get("size")
        return DetectedObject(Box(*self.item["box"]), self.item.get("label"), self.item.get("score"),
                              original_size=tuple(size) if size else None)


def rarest_objects(index: "KeywordIndex", scope: str, records: dict[int, Any], task_ids: Sequence[int],
                   keyword_pooling: str, transform: str) -> dict[int, RarestObject]:
    """Each task's most novel detected object (the whole-image document left out: the
    image's own line names its keywords), by the object scope's novelty."""
    arrays = index.arrays(scope)
    if arrays.n_tasks == 0:
        return {}
    found = object_novelty(arrays, keyword_pooling=keyword_pooling, transform=transform)
    doc_ids, doc_nov = found.doc_ids, found.doc_novelty
    best: dict[int, int] = {}
    for t in task_ids:
        lo, hi = np.searchsorted(doc_ids, [t * OBJECT_SLOTS, t * OBJECT_SLOTS + SCENE_SLOT])
        if hi > lo:
            best[t] = int(doc_ids[lo + int(np.argmax(doc_nov[lo:hi]))])
    if not best:
        return {}
    scenes = int(np.count_nonzero(doc_ids % OBJECT_SLOTS == SCENE_SLOT))
    keywords = index.get_many(scope, list(best.values()))
    vocab = {k for kws in keywords.values() for k in kws}
    df = index.document_frequencies(scope, vocab) if vocab else {}
    out: dict[int, RarestObject] = {}
    for t, doc in best.items():
        slot = doc % OBJECT_SLOTS
        rec = records.get(t)
        items = (rec.objects or {}).get("items", []) if rec is not None else []
        if slot >= len(items):
            continue
        kws = sorted(keywords.get(doc, []), key=lambda k: (df.get(k, 0), k))
        out[t] = RarestObject(slot, items[slot], [(k, df.get(k, 0)) for k in kws], arrays.n_tasks - scenes, scenes)
    return out


def object_line(rarest: RarestObject, shown: int) -> str:
    """``Rarest object: trailer (detector 0.40) at x 60.0%, y 30.0%, w 20.0%, h 40.0%:
    horse trailer: 2 of 120 objects, hitch: 9 of them``; with whole-image documents in the
    scope, ``2 of 120 objects and 40 scenes``: a keyword's count covers both (wording:
    :func:`backend.engine.wording.object_keywords`)."""
    item = rarest.item
    what = item.get("label") or "an unlabelled box"
    score = item.get("score")
    detector = f" (detector {score:.2f})" if isinstance(score, (int, float)) else ""
    words = rarest.keywords[:shown]
    listed = wording.object_keywords(words, rarest.objects, rarest.scenes)
    return f"{wording.OBJECT_PREFIX}{what}{detector} at {Box(*item['box']).describe()}" + (f": {listed}" if listed else "")


def highlight(rarest: RarestObject, from_name: str, to_name: str, reason: str) -> dict[str, Any]:
    """The rarest object's box as a region of ``from_name`` (a RectangleLabels listing its label)."""
    return highlight_region(rarest.detected, from_name, to_name, reason,
                            region_id=f"vlmine-rare-{rarest.slot}")
