"""Detection data for ``python -m backend mine``: boxes read into Label Studio-shaped tasks.

Why one shape: on the server a detection project's objects are read from its tasks'
predictions by :func:`backend.objects.regions.objects_of_task`. Every offline input is
turned into that same shape, a task ``{"id", "data": {"image": ...}, "predictions":
[{"model_version": DETECTOR_VERSION, "result": [rectanglelabels regions]}]}``, regions in
percent of the image with ``original_width``/``original_height`` when known, so that
objects are read, clipped, refused and cropped by one set of rules on both paths.

Three inputs hold boxes:

* a Label Studio export: its tasks already hold ``predictions`` or ``annotations``;
  nothing is converted, :func:`export_object_source` only says which of the two hold boxes;
* COCO JSON: a dict with ``images`` (``id``, ``file_name``, ``width``, ``height``),
  ``annotations`` (``image_id``, ``bbox`` ``[x, y, w, h]`` in pixels, ``category_id``,
  ``score`` for detections) and ``categories`` (``id``, ``name``) -- or a bare list of
  detection results (``image_id``, ``bbox``, ``score``, ``category_id``) with the images
  named by another COCO file or by their file names (COCO's ``000000397133.jpg``);
* rows (JSONL or a JSON list) with an ``image`` and ``boxes``: ``{x, y, width, height}``
  in percent, or ``bbox`` ``[x, y, w, h]`` in pixels with the image's size, each with an
  optional ``label`` and ``score``;
* a Label Studio JSON-MIN export: flat rows whose region fields (named by the control
  tag, e.g. ``label``) list the annotation's values, ``{x, y, width, height, rotation,
  rectanglelabels, original_width, original_height}`` or ``{points, polygonlabels, ...}``.

A box that cannot be converted fails alone: its reason, naming the row or annotation and
the box, joins its task's ``errors``; the task keeps its other boxes and its image is
mined as usual. Whether a converted box lies inside its image is not judged here: the
objects package owns that rule (``Box.clipped``) and reports such a box when it is mined.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import UsageError
from ..objects.regions import POLYGON_TYPES, RECTANGLE_TYPES
from ..versions import is_own_version

#: the model version of the predictions converted from COCO or ``boxes`` rows: the object
#: source reads exactly this version for such inputs, whatever OBJECT_MODEL_VERSION says
DETECTOR_VERSION = "offline-detections"
#: the tag names of the converted regions and of the label config the command mines with
IMAGE_TAG = "image"
BOX_TAG = "label"
#: the data key of a converted task's image (the file name or reference as the input gave it)
IMAGE_KEY = "image"

SizeOf = Callable[[], "tuple[int, int] | None"]


@dataclass
class DetectionTask:
    """One image of a detection input, as a Label Studio task, and its boxes that failed."""

    task: dict[str, Any]
    errors: list[str] = field(default_factory=list)


@dataclass
class DetectionSet:
    """A converted input: the tasks, and what belongs to no task (a detection naming an
    image the input does not list)."""

    tasks: list[DetectionTask]
    orphans: list[str] = field(default_factory=list)


def image_size(path: Path) -> tuple[int, int] | None:
    """An image file's (width, height) from its header, without decoding the pixels;
    None when the file cannot be read as an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _positive_size(width: Any, height: Any) -> tuple[int, int] | None:
    w, h = _finite(width), _finite(height)
    if w is None or h is None or w <= 0 or h <= 0 or not w.is_integer() or not h.is_integer():
        return None
    return int(w), int(h)


def region(x: float, y: float, width: float, height: float, label: str | None, score: float | None,
           size: tuple[int, int] | None, region_id: str) -> dict[str, Any]:
    """A ``rectanglelabels`` result as Label Studio stores it (percent of the image)."""
    result: dict[str, Any] = {
        "id": region_id, "type": "rectanglelabels", "from_name": BOX_TAG, "to_name": IMAGE_TAG,
        "value": {"x": x, "y": y, "width": width, "height": height, "rotation": 0,
                  "rectanglelabels": [label] if label else []},
    }
    if size is not None:
        result["original_width"], result["original_height"] = size
    if score is not None:
        result["score"] = score
    return result


def prediction(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The converted boxes of one image as a prediction of :data:`DETECTOR_VERSION`."""
    return {"model_version": DETECTOR_VERSION, "result": results}


def _pixel_box(bbox: Any) -> tuple[float, float, float, float]:
    """A COCO ``[x, y, width, height]`` in pixels, checked for shape only."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"bbox must be [x, y, width, height] in pixels, got {_shown(bbox)}")
    numbers = [_finite(v) for v in bbox]
    if any(v is None for v in numbers):
        raise ValueError(f"bbox must hold 4 finite numbers, got {_shown(bbox)}")
    x, y, w, h = numbers  # type: ignore[misc]
    return x, y, w, h  # type: ignore[return-value]


def _percent(box: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[float, float, float, float]:
    x, y, w, h = box
    width, height = size
    return x / width * 100, y / height * 100, w / width * 100, h / height * 100


def _score(value: Any) -> float | None:
    """A detector score when given: a finite number (ValueError otherwise)."""
    if value is None:
        return None
    out = _finite(value)
    if out is None:
        raise ValueError(f"score must be a number, got {_shown(value)}")
    return out


# ------------------------------------------------------------------------ rows with boxes
def row_has_boxes(row: Any) -> bool:
    """Whether a JSONL/JSON row carries detector boxes (a ``boxes`` field)."""
    return isinstance(row, Mapping) and "boxes" in row and not isinstance(row.get("data"), Mapping)


#: the value keys that make a JSON-MIN list entry a region, and the result type they stand for
MIN_REGION_TYPES = ("rectanglelabels", "polygonlabels")


def min_export_regions(row: Any) -> dict[str, list]:
    """The fields of a Label Studio JSON-MIN row that hold regions: non-empty lists of
    objects carrying ``rectanglelabels`` or ``polygonlabels``, by field name ({} for none)."""
    if not isinstance(row, Mapping) or isinstance(row.get("data"), Mapping):
        return {}
    return {k: v for k, v in row.items() if isinstance(v, list) and v and any(
        isinstance(r, Mapping) and any(t in r for t in MIN_REGION_TYPES) for r in v)}


def convert_min_regions(fields: Mapping[str, list], where: str) -> tuple[list[dict[str, Any]], list[str]]:
    """A JSON-MIN row's region fields as results (the values as Label Studio wrote them,
    the original size moved to the result), and the reason of each entry that is no region.
    Whether a region's numbers make a box is the objects package's rule, applied when mined."""
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for name, values in fields.items():
        for k, value in enumerate(values):
            at = f"{where} {name} region {k}"
            type_ = next((t for t in MIN_REGION_TYPES if t in value), None) if isinstance(value, Mapping) else None
            if type_ is None:
                errors.append(f"{at}: not a region (an object with rectanglelabels or polygonlabels), "
                              f"got {_shown(value)}")
                continue
            result: dict[str, Any] = {
                "id": f"{name}-{k}", "type": type_, "from_name": name, "to_name": IMAGE_TAG,
                "value": {x: y for x, y in value.items() if x not in ("original_width", "original_height")},
            }
            size = _positive_size(value.get("original_width"), value.get("original_height"))
            if size is not None:
                result["original_width"], result["original_height"] = size
            results.append(result)
    return results, errors


def row_image_size(row: Mapping[str, Any]) -> tuple[int, int] | None:
    """The image size a row states: ``width``/``height`` or ``original_width``/``original_height``."""
    for w, h in (("width", "height"), ("original_width", "original_height")):
        if w in row or h in row:
            return _positive_size(row.get(w), row.get(h))
    return None


def convert_row_boxes(boxes: Any, where: str, size_of: SizeOf) -> tuple[list[dict[str, Any]], list[str]]:
    """A row's ``boxes`` as regions, and the reason of each box that failed.

    A box is ``{x, y, width, height}`` in percent of the image, or ``{bbox: [x, y, w, h]}``
    in pixels, which needs the image's size (``size_of``, asked once, only then).
    """
    if not isinstance(boxes, list):
        return [], [f"{where}: boxes must be a list, got {_shown(boxes)}"]
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    size: tuple[int, int] | None = None
    asked = False
    for k, box in enumerate(boxes):
        at = f"{where} box {k}"
        try:
            if not isinstance(box, Mapping):
                raise ValueError(f"a box is an object with x, y, width, height or bbox, got {_shown(box)}")
            label = box.get("label")
            if label is not None and not isinstance(label, (str, int)):
                raise ValueError(f"label must be a string, got {_shown(label)}")
            score = _score(box.get("score"))
            if "bbox" in box:
                pixels = _pixel_box(box["bbox"])
                if not asked:
                    size, asked = size_of(), True
                if size is None:
                    raise ValueError("bbox is in pixels, but the image's size is unknown (give the row "
                                     "width and height, or a local image file)")
                x, y, w, h = _percent(pixels, size)
            else:
                missing = [name for name in ("x", "y", "width", "height") if name not in box]
                if missing:
                    raise ValueError(f"no {', '.join(missing)} (a box is x, y, width, height in percent, "
                                     "or bbox in pixels)")
                values = [_finite(box[name]) for name in ("x", "y", "width", "height")]
                if any(v is None for v in values):
                    raise ValueError("x, y, width and height must be finite numbers (percent)")
                x, y, w, h = values  # type: ignore[misc]
        except ValueError as exc:
            errors.append(f"{at}: {exc}")
            continue
        results.append(region(x, y, w, h, None if label is None else str(label), score, size,
                              region_id=f"b{k}"))
    return results, errors


# ----------------------------------------------------------------------------------- COCO
def is_coco(doc: Any) -> bool:
    """A COCO annotation or detection file: a dict with a list of ``images``."""
    return isinstance(doc, Mapping) and isinstance(doc.get("images"), list)


def is_coco_results(doc: Any) -> bool:
    """A COCO detection-results list: every entry has ``image_id`` and ``bbox``."""
    return (isinstance(doc, list) and bool(doc)
            and all(isinstance(r, Mapping) and "image_id" in r and "bbox" in r for r in doc))


def coco_categories(doc: Mapping[str, Any] | None, where: str) -> dict[Any, str]:
    """Category id -> name (the detector's label); {} when the file lists none."""
    if doc is None or doc.get("categories") is None:
        return {}
    cats = doc["categories"]
    if not isinstance(cats, list):
        raise UsageError(f"{where}: categories must be a list")
    names: dict[Any, str] = {}
    for n, cat in enumerate(cats):
        if not isinstance(cat, Mapping) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise UsageError(f"{where}: category {n} needs an id and a name")
        names[_id_key(cat["id"])] = cat["name"]
    return names


def _id_key(value: Any) -> Any:
    """COCO ids compared as numbers when they are whole (1 and 1.0 are one image)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def coco_images(doc: Mapping[str, Any], where: str) -> list[tuple[Any, str, tuple[int, int] | None]]:
    """(image id, file name, size or None) of each ``images`` entry; a usage error names a
    bad one (a file whose size is not given is measured only when it has boxes)."""
    out = []
    seen: set[Any] = set()
    for n, image in enumerate(doc["images"]):
        if not isinstance(image, Mapping):
            raise UsageError(f"{where}: images[{n}] is not an object")
        ident, name = image.get("id"), image.get("file_name")
        if ident is None or isinstance(ident, (bool, list, dict)):
            raise UsageError(f"{where}: images[{n}] has no id")
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"{where}: images[{n}] (id {ident}) has no file_name")
        if _id_key(ident) in seen:
            raise UsageError(f"{where}: images[{n}]: duplicate image id {ident}")
        seen.add(_id_key(ident))
        out.append((ident, name, _positive_size(image.get("width"), image.get("height"))))
    return out


def images_by_file_name(names: Sequence[str]) -> tuple[list[tuple[Any, str, None]], int]:
    """Images named by their COCO id (``000000397133.jpg`` is image 397133): the images of
    a detection-results list given without its annotation file; and how many files in
    ``names`` have no number for a name (they are skipped)."""
    out = []
    skipped = 0
    seen: dict[int, str] = {}
    for rel in names:
        stem = Path(rel).stem
        if not stem.isdigit():
            skipped += 1
            continue
        ident = int(stem)
        if ident in seen:
            raise UsageError(f"{seen[ident]} and {rel} are both image {ident}: name the images with --coco")
        seen[ident] = rel
        out.append((ident, rel, None))
    return out, skipped


def convert_coco(detections: Sequence[Any], images: Sequence[tuple[Any, str, tuple[int, int] | None]],
                 categories: Mapping[Any, str], where: str, folder: Path) -> DetectionSet:
    """COCO ``annotations`` (or detection results) onto their images, as tasks.

    Each task is ``{"id": image id, "data": {"image": file name}, "predictions": [...]}``;
    each box a region in percent of its image's size (from ``images``, else the file's
    header). A box whose annotation is broken fails alone with its reason.
    """
    tasks: dict[Any, DetectionTask] = {}
    sizes: dict[Any, tuple[int, int] | None] = {}
    names: dict[Any, str] = {}
    for ident, name, size in images:
        key = _id_key(ident)
        tasks[key] = DetectionTask({"id": ident, "data": {IMAGE_KEY: name}, "predictions": [prediction([])]})
        sizes[key], names[key] = size, name
    orphans: list[str] = []
    probed: set[Any] = set()
    for n, det in enumerate(detections):
        at = f"{where}: annotation {n}"
        if not isinstance(det, Mapping):
            orphans.append(f"{at}: not an object")
            continue
        if det.get("id") is not None:
            at += f" (id {det['id']})"
        key = _id_key(det.get("image_id"))
        target = tasks.get(key) if not isinstance(key, (list, dict)) else None
        if target is None:
            orphans.append(f"{at}: image_id {_shown(det.get('image_id'))} is not among the images")
            continue
        try:
            label: str | None = None
            if categories:
                cat = _id_key(det.get("category_id"))
                if isinstance(cat, (list, dict)) or cat not in categories:
                    raise ValueError(f"category_id {_shown(det.get('category_id'))} is not in categories")
                label = categories[cat]
            elif det.get("category_id") is not None:
                label = str(det["category_id"])
            score = _score(det.get("score"))
            pixels = _pixel_box(det.get("bbox"))
            if sizes[key] is None and key not in probed:  # read the header once, only for images with boxes
                probed.add(key)
                sizes[key] = image_size(folder / names[key])
            if sizes[key] is None:
                raise ValueError(f"the size of {names[key]} is unknown (no width/height in images, "
                                 "and the file cannot be read)")
            x, y, w, h = _percent(pixels, sizes[key])  # type: ignore[arg-type]
        except ValueError as exc:
            target.errors.append(f"{at}: {exc}")
            continue
        results = target.task["predictions"][0]["result"]
        # the annotation's own id when it has one: reordering the file changes no box's digest
        rid = det.get("id")
        results.append(region(x, y, w, h, label, score, sizes[key],
                              region_id=f"a{rid}" if isinstance(rid, (int, str)) else f"a#{n}"))
    return DetectionSet(list(tasks.values()), orphans)


# ------------------------------------------------------------------- Label Studio exports
BOX_TYPES = RECTANGLE_TYPES.keys() | POLYGON_TYPES.keys()  # the region types that are objects (regions.py)


def _has_boxes(results: Any) -> bool:
    return isinstance(results, list) and any(
        isinstance(r, Mapping) and str(r.get("type", "")).lower() in BOX_TYPES for r in results)


def export_object_source(tasks: Sequence[Any], own_prefix: str, preferred: str = "predictions") -> str | None:
    """Where an export's boxes are read from: ``preferred`` (OBJECT_SOURCE) when it holds
    any, else the other of "predictions" (a model version this backend did not write) and
    "annotations" (not cancelled) when that one does, else None (the export holds no boxes)."""
    found = {"predictions": False, "annotations": False}
    for task in tasks:
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
            continue
        found["predictions"] = found["predictions"] or any(
            isinstance(p, Mapping) and _has_boxes(p.get("result"))
            and not is_own_version(str(p.get("model_version") or ""), own_prefix)
            for p in task.get("predictions") or [])
        found["annotations"] = found["annotations"] or any(
            isinstance(a, Mapping) and not a.get("was_cancelled") and _has_boxes(a.get("result"))
            for a in task.get("annotations") or [])
        if found[preferred]:
            return preferred
    other = "annotations" if preferred == "predictions" else "predictions"
    return other if found[other] else None


def export_image_tag(tasks: Sequence[Any], source: str) -> str | None:
    """The image tag an export's boxes are drawn on (their most common ``to_name``): the
    label config the command mines with names the same tag, so that the regions are read
    as on the server, which reads only the regions of the mined image."""
    tags: dict[str, int] = {}
    for task in tasks:
        if not isinstance(task, Mapping):
            continue
        for entry in task.get(source) or []:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("result"), list):
                continue
            for r in entry["result"]:
                if (isinstance(r, Mapping) and isinstance(r.get("to_name"), str)
                        and str(r.get("type", "")).lower() in BOX_TYPES):
                    tags[r["to_name"]] = tags.get(r["to_name"], 0) + 1
    return max(tags, key=lambda t: (tags[t], t)) if tags else None


def local_image(value: Any, base: Path) -> Path | None:
    """The file a row's plain image path names (relative to ``base``), as the command
    resolves it; None for a URL, a data URL or a Label Studio reference."""
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip()
    if "://" in v or v.lower().startswith(("data:", "/data/upload/", "/data/local-files")):
        return None
    p = Path(os.path.expanduser(v))
    return p if p.is_absolute() else base / p
