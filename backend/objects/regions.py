"""The objects of a task: boxes read from its Label Studio predictions or annotations.

A detection project stores a detector's boxes as a prediction (any ML backend for
``RectangleLabels`` writes them) or an annotator's boxes as an annotation. Each region
of type ``rectanglelabels``/``rectangle`` or ``polygonlabels``/``polygon`` is one
object; other results (choices, text, this backend's own TextArea) are not objects and
are passed over. A region that cannot be read fails alone, with a reason; the task
keeps its other objects.

Which prediction is read (``ObjectSource``) is decided here, once: by default the
newest prediction of any model version that this backend did not write, so the
backend's own rankings are never mistaken for detections.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..versions import DEFAULT_PREFIX, is_own_version
from .geometry import Box, BoxError, polygon_box, rect_box

__all__ = [
    "DetectedObject",
    "ObjectFailure",
    "ObjectSource",
    "highlight_region",
    "objects_digest",
    "objects_from_results",
    "objects_of_task",
    "select_results",
]

RECTANGLE_TYPES = {"rectanglelabels": "rectangle", "rectangle": "rectangle"}
POLYGON_TYPES = {"polygonlabels": "polygon", "polygon": "polygon"}


@dataclass(frozen=True)
class DetectedObject:
    """One region: where (``box``, clipped fractions of the image), what the detector
    called it, and how sure it was (``score`` in 0..1, None when the source gave none)."""

    box: Box
    label: str | None
    score: float | None
    region_id: str | None = None
    kind: str = "rectangle"  # or "polygon" (its bounding box)
    from_name: str | None = None
    to_name: str | None = None
    original_size: tuple[int, int] | None = None

    @property
    def uncertainty(self) -> float | None:
        """1 - score: how unsure the detector was of this object (None without a score)."""
        return None if self.score is None else 1.0 - self.score


@dataclass(frozen=True)
class ObjectFailure:
    """A region that is no object, and why (for ``/metrics`` and the task's error)."""

    region_id: str | None
    reason: str


@dataclass(frozen=True)
class ObjectSource:
    """Where a task's objects come from.

    ``kind``: "predictions" or "annotations". For predictions, ``model_version`` picks
    one model version; without it any version not starting with ``own_prefix`` (this
    backend's MODEL_VERSION_PREFIX) counts. Of several matching entries the newest
    (latest ``created_at``, then highest id, then last listed) is read: two detector runs
    merged would count every object twice.
    """

    kind: str = "predictions"
    model_version: str | None = None
    own_prefix: str | None = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if self.kind not in ("predictions", "annotations"):
            raise ValueError(f"object source must be predictions or annotations, not {self.kind!r}")


def _score(value: Any) -> float | None:
    """A score in 0..1, or None when absent or unusable (a missing score is no reason to
    drop the object: it only gives no uncertainty)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    if not math.isfinite(out):
        return None
    return min(1.0, max(0.0, out))


def _original_size(result: Mapping[str, Any]) -> tuple[int, int] | None:
    ow, oh = result.get("original_width"), result.get("original_height")
    try:
        w, h = int(ow), int(oh)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return (w, h) if w > 0 and h > 0 else None


def _label(value: Mapping[str, Any], type_: str) -> str | None:
    labels = value.get(type_) if type_.endswith("labels") else None
    if isinstance(labels, list) and labels:
        return ", ".join(str(label) for label in labels)
    return None


def objects_from_results(results: Any, default_score: Any = None, to_name: str | None = None
                         ) -> tuple[list[DetectedObject], list[ObjectFailure]]:
    """The objects of one prediction's or annotation's ``result`` list, in its order.

    A region's own ``score`` wins over ``default_score`` (the prediction's). With
    ``to_name``, only regions drawn on that image tag count. Broken regions land in the
    failures, each with its reason; results that are no boxes are skipped silently.
    """
    if not isinstance(results, list):
        return [], ([ObjectFailure(None, "result is not a list")] if results is not None else [])
    fallback = _score(default_score)
    objects: list[DetectedObject] = []
    failures: list[ObjectFailure] = []
    for n, result in enumerate(results):
        if not isinstance(result, Mapping):
            failures.append(ObjectFailure(None, f"region {n} is not an object"))
            continue
        type_ = str(result.get("type", "")).lower()
        kind = RECTANGLE_TYPES.get(type_) or POLYGON_TYPES.get(type_)
        if kind is None:
            continue
        if to_name is not None and result.get("to_name") != to_name:
            continue
        rid = result.get("id")
        rid = str(rid) if rid is not None else None
        value = result.get("value")
        try:
            if not isinstance(value, Mapping):
                raise BoxError("region has no value")
            original = _original_size(result)
            if kind == "rectangle":
                box = rect_box(value.get("x"), value.get("y"), value.get("width"), value.get("height"),
                               value.get("rotation", 0.0),
                               original[0] if original else None, original[1] if original else None)
            else:
                box = polygon_box(value.get("points"))
            box = box.clipped()
        except BoxError as exc:
            failures.append(ObjectFailure(rid, f"{type_} region {rid or n}: {exc}"))
            continue
        score = _score(result.get("score"))
        objects.append(DetectedObject(
            box=box, label=_label(value, type_), score=score if score is not None else fallback,
            region_id=rid, kind=kind, from_name=result.get("from_name"),
            to_name=result.get("to_name"), original_size=original,
        ))
    return objects, failures


def _newest(entries: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    best, best_key = None, None
    for i, entry in enumerate(entries):
        ident = entry.get("id")
        key = (str(entry.get("created_at") or ""), ident if isinstance(ident, int) else -1, i)
        if best_key is None or key >= best_key:
            best, best_key = entry, key
    return best


def select_results(task: Mapping[str, Any], source: ObjectSource = ObjectSource()
                   ) -> tuple[list[Any] | None, float | None, str | None]:
    """(result list, its prediction-level score, where it came from) of the entry that
    ``source`` reads; (None, None, None) when the task has none."""
    if source.kind == "annotations":
        entries = [a for a in task.get("annotations") or [] if isinstance(a, Mapping)
                   and not a.get("was_cancelled") and isinstance(a.get("result"), list)]
        chosen = _newest(entries)
        if chosen is None:
            return None, None, None
        return chosen["result"], None, f"annotation {chosen.get('id')}"
    entries = []
    for prediction in task.get("predictions") or []:
        if not isinstance(prediction, Mapping) or not isinstance(prediction.get("result"), list):
            continue
        version = str(prediction.get("model_version") or "")
        if source.model_version is not None:
            if version != source.model_version:
                continue
        elif source.own_prefix and is_own_version(version, source.own_prefix):
            continue
        entries.append(prediction)
    chosen = _newest(entries)
    if chosen is None:
        return None, None, None
    return chosen["result"], chosen.get("score"), f"prediction {chosen.get('id')} ({chosen.get('model_version')})"


def objects_of_task(task: Mapping[str, Any], source: ObjectSource = ObjectSource(),
                    to_name: str | None = None) -> tuple[list[DetectedObject], list[ObjectFailure]]:
    """The objects of a Label Studio task (its ``predictions``/``annotations`` as the API
    or an export gives them) and the regions that failed."""
    results, score, _ = select_results(task, source)
    if results is None:
        return [], []
    return objects_from_results(results, default_score=score, to_name=to_name)



def objects_digest(task: Mapping[str, Any], source: ObjectSource = ObjectSource()) -> str:
    """A digest of the boxes ``source`` reads from ``task``: when it differs from the one
    the task was mined with (its predictions changed, Start Training re-read them), the
    task's objects are mined again. Label, box, score and region id count; the order of
    keys does not. "" when the task has no such entry."""
    results, score, _ = select_results(task, source)
    if results is None:
        return ""
    boxes = [r for r in results if isinstance(r, Mapping)
             and str(r.get("type", "")).lower() in RECTANGLE_TYPES.keys() | POLYGON_TYPES.keys()]
    blob = json.dumps([score, boxes], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def highlight_region(obj: DetectedObject, from_name: str, to_name: str, reason: str,
                     region_id: str | None = None) -> dict[str, Any]:
    """A ``rectanglelabels`` result that shows ``obj`` (a polygon by its bounding box) in
    Label Studio with the detector's label, and ``reason`` (why it is rare) as the
    region's meta text, which the annotator reads in the region's details. ``from_name``
    must be a RectangleLabels tag of the config whose labels include ``obj.label``."""
    box = obj.box
    result: dict[str, Any] = {
        "from_name": from_name, "to_name": to_name, "type": "rectanglelabels",
        "value": {"x": box.left * 100, "y": box.top * 100, "width": box.width * 100,
                  "height": box.height * 100, "rotation": 0,
                  "rectanglelabels": [obj.label] if obj.label else []},
        "meta": {"text": [reason]},
    }
    if region_id:
        result["id"] = region_id
    if obj.original_size:
        result["original_width"], result["original_height"] = obj.original_size
    return result
