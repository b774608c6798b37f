"""Turning a new ranking into as few Label Studio writes as possible.

Label Studio sorts the tab by the prediction score, so only the *order* of the
written scores matters. After a re-rank most tasks keep their relative order,
so the planner keeps every task it can and rewrites only the rest:

1. Walk the new order (label-first first) and look at the scores already in
   Label Studio. The longest strictly decreasing subsequence of those scores
   can stay as it is: those tasks are already in the right order.
2. Every other task (new ones, and old ones out of place) gets a score
   interpolated between its nearest kept neighbours, so the whole sequence is
   strictly decreasing again.
3. Where a run has no room (a new task above one already at 1.0, or a gap
   split too often), a kept neighbour joins the run and is rewritten too.
4. New tasks go out in one bulk import. Old tasks out of place need one PATCH
   each (about 45 ms apiece against a real server), so when there are more
   than ``patch_limit`` of them, the plan is a *bump*: every task is written again in one
   bulk import under a new model-version generation, and switching
   ``project.model_version`` changes the whole order at once.

A first write has nothing kept and so gives the plain rank priorities
``(n - position) / n``.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Mapping, Sequence

MIN_GAP = 1e-9


@dataclass
class WritePlan:
    bump: bool
    scores: dict[int, float] = field(default_factory=dict)  # every task of the order -> its score after the write
    imports: dict[int, float] = field(default_factory=dict)  # tasks with no live prediction yet
    patches: dict[int, float] = field(default_factory=dict)  # tasks whose live prediction changes score
    kept: int = 0
    repaired: int = 0  # kept tasks moved anyway to make room (see ``plan``)


def rank_scores(order: Sequence[int]) -> dict[int, float]:
    """Plain priorities: the first task 1.0, the last 1/n."""
    n = len(order)
    return {int(t): (n - i) / n for i, t in enumerate(order)}


def plan(order: Sequence[int], written: Mapping[int, tuple[float, int | None]] | Mapping[int, float],
         patch_limit: int) -> WritePlan:
    """Plan the writes that make Label Studio's scores follow ``order`` (highest score first)."""
    order = [int(t) for t in order]
    if not order:
        return WritePlan(bump=False)
    current = {t: _score(v) for t, v in written.items()}
    positions = [i for i, t in enumerate(order) if t in current]
    kept_pos = _longest_decreasing([current[order[i]] for i in positions])
    kept = {positions[i] for i in kept_pos}
    repaired = 0
    while True:
        scores = _interpolate(order, kept, current)
        if isinstance(scores, dict):
            break
        # No room between two kept scores (a new task above a task already at 1.0, or a gap
        # split too often): move one kept neighbour too, which costs one PATCH, not a bump.
        kept.discard(scores)
        repaired += 1
        if len(positions) - len(kept) > patch_limit:
            return bump(order)
    patches = {t: scores[t] for i, t in enumerate(order) if t in current and i not in kept}
    if len(patches) > patch_limit:
        return bump(order)
    imports = {t: scores[t] for t in order if t not in current}
    return WritePlan(bump=False, scores=scores, imports=imports, patches=patches, kept=len(kept),
                     repaired=repaired)


def bump(order: Sequence[int]) -> WritePlan:
    """Every task written again, under a new generation."""
    order = [int(t) for t in order]
    scores = rank_scores(order)
    return WritePlan(bump=True, scores=scores, imports=dict(scores), patches={}, kept=0)


def _score(value: tuple[float, int | None] | float) -> float:
    return float(value[0]) if isinstance(value, tuple) else float(value)


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

    When a run has no room (its scores would lie closer than MIN_GAP), returns
    instead the position of a kept neighbour to give up: the one below the
    run, else the one above.
    """
    scores: dict[int, float] = {}
    n = len(order)
    i = 0
    hi: float | None = None  # score of the kept task above the current run; None = top of the order
    hi_pos = -1
    while i < n:
        if i in kept:
            hi, hi_pos = current[order[i]], i
            scores[order[i]] = hi
            i += 1
            continue
        j = i
        while j < n and j not in kept:
            j += 1
        lo = current[order[j]] if j < n else 0.0
        k = j - i
        if hi is None:
            # the top run may reach 1.0 itself: k steps from just above lo up to 1.0
            step = (1.0 - lo) / k
            values = [1.0 - step * m for m in range(k)]
        else:
            step = (hi - lo) / (k + 1)
            values = [hi - step * (m + 1) for m in range(k)]
        if step < MIN_GAP:
            return j if j < n else hi_pos
        for m, t in enumerate(order[i:j]):
            scores[t] = values[m]
        i = j
    return scores
