"""End to end against a real Label Studio 1.23.2: a backend behind basic auth still gets its webhooks.

Label Studio creates the ML backend's webhook itself, without headers, and sends webhooks
with that webhook's headers only: not the model connection's basic auth. The backend adds
the header the webhook needs when Label Studio calls /setup (through the authenticated
connection). Nothing is mocked: Label Studio and the backend run as real servers.
"""

from __future__ import annotations

import base64
import logging

import pytest
import requests

from backend.engine.engine import Engine
from backend.labelstudio.client import LabelStudioClient
from backend.server.webhook_headers import WebhookHeaders
from backend.settings import Settings
from tests.support.backend_server import BackendServer, wait_for
from tests.support.label_studio import create_project, import_tasks

pytestmark = pytest.mark.e2e

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="a"/><Choice value="b"/></Choices>
</View>"""
USER, PASSWORD = "vlmine", "basic-pass-e2e-31c9"
SECRET = "hook-secret-e2e-84d0"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TEXTS = ["a cat on the sofa", "a dog in the park"] * 10 + ["a walrus playing a harp"]


def start_backend(ls, tmp_path, **env: str) -> BackendServer:
    return BackendServer({"MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url,
                          "LABEL_STUDIO_API_KEY": ls.token, "RERANK_DELAY": "0.5", "LOG_LEVEL": "DEBUG",
                          "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD, **env}, tmp_path / "backend.log")


def connect_with_basic_auth(ls, pid: int, backend: BackendServer) -> int:
    resp = ls.api("POST", "/api/ml", json={"project": pid, "url": backend.url, "title": "VLMine",
                                           "auth_method": "BASIC_AUTH", "basic_auth_user": USER,
                                           "basic_auth_pass": PASSWORD})
    assert resp.status_code == 201, resp.text
    assert resp.json()["state"] == "CO", resp.json()  # connected: /health and /setup passed basic auth
    return int(resp.json()["id"])


def webhooks(ls, pid: int) -> list[dict]:
    return ls.api("GET", "/api/webhooks/", params={"project": pid}).json()


def metrics(backend: BackendServer) -> dict:
    return requests.get(backend.url + "/metrics", auth=(USER, PASSWORD), timeout=5).json()


def idle(backend: BackendServer) -> bool:
    counts = metrics(backend)["jobs"]["counts"]
    return not counts.get("queued") and not counts.get("running")


def written(client: LabelStudioClient, pid: int, ids: set[int], backend: BackendServer):
    """Exactly ``ids`` have a prediction of the live version, the project shows it, no job is left."""
    def check() -> bool:
        if not idle(backend):
            return False
        version = metrics(backend)["projects"][str(pid)]["version"]
        tasks = {p["task"] for p in client.list_predictions(pid, version)}
        return tasks == ids and client.get_project(pid)["model_version"] == version
    return check


def assert_no_secret(backend: BackendServer) -> None:
    log = backend.log_text()
    for secret in (PASSWORD, SECRET, BASIC.split()[1]):
        assert secret not in log


def test_with_basic_auth_imports_are_mined_without_pressing_anything(label_studio, tmp_path):
    ls = label_studio
    backend = start_backend(ls, tmp_path)
    try:
        pid, _ = create_project(ls, "basic auth e2e", CONFIG)
        connect_with_basic_auth(ls, pid, backend)
        wait_for(lambda: idle(backend), 60, "the first /setup's sync of the empty project", backend)

        # only the TASKS_CREATED webhook can tell the backend about these tasks
        ids = import_tasks(ls, pid, [{"text": t} for t in TEXTS])
        client = LabelStudioClient(ls.base_url, ls.token)
        wait_for(written(client, pid, set(ids), backend), 120, "the imported tasks to be written back", backend)
        project = metrics(backend)["projects"][str(pid)]
        assert project["mined"] == len(ids) and project["total"] == len(ids)
        # because the webhook Label Studio made at connection time now carries the basic auth
        hooks = webhooks(ls, pid)
        assert len(hooks) == 1 and hooks[0]["url"] == backend.url + "/webhook"
        assert hooks[0]["headers"] == {"Authorization": BASIC}
        assert "refused a webhook" not in backend.log_text()
        assert "added the header Authorization to Label Studio's webhook" in backend.log_text()
        assert_no_secret(backend)
    finally:
        backend.stop()


def test_the_webhook_secret_is_added_next_to_other_headers_and_restored_after_a_refusal(label_studio, tmp_path):
    ls = label_studio
    backend = start_backend(ls, tmp_path, WEBHOOK_SECRET=SECRET)
    client = LabelStudioClient(ls.base_url, ls.token)
    try:
        pid, _ = create_project(ls, "webhook secret e2e", CONFIG)
        ml = connect_with_basic_auth(ls, pid, backend)
        hook = webhooks(ls, pid)[0]
        # the secret alone gets a webhook in: the basic auth password is not copied into Label Studio
        assert hook["headers"] == {"X-VLMine-Secret": SECRET}
        wait_for(lambda: idle(backend), 60, "the first /setup's sync of the empty project", backend)
        first = import_tasks(ls, pid, [{"text": t} for t in TEXTS])
        wait_for(written(client, pid, set(first), backend), 120, "the first import to be written back", backend)

        # an admin replaces the webhook's headers: the next import is refused, and the log says what to add
        ls.api("PATCH", f"/api/webhooks/{hook['id']}/", json={"headers": {"X-Other": "1"},
                                                              "actions": hook["actions"]})
        lost = import_tasks(ls, pid, [{"text": "a narwhal reading a map"}])
        wait_for(lambda: "refused a webhook" in backend.log_text(), 30, "the refusal to be logged", backend)
        warning = next(line for line in backend.log_text().splitlines() if "refused a webhook" in line)
        assert f"project {pid}:" in warning and "X-VLMine-Secret" in warning and "Webhooks" in warning

        # Label Studio calls /setup whenever the model's settings are opened: the header is back, X-Other kept
        assert ls.api("GET", f"/api/ml/{ml}").status_code == 200
        wait_for(lambda: webhooks(ls, pid)[0]["headers"] == {"X-Other": "1", "X-VLMine-Secret": SECRET}, 30,
                 "the header to be added again", backend)
        second = import_tasks(ls, pid, [{"text": "an astronaut holding a trombone"}])
        wait_for(written(client, pid, set(first) | set(second), backend), 120, "the second import", backend)
        assert lost[0] not in {p["task"] for p in client.list_predictions(pid)}  # refused, so never seen
        assert_no_secret(backend)
    finally:
        backend.stop()


def test_only_the_one_webhook_to_this_backend_gets_the_header(label_studio, tmp_path, caplog):
    ls = label_studio
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path), "LABEL_STUDIO_URL": ls.base_url,
                                  "LABEL_STUDIO_API_KEY": ls.token, "BASIC_AUTH_USER": USER,
                                  "BASIC_AUTH_PASS": PASSWORD})
    caplog.set_level(logging.INFO, logger="backend.server.app")
    pid, _ = create_project(ls, "webhook matching", CONFIG)
    here = "127.0.0.1:5999"

    def hook(url: str) -> int:
        return ls.api("POST", "/api/webhooks/", json={"project": pid, "url": url}).json()["id"]

    def headers() -> dict[int, dict]:
        return {h["id"]: h["headers"] for h in webhooks(ls, pid)}

    ours = hook(f"http://{here}/webhook")
    others = [hook("http://127.0.0.2:5999/webhook"), hook(f"http://{here}/other"),
              hook("http://127.0.0.1:6000/webhook")]
    checker = WebhookHeaders(settings, Engine(settings))
    checker.WAIT_S = 60  # wait for the look-up itself
    checker.at_setup(pid, here)
    assert headers() == {ours: {"Authorization": BASIC}, **{o: {} for o in others}}

    # a second webhook to this backend: the backend cannot tell which is Label Studio's, so it changes neither
    twin = hook(f"http://{here}/webhook/")
    checker = WebhookHeaders(settings, Engine(settings))
    checker.WAIT_S = 60
    caplog.clear()
    checker.at_setup(pid, here)
    assert headers()[twin] == {} and headers()[ours] == {"Authorization": BASIC}
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and f"Label Studio has 2 webhooks to http(s)://{here}/webhook" in warning[0]
    assert "Authorization" in warning[0] and PASSWORD not in caplog.text and BASIC.split()[1] not in caplog.text
