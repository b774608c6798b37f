"""Scale-out on RQ with a real Redis and real worker processes.

Most tests take a whole database of the test run's Redis (``redis_db_url``); the two that stop
and restart Redis start a server of their own, with an append-only file so that a restart keeps
the data."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
import redis
from rq import Queue
from rq.registry import StartedJobRegistry

from backend.engine.engine import Engine
from backend.jobs.rq import MINE_QUEUE, RQQueue
from backend.server.app import create_app
from backend.settings import Settings
from model import VLMineModel
from tests.support.data import DESCRIPTIONS, png
from tests.support.data import PREDICT_IMAGE_CONFIG as IMAGE_CONFIG
from tests.support.fake_openai import FakeOpenAI
from tests.support.image_server import ImageServer
from tests.support.redis_server import RedisServer
from tests.support.workers import kill_group, recount, start_worker, wait_until

TEXT_CONFIG = '<View><Text name="text" value="$text"/></View>'


@pytest.mark.slow
def test_duplicate_webhooks_through_rq_never_double_count(redis_db_url, tmp_path):
    url = redis_db_url
    env = {"REDIS_URL": url, "MODEL_DIR": str(tmp_path), "BATCH_SIZE": "4", "RERANK_DELAY": "0"}
    settings = Settings.from_env(env)
    engine = Engine(settings)
    app = create_app(settings, VLMineModel, engine=engine)
    client = app.test_client()
    tasks = [{"id": i, "data": {"text": t}} for i, t in
             enumerate(["a red bus", "a horse", "a red bus on a road", "a kite", "a horse and a man"], start=1)]
    body = {"action": "TASKS_CREATED", "project": {"id": 3, "label_config": TEXT_CONFIG}, "tasks": tasks}
    for _ in range(2):
        assert client.post("/webhook", json=body).get_json()["jobs"] == 2
    assert Queue(MINE_QUEUE, connection=engine.redis).count == 4
    log = tmp_path / "worker.log"
    proc = start_worker(env, log, "--burst", "--queues", "mine")
    assert proc.wait(120) == 0, log.read_text()[-3000:]
    scope = engine.scope(3)
    assert engine.index.task_count(scope) == 5
    df = engine.index.document_frequencies(scope)
    assert df == dict(recount(engine, scope))
    assert df["bus"] == 2 and df["horse"] == 2
    metrics = client.get("/metrics").get_json()
    assert metrics["counters"]["tasks_mined"] == 10  # every delivery mined, none counted twice in the index
    assert metrics["projects"]["3"]["mined"] == 5


@pytest.mark.slow
def test_a_worker_killed_mid_batch_is_replaced_and_nothing_is_lost(redis_db_url, tmp_path):
    url = redis_db_url
    colours = ["red", "green", "blue", "yellow"] * 4
    files = {f"/img{i}.png": png(c, i) for i, c in enumerate(colours)}
    images = ImageServer(files)
    with FakeOpenAI(by_colour=DESCRIPTIONS, delay=0.4) as vlm:
        env = {"REDIS_URL": url, "MODEL_DIR": str(tmp_path), "BATCH_SIZE": "8", "JOB_TIMEOUT": "5",
               "VLM_API_URL": vlm.base_url, "VLM_API_MODEL": "fake", "VLM_API_CONCURRENCY": "1",
               "KEYWORD_MODE": "rules", "IMAGE_ALLOW_PRIVATE_NETWORKS": "true", "RERANK_DELAY": "0"}
        settings = Settings.from_env(env)
        engine = Engine(settings)
        queue = RQQueue(engine)
        tasks = [{"id": i + 1, "data": {"image": f"{images.url}/img{i}.png"}} for i in range(len(colours))]
        engine.project(4, IMAGE_CONFIG)
        assert queue.submit_tasks(4, tasks, IMAGE_CONFIG) == 2
        log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
        first = start_worker(env, log_a, "--queues", "mine", "--name", f"a-{uuid.uuid4().hex[:6]}")
        started = StartedJobRegistry(MINE_QUEUE, connection=engine.redis)
        wait_until(lambda: started.count > 0 and vlm.calls >= 2, 60, "worker A to start a batch", log_a)
        kill_group(first)
        killed_calls = vlm.calls
        assert engine.index.task_count(engine.scope(4)) < len(tasks)
        second = start_worker(env, log_b, "--queues", "mine", "--maintenance-interval", "2",
                              "--name", f"b-{uuid.uuid4().hex[:6]}")
        try:
            wait_until(lambda: engine.index.task_count(engine.scope(4)) == len(tasks), 240,
                       "worker B to finish every task", log_b)
            wait_until(lambda: started.count == 0 and Queue(MINE_QUEUE, connection=engine.redis).count == 0,
                       60, "the queue to drain", log_b)
        finally:
            kill_group(second, signal.SIGTERM)
            images.stop()
        scope = engine.scope(4)
        df = engine.index.document_frequencies(scope)
        assert df == dict(recount(engine, scope))
        assert df["bus"] == 4 and df["submarine"] == 4
        assert vlm.calls > killed_calls


@pytest.mark.slow
def test_health_reports_redis_down_and_recovers(tmp_path):
    server = RedisServer(tmp_path / "redis", append_only=True).start()
    url = server.url()
    worker = None
    try:
        client = redis.Redis.from_url(url)
        env = {"REDIS_URL": url, "MODEL_DIR": str(tmp_path), "BATCH_SIZE": "2"}
        settings = Settings.from_env(env)
        engine = Engine(settings)
        http = create_app(settings, VLMineModel, engine=engine).test_client()
        assert http.get("/health").status_code == 200
        log = tmp_path / "worker.log"
        worker = start_worker(env, log, "--queues", "mine")

        def created(first: int) -> dict:
            return {"action": "TASKS_CREATED", "project": {"id": 5, "label_config": TEXT_CONFIG},
                    "tasks": [{"id": i, "data": {"text": f"a kite number {i}"}} for i in range(first, first + 6)]}

        assert http.post("/webhook", json=created(1)).status_code == 200
        wait_until(lambda: engine.index.task_count(engine.scope(5)) == 6, 60, "the first batch", log)

        server.stop()  # a clean restart: the append-only file keeps the data
        down = http.get("/health")
        assert down.status_code == 503 and "Redis is unreachable" in down.get_json()["reason"]
        assert str(server.port) not in down.get_data(as_text=True)  # no address (or password) in the answer
        time.sleep(3)  # the worker notices while Redis is away
        server.start()  # same port, same files
        wait_until(lambda: _pings(client), 10, "redis to restart")
        assert http.get("/health").status_code == 200

        # the same worker process carries on with new work; nothing mined before was lost
        assert http.post("/webhook", json=created(7)).status_code == 200
        wait_until(lambda: engine.index.task_count(engine.scope(5)) == 12, 90, "work after the restart", log)
        assert worker.poll() is None
        assert engine.index.document_frequencies(engine.scope(5), ["number"]) == {"number": 12}
    finally:
        if worker is not None:
            kill_group(worker, signal.SIGTERM)
        server.stop()


@pytest.mark.slow
def test_a_named_worker_rides_out_a_redis_restart_that_cuts_off_a_job(tmp_path):
    """A job in hand when Redis goes away ends RQ's work loop, and the loop's end cannot be
    recorded: the worker's key survives the restart (append-only file) still saying "alive".
    The restarted loop, with the same --name, must not be refused by RQ."""
    server = RedisServer(tmp_path / "redis", append_only=True).start()
    url = server.url()
    name = f"gpu-{uuid.uuid4().hex[:6]}"
    colours = ["red", "green", "blue", "yellow"] * 2
    images = ImageServer({f"/img{i}.png": png(c, i) for i, c in enumerate(colours)})
    worker = None
    try:
        client = redis.Redis.from_url(url)
        with FakeOpenAI(by_colour=DESCRIPTIONS, delay=0.5) as vlm:
            env = {"REDIS_URL": url, "MODEL_DIR": str(tmp_path), "BATCH_SIZE": "8", "VLM_API_URL": vlm.base_url,
                   "VLM_API_MODEL": "fake", "VLM_API_CONCURRENCY": "1", "KEYWORD_MODE": "rules",
                   "IMAGE_ALLOW_PRIVATE_NETWORKS": "true", "RERANK_DELAY": "0"}
            engine = Engine(Settings.from_env(env))
            queue = RQQueue(engine)
            engine.project(4, IMAGE_CONFIG)
            tasks = [{"id": i + 1, "data": {"image": f"{images.url}/img{i}.png"}} for i in range(len(colours))]
            assert queue.submit_tasks(4, tasks, IMAGE_CONFIG) == 1
            log = tmp_path / "worker.log"
            worker = start_worker(env, log, "--queues", "mine", "--name", name)
            wait_until(lambda: vlm.calls >= 1, 60, "the worker to start the job", log)

            server.stop()  # mid-job: the append-only file keeps the worker's key
            wait_until(lambda: "lost Redis" in log.read_text(), 60, "the work loop to end", log)
            server.start()  # same port, same files
            wait_until(lambda: _pings(client), 10, "redis to restart")

            # the same process serves again under the same name, and mines new work
            text = [{"id": 100 + i, "data": {"text": f"a kite number {i}"}} for i in range(3)]
            engine.project(5, TEXT_CONFIG)
            queue.submit_tasks(5, text, TEXT_CONFIG)
            wait_until(lambda: engine.index.task_count(engine.scope(5)) == 3, 90, "work after the restart", log)
            assert worker.poll() is None, log.read_text()[-3000:]
            assert client.hget(f"rq:worker:{name}", "death") is None  # registered alive again
            assert f"rq:worker:{name}".encode() in client.smembers("rq:workers")
            assert "There exists an active worker" not in log.read_text()
    finally:
        if worker is not None:
            kill_group(worker, signal.SIGTERM)
        images.stop()
        server.stop()


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.mark.slow
def test_predict_in_rq_mode_has_the_workers_mine_unknown_tasks(redis_db_url, tmp_path):
    url = redis_db_url
    env = {"REDIS_URL": url, "MODEL_DIR": str(tmp_path), "PREDICT_WAIT": "60"}
    settings = Settings.from_env(env)
    engine = Engine(settings)
    client = create_app(settings, VLMineModel, engine=engine).test_client()
    texts = ["a cat on a sofa"] * 5 + ["a walrus playing a harp"] + ["a cat on a sofa"] * 2
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(texts, start=1)]
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, "--queues", "mine")
    try:
        resp = client.post("/predict", json={"tasks": tasks, "project": "6.1", "label_config": TEXT_CONFIG})
        assert resp.status_code == 200, resp.get_json()
        scores = [r["score"] for r in resp.get_json()["results"]]
        assert scores[5] == min(scores) > 0 and max(scores) == 1.0  # the default stream: lowest first
        assert engine.index.task_count(engine.scope(6)) == len(tasks)
        assert engine.miner._describer is None  # the web process loaded no model
    finally:
        kill_group(worker, signal.SIGTERM)


def test_predict_in_rq_mode_without_workers_answers_in_time_with_score_zero(redis_db_url, tmp_path):
    url = redis_db_url
    settings = Settings.from_env({"REDIS_URL": url, "MODEL_DIR": str(tmp_path), "PREDICT_WAIT": "1"})
    engine = Engine(settings)
    client = create_app(settings, VLMineModel, engine=engine).test_client()
    tasks = [{"id": i, "data": {"text": "a kite"}} for i in (1, 2)]
    started = time.monotonic()
    resp = client.post("/predict", json={"tasks": tasks, "project": 7, "label_config": TEXT_CONFIG})
    assert time.monotonic() - started < 10
    # the end of the queue: 1.0 with the default stream (0 with LABEL_STREAM=tab)
    assert [r["score"] for r in resp.get_json()["results"]] == [engine.ranker.end_score] * 2 == [1.0, 1.0]
    # what Label Studio now stores is remembered, so no second prediction is ever imported
    assert set(engine.store.written(7, engine.live_version(7))) == {1, 2}


def test_a_worker_that_tore_down_never_starts_its_scheduler_again(redis_db_url):
    """RQ's teardown stops the worker's scheduler process; the maintenance thread, which starts
    a scheduler whenever none is alive, must not start one afterwards: the worker would wait
    for that process on exit and a worker asked to stop would hang (seen in a test run: worker
    B's scheduler started again two seconds after its warm shutdown)."""
    from rq.scheduler import RQScheduler
    from rq.utils import now

    from backend.jobs.worker import VLMineWorker

    connection = redis.Redis.from_url(redis_db_url)
    worker = VLMineWorker([Queue(MINE_QUEUE, connection=connection)], connection=connection,
                          name=f"t-{uuid.uuid4().hex[:6]}")
    worker.scheduler = RQScheduler(worker.queues, connection=connection)
    worker.last_cleaned_at = now()  # past the first run: maintenance may start a scheduler
    worker.teardown()
    worker.run_maintenance_tasks()
    try:
        assert worker.scheduler._process is None
    finally:
        if worker.scheduler._process is not None:
            worker.scheduler._process.terminate()
            worker.scheduler._process.join(10)
