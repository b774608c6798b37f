"""Per-project locks: in-process and through a real Redis (the test run's own server, a key
prefix per test).

The Redis lock is a lease renewed while its holder works: a re-rank of a big
project may run past any fixed expiry, and must still exclude a second worker.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from backend.state.coordination import LocalCoordination, RedisCoordination


@pytest.fixture
def redis_coord(redis_server):
    client = redis_server.client()
    prefix = f"vlmine-test-coord:{uuid.uuid4().hex}"
    yield RedisCoordination(client, prefix=prefix)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _hold(coord, pid: int, seconds: float, started: threading.Event, **kwargs) -> threading.Thread:
    def run():
        with coord.project_lock(pid, **kwargs):
            started.set()
            time.sleep(seconds)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(5)
    return t


def test_redis_lock_outlives_its_lease_while_the_holder_works(redis_coord):
    started = threading.Event()
    holder = _hold(redis_coord, 7, 2.0, started, lease=0.6)
    time.sleep(1.4)  # more than twice the lease: only the renewal keeps the lock
    with pytest.raises(TimeoutError, match="project 7 is busy"):
        with redis_coord.project_lock(7, timeout=0.2, lease=0.6):
            pass
    holder.join()
    with redis_coord.project_lock(7, timeout=1.0, lease=0.6):  # free again once the holder is done
        assert redis_coord.client.exists(redis_coord._key("lock", 7))
    assert not redis_coord.client.exists(redis_coord._key("lock", 7))


def test_redis_lock_of_a_dead_holder_frees_the_project_after_the_lease(redis_coord):
    # a holder that died leaves its key with no one renewing it
    redis_coord.client.set(redis_coord._key("lock", 8), "dead-worker-token", px=500)
    with pytest.raises(TimeoutError):
        with redis_coord.project_lock(8, timeout=0.1, lease=0.5):
            pass
    with redis_coord.project_lock(8, timeout=3.0, lease=0.5):
        value = redis_coord.client.get(redis_coord._key("lock", 8))
        assert value is not None and value != b"dead-worker-token"


def test_redis_locks_of_different_projects_do_not_block_each_other(redis_coord):
    started = threading.Event()
    holder = _hold(redis_coord, 1, 1.0, started)
    with redis_coord.project_lock(2, timeout=0.2):
        pass
    holder.join()


def test_local_lock_excludes_a_second_holder_until_released():
    coord = LocalCoordination()
    started = threading.Event()
    holder = _hold(coord, 3, 0.8, started)
    with pytest.raises(TimeoutError):
        with coord.project_lock(3, timeout=0.1):
            pass
    holder.join()
    with coord.project_lock(3, timeout=0.5):
        pass
