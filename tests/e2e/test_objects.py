"""Object mining end to end, in the real Label Studio 1.23.2.

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
image reads the same). A moved box is mined again after Start Training and its task gets
its new explanation. Both ways in: a project that already holds the boxes when the backend
is connected (read by /setup's sync), and tasks imported after connecting (Label Studio's
TASKS_CREATED webhook carries no predictions: the job reads the boxes back), the latter
through an RQ worker with OBJECT_HIGHLIGHT=false. And scenes that differ, as real ones do:
150 streets of five kinds (a city street, a park road, a desert road, snow, night; 50 to 15
of each), described by their kind and often one more thing in view, six of them with the
trailer spread over the kinds: the trailers lead the queue, though their scenes' words are
rarer in some than in others. Screenshots of a rare task's labeling
view (Chromium) are kept in ``VLMINE_ARTIFACTS`` (default ``<repo>/test-artifacts/objects``).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import uuid
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright

from backend.labelstudio.client import LabelStudioClient
from tests.support.backend_server import BackendServer, wait_for
from tests.support.data import connect
from tests.support.fake_openai import FakeOpenAI
from tests.support.image_server import ImageServer
from tests.support.label_studio import create_project, import_tasks
from tests.support.workers import kill_group, start_worker
from tests.support.street_scenes import (
    DETECTOR_VERSION, HEIGHT, OBJECT_CONFIG, STREET_DESCRIPTIONS, WIDTH, Box, describe_scene,
    detector_prediction, region, street_scene,
)

pytestmark = pytest.mark.e2e

N_SCENES = 40
RARE = (5, 14, 23, 31)   # scene indices holding the red patch
BROKEN = 9               # a common scene whose prediction also holds a box out of bounds
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1600, "height": 1500}


@pytest.fixture(scope="module")
def scenes():
    return [street_scene(1000 + i, rare=i in RARE) for i in range(N_SCENES)]


#: scenes that differ: (kind, how many), and the indices of the six holding the trailer
KINDS = (("street", 50), ("park", 35), ("desert", 30), ("snow", 20), ("night", 15))
KIND_TRAILERS = (3, 27, 60, 95, 120, 140)  # two city streets, then one of every other kind


@pytest.fixture(scope="module")
def differing_scenes():
    """150 scenes of five kinds; about half show one more thing (a tree, a sign, a person)."""
    pick = random.Random(15)
    kinds = [kind for kind, count in KINDS for _ in range(count)]
    return [street_scene(3000 + i, rare=i in KIND_TRAILERS, kind=kind,
                         extra=pick.choice([None, None, "tree", "sign", "person"]))
            for i, kind in enumerate(kinds)]


@pytest.fixture(scope="module")
def differing_images(differing_scenes):
    server = ImageServer({f"/street{i}.png": s.png for i, s in enumerate(differing_scenes)})
    try:
        yield server
    finally:
        server.stop()


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


def scores_in_tab(client: LabelStudioClient, ls, pid: int) -> dict[int, float]:
    """Each task's score in the tab (``predictions_score``: the live version's prediction)."""
    views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
    view = next(v for v in views if v["data"].get("title") == "Long-tail first")
    return {t["id"]: float(t["predictions_score"] or 0.0) for t in client.tasks_in_view(view["id"])}


def test_whole_image_mining_does_not_find_the_rare_objects(label_studio, scenes, images, vlm, tmp_path):
    """The point of object mining: described whole, every scene is the same street, so the rare
    tasks are neither first in the tab nor scored above the common ones."""
    ls = label_studio
    backend = BackendServer(backend_env(ls, vlm, tmp_path), tmp_path / "backend.log")
    try:
        pid, _ = create_project(ls, "whole-image streets", OBJECT_CONFIG)
        connect(ls, pid, backend)
        ids = import_tasks(ls, pid, tasks_of(scenes, images))
        client = LabelStudioClient(ls.base_url, ls.token)
        wait_for(all_written(client, pid, len(ids), backend), 300, "the write-back", backend)
        rare = {ids[i] for i in RARE}
        assert set(long_tail_first(client, ls, pid, len(RARE))) != rare
        assert metrics(backend)["projects"][str(pid)]["mined"] == len(ids)
        # every whole image reads as the same street: the same explanation for all 40 tasks, so
        # the ranking has nothing to tell the rare ones apart by (their places are the ties' order)
        version = metrics(backend)["projects"][str(pid)]["version"]
        texts = {}
        for p in client.list_predictions(pid, version):
            result = ls.api("GET", f"/api/predictions/{p['id']}").json()["result"]
            assert all(r["type"] != "rectanglelabels" for r in result), result  # no box without objects
            texts[p["task"]] = explanation_of({"result": result})
        assert set(texts) == set(ids)
        assert set(texts.values()) == {"Rarest keywords: car: 40 tasks, street: 40 tasks\nDescription: a street with parked cars"}
    finally:
        backend.stop()


def diagnosis(client: LabelStudioClient, ls, pid: int, task_ids: list[int], backend: BackendServer) -> str:
    """What a failed ranking assertion needs to be understood: the tasks' scores and texts."""
    scores = scores_in_tab(client, ls, pid)
    lines = [f"metrics: {metrics(backend)}"]
    for t in task_ids:
        pred = live_prediction(client, ls, pid, t, backend)
        lines.append(f"task {t} score {scores.get(t)}: {pred['result']}")
    return "\n".join(lines)


def rare_box_of(pred: dict) -> dict:
    """The highlighted region of a prediction of this backend (exactly one)."""
    boxes = [r for r in pred["result"] if r["type"] == "rectanglelabels"]
    assert len(boxes) == 1, pred["result"]
    return boxes[0]


def explanation_of(pred: dict) -> str:
    texts = [r for r in pred["result"] if r["type"] == "textarea"]
    assert len(texts) == 1, pred["result"]
    return "\n".join(texts[0]["value"]["text"])


def moved_off_the_patch(scene) -> Box:
    """The trailer's box moved onto empty road, beside the patch (the cars are lower down)."""
    patch = scene.patch
    left = 20 if patch.left > WIDTH // 2 else WIDTH - patch.width - 24
    return Box(left, patch.top, patch.width, patch.height, "trailer", patch.score)


def screenshot_rare_task(ls, pid: int, task_id: int, reason: str, shots: Path) -> None:
    """Open the rare task's labeling view in Chromium: the highlighted box is listed among the
    regions, selecting it shows the reason in its details; screenshots are kept."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: scripts/test.sh installs it (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            # tall enough that the TextArea below the image is on screen (at 1000 px it is under the fold)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(ls.base_url + "/user/login/")
            page.fill("input[name=email]", ls.email)
            page.fill("input[name=password]", ls.password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
            page.goto(f"{ls.base_url}/projects/{pid}/data?task={task_id}")
            listed = page.locator(".lsf-outliner-item, [class*=outliner]").get_by_text("trailer", exact=True)
            listed.first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)  # the image and its regions settle
            page.screenshot(path=str(shots / "01-rare-task.png"))
            listed.first.click()
            details = page.get_by_text(reason, exact=False).first
            details.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "02-rare-box-selected.png"))
            # the TextArea below the image says the same, before the image's own keywords
            text = page.locator("[data-testid=textarea-region]").get_by_text("Rarest object: trailer", exact=False)
            text.first.wait_for(timeout=30_000)
            where = text.first.bounding_box()
            assert where is not None and where["y"] + where["height"] <= VIEWPORT["height"], where
        finally:
            browser.close()


def artefacts_dir(name: str) -> Path:
    base = Path(os.environ.get("VLMINE_ARTIFACTS") or ROOT / "test-artifacts")
    out = base / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"\n[objects e2e] screenshots in {out}")
    return out


def test_rare_objects_top_the_long_tail_tab_with_their_box(label_studio, scenes, images, vlm, tmp_path):
    ls = label_studio
    backend = BackendServer(backend_env(ls, vlm, tmp_path, OBJECT_MINING="true"), tmp_path / "backend.log")
    try:
        # a detection project that already holds the detector's boxes gets the backend connected:
        # its /setup reads every task with its predictions
        pid, ids = create_project(ls, "object streets", OBJECT_CONFIG, tasks_of(scenes, images))
        ml = connect(ls, pid, backend)
        client = LabelStudioClient(ls.base_url, ls.token)
        wait_for(all_written(client, pid, len(ids), backend), 300, "the write-back", backend)
        assert metrics(backend)["counters"].get("objects_mined", 0) >= 3 * N_SCENES + len(RARE)
        rare = [ids[i] for i in RARE]
        head = long_tail_first(client, ls, pid, len(RARE))
        assert set(head) == set(rare), diagnosis(client, ls, pid, head + rare, backend)

        # the annotator's view of a rare task: the trailer's box, the reason, the TextArea
        for index in RARE:
            pred = live_prediction(client, ls, pid, ids[index], backend)
            box = rare_box_of(pred)
            assert box["from_name"] == "label" and box["to_name"] == "image"
            assert box["value"]["rectanglelabels"] == ["trailer"]
            assert near(box["value"], scenes[index].patch), (box["value"], scenes[index].patch.percent())
            reason = " ".join(box["meta"]["text"])
            assert "hitch" in reason, reason            # the VLM's words for the crop, kept by LS
            text = explanation_of(pred)
            # 40 scenes x 3 cars + 4 trailers are the objects (the box past the border is none)
            assert "Rarest object: trailer (detector 0.90)" in text, text
            assert "hitch: 4 of 124 objects and 40 scenes, trailer: 4 of them" in text, text
        # a common task's rarest object is one of its cars: its box is a car, its words common
        common = live_prediction(client, ls, pid, ids[0], backend)
        assert rare_box_of(common)["value"]["rectanglelabels"] == ["car"]
        assert "hitch" not in explanation_of(common)

        # the box past the border failed alone: its task and reason in /metrics, the task ranked
        m = metrics(backend)
        error = m["last_error"].get("object", "")
        assert f"task {ids[BROKEN]}" in error and "outside the image" in error, m["last_error"]
        assert m["counters"].get("objects_failed", 0) >= 1
        broken = live_prediction(client, ls, pid, ids[BROKEN], backend)  # ranked, by its three cars
        assert "Rarest object: car" in explanation_of(broken) and rare_box_of(broken)["value"]["x"] < 100

        # the report's object view lists the rare tasks first, with the trailer
        page = requests.get(backend.url + f"/report?project={pid}", timeout=120).text
        table = page[page.index('<table id="rare-objects">'):]
        listed = [int(t) for t in re.findall(r">#(\d+)<", table)]  # a link's text, or a plain cell
        assert set(listed[:len(RARE)]) == set(rare), listed
        assert table.count('<td class="kw">trailer</td>') == len(RARE)

        first = live_prediction(client, ls, pid, rare[0], backend)
        screenshot_rare_task(ls, pid, rare[0], " ".join(rare_box_of(first)["meta"]["text"]),
                             artefacts_dir("objects"))

        # the detector changes its mind: the trailer's box moves off the patch; Start Training
        # re-reads the predictions, and that task is mined again and leaves the head
        moved = rare[-1]
        scene = scenes[RARE[-1]]
        detection = next(p for p in client.list_predictions(pid, DETECTOR_VERSION) if p["task"] == moved)
        boxes = [b for b in scene.boxes if b.label != "trailer"] + [moved_off_the_patch(scene)]
        result = [region(b, i) for i, b in enumerate(boxes)]
        ls.api("PATCH", f"/api/predictions/{detection['id']}", json={"result": result})
        ls.api("POST", f"/api/ml/{ml}/train", json={})
        wait_for(lambda: set(long_tail_first(client, ls, pid, len(RARE) - 1)) == set(rare[:-1])
                 and moved not in long_tail_first(client, ls, pid, len(RARE)),
                 180, "the moved box's task to leave the head", backend)
        wait_for(all_written(client, pid, len(ids), backend), 120, "the write-back", backend)
        pred = live_prediction(client, ls, pid, moved, backend)
        assert "hitch" not in explanation_of(pred), explanation_of(pred)
        assert ls.token not in backend.log_text()
    finally:
        backend.stop()


def test_object_mining_with_an_rq_worker_and_no_highlight(label_studio, scenes, images, vlm, redis_db_url, tmp_path):
    ls = label_studio
    url = redis_db_url
    # OBJECT_HIGHLIGHT=false here: the TextArea alone explains, no box is written
    env = backend_env(ls, vlm, tmp_path, OBJECT_MINING="true", OBJECT_HIGHLIGHT="false", REDIS_URL=url,
                      BATCH_SIZE="8")
    backend = BackendServer(env, tmp_path / "backend.log")
    worker = start_worker(env, tmp_path / "worker.log", "--name", f"objects-{uuid.uuid4().hex[:6]}")
    try:
        # connected first, then the tasks are imported with their boxes: Label Studio's TASKS_CREATED
        # webhook carries no predictions, so the mining job reads each task's boxes back
        pid, _ = create_project(ls, "object streets on rq", OBJECT_CONFIG)
        connect(ls, pid, backend)
        ids = import_tasks(ls, pid, tasks_of(scenes, images))
        client = LabelStudioClient(ls.base_url, ls.token)
        wait_for(all_written(client, pid, len(ids), backend), 300, "the write-back", backend)
        assert set(long_tail_first(client, ls, pid, len(RARE))) == {ids[i] for i in RARE}
        pred = live_prediction(client, ls, pid, ids[RARE[0]], backend)
        assert all(r["type"] != "rectanglelabels" for r in pred["result"]), pred["result"]
        assert "Rarest object: trailer" in explanation_of(pred)
        error = metrics(backend)["last_error"].get("object", "")
        assert f"task {ids[BROKEN]}" in error and "outside the image" in error, error
        # the worker, not the web process, did the mining
        assert "vlmine-mine" in (tmp_path / "worker.log").read_text(errors="replace")
    finally:
        kill_group(worker)
        backend.stop()


def test_rare_objects_lead_in_scenes_that_differ(label_studio, differing_scenes, differing_images, tmp_path):
    """Whole-image descriptions differ by kind (and a little by image), so the trailers' scenes
    are rarer in some tasks than in others; each task ranks by the rarest thing in it, and a
    scene's words rarer by a hair do not put five of the six trailers behind a front of
    ordinary streets. The diverse head (on by default) never puts a task without the trailer
    before one with it."""
    ls = label_studio
    with FakeOpenAI(by_colour=STREET_DESCRIPTIONS, describe_fn=describe_scene) as vlm:
        backend = BackendServer(backend_env(ls, vlm, tmp_path, OBJECT_MINING="true"), tmp_path / "backend.log")
        try:
            pid, ids = create_project(ls, "streets that differ", OBJECT_CONFIG, tasks_of(differing_scenes, differing_images))
            connect(ls, pid, backend)
            client = LabelStudioClient(ls.base_url, ls.token)
            wait_for(all_written(client, pid, len(ids), backend), 600, "the write-back", backend)
            rare = [ids[i] for i in KIND_TRAILERS]
            first = long_tail_first(client, ls, pid, 10)
            assert len(set(first) & set(rare)) >= 5, diagnosis(client, ls, pid, first + rare, backend)
            assert set(first[:len(rare)]) == set(rare), diagnosis(client, ls, pid, first, backend)
            # the scenes did differ: each task's description names its kind and what else is in view
            version = metrics(backend)["projects"][str(pid)]["version"]
            described = {}
            for p in client.list_predictions(pid, version):
                text = explanation_of(ls.api("GET", f"/api/predictions/{p['id']}").json())
                described[p["task"]] = text.rsplit("Description: ", 1)[-1]
            assert described == {t: describe_scene(s.png) for t, s in zip(ids, differing_scenes)}
            assert len(set(described.values())) >= 12, set(described.values())
        finally:
            backend.stop()
