"""RQQueue against a real Redis (a whole database of the test run's own server, lent to each
test): what /metrics lists of failed jobs, the pending marks that dedupe re-ranks, syncs and
annotation sweeps, and which queue each job kind goes to."""

from __future__ import annotations

import operator

import pytest
import redis
from rq import SimpleWorker
from rq.job import Job

import backend.jobs.rq as rq_jobs
from backend.engine.engine import Engine
from backend.jobs.rq import MINE_QUEUE, QUEUE_OF, WRITE_QUEUE, RQQueue
from backend.jobs.runner import MINE_LANE, WRITE_LANE
from backend.settings import Settings


@pytest.fixture()
def queue(tmp_path, redis_db_url):
    engine = Engine(Settings.from_env({"REDIS_URL": redis_db_url, "MODEL_DIR": str(tmp_path)}))
    yield RQQueue(engine)


def _fail(queue: RQQueue, name: str, n: int) -> list[str]:
    """``n`` jobs on queue ``name`` that fail (1 / 0), run to the end by a burst worker."""
    rq_queue = queue.queues[name]
    ids = [rq_queue.enqueue(operator.truediv, 1, 0).id for _ in range(n)]
    SimpleWorker([rq_queue], connection=queue.redis).work(burst=True)
    return ids


@pytest.mark.slow
def test_failed_jobs_are_the_newest_of_both_queues_newest_first(queue):
    mine = _fail(queue, MINE_QUEUE, 12)
    write = _fail(queue, WRITE_QUEUE, 1)
    listed = queue.failed_jobs(10)
    assert len(listed) == 10 and listed[0]["id"] == write[0]  # a busy mine queue does not hide it
    assert {j["id"] for j in listed[1:]} <= set(mine)
    ended = [Job.fetch(j["id"], connection=queue.redis).ended_at for j in listed]
    assert ended == sorted(ended, reverse=True)
    assert all("ZeroDivisionError" in j["error"] for j in listed)


def test_a_pending_mark_whose_job_could_not_be_queued_is_taken_back(queue, monkeypatch):
    write = queue.queues[WRITE_QUEUE]

    def redis_went_away(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Connection reset by peer")

    with monkeypatch.context() as patched:
        patched.setattr(write, "enqueue_in", redis_went_away)
        with pytest.raises(redis.exceptions.ConnectionError):
            queue.submit_rerank(5, delay=30)
    assert not queue.redis.exists(queue._pending_key("rerank", 5))
    queue.submit_rerank(5, delay=30)  # the next one is not swallowed
    assert write.scheduled_job_registry.count == 1

    mine = queue.queues[MINE_QUEUE]
    with monkeypatch.context() as patched:
        patched.setattr(mine, "enqueue", redis_went_away)
        with pytest.raises(redis.exceptions.ConnectionError):
            queue.submit_sync(5)
    assert not queue.redis.exists(queue._pending_key("sync", 5))
    queue.submit_sync(5)
    assert mine.count == 1


def test_each_kind_goes_to_its_lanes_queue_and_one_annotation_sweep_waits_per_project(queue, monkeypatch):
    """A worker started with ``--queues mine`` never writes to Label Studio: the sweep of
    annotations a sync queues goes to the write queue, as re-ranks and clean-ups do."""
    assert QUEUE_OF == {**{kind: MINE_QUEUE for kind in MINE_LANE}, **{kind: WRITE_QUEUE for kind in WRITE_LANE}}
    assert QUEUE_OF["sync"] == MINE_QUEUE and QUEUE_OF["sweep_annotations"] == WRITE_QUEUE
    write = queue.queues[WRITE_QUEUE]
    queue.submit_annotation_sweep(5)
    queue.submit_annotation_sweep(5)  # one is waiting: nothing more
    queue.submit_annotation_sweep(6)
    assert [job.args for job in write.get_jobs()] == [("sweep_annotations", 5, {}), ("sweep_annotations", 6, {})]
    assert queue.queues[MINE_QUEUE].count == 0
    # a write worker runs them (no Label Studio connection: nothing to sweep); each took its
    # project's mark down as it started, so the next sync's sweep is queued again
    monkeypatch.setattr(rq_jobs, "_runtime", (queue.engine, queue))
    SimpleWorker([write], connection=queue.redis).work(burst=True)
    assert write.count == 0 and write.finished_job_registry.count == 2
    queue.submit_annotation_sweep(5)
    assert write.count == 1
