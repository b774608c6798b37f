"""Image projects through /predict: real HTTP image server, a VLM endpoint stand-in and
the tiny LLaVA, planted rare images first, broken images failing alone, descriptions cached."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from backend.api import create_app
from backend.engine import Engine
from backend.jobs import EmbeddedQueue
from backend.settings import Settings
from tests.support.fake_openai import COLOURS, FakeOpenAI
from tests.support.image_server import ImageServer
from tests.support.tiny_llava import build_tiny_llava

CONFIG = ('<View><Image name="image" value="$image"/><TextArea name="vlmine" toName="image"/>'
          '<Choices name="label" toName="image"><Choice value="a"/></Choices></View>')
DESCRIPTIONS = {
    "red": "a red bus on a road",
    "green": "a green tree in a park",
    "blue": "a blue car on a street",
    "yellow": "a yellow submarine beside a lighthouse",
}


def png(colour: str, seed: int, size: int = 48) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), COLOURS[colour])
    image.putpixel((rng.randrange(size), rng.randrange(size)), (rng.randrange(256), 0, 0))  # unique bytes
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture()
def images():
    colours = ["red"] * 8 + ["green"] * 8 + ["blue"] * 8 + ["yellow"] * 2
    files = {f"/img{i}.png": png(c, i) for i, c in enumerate(colours)}
    files["/broken.png"] = b"\x89PNG\r\n\x1a\n this is not really a png"
    server = ImageServer(files)
    tasks = [{"id": i + 1, "data": {"image": f"{server.url}/img{i}.png"}} for i in range(len(colours))]
    tasks.append({"id": 100, "data": {"image": f"{server.url}/broken.png"}})
    tasks.append({"id": 101, "data": {"image": f"{server.url}/missing.png"}})
    tasks.append({"id": 102, "data": {"picture": "wrong key"}})
    planted = {i + 1 for i, c in enumerate(colours) if c == "yellow"}
    yield tasks, planted
    server.stop()


def make_client(tmp_path, **overrides):
    overrides.setdefault("image_allow_private_networks", True)  # the image server is on loopback
    settings = Settings.from_env({}, model_dir=str(tmp_path / "model"), **overrides)
    engine = Engine(settings)
    app = create_app(settings, engine=engine, queue=EmbeddedQueue(engine), start_workers=False)
    return app.test_client(), engine


def test_endpoint_vlm_planted_images_first_and_broken_ones_fail_alone(tmp_path, images):
    tasks, planted = images
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        client, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                     keyword_mode="llm")
        resp = client.post("/predict", json={"tasks": tasks, "project": "5.1", "label_config": CONFIG})
        assert resp.status_code == 200, resp.get_json()
        results = resp.get_json()["results"]
        assert len(results) == len(tasks)
        by_id = {t["id"]: r for t, r in zip(tasks, results)}
        ranked = sorted((r["score"], tid) for tid, r in by_id.items())[::-1]
        assert {tid for _, tid in ranked[:len(planted)]} == planted
        for bad in (100, 101, 102):
            assert by_id[bad]["score"] == 0.0 and by_id[bad]["result"] == []
        lines = by_id[min(planted)]["result"][0]["value"]["text"]
        assert lines[0].startswith("Rarest keywords: ")
        assert "submarine (2)" in lines[0] and "lighthouse (2)" in lines[0]
        assert lines[1] == "Description: a yellow submarine beside a lighthouse"

        metrics = client.get("/metrics").get_json()["projects"]["5"]
        assert metrics["failed"] == 3 and metrics["mined"] == len(tasks) - 3
        reasons = {f["task"]: f["error"] for f in metrics["last_failures"]}
        assert reasons[100] == "image: not an image"
        assert reasons[101].startswith("image: HTTP 404 from host 127.0.0.1:")
        assert reasons[102] == "image: task has no data field 'image'"

        image_calls = sum(1 for r in vlm.requests if isinstance(r["body"]["messages"][-1]["content"], list))
        assert image_calls == len(tasks) - 3

        # another project with the same images: descriptions come from the cache
        resp = client.post("/predict", json={"tasks": tasks[:5], "project": "6.1", "label_config": CONFIG})
        assert resp.status_code == 200
        again = sum(1 for r in vlm.requests if isinstance(r["body"]["messages"][-1]["content"], list))
        assert again == image_calls


def test_an_image_the_vlm_refuses_fails_alone(tmp_path, images):
    """The endpoint answers 400 for the yellow images: those two tasks fail with the reason,
    every other image of the same job is described and ranked."""
    tasks, planted = images
    with FakeOpenAI(by_colour=DESCRIPTIONS, refuse_colours={"yellow"}) as vlm:
        client, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                     keyword_mode="rules")
        resp = client.post("/predict", json={"tasks": tasks, "project": 9, "label_config": CONFIG})
        assert resp.status_code == 200, resp.get_json()
        by_id = {t["id"]: r for t, r in zip(tasks, resp.get_json()["results"])}
        metrics = client.get("/metrics").get_json()["projects"]["9"]
    assert metrics["failed"] == 3 + len(planted) and metrics["mined"] == len(tasks) - 3 - len(planted)
    reasons = {f["task"]: f["error"] for f in metrics["last_failures"]}
    for tid in planted:
        assert by_id[tid]["score"] == 0.0
        assert reasons[tid].startswith("vlm: ") and "HTTP 400" in reasons[tid]
    described = [tid for tid in by_id if tid not in planted and tid < 100]
    assert all(by_id[tid]["score"] > 0 for tid in described)


@pytest.mark.parametrize("concurrency", [1, 6])
def test_images_of_a_job_are_fetched_concurrently_and_kept_in_order(tmp_path, concurrency):
    colours = ["red", "green", "blue", "yellow"] * 3
    server = ImageServer({f"/c{i}.png": png(c, 100 + i) for i, c in enumerate(colours)}, delay=0.2)
    tasks = [{"id": i + 1, "data": {"image": f"{server.url}/c{i}.png"}} for i in range(len(colours))]
    try:
        with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
            _, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                    keyword_mode="rules", image_fetch_concurrency=concurrency)
            mined = engine.mine_tasks(3, tasks, CONFIG)
    finally:
        server.stop()
    assert [m.task_id for m in mined] == [t["id"] for t in tasks]
    assert [m.description for m in mined] == [DESCRIPTIONS[c] for c in colours]
    assert server.max_in_flight == concurrency  # 12 requests: the pool fills up


def test_a_restart_reuses_cached_descriptions(tmp_path, images):
    tasks, _ = images
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        client, _ = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm")
        client.post("/predict", json={"tasks": tasks[:4], "project": 7, "label_config": CONFIG})
        calls = vlm.calls
        client2, engine2 = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm")
        client2.post("/predict", json={"tasks": tasks[:4], "project": 8, "label_config": CONFIG})
        assert vlm.calls == calls
        assert engine2.index.task_count(engine2.scope(8)) == 4


@pytest.mark.parametrize("mode", ["llm", "direct", "rules"])
def test_tiny_llava_through_from_pretrained(tmp_path_factory, tmp_path, images, mode):
    model_dir = build_tiny_llava(tmp_path_factory.mktemp("tiny"))
    tasks, _ = images
    client, engine = make_client(tmp_path, vlm_model=model_dir, keyword_mode=mode, vlm_max_new_tokens=12,
                                 vlm_batch_size=4)
    resp = client.post("/predict", json={"tasks": tasks[:6], "project": 9, "label_config": CONFIG})
    assert resp.status_code == 200, resp.get_json()
    results = resp.get_json()["results"]
    assert len(results) == 6 and all(0 < r["score"] <= 1 for r in results)
    kws = engine.index.get_many(engine.scope(9), [t["id"] for t in tasks[:6]])
    assert len(kws) == 6
    assert sum(len(v) for v in kws.values()) > 0  # the word-level tiny model emits words
