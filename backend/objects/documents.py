"""Object keywords in the keyword index: one document per object, in a scope of their own.

Document frequencies for object mining count objects, not images: "horse trailer" is
rare when few *objects* are horse trailers. So objects live in their own scope
(:func:`object_scope`, the one rule for its name), next to the whole-image scope and
never mixed with it, in the same :class:`~backend.mining.keyword_index.KeywordIndex` (SQLite or
Redis), which keys documents by integer: an object's document id is
``task_id * OBJECT_SLOTS + slot`` (:func:`object_doc_id`). Slots 0..254 are the task's
mined objects, highest detector score first; slot 255 is the whole image's keywords
when the scene counts as one more object. A task's documents are therefore one
contiguous id range: replacing or forgetting a task never needs a lookup table, and
``IndexArrays.task_ids // OBJECT_SLOTS`` groups a snapshot by task for free.

Re-mining a task replaces its documents (slots it no longer fills are deleted), so
changed predictions, a lower object limit or a failed object leave nothing stale;
mining it twice changes no count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..mining.keyword_index import KeywordIndex

__all__ = [
    "OBJECT_SLOTS",
    "SCENE_SLOT",
    "TaskObjectKeywords",
    "forget_tasks",
    "index_objects",
    "object_doc_id",
    "object_scope",
    "split_doc_ids",
]

OBJECT_SLOTS = 256
SCENE_SLOT = OBJECT_SLOTS - 1
#: Task ids above this would overflow int64 document ids (Label Studio's are far below).
MAX_TASK_ID = (2**63 - 1) // OBJECT_SLOTS - 1


def object_scope(image_scope: str) -> str:
    """The object scope next to a whole-image scope (``p<project>:<mining hash>``).

    The suffix cannot collide with an image scope, whose names have no second colon,
    and the mining hash inside keeps the two scopes of one configuration together."""
    return f"{image_scope}:objects"


def object_doc_id(task_id: int, slot: int) -> int:
    task_id, slot = int(task_id), int(slot)
    if not (0 <= slot < OBJECT_SLOTS):
        raise ValueError(f"object slot must be in 0..{OBJECT_SLOTS - 1}, not {slot}")
    if not (0 <= task_id <= MAX_TASK_ID):
        raise ValueError(f"task id {task_id} cannot hold object documents")
    return task_id * OBJECT_SLOTS + slot


def split_doc_ids(doc_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(task ids, slots) of object document ids."""
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    return doc_ids // OBJECT_SLOTS, doc_ids % OBJECT_SLOTS


@dataclass
class TaskObjectKeywords:
    """A task's mined objects: ``objects[slot]`` is that object's keywords, or None when
    it failed (no document); ``scene`` the whole image's keywords when the scene counts
    as an object, else None."""

    objects: Sequence[Sequence[str] | None] = field(default_factory=list)
    scene: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if len(self.objects) > SCENE_SLOT:
            raise ValueError(f"at most {SCENE_SLOT} objects per task, got {len(self.objects)}")


def index_objects(index: KeywordIndex, scope: str, tasks: Mapping[int, TaskObjectKeywords]) -> None:
    """Replace the object documents of ``tasks`` in ``scope`` (an :func:`object_scope`).

    New documents are written first, then the task's slots left empty are deleted: a
    reader in between sees the new objects plus at most stale leftovers, never a task
    without objects.
    """
    docs: dict[int, Sequence[str]] = {}
    stale: list[int] = []
    for task_id, mined in tasks.items():
        for slot in range(OBJECT_SLOTS):
            kws = mined.scene if slot == SCENE_SLOT else (mined.objects[slot] if slot < len(mined.objects) else None)
            if kws is None:
                stale.append(object_doc_id(task_id, slot))
            else:
                docs[object_doc_id(task_id, slot)] = list(kws)
    if docs:
        index.upsert_many(scope, docs)
    if stale:
        index.delete(scope, stale)


def forget_tasks(index: KeywordIndex, scope: str, task_ids: Iterable[int]) -> int:
    """Delete every object document of ``task_ids`` (deleted tasks); returns how many existed."""
    ids = [object_doc_id(t, slot) for t in task_ids for slot in range(OBJECT_SLOTS)]
    return index.delete(scope, ids) if ids else 0
