"""The head of the queue covers distinct concepts before it repeats one (HEAD_DIVERSITY)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.mining import IndexArrays, prioritise
from backend.mining.diversity import MAX_HEAD, diversify_head, head_size, holds_rare
from tests.support.mining_data import keyword_arrays, random_projects


def csr(rows: list[list[int]]) -> IndexArrays:
    lengths = [len(r) for r in rows]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    kw = np.array([k for r in rows for k in r], dtype=np.int32)
    df = np.bincount(kw, minlength=int(kw.max()) + 1).astype(np.int64)
    return IndexArrays(np.arange(1, len(rows) + 1, dtype=np.int64), indptr, kw, df)


def corpus() -> tuple[IndexArrays, list[int]]:
    """Keyword 0 is everywhere; concept 1 ("walrus") in 3 tasks, concepts 2, 3, 4 in 4 each
    (so the walrus looks rarest); the rest of 200 tasks carry a common keyword 5 as well."""
    rows: list[list[int]] = []
    concept = []
    for c, size in ((1, 3), (2, 4), (3, 4), (4, 4)):
        for _ in range(size):
            rows.append([0, c])
            concept.append(c)
    for _ in range(200 - len(rows)):
        rows.append([0, 5])
        concept.append(5)
    return csr(rows), concept


def test_the_head_shows_every_rare_concept_before_repeating_one():
    arrays, concept = corpus()
    plain = prioritise(arrays)
    head_plain = [concept[i] for i in plain.order[:4]]
    assert head_plain[:3] == [1, 1, 1] and head_plain[3] != 1  # the rarest-looking concept fills the head
    diverse = prioritise(arrays, head_diversity=0.075)  # 15 tasks
    head = [concept[i] for i in diverse.order[:4]]
    assert sorted(head) == [1, 2, 3, 4]
    # the set of the head is unchanged, and so is everything after it
    assert set(diverse.order[:15].tolist()) == set(plain.order[:15].tolist())
    assert np.array_equal(diverse.order[15:], plain.order[15:])
    # positions and priorities follow the new order; fronts stay the ranking's
    assert np.array_equal(np.argsort(diverse.position), diverse.order)
    assert diverse.priority[diverse.order[0]] == 1.0
    assert np.all(np.diff(diverse.priority[diverse.order]) < 0)
    assert np.array_equal(diverse.front, plain.front)


def test_off_keeps_the_ranking_and_the_result_is_deterministic():
    arrays, _ = corpus()
    plain = prioritise(arrays)
    assert np.array_equal(prioritise(arrays, head_diversity=0).order, plain.order)
    once, twice = prioritise(arrays, head_diversity=0.5), prioritise(arrays, head_diversity=0.5)
    assert np.array_equal(once.order, twice.order)
    assert sorted(once.order.tolist()) == list(range(200))
    inverted = prioritise(arrays, head_diversity=0.5, invert=True)
    assert np.array_equal(inverted.order, once.order)
    assert inverted.priority[once.order[0]] == 1 / 200


def test_a_second_round_when_the_head_repeats_everything():
    arrays, concept = corpus()
    order = prioritise(arrays).order
    out = diversify_head(order, arrays, 15, prioritise(arrays).priority)
    head = [concept[i] for i in out[:15]]
    # round 1 shows each concept once, round 2 again (and round 3; then concept 1 is done)
    assert sorted(head[:4]) == [1, 2, 3, 4] and sorted(head[4:8]) == [1, 2, 3, 4]
    assert sorted(head) == sorted(concept[i] for i in order[:15])


def test_head_size():
    assert head_size(0.0, 1000) == 0 and head_size(0.05, 1) == 0
    assert head_size(0.05, 1000) == 50
    assert head_size(0.001, 100) == 2
    assert head_size(0.5, 10**7) == MAX_HEAD == 2000


def test_other_signals_keep_their_say_in_the_head():
    """A task the ranking puts first on uncertainty stays first: coverage weighs the
    ranking's own score, not novelty alone."""
    arrays, concept = corpus()
    u = np.zeros(200)
    u[150] = 1.0  # a common task, very uncertain: front 0 beside the rare ones
    result = prioritise(arrays, {"uncertainty": u}, head_diversity=0.1)
    plain = prioritise(arrays, {"uncertainty": u})
    assert plain.order[0] == 150 and result.order[0] == 150


def test_the_server_and_mine_give_the_same_diverse_order(tmp_path, monkeypatch):
    """Ranking.rank (the server) and python -m backend mine rank through the same prioritise()
    with the same settings: the same head re-order, the same queue."""
    import json

    from backend.offline.run import build_engine, run_mining
    from backend.offline.sources import load_source
    from backend.engine import Engine
    from backend.settings import Settings

    monkeypatch.delenv("REDIS_URL", raising=False)
    # a walrus in 8 tasks, five other rare things in 3 each: the plain head is all walrus
    texts = ["a cat on a sofa"] * 300
    for i in range(8):
        texts[10 + 20 * i] = "a walrus on the ice"
    for j, thing in enumerate(["harp", "kayak", "lighthouse", "tuba", "glacier"]):
        for i in range(3):
            texts[15 + 50 * j + 7 * i] = f"a {thing} on the ice"
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": i + 1, "text": t}) + "\n" for i, t in enumerate(texts)))
    cli_engine = build_engine(str(tmp_path / "cli"))
    outcome = run_mining(cli_engine, load_source(str(rows), None, cli_engine.settings), {}, progress=False)

    server = Engine(Settings.from_env({}, model_dir=str(tmp_path / "server")))
    xml = '<View><Text name="text" value="$text"/></View>'
    server.tasks.mine(3, [{"id": i + 1, "data": {"text": t}} for i, t in enumerate(texts)], xml)
    order, _ = server.ranker.rank(3)
    assert order == outcome.order
    assert server.settings.head_diversity == cli_engine.settings.head_diversity == 0.05
    arrays = server.index.arrays(server.scope(3))
    plain = [int(t) for t in arrays.task_ids[prioritise(arrays, head_diversity=0).order]]
    assert order != plain and set(order[:15]) == set(plain[:15])  # re-ordered inside the head only


@settings(max_examples=100, deadline=None)
@given(random_projects(), st.sampled_from([0.1, 0.2, 0.5]))
def test_the_head_never_moves_a_common_task_ahead_of_a_rare_one(project, share):
    """Inside the diverse head, a task without a keyword rare enough to fit in the head
    never comes before a task holding one that the ranking put before it; the head's set
    and everything after it are the ranking's."""
    arrays, signals, _ = project
    plain = prioritise(arrays, signals)
    diverse = prioritise(arrays, signals, head_diversity=share)
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
    arrays = keyword_arrays(rows)
    u = np.zeros(len(rows))
    u[6] = 1.0  # very uncertain: the ranking puts this common task first
    u[7] = 0.5  # beaten by task 6 on uncertainty: after the rare tasks, still in the head
    plain = prioritise(arrays, {"uncertainty": u})
    diverse = prioritise(arrays, {"uncertainty": u}, head_diversity=0.08)  # 8 tasks
    assert plain.order[0] == 6 and 7 in plain.order[:8].tolist()
    assert diverse.order[0] == 6  # every signal keeps its say: it stays first
    head = diverse.order[:8].tolist()
    concept = {r: (1 if r < 4 else 2 if r < 6 else 0) for r in head}
    rare_seq = [concept[r] for r in head if concept[r]]
    assert rare_seq[:2] in ([1, 2], [2, 1])  # both concepts before either repeats
    # task 7 waits for every rare-holding task the ranking put before it
    ahead_of_7 = [r for r in plain.order[:8].tolist() if concept[r] and plain.position[r] < plain.position[7]]
    assert all(head.index(r) < head.index(7) for r in ahead_of_7)
