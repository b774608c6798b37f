"""RQ scale-out end to end: a GPU worker killed mid-batch, another finishes, and every task
has exactly one keyword set in the index and exactly one prediction in Label Studio."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
import requests
from rq.registry import StartedJobRegistry

from backend.engine.engine import Engine
from backend.jobs.rq import MINE_QUEUE
from backend.labelstudio.client import LabelStudioClient
from backend.settings import Settings
from tests.support.backend_server import BackendServer
from tests.support.data import DESCRIPTIONS, IMAGE_CONFIG, connect, png
from tests.support.fake_openai import FakeOpenAI
from tests.support.image_server import ImageServer
from tests.support.label_studio import create_project, import_tasks
from tests.support.workers import kill_group, recount, start_worker, wait_until

pytestmark = pytest.mark.e2e


def test_killed_worker_loses_nothing_and_duplicates_nothing(label_studio, redis_db_url, tmp_path):
    ls = label_studio
    url = redis_db_url
    colours = ["red", "green", "blue"] * 8 + ["yellow"] * 2
    images = ImageServer({f"/img{i}.png": png(c, 1000 + i) for i, c in enumerate(colours)})
    workers = []
    with FakeOpenAI(by_colour=DESCRIPTIONS, delay=0.3) as vlm:
        env = {"REDIS_URL": url, "MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url,
               "LABEL_STUDIO_API_KEY": ls.token, "VLM_API_URL": vlm.base_url, "VLM_API_MODEL": "fake",
               "VLM_API_CONCURRENCY": "1", "KEYWORD_MODE": "rules", "IMAGE_ALLOW_PRIVATE_NETWORKS": "true", "BATCH_SIZE": "6", "RERANK_DELAY": "1"}
        backend = BackendServer(env, tmp_path / "backend.log")
        try:
            pid, _ = create_project(ls, "rq e2e", IMAGE_CONFIG)
            connect(ls, pid, backend)
            ids = import_tasks(ls, pid, [{"image": f"{images.url}/img{i}.png"} for i in range(len(colours))])
            engine = Engine(Settings.from_env(env))
            started = StartedJobRegistry(MINE_QUEUE, connection=engine.redis)
            a = start_worker(env, tmp_path / "a.log", "--name", f"a-{uuid.uuid4().hex[:6]}")
            workers.append(a)
            wait_until(lambda: started.count > 0 and vlm.calls >= 3, 60, "worker A to be mid-batch",
                       tmp_path / "a.log")
            kill_group(a)
            b = start_worker(env, tmp_path / "b.log", "--maintenance-interval", "2",
                             "--name", f"b-{uuid.uuid4().hex[:6]}")
            workers.append(b)
            ls_client = LabelStudioClient(ls.base_url, ls.token)

            def done() -> bool:
                project = requests.get(backend.url + "/metrics", timeout=5).json()["projects"].get(str(pid))
                if project is None:
                    return False  # not known to the backend yet (a busy machine): not done
                version = project["version"]
                per_task = Counter(p["task"] for p in ls_client.list_predictions(pid, version))
                return (engine.index.task_count(engine.scope(pid)) == len(ids) and len(per_task) == len(ids)
                        and ls_client.get_project(pid)["model_version"] == version)

            wait_until(done, 300, "every task mined and written", tmp_path / "b.log")
            time.sleep(3)  # let any straggling re-rank land before counting
            version = requests.get(backend.url + "/metrics", timeout=5).json()["projects"][str(pid)]["version"]
            per_task = Counter(p["task"] for p in ls_client.list_predictions(pid, version))
            assert set(per_task) == set(ids) and set(per_task.values()) == {1}
            scope = engine.scope(pid)
            df = engine.index.document_frequencies(scope)
            assert df == dict(recount(engine, scope))
            assert df["submarine"] == 2 and df["bus"] == 8
            yellow = {ids[i] for i, c in enumerate(colours) if c == "yellow"}
            views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
            view = next(v for v in views if v["data"].get("title") == "Long-tail first")
            assert {t["id"] for t in ls_client.tasks_in_view(view["id"], limit=2)} == yellow
            metrics = requests.get(backend.url + "/metrics", timeout=5).json()
            assert metrics["projects"][str(pid)]["mined"] == len(ids)
            assert metrics["counters"]["tasks_mined"] >= len(ids)
        finally:
            for w in workers:
                kill_group(w)
            backend.stop()
            images.stop()
