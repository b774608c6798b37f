"""The wire protocol, driven with the request bodies a real Label Studio 1.23.2 sent."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from backend.engine.engine import Engine
from backend.jobs.embedded import EmbeddedQueue
from backend.server.app import create_app
from backend.settings import Settings
from backend.vlm import defaults
from model import VLMineModel

PAYLOADS = Path(__file__).resolve().parent / "fixtures" / "ls-payloads"
TEXT_CONFIG = ('<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/>'
               '<Choices name="label" toName="text"><Choice value="a"/></Choices></View>')


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text())


@pytest.fixture()
def backend(tmp_path):
    settings = Settings.from_env({}, model_dir=str(tmp_path), rerank_delay=0.0)
    engine = Engine(settings)
    queue = EmbeddedQueue(engine)
    app = create_app(settings, VLMineModel, engine=engine, queue=queue, start_workers=False)
    return app.test_client(), engine, queue


def text_tasks(texts: list[str], start: int = 1) -> list[dict]:
    return [{"id": start + i, "data": {"text": t}, "predictions": []} for i, t in enumerate(texts)]


def test_health_and_versions(backend):
    client, engine, _ = backend
    health = client.get("/health").get_json()
    assert health["status"] == "UP"
    assert client.get("/").get_json()["status"] == "UP"
    assert client.get("/versions").get_json()["versions"] == [engine.base_version]


def test_setup_with_the_real_payload_returns_the_live_version(backend):
    client, engine, _ = backend
    body = payload("setup.json")
    resp = client.post("/setup", json=body)
    assert resp.status_code == 200, resp.get_json()
    version = resp.get_json()["model_version"]
    assert version == engine.base_version
    # the payload's config mines images: the version names the describer this machine runs
    describer = "llava-1.5-7b-hf" if defaults.cuda_device_count() else "SmolVLM-256M-Instruct"
    assert version.startswith(f"vlmine-{describer}-llm-confirmed-novelty-")
    # the same settings after a "restart" give the same version
    again = Engine(engine.settings)
    assert again.base_version == version
    assert client.post("/setup", json=body).get_json()["model_version"] == version


def test_changed_settings_change_the_version(tmp_path):
    a = Settings.from_env({}, model_dir=str(tmp_path))
    b = Settings.from_env({"POOLING": "min"}, model_dir=str(tmp_path))
    c = Settings.from_env({"KEYWORD_MODE": "rules"}, model_dir=str(tmp_path))
    assert len({a.model_version(), b.model_version(), c.model_version()}) == 3
    assert a.mining_hash() == b.mining_hash() != c.mining_hash()


def test_predict_text_tasks_one_result_per_task_in_order(backend):
    client, engine, _ = backend
    texts = ["a cat on a sofa"] * 6 + ["a giraffe in a tuxedo beside a lighthouse"] + ["a cat on a sofa"] * 3
    tasks = text_tasks(texts)
    resp = client.post("/predict", json={"tasks": tasks, "project": "3.1795911544", "label_config": TEXT_CONFIG,
                                         "params": {}})
    assert resp.status_code == 200, resp.get_json()
    results = resp.get_json()["results"]
    assert len(results) == len(tasks)
    # a text project: mined by rules, no model named
    assert {r["model_version"] for r in results} == {engine.versions_by_kind["text"]}
    assert engine.versions_by_kind["text"].startswith("vlmine-text-rules-confirmed-novelty-")
    scores = [r["score"] for r in results]
    # LABEL_STREAM=uncertainty (the default): Label Studio serves the lowest score first
    assert min(scores) == scores[6] == pytest.approx(0.1) and max(scores) == 1.0
    assert all(0 < s <= 1 for s in scores)
    explanation = results[6]["result"][0]
    assert explanation["from_name"] == "vlmine" and explanation["to_name"] == "text"
    assert "giraffe: 1 task" in explanation["value"]["text"][0]


def test_predict_without_textarea_gives_empty_results(backend):
    client, _, _ = backend
    config = '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="x"/></Choices></View>'
    resp = client.post("/predict", json={"tasks": text_tasks(["a dog", "a boat"]), "project": 4,
                                         "label_config": config})
    assert [r["result"] for r in resp.get_json()["results"]] == [[], []]


def test_predict_image_payload_with_unreachable_images_fails_per_task(backend):
    client, engine, _ = backend
    body = payload("predict_retrieve_action.json")
    resp = client.post("/predict", json=body)
    assert resp.status_code == 200, resp.get_json()
    results = resp.get_json()["results"]
    assert len(results) == len(body["tasks"])
    assert all(r["score"] == engine.ranker.end_score == 1.0 for r in results)  # the end of the queue (served last)
    metrics = client.get("/metrics").get_json()
    project = metrics["projects"]["1"]
    assert project["failed"] == len(body["tasks"])
    assert "image" in project["last_failures"][0]["error"]


def test_webhook_tasks_created_queues_and_mines(backend):
    client, engine, queue = backend
    body = payload("webhook_tasks_created.json")
    body["project"]["label_config"] = TEXT_CONFIG
    body["tasks"] = text_tasks(["a red bus on a road", "a man riding a horse"], start=11)
    resp = client.post("/webhook", json=body)
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "queued", "tasks": 2, "jobs": 1}
    # the same delivery twice is harmless: mining is idempotent
    client.post("/webhook", json=body)
    queue.run_pending(kinds=("mine",))
    scope = engine.scope(1)
    assert engine.index.task_count(scope) == 2
    assert engine.index.document_frequencies(scope, ["horse", "bus"]) == {"horse": 1, "bus": 1}
    # with no Label Studio configured, the re-rank fails with a reason in /metrics
    queue.run_pending()
    metrics = client.get("/metrics").get_json()
    assert "LABEL_STUDIO_URL" in metrics["last_error"]["job:rerank"]
    # progress: Label Studio said the project holds 12 tasks; 2 are mined
    progress = metrics["projects"]["1"]
    assert (progress["total"], progress["mined"], progress["failed"], progress["pending"]) == (12, 2, 0, 10)


def test_webhook_tasks_deleted_removes_from_index(backend):
    client, engine, queue = backend
    created = {"action": "TASKS_CREATED", "project": {"id": 2, "label_config": TEXT_CONFIG},
               "tasks": text_tasks(["a kite", "a boat", "a train"])}
    client.post("/webhook", json=created)
    queue.run_pending(kinds=("mine",))
    resp = client.post("/webhook", json={"action": "TASKS_DELETED", "project": {"id": 2},
                                         "tasks": [{"id": 2}]})
    assert resp.status_code == 200
    queue.run_pending(kinds=("delete",))
    assert engine.index.contains(engine.scope(2), [1, 2, 3]) == {1, 3}


def test_other_webhook_events_are_ignored(backend):
    client, _, _ = backend
    body = payload("webhook_annotation_created.json")
    resp = client.post("/webhook", json=body)
    assert resp.status_code == 200 and resp.get_json()["status"] == "ignored"


def test_start_training_without_label_studio_says_why_it_does_nothing(backend):
    client, _, queue = backend
    resp = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 4}})
    assert resp.status_code == 200
    answer = resp.get_json()
    assert answer["status"] == "ignored" and "no Label Studio connection" in answer["reason"]


@pytest.mark.parametrize("route,body,status,fragment", [
    ("/predict", b"not json", 400, "not valid JSON"),
    ("/predict", b"[1, 2]", 400, "JSON object"),
    ("/predict", b"", 400, "empty"),
    ("/predict", json.dumps({"tasks": "x", "project": 1}).encode(), 400, "'tasks'"),
    ("/predict", json.dumps({"tasks": [{"data": {}}], "project": 1}).encode(), 400, "integer 'id'"),
    ("/predict", json.dumps({"tasks": [{"id": 1}], "project": "abc"}).encode(), 400, "'project'"),
    ("/predict", json.dumps({"tasks": [{"id": 1}], "project": 1, "label_config": "<View"}).encode(), 422,
     "not valid XML"),
    ("/predict", json.dumps({"tasks": [{"id": 1, "data": {}}], "project": 1,
                             "label_config": "<View><Header value='x'/></View>"}).encode(), 422, "no Image or Text"),
    ("/setup", json.dumps({"schema": TEXT_CONFIG}).encode(), 400, "'project'"),
    ("/webhook", json.dumps({"project": {"id": 1}}).encode(), 400, "'action'"),
    ("/webhook", json.dumps({"action": "TASKS_CREATED", "project": {"id": 1}}).encode(), 400, "'tasks'"),
])
def test_malformed_requests_get_a_4xx_with_a_message(backend, route, body, status, fragment):
    client, _, _ = backend
    resp = client.post(route, data=body, content_type="application/json")
    assert resp.status_code == status
    assert fragment in resp.get_json()["error"]


def test_basic_auth_guards_every_route(tmp_path):
    settings = Settings.from_env({"BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "s3cret-pass"},
                                 model_dir=str(tmp_path))
    app = create_app(settings, VLMineModel, start_workers=False)
    client = app.test_client()
    assert client.get("/health").status_code == 401
    bad = base64.b64encode(b"ls:wrong").decode()
    assert client.get("/health", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    good = base64.b64encode(b"ls:s3cret-pass").decode()
    assert client.get("/health", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"Basic {good}"}).status_code == 200


def test_a_label_config_that_mines_another_field_re_mines(backend):
    client, engine, queue = backend
    created = {"action": "TASKS_CREATED", "project": {"id": 6, "label_config": TEXT_CONFIG},
               "tasks": [{"id": 1, "data": {"text": "a kite", "caption": "a walrus"}}]}
    client.post("/webhook", json=created)
    queue.run_pending(kinds=("mine",))
    assert engine.index.task_count(engine.scope(6)) == 1
    same_field = TEXT_CONFIG.replace('<Choice value="a"/>', '<Choice value="a"/><Choice value="b"/>')
    resp = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 6, "label_config": same_field}})
    assert resp.get_json() == {"status": "ok", "remine": False}
    assert engine.index.task_count(engine.scope(6)) == 1
    other_field = same_field.replace('value="$text"', 'value="$caption"')
    resp = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 6, "label_config": other_field}})
    assert resp.get_json() == {"status": "ok", "remine": True}
    assert engine.index.task_count(engine.scope(6)) == 0
    assert engine.store.get_project(6).label_config == other_field


# ------------------------------------------------------------------ ids past 64 bits
BIG = 2**63


@pytest.mark.parametrize("route,body,fragment", [
    ("/predict", {"tasks": [{"id": BIG, "data": {"text": "a kite"}}], "project": 1, "label_config": TEXT_CONFIG},
     "tasks[0]"),
    ("/predict", {"tasks": [{"id": 1, "data": {"text": "a kite"}}], "project": BIG, "label_config": TEXT_CONFIG},
     "'project'"),
    ("/predict", {"tasks": [{"id": 1, "data": {"text": "a kite"}}], "project": "99999999999999999999.1",
                  "label_config": TEXT_CONFIG}, "'project'"),
    ("/setup", {"project": "99999999999999999999.1", "schema": TEXT_CONFIG}, "'project'"),
    ("/setup", {"project": "9" * 5000 + ".1", "schema": TEXT_CONFIG}, "'project'"),
    ("/setup", {"project": "\u00b2.1", "schema": TEXT_CONFIG}, "'project'"),
    ("/webhook", {"action": "TASKS_CREATED", "project": {"id": BIG, "label_config": TEXT_CONFIG},
                  "tasks": [{"id": 1, "data": {"text": "a kite"}}]}, "'project'"),
    ("/webhook", {"action": "TASKS_CREATED", "project": {"id": 1, "label_config": TEXT_CONFIG},
                  "tasks": [{"id": BIG, "data": {"text": "a kite"}}]}, "tasks[0]"),
    ("/webhook", {"action": "TASKS_CREATED", "project": {"id": 1, "label_config": TEXT_CONFIG, "task_number": BIG},
                  "tasks": [{"id": 1, "data": {"text": "a kite"}}]}, "task_number"),
    ("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 1, "task_number": -1}}, "task_number"),
    ("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 1, "task_number": "12"}}, "task_number"),
])
def test_ids_past_64_bits_get_a_400(backend, route, body, fragment):
    client, engine, _ = backend
    resp = client.post(route, json=body)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert fragment in resp.get_json()["error"]
    assert engine.store.projects() == []  # nothing reached the store


def test_the_largest_64_bit_ids_still_work(backend):
    client, engine, queue = backend
    top = BIG - 1
    body = {"action": "TASKS_CREATED", "project": {"id": top, "label_config": TEXT_CONFIG, "task_number": top},
            "tasks": [{"id": top, "data": {"text": "a walrus on a sofa"}}]}
    resp = client.post("/webhook", json=body)
    assert resp.status_code == 200, resp.get_json()
    queue.run_pending(kinds=("mine",))
    assert engine.index.contains(engine.scope(top), [top]) == {top}
    assert engine.store.get_project(top).total == top
    resp = client.post("/setup", json={"project": f"{top}.1795911544", "schema": TEXT_CONFIG})
    assert resp.status_code == 200, resp.get_json()


# ------------------------------------------------------------------ malformed stored predictions
@pytest.mark.parametrize("source", ["prediction_score", "prediction_probs", "predictions_vote"])
@pytest.mark.parametrize("predictions", [["x"], 5, "x", {"score": 0.5}, [{"score": 0.5}, None]])
@pytest.mark.slow
def test_malformed_predictions_get_a_400(tmp_path, source, predictions):
    settings = Settings.from_env({"UNCERTAINTY_SOURCE": source}, model_dir=str(tmp_path), rerank_delay=0.0)
    engine = Engine(settings)
    client = create_app(settings, VLMineModel, engine=engine, queue=EmbeddedQueue(engine), start_workers=False).test_client()
    tasks = text_tasks(["a cat on a sofa", "a walrus on a sofa"])
    tasks[1]["predictions"] = predictions
    resp = client.post("/predict", json={"tasks": tasks, "project": "3.1", "label_config": TEXT_CONFIG})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert "tasks[1].predictions must be a list of prediction objects" in resp.get_json()["error"]
    # well-formed ones (or none at all) are fine
    tasks[1]["predictions"] = [{"model_version": "clf", "score": 0.2, "result": []}]
    tasks[0].pop("predictions")
    resp = client.post("/predict", json={"tasks": tasks, "project": "3.1", "label_config": TEXT_CONFIG})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert len(resp.get_json()["results"]) == 2


# ------------------------------------------------------------------ webhooks and auth
def auth_app(tmp_path, **env):
    settings = Settings.from_env({"BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "s3cret-pass", **env},
                                 model_dir=str(tmp_path), rerank_delay=0.0)
    engine = Engine(settings)
    app = create_app(settings, VLMineModel, engine=engine, queue=EmbeddedQueue(engine), start_workers=False)
    return app.test_client(), engine


BASIC = {"Authorization": "Basic " + base64.b64encode(b"ls:s3cret-pass").decode()}
CREATED = {"action": "TASKS_CREATED", "project": {"id": 5, "label_config": TEXT_CONFIG},
           "tasks": text_tasks(["a kite", "a boat"])}


def test_the_webhook_secret_lets_a_webhook_past_basic_auth(tmp_path):
    client, _ = auth_app(tmp_path, WEBHOOK_SECRET="hook-secret-77")
    resp = client.post("/webhook", json=CREATED, headers={"X-VLMine-Secret": "hook-secret-77"})
    assert resp.status_code == 200 and resp.get_json()["tasks"] == 2, resp.get_data(as_text=True)
    for headers in ({}, {"X-VLMine-Secret": "wrong"}, {"Authorization": BASIC["Authorization"][:-2] + "xx"}):
        assert client.post("/webhook", json=CREATED, headers=headers).status_code == 401
    # basic auth still works, but then the secret is needed too (Start Training excepted)
    assert client.post("/webhook", json=CREATED, headers=BASIC).status_code == 401
    assert client.post("/webhook", json=CREATED, headers={**BASIC, "X-VLMine-Secret": "hook-secret-77"}).status_code \
        == 200
    # the secret opens /webhook only
    for route in ("/setup", "/predict", "/metrics"):
        assert client.post(route, json={}, headers={"X-VLMine-Secret": "hook-secret-77"}).status_code == 401


def test_a_refused_webhook_says_what_to_add_once_a_minute_per_project(tmp_path, caplog):
    client, _ = auth_app(tmp_path)
    caplog.set_level("WARNING", logger="backend.server.app")
    other = {**CREATED, "project": {"id": 6, "label_config": TEXT_CONFIG}}
    for body in (CREATED, CREATED, other, CREATED):
        assert client.post("/webhook", json=body).status_code == 401
    warnings = [r.getMessage() for r in caplog.records if "refused a webhook" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("project 5:") and warnings[1].startswith("project 6:")
    assert "no basic auth" in warnings[0] and "Authorization" in warnings[0] and "Webhooks" in warnings[0]
    assert "s3cret-pass" not in caplog.text and base64.b64encode(b"ls:s3cret-pass").decode() not in caplog.text


def test_a_refused_webhook_names_the_secret_header_when_one_is_set(tmp_path, caplog):
    client, _ = auth_app(tmp_path, WEBHOOK_SECRET="hook-secret-77")
    caplog.set_level("WARNING", logger="backend.server.app")
    assert client.post("/webhook", json=CREATED, headers={**BASIC, "X-VLMine-Secret": "nope"}).status_code == 401
    warnings = [r.getMessage() for r in caplog.records if "refused a webhook" in r.getMessage()]
    assert len(warnings) == 1 and "X-VLMine-Secret is wrong" in warnings[0] and "WEBHOOK_SECRET" in warnings[0]
    assert "hook-secret-77" not in caplog.text and "nope" not in caplog.text


@pytest.mark.slow
def test_setup_still_answers_when_label_studio_cannot_be_reached(tmp_path, caplog):
    from tests.support.ports import free_port

    client, engine = auth_app(tmp_path, WEBHOOK_SECRET="hook-secret-77", LABEL_STUDIO_API_KEY="ls-key-123456",
                              LABEL_STUDIO_URL=f"http://127.0.0.1:{free_port()}")
    caplog.set_level("WARNING", logger="backend.server.app")
    hooks = client.application.extensions["vlmine"]["webhook_headers"]
    hooks.WAIT_S = 60  # wait for the look-up to finish (it fails at once: nothing listens there)
    resp = client.post("/setup", json={"project": "7.1", "schema": TEXT_CONFIG}, headers=BASIC)
    assert resp.status_code == 200 and resp.get_json()["model_version"] == engine.versions_by_kind["text"]
    warnings = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("project 7: cannot check Label Studio's webhook")
    assert "X-VLMine-Secret" in warnings[0]
    for secret in ("hook-secret-77", "s3cret-pass", "ls-key-123456"):
        assert secret not in caplog.text
    # looked at once: the next /setup (Label Studio sends one before every predict) does not ask again
    caplog.clear()
    assert client.post("/setup", json={"project": "7.1", "schema": TEXT_CONFIG}, headers=BASIC).status_code == 200
    assert not [r for r in caplog.records if "webhook" in r.getMessage()]
