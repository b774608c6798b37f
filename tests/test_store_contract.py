"""One contract for both state stores: SQLiteStore (embedded) and RedisStore (shared).

The Redis cases run against a real server (the test run's own, ``redis_server``)
and FAIL when it cannot start: a missing Redis must not turn into a green run.
Each Redis case uses its own key prefix and deletes it after.
"""

from __future__ import annotations

import inspect
import itertools
import threading
import time
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.state.redis_store import RedisStore
from backend.state.sqlite_store import ProjectState, SQLiteStore, TaskRecord

TEST_PREFIX = "vlmine-test-store"
JOB_METHODS = ("enqueue", "enqueue_many", "claim", "finish", "fail", "requeue_running", "job_counts", "failed_jobs")

_pids = itertools.count(1000)


@pytest.fixture(params=["sqlite", "redis", "redis-decoded"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "s.sqlite3")
        yield s
        s.close()
        return
    client = request.getfixturevalue("redis_server").client(decode_responses=request.param == "redis-decoded")
    prefix = f"{TEST_PREFIX}:{uuid.uuid4().hex}"
    s = RedisStore(client, prefix=prefix)
    try:
        yield s
    finally:
        s.close()
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def rec(tid: int, status: str = "mined", error: str | None = None, **signals: float) -> TaskRecord:
    return TaskRecord(tid, f"h{tid}", status, f"description of {tid}" if status == "mined" else None,
                      error, dict(signals))


def recount(store, pid: int) -> dict[str, int]:
    return dict(Counter(r.status for r in store.get_tasks(pid).values()))


# --------------------------------------------------------------------------- interface
def test_interface_matches_sqlite_minus_jobs():
    public = {n for n in dir(SQLiteStore) if not n.startswith("_")}
    for name in sorted(public - set(JOB_METHODS)):
        assert hasattr(RedisStore, name), name
        ours, theirs = getattr(RedisStore, name), getattr(SQLiteStore, name)
        if callable(theirs):
            assert inspect.signature(ours) == inspect.signature(theirs), name
    for name in JOB_METHODS:
        assert hasattr(SQLiteStore, name)
        assert not hasattr(RedisStore, name), name


# --------------------------------------------------------------------------- projects
def test_project_round_trip(store):
    assert store.get_project(1) is None
    assert store.projects() == []
    state = ProjectState(7, label_config="<View/>", base_version="vlmine-abc", generation=0)
    store.save_project(state)
    got = store.get_project(7)
    assert got == state
    assert got.live_version == "vlmine-abc"

    state.generation, state.view_id, state.synced = 3, 42, "vlmine-abc"
    store.save_project(state)
    got = store.get_project(7)
    assert got == ProjectState(7, "<View/>", "vlmine-abc", 3, 42, "vlmine-abc")
    assert got.live_version == "vlmine-abc-r3"

    # Fields set back to None are cleared, not kept.
    store.save_project(ProjectState(7, label_config="", base_version=None, generation=5))
    got = store.get_project(7)
    assert got == ProjectState(7, "", None, 5, None, None)
    assert got.live_version is None

    store.save_project(ProjectState(2))
    assert store.get_project(2) == ProjectState(2)
    assert store.projects() == [2, 7]


# --------------------------------------------------------------------------- written
def test_written_set_replace_forget(store):
    pid = 5
    assert store.written(pid, "v1") == {}
    store.set_written(pid, "v1", {1: (0.1 + 0.2, 11), 2: (0.5, None), 3: (1.0, 13)})
    assert store.written(pid, "v1") == {1: (0.1 + 0.2, 11), 2: (0.5, None), 3: (1.0, 13)}
    assert store.written(pid, "v2") == {}
    assert store.written(6, "v1") == {}

    # Partial update under another version moves those tasks to it.
    store.set_written(pid, "v2", {3: (0.25, 23)})
    assert store.written(pid, "v1") == {1: (0.1 + 0.2, 11), 2: (0.5, None)}
    assert store.written(pid, "v2") == {3: (0.25, 23)}

    # replace forgets every other entry of the project, in every version.
    store.set_written(pid, "v3", {4: (0.75, 34), 5: (0.0, None)}, replace=True)
    assert store.written(pid, "v1") == {}
    assert store.written(pid, "v2") == {}
    assert store.written(pid, "v3") == {4: (0.75, 34), 5: (0.0, None)}
    store.set_written(pid, "v3", {}, replace=True)
    assert store.written(pid, "v3") == {}



def test_written_prediction_id_coalesce(store):
    pid = 9
    store.set_written(pid, "v1", {1: (0.5, 10), 2: (0.5, 20)})
    # Unknown id under the same version: the known one is kept, the score updated.
    store.set_written(pid, "v1", {1: (0.7, None)})
    assert store.written(pid, "v1") == {1: (0.7, 10), 2: (0.5, 20)}
    # A known id always wins.
    store.set_written(pid, "v1", {1: (0.8, 15)})
    assert store.written(pid, "v1")[1] == (0.8, 15)
    # Unknown id under a new version: the old version's id is dropped.
    store.set_written(pid, "v2", {1: (0.9, None)})
    assert store.written(pid, "v2") == {1: (0.9, None)}
    # ... and not resurrected when going back to the old version.
    store.set_written(pid, "v1", {1: (0.6, None)})
    assert store.written(pid, "v1") == {1: (0.6, None), 2: (0.5, 20)}
    # replace forgets first, so nothing is kept even under the same version.
    store.set_written(pid, "v1", {2: (0.1, None)}, replace=True)
    assert store.written(pid, "v1") == {2: (0.1, None)}


def test_written_big_batch(store):
    pid = 11
    scores = {t: (t * 0.001, t + 100000 if t % 2 else None) for t in range(2500)}
    store.set_written(pid, "v", scores)
    assert store.written(pid, "v") == scores
    store.set_written(pid, "w", {t: (1.0, None) for t in range(2400)}, replace=True)
    assert store.written(pid, "v") == {}
    assert len(store.written(pid, "w")) == 2400


# --------------------------------------------------------------------------- tasks
def test_tasks_round_trip_counts_failures(store):
    pid = 3
    assert store.get_tasks(pid) == {}
    assert store.task_counts(pid) == {}
    assert store.failures(pid) == []

    records = [rec(1, a=0.5, b=-2.0), rec(2), rec(3, "failed", "boom 3"), rec(4, "failed", "boom ünï 4")]
    store.save_tasks(pid, records)
    assert store.get_tasks(pid) == {r.task_id: r for r in records}
    assert store.get_tasks(pid, [2, 4, 99]) == {2: records[1], 4: records[3]}
    assert store.get_tasks(pid, iter([1])) == {1: records[0]}
    assert store.get_tasks(pid, []) == {}
    assert store.get_tasks(pid + 1) == {}
    assert store.task_counts(pid) == {"mined": 2, "failed": 2}

    time.sleep(0.01)
    store.save_tasks(pid, [rec(5, "failed", None)])
    time.sleep(0.01)
    store.save_tasks(pid, [rec(6, "failed", "boom 6")])
    assert store.failures(pid)[:2] == [(6, "boom 6"), (5, None)]
    assert sorted(store.failures(pid)) == [(3, "boom 3"), (4, "boom ünï 4"), (5, None), (6, "boom 6")]
    assert store.failures(pid, 1) == [(6, "boom 6")]
    assert store.failures(pid, 0) == []

    # A failed task mined later leaves the failures; a mined one that fails joins them on top.
    time.sleep(0.01)
    store.save_tasks(pid, [rec(6, "mined"), rec(1, "failed", "late")])
    assert store.failures(pid, 2) == [(1, "late"), (5, None)]
    assert store.task_counts(pid) == {"mined": 2, "failed": 4}
    assert store.get_tasks(pid, [1])[1] == rec(1, "failed", "late")

    store.set_written(pid, "v", {1: (0.1, 1), 2: (0.2, 2), 7: (0.7, 7)})
    store.delete_tasks(pid, [1, 2, 7, 100])
    assert set(store.get_tasks(pid)) == {3, 4, 5, 6}
    assert store.written(pid, "v") == {}
    assert store.task_counts(pid) == {"mined": 1, "failed": 3}
    # 3 and 4 were saved in one call (same time): their relative order is unspecified.
    assert store.failures(pid)[0] == (5, None)
    assert sorted(store.failures(pid)[1:]) == [(3, "boom 3"), (4, "boom ünï 4")]
    store.delete_tasks(pid, [])
    store.delete_tasks(pid, [3, 4, 5, 6])
    assert store.task_counts(pid) == {}
    assert store.failures(pid) == []
    assert store.get_tasks(pid) == {}


def test_task_data_digest_round_trip(store):
    store.save_tasks(8, [TaskRecord(1, "h", "mined", "d", None, {}, "0123abcd"), rec(2)])
    got = store.get_tasks(8)
    assert got[1].data_digest == "0123abcd" and got[2].data_digest is None
    store.save_tasks(8, [TaskRecord(1, "h", "failed", None, "gone", {}, "ffff0000")])
    assert store.get_tasks(8, [1])[1].data_digest == "ffff0000"


def test_task_objects_and_signals_round_trip(store):
    """Object mining's record (JSON text, parsed on access) and the signals-only read a ranking makes."""
    objects = '{"digest": "ab", "items": [{"slot": 0, "label": "car"}], "errors": ["box outside"]}'
    store.save_tasks(9, [TaskRecord(1, "h", "mined", "d", None, {"object_uncertainty": 0.6}, "0123", objects),
                         TaskRecord(2, "h", "mined", "d", None, {}, "4567"), rec(3)])
    got = store.get_tasks(9)
    assert got[1].objects == {"digest": "ab", "items": [{"slot": 0, "label": "car"}], "errors": ["box outside"]}
    assert got[2].objects is None and got[2].objects_json is None
    assert store.get_signals(9) == {1: {"object_uncertainty": 0.6}}  # tasks without signals are left out
    store.delete_tasks(9, [1])
    assert 1 not in store.get_signals(9) and store.get_tasks(9, [1]) == {}


def test_tasks_big_batch_and_duplicates(store):
    pid = 4
    records = [rec(t, "failed" if t % 7 == 0 else "mined", f"e{t}" if t % 7 == 0 else None, s=float(t))
               for t in range(2300)]
    store.save_tasks(pid, records)
    got = store.get_tasks(pid)
    assert len(got) == 2300 and got[2299] == records[2299]
    assert store.task_counts(pid) == recount(store, pid) == {"failed": 329, "mined": 1971}
    assert len(store.get_tasks(pid, range(0, 3000, 2))) == 1150
    assert len(store.failures(pid, 1000)) == 329
    # The same task twice in one call: the last record wins and is counted once.
    store.save_tasks(pid, [rec(5000, "failed", "x"), rec(5000, "mined")])
    assert store.get_tasks(pid, [5000])[5000].status == "mined"
    assert store.task_counts(pid) == {"failed": 329, "mined": 1972}
    store.delete_tasks(pid, [t for t in range(0, 2300, 2)])
    assert store.task_counts(pid) == recount(store, pid)


task_ops = st.lists(
    st.one_of(
        st.tuples(st.just("save"), st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["mined", "failed", "odd"])),
                                            max_size=6)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 12), max_size=6)),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=task_ops)
@pytest.mark.slow
def test_counts_match_recount_property(store, ops):
    pid = next(_pids)  # a fresh project per example, in the same store
    model: dict[int, str] = {}
    for op, arg in ops:
        if op == "save":
            store.save_tasks(pid, [rec(t, s, "err" if s == "failed" else None) for t, s in arg])
            model.update(dict(arg))
        else:
            store.delete_tasks(pid, arg)
            for t in arg:
                model.pop(t, None)
    counts = store.task_counts(pid)
    assert counts == recount(store, pid) == dict(Counter(model.values()))
    assert {t for t, _ in store.failures(pid, -1)} == {t for t, s in model.items() if s == "failed"}


def test_concurrent_writers_keep_counts_exact(store):
    pid = 8
    errors: list[BaseException] = []

    def writer(parity: int) -> None:
        try:
            ids = list(range(parity, 600, 2))
            for rnd in range(6):
                status = "failed" if (rnd + parity) % 2 else "mined"
                for i in range(0, len(ids), 50):
                    store.save_tasks(pid, [rec(t, status, "e" if status == "failed" else None)
                                           for t in ids[i:i + 50]])
                store.delete_tasks(pid, ids[rnd::7])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    counts = store.task_counts(pid)
    assert counts == recount(store, pid)
    assert sum(counts.values()) == len(store.get_tasks(pid))
    assert len(store.failures(pid, -1)) == counts.get("failed", 0)


# --------------------------------------------------------------------------- cache
def test_cache_get_put(store):
    assert store.cache_get([]) == {}
    assert store.cache_get(["a"]) == {}
    store.cache_put({"a": ("a cat", ["cat", "sofa"]), "b": (None, []), "c|ü": ("x", ["ü"])})
    assert store.cache_get(["a", "b", "c|ü", "missing"]) == {
        "a": ("a cat", ["cat", "sofa"]), "b": (None, []), "c|ü": ("x", ["ü"])}
    store.cache_put({"a": ("a dog", ["dog"])})
    assert store.cache_get(iter(["a"])) == {"a": ("a dog", ["dog"])}
    many = {f"k{i}": (f"d{i}", [str(i)]) for i in range(1200)}
    store.cache_put(many)
    assert store.cache_get(many) == many


# --------------------------------------------------------------------------- thumbnails
def test_thumbnails_put_get_replace_and_forget_with_the_task(store):
    pid = 9
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"|\x00\xff\xd9"  # any bytes, "|" and NUL included
    assert store.get_thumbnails(pid, []) == {}
    assert store.get_thumbnails(pid, [1, 2]) == {}
    store.save_tasks(pid, [rec(1), rec(2), rec(3)])
    store.put_thumbnails(pid, {1: (0, jpeg), 2: (3, b"\xff\xd8two")})
    store.put_thumbnails(pid, {})
    assert store.get_thumbnails(pid, iter([1, 2, 3, 1])) == {1: (0, jpeg), 2: (3, b"\xff\xd8two")}
    assert store.get_thumbnails(pid + 1, [1, 2]) == {}  # per project
    store.put_thumbnails(pid, {2: (1, b"\xff\xd8new")})  # the rarest object changed: replaced
    assert store.get_thumbnails(pid, [2]) == {2: (1, b"\xff\xd8new")}
    store.delete_tasks(pid, [2, 3])  # forgotten with its task
    assert store.get_thumbnails(pid, [1, 2, 3]) == {1: (0, jpeg)}
    assert set(store.get_tasks(pid)) == {1}
    many = {t: (t % 16, bytes([t % 256]) * 40) for t in range(10, 1310)}  # more than one chunk
    store.put_thumbnails(pid, many)
    assert store.get_thumbnails(pid, many) == many


# --------------------------------------------------------------------------- stale explanations
def test_stale_explanations_mark_clear_only_the_named_and_forget_with_the_task(store):
    pid = 11
    assert store.stale_explanations(pid) == []
    store.mark_explanations_stale(pid, [])
    store.clear_stale_explanations(pid, [])
    store.save_tasks(pid, [rec(1), rec(2), rec(3), rec(4)])
    store.mark_explanations_stale(pid, iter([3, 1, 3]))
    store.mark_explanations_stale(pid, [1, 2])  # marked again while still pending: one entry
    assert store.stale_explanations(pid) == [1, 2, 3]
    assert store.stale_explanations(pid + 1) == []  # per project
    store.mark_explanations_stale(pid + 1, [1])
    # a re-rank read [1, 2, 3], rewrote them, and task 4 was marked while it ran: 4 stays
    store.mark_explanations_stale(pid, [4])
    store.clear_stale_explanations(pid, [1, 2, 3])
    assert store.stale_explanations(pid) == [4]
    assert store.stale_explanations(pid + 1) == [1]
    store.clear_stale_explanations(pid, [9])  # never marked: nothing happens
    store.mark_explanations_stale(pid, [2])
    store.delete_tasks(pid, [4])  # forgotten with its task
    assert store.stale_explanations(pid) == [2]
    assert set(store.get_tasks(pid)) == {1, 2, 3}
    many = list(range(10, 2510))  # more than one chunk
    store.mark_explanations_stale(pid, many)
    assert store.stale_explanations(pid) == [2, *many]
    store.clear_stale_explanations(pid, many[:1200])
    assert store.stale_explanations(pid) == [2, *many[1200:]]


def test_update_project_changes_only_the_named_fields(store):
    store.save_project(ProjectState(3, label_config="<View/>", base_version="v", generation=2, view_id=9,
                                    total=10))
    stale = store.get_project(3)
    store.update_project(3, generation=3, dirty="v-r3")
    store.update_project(3, total=12)  # a writer holding a stale copy touches only its field
    state = store.get_project(3)
    assert (state.generation, state.dirty, state.total, state.view_id, state.label_config) == (3, "v-r3", 12, 9,
                                                                                                "<View/>")
    assert stale.generation == 2
    store.update_project(3, dirty=None)
    assert store.get_project(3).dirty is None and store.get_project(3).live_version == "v-r3"
    with pytest.raises(ValueError):
        store.update_project(3, colour="red")


def test_redis_task_records_written_before_the_data_digest_still_read():
    from backend.state.redis_store import _unpack_task

    old = '["mined", "h1", "a cat", null, {"u": 0.5}]'
    assert _unpack_task(1, old) == TaskRecord(1, "h1", "mined", "a cat", None, {"u": 0.5}, None)


def test_sqlite_store_made_before_stale_explanations_gains_the_table(tmp_path):
    """A state file written by a release without the table opens with it, its records kept."""
    import sqlite3

    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).save_tasks(5, [rec(1)])
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE stale_explanations")
    store = SQLiteStore(path)
    store.mark_explanations_stale(5, [1])
    assert store.stale_explanations(5) == [1] and set(store.get_tasks(5)) == {1}
    store.close()
