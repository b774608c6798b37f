"""Object novelty and object uncertainty, pooled per task.

Each object document gets the same novelty a whole image would (``mining.novelty``
over its keywords, with the object scope's document frequencies). A task's object
novelty is then pooled over its objects: ``max`` by default, because one horse trailer
among twenty ordinary cars is the point of object mining and a mean would bury it
under the cars; ``mean`` ranks tasks whose objects are unusual throughout. The
detector's own score gives each object an uncertainty (1 - score) and a task the
uncertainty of its least confident object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..mining.keyword_index import IndexArrays
from ..mining.novelty import DECIMALS, DEFAULT_POOLING, novelty
from .documents import split_doc_ids

__all__ = [
    "DEFAULT_OBJECT_POOLING",
    "OBJECT_POOLINGS",
    "ObjectNovelty",
    "object_novelty",
    "task_keywords",
    "task_uncertainty",
    "tasks_uncertainty",
]

OBJECT_POOLINGS = ("max", "mean")
DEFAULT_OBJECT_POOLING = "max"


@dataclass(frozen=True)
class ObjectNovelty:
    """Per object document (``doc_ids``, ``doc_novelty``) and per task (``task_ids``
    ascending, ``novelty``, and ``rarest_slot``: the slot of its most novel object, the
    one an explanation names; ties go to the lower slot, the more confident object)."""

    doc_ids: np.ndarray
    doc_novelty: np.ndarray
    task_ids: np.ndarray
    novelty: np.ndarray
    rarest_slot: np.ndarray

    def aligned(self, task_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Task novelty in the order of ``task_ids`` (the whole-image scope's), NaN for a
        task without mined objects: a missing signal, filled as ``mining.prioritise`` fills any."""
        want = np.asarray(task_ids, dtype=np.int64)
        out = np.full(want.shape, np.nan)
        if self.task_ids.size and want.size:
            pos = np.searchsorted(self.task_ids, want)
            pos_c = np.minimum(pos, self.task_ids.size - 1)
            hit = self.task_ids[pos_c] == want
            out[hit] = self.novelty[pos_c[hit]]
        return out


def object_novelty(arrays: IndexArrays, pooling: str = DEFAULT_OBJECT_POOLING,
                   keyword_pooling: str = DEFAULT_POOLING, transform: str = "neglog") -> ObjectNovelty:
    """Novelty of every object document in an object scope's snapshot, pooled per task."""
    if pooling not in OBJECT_POOLINGS:
        raise ValueError(f"object pooling must be one of {OBJECT_POOLINGS}, not {pooling!r}")
    doc_nov = novelty(arrays, pooling=keyword_pooling, transform=transform)
    tasks, slots = split_doc_ids(arrays.task_ids)
    if not tasks.size:
        empty = np.zeros(0, np.int64)
        return ObjectNovelty(arrays.task_ids, doc_nov, empty, np.zeros(0), empty)
    # documents ascend by id, so one task's objects are one run
    starts = np.flatnonzero(np.r_[True, tasks[1:] != tasks[:-1]])
    task_ids = tasks[starts]
    if pooling == "max":
        pooled = np.maximum.reduceat(doc_nov, starts)
    else:
        pooled = np.add.reduceat(doc_nov, starts) / np.diff(np.r_[starts, tasks.size])
    pooled = np.round(pooled, DECIMALS)  # a mean of rounded values is ranked as shown
    # the rarest object: first document of its run whose novelty equals the run's max
    run_max = np.maximum.reduceat(doc_nov, starts)
    run_of = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, tasks.size]))
    is_max = doc_nov == run_max[run_of]
    hits = np.flatnonzero(is_max)
    first_hit = np.full(starts.size, tasks.size, np.int64)
    np.minimum.at(first_hit, run_of[hits], hits)
    rarest = slots[first_hit]
    return ObjectNovelty(arrays.task_ids, doc_nov, task_ids, pooled, rarest)


def task_keywords(arrays: IndexArrays, task_ids: Sequence[int] | np.ndarray) -> IndexArrays:
    """Each task's keywords over all its object documents (its scene's among them), one row
    per task of ``task_ids`` (empty where it has none), with the object scope's document
    frequencies: what the head of the queue covers when tasks rank by their rarest object
    (``mining.diversity``)."""
    want = np.asarray(task_ids, dtype=np.int64)
    tasks, _ = split_doc_ids(arrays.task_ids)
    lengths = np.diff(arrays.indptr)
    row = np.full(tasks.shape, -1, dtype=np.int64)
    if want.size and tasks.size:
        sorter = np.argsort(want, kind="stable")
        pos = np.minimum(np.searchsorted(want, tasks, sorter=sorter), want.size - 1)
        hit = want[sorter[pos]] == tasks
        row[hit] = sorter[pos[hit]]
    rows = np.repeat(row, lengths)
    keep = rows >= 0
    vocab = max(arrays.vocab_size, 1)
    pairs = np.unique(rows[keep] * vocab + arrays.keyword_ids[keep].astype(np.int64))
    pair_rows = pairs // vocab
    indptr = np.zeros(want.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_rows, minlength=want.size), out=indptr[1:])
    return IndexArrays(want, indptr, (pairs % vocab).astype(arrays.keyword_ids.dtype), arrays.df)


def task_uncertainty(scores: Iterable[float | None]) -> float:
    """The least confident object's uncertainty, 1 - min(score); NaN when no object has a score."""
    values = [float(s) for s in scores if s is not None and np.isfinite(s)]
    return 1.0 - min(values) if values else float("nan")


def tasks_uncertainty(scores: Sequence[Iterable[float | None]]) -> np.ndarray:
    """:func:`task_uncertainty` of every task, as the signal array ``mining.prioritise`` takes."""
    return np.array([task_uncertainty(s) for s in scores], dtype=np.float64)
