"""Keyword index: counts equal a recount after random writes, on SQLite and real Redis.

Redis is the test run's own server (the ``redis_server`` fixture); each test keeps to a key
prefix of its own and deletes it afterwards. If the server cannot start, the Redis tests FAIL;
they never skip.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import uuid
from collections import Counter

import numpy as np
import pytest
import redis

from backend.mining.keyword_index import IndexArrays, KeywordIndex
from backend.settings import Settings
from backend.state import INDEX_FILE, open_state
from backend.state.redis_index import RedisIndex
from backend.state.sqlite_index import SQLiteIndex

WORDS = [f"w{i}" for i in range(40)] + ["bus", "double-decker bus", "café", "x y z"]


def cleanup(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_prefix(redis_server):
    client = redis_server.client()
    prefix = f"vlmine-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    cleanup(client, prefix)
    client.close()


@pytest.fixture(params=["sqlite", "redis"])
def index(request, tmp_path, redis_server, redis_prefix):
    if request.param == "sqlite":
        idx: KeywordIndex = SQLiteIndex(tmp_path / "index.sqlite3")
    else:
        idx = RedisIndex(redis_server.client(), prefix=redis_prefix, owns_client=True)
    yield idx
    idx.close()


def recount(model: dict[int, set[str]]) -> Counter:
    return Counter(k for kws in model.values() for k in kws)


def assert_matches(idx: KeywordIndex, scope: str, model: dict[int, set[str]]) -> None:
    """Everything the index says equals a recount from the model."""
    df = recount(model)
    assert idx.task_count(scope) == len(model)
    assert idx.document_frequencies(scope) == {k: v for k, v in df.items() if v > 0}
    probe = list(df) + ["never-seen"]
    assert idx.document_frequencies(scope, probe) == {k: df.get(k, 0) for k in probe}
    assert idx.get_many(scope, list(model) + [10**9]) == {t: sorted(k) for t, k in model.items()}
    assert idx.contains(scope, list(model) + [-5, 10**9]) == set(model)
    arrays = idx.arrays(scope)
    arrays.validate()
    assert arrays.task_ids.tolist() == sorted(model)
    names = idx.keyword_names(scope, range(arrays.vocab_size))
    for i, tid in enumerate(arrays.task_ids.tolist()):
        assert sorted(names[k] for k in arrays.row(i)) == sorted(model[tid])
    assert {names[k]: int(c) for k, c in enumerate(arrays.df) if c} == dict(df)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_equal_recount_after_random_operations(index, seed):
    rng = random.Random(seed)
    scope = f"project:{seed}:hash"
    model: dict[int, set[str]] = {}
    for step in range(60):
        op = rng.random()
        if op < 0.6:
            batch = {
                rng.randrange(50): set(rng.sample(WORDS, rng.randrange(0, 8)))
                for _ in range(rng.randrange(1, 12))
            }
            index.upsert_many(scope, {t: list(k) for t, k in batch.items()})
            model.update(batch)
        elif op < 0.8:
            tid = rng.choice(list(model)) if model and rng.random() < 0.7 else rng.randrange(50)
            kws = set(rng.sample(WORDS, rng.randrange(0, 6)))
            index.upsert(scope, tid, kws)
            model[tid] = kws
        else:
            victims = [rng.randrange(60) for _ in range(rng.randrange(1, 6))]
            existed = {v for v in victims if v in model}
            assert index.delete(scope, victims) == len(existed)
            for v in existed:
                del model[v]
        if step % 15 == 14:
            assert_matches(index, scope, model)
    assert_matches(index, scope, model)


def test_reupsert_never_double_counts(index):
    for _ in range(3):
        index.upsert("s", 1, ["bus", "road", "bus"])
    index.upsert_many("s", {1: ["bus", "road"], 2: ["bus"]})
    assert index.document_frequencies("s") == {"bus": 2, "road": 1}
    index.upsert("s", 1, ["horse"])
    assert index.document_frequencies("s") == {"bus": 1, "horse": 1}
    assert index.get("s", 1) == ["horse"]


def test_empty_keyword_set_is_a_known_task(index):
    index.upsert("s", 5, [])
    assert index.get("s", 5) == []
    assert index.contains("s", [5, 6]) == {5}
    assert index.task_count("s") == 1
    arrays = index.arrays("s")
    assert arrays.task_ids.tolist() == [5] and arrays.indptr.tolist() == [0, 0]
    assert index.get("s", 6) is None


def test_scopes_are_separate_and_droppable(index):
    index.upsert_many("project:1:a", {1: ["bus"], 2: ["bus", "car"]})
    index.upsert_many("project:1:a:b", {1: ["car"]})  # a scope that extends another's name
    assert index.document_frequencies("project:1:a") == {"bus": 2, "car": 1}
    assert index.document_frequencies("project:1:a:b") == {"car": 1}
    index.drop_scope("project:1:a")
    assert index.task_count("project:1:a") == 0
    assert index.arrays("project:1:a").n_tasks == 0
    assert index.get("project:1:a:b", 1) == ["car"]
    index.upsert("project:1:a", 3, ["tram"])
    assert_matches(index, "project:1:a", {3: {"tram"}})
    assert index.document_frequencies("unknown") == {}
    assert index.document_frequencies("unknown", ["a"]) == {"a": 0}
    assert index.get_many("unknown", [1]) == {} and index.contains("unknown", [1]) == set()
    assert index.delete("unknown", [1]) == 0


def test_keyword_names_and_ids(index):
    index.upsert_many("s", {1: ["b", "a"], 2: ["c"]})
    arrays = index.arrays("s")
    names = index.keyword_names("s", range(arrays.vocab_size))
    assert sorted(names) == ["a", "b", "c"]
    with pytest.raises(KeyError):
        index.keyword_names("s", [arrays.vocab_size + 5])
    with pytest.raises(TypeError):
        index.upsert("s", 3, "bus")  # a bare string is a bug, not 3 keywords


def test_arrays_are_sorted_by_task_and_consistent(index):
    rng = np.random.default_rng(4)
    items = {int(t): [f"k{int(k)}" for k in rng.integers(0, 30, rng.integers(0, 9))] for t in rng.permutation(300)}
    index.upsert_many("s", items)
    model = {t: set(k) for t, k in items.items()}
    assert_matches(index, "s", model)


def _redis_worker(url: str, prefix: str, worker: int, rounds: int) -> None:
    idx = RedisIndex(redis.Redis.from_url(url), prefix=prefix, owns_client=True)
    rng = random.Random(worker)
    for _ in range(rounds):
        batch = {rng.randrange(40): rng.sample(WORDS, rng.randrange(0, 7)) for _ in range(20)}
        idx.upsert_many("shared", batch)
        if rng.random() < 0.2:
            idx.delete("shared", [rng.randrange(40)])
    idx.close()


def test_redis_concurrent_processes_keep_counts_exact(redis_server, redis_prefix):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_redis_worker, args=(redis_server.url(), redis_prefix, w, 150)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    idx = RedisIndex(redis_server.client(), prefix=redis_prefix, owns_client=True)
    model = {t: set(k) for t, k in idx.get_many("shared", range(40)).items()}
    assert model  # something survived
    assert_matches(idx, "shared", model)
    idx.close()


def _sqlite_worker(path: str, worker: int, rounds: int) -> None:
    idx = SQLiteIndex(path)
    rng = random.Random(100 + worker)
    for _ in range(rounds):
        idx.upsert_many("shared", {rng.randrange(40): rng.sample(WORDS, rng.randrange(0, 7)) for _ in range(20)})
        if rng.random() < 0.2:
            idx.delete("shared", [rng.randrange(40)])
    idx.close()


def test_sqlite_concurrent_threads_and_processes(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    shared = SQLiteIndex(path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_sqlite_worker, args=(path, w, 60)) for w in range(2)]
    for p in procs:
        p.start()

    def thread_worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(60):
            shared.upsert_many("shared", {rng.randrange(40): rng.sample(WORDS, 3) for _ in range(10)})

    threads = [threading.Thread(target=thread_worker, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    model = {t: set(k) for t, k in shared.get_many("shared", range(40)).items()}
    assert_matches(shared, "shared", model)
    shared.close()


def test_redis_decode_responses_client_works(redis_server, redis_prefix):
    client = redis_server.client(decode_responses=True)
    idx = RedisIndex(client, prefix=redis_prefix)
    idx.upsert_many("s", {1: ["bus", "café"], 2: []})
    assert_matches(idx, "s", {1: {"bus", "café"}, 2: set()})
    idx.close()
    client.close()


def test_open_state_picks_the_index_store(tmp_path, redis_server):
    """SQLite under MODEL_DIR (created when missing) without REDIS_URL; Redis with it."""
    local = open_state(Settings.from_env({}, model_dir=str(tmp_path / "data")))
    assert isinstance(local.index, SQLiteIndex)
    assert (tmp_path / "data" / INDEX_FILE).exists()
    local.close()
    shared = open_state(Settings.from_env({}, model_dir=str(tmp_path / "shared"), redis_url=redis_server.url()))
    assert isinstance(shared.index, RedisIndex)
    shared.close()
    shared.redis.close()


def test_sqlite_survives_reopen(tmp_path):
    path = tmp_path / "index.sqlite3"
    with SQLiteIndex(path) as idx:
        idx.upsert_many("s", {1: ["bus"], 2: ["bus", "road"]})
    with SQLiteIndex(path) as idx:
        idx.upsert("s", 3, ["road", "tram"])
        assert_matches(idx, "s", {1: {"bus"}, 2: {"bus", "road"}, 3: {"road", "tram"}})


def test_index_arrays_validate_rejects_bad_arrays():
    good = IndexArrays(
        task_ids=np.array([1, 2]), indptr=np.array([0, 1, 2]),
        keyword_ids=np.array([0, 0], np.int32), df=np.array([2]),
    )
    good.validate()
    bad = IndexArrays(task_ids=np.array([2, 1]), indptr=good.indptr, keyword_ids=good.keyword_ids, df=good.df)
    with pytest.raises(ValueError):
        bad.validate()


def test_one_task_named_twice_in_a_batch_is_counted_once(index):
    """``1`` and ``"1"`` are one task: the last keywords win, as with two upserts, and the
    document frequencies count it once (SQLite counted both sets)."""
    index.upsert_many("s", {1: ["a"], "1": ["b"], 2: ["b"]})
    assert index.task_count("s") == 2
    assert index.get_many("s", [1]) == {1: ["b"]}
    assert index.document_frequencies("s", ["a", "b"]) == {"a": 0, "b": 2}
    arrays = index.arrays("s")
    assert arrays.task_ids.tolist() == [1, 2] and int(arrays.df.sum()) == 2
