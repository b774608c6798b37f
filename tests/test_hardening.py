"""The hardening catalogue: every bad input answered clearly, secrets kept, nothing accepted lost.

One real server process (basic auth, a webhook secret, a Label Studio key and a VLM key
all set) is walked through every case; afterwards it must be alive and healthy, its
answers and its whole log free of every secret, and every task it accepted mined.
Hypothesis then throws generated JSON at /predict and /webhook: no 5xx.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.engine.engine import Engine
from backend.jobs.embedded import EmbeddedQueue
from backend.server.app import create_app
from backend.settings import Settings
from model import VLMineModel
from tests.support.backend_server import BackendServer
from tests.support.fake_openai import FakeOpenAI
from tests.support.ports import free_port

SECRETS = {
    "BASIC_AUTH_PASS": "basic-pass-7f3a9c",
    "LABEL_STUDIO_API_KEY": "ls-key-0b5e2d8817",
    "VLM_API_KEY": "vlm-key-c41d77e2",
    "WEBHOOK_SECRET": "hook-secret-9d2f",
}
TEXT = '<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/></View>'
IMAGE = '<View><Image name="image" value="$image"/><TextArea name="vlmine" toName="image"/></View>'
AUTH = ("ls", SECRETS["BASIC_AUTH_PASS"])
HOOK = {"X-VLMine-Secret": SECRETS["WEBHOOK_SECRET"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3):  # noqa: F811
    tmp = tmp_path_factory.mktemp("hardening")
    with FakeOpenAI(by_colour={"red": "a red bus on a road"}, api_key=SECRETS["VLM_API_KEY"]) as vlm:
        env = {"MODEL_DIR": str(tmp / "model"), "BASIC_AUTH_USER": "ls", "MAX_REQUEST_MB": "1",
               # a Label Studio that is not there: write-back fails, and must say so without the key
               "LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}", "VLM_API_URL": vlm.base_url,
               "VLM_API_MODEL": "fake", "KEYWORD_MODE": "rules", "IMAGE_ALLOW_PRIVATE_NETWORKS": "true",
               "AWS_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "RERANK_DELAY": "0", "JOB_RETRIES": "0",
               "LOG_LEVEL": "DEBUG", **SECRETS}
        backend = BackendServer(env, tmp / "backend.log", gunicorn=True)
        yield backend
        backend.stop()


def post(server, path, body=None, data=None, auth=AUTH, headers=None, ctype="application/json"):
    kwargs = {"json": body} if data is None else {"data": data, "headers": {"Content-Type": ctype}}
    if headers:
        kwargs.setdefault("headers", {}).update(headers)
    return requests.post(server.url + path, auth=auth, timeout=60, **kwargs)


BAD_REQUESTS = [
    # (route, raw body or JSON, expected status, fragment of the error)
    ("/predict", b"{not json", 400, "not valid JSON"),
    ("/predict", b"", 400, "empty"),
    ("/predict", b'"a string"', 400, "JSON object"),
    ("/predict", {"project": 1}, 400, "'tasks'"),
    ("/predict", {"tasks": [1, 2], "project": 1}, 400, "integer 'id'"),
    ("/predict", {"tasks": [{"id": "7"}], "project": 1}, 400, "integer 'id'"),
    ("/predict", {"tasks": [{"id": 1, "data": "x"}], "project": 1}, 400, "data must be an object"),
    ("/predict", {"tasks": [{"id": 1}], "project": {"x": 1}}, 400, "'project'"),
    ("/predict", {"tasks": [{"id": 1}], "project": 1, "label_config": "<View><Text"}, 422, "not valid XML"),
    ("/predict", {"tasks": [{"id": 1}], "project": 1,
                  "label_config": '<!DOCTYPE x [<!ENTITY a "aaaa">]><View>&a;</View>'}, 422, "not valid XML"),
    ("/predict", {"tasks": [{"id": 1}], "project": 1, "label_config": "<View><Header value='x'/></View>"},
     422, "no Image or Text object"),
    ("/predict", b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
    ("/predict", {"tasks": [{"id": 1, "data": {"text": "x" * 1_200_000}}], "project": 1}, 413, ""),
    ("/setup", {"schema": TEXT}, 400, "'project'"),
    ("/setup", {"project": "1.2", "schema": 42}, 400, "'schema'"),
    ("/setup", {"project": "1.2", "schema": "<View><Choices name='c' toName='x'/></View>"}, 422,
     "no Image or Text object"),
    ("/webhook", {"project": {"id": 1}}, 400, "'action'"),
    ("/webhook", {"action": "TASKS_CREATED", "project": 3}, 400, "'project'"),
    ("/webhook", {"action": "TASKS_CREATED", "project": {"id": 1}}, 400, "'tasks'"),
    ("/webhook", {"action": "TASKS_DELETED", "project": {"id": 1}, "tasks": [{"id": None}]}, 400, "integer 'id'"),
    ("/webhook", {"action": "PROJECT_UPDATED", "project": {"id": 1, "label_config": "<View/>"}}, 422,
     "no Image or Text object"),
    # ids past a signed 64-bit integer (what SQLite and Label Studio store)
    ("/predict", {"tasks": [{"id": 2**63, "data": {"text": "x"}}], "project": 1, "label_config": TEXT}, 400,
     "integer 'id'"),
    ("/predict", {"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "99999999999999999999.1"}, 400,
     "at most"),
    ("/webhook", {"action": "TASKS_CREATED", "project": {"id": 2**63}, "tasks": []}, 400, "'project'"),
    ("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 1, "task_number": 2**63}}, 400,
     "task_number"),
    # stored predictions Label Studio would never send
    ("/predict", {"tasks": [{"id": 1, "data": {"text": "x"}, "predictions": ["x"]}], "project": 1,
                  "label_config": TEXT}, 400, "predictions must be a list of prediction objects"),
    ("/predict", {"tasks": [{"id": 1, "data": {"text": "x"}, "predictions": 5}], "project": 1,
                  "label_config": TEXT}, 400, "predictions must be a list of prediction objects"),
]


@pytest.mark.slow
def test_the_catalogue(server, http_url, s3):  # noqa: F811
    answers: list[str] = []

    # 1. malformed requests: a 4xx with a JSON message naming the problem
    for route, body, status, fragment in BAD_REQUESTS:
        raw = body if isinstance(body, bytes) else None
        resp = post(server, route, None if raw is not None else body, data=raw,
                    headers=HOOK if route == "/webhook" else None)
        answers.append(resp.text)
        assert resp.status_code == status, (route, body if raw is None else raw[:40], resp.text)
        assert fragment in resp.json()["error"], (route, resp.text)

    # 2. auth: every route, constant-time compared; the webhook's shared secret
    for method, route in (("get", "/health"), ("get", "/metrics"), ("get", "/versions"), ("post", "/predict"),
                          ("post", "/setup"), ("post", "/webhook")):
        for auth in (None, ("ls", "wrong"), ("other", SECRETS["BASIC_AUTH_PASS"])):
            resp = getattr(requests, method)(server.url + route, auth=auth, timeout=10)
            answers.append(resp.text)
            assert resp.status_code == 401 and resp.json()["error"] == "authentication required"
    created = {"action": "TASKS_CREATED", "project": {"id": 9, "label_config": TEXT, "task_number": 3},
               "tasks": [{"id": i, "data": {"text": t}} for i, t in
                         enumerate(["a cat on a mat", "a caf\u00e9 in Z\u00fcrich \ud800", "\u202e\u0000 odd"], 1)]}
    for headers in ({}, {"X-VLMine-Secret": "nope"}):
        resp = post(server, "/webhook", created, headers=headers)
        answers.append(resp.text)
        assert resp.status_code == 401 and "X-VLMine-Secret" in resp.json()["error"]
    # Label Studio's "Start Training" sends no custom header: basic auth is enough for it alone
    training = {"action": "START_TRAINING", "project": {"id": 9, "label_config": TEXT}}
    resp = post(server, "/webhook", training)
    assert resp.status_code == 200 and resp.json()["event"] == "START_TRAINING", resp.text
    resp = requests.post(server.url + "/webhook", json=training, timeout=10)
    assert resp.status_code == 401  # and basic auth is still needed

    # 3. accepted work is not lost: odd Unicode included, the webhook's tasks get mined
    resp = post(server, "/webhook", created, headers=HOOK)
    assert resp.status_code == 200 and resp.json()["tasks"] == 3

    # 4. task-level trouble fails only that task, with the reason visible
    cases = {
        1: f"{http_url}/red.png", 2: None, 3: f"http://127.0.0.1:{free_port()}/gone.png",
        4: f"{http_url}/missing.png", 5: f"{http_url}/corrupt.png", 6: f"{http_url}/truncated.png",
        7: f"{http_url}/text", 8: f"{http_url}/bomb-warn.png", 9: "s3://pics/no-such-key.png",
        10: "s3://no-such-bucket/a.png", 11: "http://169.254.169.254/latest/meta-data/", 12: "file:///etc/passwd",
        13: "s3://pics/cats/red cat?.png",
    }
    tasks = [{"id": tid, "data": ({"image": ref} if ref else {"photo": "x"})} for tid, ref in cases.items()]
    resp = post(server, "/predict", {"tasks": tasks, "project": "8.1", "label_config": IMAGE})
    answers.append(resp.text)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert len(results) == len(tasks)
    good = {1, 13}
    # the default stream serves the lowest score first: failed tasks get 1.0, the end of the queue
    # (the last of the mined ones shares 1.0 with them)
    assert sorted(r["score"] for t, r in zip(tasks, results) if t["id"] in good) == [0.5, 1.0]
    assert all(r["score"] == 1 for t, r in zip(tasks, results) if t["id"] not in good)
    metrics = requests.get(server.url + "/metrics", auth=AUTH, timeout=10).json()
    answers.append(json.dumps(metrics))
    failures = {f["task"]: f["error"] for f in metrics["projects"]["8"]["last_failures"]}
    assert len(failures) == 5  # the 5 most recent; all 11 are counted
    assert metrics["projects"]["8"]["failed"] == len(tasks) - len(good)
    from backend.engine.engine import Engine as _E  # the full list, straight from the store

    store = _E(Settings.from_env({"MODEL_DIR": str(server.log_path.parent / "model")})).store
    reasons = dict(store.failures(8, limit=50))
    expected = {2: "no data field 'image'", 3: "cannot connect", 4: "HTTP 404", 5: "image: ", 6: "image: ",
                7: "not an image", 8: "decompression bomb", 9: "NoSuchKey", 10: "NoSuchBucket",
                11: "cloud metadata address", 12: "unsupported scheme file://"}
    for tid, fragment in expected.items():
        assert fragment in reasons[tid], (tid, reasons[tid])

    # 5. afterwards: alive, healthy, every accepted task mined
    deadline = time.time() + 60
    while time.time() < deadline:
        progress = requests.get(server.url + "/metrics", auth=AUTH, timeout=10).json()["projects"].get("9", {})
        if progress.get("mined") == 3:
            break
        time.sleep(0.5)
    assert progress["mined"] == 3 and progress["total"] == 3
    assert server.proc.poll() is None
    health = requests.get(server.url + "/health", auth=AUTH, timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "UP"

    # 6. no secret in any answer or anywhere in the log (write-back to the absent Label
    #    Studio failed and was logged; the VLM endpoint was called with its key)
    deadline = time.time() + 60
    while time.time() < deadline:
        metrics = requests.get(server.url + "/metrics", auth=AUTH, timeout=10).json()
        if "job:rerank" in metrics["last_error"]:
            break
        time.sleep(0.5)
    assert "Connection refused" in metrics["last_error"]["job:rerank"]
    answers.append(json.dumps(metrics))
    text = "\n".join(answers) + server.log_text()
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} leaked"


# ------------------------------------------------------------------ fuzzing
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)
task = st.fixed_dictionaries({"id": st.one_of(st.integers(-3, 50), st.integers(2**63 - 2, 2**64), st.text(max_size=3),
                                              st.none())},
                             optional={"data": st.one_of(st.dictionaries(st.sampled_from(["text", "image", "x"]),
                                                                        json_values, max_size=2), json_values),
                                       "predictions": json_values})
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={
        "tasks": st.one_of(st.lists(task, max_size=4), json_values),
        "project": st.one_of(st.integers(-2, 5), st.integers(2**63 - 2, 2**64),
                             st.sampled_from(["1.23", "abc", "", "2", "99999999999999999999.1", "\u00b2.1"]),
                             json_values),
        "label_config": st.one_of(st.sampled_from([TEXT, IMAGE, "<View/>", "<bad", ""]), json_values),
        "action": st.one_of(st.sampled_from(["TASKS_CREATED", "TASKS_DELETED", "PROJECT_UPDATED",
                                             "ANNOTATION_CREATED"]), json_values),
        "task_number": st.one_of(st.integers(-1, 100), st.integers(2**63 - 2, 2**64), json_values),
    }),
)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    settings = Settings.from_env({}, model_dir=str(tmp_path_factory.mktemp("fuzz")))
    engine = Engine(settings)
    return create_app(settings, VLMineModel, engine=engine, queue=EmbeddedQueue(engine), start_workers=False).test_client()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["/predict", "/webhook", "/setup"]), body=bodies)
@pytest.mark.slow
def test_generated_json_never_gets_a_5xx(fuzz_client, route, body):
    if isinstance(body, dict) and route == "/webhook" and isinstance(body.get("project"), int):
        project = {"id": body["project"], "label_config": body.get("label_config")}
        if "task_number" in body:
            project["task_number"] = body["task_number"]
        body = {**body, "project": project}
    resp = fuzz_client.post(route, data=json.dumps(body), content_type="application/json")
    assert resp.status_code < 500, (route, body, resp.get_data(as_text=True))
    assert isinstance(resp.get_json(), dict)
