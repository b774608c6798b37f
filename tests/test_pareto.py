"""Pareto fronts against a brute-force reference; ranking invariances and budgets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backend.mining.pareto as pareto_module
from backend.mining.pareto import _order, pareto_fronts, rank, select, signal_ranks


def brute_force_fronts(X: np.ndarray) -> np.ndarray:
    """O(n^2) per front: peel off the points nobody remaining dominates."""
    n = X.shape[0]
    front = np.full(n, -1)
    remaining = set(range(n))
    level = 0
    while remaining:
        current = {
            i
            for i in remaining
            if not any(
                np.all(X[j] >= X[i]) and np.any(X[j] > X[i]) for j in remaining if j != i
            )
        }
        for i in current:
            front[i] = level
        remaining -= current
        level += 1
    return front


def matrices(min_rows: int = 1, max_rows: int = 40):
    """Small matrices over a few values, so ties and duplicate points are common."""
    return st.integers(1, 4).flatmap(
        lambda m: st.lists(
            st.lists(st.integers(0, 4), min_size=m, max_size=m),
            min_size=min_rows,
            max_size=max_rows,
        )
    ).map(lambda rows: np.array(rows, dtype=np.float64))


@settings(max_examples=150, deadline=None)
@given(matrices())
def test_fronts_equal_brute_force(X):
    assert np.array_equal(pareto_fronts(X), brute_force_fronts(X))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60))
def test_fronts_equal_brute_force_continuous_two_columns(values):
    rng = np.random.default_rng(len(values))
    X = np.column_stack([values, rng.permutation(values)])
    assert np.array_equal(pareto_fronts(X), brute_force_fronts(X))


def test_duplicate_points_share_a_front():
    X = np.array([[1, 1], [1, 1], [2, 0], [0, 0], [0, 0]], dtype=float)
    assert pareto_fronts(X).tolist() == [0, 0, 0, 1, 1]


def test_single_signal_fronts_are_distinct_values():
    x = np.array([0.5, 0.1, 0.5, 0.9, 0.1])
    assert pareto_fronts(x).tolist() == [1, 2, 1, 0, 2]
    r = rank(x, ids=[10, 11, 12, 13, 14])
    assert r.order.tolist() == [3, 0, 2, 1, 4]  # equal values: smaller id first


TRANSFORMS = [
    lambda x: np.exp(x / 2.0),
    lambda x: x**3 + 7.0,
    lambda x: 2.5 * x - 1.0,
    lambda x: np.log1p(x - x.min()) if x.size else x,
]


@settings(max_examples=80, deadline=None)
@given(matrices(), st.integers(0, 3), st.integers(0, 3), st.integers(0, 2**31 - 1))
def test_ranking_invariant_under_increasing_transforms(X, which, column, seed):
    column %= X.shape[1]
    ids = np.random.default_rng(seed).permutation(X.shape[0]) * 7 + 3
    before = rank(X, ids=ids)
    Y = X.copy()
    Y[:, column] = TRANSFORMS[which](Y[:, column])
    after = rank(Y, ids=ids)
    assert np.array_equal(before.order, after.order)
    assert np.array_equal(before.front, after.front)
    assert np.array_equal(before.priority, after.priority)


@settings(max_examples=60, deadline=None)
@given(matrices(min_rows=2), st.integers(0, 2**31 - 1))
def test_ranking_follows_ids_not_row_positions(X, seed):
    """Shuffling the rows (with their ids) yields the same order of ids."""
    ids = np.arange(X.shape[0]) * 5 + 100
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    a = rank(X, ids=ids)
    b = rank(X[perm], ids=ids[perm])
    assert np.array_equal(ids[a.order], ids[perm][b.order])


@settings(max_examples=60, deadline=None)
@given(matrices())
def test_order_is_front_major_and_priorities_are_valid(X):
    r = rank(X)
    n = X.shape[0]
    assert sorted(r.order.tolist()) == list(range(n))
    assert np.all(np.diff(r.front[r.order]) >= 0)
    assert np.array_equal(r.position[r.order], np.arange(n))
    assert np.all((r.priority > 0) & (r.priority <= 1))
    assert r.priority[r.order[0]] == 1.0
    assert np.all(np.diff(r.priority[r.order]) < 0)
    inv = rank(X, invert=True)
    assert np.array_equal(inv.order, r.order)
    assert inv.priority[r.order[0]] == pytest.approx(1 / n)
    assert inv.priority[r.order[-1]] == 1.0
    assert np.all(np.diff(inv.priority[r.order]) > 0)


def test_borda_tie_break_inside_a_front():
    # One front of four points; the balanced ones win, then the smaller id.
    X = np.array([[1, 10], [10, 1], [6, 6], [5, 7]], dtype=float)
    r = rank(X, ids=[1, 2, 3, 4])
    assert r.front.tolist() == [0, 0, 0, 0]
    # ranks per column: [0,3,2,1] and [3,0,1,2]; sums: 3,3,3,3 -> all tie -> by id
    assert r.order.tolist() == [0, 1, 2, 3]
    X3 = np.array([[1, 10], [10, 1], [6, 6], [7, 5], [0, 0]], dtype=float)
    # col0 ranks [1,4,2,3,0], col1 [4,1,3,2,0] -> sums 5,5,5,5,0; last row is front 1
    r3 = rank(X3, ids=[40, 30, 20, 10, 0])
    assert r3.order.tolist() == [3, 2, 1, 0, 4]


def test_borda_prefers_balanced_points():
    X = np.array([[9, 0], [0, 9], [5, 5], [4, 4], [1, 1]], dtype=float)
    r = rank(X)
    # front 0 = {0,1,2}; ranks col0 [4,0,3,2,1], col1 [0,4,3,2,1]; Borda 4,4,6,4,2:
    # the balanced row 2 goes first, then rows 0 and 1 by id; front 1 = {3}, 2 = {4}.
    assert r.front.tolist() == [0, 0, 0, 1, 2]
    assert r.order.tolist() == [2, 0, 1, 3, 4]


@settings(max_examples=60, deadline=None)
@given(matrices(), st.integers(0, 45))
def test_select_takes_whole_fronts_and_cuts_only_the_last(X, budget):
    chosen = select(X, budget)
    n = X.shape[0]
    assert len(chosen) == min(budget, n)
    front = pareto_fronts(X)
    rest = np.setdiff1d(np.arange(n), chosen)
    if len(chosen) and len(rest):
        last = front[chosen].max()
        assert front[rest].min() >= last
        # every front before the last one taken is complete
        assert np.all(np.isin(np.flatnonzero(front < last), chosen))
    assert np.array_equal(chosen, rank(X).order[:budget])


def test_signal_ranks_are_min_ranks():
    x = np.array([[3.0], [1.0], [3.0], [2.0], [1.0]])
    assert signal_ranks(x)[:, 0].tolist() == [3, 0, 3, 2, 0]


def test_nan_is_an_error():
    with pytest.raises(ValueError, match="NaN"):
        rank(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_empty_and_single_row():
    r = rank(np.zeros((0, 2)))
    assert r.order.size == 0 and r.priority.size == 0
    r1 = rank(np.array([[1.0, 2.0]]))
    assert r1.order.tolist() == [0] and r1.priority.tolist() == [1.0]


def test_infinities_and_signed_zeros():
    X = np.array([[np.inf, 0], [1, 1], [-np.inf, 2]])
    assert pareto_fronts(X).tolist() == [0, 0, 0]
    Z = np.array([[0.0, 1.0], [-0.0, 1.0], [-0.0, 0.0]])
    assert pareto_fronts(Z).tolist() == [0, 0, 1]
    assert rank(Z, ids=[2, 1, 0]).order.tolist() == [1, 0, 2]


@settings(max_examples=40, deadline=None)
@given(matrices(min_rows=2))
def test_threaded_fronts_give_the_same_ranking(X):
    sequential = rank(X, ids=np.arange(X.shape[0])[::-1])
    original = pareto_module.PARALLEL_MIN_ROWS
    pareto_module.PARALLEL_MIN_ROWS = 0
    try:
        threaded = rank(X, ids=np.arange(X.shape[0])[::-1])
    finally:
        pareto_module.PARALLEL_MIN_ROWS = original
    assert np.array_equal(sequential.order, threaded.order)
    assert np.array_equal(sequential.front, threaded.front)


def test_packed_key_and_lexsort_paths_agree():
    rng = np.random.default_rng(3)
    front = rng.integers(0, 5, 200)
    borda = rng.integers(0, 399, 200)
    ids = rng.permutation(200) * 3
    packed = _order(front, borda, ids, 2)
    expected = np.lexsort((ids, -borda, front))
    assert np.array_equal(packed, expected)
    huge = front.astype(np.int64) * (2**60 // 400)  # forces the lexsort fallback
    assert np.array_equal(_order(huge, borda, ids, 2), expected)
