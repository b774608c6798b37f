"""The write-back planner: fewest writes that make Label Studio's scores follow a ranking."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.engine import writeback


def apply(plan: writeback.WritePlan, written: dict[int, float]) -> dict[int, float]:
    after = dict(written)
    after.update(plan.imports)
    after.update(plan.patches)
    if plan.bump:
        after = dict(plan.scores)
    return after


def longest_decreasing_length(values: list[float]) -> int:
    # O(n^2) reference
    best = [1] * len(values)
    for i in range(len(values)):
        for j in range(i):
            if values[j] > values[i]:
                best[i] = max(best[i], best[j] + 1)
    return max(best, default=0)


def test_first_write_is_the_plain_rank_priorities():
    order = [5, 3, 9, 1]
    plan = writeback.plan(order, {}, patch_limit=10)
    assert not plan.bump and not plan.patches
    assert plan.imports == {5: 1.0, 3: 0.75, 9: 0.5, 1: 0.25}


def test_unchanged_order_writes_nothing():
    order = [5, 3, 9, 1]
    written = writeback.rank_scores(order)
    plan = writeback.plan(order, {t: (s, None) for t, s in written.items()}, patch_limit=10)
    assert plan.imports == {} and plan.patches == {} and plan.kept == 4


def test_a_new_task_in_the_middle_is_one_import_between_its_neighbours():
    written = {5: 1.0, 3: 0.75, 9: 0.5, 1: 0.25}
    plan = writeback.plan([5, 3, 42, 9, 1], written, patch_limit=10)
    assert plan.patches == {}
    assert list(plan.imports) == [42]
    assert 0.5 < plan.imports[42] < 0.75


def test_a_new_top_task_and_a_new_last_task_stay_in_range():
    written = {5: 1.0, 3: 0.5}
    plan = writeback.plan([7, 5, 3, 8], written, patch_limit=0)
    after = apply(plan, written)
    assert after[7] > after[5] and after[3] > after[8] > 0
    assert max(after.values()) <= 1.0


def test_a_moved_task_is_one_patch():
    written = {1: 1.0, 2: 0.8, 3: 0.6, 4: 0.4}
    plan = writeback.plan([1, 4, 2, 3], written, patch_limit=10)
    assert list(plan.patches) == [4] and plan.imports == {}
    assert 0.8 < plan.patches[4] < 1.0


def test_too_many_patches_bump_to_a_full_rewrite():
    order = list(range(1, 11))
    written = {t: (t / 10, None) for t in order}  # exactly reversed
    plan = writeback.plan(order, written, patch_limit=3)
    assert plan.bump
    assert plan.imports == writeback.rank_scores(order)


def test_an_exhausted_gap_moves_a_neighbour_or_bumps():
    written = {1: 0.5, 2: 0.5 - 1e-12}
    plan = writeback.plan([1, 99, 2], written, patch_limit=10)
    assert not plan.bump and list(plan.patches) == [2] and list(plan.imports) == [99]
    assert 0.5 > plan.imports[99] > plan.patches[2] > 0
    assert writeback.plan([1, 99, 2], written, patch_limit=0).bump


def test_a_new_task_above_the_top_moves_the_old_top_not_everything():
    written = writeback.rank_scores([5, 3, 9, 1])  # 5 holds 1.0
    plan = writeback.plan([42, 5, 3, 9, 1], written, patch_limit=10)
    assert not plan.bump
    assert plan.imports == {42: 1.0}
    assert list(plan.patches) == [5] and 0.75 < plan.patches[5] < 1.0


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_plan_leaves_scores_strictly_decreasing_with_minimal_patches(data):
    n = data.draw(st.integers(1, 40))
    tasks = list(range(1, n + 1))
    rng = random.Random(data.draw(st.integers(0, 10**6)))
    old = rng.sample(tasks, data.draw(st.integers(0, n)))
    written = writeback.rank_scores(old)
    for t in list(written):  # some scores moved by earlier partial writes
        if rng.random() < 0.2:
            written[t] = rng.choice([0.3, 0.6, written[t]])
    order = tasks[:]
    rng.shuffle(order)
    limit = data.draw(st.integers(0, n))
    plan = writeback.plan(order, written, patch_limit=limit)
    after = apply(plan, written)
    along = [after[t] for t in order]
    assert all(a > b for a, b in zip(along, along[1:])), along
    assert all(0 < s <= 1.0 for s in along)
    if not plan.bump:
        old_in_order = [written[t] for t in order if t in written]
        minimal = len(old_in_order) - longest_decreasing_length(old_in_order)
        assert len(plan.patches) == minimal + plan.repaired
        assert len(plan.patches) <= limit
        assert set(plan.imports) == set(order) - set(written)
