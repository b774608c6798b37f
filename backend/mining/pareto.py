"""Pareto ranking of tasks over several signals (all maximised).

Front 0 holds the tasks no other task beats on every signal; front 1 those beaten only
by front 0, and so on. Fronts come from moocore's C core (O(n log n) for two signals,
front by front above that), run in a worker thread while the main thread computes the
per-signal ranks for the tie-break (moocore releases the GIL).

Inside a front the tasks are mutually non-dominated, so a tie-break is needed. We use
the Borda count: the sum over signals of each task's rank on that signal (the number of
tasks it strictly beats there), larger first, then the smaller id. Why:

* it depends only on the order of each signal, never on its scale, so the whole ranking
  is unchanged under any strictly increasing transform of any signal (entropy vs.
  margin, -log vs. 1/x novelty, probabilities vs. logits);
* it prefers balanced tasks (good on all signals) over tasks that are extreme on one
  signal and poor on another, which is what "long tail AND uncertain" asks for;
* it is O(n log n): one argsort per signal plus one stable sort, no double argsort.

Per-signal ranks are "min" ranks (ties share the lowest rank), so equal values never
order tasks; the final tie-break by id keeps the order deterministic.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import moocore
import numpy as np
from numpy.typing import ArrayLike

__all__ = ["pareto_fronts", "Ranking", "rank", "select", "signal_ranks"]

#: From this many rows on, rank() computes fronts in a worker thread.
PARALLEL_MIN_ROWS = 100_000


@dataclass(frozen=True)
class Ranking:
    """A labeling order. Arrays other than ``order`` are indexed by input row."""

    order: np.ndarray  # row indices, label-first first
    front: np.ndarray  # Pareto front per row, 0 = non-dominated
    position: np.ndarray  # 0-based place of each row in ``order``
    priority: np.ndarray  # in (0, 1]; 1 = label first (reversed when inverted)


def _as_matrix(X: ArrayLike) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"signals must be 1-D or 2-D (tasks x signals), got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("signals contain NaN; fill missing values first (signals.fill_missing)")
    return x


def _column_ranks(col: np.ndarray) -> tuple[np.ndarray, int]:
    """Min ranks (number of strictly smaller values) and the number of distinct values.

    One argsort, then a scatter of each tie group's start position: O(n log n).
    """
    n = col.shape[0]
    order = np.argsort(col)
    sorted_col = col[order]
    starts = np.empty(n, dtype=bool)
    starts[:1] = True
    np.not_equal(sorted_col[1:], sorted_col[:-1], out=starts[1:])
    group_start = np.where(starts, np.arange(n, dtype=np.int64), 0)
    np.maximum.accumulate(group_start, out=group_start)
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = group_start
    return ranks, int(starts.sum())


def signal_ranks(X: ArrayLike) -> np.ndarray:
    """Per-signal min ranks, int64 (n, m): larger = better on that signal."""
    x = _as_matrix(X)
    out = np.empty((x.shape[1], x.shape[0]), dtype=np.int64)
    for j, col in enumerate(np.ascontiguousarray(x.T)):
        out[j] = _column_ranks(col)[0]
    return out.T


def _fronts(x: np.ndarray) -> np.ndarray:
    """Fronts of a NaN-free float matrix, all columns maximised."""
    n, m = x.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if m == 1:
        # Fronts are the distinct values, best first: dense rank from the top.
        distinct, inverse = np.unique(x[:, 0], return_inverse=True)
        return (distinct.size - 1 - inverse.reshape(-1)).astype(np.int64)
    # Dominance depends only on each column's order, so moocore can work on the raw
    # values (negated: it minimises); "+ 0.0" turns -0.0 into 0.0 so zeros tie.
    negated = np.negative(x)
    negated += 0.0
    return moocore.pareto_rank(negated).astype(np.int64)


def pareto_fronts(X: ArrayLike) -> np.ndarray:
    """Front of each row (int64, 0 = non-dominated); every column is maximised.

    Equal points share a front; with one column, each distinct value is a front.
    """
    return _fronts(_as_matrix(X))


def _order(front: np.ndarray, borda: np.ndarray, ids: np.ndarray | None, m: int) -> np.ndarray:
    """Sort by (front ascending, Borda descending, id ascending).

    The three keys are packed into one unique int64 when it fits, so one unstable
    (SIMD) argsort does it; otherwise a lexsort.
    """
    n = front.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if ids is None or n < 2 or bool(np.all(ids[1:] > ids[:-1])):
        id_rank = np.arange(n, dtype=np.int64)  # rows already in id order
    else:
        id_rank = np.empty(n, dtype=np.int64)
        id_rank[np.argsort(ids, kind="stable")] = np.arange(n, dtype=np.int64)
    span = m * (n - 1) + 1  # Borda lies in [0, span)
    limit = np.iinfo(np.int64).max // n - 1
    if (int(front.max()) + 1) * span >= limit:
        return np.lexsort((id_rank, -borda, front))
    key = front * span + (span - 1 - borda)
    key *= n
    key += id_rank
    return np.argsort(key)


def rank(X: ArrayLike, ids: ArrayLike | None = None, invert: bool = False) -> Ranking:
    """Full labeling order: fronts first, Borda count inside a front, then id.

    ``priority`` is (n - position) / n, 1 for the first task; with ``invert`` it is
    (position + 1) / n, for consumers that take the lowest score first.
    """
    x = _as_matrix(X)
    n, m = x.shape
    id_arr = None if ids is None else np.asarray(ids)
    if id_arr is not None and id_arr.shape != (n,):
        raise ValueError(f"ids must have shape ({n},), got {id_arr.shape}")
    with ThreadPoolExecutor(max_workers=1) as pool:
        # moocore releases the GIL: fronts and per-signal ranks overlap on two cores.
        fronts = pool.submit(_fronts, x) if n >= PARALLEL_MIN_ROWS else None
        ranks = signal_ranks(x)
        borda = ranks.sum(axis=1) if m > 1 else ranks[:, 0]
        front = fronts.result() if fronts is not None else _fronts(x)
    order = _order(front, borda, id_arr, m)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n, dtype=np.int64)
    if invert:
        priority = (position + 1) / max(n, 1)
    else:
        priority = (n - position) / max(n, 1)
    return Ranking(order=order, front=front, position=position, priority=priority)


def select(X: ArrayLike, budget: int, ids: ArrayLike | None = None) -> np.ndarray:
    """Row indices of the ``budget`` tasks to label first.

    Whole fronts in order; only the last front taken is cut, by the tie-break.
    """
    budget = max(int(budget), 0)
    return rank(X, ids=ids).order[:budget]
