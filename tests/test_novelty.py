"""Novelty on hand-computed examples, empty rows, chunk boundaries, and prioritise()."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.mining import DEFAULT_POOLING, IndexArrays, prioritise
from backend.mining.novelty import (CONFIRM_DF, CONFIRM_REFERENCE_TASKS, PRIOR_LENGTH_POWER, PRIOR_WEIGHT,
                                    confirm_count, keyword_effects, novelty, pooled_df, prior_weight)

# The package re-exports the function novelty(), which shadows the submodule's name.
novelty_module = importlib.import_module("backend.mining.novelty")


def csr(rows: list[list[int]], task_ids: list[int] | None = None) -> IndexArrays:
    """IndexArrays from keyword-id rows, df counted from the rows."""
    lengths = [len(r) for r in rows]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    kw = np.array([k for r in rows for k in r], dtype=np.int32)
    vocab = int(kw.max()) + 1 if kw.size else 0
    df = np.bincount(kw, minlength=vocab).astype(np.int64)
    ids = np.arange(1, len(rows) + 1) if task_ids is None else np.array(task_ids)
    return IndexArrays(task_ids=ids.astype(np.int64), indptr=indptr, keyword_ids=kw, df=df)


# a=0 (df 3), b=1 (df 1), c=2 (df 1); N = 5 with two empty tasks
ROWS = [[], [0, 1], [0], [], [0, 2]]


def test_mean_pooling_by_hand():
    nov = novelty(csr(ROWS), pooling="mean")
    expected = [0.0, math.log(5 / 2), math.log(5 / 3), 0.0, math.log(5 / 2)]
    assert nov == pytest.approx(expected)


def test_min_pooling_by_hand():
    nov = novelty(csr(ROWS), pooling="min")
    expected = [0.0, math.log(5), math.log(5 / 3), 0.0, math.log(5)]
    assert nov == pytest.approx(expected)


def test_gmean_pooling_by_hand():
    nov = novelty(csr(ROWS), pooling="gmean")
    # task 1: sqrt(3 * 1); task 4: sqrt(3 * 1); task 2: 3
    expected = [0.0, math.log(5 / math.sqrt(3)), math.log(5 / 3), 0.0, math.log(5 / math.sqrt(3))]
    assert nov == pytest.approx(expected, abs=1e-6)


def test_confirmed_pooling_by_hand():
    """Each keyword weighs df / (df + c), c = 3 x N / 4000 below 4,000 tasks; the prior, a
    pseudo-keyword of IDF 0 weighing sqrt(keywords / mean keywords), pulls towards 0."""
    assert DEFAULT_POOLING == "confirmed"
    assert (PRIOR_WEIGHT, PRIOR_LENGTH_POWER, CONFIRM_DF, CONFIRM_REFERENCE_TASKS) == (1.0, 0.5, 3.0, 4000.0)
    c = 3 * 5 / 4000
    w3, w1 = 3 / (3 + c), 1 / (1 + c)
    mean_length = (2 + 1 + 2) / 3  # the empty tasks do not count
    one = ((w3 * math.log(5 / 3) + w1 * math.log(5))  # a (df 3) and b or c (df 1)
           / (w3 + w1 + math.sqrt(2 / mean_length)))
    only_a = w3 * math.log(5 / 3) / (w3 + math.sqrt(1 / mean_length))
    expected = [0.0, one, only_a, 0.0, one]
    assert novelty(csr(ROWS)) == pytest.approx(expected, abs=1e-6)
    assert novelty(csr(ROWS), transform="inverse") == pytest.approx(np.exp(expected), abs=1e-6)


def test_an_unconfirmed_keyword_cannot_beat_a_confirmed_rare_one():
    """gmean (and min) put a task with one keyword seen once above tasks whose keyword five
    tasks share; in a project of 4,000 tasks or more confirmed pooling puts the confirmed
    keyword first (in a smaller one the count that confirms shrinks with it)."""
    rows = [[0, 1]] + [[0, 2]] * 5 + [[0, 3 + i] for i in range(2000)]  # 1: seen once, 2: in 5 tasks
    rows += [[0, 3 + i] for i in range(2000)]  # every filler keyword twice, keyword 0 everywhere
    arrays = csr(rows)
    confirmed = novelty(arrays)
    gmean = novelty(arrays, pooling="gmean")
    assert gmean[0] > gmean[1]
    assert confirmed[1] > confirmed[0]


def test_the_confirmation_count_scales_with_a_small_project_and_stays_in_a_large_one():
    """A real thing's df is proportional to the project, a typo's is not: below 4,000 tasks
    the count that confirms shrinks with N, above it stays 3."""
    assert confirm_count(1000) == pytest.approx(0.75)
    assert confirm_count(2000) == pytest.approx(1.5)
    assert confirm_count(4000) == confirm_count(100_000) == 3.0
    assert confirm_count(0) > 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 8), min_size=1, max_size=5, unique=True), min_size=2, max_size=40),
       st.integers(2, 20))
def test_a_small_project_copied_k_times_keeps_its_novelty(rows, copies):
    """Below 4,000 tasks, a project made of k copies of each task (every df and N times k,
    every share the same) gets exactly the novelty of the original: in a small project a
    rare thing is discounted no more than in a larger one of the same make-up. A fixed
    count of 3 tasks discounted it in the small project only."""
    small = novelty(csr(rows))
    large = novelty(csr([r for r in rows for _ in range(copies)]))
    assert large[::copies] == pytest.approx(small, abs=2e-6)


def test_many_moderately_rare_keywords_do_not_outrank_fewer_rarer_ones():
    """A list-like task of 8 keywords each in 100 of 4,000 tasks against a task of 2 keywords
    each in 40 (25% more IDF), the others 4 common keywords: with one prior for every length
    the long task came first (3.27 against 3.00); the prior growing with sqrt(keywords)
    ranks the rarer evidence first (3.35 against 3.12)."""
    rows = [[0, 1]] * 40 + [[2, 3, 4, 5, 6, 7, 8, 9]] * 100 + [[10, 11, 12, 13]] * 3860
    nov = novelty(csr(rows))
    assert nov[0] > nov[40]
    assert prior_weight(np.array([1, 4, 16]), 4.0).tolist() == [0.5, 1.0, 2.0]
    assert prior_weight(np.array([8]), 8.0).tolist() == [PRIOR_WEIGHT]  # the scope's mean length


def test_keyword_effects_put_what_lifts_a_task_first():
    """Under confirmed pooling a keyword one task holds lifts its task less than a confirmed
    one of lower IDF; under the other poolings the rarest keyword counts most."""
    df = np.array([1, 40, 3000])
    effects = keyword_effects(df, 4000, "confirmed")
    assert effects[1] > effects[0] > effects[2]
    assert np.argsort(-keyword_effects(df, 4000, "gmean")).tolist() == [0, 1, 2]
    assert keyword_effects(np.array([4000]), 4000).tolist() == [0.0]


def test_inverse_transform_and_empty_value():
    nov = novelty(csr(ROWS), pooling="mean", transform="inverse", empty=-1.0)
    assert nov == pytest.approx([-1.0, 5 / 2, 5 / 3, -1.0, 5 / 2])


def test_keyword_in_every_task_has_zero_novelty():
    nov = novelty(csr([[0], [0, 0 + 1], [0]]), pooling="min")
    assert nov[0] == 0.0 and nov[2] == 0.0


def test_pooled_df_marks_empty_rows_nan():
    pooled = pooled_df(csr(ROWS), "mean")
    assert np.isnan(pooled[[0, 3]]).all()
    assert pooled[[1, 2, 4]].tolist() == [2.0, 3.0, 2.0]


def test_all_empty_and_no_tasks():
    assert novelty(csr([[], []])).tolist() == [0.0, 0.0]
    assert novelty(IndexArrays.empty()).size == 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        novelty(csr(ROWS), pooling="max")
    with pytest.raises(ValueError):
        novelty(csr(ROWS), transform="log")


def reference(rows: list[list[int]], pooling: str) -> list[float]:
    arrays = csr(rows)
    n = len(rows)
    filled = [len(r) for r in rows if r]
    mean_length = sum(filled) / len(filled) if filled else 1.0
    out = []
    for r in rows:
        if not r:
            out.append(0.0)
            continue
        values = [arrays.df[k] for k in r]
        if pooling == "confirmed":
            c = 3.0 * min(1.0, n / 4000)
            weights = [v / (v + c) for v in values]
            prior = math.sqrt(len(values) / max(mean_length, 1.0))
            out.append(sum(w * math.log(n / v) for w, v in zip(weights, values)) / (sum(weights) + prior))
            continue
        if pooling == "mean":
            pooled = sum(values) / len(values)
        elif pooling == "min":
            pooled = min(values)
        else:
            pooled = math.exp(sum(math.log(v) for v in values) / len(values))
        out.append(-math.log(pooled / n))
    return out


row_lists = st.lists(st.lists(st.integers(0, 6), max_size=5, unique=True), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(row_lists, st.sampled_from(["confirmed", "gmean", "mean", "min"]), st.integers(1, 4))
def test_matches_reference_across_chunk_boundaries(rows, pooling, chunk):
    original = novelty_module._ROW_CHUNK
    novelty_module._ROW_CHUNK = chunk  # tiny chunks: every boundary case gets exercised
    try:
        got = novelty(csr(rows), pooling=pooling)
    finally:
        novelty_module._ROW_CHUNK = original
    assert got == pytest.approx(reference(rows, pooling), abs=1e-6)


def test_mine_combines_novelty_and_filled_signals():
    arrays = csr(ROWS, task_ids=[10, 20, 30, 40, 50])
    u = np.array([0.9, np.nan, 0.1, 0.8, 0.2])
    result = prioritise(arrays, {"uncertainty": u}, pooling="min")
    assert result.task_ids.tolist() == [10, 20, 30, 40, 50]
    assert set(result.signals) == {"novelty", "uncertainty"}
    # NaN filled with the minimum (0.1)
    assert result.signals["uncertainty"].tolist() == [0.9, 0.1, 0.1, 0.8, 0.2]
    # novelty: [0, log5, log5/3, 0, log5]; front 0 = {10 (0,.9), 20 (log5,.1)?, 50}
    # 50 = (log5, .2) dominates 20 = (log5, .1); 10 = (0, .9) is the best uncertainty.
    assert result.front.tolist() == [0, 1, 2, 1, 0]
    assert result.priority[result.order[0]] == 1.0
    assert np.array_equal(np.argsort(result.position), result.order)
    inverted = prioritise(arrays, {"uncertainty": u}, pooling="min", invert=True)
    assert np.array_equal(inverted.order, result.order)
    assert inverted.priority[result.order[0]] == pytest.approx(1 / 5)


def test_mine_rejects_bad_signals():
    arrays = csr(ROWS)
    with pytest.raises(ValueError):
        prioritise(arrays, {"novelty": np.zeros(5)})
    with pytest.raises(ValueError):
        prioritise(arrays, {"u": np.zeros(4)})


def test_mine_without_signals_and_without_tasks():
    result = prioritise(csr(ROWS))
    assert result.front.shape == (5,)
    empty = prioritise(IndexArrays.empty(), {"u": np.zeros(0)})
    assert empty.priority.size == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 10**6), min_size=2, max_size=12), st.randoms(use_true_random=False))
def test_gmean_novelty_does_not_depend_on_the_order_of_a_tasks_keywords(dfs, rnd):
    """Two tasks whose keywords have the same frequencies, met in another keyword order,
    get exactly the same novelty (a float sum in keyword order differed in its last bit,
    and split them into two Pareto fronts)."""
    k = len(dfs)
    shuffled = list(range(k))
    rnd.shuffle(shuffled)
    # task 1 holds keywords 0..k-1, task 2 keywords k..2k-1 with the same frequencies, shuffled
    df = np.array(dfs + [dfs[i] for i in shuffled], dtype=np.int64)
    arrays = IndexArrays(task_ids=np.array([1, 2], dtype=np.int64), indptr=np.array([0, k, 2 * k], dtype=np.int64),
                         keyword_ids=np.arange(2 * k, dtype=np.int32), df=df)
    assert novelty(arrays, pooling="confirmed")[0] == novelty(arrays, pooling="confirmed")[1]
    got = novelty(arrays, pooling="gmean")
    assert got[0] == got[1]
    assert got[0] == pytest.approx(math.log(2) - sum(math.log(v) for v in dfs) / k, abs=1e-6)


def test_the_same_dfs_in_another_order_tie_exactly():
    """Two tasks whose keywords have the same dfs, listed in another order, tie bit for bit."""
    df = np.array([9, 25, 9, 13, 13, 9, 25, 9], dtype=np.int64)
    arrays = IndexArrays(task_ids=np.array([1, 2], dtype=np.int64), indptr=np.array([0, 4, 8], dtype=np.int64),
                         keyword_ids=np.arange(8, dtype=np.int32), df=df)
    got = novelty(arrays, pooling="gmean")
    assert got[0] == got[1]


def test_equal_in_exact_arithmetic_is_equal():
    """df 5*48*58*77 and 4*58*60*77 have the same geometric mean (2.535131 in a
    406-task run), but summed logs differ in the last bits; novelty is quantised to the
    precision the output shows, so the two tie and the more uncertain one dominates."""
    n = 406
    first, second = [5, 48, 58, 77], [4, 58, 60, 77]
    df = np.array(first + second, dtype=np.int64)
    indptr = np.array([0, 4, 8] + [8] * (n - 2), dtype=np.int64)
    arrays = IndexArrays(task_ids=np.arange(1, n + 1, dtype=np.int64), indptr=indptr,
                         keyword_ids=np.arange(8, dtype=np.int32), df=df)
    pooled = pooled_df(arrays, "gmean")
    assert pooled[0] != pooled[1]  # 32.176032366027 vs 32.176032366035: what quantising is for
    nov = novelty(arrays, pooling="gmean")
    assert f"{nov[0]:.6f}" == "2.535131"
    assert nov[0] == nov[1]
    result = prioritise(arrays, {"uncertainty": np.r_[0.2, 0.9, np.zeros(n - 2)]}, pooling="gmean")
    assert result.front[1] == 0 and result.front[0] == 1  # same novelty, more uncertain: dominates


def test_novelty_is_shown_at_the_precision_it_is_ranked():
    from backend.mining.novelty import DECIMALS

    from backend.offline.output import NOVELTY_DECIMALS

    nov = novelty(csr(ROWS + [[0, 1, 2]]))
    assert np.array_equal(nov, np.round(nov, DECIMALS))
    assert NOVELTY_DECIMALS == DECIMALS  # mine prints novelty at the precision it was ranked


def test_both_transforms_rank_alike_with_empty_tasks():
    rows = [[], [0, 1], [0], [], [0, 2], [0, 3]]  # keyword 0 is in every task that has keywords
    arrays = csr(rows + [[0]] * 2)
    neglog = novelty(arrays, pooling="min", transform="neglog")
    inverse = novelty(arrays, pooling="min", transform="inverse")
    assert neglog[0] == 0.0 and inverse[0] == 1.0  # "no keywords" = a keyword every task holds
    assert np.argsort(-neglog, kind="stable").tolist() == np.argsort(-inverse, kind="stable").tolist()
    assert (np.sign(neglog[:, None] - neglog[None, :]) == np.sign(inverse[:, None] - inverse[None, :])).all()


def test_the_confirmed_rule_constants_are_part_of_the_model_version(monkeypatch):
    """A new prior constant re-ranks every project under the confirmed pooling, so its
    version (and only its) must change; the confirmation count also weighs the head
    re-order of every pooling, so a new one changes every version."""
    from backend.settings import Settings

    confirmed, lowest = Settings.from_env({}), Settings.from_env({}, pooling="min")
    before = (confirmed.model_version(), lowest.model_version(), confirmed.mining_hash())
    for name, value, min_changes in (("PRIOR_WEIGHT", PRIOR_WEIGHT + 0.5, False),
                                     ("PRIOR_LENGTH_POWER", 0.0, False),
                                     ("CONFIRM_DF", CONFIRM_DF + 1, True),
                                     ("CONFIRM_REFERENCE_TASKS", CONFIRM_REFERENCE_TASKS * 2, True)):
        with monkeypatch.context() as m:
            m.setattr(novelty_module, name, value)
            assert confirmed.model_version() != before[0]
            assert (lowest.model_version() != before[1]) is min_changes
            assert confirmed.mining_hash() == before[2]  # keywords stay: nothing is re-mined
    assert (confirmed.model_version(), lowest.model_version()) == before[:2]
