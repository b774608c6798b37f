"""Re-ranks against the real Label Studio: small changes go out as imports and PATCHes, large
ones as a bump to a new generation; either way the tab follows the backend's ranking exactly,
every task keeps exactly one live prediction, and old generations are deleted."""

from __future__ import annotations

import sqlite3
from collections import Counter

import pytest
import requests

from backend.engine.engine import Engine
from backend.jobs.embedded import EmbeddedQueue
from backend.labelstudio.client import LabelStudioClient
from backend.settings import Settings
from tests.support.backend_server import BackendServer, wait_for
from tests.support.data import COMMON, TEXT_CONFIG, connect
from tests.support.label_studio import create_project, import_tasks

pytestmark = pytest.mark.e2e




def test_reranks_patch_small_changes_and_bump_large_ones(label_studio, tmp_path):
    ls = label_studio
    env = {"MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url,
           "LABEL_STUDIO_API_KEY": ls.token, "RERANK_DELAY": "0.5", "PATCH_LIMIT": "200"}
    client = LabelStudioClient(ls.base_url, ls.token)
    engine = Engine(Settings.from_env(env))
    texts = [COMMON[i % len(COMMON)] + f" near tree {i % 7}" for i in range(150)]
    texts[20] = "a giraffe eating a pizza"
    texts[90] = "a giraffe on a skateboard"
    pid, _ = create_project(ls, "rerank e2e", TEXT_CONFIG)
    backend = BackendServer(env, tmp_path / "backend1.log")
    state = {}

    def live() -> str:
        return requests.get(backend.url + "/metrics", timeout=5).json()["projects"][str(pid)]["version"]

    def settled(n: int):
        def check() -> bool:
            version = live()
            per_task = Counter(p["task"] for p in client.list_predictions(pid, version))
            if len(per_task) != n or client.get_project(pid)["model_version"] != version:
                return False
            jobs = requests.get(backend.url + "/metrics", timeout=5).json()["jobs"]["counts"]
            state["version"] = version
            return not jobs.get("queued") and not jobs.get("running")
        return check

    def tab_follows_the_ranking() -> None:
        views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
        view = next(v for v in views if v["data"].get("title") == "Long-tail first")
        tab = [t["id"] for t in client.tasks_in_view(view["id"])]
        order, _ = engine.ranker.rank(pid)
        assert tab == order
        per_task = Counter(p["task"] for p in client.list_predictions(pid, state["version"]))
        assert set(per_task.values()) == {1}

    try:
        connect(ls, pid, backend)
        ids = import_tasks(ls, pid, [{"text": t} for t in texts])
        wait_for(settled(len(ids)), 180, "the first write-back", backend)
        first_version = state["version"]
        tab_follows_the_ranking()

        # a few new tasks: imported, some old ones patched, the version unchanged
        more = import_tasks(ls, pid, [{"text": "a giraffe in a library"}, {"text": "a narwhal with a violin"},
                                      {"text": "a dog in the park near tree 3"}])
        ids += more
        wait_for(settled(len(ids)), 120, "the second write-back", backend)
        assert state["version"] == first_version
        tab_follows_the_ranking()
        log = backend.log_text()
        assert "'bump': False" in log.split("re-rank")[-1]
    finally:
        backend.stop()

    # many more cats and sofas drop the old cat tasks below the other common ones: old tasks
    # move, and with PATCH_LIMIT=0 and BUMP_SHARE=0 any move is a bump
    # the same address: Label Studio's webhook and ML connection point there
    backend = BackendServer({**env, "PATCH_LIMIT": "0", "BUMP_SHARE": "0"}, tmp_path / "backend2.log",
                            port=backend.port)
    try:
        ids += import_tasks(ls, pid, [{"text": "a cat on the sofa"} for _ in range(40)])
        wait_for(settled(len(ids)), 180, "the bump", backend)
        assert state["version"] == f"{first_version}-r1"
        tab_follows_the_ranking()
        # the old generation is deleted in the background
        wait_for(lambda: not client.list_predictions(pid, first_version), 180, "the clean-up", backend)
        assert len(client.list_predictions(pid)) == len(ids)
    finally:
        backend.stop()


def test_changed_settings_rewrite_every_priority_after_a_restart(label_studio, tmp_path):
    ls = label_studio
    env = {"MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url,
           "LABEL_STUDIO_API_KEY": ls.token, "RERANK_DELAY": "0.5"}
    client = LabelStudioClient(ls.base_url, ls.token)
    texts = [COMMON[i % len(COMMON)] for i in range(40)] + ["a yak playing chess"]
    pid, _ = create_project(ls, "settings change e2e", TEXT_CONFIG)
    backend = BackendServer(env, tmp_path / "backend1.log")
    try:
        connect(ls, pid, backend)
        ids = import_tasks(ls, pid, [{"text": t} for t in texts])
        old = Engine(Settings.from_env(env)).versions_by_kind["text"]  # a text project
        wait_for(lambda: len({p["task"] for p in client.list_predictions(pid, old)}) == len(ids), 120,
                 "the first write-back", backend)
    finally:
        backend.stop()
    # POOLING is a ranking setting: a new version, the same keywords
    env2 = {**env, "POOLING": "min"}
    new = Engine(Settings.from_env(env2)).versions_by_kind["text"]
    assert new != old
    backend = BackendServer(env2, tmp_path / "backend2.log", port=backend.port)
    try:
        wait_for(lambda: len({p["task"] for p in client.list_predictions(pid, new)}) == len(ids)
                 and client.get_project(pid)["model_version"] == new, 120,
                 "every priority under the new version, with no Label Studio call", backend)
        assert "settings changed since the last run" in backend.log_text()
        # the old settings' predictions are deleted once the new ones are written
        wait_for(lambda: not client.list_predictions(pid, old), 120, "the old version's clean-up", backend)
        assert len(client.list_predictions(pid)) == len(ids)
    finally:
        backend.stop()


def rerank_that_dies_after_its_import(engine: Engine, pid: int) -> None:
    """A re-rank whose import reaches Label Studio, after which the call raises, as when the
    worker dies or the answer is lost before anything is recorded."""
    client = engine.label_studio()
    real_import = client.import_predictions

    def landed_then_lost(project_id, predictions, **kw):
        real_import(project_id, predictions, **kw)
        raise ConnectionError("the answer was lost")

    client.import_predictions = landed_then_lost
    try:
        with pytest.raises(ConnectionError):
            engine.rerank(pid)
    finally:
        client.import_predictions = real_import


def test_a_write_that_landed_but_was_not_recorded_leaves_no_duplicate(label_studio, tmp_path):
    """The import reaches Label Studio, then the worker dies (here: the call raises after
    landing). The next re-rank asks Label Studio what it holds instead of importing again."""
    ls = label_studio
    engine = Engine(Settings.from_env({"MODEL_DIR": str(tmp_path), "LABEL_STUDIO_URL": ls.base_url,
                                       "LABEL_STUDIO_API_KEY": ls.token}))
    pid, ids = create_project(ls, "crash e2e", TEXT_CONFIG, [{"text": COMMON[i % 6]} for i in range(30)])
    tasks = [{"id": t, "data": {"text": COMMON[i % 6]}} for i, t in enumerate(ids)]
    engine.tasks.mine(pid, tasks[:20], TEXT_CONFIG)
    engine.rerank(pid)
    engine.tasks.mine(pid, tasks[20:] + [{"id": ids[0], "data": {"text": "an okapi on a unicycle"}}])

    client = engine.label_studio()
    rerank_that_dies_after_its_import(engine, pid)
    version = engine.live_version(pid)
    assert engine.store.get_project(pid).dirty == version

    report = engine.rerank(pid)
    assert report["imported"] == 0  # everything had landed: nothing imported twice
    per_task = Counter(p["task"] for p in client.list_predictions(pid, version))
    assert set(per_task) == set(ids) and set(per_task.values()) == {1}
    assert engine.store.get_project(pid).dirty is None
    views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
    view = next(v for v in views if v["data"].get("title") == "Long-tail first")
    order, _ = engine.ranker.rank(pid)
    assert [t["id"] for t in client.tasks_in_view(view["id"])] == order
    assert order[0] == ids[0]


def test_a_bump_that_died_after_its_import_is_finished_by_the_next_rerank(label_studio, tmp_path):
    """A bump imports every score under a new generation, then switches project.model_version.
    If the worker dies in between, Label Studio still sorts by the old generation; the next
    re-rank must switch it and have the old generation deleted."""
    ls = label_studio
    engine = Engine(Settings.from_env({"MODEL_DIR": str(tmp_path), "LABEL_STUDIO_URL": ls.base_url,
                                       "LABEL_STUDIO_API_KEY": ls.token, "PATCH_LIMIT": "0", "BUMP_SHARE": "0"}))
    pid, ids = create_project(ls, "bump crash e2e", TEXT_CONFIG, [{"text": COMMON[i % 6]} for i in range(24)])
    tasks = [{"id": t, "data": {"text": COMMON[i % 6]}} for i, t in enumerate(ids)]
    engine.tasks.mine(pid, tasks, TEXT_CONFIG)
    first = engine.rerank(pid)["version"]
    client = engine.label_studio()
    assert client.get_project(pid)["model_version"] == first

    # a rare task at the bottom of the id order jumps to the top: tasks move, PATCH_LIMIT=0 with BUMP_SHARE=0 bumps
    engine.tasks.mine(pid, [{"id": ids[-1], "data": {"text": "an okapi on a unicycle"}}])
    rerank_that_dies_after_its_import(engine, pid)
    bumped = engine.live_version(pid)
    assert bumped == f"{first}-r1" and engine.store.get_project(pid).dirty == bumped
    assert client.get_project(pid)["model_version"] == first  # the tab still sorts by the old scores

    report = engine.rerank(pid)
    assert report["version"] == bumped and report["imported"] == 0
    assert first in report["retired"]  # its deletion is scheduled by whoever ran the re-rank
    assert client.get_project(pid)["model_version"] == bumped
    views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
    view = next(v for v in views if v["data"].get("title") == "Long-tail first")
    order, _ = engine.ranker.rank(pid)
    assert [t["id"] for t in client.tasks_in_view(view["id"])] == order and order[0] == ids[-1]

    client.delete_model_version(pid, first)  # what the clean-up job does
    per_task = Counter(p["task"] for p in client.list_predictions(pid))
    assert set(per_task) == set(ids) and set(per_task.values()) == {1}
    assert engine.rerank(pid)["retired"] == []  # recovered: nothing left over


def test_tasks_deleted_while_nobody_told_the_backend_are_forgotten(label_studio, tmp_path):
    """Label Studio refuses a whole bulk import that names one task it no longer has. Tasks
    deleted without a TASKS_DELETED reaching the backend (it was down) must not block the
    project's write-back: the re-rank finds them gone, forgets them and writes again; a sync
    (Start Training, a settings change) forgets them too."""
    ls = label_studio
    # LABEL_STREAM=tab: scores run highest-first, so the new label-first task finds no room above
    # 1.0 and the re-rank is a bump (lowest-first it would slot in below the lowest score)
    engine = Engine(Settings.from_env({"MODEL_DIR": str(tmp_path), "LABEL_STUDIO_URL": ls.base_url,
                                       "LABEL_STUDIO_API_KEY": ls.token, "PATCH_LIMIT": "0", "BUMP_SHARE": "0",
                                       "LABEL_STREAM": "tab"}))
    pid, ids = create_project(ls, "deleted e2e", TEXT_CONFIG, [{"text": COMMON[i % 6]} for i in range(24)])
    engine.tasks.mine(pid, [{"id": t, "data": {"text": COMMON[i % 6]}} for i, t in enumerate(ids)], TEXT_CONFIG)
    first = engine.rerank(pid)["version"]
    client = engine.label_studio()
    scope = engine.scope(pid)

    for task in ids[:2]:  # deleted while the backend was down: no webhook
        assert ls.api("DELETE", f"/api/tasks/{task}").status_code == 204
    new = import_tasks(ls, pid, [{"text": "an okapi on a unicycle"}])
    engine.tasks.mine(pid, [{"id": new[0], "data": {"text": "an okapi on a unicycle"}}])
    report = engine.rerank(pid)  # a bump: its bulk import named the two deleted tasks and was refused
    live = ids[2:] + new
    # the second try found the new generation empty (the refused import wrote nothing) and
    # imported it whole; the generation before is scheduled for deletion
    assert report["version"] == f"{first}-r1" and report["imported"] == len(live)
    assert first in report["retired"]
    assert engine.index.contains(scope, ids[:2]) == set()
    assert client.get_project(pid)["model_version"] == report["version"]
    per_task = Counter(p["task"] for p in client.list_predictions(pid, report["version"]))
    assert set(per_task) == set(live) and set(per_task.values()) == {1}
    views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
    view = next(v for v in views if v["data"].get("title") == "Long-tail first")
    order, _ = engine.ranker.rank(pid)
    assert [t["id"] for t in client.tasks_in_view(view["id"])] == order and order[0] == new[0]

    assert ls.api("DELETE", f"/api/tasks/{ids[2]}").status_code == 204
    queue = EmbeddedQueue(engine)
    queue.submit_sync(pid)
    queue.run_pending(kinds=("sync",))
    assert engine.index.contains(scope, [ids[2]]) == set() and ids[2] not in engine.store.get_tasks(pid)


def prediction_counts(ls, pid: int) -> tuple[dict[int, int], int]:
    """What the Data Manager shows: each task's cached prediction count (``total_predictions``,
    its "Predictions" column) and the footer's total."""
    rows = ls.api("GET", "/api/tasks", params={"project": pid, "fields": "all", "page_size": 1000}).json()
    per_task = {int(t["id"]): t["total_predictions"] for t in rows["tasks"]}
    return per_task, int(rows["total_predictions"])


def test_after_a_generation_switch_the_data_manager_counts_one_prediction_a_task(label_studio, tmp_path):
    """A bump imports every score under a new generation and the clean-up job deletes the old
    one: afterwards every task's cached count, and the footer, say one prediction per task."""
    ls = label_studio
    engine = Engine(Settings.from_env({"MODEL_DIR": str(tmp_path), "LABEL_STUDIO_URL": ls.base_url,
                                       "LABEL_STUDIO_API_KEY": ls.token, "PATCH_LIMIT": "0", "BUMP_SHARE": "0",
                                       "LABEL_STREAM": "tab"}))
    texts = [COMMON[i % 6] for i in range(40)]
    pid, ids = create_project(ls, "counters e2e", TEXT_CONFIG, [{"text": t} for t in texts])
    engine.tasks.mine(pid, [{"id": t, "data": {"text": x}} for t, x in zip(ids, texts)], TEXT_CONFIG)
    queue = EmbeddedQueue(engine)
    queue.submit_rerank(pid, delay=0)
    queue.run_pending()
    first = engine.live_version(pid)
    assert prediction_counts(ls, pid) == ({t: 1 for t in ids}, len(ids))

    # rare new tasks at the top of a highest-first order: no room above 1.0 with nothing patched
    new = import_tasks(ls, pid, [{"text": "an okapi on a unicycle"}, {"text": "a narwhal with a violin"}])
    engine.tasks.mine(pid, [{"id": new[0], "data": {"text": "an okapi on a unicycle"}},
                            {"id": new[1], "data": {"text": "a narwhal with a violin"}}])
    queue.submit_rerank(pid, delay=0)
    queue.run_pending()  # the bump, then the clean-up job it queued
    assert engine.live_version(pid) == f"{first}-r1"
    assert not LabelStudioClient(ls.base_url, ls.token).list_predictions(pid, first)
    every = ids + new
    assert prediction_counts(ls, pid) == ({t: 1 for t in every}, len(every))

    # The stale counts seen after a switch in a browser walkthrough ("Predictions: 2050" for 1,050
    # tasks, one prediction each held): made here in Label Studio's own database, then the
    # clean-up job, which checks the counts after its deletion, has Label Studio recount them.
    client = LabelStudioClient(ls.base_url, ls.token)
    scores = {p["task"]: p["score"] for p in client.list_predictions(pid)}
    with sqlite3.connect(ls.data_dir / "ls.sqlite3", timeout=30) as db:
        db.execute("UPDATE task SET total_predictions = 2 WHERE project_id = ?", (pid,))
    assert prediction_counts(ls, pid)[1] == 2 * len(every)
    queue.submit_cleanup(pid, first)  # nothing of it is left to delete; the counts are checked anyway
    queue.run_pending()
    assert prediction_counts(ls, pid) == ({t: 1 for t in every}, len(every))
    # the recount's own predictions are gone again, and the live scores are untouched
    assert {p["task"]: p["score"] for p in client.list_predictions(pid)} == scores
    assert engine.overview().counters().get("prediction_counts_refreshed") == 1
