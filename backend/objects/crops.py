"""Crops of a task's objects, and their descriptions through any :class:`Describer`.

The crops are cut from the image the pipeline already decoded for whole-image mining
(no second download, no second decode); each is a view of its object with some
context around it. A job's crops go to the describer in one ``describe_each`` call,
across all its tasks: a local model then runs them ``batch_size`` at a time back to
back, an endpoint keeps ``concurrency`` requests in flight. One prompt serves every
crop (the detector's label is not in it), which is what lets them share that call.

A description is cached under (image content hash, the object's box, the margin,
model, prompts): the same object in the same image is never described twice, and a new
prompt, model or margin describes it again. Every part of the key is known before the
image is decoded (:func:`crop_keys`), so a re-mined task whose crops are all cached is
never decoded at all; what else shapes the pixels (the decode scale) goes in with the
caller's ``context`` strings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from ..vlm.base import Describer, DescriberError
from .geometry import Box, BoxError, PixelBox, crop_rect, most_confident
from .documents import SCENE_SLOT
from .regions import DetectedObject, ObjectFailure

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "Crop",
    "CropCache",
    "CropRules",
    "DescribedCrop",
    "MemoryCropCache",
    "crop_cache_key",
    "crop_keys",
    "cut_crops",
    "mined_objects",
    "describe_crops",
]

#: The most objects of one task the index can hold: slots 0..MAX_OBJECTS-1 (documents.py).
MAX_OBJECTS = SCENE_SLOT


@dataclass(frozen=True)
class CropRules:
    """How objects become crops (the later OBJECT_* settings).

    ``margin``: context added on every side, as a share of the object's own width and
    height. ``min_side``: objects whose shorter side is below this many (original)
    pixels are refused. ``max_objects``: the most objects mined per task, highest
    detector score first.
    """

    margin: float = 0.15
    min_side: int = 16
    max_objects: int = 16

    def __post_init__(self) -> None:
        if not (0 <= self.margin <= 10):
            raise ValueError("margin must be between 0 and 10")
        if self.min_side < 0:
            raise ValueError("min_side must be >= 0")
        if not (1 <= self.max_objects <= MAX_OBJECTS):
            raise ValueError(f"max_objects must be between 1 and {MAX_OBJECTS}")


@dataclass(frozen=True)
class Crop:
    """One object cut out: ``slot`` is its place among the task's mined objects (highest
    score first), which is also its document in the object index."""

    task_id: int
    slot: int
    object: DetectedObject
    rect: PixelBox
    margin: float
    image_hash: str
    image: Any  # PIL.Image.Image

    def key(self, model: str, prompts: Sequence[str]) -> str:
        return crop_cache_key(self.image_hash, self.object.box, self.margin, model, prompts)


def mined_objects(objects: Sequence[DetectedObject], rules: CropRules = CropRules()) -> list[DetectedObject]:
    """The objects that get slots, in slot order: the ``rules.max_objects`` most confident."""
    return most_confident(objects, rules.max_objects, lambda o: o.score)


def crop_keys(image_hash: str, objects: Sequence[DetectedObject], rules: CropRules, model: str,
              prompts: Sequence[str]) -> list[str]:
    """The cache key of each slot's crop, computed without the image: look them up first
    and decode the image only when one is missing."""
    return [crop_cache_key(image_hash, o.box, rules.margin, model, prompts) for o in mined_objects(objects, rules)]


def cut_crops(task_id: int, image: "Image", image_hash: str, objects: Sequence[DetectedObject],
              rules: CropRules = CropRules()) -> tuple[list[Crop], list[ObjectFailure]]:
    """The crops of one task's ``objects`` from its decoded ``image``.

    The ``rules.max_objects`` most confident objects get slots 0, 1, ...; one refused
    (too small, no pixel) fails alone with its reason and keeps its slot empty.
    """
    chosen = mined_objects(objects, rules)
    size = (int(image.width), int(image.height))
    crops: list[Crop] = []
    failures: list[ObjectFailure] = []
    for slot, obj in enumerate(chosen):
        try:
            rect = crop_rect(obj.box, size, rules.margin, rules.min_side, obj.original_size)
            piece = image.crop(rect.as_tuple())
        except BoxError as exc:
            failures.append(ObjectFailure(obj.region_id, f"object {slot} ({obj.label or 'no label'}): {exc}"))
            continue
        except Exception as exc:  # a truncated or odd image: this object only
            failures.append(ObjectFailure(obj.region_id, f"object {slot}: cannot crop: {type(exc).__name__}: {exc}"))
            continue
        crops.append(Crop(task_id, slot, obj, rect, rules.margin, image_hash, piece))
    return crops, failures


def crop_cache_key(image_hash: str, box: Box, margin: float, model: str, prompts: Sequence[str]) -> str:
    """sha256 of what decides a crop's description: the image's content, the object's box
    (fractions, rounded to 1e-6: a float printed back and forth must not miss), the margin,
    the model and the prompts (with any context string the caller adds)."""
    where = [round(v, 6) for v in (box.left, box.top, box.right, box.bottom)]
    blob = json.dumps(["object", image_hash, where, round(float(margin), 6), model, list(prompts)])
    return hashlib.sha256(blob.encode()).hexdigest()


class CropCache(Protocol):
    """What the crop describer needs of a cache: the description store's own two calls
    (key -> (description, keywords)), so the pipeline's store plugs in as it is."""

    def cache_get(self, keys: Any) -> Mapping[str, tuple[str | None, list[str]]]: ...

    def cache_put(self, items: Mapping[str, tuple[str | None, list[str]]]) -> None: ...


class MemoryCropCache:
    """A process-local :class:`CropCache` (benchmarks, offline runs of one process)."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[str | None, list[str]]] = {}

    def cache_get(self, keys: Any) -> dict[str, tuple[str | None, list[str]]]:
        return {k: self.items[k] for k in keys if k in self.items}

    def cache_put(self, items: Mapping[str, tuple[str | None, list[str]]]) -> None:
        self.items.update(items)


@dataclass
class DescribedCrop:
    """A crop's outcome: its description and keywords, or the error of this object alone."""

    crop: Crop
    cache_key: str
    description: str | None = None
    keywords: list[str] | None = None
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.description is not None


def describe_crops(describer: Describer, crops: Sequence[Crop], prompt: str,
                   keywords: Callable[[str], list[str]] | None = None,
                   cache: CropCache | None = None, context: Sequence[str] = ()) -> list[DescribedCrop]:
    """Describe ``crops`` (any number of tasks) in one ``describe_each`` call, in order.

    Cached crops are not sent. ``keywords`` (the keyword mode's rule for one
    description, e.g. ``normaliser.from_text``) gives each fresh description its
    keywords, and the pair is cached; without it (the LLM keyword mode, a second pass
    the caller runs) nothing is cached here. ``context`` (the keyword prompt, the
    pipeline's description fingerprint: decode scale, keyword rules) joins the cache key.
    A crop the describer fails gets its error; the others go on.
    """
    prompts = [prompt, *context]
    out = [DescribedCrop(crop, crop.key(describer.name, prompts)) for crop in crops]
    hits = cache.cache_get({d.cache_key for d in out}) if cache is not None and out else {}
    fresh: list[DescribedCrop] = []
    for item in out:
        if item.cache_key in hits:
            item.description, kws = hits[item.cache_key]
            item.keywords, item.cached = list(kws), True
        else:
            fresh.append(item)
    if not fresh:
        return out
    try:
        texts: list[Any] = describer.describe_each([item.crop.image for item in fresh], prompt)
    except Exception as exc:  # a describer that cannot run at all (a model that will not load)
        texts = [exc] * len(fresh)
    done: dict[str, tuple[str | None, list[str]]] = {}
    for item, text in zip(fresh, texts):
        if isinstance(text, BaseException):
            reason = str(text) if isinstance(text, DescriberError) else f"{type(text).__name__}: {text}"
            item.error = f"vlm: {reason[:300]}"
            continue
        item.description = text
        if keywords is not None:
            item.keywords = keywords(text)
            done[item.cache_key] = (text, item.keywords)
    if cache is not None and done:
        cache.cache_put(done)
    return out
