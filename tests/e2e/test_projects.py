"""More end to end against the real Label Studio: uncertainty stored with the tasks, and an
image project whose files were uploaded to Label Studio."""

from __future__ import annotations

import pytest
import requests

from backend.labelstudio.client import LabelStudioClient
from tests.support.backend_server import BackendServer, wait_for
from tests.support.data import DESCRIPTIONS, IMAGE_CONFIG, TEXT_CONFIG, connect, png
from tests.support.fake_openai import FakeOpenAI
from tests.support.label_studio import create_project, import_tasks

pytestmark = pytest.mark.e2e

def backend_env(ls, tmp_path, **env: str) -> dict[str, str]:
    return {"MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url,
            "LABEL_STUDIO_API_KEY": ls.token, "RERANK_DELAY": "0.5", **env}


def backend_for(ls, tmp_path, **env: str) -> BackendServer:
    return BackendServer(backend_env(ls, tmp_path, **env), tmp_path / "backend.log")


def first_in_tab(client: LabelStudioClient, ls, pid: int, n: int) -> list[int]:
    views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
    view = next(v for v in views if v["data"].get("title") == "Long-tail first")
    return [t["id"] for t in client.tasks_in_view(view["id"], limit=n)]


def all_written(client: LabelStudioClient, pid: int, n: int, backend: BackendServer):
    """Every task has a live prediction, the project shows the live version, and no job is
    waiting or running (a re-rank may still be moving scores after the last import)."""
    def check() -> bool:
        import requests

        metrics = requests.get(backend.url + "/metrics", timeout=5).json()
        version = metrics["projects"][str(pid)]["version"]
        jobs = metrics["jobs"]["counts"]
        if jobs.get("queued") or jobs.get("running"):
            return False
        tasks = {p["task"] for p in client.list_predictions(pid, version)}
        return len(tasks) == n and client.get_project(pid)["model_version"] == version
    return check


def test_uncertainty_stored_with_the_tasks_joins_novelty(label_studio, tmp_path):
    ls = label_studio
    common = ["a cat on the sofa", "a dog in the park", "a car on the road", "a bus on the street"]
    tasks = []
    for i in range(120):
        tasks.append({"data": {"text": common[i % 4]},
                      "predictions": [{"model_version": "classifier-v1", "score": 0.9,
                                       "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                                   "value": {"choices": ["a"]}}]}]})
    unsure = [3, 47, 90]  # common texts the classifier is unsure about
    for i in unsure:
        tasks[i]["data"]["text"] = "a dog in the park"
        tasks[i]["predictions"][0]["score"] = 0.01
    rare = ["a giraffe wearing a tuxedo", "a hovercraft beside a glacier", "an astronaut holding a trombone"]
    for i, text in zip((10, 60, 100), rare):
        tasks[i] = {"data": {"text": text}}  # no prediction: the lowest uncertainty is assumed
    backend = backend_for(ls, tmp_path, UNCERTAINTY_SOURCE="prediction_score",
                          UNCERTAINTY_MODEL_VERSION="classifier-v1")
    try:
        pid, _ = create_project(ls, "uncertainty e2e", TEXT_CONFIG)
        ml = connect(ls, pid, backend)
        ids = import_tasks(ls, pid, tasks)
        client = LabelStudioClient(ls.base_url, ls.token)
        wait_for(all_written(client, pid, len(ids), backend), 180, "the write-back", backend)
        expected = {ids[i] for i in unsure} | {ids[i] for i in (10, 60, 100)}
        assert set(first_in_tab(client, ls, pid, 6)) == expected
        version = client.get_project(pid)["model_version"]
        assert "novelty+predictionscore" in version

        # the classifier changes its mind about a common task (no webhook tells the backend);
        # the model card's "Start Training" has the backend re-read the project and re-rank
        changed = ids[7]  # "a bus on the street": a little rarer than the unsure dogs
        assert changed not in first_in_tab(client, ls, pid, 6)
        pred = next(p for p in client.list_predictions(pid, "classifier-v1") if p["task"] == changed)
        assert ls.api("PATCH", f"/api/predictions/{pred['id']}", json={"score": 0.001}).status_code == 200
        assert ls.api("POST", f"/api/ml/{ml}/train", json={}).status_code == 200
        wait_for(lambda: first_in_tab(client, ls, pid, 1) == [changed], 120, "the re-rank after training", backend)
        assert "START_TRAINING" in backend.log_text()
    finally:
        backend.stop()


def test_image_project_uploaded_to_label_studio(label_studio, tmp_path):
    ls = label_studio
    colours = ["red"] * 6 + ["green"] * 6 + ["blue"] * 6 + ["yellow"] * 2
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        backend = backend_for(ls, tmp_path, VLM_API_URL=vlm.base_url, VLM_API_MODEL="fake-vlm",
                              KEYWORD_MODE="llm")
        try:
            pid, _ = create_project(ls, "image upload e2e", IMAGE_CONFIG)
            connect(ls, pid, backend)
            # Label Studio reads request.FILES by key: one key per file
            files = [(f"file{i}", (f"img{i}-{c}.png", png(c, i), "image/png")) for i, c in enumerate(colours)]
            resp = ls.api("POST", f"/api/projects/{pid}/import", params={"return_task_ids": "true"}, files=files)
            ids = resp.json()["task_ids"]
            assert len(ids) == len(colours)
            client = LabelStudioClient(ls.base_url, ls.token)
            tasks = {t["id"]: t for t in client.iter_tasks(pid)}
            assert all(str(t["data"]["image"]).startswith("/data/upload/") for t in tasks.values())
            wait_for(all_written(client, pid, len(ids), backend), 180, "the write-back", backend)
            yellow = {i for i, t in tasks.items() if "yellow" in t["data"]["image"]}
            assert set(first_in_tab(client, ls, pid, 2)) == yellow
            # the annotators' text box names the rare keywords and the description
            version = client.get_project(pid)["model_version"]
            pred = next(p for p in client.list_predictions(pid, version) if p["task"] in yellow)
            full = ls.api("GET", f"/api/predictions/{pred['id']}").json()
            text = full["result"][0]["value"]["text"]
            assert "submarine: 2 tasks" in text[0] and text[1].startswith("Description: a yellow submarine")
            assert vlm.calls >= len(colours)
            assert ls.token not in backend.log_text()
        finally:
            backend.stop()


def test_without_label_studio_settings_the_setup_call_connects_the_backend(label_studio, tmp_path):
    ls = label_studio
    backend = BackendServer({"MODEL_DIR": str(tmp_path / "model"), "RERANK_DELAY": "0.5"},
                            tmp_path / "backend.log")
    try:
        texts = ["a cat on the sofa", "a dog in the park"] * 15 + ["a penguin driving a tractor"]
        pid, _ = create_project(ls, "zero config e2e", TEXT_CONFIG)
        connect(ls, pid, backend)
        ids = import_tasks(ls, pid, [{"text": t} for t in texts])
        client = LabelStudioClient(ls.base_url, ls.token)
        wait_for(all_written(client, pid, len(ids), backend), 120, "the write-back", backend)
        assert first_in_tab(client, ls, pid, 1) == [ids[-1]]
        log = backend.log_text()
        assert "with the token Label Studio sent in /setup" in log
        assert ls.token not in log
    finally:
        backend.stop()


def test_a_restarted_backend_catches_up_on_what_happened_while_it_was_down(label_studio, tmp_path):
    """Webhooks sent while the backend is down are lost. At start-up it reads every known
    project again: tasks imported meanwhile are mined and ranked, deleted ones forgotten."""
    ls = label_studio
    backend = backend_for(ls, tmp_path)
    client = LabelStudioClient(ls.base_url, ls.token)
    try:
        pid, _ = create_project(ls, "catch-up e2e", TEXT_CONFIG)
        connect(ls, pid, backend)
        ids = import_tasks(ls, pid, [{"text": ["a cat on the sofa", "a dog in the park"][i % 2]} for i in range(20)])
        wait_for(all_written(client, pid, len(ids), backend), 120, "the first write-back", backend)
    finally:
        backend.stop()

    # while it is down: an import (its webhook fails), a deletion, and an edit of a task's data
    new = import_tasks(ls, pid, [{"text": "a walrus playing a harp"}, {"text": "a cat on the sofa"}])
    assert ls.api("DELETE", f"/api/tasks/{ids[0]}").status_code == 204
    edited = ids[5]
    resp = ls.api("PATCH", f"/api/tasks/{edited}", json={"data": {"text": "a narwhal reading a map"}})
    assert resp.status_code == 200, resp.text
    live = ids[1:] + new

    backend = BackendServer(backend_env(ls, tmp_path), tmp_path / "backend2.log", port=backend.port)
    try:
        wait_for(all_written(client, pid, len(live), backend), 120, "the catch-up", backend)
        wait_for(lambda: set(first_in_tab(client, ls, pid, 2)) == {new[0], edited}, 60, "the edit ranked", backend)
        metrics = requests.get(backend.url + "/metrics", timeout=5).json()
        project = metrics["projects"][str(pid)]
        assert project["indexed"] == len(live) and project["total"] == len(live)
        # only the new and the edited tasks were mined again: the others' data had not changed
        assert metrics["counters"]["tasks_mined"] == 3
        assert "catching up on webhooks missed while the backend was down" in backend.log_text()
    finally:
        backend.stop()
