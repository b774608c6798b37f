"""Image projects through /predict: real HTTP image server, a VLM endpoint stand-in and
the tiny LLaVA, planted rare images first, broken images failing alone, descriptions cached."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from backend.engine.engine import Engine
from backend.settings import Settings
from tests.support.data import DESCRIPTIONS, make_client, png
from tests.support.data import PREDICT_IMAGE_CONFIG as CONFIG
from tests.support.fake_openai import COLOURS, FakeOpenAI
from tests.support.image_server import ImageServer
from tests.support.tiny_llava import build_tiny_llava


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
        ranked = sorted((r["score"], tid) for tid, r in by_id.items())  # the default stream: lowest first
        assert {tid for _, tid in ranked[:len(planted)]} == planted
        for bad in (100, 101, 102):
            assert by_id[bad]["score"] == engine.ranker.end_score and by_id[bad]["result"] == []
        lines = by_id[min(planted)]["result"][0]["value"]["text"]
        assert lines[0].startswith("Rarest keywords: ")
        assert "submarine: 2 tasks" in lines[0] and "lighthouse: 2 tasks" in lines[0]
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
        assert by_id[tid]["score"] == engine.ranker.end_score  # the end of the queue
        assert reasons[tid].startswith("vlm: ") and "HTTP 400" in reasons[tid]
    described = [tid for tid in by_id if tid not in planted and tid < 100]
    assert all(by_id[tid]["score"] > 0 for tid in described)


@pytest.mark.parametrize("concurrency", [1, 6])
@pytest.mark.slow
def test_images_of_a_job_are_fetched_concurrently_and_kept_in_order(tmp_path, concurrency):
    colours = ["red", "green", "blue", "yellow"] * 3
    server = ImageServer({f"/c{i}.png": png(c, 100 + i) for i, c in enumerate(colours)}, delay=0.2)
    tasks = [{"id": i + 1, "data": {"image": f"{server.url}/c{i}.png"}} for i in range(len(colours))]
    try:
        with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
            _, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                    keyword_mode="rules", image_fetch_concurrency=concurrency)
            mined = engine.tasks.mine(3, tasks, CONFIG)
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


def test_new_keyword_rules_rederive_keywords_from_cached_descriptions(tmp_path, images, monkeypatch):
    """Changed keyword rules give a new mining fingerprint (a new index scope: no mix of old
    and new keywords), while the description cache is keyed without them: the images are not
    described again, and their keywords come from the cached descriptions under the new rules."""
    from backend.mining import keywords as keyword_rules

    tasks, _ = images
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        client, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                     keyword_mode="rules")
        client.post("/predict", json={"tasks": tasks[:4], "project": 7, "label_config": CONFIG})
        calls, old_scope = vlm.calls, engine.scope(7)
        assert engine.index.get(old_scope, 1) == ["bus", "road"]
        # old rules cached keywords that the current rules would not give
        stale = {k: (d, ["red bus", "bus", "road"]) for k, (d, kws) in _cache_rows(engine).items() if "bus" in kws}
        engine.store.cache_put(stale)
        monkeypatch.setattr(keyword_rules, "RULES_VERSION", "next")
        client2, engine2 = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                       keyword_mode="rules")
        assert engine2.mining_hash != engine.mining_hash and engine2.scope(7) != old_scope
        assert engine2.miner.cache_key("abc") == engine.miner.cache_key("abc")
        client2.post("/predict", json={"tasks": tasks[:4], "project": 7, "label_config": CONFIG})
        assert vlm.calls == calls  # no image described again
        assert engine2.index.get(engine2.scope(7), 1) == ["bus", "road"]  # not the cached "red bus"


def _cache_rows(engine) -> dict:
    with engine.store._conn() as c:
        rows = c.execute("SELECT key, description, keywords FROM cache").fetchall()
    import json

    return {k: (d, json.loads(kw)) for k, d, kw in rows}


@pytest.mark.parametrize("mode", ["llm", "direct", "rules"])
@pytest.mark.slow
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


class RefusingPrompts(FakeOpenAI):
    """Answers 400 to a text-only prompt holding ``word`` or longer than ``limit`` characters
    (as an endpoint does past its context length); images as FakeOpenAI."""

    def __init__(self, word: str = "", limit: int = 10**9, **kwargs) -> None:
        super().__init__(**kwargs)
        self.word, self.limit = word, limit

    def refused(self, body) -> bool:
        content = body["messages"][-1]["content"]
        if isinstance(content, str) and ((self.word and self.word in content) or len(content) > self.limit):
            return True
        return super().refused(body)


def test_malformed_image_references_fail_alone(tmp_path):
    """urllib's ValueErrors (a bad host, a bad port) and a NUL byte in a local path fail their own
    task with a reason; the other images of the batch are described."""
    server = ImageServer({"/a.png": png("red", 1), "/b.png": png("blue", 2)})
    (tmp_path / "files").mkdir()
    refs = [f"{server.url}/a.png", "http://[bad/a.jpg", "http://example.com:99999/a.jpg",
            "http://example.com:abc/a.jpg", "/data/local-files/?d=a%00.jpg", f"{server.url}/b.png"]
    tasks = [{"id": i + 1, "data": {"image": ref}} for i, ref in enumerate(refs)]
    try:
        with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
            _, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                    keyword_mode="rules", local_files_document_root=str(tmp_path / "files"))
            mined = engine.tasks.mine(3, tasks, CONFIG)
    finally:
        server.stop()
    assert [m.error for m in mined] == [
        None,
        "image: invalid URL: malformed host in brackets",
        "image: invalid URL: port out of range 0-65535",
        "image: invalid URL: port is not a number",
        "image: local file path contains a NUL byte",
        None,
    ]
    assert [mined[0].description, mined[5].description] == [DESCRIPTIONS["red"], DESCRIPTIONS["blue"]]
    assert engine.index.task_count(engine.scope(3)) == 2


def test_an_unexpected_error_fetching_or_decoding_fails_its_task_alone(tmp_path, images, monkeypatch):
    """The backstop: whatever the fetcher raises besides ImageError stays with its task, redacted."""
    from backend.pipeline.images import ImageFetcher

    tasks, _ = images
    fetch_bug, decode_bug = tasks[0]["data"]["image"], tasks[8]["data"]["image"]
    real_fetch, real_decode = ImageFetcher.fetch_bytes, ImageFetcher.decode
    poisoned = real_fetch(ImageFetcher(allow_private=True), decode_bug)

    def fetch_bytes(self, ref, task_id=None):
        if ref == fetch_bug:
            raise RuntimeError("lost http://bucket.example/x.png?X-Amz-Signature=SECRET")
        return real_fetch(self, ref, task_id)

    def decode(self, data):
        if data == poisoned:
            raise KeyError("no such band")
        return real_decode(self, data)

    monkeypatch.setattr(ImageFetcher, "fetch_bytes", fetch_bytes)
    monkeypatch.setattr(ImageFetcher, "decode", decode)
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        _, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm", keyword_mode="rules")
        mined = engine.tasks.mine(4, tasks, CONFIG)
    errors = {m.task_id: m.error for m in mined if not m.ok}
    assert errors[tasks[0]["id"]] == "image: unexpected RuntimeError: lost http://bucket.example/x.png"
    assert errors[tasks[8]["id"]] == "image: unexpected KeyError: 'no such band'"
    assert set(errors) == {tasks[0]["id"], tasks[8]["id"], 100, 101, 102}
    assert all(m.keywords for m in mined if m.ok) and sum(m.ok for m in mined) == len(tasks) - 5


def test_a_refused_keyword_prompt_fails_only_its_task(tmp_path, images):
    """KEYWORD_MODE=llm: the keyword endpoint answers 400 for the submarine descriptions; those two
    tasks fail with the reason, every other task of the batch keeps its keywords."""
    tasks, planted = images
    with RefusingPrompts(word="submarine", by_colour=DESCRIPTIONS) as vlm:
        _, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm", keyword_mode="llm")
        mined = engine.tasks.mine(5, tasks, CONFIG)
    by_id = {m.task_id: m for m in mined}
    for tid in planted:
        assert by_id[tid].keywords is None
        assert by_id[tid].error.startswith("keyword llm: ") and "HTTP 400" in by_id[tid].error
    described = [m for m in mined if m.task_id not in planted and m.task_id < 100]
    assert len(described) == 24 and all(m.ok and m.keywords for m in described)
    assert {"bus", "road"} <= set(by_id[1].keywords)
    assert engine.index.task_count(engine.scope(5)) == 24


def test_one_huge_text_fails_alone_with_llm_keywords(tmp_path):
    """TEXT_KEYWORD_MODE=llm: one text too long for the endpoint fails; the others get keywords."""
    config = '<View><Text name="text" value="$text"/></View>'
    texts = ["a red bus on a road", "a walrus on a glacier " * 3000, "a green tree in a park"]
    tasks = [{"id": i + 1, "data": {"text": text}} for i, text in enumerate(texts)]
    with RefusingPrompts(limit=20_000, by_colour=DESCRIPTIONS) as llm:
        _, engine = make_client(tmp_path, vlm_api_url=llm.base_url, vlm_api_model="fake-llm", text_keyword_mode="llm")
        mined = engine.tasks.mine(6, tasks, config)
    assert mined[1].keywords is None and "HTTP 400" in mined[1].error
    assert {"bus", "road"} <= set(mined[0].keywords) and {"tree", "park"} <= set(mined[2].keywords)


def test_the_synonyms_file_is_read_once_for_keywords_and_cache_keys(tmp_path):
    """SYNONYMS_FILE edited (or briefly gone) while running: keywords still come from the mapping
    loaded at start, and so does every cache key; the next start picks the edit up."""
    from backend.pipeline.miner import Miner
    from backend.state.sqlite_store import SQLiteStore

    path = tmp_path / "synonyms.json"
    path.write_text('{"bus": "coach"}')
    settings = Settings.from_env({}, model_dir=str(tmp_path / "model"), synonyms_file=str(path))
    at_start = settings.mining_fingerprint()
    store = SQLiteStore(tmp_path / "state.sqlite3")
    miner = Miner(settings, store)
    key = miner.cache_key("abc")
    assert miner.fingerprint == at_start  # the same digest as the settings' own: the engine's hash agrees

    path.write_text('{"bus": "omnibus"}')
    assert miner.cache_key("abc") == key and miner.normaliser.from_text("a red bus") == ["coach"]
    restarted = Miner(settings, store)
    assert restarted.cache_key("abc") != key and restarted.normaliser.from_text("a red bus") == ["omnibus"]
    path.unlink()
    assert miner.cache_key("abc") == key  # no SettingsError in the middle of a batch


def test_thin_images_fail_alone_under_image_max_aspect_ratio(tmp_path):
    """A 4000x1 PNG is a few hundred bytes, but LLaVA's processor would blow it up to 336 pixels
    high: refused at decode time, by IMAGE_MAX_ASPECT_RATIO (20 by default, 0: no limit)."""
    from backend.settings import SettingsError

    thin = io.BytesIO()
    Image.new("RGB", (4000, 1), COLOURS["red"]).save(thin, format="PNG")
    server = ImageServer({"/thin.png": thin.getvalue(), "/a.png": png("blue", 3)})
    tasks = [{"id": 1, "data": {"image": f"{server.url}/thin.png"}},
             {"id": 2, "data": {"image": f"{server.url}/a.png"}}]
    try:
        with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
            _, engine = make_client(tmp_path / "one", vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                    keyword_mode="rules")
            refused = engine.tasks.mine(3, tasks, CONFIG)
            env = {"IMAGE_MAX_ASPECT_RATIO": "0", "IMAGE_ALLOW_PRIVATE_NETWORKS": "true", "VLM_API_URL": vlm.base_url,
                   "KEYWORD_MODE": "rules"}
            unlimited = Engine(Settings.from_env(env, model_dir=str(tmp_path / "two"))).tasks.mine(3, tasks, CONFIG)
    finally:
        server.stop()
    assert refused[0].error == "image: image is 4000x1 pixels: aspect ratio over 20:1"
    assert refused[1].ok and refused[1].description == DESCRIPTIONS["blue"]
    assert [m.ok for m in unlimited] == [True, True] and unlimited[0].description == DESCRIPTIONS["red"]
    assert Settings.from_env({"IMAGE_MAX_ASPECT_RATIO": "2.5"}).image_max_aspect_ratio == 2.5
    for bad in ("0.5", "-1"):
        with pytest.raises(SettingsError, match="IMAGE_MAX_ASPECT_RATIO"):
            Settings.from_env({"IMAGE_MAX_ASPECT_RATIO": bad})
