"""Pareto fronts against a brute-force reference and moocore; ties; invariances; budgets; dominance
by a margin and the signals prioritise() ranks: a nearly constant or repeated signal moves no task by more
than a small share of the queue, a hair on one signal does not put tasks behind a front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import moocore
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backend.mining.pareto as pareto_module
from backend.mining import prioritise
from backend.mining.pareto import (
    MARGIN_SHARE,
    NEAR_CONSTANT,
    _order,
    _tie_rank,
    id_tie_keys,
    informative_columns,
    pareto_fronts,
    rank,
    select,
    signal_margins,
    signal_ranks,
)
import backend.mining.sweep as sweep_module
from backend.mining.sweep import sweep_fronts, sweep_order
from tests.support.mining_data import random_projects

ROOT = Path(__file__).resolve().parents[1]


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


def matrices(min_rows: int = 1, max_rows: int = 40, columns=st.integers(1, 4), values=4):
    """Small matrices over a few values, so ties and duplicate points are common."""
    return columns.flatmap(
        lambda m: st.lists(
            st.lists(st.integers(0, values), min_size=m, max_size=m),
            min_size=min_rows,
            max_size=max_rows,
        )
    ).map(lambda rows: np.array(rows, dtype=np.float64))


@settings(max_examples=150, deadline=None)
@given(matrices())
def test_fronts_equal_brute_force(X):
    assert np.array_equal(pareto_fronts(X), brute_force_fronts(X))


@pytest.mark.parametrize("m", [2, 3, 4])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
@pytest.mark.slow
def test_fronts_equal_brute_force_per_signal_count(m, data):
    """2 and 3 signals go through the compiled sweep, 4 through moocore: each against
    the definition, with few values (ties, equal points) or many (long staircases)."""
    values = data.draw(st.sampled_from([1, 3, 8, 60]))
    X = data.draw(matrices(max_rows=60, columns=st.just(m), values=values))
    assert np.array_equal(pareto_fronts(X), brute_force_fronts(X))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60), st.integers(2, 3))
def test_fronts_equal_brute_force_continuous(values, m):
    rng = np.random.default_rng(len(values))
    X = np.column_stack([values] + [rng.permutation(values) for _ in range(m - 1)])
    assert np.array_equal(pareto_fronts(X), brute_force_fronts(X))


def _shapes(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Three-signal data sets of very different front structure."""
    i = np.arange(n, dtype=float)
    u = rng.random(n)
    return {
        "uniform": rng.random((n, 3)),
        "few values": rng.integers(0, 6, (n, 3)).astype(float),
        "one front, staircase grows at one end": np.column_stack([-i, i, -i]),
        "one front, staircase grows at the other": np.column_stack([-i, -i, i]),
        "one front, staircase in random order": np.column_stack([rng.random(n), u, 1 - u]),
        "many thin fronts": np.column_stack([i + 30 * u, i + 30 * rng.random(n), i]),
        "correlated": np.column_stack([u, u + 0.1 * rng.random(n), u + 0.1 * rng.random(n)]),
        "novelty-like ties": np.column_stack(
            [np.round(rng.zipf(1.5, n) % 50 / 7, 1), rng.random(n), rng.integers(0, 20, n)]
        ),
    }


@pytest.mark.parametrize("name", list(_shapes(10, np.random.default_rng(0))))
def test_sweep_equals_moocore_on_larger_inputs(name):
    """The compiled sweep and moocore's C core agree beyond what brute force can check."""
    X = _shapes(20_000, np.random.default_rng(7))[name]
    expected = moocore.pareto_rank(-X).astype(np.int64)
    assert np.array_equal(pareto_fronts(X), expected)
    assert np.array_equal(pareto_fronts(X[:, :2]), moocore.pareto_rank(-X[:, :2]))


@pytest.mark.parametrize("m", [2, 3])
def test_a_chain_has_one_point_a_front(m):
    i = np.arange(50_000, dtype=float)
    X = np.column_stack([i, 2 * i, i**2][:m])
    assert np.array_equal(pareto_fronts(X), i[::-1].astype(np.int64))
    assert np.array_equal(pareto_fronts(np.repeat(X, 2, axis=0)), np.repeat(i[::-1], 2))


@pytest.mark.parametrize("limit", [10**6, 10**4])
def test_sweep_order_beyond_the_packed_key(monkeypatch, limit):
    """Past n ** 3 < 2 ** 63 (about 2.1M rows) the order packs two signals and re-sorts
    their tie groups (limit 10**6 with 300 rows), or falls back to a lexsort (10**4)."""
    monkeypatch.setattr(sweep_module, "_INT64_MAX", limit)
    rng = np.random.default_rng(5)
    for values in (4, 40, 300):
        X = rng.integers(0, values, (300, 3)).astype(float)
        ranks = signal_ranks(X).T
        order = sweep_order(ranks)
        expected = np.lexsort((-ranks[2], -ranks[1], -ranks[0]))
        assert np.array_equal(ranks[:, order], ranks[:, expected])
        assert np.array_equal(pareto_fronts(X), moocore.pareto_rank(-X))


def test_sweep_refuses_other_signal_counts():
    with pytest.raises(ValueError, match="2 or 3 signals"):
        sweep_fronts(np.zeros((4, 5), dtype=np.int64))


def test_duplicate_points_share_a_front():
    X = np.array([[1, 1], [1, 1], [2, 0], [0, 0], [0, 0]], dtype=float)
    assert pareto_fronts(X).tolist() == [0, 0, 0, 1, 1]


def test_single_signal_fronts_are_distinct_values():
    x = np.array([0.5, 0.1, 0.5, 0.9, 0.1])
    assert pareto_fronts(x).tolist() == [1, 2, 1, 0, 2]
    ids = [10, 11, 12, 13, 14]
    r = rank(x, ids=ids)
    first, second = (0, 2) if id_tie_keys([10])[0] < id_tie_keys([12])[0] else (2, 0)
    third, fourth = (1, 4) if id_tie_keys([11])[0] < id_tie_keys([14])[0] else (4, 1)
    assert r.order.tolist() == [3, first, second, third, fourth]  # equal values: by id key


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
    # One front of four points, all with the same Borda count: the id keys decide.
    X = np.array([[1, 10], [10, 1], [6, 6], [5, 7]], dtype=float)
    ids = np.array([1, 2, 3, 4])
    r = rank(X, ids=ids)
    assert r.front.tolist() == [0, 0, 0, 0]
    # ranks per column: [0,3,2,1] and [3,0,1,2]; sums: 3,3,3,3 -> all tie
    assert r.order.tolist() == np.argsort(id_tie_keys(ids)).tolist()
    assert r.order.tolist() != [0, 1, 2, 3]  # not id order (keys of 1..4 are not sorted)
    X3 = np.array([[1, 10], [10, 1], [6, 6], [7, 5], [0, 0]], dtype=float)
    # col0 ranks [1,4,2,3,0], col1 [4,1,3,2,0] -> sums 5,5,5,5,0; last row is front 1
    ids3 = np.array([40, 30, 20, 10, 0])
    r3 = rank(X3, ids=ids3)
    assert r3.order.tolist() == np.argsort(id_tie_keys(ids3[:4])).tolist() + [4]


def test_borda_prefers_balanced_points():
    X = np.array([[9, 0], [0, 9], [5, 5], [4, 4], [1, 1]], dtype=float)
    r = rank(X)
    # front 0 = {0,1,2}; ranks col0 [4,0,3,2,1], col1 [0,4,3,2,1]; Borda 4,4,6,4,2:
    # the balanced row 2 goes first, then rows 0 and 1 by their keys (row numbers stand
    # for the ids); front 1 = {3}, 2 = {4}.
    assert r.front.tolist() == [0, 0, 0, 1, 2]
    tied = [0, 1] if id_tie_keys([0])[0] < id_tie_keys([1])[0] else [1, 0]
    assert r.order.tolist() == [2, *tied, 3, 4]


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
    by_key = [0, 1] if id_tie_keys([2])[0] < id_tie_keys([1])[0] else [1, 0]
    assert rank(Z, ids=[2, 1, 0]).order.tolist() == by_key + [2]


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
    tie_rank = rng.permutation(200)
    packed = _order(front, borda, tie_rank, 2)
    expected = np.lexsort((tie_rank, -borda, front))
    assert np.array_equal(packed, expected)
    huge = front.astype(np.int64) * (2**60 // 400)  # forces the lexsort fallback
    assert np.array_equal(_order(huge, borda, tie_rank, 2), expected)


# --- Ties: a fixed pseudo-random order from the ids, never the id order ------------


def test_integer_id_keys_are_splitmix64():
    # SplitMix64 seeded with 0 first outputs 0xE220A8397B1DCDAF (its published test
    # vector); the key of id v is that generator's output for state v.
    assert int(id_tie_keys([0])[0]) == 0xE220A8397B1DCDAF
    ids = np.concatenate([np.arange(-1000, 100_000), [np.iinfo(np.int64).max]])
    keys = id_tie_keys(ids)
    assert keys.dtype == np.uint64 and np.unique(keys).size == ids.size  # a bijection
    # every numpy integer type and plain Python ints give the same key for a value
    for dtype in (np.int32, np.int64, np.uint32, np.uint64):
        assert np.array_equal(id_tie_keys(np.arange(50, dtype=dtype)), keys[1000:1050])
    assert np.array_equal(id_tie_keys(list(range(50))), keys[1000:1050])
    as_objects = np.array([7, "7", 7.0], dtype=object)
    assert id_tie_keys(as_objects)[0] == keys[1007]
    assert len(set(id_tie_keys(as_objects).tolist())) == 3  # the string and float differ


def test_tied_tasks_follow_the_id_keys_not_the_ids():
    n = 3000
    ids = np.arange(n) * 7 + 1  # upload order
    r = rank(np.ones((n, 2)), ids=ids)
    assert np.array_equal(r.order, np.argsort(id_tie_keys(ids)))
    # the place of a task is unrelated to its id (Spearman correlation near 0) ...
    rho = np.corrcoef(r.position, np.arange(n))[0, 1]
    assert abs(rho) < 0.1
    # ... and the first hundred come from all over the id range
    first = np.sort(ids[r.order[:100]])
    assert first[0] < ids[n // 10] and first[-1] > ids[-n // 10]
    # front and Borda still come first: a better task beats every tied one
    X = np.ones((n, 2))
    X[n - 1] = 2.0
    assert rank(X, ids=ids).order[0] == n - 1


def test_ids_stand_for_rows_when_absent():
    X = np.zeros((500, 3))
    assert np.array_equal(rank(X).order, rank(X, ids=np.arange(500)).order)
    assert rank(X).order.tolist() != list(range(500))


@settings(max_examples=60, deadline=None)
@given(matrices(min_rows=2), st.integers(0, 2**31 - 1))
def test_tie_order_is_consistent_with_positions_and_priorities(X, seed):
    n = X.shape[0]
    ids = np.random.default_rng(seed).choice(10**9, n, replace=False)
    r = rank(X, ids=ids)
    assert np.array_equal(r.position[r.order], np.arange(n))
    assert np.array_equal(np.argsort(-r.priority, kind="stable"), r.order)
    keys = id_tie_keys(ids)[r.order]
    borda = signal_ranks(X).sum(axis=1)[r.order]
    front = r.front[r.order]
    same = (front[1:] == front[:-1]) & (borda[1:] == borda[:-1])
    assert np.all(keys[1:][same] > keys[:-1][same])  # inside a tie: ascending key


def _order_in_fresh_process(ids: list, hash_seed: str) -> list[int]:
    code = (
        "import json, sys; import numpy as np; from backend.mining.pareto import rank;"
        "ids = json.loads(sys.argv[1]);"
        "print(json.dumps(rank(np.zeros((len(ids), 3)), ids=np.array(ids, dtype=object)"
        " if any(isinstance(i, str) for i in ids) else ids).order.tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(ids)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "ids",
    [list(range(40)), [f"img_{i:03d}.jpg" for i in range(40)], [5, "a", 17, "b", -3, "é"]],
    ids=["integers", "strings", "mixed"],
)
@pytest.mark.slow
def test_tie_order_is_the_same_in_every_process(ids):
    """Server and offline rank in different processes, under different hash seeds."""
    here = rank(
        np.zeros((len(ids), 3)),
        ids=np.array(ids, dtype=object) if any(isinstance(i, str) for i in ids) else ids,
    ).order.tolist()
    assert here != list(range(len(ids)))
    assert _order_in_fresh_process(ids, "1") == here
    assert _order_in_fresh_process(ids, "4242") == here


def test_string_ids_are_not_ranked_alphabetically():
    ids = np.array([f"task-{i:05d}" for i in range(1000)])
    r = rank(np.zeros((1000, 2)), ids=ids)
    assert np.array_equal(r.order, np.argsort(id_tie_keys(ids)))
    assert abs(np.corrcoef(r.position, np.arange(1000))[0, 1]) < 0.15
    shuffled = np.random.default_rng(0).permutation(1000)
    again = rank(np.zeros((1000, 2)), ids=ids[shuffled])
    assert np.array_equal(ids[r.order], ids[shuffled][again.order])


def test_clashing_keys_fall_back_to_the_id_then_the_row():
    # -1 and 2**64 - 1 are equal modulo 2**64, so they share a key
    ids = np.array([2**64 - 1, -1], dtype=object)
    assert id_tie_keys(ids)[0] == id_tie_keys(ids)[1]
    assert _tie_rank(ids, 2).tolist() == [1, 0]  # "-1" < "18446744073709551615"
    assert _tie_rank(ids[::-1].copy(), 2).tolist() == [0, 1]
    # repeated ids: the row decides, so the order is still deterministic
    assert rank(np.zeros((3, 2)), ids=[9, 9, 9]).order.tolist() == [0, 1, 2]


# --- dominance by a margin, and which signals prioritise() ranks ---------------------------------------

#: the share of the queue a task may move when a signal that carries nothing is added
SMALL_SHARE = 0.02


def brute_force_margin_fronts(X: np.ndarray, margins: np.ndarray) -> np.ndarray:
    """Peel off the points no remaining point beats by a margin: at least as good on every
    signal and better by more than the margin on one."""
    n = X.shape[0]
    front = np.full(n, -1)
    remaining = set(range(n))
    level = 0
    while remaining:
        current = {i for i in remaining
                   if not any(np.all(X[j] >= X[i]) and np.any(X[j] > X[i] + margins)
                              for j in remaining if j != i)}
        for i in current:
            front[i] = level
        remaining -= current
        level += 1
    return front


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_margin_fronts_equal_the_definition(data):
    m = data.draw(st.integers(1, 3))
    values = data.draw(st.sampled_from([2, 6, 30, 1000]))
    rows = data.draw(st.lists(st.lists(st.integers(0, values), min_size=m, max_size=m), min_size=1, max_size=50))
    margins = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 40.0]), min_size=m, max_size=m)))
    X = np.array(rows, dtype=np.float64)
    assert np.array_equal(pareto_fronts(X, margins), brute_force_margin_fronts(X, margins))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3), st.integers(1, 60), st.integers(0, 2**31 - 1))
def test_zero_margins_are_exact_dominance(m, n, seed):
    X = np.random.default_rng(seed).integers(0, 5, (n, m)).astype(np.float64)
    assert np.array_equal(pareto_fronts(X, np.zeros(m)), pareto_fronts(X))
    exact, by_margin = rank(X), rank(X, margins=np.zeros(m))
    assert np.array_equal(exact.order, by_margin.order) and np.array_equal(exact.front, by_margin.front)


def test_margins_are_a_share_of_the_central_spread():
    x = np.linspace(0.0, 10.0, 1001)
    spike = x.copy()
    spike[-1] = 1e6  # one outlier does not widen the margin
    flag = np.zeros(1001)
    flag[:5] = 1.0  # a rare flag: its central values are all equal, any difference counts
    margins = signal_margins(np.column_stack([x, spike, flag]))
    assert margins[0] == pytest.approx(MARGIN_SHARE * 9.6)
    assert margins[1] == pytest.approx(margins[0], rel=1e-3)
    assert margins[2] == 0.0


def test_informative_columns_leave_out_nearly_constant_and_repeated_signals():
    rng = np.random.default_rng(3)
    novelty = rng.random(200) * 5
    uncertainty = rng.random(200)
    nearly_constant = 0.7 * (1 + NEAR_CONSTANT * 0.9 * rng.random(200))
    X = np.column_stack([novelty, nearly_constant, uncertainty, np.exp(uncertainty), 3 * novelty, np.ones(200)])
    assert informative_columns(X) == [0, 2]
    # a rare flag is not nearly constant: few tasks differ, but by the whole of its size
    flag = np.zeros(200)
    flag[7] = 1.0
    assert informative_columns(np.column_stack([novelty, flag])) == [0, 1]
    # nothing informative: the first column stays, so there is always something to rank by
    assert informative_columns(np.ones((5, 2))) == [0]


def largest_move(a, b) -> int:
    return int(np.abs(a.position - b.position).max())


@settings(max_examples=120, deadline=None)
@given(random_projects(), st.floats(0.01, 100.0), st.floats(0.0, 0.99), st.sampled_from([0.0, 0.05]))
def test_a_nearly_constant_signal_moves_no_task_far(project, level, wobble, head):
    """A signal whose values all lie within NEAR_CONSTANT of their size (here up to 99% of
    it) carries nothing: no task moves by more than SMALL_SHARE of the queue."""
    arrays, signals, rng = project
    before = prioritise(arrays, signals, head_diversity=head)
    noisy = level * (1 + wobble * NEAR_CONSTANT * rng.random(arrays.n_tasks))
    after = prioritise(arrays, {**signals, "nearly_constant": noisy}, head_diversity=head)
    assert largest_move(before, after) <= SMALL_SHARE * arrays.n_tasks
    assert "nearly_constant" not in after.ranked


@settings(max_examples=120, deadline=None)
@given(random_projects(), st.sampled_from(["copy", "scaled", "log", "novelty"]), st.sampled_from([0.0, 0.05]))
def test_a_repeated_signal_moves_no_task_far(project, how, head):
    """A copy of a signal, or any strictly increasing transform of it, orders the tasks as
    the signal does: it must not count twice (in fronts or in the Borda tie-break)."""
    arrays, signals, _ = project
    before = prioritise(arrays, signals, head_diversity=head)
    source = before.novelty if how == "novelty" or not signals else next(iter(signals.values()))
    repeated = {"copy": source, "scaled": 3.0 * source + 0.0, "log": np.log1p(source - source.min()),
                "novelty": source}[how]
    after = prioritise(arrays, {**signals, "again": repeated}, head_diversity=head)
    assert largest_move(before, after) <= SMALL_SHARE * arrays.n_tasks
    assert "again" not in after.ranked


def test_a_hair_on_a_second_novelty_does_not_put_rare_tasks_behind_a_front():
    """The failure this rule is for: six tasks hold the rarest thing and tie on it; a second
    novelty (their scenes) differs among them by a hair. Exact dominance lets the one with
    the slightly rarer scene beat the other five, which fall behind every task that is
    first by its scene alone; by a margin, the six share the first front."""
    rng = np.random.default_rng(11)
    n = 150
    rarest = np.round(rng.uniform(0.5, 1.5, n), 3)
    scene = np.round(rng.uniform(0.0, 3.0, n), 3)
    rare = np.arange(6) * 25 + 4
    rarest[rare] = 4.6
    scene[rare] = 1.26 + np.array([0.06, 0.0, 0.01, 0.02, 0.03, 0.04])  # 1.32 and five near 1.26
    X = np.column_stack([rarest, scene])
    exact = rank(X)
    assert sorted(exact.position[rare].tolist())[-1] > 20  # the reported failure
    by_margin = rank(X, margins=signal_margins(X))
    assert by_margin.front[rare].tolist() == [0] * 6
    assert sorted(by_margin.position[rare].tolist())[-1] < 10
