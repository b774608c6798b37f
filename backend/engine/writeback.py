"""Turning a new ranking into few Label Studio writes, exact where annotators look.

Label Studio sorts by the prediction score, so only the *order* of the written
scores matters, and annotators only ever reach the head of that order before
the next re-rank. An import of 1% of a project nudges the novelty of thousands
of old tasks (document frequencies and the task count change), so thousands of
them move by a few places, mostly far down the queue where nobody labels before
the order changes again. Rewriting each of them costs a PATCH (about 45 ms
against a real server), so the planner keeps a written score wherever the
order it gives is still good enough:

1. **The exact head.** The first ``exact_head`` tasks of the queue (the
   label-first end) are written in exactly the engine's order and hold the
   most label-first scores of the project: the longest run of head tasks whose
   written scores are already in order is kept, the rest rewritten.
2. **The tolerant tail.** Beyond the head, a task whose exact place is ``p``
   may sit anywhere within ``tolerance * p`` places of it. An old task keeps
   its written score while its place in Label Studio's order (kept tasks fill
   the kept places in the order of their scores; every other task takes its
   exact place) stays within that bound; one that moved further is rewritten
   at its exact place.
3. New tasks, and rewritten ones, get a score interpolated between their
   nearest kept neighbours in that order, so Label Studio's order is exactly
   the planned one. Where a gap has no room left (a new task above one at
   1.0, a gap split too often), a kept neighbour is rewritten too.
4. New tasks go out in one bulk import, rewritten old ones as one PATCH each.
   When more than ``patch_limit`` old tasks would need a PATCH, the plan is a
   *bump*: every task written again in one bulk import under a new
   model-version generation, and switching ``project.model_version`` changes
   the whole order at once. With the tolerance that happens for a re-rank that
   really reorders the project, not for an ordinary import.

``exact_head=None`` makes the whole order exact (the head is everything), the
planner's rule before the tolerance existed. A first write has nothing kept and
so gives the plain rank priorities ``(n - position) / n``.

What Label Studio's order may then differ from the engine's exact order (the
bounds ``tests/test_writeback.py`` keeps, derived in docs/design.md): the first
``exact_head`` tasks are identical and in order; no task is more than
``tolerance * p`` places from its exact place ``p``; so of the first ``K`` tasks
served at least ``K / (1 + tolerance)`` are among the engine's first ``K``, and
Spearman's rank correlation with the exact order is above ``1 - 2 * tolerance**2``.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

MIN_GAP = 1e-9


@dataclass
class WritePlan:
    bump: bool
    scores: dict[int, float] = field(default_factory=dict)  # every task of the order -> its score after the write
    imports: dict[int, float] = field(default_factory=dict)  # tasks with no live prediction yet
    patches: dict[int, float] = field(default_factory=dict)  # tasks whose live prediction changes score
    kept: int = 0
    repaired: int = 0  # kept tasks moved anyway to make room (see ``plan``)
    #: Label Studio's order once the plan is written, label-first first: the engine's order
    #: exactly in the head (and for a bump), within the tolerance beyond it
    served: list[int] = field(default_factory=list)


def rank_scores(order: Sequence[int]) -> dict[int, float]:
    """Plain priorities: the first task 1.0, the last 1/n."""
    n = len(order)
    return {int(t): (n - i) / n for i, t in enumerate(order)}


def plan(order: Sequence[int], written: Mapping[int, tuple[float, int | None]] | Mapping[int, float],
         patch_limit: int, *, exact_head: int | None = None, tolerance: float = 0.0,
         head_last: bool = False) -> WritePlan:
    """Plan the writes that make Label Studio's scores follow ``order`` (highest score first).

    Args:
        order: every ranked task, highest score first.
        written: task -> its live score in Label Studio (or ``(score, prediction id)``); tasks
            not in ``order`` are ignored.
        patch_limit: more PATCHes than this make the plan a bump.
        exact_head: how many tasks at the label-first end are written in exact order
            (None: all of them, so the whole order is exact).
        tolerance: beyond the head, a kept task may sit up to ``tolerance * p`` places from
            its exact place ``p`` (counted from the label-first end, from 0).
        head_last: the label-first end is the *last* of ``order`` (scores run lowest-first,
            LABEL_STREAM=uncertainty); the head and the places are counted from there.
    """
    order = [int(t) for t in order]
    if not order:
        return WritePlan(bump=False)
    current = {t: _score(v) for t, v in written.items()}
    n = len(order)
    head = n if exact_head is None else max(0, min(n, int(exact_head)))
    queue = order[::-1] if head_last else order  # label-first first
    # key: the written score turned so that smaller = nearer the label-first end
    keys = {t: (current[t] if head_last else -current[t]) for t in queue if t in current}
    head_kept = _kept_head(queue[:head], keys, tolerance * head)
    boundary = max((keys[t] for t in head_kept), default=-np.inf)
    tail = _Tail(queue, head, keys, tolerance, boundary)
    repaired = 0
    while True:
        served = tail.served()
        kept = head_kept | tail.kept
        along = served[::-1] if head_last else served  # highest score first again
        scores = _interpolate(along, {i for i, t in enumerate(along) if t in kept}, current)
        if isinstance(scores, dict):
            break
        # No room between two kept scores (a new task above a task already at 1.0, or a gap
        # split too often): give up one kept neighbour too, which costs one PATCH, not a bump.
        given_up = along[scores]
        head_kept.discard(given_up)
        tail.drop({given_up})
        repaired += 1
        if len(keys) - len(head_kept) - len(tail.kept) > patch_limit:
            return bump(order, head_last)
    patches = {t: scores[t] for t in along if t in keys and t not in kept}
    if len(patches) > patch_limit:
        return bump(order, head_last)
    imports = {t: scores[t] for t in along if t not in keys}
    return WritePlan(bump=False, scores=scores, imports=imports, patches=patches, kept=len(kept),
                     repaired=repaired, served=served)


def bump(order: Sequence[int], head_last: bool = False) -> WritePlan:
    """Every task written again, under a new generation."""
    order = [int(t) for t in order]
    scores = rank_scores(order)
    return WritePlan(bump=True, scores=scores, imports=dict(scores), patches={}, kept=0,
                     served=order[::-1] if head_last else list(order))


def _score(value: tuple[float, int | None] | float) -> float:
    return float(value[0]) if isinstance(value, tuple) else float(value)


def _kept_head(head: list[int], keys: Mapping[int, float], slack: float) -> set[int]:
    """The head tasks that keep their written score: the longest run already in order.

    Only a task whose written score already ranks it near the head (among every old task,
    at most ``slack`` places past the number of old tasks in the head) may be kept: one
    kept score from far down the queue would push the head's boundary down there, and
    every tail task above it would have to be rewritten.
    """
    old = [t for t in head if t in keys]
    if not old:
        return set()
    if len(keys) > len(old):
        limit = len(old) + int(slack)
        if limit < len(keys):
            bound = np.partition(np.fromiter(keys.values(), float, len(keys)), limit)[limit]
            old = [t for t in old if keys[t] < bound]
    return {old[i] for i in _longest_decreasing([-keys[t] for t in old])}


class _Tail:
    """The queue beyond the exact head: which old tasks keep their score, and the order
    Label Studio then serves (kept tasks fill the kept places in the order of their
    written scores; every other task sits at its exact place)."""

    def __init__(self, queue: list[int], head: int, keys: Mapping[int, float], tolerance: float,
                 boundary: float) -> None:
        self.queue = queue
        self.head = head
        tail = queue[head:]
        old = [i for i, t in enumerate(tail) if t in keys]
        self.place = np.array(old, dtype=np.int64) + head  # exact places of the old tail tasks
        self.task = np.array([tail[i] for i in old], dtype=np.int64)
        self.key = np.array([keys[t] for t in self.task.tolist()], dtype=float)
        self.allowed = tolerance * self.place
        self.kept: set[int] = set()
        self.candidate = np.zeros(len(old), dtype=bool)
        if not len(old):
            return
        # A first filter on ranks among the old tasks only (before new tasks take places):
        # the rank by written score and the rank in the new order.
        all_keys = np.sort(np.fromiter(keys.values(), float, len(keys)))
        by_score = np.searchsorted(all_keys, self.key, side="left")
        in_order = np.array([i for i, t in enumerate(queue) if t in keys], dtype=np.int64)
        by_order = np.searchsorted(in_order, self.place)
        candidate = (self.key > boundary) & (np.abs(by_score - by_order) <= self.allowed)
        self.candidate = candidate
        self._settle()

    def _settle(self) -> None:
        """Drop the kept tasks that would be served too far from their exact place, until none
        is. Each round only removes tasks, so it ends; two or three rounds are usual."""
        candidate = self.candidate
        while candidate.any():
            places = self._places(candidate)
            too_far = np.abs(places - self.place[candidate]) > self.allowed[candidate]
            if not too_far.any():
                break
            candidate[np.flatnonzero(candidate)[too_far]] = False
        self.kept = set(self.task[candidate].tolist())

    def _places(self, candidate: np.ndarray) -> np.ndarray:
        """Where each kept task (in queue order) is served: the kept places, filled by score."""
        slots = self.place[candidate]
        rank = np.empty(len(slots), dtype=np.int64)
        rank[np.argsort(self.key[candidate], kind="stable")] = np.arange(len(slots))
        return slots[rank]

    def drop(self, tasks: set[int]) -> None:
        """Give up kept tasks (their gap had no room): they take their exact places, and the others
        are checked again against the tolerance."""
        if not self.kept & tasks:
            return
        self.candidate &= ~np.isin(self.task, list(tasks))
        self._settle()

    def served(self) -> list[int]:
        """The whole queue as Label Studio will serve it, label-first first."""
        out = list(self.queue)
        if self.kept:
            candidate = self.candidate
            by_score = np.argsort(self.key[candidate], kind="stable")
            for slot, task in zip(self.place[candidate].tolist(), self.task[candidate][by_score].tolist()):
                out[slot] = task
        return out


def _longest_decreasing(values: list[float]) -> list[int]:
    """Indices of one longest strictly decreasing subsequence (O(n log n), patience sorting)."""
    tails: list[float] = []  # tails[k]: smallest last negated value of an increasing run of length k+1
    tail_idx: list[int] = []
    parent = [-1] * len(values)
    for i, v in enumerate(values):
        key = -v
        k = bisect_left(tails, key)
        if k == len(tails):
            tails.append(key)
            tail_idx.append(i)
        else:
            tails[k] = key
            tail_idx[k] = i
        parent[i] = tail_idx[k - 1] if k > 0 else -1
    out: list[int] = []
    i = tail_idx[-1] if tail_idx else -1
    while i >= 0:
        out.append(i)
        i = parent[i]
    return out[::-1]


def _interpolate(order: list[int], kept: set[int], current: Mapping[int, float]) -> dict[int, float] | int:
    """Scores for every task: kept ones unchanged, the runs between them spread evenly.

    A run between two kept tasks takes ``hi - step * (m + 1)`` with ``step = (hi - lo) /
    (k + 1)`` for its ``m``-th of ``k`` tasks; a run at the top (no kept task above) reaches
    1.0 itself, ``1.0 - step * m`` with ``step = (1.0 - lo) / k``; below the last kept task
    ``lo`` is 0. When a run has no room (its scores would lie closer than MIN_GAP), returns
    instead the position of a kept neighbour to give up: the one below the first such run,
    else the one above. Vectorised: a million tasks take well under a second.
    """
    n = len(order)
    is_kept = np.zeros(n, dtype=bool)
    if kept:
        is_kept[np.fromiter(kept, dtype=np.int64, count=len(kept))] = True
    values = np.zeros(n, dtype=float)
    kept_at = np.flatnonzero(is_kept)
    values[kept_at] = np.fromiter((current[order[i]] for i in kept_at.tolist()), dtype=float, count=len(kept_at))
    place = np.arange(n, dtype=np.int64)
    above = np.maximum.accumulate(np.where(is_kept, place, -1))  # the last kept position at or before
    below = np.minimum.accumulate(np.where(is_kept, place, n)[::-1])[::-1]  # the first at or after
    free = ~is_kept
    if free.any():
        hi_pos, lo_pos, at = above[free], below[free], place[free]
        k = (lo_pos - hi_pos - 1).astype(float)  # the run's length
        m = (at - hi_pos - 1).astype(float)  # the task's index in its run
        lo = np.where(lo_pos < n, values[np.minimum(lo_pos, n - 1)], 0.0)
        top = hi_pos < 0
        hi = np.where(top, 1.0, values[np.maximum(hi_pos, 0)])
        step = np.where(top, (1.0 - lo) / k, (hi - lo) / (k + 1))
        crowded = step < MIN_GAP
        if crowded.any():
            first = int(np.argmax(crowded))
            return int(lo_pos[first]) if lo_pos[first] < n else int(hi_pos[first])
        values[free] = np.where(top, 1.0 - step * m, hi - step * (m + 1))
    return dict(zip(order, values.tolist()))
