"""backend.labelstudio.client.LabelStudioClient against a real Label Studio 1.23.2 (nothing mocked).

The server comes from the session fixture ``label_studio`` (tests/support/label_studio.py);
every test makes its own project so that they do not depend on each other.
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from backend.labelstudio.client import PREDICTION_SCORE_DESC, LabelStudioClient, LabelStudioError, looks_like_jwt
from tests.support.label_studio import create_project
from tests.support.ports import free_port
from tests.support.routes import answer_from

pytestmark = pytest.mark.e2e

TEXT_CONFIG = '<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/></View>'
IMAGE_CONFIG = '<View><Image name="image" value="$image"/><TextArea name="vlmine" toName="image"/></View>'
N_TASKS = 20
_names = itertools.count(1)


@pytest.fixture()
def client(label_studio) -> LabelStudioClient:
    return LabelStudioClient(label_studio.base_url, label_studio.token)


@pytest.fixture()
def project(label_studio) -> tuple[int, list[int]]:
    return create_project(label_studio, f"client test {next(_names)}", TEXT_CONFIG,
                          [{"text": f"task number {i}"} for i in range(N_TASKS)])


def preds(task_ids, version, score=lambda i: i / 100):
    return [{"task": t, "score": score(i), "model_version": version, "result": []} for i, t in enumerate(task_ids)]


def order(client: LabelStudioClient, view_id: int, limit: int | None = None) -> list[int]:
    return [t["id"] for t in client.tasks_in_view(view_id, limit=limit)]


def annotate(label_studio, task_id: int) -> None:
    label_studio.api("POST", f"/api/tasks/{task_id}/annotations/", json={
        "result": [{"from_name": "vlmine", "to_name": "text", "type": "textarea", "value": {"text": ["done"]}}],
    })


# ------------------------------------------------------------------------------ projects
def test_get_project(client, project):
    pid, _ = project
    info = client.get_project(pid)
    assert info["id"] == pid
    assert info["title"].startswith("client test")
    assert info["label_config"] == TEXT_CONFIG
    assert "model_version" in info


def test_set_model_version_refused_until_a_prediction_exists(client, project):
    pid, tids = project
    with pytest.raises(LabelStudioError) as err:
        client.set_model_version(pid, "vlmine-v1")
    assert err.value.status == 400
    assert "PATCH /api/projects/" in str(err.value) and "400" in str(err.value)
    client.import_predictions(pid, preds(tids[:1], "vlmine-v1"))
    client.set_model_version(pid, "vlmine-v1")
    assert client.get_project(pid)["model_version"] == "vlmine-v1"


# --------------------------------------------------------------------------- predictions
def test_import_and_list_predictions_round_trip(client, project):
    pid, tids = project
    assert client.import_predictions(pid, preds(tids, "v-a", lambda i: i / 20), chunk_size=7) == N_TASKS
    assert client.import_predictions(pid, preds(tids[:5], "v-b", lambda i: 0.5)) == 5

    rows = client.list_predictions(pid)
    assert len(rows) == N_TASKS + 5
    assert set(rows[0]) == {"id", "task", "model_version", "score"}
    a = {r["task"]: r for r in client.list_predictions(pid, "v-a")}
    assert set(a) == set(tids)
    assert all(r["model_version"] == "v-a" for r in a.values())
    assert [a[t]["score"] for t in tids] == pytest.approx([i / 20 for i in range(N_TASKS)])
    assert {r["task"] for r in client.list_predictions(pid, "v-b")} == set(tids[:5])
    assert client.list_predictions(pid, "nope") == []


def test_import_predictions_for_a_foreign_task_fails_cleanly(client, project, label_studio):
    pid, _ = project
    other, other_tids = create_project(label_studio, f"other {next(_names)}", TEXT_CONFIG, [{"text": "x"}])
    with pytest.raises(LabelStudioError) as err:
        client.import_predictions(pid, preds(other_tids, "v1"))
    assert err.value.status == 400
    assert f"/api/projects/{pid}/import/predictions" in str(err.value)


def test_delete_model_version_removes_all_its_predictions(client, project):
    pid, tids = project
    client.import_predictions(pid, preds(tids, "old"))
    client.import_predictions(pid, preds(tids, "new"))
    client.set_model_version(pid, "old")
    assert client.delete_model_version(pid, "old") == N_TASKS
    assert client.list_predictions(pid, "old") == []
    assert len(client.list_predictions(pid, "new")) == N_TASKS
    # Label Studio resets project.model_version when its version is deleted
    assert client.get_project(pid)["model_version"] in (None, "")
    assert client.delete_model_version(pid, "old") == 0


def test_delete_predictions(client, project):
    pid, tids = project
    client.import_predictions(pid, preds(tids[:4], "v1"))
    ids = [r["id"] for r in client.list_predictions(pid)]
    client.delete_predictions(ids[:2])
    assert sorted(r["id"] for r in client.list_predictions(pid)) == sorted(ids[2:])
    client.delete_predictions(ids[:2])  # already gone: not an error


# ---------------------------------------------------------------------- views and order
def test_ensure_view_is_idempotent_and_leaves_the_admins_edits_alone(client, project, label_studio):
    pid, _ = project
    hidden = {"explore": ["tasks:inner_id"], "labeling": ["tasks:inner_id"]}
    first = client.ensure_view(pid, "VLMine priority", PREDICTION_SCORE_DESC, hidden_columns=hidden)
    assert client.ensure_view(pid, "VLMine priority", PREDICTION_SCORE_DESC, hidden_columns=hidden) == first
    views = label_studio.api("GET", "/api/dm/views/", params={"project": pid}).json()
    assert [v["id"] for v in views] == [first]
    assert views[0]["data"]["ordering"] == PREDICTION_SCORE_DESC
    assert views[0]["data"]["hiddenColumns"] == hidden

    # the backend's own ordering of the other score direction is replaced ...
    asc = ["tasks:predictions_score"]
    assert client.ensure_view(pid, "VLMine priority", asc, hidden_columns=hidden,
                              replace=[PREDICTION_SCORE_DESC]) == first
    views = label_studio.api("GET", "/api/dm/views/", params={"project": pid}).json()
    assert views[0]["data"]["ordering"] == asc

    # ... but what an admin chose later (an ordering, a filter, columns) is kept
    data = {**views[0]["data"], "ordering": ["tasks:id"], "hiddenColumns": {"explore": [], "labeling": []},
            "filters": {"conjunction": "and", "items": []}}
    label_studio.api("PATCH", f"/api/dm/views/{first}/", json={"project": pid, "data": data})
    assert client.ensure_view(pid, "VLMine priority", asc, hidden_columns=hidden,
                              replace=[PREDICTION_SCORE_DESC]) == first
    views = label_studio.api("GET", "/api/dm/views/", params={"project": pid}).json()
    assert len(views) == 1
    assert views[0]["data"]["ordering"] == ["tasks:id"]
    assert views[0]["data"]["hiddenColumns"] == {"explore": [], "labeling": []}
    assert views[0]["data"]["filters"] == {"conjunction": "and", "items": []}

    other = client.ensure_view(pid, "another tab", ["tasks:id"])
    assert other != first


def test_the_tab_hides_finished_tasks_until_the_admin_removes_the_filter(client, project, label_studio):
    from backend.engine.stream import tab_filters

    pid, tids = project
    client.import_predictions(pid, preds(tids, "v1"))
    label_studio.api("PATCH", f"/api/projects/{pid}", json={"model_version": "v1"})
    asc = ["tasks:predictions_score"]
    view = client.ensure_view(pid, "VLMine", asc, filters=tab_filters())
    assert order(client, view, limit=3) == tids[:3]  # lowest score first
    annotate(label_studio, tids[0])
    annotate(label_studio, tids[2])
    # labeled tasks leave the tab; the next unlabeled ones are on top, still by score
    assert order(client, view) == [tids[1], *tids[3:]]

    # the admin removes the filter in the Data Manager: every task again, and it stays so
    data = label_studio.api("GET", f"/api/dm/views/{view}/", params={"project": pid}).json()["data"]
    data["filters"] = {"conjunction": "and", "items": []}
    label_studio.api("PATCH", f"/api/dm/views/{view}/", json={"project": pid, "data": data})
    assert client.ensure_view(pid, "VLMine", asc, filters=tab_filters()) == view
    assert order(client, view) == tids

    # a tab made before the filter existed (no "filters" key) gets it
    older = client.ensure_view(pid, "older tab", asc)
    assert "filters" not in label_studio.api("GET", f"/api/dm/views/{older}/", params={"project": pid}).json()["data"]
    assert client.ensure_view(pid, "older tab", asc, filters=tab_filters()) == older
    assert order(client, older) == [tids[1], *tids[3:]]


def test_columns_name_what_the_default_tab_hides(client, project):
    pid, _ = project
    columns = {c["id"]: c for c in client.columns(pid)}
    assert columns["text"]["parent"] == "data"
    assert columns["inner_id"]["visibility_defaults"] == {"explore": False, "labeling": False}
    assert columns["predictions_score"]["visibility_defaults"]["explore"] is False  # hidden by default


def test_tasks_in_view_follow_the_project_model_version(client, project):
    pid, tids = project
    view = client.ensure_view(pid, "VLMine", PREDICTION_SCORE_DESC)
    ascending = preds(tids, "v1", lambda i: i / 100)        # last task scores highest
    descending = preds(tids, "v2", lambda i: 1 - i / 100)   # first task scores highest
    client.import_predictions(pid, ascending)
    client.set_model_version(pid, "v1")
    assert order(client, view) == list(reversed(tids))

    # predictions of v2 are there, but the score column only averages project.model_version's
    client.import_predictions(pid, descending)
    assert order(client, view) == list(reversed(tids))
    client.set_model_version(pid, "v2")
    assert order(client, view) == tids
    assert order(client, view, limit=3) == tids[:3]
    task = client.tasks_in_view(view, limit=1)[0]
    assert task["data"] == {"text": "task number 0"}
    assert task["predictions_score"] == pytest.approx(1.0)


def test_update_prediction_scores_changes_the_order(client, project):
    pid, tids = project
    view = client.ensure_view(pid, "VLMine", PREDICTION_SCORE_DESC)
    client.import_predictions(pid, preds(tids, "v1", lambda i: i / 100))
    client.set_model_version(pid, "v1")
    assert order(client, view, limit=1) == [tids[-1]]
    by_task = {r["task"]: r["id"] for r in client.list_predictions(pid, "v1")}
    client.update_prediction_scores({by_task[tids[3]]: 0.99, by_task[tids[7]]: 0.98})
    assert order(client, view, limit=3) == [tids[3], tids[7], tids[-1]]
    scores = {r["task"]: r["score"] for r in client.list_predictions(pid, "v1")}
    assert scores[tids[3]] == pytest.approx(0.99)


def test_label_all_tasks_with_uncertainty_sampling_serves_the_lowest_scored_unlabeled_task(client, project,
                                                                                            label_studio):
    pid, tids = project
    view = client.ensure_view(pid, "VLMine", ["tasks:predictions_score"])
    scores = {t: s + i / 1e4 for i, (t, s) in enumerate(zip(tids, [0.3, 0.9, 0.1, 0.7, 0.5] * 4))}
    client.import_predictions(pid, [{"task": t, "score": s, "model_version": "v1", "result": []}
                                    for t, s in scores.items()])
    client.set_model_version(pid, "v1")
    client.set_sampling(pid, "Uncertainty sampling")  # the community edition accepts it through the API
    assert client.get_project(pid)["sampling"] == "Uncertainty sampling"
    expected = sorted(tids, key=lambda t: scores[t])

    # the request the "Label All Tasks" button sends: the tab's ordering does not travel with it
    served = client.label_all_tasks(pid, view)
    assert served["id"] == expected[0]
    assert served["data"] == {"text": f"task number {tids.index(expected[0])}"}
    # the task is now locked for this user: asking again serves it again
    assert client.label_all_tasks(pid, view)["id"] == expected[0]
    annotate(label_studio, expected[0])
    assert client.label_all_tasks(pid, view)["id"] == expected[1]
    annotate(label_studio, expected[1])
    assert client.label_all_tasks(pid, view)["id"] == expected[2]

    # with no model version (prelabeling turned off) the stream falls back to a random unlabeled task
    client.set_model_version(pid, "")
    annotate(label_studio, expected[2])
    assert client.label_all_tasks(pid, view)["id"] in set(tids) - set(expected[:3])

    # every task labeled: nothing left
    for t in tids:
        if t not in expected[:3]:
            annotate(label_studio, t)
    assert client.label_all_tasks(pid, view) is None


def test_label_all_tasks_gives_each_annotator_the_next_rare_task_nobody_has_open(client, project, label_studio):
    pid, tids = project
    view = client.ensure_view(pid, "VLMine", ["tasks:predictions_score"])
    client.import_predictions(pid, preds(tids, "v1", lambda i: 1 - i / 100))  # the last task scores lowest
    client.set_model_version(pid, "v1")
    client.set_sampling(pid, "Uncertainty sampling")
    second = LabelStudioClient(label_studio.base_url, label_studio.add_user(f"annotator{pid}@example.com"))
    first_served = client.label_all_tasks(pid, view)
    second_served = second.label_all_tasks(pid, view)
    # the community edition counts no project members, so it serves the lowest score that the
    # other annotator has not locked, not a random pick
    assert [first_served["id"], second_served["id"]] == [tids[-1], tids[-2]]
    assert second.label_all_tasks(pid, view)["id"] == tids[-2]  # still locked for the second annotator


def test_label_all_tasks_with_the_default_sampling_ignores_the_tab(client, project):
    pid, tids = project
    view = client.ensure_view(pid, "VLMine", PREDICTION_SCORE_DESC)
    client.import_predictions(pid, preds(tids, "v1"))  # the last task scores highest
    client.set_model_version(pid, "v1")
    assert client.get_project(pid)["sampling"] == "Sequential sampling"
    assert client.label_all_tasks(pid, view)["id"] == tids[0]  # by id: the tab's ordering is not sent


def test_update_annotation_result_replaces_what_the_annotation_holds(client, project, label_studio):
    pid, tids = project
    result = [{"from_name": "vlmine", "to_name": "text", "type": "textarea", "value": {"text": ["why"]}}]
    aid = label_studio.api("POST", f"/api/tasks/{tids[0]}/annotations/", json={"result": result}).json()["id"]
    assert client.get_annotation(aid)["result"][0]["value"] == {"text": ["why"]}
    client.update_annotation_result(aid, [])
    assert client.get_annotation(aid)["result"] == []


# ----------------------------------------------------------------------------- tasks
def test_iter_tasks_pages_through_every_task_with_predictions(client, project):
    pid, tids = project
    client.import_predictions(pid, preds(tids, "other-model", lambda i: 0.25))
    tasks = list(client.iter_tasks(pid, page_size=7))
    assert [t["id"] for t in tasks] == tids
    assert tasks[0]["data"] == {"text": "task number 0"}
    assert all(len(t["predictions"]) == 1 and t["predictions"][0]["score"] == 0.25 for t in tasks)
    assert [t["id"] for t in client.iter_tasks(pid, page_size=20)] == tids
    assert [t["id"] for t in client.iter_tasks(pid, page_size=1000)] == tids


def test_iter_tasks_of_an_empty_project(client, label_studio):
    pid, _ = create_project(label_studio, f"empty {next(_names)}", TEXT_CONFIG, [])
    assert list(client.iter_tasks(pid)) == []


# ---------------------------------------------------------------------------- webhooks
def test_webhook_headers_are_replaced_and_the_actions_kept(client, project, label_studio):
    pid, _ = project
    other_pid, _ = create_project(label_studio, f"webhooks {next(_names)}", TEXT_CONFIG, [])
    made = label_studio.api("POST", "/api/webhooks/", json={
        "project": pid, "url": "http://127.0.0.1:9/webhook", "send_payload": True, "send_for_all_actions": False,
        "actions": ["TASKS_CREATED", "TASKS_DELETED"], "headers": {"X-Other": "1"}}).json()
    label_studio.api("POST", "/api/webhooks/", json={"project": other_pid, "url": "http://127.0.0.1:9/webhook"})
    hooks = client.list_webhooks(pid)
    assert [h["id"] for h in hooks] == [made["id"]]  # the other project's webhook is not listed
    assert hooks[0]["headers"] == {"X-Other": "1"}
    client.set_webhook_headers(hooks[0], {"X-Other": "1", "X-VLMine-Secret": "s"})
    after = label_studio.api("GET", f"/api/webhooks/{made['id']}/").json()
    assert after["headers"] == {"X-Other": "1", "X-VLMine-Secret": "s"}
    assert sorted(after["actions"]) == ["TASKS_CREATED", "TASKS_DELETED"] and after["send_for_all_actions"] is False
    assert after["url"] == "http://127.0.0.1:9/webhook" and after["is_active"] is True


def test_a_refused_webhook_update_is_a_clean_error(client, project):
    pid, _ = project
    with pytest.raises(LabelStudioError) as err:
        client.set_webhook_headers({"id": 987654, "actions": []}, {"X-A": "b"})
    assert err.value.status == 404 and err.value.path == "/api/webhooks/987654/"


# ------------------------------------------------------------------------------- auth
def test_personal_access_token_path(label_studio, project):
    pid, tids = project
    pat = label_studio.pat()
    assert looks_like_jwt(pat) and not looks_like_jwt(label_studio.token)
    client = LabelStudioClient(label_studio.base_url, pat)
    assert client.is_pat
    assert client.get_project(pid)["id"] == pid
    assert client.import_predictions(pid, preds(tids, "pat-v1")) == N_TASKS
    client.set_model_version(pid, "pat-v1")
    view = client.ensure_view(pid, "VLMine", PREDICTION_SCORE_DESC)
    assert order(client, view, limit=1) == [tids[-1]]
    assert len(list(client.iter_tasks(pid))) == N_TASKS
    assert client.delete_model_version(pid, "pat-v1") == N_TASKS

    # the cached access token stops working (revoked, rotated): refreshed once, call retried
    tokens = client.sdk._client_wrapper._tokens_client
    good = tokens._access_token
    header, payload, _ = good.split(".")
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(b'x' * 32).decode().rstrip('=')}"
    tokens._access_token = forged
    assert client.get_project(pid)["id"] == pid  # through an SDK method
    assert tokens._access_token not in (None, forged)
    tokens._access_token = forged
    assert client.list_predictions(pid) == []  # through the SDK's HTTP layer
    assert tokens._access_token not in (None, forged)


def test_expired_personal_access_token_is_a_clean_error():
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    expired = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'token_type': 'refresh', 'exp': 1})}.c2ln"
    assert looks_like_jwt(expired)
    with pytest.raises(LabelStudioError) as err:
        LabelStudioClient("http://127.0.0.1:9", expired)
    assert "expired" in str(err.value) and expired not in str(err.value)


def test_token_prefix_is_accepted(label_studio, project):
    pid, _ = project
    assert LabelStudioClient(label_studio.base_url, f"Token {label_studio.token}").get_project(pid)["id"] == pid
    assert LabelStudioClient(label_studio.base_url + "/", label_studio.pat()).get_project(pid)["id"] == pid


@pytest.mark.parametrize("kind", ["legacy", "pat"])
def test_errors_never_contain_the_token(label_studio, project, kind):
    pid, _ = project
    key = label_studio.token if kind == "legacy" else label_studio.pat()
    client = LabelStudioClient(label_studio.base_url, key)
    messages = []
    for call in (lambda: client.get_project(987654),
                 lambda: client.set_model_version(pid, "never-imported"),
                 lambda: client.tasks_in_view(987654),
                 lambda: client.delete_predictions([987654321]) or client.update_prediction_scores({987654321: 0.5}),
                 lambda: client.download("/data/upload/987/none.png", 1000, 5.0)):
        with pytest.raises(LabelStudioError) as err:
            call()
        messages.append(str(err.value))
    wrong = key[:-6] + ("abcdef" if not key.endswith("abcdef") else "fedcba")
    if kind == "legacy":
        with pytest.raises(LabelStudioError) as err:
            LabelStudioClient(label_studio.base_url, wrong).get_project(pid)
        assert err.value.status == 401
        messages.append(str(err.value))
    else:  # a tampered refresh token: the refresh is refused
        with pytest.raises(LabelStudioError) as err:
            LabelStudioClient(label_studio.base_url, wrong).get_project(pid)
        messages.append(str(err.value))
    with pytest.raises(LabelStudioError) as err:  # nothing listens there
        LabelStudioClient(f"http://127.0.0.1:{free_port()}", key, timeout=2).get_project(pid)
    messages.append(str(err.value))
    tokens = [key, wrong]
    access = getattr(client.sdk._client_wrapper._tokens_client, "_access_token", None)
    if access:
        tokens.append(access)
    for message in messages:
        assert message.startswith("Label Studio ")
        for token in tokens:
            assert token not in message
            assert token[:16] not in message
    assert "GET /api/projects/987654/" in messages[0] and "404" in messages[0]


# ----------------------------------------------------------------- files and storage
def _png(size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_download_uploaded_file(client, label_studio):
    pid, _ = create_project(label_studio, f"images {next(_names)}", IMAGE_CONFIG, [])
    blob = _png(64)
    resp = requests.post(f"{label_studio.base_url}/api/projects/{pid}/import", headers=label_studio.headers,
                         files={"file": ("red.png", blob, "image/png")}, timeout=60)
    assert resp.status_code == 201, resp.text
    task = next(client.iter_tasks(pid))
    ref = task["data"]["image"]
    assert ref.startswith("/data/upload/")
    assert client.download(ref, max_bytes=10_000_000, timeout=10.0) == blob
    assert client.download(label_studio.base_url + ref, max_bytes=len(blob), timeout=(5.0, 10.0)) == blob
    with pytest.raises(LabelStudioError, match="larger than"):
        client.download(ref, max_bytes=len(blob) - 1, timeout=10.0)
    with pytest.raises(LabelStudioError, match="another host"):
        client.download("http://example.invalid" + ref, max_bytes=10_000, timeout=1.0)
    pat_client = LabelStudioClient(label_studio.base_url, label_studio.pat())
    assert pat_client.download(ref, max_bytes=10_000_000, timeout=10.0) == blob


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server on loopback with bucket ``vlmine`` holding ``img/red.png``."""
    boto3 = pytest.importorskip("boto3")  # in requirements.txt; importorskip only guards odd envs
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    log = open(os.devnull, "wb")
    proc = subprocess.Popen(cmd + ["-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(endpoint, timeout=2).status_code < 500:
                    break
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("moto server did not start")
            time.sleep(0.3)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="vlmine")
        blob = _png(16)
        s3.put_object(Bucket="vlmine", Key="img/red.png", Body=blob, ContentType="image/png")
        yield endpoint, blob
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


@pytest.mark.parametrize("presign", [True, False])
def test_presign_s3_uri(client, label_studio, s3_server, presign):
    endpoint, blob = s3_server
    pid, tids = create_project(label_studio, f"s3 {next(_names)}", IMAGE_CONFIG,
                               [{"image": "s3://vlmine/img/red.png"}])
    label_studio.api("POST", "/api/storages/s3/", json={
        "project": pid, "title": "moto", "bucket": "vlmine", "prefix": "img",
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1",
        "s3_endpoint": endpoint, "presign": presign, "presign_ttl": 5, "use_blob_urls": True,
    })
    url = client.presign(tids[0], "s3://vlmine/img/red.png")
    if presign:  # 303 to a presigned URL on the storage's host: fetched without Label Studio's token
        assert url.startswith(endpoint + "/vlmine/img/red.png?")
        assert requests.get(url, timeout=10).content == blob
    else:  # proxied through Label Studio: read with the token
        encoded = base64.urlsafe_b64encode(b"s3://vlmine/img/red.png").decode()
        assert url == f"/tasks/{tids[0]}/presign/?fileuri={encoded}"
        assert client.download(url, max_bytes=10_000, timeout=10.0) == blob
    with pytest.raises(LabelStudioError) as err:  # no storage of the project serves that bucket
        client.presign(tids[0], "s3://other-bucket/x.png")
    assert err.value.status == 404


# ------------------------------------------------- redirects of downloads (loopback stand-ins)
# These need no Label Studio: a small http.server stands in for it, another one on another
# loopback port for the host a redirect leads to.
STAND_IN_KEY = "stand-in-token-4f1d2e"


class _Routes(BaseHTTPRequestHandler):
    """``routes[path]`` is ``(status, headers, body)``; every request's path and headers go to ``seen``."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    seen: list[dict[str, str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        answer_from(self, self.routes)


@contextlib.contextmanager
def _serve(routes: dict[str, tuple[int, dict[str, str], bytes]]):
    handler = type("Handler", (_Routes,), {"routes": routes, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


def _redirect(location: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": location, **headers}, b""


@pytest.fixture()
def stand_ins():
    """(Label Studio stand-in URL, its requests, the other host's URL, its requests)."""
    blob = _png(16)
    other_routes = {"/img.png": (200, {"Content-Type": "image/png"}, blob),
                    "/denied.png": (403, {}, b"<Error>SignatureDoesNotMatch for X-Amz-Signature=SECRET</Error>"),
                    "/back": (302, {}, b"")}
    with _serve(other_routes) as (other, other_seen):
        ls_routes = {
            "/data/upload/1/red.png": (200, {"Content-Type": "image/png"}, blob),
            "/same": _redirect("/data/upload/1/red.png"),
            "/same-absolute": _redirect("/same"),
            "/away": _redirect(f"{other}/img.png?X-Amz-Signature=SECRET", **{"Set-Cookie": "sessionid=LSCOOKIE"}),
            "/away-denied": _redirect(f"{other}/denied.png?X-Amz-Signature=SECRET"),
            "/away-and-back": _redirect(f"{other}/back"),
            "/to-metadata": _redirect("http://169.254.169.254/latest/meta-data/"),
            "/to-file": _redirect("file:///etc/passwd"),
            "/loop": _redirect("/loop"),
        }
        with _serve(ls_routes) as (ls, ls_seen):
            ls_routes["/same-absolute"] = _redirect(f"{ls}/data/upload/1/red.png")
            other_routes["/back"] = _redirect(f"{ls}/data/upload/1/red.png")
            yield ls, ls_seen, other, other_seen, blob


def _download_error(client: LabelStudioClient, path: str, **kwargs) -> str:
    with pytest.raises(LabelStudioError) as err:
        client.download(path, max_bytes=100_000, timeout=5.0, **kwargs)
    message = str(err.value)
    assert STAND_IN_KEY not in message and "SECRET" not in message and "LSCOOKIE" not in message
    return message


def test_download_follows_a_redirect_on_label_studio_origin_with_the_token(stand_ins):
    ls, ls_seen, _, _, blob = stand_ins
    client = LabelStudioClient(ls, STAND_IN_KEY)
    assert client.download("/same", max_bytes=100_000, timeout=5.0) == blob
    assert client.download("/same-absolute", max_bytes=100_000, timeout=(5.0, 5.0)) == blob
    assert [r["path"] for r in ls_seen] == ["/same", "/data/upload/1/red.png",
                                            "/same-absolute", "/data/upload/1/red.png"]
    assert all(r.get("authorization") == f"Token {STAND_IN_KEY}" for r in ls_seen)


def test_download_refuses_a_redirect_to_a_loopback_host_unless_private_networks_are_allowed(stand_ins):
    ls, _, _, other_seen, _ = stand_ins
    client = LabelStudioClient(ls, STAND_IN_KEY)
    message = _download_error(client, "/away")
    assert message == ("Label Studio GET /away: redirect refused: host 127.0.0.1 is a private or loopback "
                       "address (set IMAGE_ALLOW_PRIVATE_NETWORKS=true to allow it)")
    assert other_seen == []


def test_download_sends_neither_token_nor_cookies_to_another_origin(stand_ins):
    ls, ls_seen, _, other_seen, blob = stand_ins
    client = LabelStudioClient(ls, STAND_IN_KEY)
    assert client.download("/away", max_bytes=100_000, timeout=5.0, allow_private=True) == blob
    assert ls_seen[0].get("authorization") == f"Token {STAND_IN_KEY}"
    assert [r["path"] for r in other_seen] == ["/img.png?X-Amz-Signature=SECRET"]
    assert "authorization" not in other_seen[0] and "cookie" not in other_seen[0]


def test_download_keeps_the_chain_without_the_token_once_it_left_label_studio(stand_ins):
    ls, ls_seen, _, other_seen, blob = stand_ins
    client = LabelStudioClient(ls, STAND_IN_KEY)
    assert client.download("/away-and-back", max_bytes=100_000, timeout=5.0, allow_private=True) == blob
    assert [r["path"] for r in ls_seen] == ["/away-and-back", "/data/upload/1/red.png"]
    assert "authorization" not in ls_seen[1]
    assert "authorization" not in other_seen[0]


def test_download_refuses_a_redirect_to_the_metadata_address_even_with_private_networks(stand_ins):
    ls, _, _, _, _ = stand_ins
    client = LabelStudioClient(ls, STAND_IN_KEY)
    message = _download_error(client, "/to-metadata", allow_private=True)
    assert message == ("Label Studio GET /to-metadata: redirect refused: "
                       "host 169.254.169.254 is a cloud metadata address")


def test_download_redirect_failures_are_clean_errors(stand_ins):
    ls, ls_seen, _, _, blob = stand_ins
    client = LabelStudioClient(ls, STAND_IN_KEY)
    denied = _download_error(client, "/away-denied", allow_private=True)
    assert denied.startswith("Label Studio GET /away-denied: HTTP 403 from redirect target 127.0.0.1:")
    assert "unsupported URL" in _download_error(client, "/to-file", allow_private=True)
    ls_seen.clear()
    assert _download_error(client, "/loop") == "Label Studio GET /loop: more than 5 redirects"
    assert len(ls_seen) == 6
    with pytest.raises(LabelStudioError, match="larger than"):
        client.download("/away", max_bytes=len(blob) - 1, timeout=5.0, allow_private=True)


def test_image_fetcher_passes_its_private_network_setting_to_label_studio_downloads(stand_ins):
    from backend.pipeline.images import ImageError, ImageFetcher

    ls, _, _, other_seen, blob = stand_ins
    client = LabelStudioClient(ls, STAND_IN_KEY)
    with pytest.raises(ImageError, match="private or loopback"):
        ImageFetcher(label_studio=client).fetch_bytes("/away")
    assert other_seen == []
    assert ImageFetcher(label_studio=client, allow_private=True).fetch_bytes(f"{ls}/away") == blob
