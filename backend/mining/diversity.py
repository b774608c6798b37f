"""A diverse head of the queue: one rare concept does not fill the first twenty tasks.

The Pareto order puts the tasks of one rare concept next to each other (they share its
keyword, so they score alike), and an annotator labels near-identical tasks while other
rare things wait. ``diversify_head`` re-orders the head of the order, the first
``head`` tasks, by greedy coverage of their keywords:

    next = the task of the head with the largest  score x (weight of its keywords not
           yet shown) / (weight of all its keywords)

where score is the ranking's (n - position) / n (1 for its first task: every ranked
signal, uncertainty included, keeps its say) and a keyword weighs its confirmation,
df / (df + confirm_count(N)), as in the confirmed novelty: each keyword other tasks share
counts about once, a word seen once barely counts in a large project. A task whose keywords the head has
already shown waits; a task with a concept not shown yet keeps its score. When every task left repeats what was shown, coverage
starts afresh (a second round). Ties keep the ranking's order, so the result is
deterministic.

Only tasks that hold a rare keyword take part: one that few enough tasks share to fit in
the head (df <= head). A task whose rarest keyword is common (it is in the head by its
uncertainty, say) is never moved ahead of a task holding a rare keyword that the
ranking put before it: it follows as soon as every such task has been placed. Without
that, a common task's common words, not yet "shown", would win it a place ahead of a
second task of a rare concept, whose rare word the head had already shown.

Only the order *inside* the head changes: the set of tasks a budget of ``head`` takes is
the ranking's, so precision at that budget is unchanged, and smaller budgets see more
distinct concepts. Lazy greedy (a task's gain only falls as coverage grows, so a heap
re-checks a task only when it comes up): about O(head log head x keywords per task).
"""

from __future__ import annotations

import heapq

import numpy as np

from .keyword_index import IndexArrays
from .novelty import confirmation_weight

__all__ = ["diversify_head", "head_size", "holds_rare", "MAX_HEAD"]

#: Names the head's rule in the model version (Settings.ranking_fingerprint): a new rule
#: re-orders the head of every project. "rare-first": tasks without a rare keyword wait
#: for the rare-holding tasks ranked before them.
RULE_VERSION = "rare-first"

#: The head is at most this many tasks: what annotators meet first. The greedy runs in
#: Python: about 0.1 s for 2,000 tasks of 8 keywords, 0.4 s for 5,000, 1.6 s for 10,000.
MAX_HEAD = 2_000


def head_size(share: float, n_tasks: int) -> int:
    """How many tasks a HEAD_DIVERSITY share of ``n_tasks`` re-orders (0 when off)."""
    if share <= 0 or n_tasks < 2:
        return 0
    return min(MAX_HEAD, n_tasks, max(2, round(share * n_tasks)))


def holds_rare(arrays: IndexArrays, rows: np.ndarray, head: int) -> np.ndarray:
    """Per row of ``rows``: whether the task holds a keyword of df <= ``head``, one that
    few enough tasks share to fit in a head of that size."""
    rare = arrays.df <= head
    out = np.zeros(len(rows), dtype=bool)
    for i, r in enumerate(np.asarray(rows).tolist()):
        out[i] = bool(rare[arrays.keyword_ids[arrays.indptr[r] : arrays.indptr[r + 1]]].any())
    return out


def diversify_head(order: np.ndarray, arrays: IndexArrays, head: int, score: np.ndarray) -> np.ndarray:
    """``order`` (row indices, label-first first) with its first ``head`` rows re-ordered by coverage;
    ``score`` per row, larger = better (the ranking's)."""
    head = min(int(head), order.size)
    if head < 2:
        return order
    top_all = order[:head]
    rare = holds_rare(arrays, top_all, head)
    if rare.sum() < 2:
        return order
    picked_rare = _coverage_order(top_all[rare].tolist(), arrays, score)
    out = order.copy()
    out[:head] = _merge_common(top_all, rare, picked_rare)
    return out


def _merge_common(top: np.ndarray, rare: np.ndarray, rare_order: list[int]) -> np.ndarray:
    """The head's rows: the rare-holding ones in ``rare_order``, each common one right after
    the last rare-holding row the ranking put before it, in the ranking's order."""
    rare_rows = top[rare]
    placed_at = np.empty(len(rare_rows), dtype=np.int64)  # when each rare row is placed
    placed_at[np.asarray(rare_order, dtype=np.int64)] = np.arange(len(rare_rows))
    # a common row waits for every rare row ranked before it
    rare_before = np.cumsum(rare) - rare  # rare rows ahead of each head position
    waits_for = np.full(len(rare_rows) + 1, -1, dtype=np.int64)
    np.maximum.accumulate(np.r_[-1, placed_at], out=waits_for)
    common_pos = np.flatnonzero(~rare)
    release = waits_for[rare_before[common_pos]]
    # sort every row by (release time, kind, ranking position): a rare row placed at t
    # releases common rows with release t right after it
    keys_rare = [(int(t), 0, 0) for t in range(len(rare_rows))]
    keys_common = [(int(r), 1, int(p)) for r, p in zip(release, common_pos)]
    rows = [int(rare_rows[i]) for i in rare_order] + [int(top[p]) for p in common_pos]
    keys = keys_rare + keys_common
    return np.asarray([rows[i] for i in sorted(range(len(rows)), key=keys.__getitem__)], dtype=top.dtype)


def _coverage_order(top: list[int], arrays: IndexArrays, score: np.ndarray) -> list[int]:
    """Indices into ``top`` in greedy coverage order (the module's rule)."""
    head = len(top)
    weight = confirmation_weight(arrays)
    indptr, kw = arrays.indptr, arrays.keyword_ids
    words = [kw[indptr[r] : indptr[r + 1]].tolist() for r in top]
    totals = [float(weight[w].sum()) for w in words]
    scores = [float(score[r]) for r in top]
    covered: set[int] = set()

    def gain(i: int) -> float:
        if totals[i] <= 0:
            return 0.0
        new = sum(weight[k] for k in words[i] if k not in covered)
        return scores[i] * new / totals[i]

    heap = [(-gain(i), i) for i in range(head)]
    heapq.heapify(heap)
    picked: list[int] = []
    while heap:
        _, i = heapq.heappop(heap)
        g = gain(i)
        if heap and g < -heap[0][0]:
            heapq.heappush(heap, (-g, i))  # its gain fell since it was pushed: look again later
            continue
        if g <= 0 and covered and scores[i] > 0 and totals[i] > 0:
            # the best gain left is 0: every task left repeats what the head has shown.
            # A new round: coverage starts afresh and every gain is computed again (the
            # heap's values must stay upper bounds of the gains, which only fall in a round)
            covered = set()
            heap = [(-gain(j), j) for _, j in heap] + [(-gain(i), i)]
            heapq.heapify(heap)
            continue
        picked.append(i)
        covered.update(words[i])
    return picked
