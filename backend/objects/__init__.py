"""Object-level mining: the rare object inside an ordinary scene, for detection projects.

A detection project keeps a detector's boxes in Label Studio. This package turns them
into mined objects, independent of how the backend fetches, queues and writes back:

* ``regions``: the objects of a task (RectangleLabels, PolygonLabels by their bounding
  box) from its predictions or annotations, each broken region failing alone;
* ``geometry``: percent boxes, rotation, context margin, clipping, smallest box;
* ``crops``: crops cut from the already decoded image, described in one batched
  ``Describer.describe_each`` call per job, cached by image, box, model and prompts;
* ``index``: one keyword document per object in a scope of its own;
* ``thumbnails``: a tiny JPEG of a crop, for the report;
* ``novelty``: object novelty pooled per task (its rarest object by default) and the
  detector's uncertainty (its least confident object).

It imports only ``backend.vlm``, ``backend.mining``, numpy and (through the images it
is given) Pillow. docs/objects.md says what exists and how it plugs into the pipeline.
"""

from .crops import (
    MAX_OBJECTS,
    Crop,
    CropCache,
    CropRules,
    DescribedCrop,
    MemoryCropCache,
    crop_cache_key,
    crop_keys,
    cut_crops,
    mined_objects,
    describe_crops,
)
from .geometry import Box, BoxError, PixelBox, crop_rect, most_confident, polygon_box, rect_box
from .documents import (
    OBJECT_SLOTS,
    SCENE_SLOT,
    TaskObjectKeywords,
    forget_tasks,
    index_objects,
    object_doc_id,
    object_scope,
    split_doc_ids,
)
from .thumbnails import THUMBNAIL_SIDE, thumbnail_jpeg
from .novelty import (
    DEFAULT_OBJECT_POOLING,
    OBJECT_POOLINGS,
    ObjectNovelty,
    object_novelty,
    task_keywords,
    task_uncertainty,
    tasks_uncertainty,
)
from .regions import (
    DetectedObject,
    ObjectFailure,
    ObjectSource,
    highlight_region,
    objects_digest,
    objects_from_results,
    objects_of_task,
    select_results,
)

__all__ = [
    "Box", "BoxError", "crop_keys", "mined_objects", "Crop", "CropCache", "CropRules", "DEFAULT_OBJECT_POOLING", "DescribedCrop",
    "DetectedObject", "MAX_OBJECTS", "MemoryCropCache", "OBJECT_POOLINGS", "OBJECT_SLOTS", "ObjectFailure",
    "ObjectNovelty", "ObjectSource", "PixelBox", "SCENE_SLOT", "TaskObjectKeywords", "crop_cache_key",
    "crop_rect", "cut_crops", "describe_crops", "forget_tasks", "highlight_region", "index_objects", "most_confident",
    "object_doc_id", "object_novelty", "object_scope", "objects_digest", "objects_from_results", "objects_of_task",
    "polygon_box", "rect_box", "select_results", "split_doc_ids", "task_keywords", "task_uncertainty", "tasks_uncertainty",
    "THUMBNAIL_SIDE", "thumbnail_jpeg",
]
