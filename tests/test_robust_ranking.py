"""A ranking that a weak, nearly tied or repeated signal cannot wreck.

Dominance by a margin against its definition (brute force); the properties ``mine`` must
keep whatever the data: a nearly constant signal, or a copy of a signal, moves no task by
more than a small share of the queue; a difference by a hair on one signal does not put a
task behind a front of ordinary ones; the diverse head never moves a task without a rare
keyword ahead of a task holding one that the ranking put first. And object mining ranks
one novelty per task (the rarest thing in it, scene included) through ``Engine.ranking``
on a real SQLite state.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.mining import IndexArrays, mine
from backend.mining.diversity import head_size, holds_rare
from backend.mining.pareto import (
    MARGIN_SHARE,
    NEAR_CONSTANT,
    informative_columns,
    pareto_fronts,
    rank,
    signal_margins,
)
from backend.objects import OBJECT_SLOTS, SCENE_SLOT, task_keywords

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


def csr(rows: list[list[int]], task_ids=None) -> IndexArrays:
    lengths = [len(r) for r in rows]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    kw = np.array([k for r in rows for k in r], dtype=np.int32)
    df = np.bincount(kw, minlength=int(kw.max()) + 1 if kw.size else 0).astype(np.int64)
    ids = np.arange(1, len(rows) + 1, dtype=np.int64) * 3 if task_ids is None else np.asarray(task_ids)
    return IndexArrays(ids, indptr, kw, df)


@st.composite
def projects(draw):
    """Keyword sets (a Zipf-like vocabulary, so some keywords are rare) and one or two
    signals of another model, continuous or of few values."""
    n = draw(st.integers(8, 80))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rows = [sorted({int(k) for k in np.minimum(rng.zipf(1.6, int(rng.integers(1, 6))), 40) - 1}) for _ in range(n)]
    signals = {}
    for j in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["uniform", "few values", "skewed"]))
        if kind == "uniform":
            signals[f"s{j}"] = rng.random(n)
        elif kind == "few values":
            signals[f"s{j}"] = rng.integers(0, 4, n) / 4.0
        else:
            signals[f"s{j}"] = rng.exponential(1.0, n)
    return csr(rows), signals, rng


def largest_move(a, b) -> int:
    return int(np.abs(a.position - b.position).max())


@settings(max_examples=120, deadline=None)
@given(projects(), st.floats(0.01, 100.0), st.floats(0.0, 0.99), st.sampled_from([0.0, 0.05]))
def test_a_nearly_constant_signal_moves_no_task_far(project, level, wobble, head):
    """A signal whose values all lie within NEAR_CONSTANT of their size (here up to 99% of
    it) carries nothing: no task moves by more than SMALL_SHARE of the queue."""
    arrays, signals, rng = project
    before = mine(arrays, signals, head_diversity=head)
    noisy = level * (1 + wobble * NEAR_CONSTANT * rng.random(arrays.n_tasks))
    after = mine(arrays, {**signals, "nearly_constant": noisy}, head_diversity=head)
    assert largest_move(before, after) <= SMALL_SHARE * arrays.n_tasks
    assert "nearly_constant" not in after.ranked


@settings(max_examples=120, deadline=None)
@given(projects(), st.sampled_from(["copy", "scaled", "log", "novelty"]), st.sampled_from([0.0, 0.05]))
def test_a_repeated_signal_moves_no_task_far(project, how, head):
    """A copy of a signal, or any strictly increasing transform of it, orders the tasks as
    the signal does: it must not count twice (in fronts or in the Borda tie-break)."""
    arrays, signals, _ = project
    before = mine(arrays, signals, head_diversity=head)
    source = before.novelty if how == "novelty" or not signals else next(iter(signals.values()))
    repeated = {"copy": source, "scaled": 3.0 * source + 0.0, "log": np.log1p(source - source.min()),
                "novelty": source}[how]
    after = mine(arrays, {**signals, "again": repeated}, head_diversity=head)
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


@settings(max_examples=100, deadline=None)
@given(projects(), st.sampled_from([0.1, 0.2, 0.5]))
def test_the_head_never_moves_a_common_task_ahead_of_a_rare_one(project, share):
    """Inside the diverse head, a task without a keyword rare enough to fit in the head
    never comes before a task holding one that the ranking put before it; the head's set
    and everything after it are the ranking's."""
    arrays, signals, _ = project
    plain = mine(arrays, signals)
    diverse = mine(arrays, signals, head_diversity=share)
    head = head_size(share, arrays.n_tasks)
    top = plain.order[:head]
    assert set(diverse.order[:head].tolist()) == set(top.tolist())
    assert np.array_equal(diverse.order[head:], plain.order[head:])
    rare = dict(zip(top.tolist(), holds_rare(arrays, top, head).tolist()))
    for r in top.tolist():
        for c in top.tolist():
            if rare[r] and not rare[c] and plain.position[r] < plain.position[c]:
                assert diverse.position[r] < diverse.position[c]


def test_the_head_interleaves_rare_concepts_and_common_tasks_wait_for_them():
    # concept 1 in tasks 0-3, concept 2 in tasks 4-5; keyword 0 everywhere, keywords 3-4
    # common (in half the tasks each): tasks 6 and 7 hold only common words
    rows = [[0, 1, 3]] * 4 + [[0, 2, 4]] * 2 + [[0, 3], [0, 3]] + [[0, 3]] * 46 + [[0, 4]] * 46
    arrays = csr(rows)
    u = np.zeros(len(rows))
    u[6] = 1.0  # very uncertain: the ranking puts this common task first
    u[7] = 0.5  # beaten by task 6 on uncertainty: after the rare tasks, still in the head
    plain = mine(arrays, {"uncertainty": u})
    diverse = mine(arrays, {"uncertainty": u}, head_diversity=0.08)  # 8 tasks
    assert plain.order[0] == 6 and 7 in plain.order[:8].tolist()
    assert diverse.order[0] == 6  # every signal keeps its say: it stays first
    head = diverse.order[:8].tolist()
    concept = {r: (1 if r < 4 else 2 if r < 6 else 0) for r in head}
    rare_seq = [concept[r] for r in head if concept[r]]
    assert rare_seq[:2] in ([1, 2], [2, 1])  # both concepts before either repeats
    # task 7 waits for every rare-holding task the ranking put before it
    ahead_of_7 = [r for r in plain.order[:8].tolist() if concept[r] and plain.position[r] < plain.position[7]]
    assert all(head.index(r) < head.index(7) for r in ahead_of_7)


def test_task_keywords_unites_a_tasks_objects_and_scene():
    # task 2: objects [5, 6] and [6, 7], scene [1]; task 9: one object [8]; task 4: nothing
    docs = {2 * OBJECT_SLOTS: [5, 6], 2 * OBJECT_SLOTS + 1: [6, 7], 2 * OBJECT_SLOTS + SCENE_SLOT: [1],
            9 * OBJECT_SLOTS: [8]}
    ids = sorted(docs)
    arrays = csr([docs[d] for d in ids], task_ids=np.array(ids, dtype=np.int64))
    got = task_keywords(arrays, [9, 4, 2])
    rows = [got.keyword_ids[got.indptr[i]:got.indptr[i + 1]].tolist() for i in range(3)]
    assert rows == [[8], [], [1, 5, 6, 7]]
    assert got.task_ids.tolist() == [9, 4, 2] and np.array_equal(got.df, arrays.df)


# --- object mining through the engine ---------------------------------------------------------

CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="det" toName="image">'
          '<Label value="car"/></RectangleLabels><TextArea name="vlmine" toName="image"/></View>')
KINDS = ((50, ["street", "city", "building"]), (35, ["road", "park", "grass"]), (30, ["road", "desert", "sand"]),
         (20, ["street", "snow", "winter"]), (15, ["street", "night", "lamp"]))
TRAILERS = (3, 60, 95, 120, 140, 148)  # one in each kind of scene, two in the city


def scene_project(engine, seed: int) -> list[int]:
    """150 scenes of five kinds, scene words varying a little from image to image, three
    vehicles each and in six a horse trailer; every box scored 0.9. Written to the engine's
    index and store as mining would leave them; returns the trailers' task ids."""
    from backend.state import TaskRecord

    rng = np.random.default_rng(seed)
    engine.project(1, CONFIG)
    extras = ["sky", "tree", "sign", "person", "pole", "fence", "cloud", "wall"]
    images, docs, records = {}, {}, []
    kinds = [words for size, words in KINDS for _ in range(size)]
    for t, kind in enumerate(kinds, start=1):
        images[t] = sorted(set(kind) | set(rng.choice(extras, int(rng.integers(1, 4)), replace=False)) | {"car"})
        objects = [["car", str(rng.choice(["sedan", "taxi", "hatchback"])), str(rng.choice(["blue", "red", "white"]))]
                   for _ in range(3)]
        if t - 1 in TRAILERS:
            objects.append(["trailer", "horse", "hitch"])
        for slot, kws in enumerate(objects):
            docs[t * OBJECT_SLOTS + slot] = kws
        docs[t * OBJECT_SLOTS + SCENE_SLOT] = images[t]
        items = [{"slot": s, "label": "car", "score": 0.9, "box": [0.1, 0.1, 0.3, 0.3], "region": None,
                  "size": [640, 480], "mined": True} for s in range(len(objects))]
        records.append(TaskRecord(t, engine.mining_hash, "mined", "a scene", None, {"object_uncertainty": 0.1},
                                  "d", json.dumps({"digest": "x", "items": items, "errors": []})))
    engine.index.upsert_many(engine.scope(1), images)
    engine.index.upsert_many(engine.object_scope(1), docs)
    engine.store.save_tasks(1, records)
    return [i + 1 for i in TRAILERS]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_object_mining_ranks_the_rarest_thing_in_each_task(tmp_path, seed):
    from backend.engine import Engine
    from backend.settings import Settings

    engine = Engine(Settings.from_env({}, model_dir=str(tmp_path), object_mining=True))
    trailers = scene_project(engine, seed)
    order, result = engine.ranking(1)
    assert sorted(order[:6]) == sorted(trailers)
    # one novelty: the object novelty (scene included) is what is ranked as "novelty"; the
    # detector's uncertainty, the same for every task, is left out
    assert result.ranked == ("novelty",)
    assert np.array_equal(result.novelty, result.signals["object_novelty"])
    # without the scene among the objects, the scene's novelty stays a signal of its own
    apart = Engine(Settings.from_env({}, model_dir=str(tmp_path / "apart"), object_mining=True,
                                     object_with_scene=False))
    scene_project(apart, seed)
    _, result_apart = apart.ranking(1)
    assert result_apart.ranked == ("novelty", "object_novelty")
