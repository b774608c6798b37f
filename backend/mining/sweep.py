"""Pareto fronts of two or three signals by a sweep, compiled with numba.

Works on each signal's min ranks (pareto.py computes them anyway for the tie-break):
dominance depends only on each signal's order, and integer ranks make the sort one
packed key and the comparisons exact.

* Sort the points best first on signal 0, ties by signal 1, then signal 2. Every point
  that beats p comes before p, and a point before p beats p exactly when it is at least
  as good on signals 1 and 2 and is not equal to p. Equal points are neighbours in this
  order and share a front; only the first of them is stored.
* Each front keeps its staircase on signals 1 and 2: for two signals the best signal-1
  rank so far, for three the points of the front that no other point of the front
  matches or beats on both, in a treap ordered by signal 1 (signal 2 then falls along
  it). A new point goes into its front's staircase and drops the points it covers.
* Fronts are nested (each point of front k is beaten by an earlier point of front
  k - 1), so p's front is the first whose staircase does not cover p: a monotone search
  over fronts, each probe one treap descent. The search starts from the front last
  found in p's cell of a grid over signals 1 and 2 (about 256 points a cell: 64 x 64
  cells for 1M; a guess that only saves probes) and gallops, then bisects.

Cost: O(n log n) for two signals; for three, O(n log n) probes of O(log n) each,
expected (the treap's priorities are a hash of the node's slot, unrelated to the data,
so sorted or adversarial-looking inputs do not unbalance it). 1M tasks x 3 uniform signals take about 0.7 s here; a
single front of 1M points whose staircase holds them all takes about 1.8 s.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["sweep_fronts", "sweep_fronts_margin", "sweep_order"]


def _compiled(**options):
    """numba's njit, releasing the GIL, cached on disk where the package is writable.

    The cache is a speed-up only (a first compile takes a few seconds): without a
    writable cache location numba refuses ``cache=True``, so compile per process then.
    """

    def decorate(fn):
        try:
            return njit(cache=True, nogil=True, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(cache=False, nogil=True, **options)(fn)

    return decorate


_INT64_MAX = np.iinfo(np.int64).max


@_compiled()
def _sweep_two(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    n = a.shape[0]
    front = np.empty(n, dtype=np.int64)
    # best_b[k]: the best second-signal rank in front k so far; non-increasing in k.
    best_b = np.empty(n, dtype=b.dtype)
    n_fronts = 0
    for i in range(n):
        if i > 0 and a[i] == a[i - 1] and b[i] == b[i - 1]:
            front[i] = front[i - 1]  # an equal point shares the front
            continue
        v = b[i]
        lo = 0
        hi = n_fronts
        while lo < hi:  # first front none of whose points is at least as good on b
            mid = (lo + hi) >> 1
            if best_b[mid] >= v:
                lo = mid + 1
            else:
                hi = mid
        if lo == n_fronts:
            n_fronts += 1
        best_b[lo] = v
        front[i] = lo
    return front


# Three signals: each front's staircase is a treap of node records in one int array,
# (key = rank on signal 1, val = rank on signal 2, left, right); along a staircase val
# falls as key rises. Slots of dropped nodes are reused, so the live nodes stay close
# together in memory; a node's heap priority is a hash of its slot.
_KEY, _VAL, _LEFT, _RIGHT = 0, 1, 2, 3
#: The grid that remembers the last front found in each cell (the search over fronts
#: starts there: a guess, the answer never depends on it) has about this many points a
#: cell (64 x 64 cells for 1M points), and at most this many cells per axis.
_GUESS_CELL_POINTS = 256
_GUESS_GRID_MAX = 1024


@_compiled(inline="always")
def _priority(slot):  # pragma: no cover - compiled
    h = np.uint32(slot) * np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@_compiled()
def _covers(nodes, t, y, z):  # pragma: no cover - compiled
    """Whether staircase t holds a point with key >= y and val >= z.

    Along the staircase val falls as key rises, so only the first key >= y matters.
    """
    best = -1
    while t != -1:
        if nodes[t, _KEY] >= y:
            best = t
            t = nodes[t, _LEFT]
        else:
            t = nodes[t, _RIGHT]
    return best != -1 and nodes[best, _VAL] >= z


@_compiled()
def _split_key(nodes, t, y):  # pragma: no cover - compiled
    """Split treap t into (keys <= y, keys > y), iteratively."""
    low = -1
    high = -1
    low_last = -1
    high_last = -1
    while t != -1:
        if nodes[t, _KEY] <= y:
            if low_last == -1:
                low = t
            else:
                nodes[low_last, _RIGHT] = t
            low_last = t
            t = nodes[t, _RIGHT]
        else:
            if high_last == -1:
                high = t
            else:
                nodes[high_last, _LEFT] = t
            high_last = t
            t = nodes[t, _LEFT]
    if low_last != -1:
        nodes[low_last, _RIGHT] = -1
    if high_last != -1:
        nodes[high_last, _LEFT] = -1
    return low, high


@_compiled()
def _keep_above(nodes, t, z, free, n_free):  # pragma: no cover - compiled
    """Keep the part of staircase t with val > z (a prefix by key); free the rest.

    Returns the kept root and the new length of the free-slot stack.
    """
    kept = -1
    kept_last = -1
    while t != -1:
        if nodes[t, _VAL] > z:  # t and its left subtree stay
            if kept_last == -1:
                kept = t
            else:
                nodes[kept_last, _RIGHT] = t
            kept_last = t
            t = nodes[t, _RIGHT]
        else:  # t and its right subtree go
            free[n_free] = t
            n_free += 1
            start = n_free
            if nodes[t, _RIGHT] != -1:
                free[n_free] = nodes[t, _RIGHT]
                n_free += 1
            while start < n_free:  # the dropped subtree, breadth first
                u = free[start]
                start += 1
                if nodes[u, _LEFT] != -1:
                    free[n_free] = nodes[u, _LEFT]
                    n_free += 1
                if nodes[u, _RIGHT] != -1:
                    free[n_free] = nodes[u, _RIGHT]
                    n_free += 1
            t = nodes[t, _LEFT]
    if kept_last != -1:
        nodes[kept_last, _RIGHT] = -1
    return kept, n_free


@_compiled()
def _join(nodes, a, b):  # pragma: no cover - compiled
    """Join treaps a and b (every key of a below every key of b), iteratively.

    The root with the higher priority stays on top; the rest of the join goes below it
    (to its right when it came from a, to its left when it came from b).
    """
    root = -1
    parent = -1
    attach_right = False
    while a != -1 and b != -1:
        if _priority(a) > _priority(b):
            node = a
            a = nodes[a, _RIGHT]
            below_right = True
        else:
            node = b
            b = nodes[b, _LEFT]
            below_right = False
        if parent == -1:
            root = node
        elif attach_right:
            nodes[parent, _RIGHT] = node
        else:
            nodes[parent, _LEFT] = node
        parent = node
        attach_right = below_right
    rest = a if a != -1 else b
    if parent == -1:
        return rest
    if attach_right:
        nodes[parent, _RIGHT] = rest
    else:
        nodes[parent, _LEFT] = rest
    return root


@_compiled()
def _first_uncovering_front(nodes, root, n_fronts, y, z, guess):  # pragma: no cover
    """The first front whose staircase does not cover (y, z) (n_fronts if none).

    Fronts that cover the point come first (they are nested), so this is a search over
    a monotone predicate: gallop from ``guess``, then bisect.
    """
    g = min(guess, n_fronts)
    if g < n_fronts and _covers(nodes, root[g], y, z):
        lo = g + 1  # answer in [lo, hi]
        hi = lo
        step = 1
        while hi < n_fronts and _covers(nodes, root[hi], y, z):
            lo = hi + 1
            hi = lo + step
            step *= 2
        hi = min(hi, n_fronts)
    else:
        hi = g
        lo = hi - 1
        step = 1
        while lo >= 0 and not _covers(nodes, root[lo], y, z):
            hi = lo
            lo = hi - 1 - step
            step *= 2
        lo = max(lo + 1, 0)
    while lo < hi:
        mid = (lo + hi) >> 1
        if _covers(nodes, root[mid], y, z):
            lo = mid + 1
        else:
            hi = mid
    return lo


@_compiled()
def _sweep_three(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:  # pragma: no cover
    n = a.shape[0]
    front = np.empty(n, dtype=np.int64)
    if n == 0:
        return front
    nodes = np.empty((n, 4), dtype=b.dtype)
    free = np.empty(n, dtype=b.dtype)  # stack of reusable slots
    n_free = 0
    n_slots = 0
    root = np.empty(n, dtype=b.dtype)  # staircase of each front
    n_fronts = 0
    span = max(b.max(), c.max()) + 1
    grid = min(max(np.int64(np.sqrt(n / _GUESS_CELL_POINTS)), 1), _GUESS_GRID_MAX)
    guess = np.zeros(grid * grid, dtype=np.int64)
    for i in range(n):
        if i > 0 and a[i] == a[i - 1] and b[i] == b[i - 1] and c[i] == c[i - 1]:
            front[i] = front[i - 1]  # an equal point shares the front (and is not stored)
            continue
        y = b[i]
        z = c[i]
        cell = (np.int64(y) * grid // span) * grid + np.int64(z) * grid // span
        k = _first_uncovering_front(nodes, root, n_fronts, y, z, guess[cell])
        guess[cell] = k
        front[i] = k
        if k == n_fronts:
            root[k] = -1
            n_fronts += 1
        # front k does not cover the point (that is how k was found): add it to k's staircase
        root[k], n_free, n_slots = _staircase_add(nodes, root[k], y, z, free, n_free, n_slots)
    return front


def _packed_best_first(ranks: np.ndarray) -> np.ndarray:
    """One int64 key per row, ascending = best first by the rows of ``ranks`` in turn."""
    m, n = ranks.shape
    key = np.zeros(n, dtype=np.int64)
    for j in range(m):  # digits (n - 1 - rank) in base n
        key *= n
        key += n - 1
        key -= ranks[j]
    return key


def sweep_order(ranks: np.ndarray) -> np.ndarray:
    """Row order best first on signal 0, then 1, then 2 (ranks: (m, n) int64 in [0, n)).

    One argsort of a packed int64 key where n ** m fits (three signals: n < 2.1M);
    beyond, the key packs the first m - 1 signals and only the rows tied on it are
    sorted again with the last signal (rare with continuous signals).
    """
    m, n = ranks.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if float(n) ** m < _INT64_MAX:
        return np.argsort(_packed_best_first(ranks))
    if float(n) ** (m - 1) >= _INT64_MAX:
        return np.lexsort(tuple(-ranks[j] for j in range(m - 1, -1, -1)))
    head = _packed_best_first(ranks[:-1])
    order = np.argsort(head)
    sorted_head = head[order]
    tied = np.zeros(n, dtype=bool)
    np.equal(sorted_head[1:], sorted_head[:-1], out=tied[1:])
    tied[:-1] |= tied[1:]
    places = np.flatnonzero(tied)  # whole tie groups, in key order
    if places.size:
        rows = order[places]
        order[places] = rows[np.lexsort((-ranks[-1][rows], head[rows]))]
    return order


def sweep_fronts(ranks: np.ndarray) -> np.ndarray:
    """Front of each row (int64) from per-signal min ranks, shape (m, n), m = 2 or 3."""
    m, n = ranks.shape
    if m not in (2, 3):
        raise ValueError(f"the sweep takes 2 or 3 signals, got {m}")
    order = sweep_order(ranks)
    dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    cols = [ranks[j][order].astype(dtype) for j in range(m)]
    if m == 2:
        swept = _sweep_two(cols[0], cols[1])
    else:
        swept = _sweep_three(cols[0], cols[1], cols[2])
    front = np.empty(n, dtype=np.int64)
    front[order] = swept
    return front


# --- Dominance by a margin ------------------------------------------------------------
#
# q beats p by a margin when q is at least as good on every signal and better by more
# than that signal's margin on one of them (pareto.py says why). The relation is a strict
# partial order (if q beats p by a margin on signal j and r is at least as good as q
# everywhere, r beats p by a margin on j), so fronts are nested as before and the same
# sweep finds them; only the test "does front k hold a point that beats p" changes. On
# signal j a point q is better than p by more than the margin exactly when
# rank_j(q) >= threshold_j(p), the number of values at most p's value plus the margin
# (pareto.margin_thresholds). With every margin 0 the fronts are the exact ones.
#
# Points come best first on signal 0, so every point already swept is at least as good
# as p there; the ones better by more than the margin on signal 0 are those whose rank
# reaches p's threshold, a prefix of the sweep that only grows. Each front therefore
# keeps two staircases: one of all its points (to find a point better by the margin on
# signal 1 or 2) and one of the points of that prefix (at least as good on 1 and 2 is
# enough for them).


@_compiled()
def _single_margin(thr: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Fronts of one signal, points sorted best first; ``thr`` their thresholds.

    The points better than p by more than the margin are the first n - thr[p] of the
    order, and fronts only grow along it, so p's front is one more than the front of the
    last of them (0 when there is none)."""
    n = thr.shape[0]
    front = np.empty(n, dtype=np.int64)
    for i in range(n):
        ahead = n - thr[i]
        front[i] = 0 if ahead <= 0 else front[ahead - 1] + 1
    return front


@_compiled()
def _sweep_two_margin(a, b, ta, tb):  # pragma: no cover - compiled
    n = a.shape[0]
    front = np.empty(n, dtype=np.int64)
    best_all = np.empty(n, dtype=np.int64)  # best rank on signal 1 among front k's points
    best_ahead = np.empty(n, dtype=np.int64)  # same, among those better by the margin on 0
    n_fronts = 0
    ahead = 0  # points [0, ahead) of the sweep are in best_ahead
    for i in range(n):
        while ahead < i and a[ahead] >= ta[i]:
            k = front[ahead]
            if b[ahead] > best_ahead[k]:
                best_ahead[k] = b[ahead]
            ahead += 1
        if i > 0 and a[i] == a[i - 1] and b[i] == b[i - 1]:
            front[i] = front[i - 1]
            continue
        lo = 0
        hi = n_fronts
        while lo < hi:  # first front holding no point that beats p by a margin
            mid = (lo + hi) >> 1
            if best_all[mid] >= tb[i] or best_ahead[mid] >= b[i]:
                lo = mid + 1
            else:
                hi = mid
        if lo == n_fronts:
            best_all[lo] = -1
            best_ahead[lo] = -1
            n_fronts += 1
        if b[i] > best_all[lo]:
            best_all[lo] = b[i]
        front[i] = lo
    return front


@_compiled()
def _staircase_insert(nodes, root, y, z, free, n_free, n_slots):  # pragma: no cover
    """Put (y, z) into staircase ``root`` unless a point there matches or beats it on
    both; drop the points it covers. Returns (root, n_free, n_slots)."""
    if _covers(nodes, root, y, z):
        return root, n_free, n_slots
    return _staircase_add(nodes, root, y, z, free, n_free, n_slots)


@_compiled(inline="always")
def _staircase_add(nodes, root, y, z, free, n_free, n_slots):  # pragma: no cover - compiled
    """Put (y, z), which no point of staircase ``root`` covers, into it and drop the points it
    covers: those with key <= y and val <= z (a run just below y; points with key > y have
    val < z, or they would cover it). Returns (root, n_free, n_slots)."""
    low, high = _split_key(nodes, root, y)
    low, n_free = _keep_above(nodes, low, z, free, n_free)
    if n_free > 0:
        n_free -= 1
        slot = free[n_free]
    else:
        slot = n_slots
        n_slots += 1
    nodes[slot, _KEY] = y
    nodes[slot, _VAL] = z
    nodes[slot, _LEFT] = -1
    nodes[slot, _RIGHT] = -1
    return _join(nodes, _join(nodes, low, slot), high), n_free, n_slots


@_compiled(inline="always")
def _front_beats(nodes, every, ahead, k, y, z, ty, tz):  # pragma: no cover - compiled
    """Whether front k holds a point that beats (y, z) (p's ranks on signals 1, 2; ty, tz
    its thresholds) by a margin: better by it on signal 1 or 2, or on signal 0."""
    return (_covers(nodes, every[k], ty, z) or _covers(nodes, every[k], y, tz)
            or _covers(nodes, ahead[k], y, z))


@_compiled()
def _first_unbeaten_front(nodes, every, ahead, n_fronts, y, z, ty, tz, guess):  # pragma: no cover
    """The first front holding no point that beats p by a margin (n_fronts if none): the
    predicate holds for a prefix of the fronts (they are nested), so gallop from
    ``guess``, then bisect, as _first_uncovering_front does."""
    g = min(guess, n_fronts)
    if g < n_fronts and _front_beats(nodes, every, ahead, g, y, z, ty, tz):
        lo = g + 1
        hi = lo
        step = 1
        while hi < n_fronts and _front_beats(nodes, every, ahead, hi, y, z, ty, tz):
            lo = hi + 1
            hi = lo + step
            step *= 2
        hi = min(hi, n_fronts)
    else:
        hi = g
        lo = hi - 1
        step = 1
        while lo >= 0 and not _front_beats(nodes, every, ahead, lo, y, z, ty, tz):
            hi = lo
            lo = hi - 1 - step
            step *= 2
        lo = max(lo + 1, 0)
    while lo < hi:
        mid = (lo + hi) >> 1
        if _front_beats(nodes, every, ahead, mid, y, z, ty, tz):
            lo = mid + 1
        else:
            hi = mid
    return lo


@_compiled()
def _sweep_three_margin(a, b, c, ta, tb, tc):  # pragma: no cover - compiled
    n = a.shape[0]
    front = np.empty(n, dtype=np.int64)
    if n == 0:
        return front
    nodes = np.empty((2 * n, 4), dtype=b.dtype)  # both staircases of every front
    free = np.empty(2 * n, dtype=b.dtype)
    n_free = 0
    n_slots = 0
    every = np.empty(n, dtype=b.dtype)
    ahead_root = np.empty(n, dtype=b.dtype)
    n_fronts = 0
    ahead = 0
    span = max(b.max(), c.max()) + 1
    grid = min(max(np.int64(np.sqrt(n / _GUESS_CELL_POINTS)), 1), _GUESS_GRID_MAX)
    guess = np.zeros(grid * grid, dtype=np.int64)  # as in _sweep_three: a start, never the answer
    for i in range(n):
        while ahead < i and a[ahead] >= ta[i]:
            k = front[ahead]
            ahead_root[k], n_free, n_slots = _staircase_insert(
                nodes, ahead_root[k], b[ahead], c[ahead], free, n_free, n_slots)
            ahead += 1
        if i > 0 and a[i] == a[i - 1] and b[i] == b[i - 1] and c[i] == c[i - 1]:
            front[i] = front[i - 1]
            continue
        y = b[i]
        z = c[i]
        cell = (np.int64(y) * grid // span) * grid + np.int64(z) * grid // span
        lo = _first_unbeaten_front(nodes, every, ahead_root, n_fronts, y, z, tb[i], tc[i], guess[cell])
        guess[cell] = lo
        if lo == n_fronts:
            every[lo] = -1
            ahead_root[lo] = -1
            n_fronts += 1
        every[lo], n_free, n_slots = _staircase_insert(nodes, every[lo], y, z, free, n_free, n_slots)
        front[i] = lo
    return front


def sweep_fronts_margin(ranks: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fronts under dominance by a margin, from per-signal min ranks and thresholds, both
    (m, n), m = 1, 2 or 3: q beats p by a margin on signal j when
    ``ranks[j, q] >= thresholds[j, p]``."""
    m, n = ranks.shape
    if m not in (1, 2, 3):
        raise ValueError(f"the margin sweep takes 1 to 3 signals, got {m}")
    if thresholds.shape != ranks.shape:
        raise ValueError("thresholds must have the shape of the ranks")
    order = sweep_order(ranks)
    dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64  # thresholds reach n
    cols = [ranks[j][order].astype(dtype) for j in range(m)]
    thr = [thresholds[j][order].astype(dtype) for j in range(m)]
    if m == 1:
        swept = _single_margin(thr[0])
    elif m == 2:
        swept = _sweep_two_margin(cols[0], cols[1], thr[0], thr[1])
    else:
        swept = _sweep_three_margin(cols[0], cols[1], cols[2], thr[0], thr[1], thr[2])
    front = np.empty(n, dtype=np.int64)
    front[order] = swept
    return front
