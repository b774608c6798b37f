"""Pareto ranking of tasks over several signals (all maximised).

Front 0 holds the tasks no other task beats on every signal; front 1 those beaten only
by front 0, and so on. A task beats another when it is at least as good on every signal
and strictly better on one; equal points share a front.

Fronts of two and three signals come from a sweep compiled with numba (sweep.py, which
says how) on each signal's min ranks, computed here anyway for the tie-break: the points
are swept best first on one signal while each front keeps a staircase of the others,
and each point's front is found by a search over the nested fronts. O(n log^2 n)
expected whatever the data; the whole ranking of 1M tasks on three signals takes about
1.3 s on this project's 2-core machine, where moocore, which peels fronts one by one
above two signals, took 5-10 s.

Four or more signals go to moocore's C core (front by front).

Dominance by a margin (``margins``, what ``mining.prioritise`` ranks by): a task beats another
only when it is at least as good on every signal and better by more than that signal's
margin on one (``signal_margins``: 5% of the spread of its central values). Exact
dominance lets a hair decide: of six tasks tied on the rarest thing in a project, the one
whose second signal is higher by 0.06 beats the other five, and they fall behind every
task that is first on that second signal alone. The relation is still a strict partial
order, so the same sweep finds its fronts (sweep.py, ``sweep_fronts_margin``); with
margins 0 it is exact dominance. ``informative_columns`` says which signals are worth
ranking by at all: a nearly constant one orders tasks by its noise, a repeated one counts
twice in the Borda count. The margins are taken on the values' scale, so the invariance
below holds for ``rank`` without margins, not for a ranking with them.

Inside a front the tasks are mutually non-dominated, so a tie-break is needed. We use
the Borda count: the sum over signals of each task's rank on that signal (the number of
tasks it strictly beats there), larger first. Why:

* it depends only on the order of each signal, never on its scale, so the whole ranking
  is unchanged under any strictly increasing transform of any signal (entropy vs.
  margin, -log vs. 1/x novelty, probabilities vs. logits);
* it prefers balanced tasks (good on all signals) over tasks that are extreme on one
  signal and poor on another, which is what "long tail AND uncertain" asks for;
* it is O(n log n): one argsort per signal plus one sort, no double argsort.

Per-signal ranks are "min" ranks (ties share the lowest rank), so equal values never
order tasks. Tasks equal on front and Borda count go in a fixed pseudo-random order
derived from their ids (``id_tie_keys``), never in id order: ids follow upload order
(one folder, one camera, one day), so "smaller id first" would hand every tie to the
same part of the data set. The keys are a 64-bit integer mix of integer ids and a
BLAKE2b digest of string ids, so the order is the same in every process, on every
platform and under any ``PYTHONHASHSEED``, on the server and offline alike.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import moocore
import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "pareto_fronts",
    "Ranking",
    "informative_columns",
    "margin_thresholds",
    "rank",
    "rule_fingerprint",
    "select",
    "signal_margins",
    "signal_ranks",
    "id_tie_keys",
]

#: From this many rows on, rank() sweeps the fronts in a worker thread.
PARALLEL_MIN_ROWS = 100_000

#: Most signals the compiled sweep (sweep.py) handles; more go to moocore.
SWEEP_MAX_SIGNALS = 3

#: Dominance by a margin: a task beats another only when it is better by more than this
#: share of a signal's spread (between its MARGIN_QUANTILES) on at least one signal.
MARGIN_SHARE = 0.05
MARGIN_QUANTILES = (0.02, 0.98)
#: A column whose values all lie within this share of their size is nearly constant and
#: is not ranked by (informative_columns).
NEAR_CONSTANT = 0.01

_INT64_MAX = np.iinfo(np.int64).max


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


def _signal_ranks_by_column(x: np.ndarray) -> np.ndarray:
    """Min ranks, int64 (m, n): one contiguous row per signal."""
    out = np.empty((x.shape[1], x.shape[0]), dtype=np.int64)
    for j, col in enumerate(np.ascontiguousarray(x.T)):
        out[j] = _column_ranks(col)[0]
    return out


def signal_ranks(X: ArrayLike) -> np.ndarray:
    """Per-signal min ranks, int64 (n, m): larger = better on that signal."""
    return _signal_ranks_by_column(_as_matrix(X)).T


# --- Fronts -----------------------------------------------------------------------


def _fronts_moocore(x: np.ndarray) -> np.ndarray:
    # Dominance depends only on each column's order, so moocore can work on the raw
    # values (negated: it minimises); "+ 0.0" turns -0.0 into 0.0 so zeros tie.
    negated = np.negative(x)
    negated += 0.0
    return moocore.pareto_rank(negated).astype(np.int64)


def _fronts(x: np.ndarray, ranks: np.ndarray | None = None) -> np.ndarray:
    """Fronts of a NaN-free float matrix, all columns maximised.

    ``ranks``: the columns' min ranks, (m, n), where the caller has them already.
    """
    n, m = x.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if m == 1:
        # Fronts are the distinct values, best first: dense rank from the top.
        distinct, inverse = np.unique(x[:, 0], return_inverse=True)
        return (distinct.size - 1 - inverse.reshape(-1)).astype(np.int64)
    if m > SWEEP_MAX_SIGNALS:
        return _fronts_moocore(x)
    if ranks is None:
        ranks = _signal_ranks_by_column(x)
    from .sweep import sweep_fronts  # compiled on first use; numba loads only then

    return sweep_fronts(ranks)


def pareto_fronts(X: ArrayLike, margins: ArrayLike | None = None) -> np.ndarray:
    """Front of each row (int64, 0 = non-dominated); every column is maximised.

    Equal points share a front; with one column, each distinct value is a front.
    ``margins``: dominance by a margin (see :func:`signal_margins`); None = exact.
    """
    x = _as_matrix(X)
    if margins is None:
        return _fronts(x)
    return _fronts_margin(x, *_ranks_and_thresholds(x, _as_margins(margins, x.shape[1])))


# --- Dominance by a margin ------------------------------------------------------------


def signal_margins(X: ArrayLike) -> np.ndarray:
    """Each column's margin: MARGIN_SHARE of the spread of its central values.

    The spread is the distance between the MARGIN_QUANTILES (2% and 98%), so a handful
    of outliers does not widen it, and a column whose central values are all equal (a
    rare flag) gets margin 0: any difference there counts.
    """
    x = _as_matrix(X)
    if x.shape[0] == 0:
        return np.zeros(x.shape[1])
    lo, hi = np.quantile(x, MARGIN_QUANTILES, axis=0)
    spread = hi - lo
    spread[~np.isfinite(spread)] = 0.0
    return MARGIN_SHARE * spread


def margin_thresholds(x: np.ndarray, margins: np.ndarray) -> np.ndarray:
    """(m, n) int64: per column, how many values are at most each value plus the margin.

    A row q is better than row p by more than the margin on column j exactly when q's min
    rank on j reaches ``thresholds[j, p]``: what the margin sweep compares.
    """
    return _ranks_and_thresholds(x, margins)[1]


def _ranks_and_thresholds(x: np.ndarray, margins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min ranks and margin thresholds, both (m, n) int64, from one argsort per column."""
    n, m = x.shape
    ranks = np.empty((m, n), dtype=np.int64)
    thresholds = np.empty((m, n), dtype=np.int64)
    for j in range(m):
        order = np.argsort(x[:, j])
        ascending = x[order, j]
        # min ranks: where each value's tie group starts (as _column_ranks)
        starts = np.empty(n, dtype=bool)
        starts[:1] = True
        np.not_equal(ascending[1:], ascending[:-1], out=starts[1:])
        group_start = np.where(starts, np.arange(n, dtype=np.int64), 0)
        np.maximum.accumulate(group_start, out=group_start)
        ranks[j, order] = group_start
        # queries in ascending order search a sorted array fast (no random probes)
        thresholds[j, order] = np.searchsorted(ascending, ascending + margins[j], side="right")
    return ranks, thresholds


def rule_fingerprint() -> dict[str, Any]:
    """The constants of the dominance rule that a model version must cover: a new value
    re-orders every project (Settings.ranking_fingerprint)."""
    return {"margin_share": MARGIN_SHARE, "margin_quantiles": list(MARGIN_QUANTILES),
            "near_constant": NEAR_CONSTANT, "duplicates": "same order"}


def _as_margins(margins: ArrayLike, m: int) -> np.ndarray:
    margin = np.asarray(margins, dtype=np.float64).reshape(-1)
    if margin.shape != (m,) or not np.all(np.isfinite(margin)) or np.any(margin < 0):
        raise ValueError(f"margins must be {m} finite values >= 0, got {margins!r}")
    return margin


def _fronts_margin(x: np.ndarray, ranks: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fronts under dominance by a margin (``thresholds``: margin_thresholds); above
    SWEEP_MAX_SIGNALS, exact fronts (moocore)."""
    n, m = x.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if m > SWEEP_MAX_SIGNALS:
        return _fronts_moocore(x)
    from .sweep import sweep_fronts_margin

    return sweep_fronts_margin(ranks, thresholds)


def informative_columns(X: ArrayLike) -> list[int]:
    """The columns worth ranking by, in their order: a column left out carries nothing the
    others do not.

    * **Nearly constant**: its values lie within NEAR_CONSTANT (1%) of their size
      (max - min <= NEAR_CONSTANT * max(|min|, |max|); a constant column too). Any
      difference there is noise, and exact dominance would still let it split fronts.
      Judged against the values' size, so it suits the signals mined here (novelty,
      uncertainties, losses: 0 means "nothing"); a field that carries an offset should be
      given as its deviation.
    * **A duplicate**: it orders the rows exactly as an earlier kept column does (the same
      min ranks: a copy, or any strictly increasing transform of it). Fronts would not
      change, but it would count twice in the Borda tie-break.

    The first column is kept when nothing else is, so a ranking always has a column.
    """
    x = _as_matrix(X)
    n, m = x.shape
    if n == 0:
        return list(range(min(m, 1)))
    kept: list[int] = []
    kept_ranks: list[np.ndarray] = []
    for j in range(m):
        col = x[:, j]
        lo, hi = float(col.min()), float(col.max())
        size = max(abs(lo), abs(hi))
        nearly_constant = (hi - lo <= NEAR_CONSTANT * size) if np.isfinite(size) else lo == hi
        if nearly_constant:
            continue
        ranks = _column_ranks(col)[0]
        if any(np.array_equal(ranks, other) for other in kept_ranks):
            continue
        kept.append(j)
        kept_ranks.append(ranks)
    return kept or [0]


# --- Ties: a fixed pseudo-random order from the ids ---------------------------------


def _mix64(v: np.ndarray) -> np.ndarray:
    """A bijective 64-bit integer mix (the SplitMix64 finaliser), on uint64 arrays."""
    z = v + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_MASK64 = (1 << 64) - 1


def _key_of_id(task_id: object) -> int:
    """One id's tie key: integers as _mix64 does it (in Python ints), others by BLAKE2b."""
    if isinstance(task_id, (int, np.integer)) and not isinstance(task_id, (bool, np.bool_)):
        value = int(task_id)
        if -(2**63) <= value < 2**64:
            z = (value + 0x9E3779B97F4A7C15) & _MASK64
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
            return z ^ (z >> 31)
    text = task_id if isinstance(task_id, str) else repr(task_id)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def id_tie_keys(ids: ArrayLike) -> np.ndarray:
    """uint64 tie key of each id: equal on every process, platform and hash seed.

    Integer ids (any numpy integer dtype or Python int) go through a bijective 64-bit
    mix of their value modulo 2**64, so distinct integer ids never share a key; string
    ids (and anything else, by its repr) through an 8-byte BLAKE2b digest of UTF-8.
    """
    arr = np.asarray(ids)
    if arr.dtype.kind in "iu":
        return _mix64(arr.astype(np.uint64))  # int64 -> uint64 wraps (two's complement)
    values = arr.tolist()
    return np.fromiter((_key_of_id(v) for v in values), dtype=np.uint64, count=len(values))


def _tie_rank(ids: np.ndarray | None, n: int) -> np.ndarray:
    """Each row's place in the tie order: by id tie key, equal keys by id, then by row."""
    keys = id_tie_keys(np.arange(n, dtype=np.int64) if ids is None else ids)
    by_key = np.argsort(keys)  # unstable is fine while the keys are distinct
    sorted_keys = keys[by_key]
    clash = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if clash.size:  # repeated ids, or distinct non-integer ids with one key: by id, row
        by_key = np.argsort(keys, kind="stable")
        values = ids.tolist() if ids is not None else list(range(n))
        for start in np.unique(np.searchsorted(sorted_keys, sorted_keys[clash])):
            stop = int(np.searchsorted(sorted_keys, sorted_keys[start], side="right"))
            group = by_key[start:stop].tolist()
            group.sort(key=lambda row: (type(values[row]).__name__, str(values[row]), row))
            by_key[start:stop] = group
    tie_rank = np.empty(n, dtype=np.int64)
    tie_rank[by_key] = np.arange(n, dtype=np.int64)
    return tie_rank


def _order(front: np.ndarray, borda: np.ndarray, tie_rank: np.ndarray, m: int) -> np.ndarray:
    """Sort by (front ascending, Borda descending, tie rank ascending).

    The three keys are packed into one unique int64 when it fits, so one unstable
    (SIMD) argsort does it; otherwise a lexsort.
    """
    n = front.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    span = m * (n - 1) + 1  # Borda lies in [0, span)
    limit = _INT64_MAX // n - 1
    if (int(front.max()) + 1) * span >= limit:
        return np.lexsort((tie_rank, -borda, front))
    key = front * span + (span - 1 - borda)
    key *= n
    key += tie_rank
    return np.argsort(key)


def rank(X: ArrayLike, ids: ArrayLike | None = None, invert: bool = False,
         margins: ArrayLike | None = None) -> Ranking:
    """Full labeling order: fronts first, Borda count inside a front, then the id tie key.

    Without ``ids`` the row numbers stand for the ids. ``priority`` is (n - position) / n,
    1 for the first task; with ``invert`` it is (position + 1) / n, for consumers that
    take the lowest score first. ``margins`` (one per column, >= 0; see
    :func:`signal_margins`): fronts by dominance by a margin, with up to three columns;
    None: exact dominance. The Borda count and the ties are the same either way.
    """
    x = _as_matrix(X)
    n, m = x.shape
    id_arr = None if ids is None else np.asarray(ids)
    if id_arr is not None and id_arr.shape != (n,):
        raise ValueError(f"ids must have shape ({n},), got {id_arr.shape}")
    if margins is not None:
        ranks, thresholds = _ranks_and_thresholds(x, _as_margins(margins, m))
        with ThreadPoolExecutor(max_workers=1) as pool:
            # the sweep releases the GIL: it overlaps with the tie order
            fronts = pool.submit(_fronts_margin, x, ranks, thresholds) if n >= PARALLEL_MIN_ROWS else None
            borda = ranks.sum(axis=0) if m > 1 else ranks[0]
            tie_rank = _tie_rank(id_arr, n)
            front = fronts.result() if fronts is not None else _fronts_margin(x, ranks, thresholds)
        return _ranking(_order(front, borda, tie_rank, m), front, invert)
    with ThreadPoolExecutor(max_workers=1) as pool:
        if m > SWEEP_MAX_SIGNALS:
            # moocore releases the GIL: its fronts and the ranks overlap on two cores.
            fronts = pool.submit(_fronts, x) if n >= PARALLEL_MIN_ROWS else None
            ranks = _signal_ranks_by_column(x)
        else:
            ranks = _signal_ranks_by_column(x)
            # The sweep releases the GIL too: it overlaps with the tie order.
            fronts = pool.submit(_fronts, x, ranks) if n >= PARALLEL_MIN_ROWS else None
        borda = ranks.sum(axis=0) if m > 1 else ranks[0]
        tie_rank = _tie_rank(id_arr, n)
        front = fronts.result() if fronts is not None else _fronts(x, ranks)
    return _ranking(_order(front, borda, tie_rank, m), front, invert)


def _ranking(order: np.ndarray, front: np.ndarray, invert: bool) -> Ranking:
    """The Ranking of ``order``: positions, and priorities from them."""
    n = order.shape[0]
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
