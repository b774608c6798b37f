"""Object mining end to end, in the real Label Studio 1.23.2 (issue 15).

40 street scenes (``tests/support/street_scenes.py``): the same gray street with three blue
cars, and in 4 of them a small red patch, the rare object. A detector's boxes are stored in
Label Studio as predictions of another model version ("yolo-test"); one task also holds a
box past the image's border. The OpenAI-compatible stand-in describes whatever it is shown
by its dominant colour: every whole image is "a street with parked cars", a car crop "a
blue car", the patch "a horse trailer with a rusty hitch".

With OBJECT_MINING on, the 4 rare tasks head the "Long-tail first" tab (Label Studio's own
ordering), their prediction carries the trailer's box with the reason as the region's meta
text, and the TextArea names the trailer; the broken box fails alone, with its task and
reason in /metrics. Whole-image mining of the same scenes does not find them (every whole
image reads the same). A moved box is mined again after Start Training. Also with an RQ
worker. A screenshot of a rare task's labeling view is kept in ``VLMINE_ARTIFACTS``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from backend.labelstudio.client import LabelStudioClient
from tests.support.backend_server import BackendServer, wait_for
from tests.support.data import connect
from tests.support.fake_openai import FakeOpenAI
from tests.support.image_server import ImageServer
from tests.support.label_studio import create_project, import_tasks
from tests.support.street_scenes import (
    DETECTOR_VERSION, HEIGHT, OBJECT_CONFIG, STREET_DESCRIPTIONS, WIDTH, Box, detector_prediction,
    region, street_scene,
)

pytestmark = pytest.mark.e2e

N_SCENES = 40
RARE = (5, 14, 23, 31)   # scene indices holding the red patch
BROKEN = 9               # a common scene whose prediction also holds a box out of bounds
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenes():
    return [street_scene(1000 + i, rare=i in RARE) for i in range(N_SCENES)]


@pytest.fixture(scope="module")
def images(scenes):
    server = ImageServer({f"/street{i}.png": s.png for i, s in enumerate(scenes)})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def vlm():
    with FakeOpenAI(by_colour=STREET_DESCRIPTIONS) as server:
        yield server


def tasks_of(scenes, images) -> list[dict]:
    """The scenes as Label Studio tasks, each with the detector's prediction."""
    return [{"data": {"image": f"{images.url}/street{i}.png"},
             "predictions": [detector_prediction(s, broken=(i == BROKEN))]}
            for i, s in enumerate(scenes)]


def backend_env(ls, vlm, tmp_path, **env: str) -> dict[str, str]:
    return {"MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url,
            "LABEL_STUDIO_API_KEY": ls.token, "RERANK_DELAY": "0.5",
            "VLM_API_URL": vlm.base_url, "VLM_API_MODEL": "fake-vlm", "KEYWORD_MODE": "rules",
            "IMAGE_ALLOW_PRIVATE_NETWORKS": "true", **env}


def metrics(backend: BackendServer) -> dict:
    return requests.get(backend.url + "/metrics", timeout=10).json()


def all_written(client: LabelStudioClient, pid: int, n: int, backend: BackendServer):
    """Every task holds a prediction of the live version, the project shows that version, and
    no job waits or runs (a re-rank may still be moving scores after the last import)."""
    def check() -> bool:
        m = metrics(backend)
        project = m["projects"].get(str(pid))
        if project is None or m["jobs"]["counts"].get("queued") or m["jobs"]["counts"].get("running"):
            return False
        version = project["version"]
        held = {p["task"] for p in client.list_predictions(pid, version)}
        return len(held) == n and client.get_project(pid)["model_version"] == version
    return check


def long_tail_first(client: LabelStudioClient, ls, pid: int, n: int) -> list[int]:
    """The first ``n`` tasks of the "Long-tail first" tab, in Label Studio's own order."""
    views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
    view = next(v for v in views if v["data"].get("title") == "Long-tail first")
    return [t["id"] for t in client.tasks_in_view(view["id"], limit=n)]


def live_prediction(client: LabelStudioClient, ls, pid: int, task_id: int, backend: BackendServer) -> dict:
    version = metrics(backend)["projects"][str(pid)]["version"]
    pred = next(p for p in client.list_predictions(pid, version) if p["task"] == task_id)
    return ls.api("GET", f"/api/predictions/{pred['id']}").json()


def near(region_value: dict, box: Box, tolerance: float = 0.5) -> bool:
    """The region's percent box is the detector's box (to ``tolerance`` percentage points)."""
    want = box.percent()
    return all(abs(float(region_value[k]) - want[k]) <= tolerance for k in ("x", "y", "width", "height"))
