"""The embedded job runner (no Redis): its lanes keep running whatever a job or the store does."""

from __future__ import annotations

import sqlite3
import time

from backend.engine.engine import Engine
from backend.jobs.embedded import EmbeddedQueue
from backend.settings import Settings
from tests.support.data import TEXT_CONFIG


def test_a_lane_outlives_a_failure_to_record_a_finished_job(tmp_path):
    engine = Engine(Settings.from_env({}, model_dir=str(tmp_path), rerank_delay=60.0))
    engine.project(1, TEXT_CONFIG)
    queue = EmbeddedQueue(engine, engine.store, poll_interval=0.05)
    real_finish = engine.store.finish
    finished: list[int] = []

    def finish(job_id: int) -> None:
        finished.append(job_id)
        if len(finished) == 1:  # SQLite past its busy timeout
            raise sqlite3.OperationalError("database is locked")
        real_finish(job_id)

    engine.store.finish = finish
    queue.start()
    try:
        queue.submit_tasks(1, [{"id": 1, "data": {"text": "a kite on the beach"}}])
        queue.submit_tasks(1, [{"id": 2, "data": {"text": "a walrus on the ice"}}])
        deadline = time.monotonic() + 30
        while engine.index.task_count(engine.scope(1)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        queue.stop()
    assert engine.index.task_count(engine.scope(1)) == 2  # the second job ran on the same lane
    assert len(finished) == 2
    # the job whose outcome was lost is still "running": the next start queues it again (idempotent)
    assert engine.store.requeue_running() == 1
