"""End to end against a real Label Studio 1.23.2: a text project gets its long tail first.

Label Studio is started by the suite (its own venv, a fresh SQLite data dir);
the backend runs as a real server process; nothing is mocked.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from backend.labelstudio.client import LabelStudioClient
from tests.support.backend_server import BackendServer, wait_for
from tests.support.text_corpus import CONFIG, PLANTED, corpus

pytestmark = pytest.mark.e2e

def test_text_project_is_prioritised_long_tail_first(label_studio, tmp_path):
    ls = label_studio
    token = ls.token
    backend = BackendServer(
        {"MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url,
         "LABEL_STUDIO_API_KEY": token, "RERANK_DELAY": "0.5", "LOG_LEVEL": "DEBUG"},
        tmp_path / "backend.log",
    )
    try:
        client = LabelStudioClient(ls.base_url, token)
        http = requests.Session()
        http.headers["Authorization"] = f"Token {token}"
        project = http.post(f"{ls.base_url}/api/projects", json={"title": "long tail e2e", "label_config": CONFIG})
        project.raise_for_status()
        pid = project.json()["id"]
        ml = http.post(f"{ls.base_url}/api/ml", json={"project": pid, "url": backend.url, "title": "VLMine"})
        assert ml.status_code == 201, ml.text

        texts, planted_idx = corpus(295)
        imported = http.post(f"{ls.base_url}/api/projects/{pid}/import", json=[{"text": t} for t in texts])
        assert imported.status_code == 201, imported.text
        ids = sorted(t["id"] for t in client.iter_tasks(pid))
        assert len(ids) == len(texts)
        planted = {ids[i] for i in planted_idx}

        def live_version() -> str:
            return requests.get(backend.url + "/metrics", timeout=5).json()["projects"][str(pid)]["version"]

        def written() -> bool:
            jobs = requests.get(backend.url + "/metrics", timeout=5).json()["jobs"]["counts"]
            if jobs.get("queued") or jobs.get("running"):
                return False  # a re-rank may still be moving scores
            version = live_version()
            preds = client.list_predictions(pid, version)
            project_version = client.get_project(pid)["model_version"]
            return len({p["task"] for p in preds}) == len(ids) and project_version == version

        wait_for(written, 180, "every task to get a prediction of the live version", backend)
        version = live_version()

        views = http.get(f"{ls.base_url}/api/dm/views", params={"project": pid}).json()
        tab = [v for v in views if v["data"].get("title") == "Long-tail first"]
        assert len(tab) == 1, views
        view_id = tab[0]["id"]
        first = [t["id"] for t in client.tasks_in_view(view_id, limit=len(planted))]
        assert set(first) == planted, (first, planted)

        per_task = Counter(p["task"] for p in client.list_predictions(pid, version))
        assert set(per_task.values()) == {1} and len(per_task) == len(ids)

        # "Retrieve predictions" over every task adds no duplicate
        action = http.post(f"{ls.base_url}/api/dm/actions", params={"id": "retrieve_tasks_predictions",
                                                                    "project": pid},
                           json={"selectedItems": {"all": True, "excluded": []}})
        assert action.status_code == 200, action.text
        per_task = Counter(p["task"] for p in client.list_predictions(pid, version))
        assert set(per_task.values()) == {1} and len(per_task) == len(ids)

        # "Label All Tasks" (the request the button really sends) serves a planted task first
        assert client.get_project(pid)["sampling"] == "Uncertainty sampling"
        nxt = client.label_all_tasks(pid, view_id)
        assert nxt is not None and nxt["id"] in planted

        # annotators see why: the rare keywords in the TextArea
        preds = {p["task"]: p for p in client.list_predictions(pid, version)}
        giraffe = ids[texts.index(PLANTED[0])]
        shown = requests.get(f"{ls.base_url}/api/predictions/{preds[giraffe]['id']}",
                             headers=http.headers).json()["result"][0]["value"]["text"][0]
        assert "giraffe: 1 task" in shown and "tuxedo: 1 task" in shown

        assert token not in backend.log_text()
    finally:
        backend.stop()
