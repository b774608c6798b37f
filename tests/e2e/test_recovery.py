"""What a project recovers from, against the real Label Studio: a model-version switch that
failed, a task that fails after it was mined, a /predict answer Label Studio never stored, a
failure that was only passing, tasks imported while a sync was listing, and a label config
that changed the field to mine through any request."""

from __future__ import annotations

import pytest

from backend.engine.engine import PROVISIONAL, Engine
from backend.jobs.embedded import EmbeddedQueue
from backend.labelstudio.client import LabelStudioError
from backend.server.app import create_app
from backend.settings import Settings
from model import VLMineModel
from tests.support.data import COMMON, DESCRIPTIONS, IMAGE_CONFIG, TEXT_CONFIG, png
from tests.support.fake_openai import FakeOpenAI
from tests.support.image_server import ImageServer
from tests.support.label_studio import create_project, import_tasks

pytestmark = pytest.mark.e2e


def engine_for(ls, tmp_path, **env: str) -> Engine:
    return Engine(Settings.from_env({"MODEL_DIR": str(tmp_path), "LABEL_STUDIO_URL": ls.base_url,
                                     "LABEL_STUDIO_API_KEY": ls.token, **env}))


def text_project(ls, engine: Engine, name: str, n: int = 24) -> tuple[int, list[int]]:
    pid, ids = create_project(ls, name, TEXT_CONFIG, [{"text": COMMON[i % 6]} for i in range(n)])
    engine.tasks.mine(pid, [{"id": t, "data": {"text": COMMON[i % 6]}} for i, t in enumerate(ids)], TEXT_CONFIG)
    return pid, ids


def tab(ls, engine: Engine, pid: int) -> list[int]:
    views = ls.api("GET", "/api/dm/views", params={"project": pid}).json()
    view = next(v for v in views if v["data"].get("title") == "Long-tail first")
    return [t["id"] for t in engine.label_studio().tasks_in_view(view["id"])]


def scores(engine: Engine, pid: int) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for p in engine.label_studio().list_predictions(pid, engine.live_version(pid)):
        out.setdefault(int(p["task"]), []).append(float(p["score"]))
    return out


def test_a_model_version_switch_that_failed_is_made_by_the_next_rerank(label_studio, tmp_path):
    """A bump imports a new generation, then switches project.model_version. When that switch
    fails (a timeout, a 5xx), the retry must still make it and retire the old generation."""
    ls = label_studio
    engine = engine_for(ls, tmp_path, PATCH_LIMIT="0", BUMP_SHARE="0")
    pid, ids = text_project(ls, engine, "switch failure e2e")
    first = engine.rerank(pid)["version"]
    client = engine.label_studio()
    engine.tasks.mine(pid, [{"id": ids[-1], "data": {"text": "an okapi on a unicycle"}}])

    real_switch = client.set_model_version

    def refused(project_id: int, version: str) -> None:
        raise LabelStudioError("Label Studio answered 503", method="PATCH", path=f"/api/projects/{project_id}",
                               status=503)

    client.set_model_version = refused
    try:
        with pytest.raises(LabelStudioError):
            engine.rerank(pid)
    finally:
        client.set_model_version = real_switch
    bumped = engine.live_version(pid)
    assert bumped == f"{first}-r1"
    assert client.get_project(pid)["model_version"] == first  # the tab still sorts by the old scores

    report = engine.rerank(pid)
    assert report["imported"] == 0  # the new generation had landed: nothing written twice
    assert client.get_project(pid)["model_version"] == bumped
    assert first in report["retired"]
    order, _ = engine.ranker.rank(pid)
    assert tab(ls, engine, pid) == order and order[0] == ids[-1]
    assert engine.store.get_project(pid).dirty is None
    assert engine.rerank(pid)["retired"] == []


def test_a_task_that_fails_after_it_was_mined_goes_to_the_end_of_the_queue(label_studio, tmp_path):
    ls = label_studio
    engine = engine_for(ls, tmp_path)
    pid, ids = text_project(ls, engine, "late failure e2e")
    engine.tasks.mine(pid, [{"id": ids[5], "data": {"text": "an okapi on a unicycle"}}])
    engine.rerank(pid)
    assert tab(ls, engine, pid)[0] == ids[5]

    # mined again from data that no longer holds the text: it fails
    mined = engine.tasks.mine(pid, [{"id": ids[5], "data": {"caption": "an okapi"}}])
    assert not mined[0].ok
    report = engine.rerank(pid)
    assert report["ended"] == 1
    held = scores(engine, pid)
    # the end of the queue: 1.0 with the default stream (lowest first), which the last of the
    # ranked tasks shares, so the two end the tab in either order
    assert held[ids[5]] == [engine.ranker.end_score] == [1.0] and all(len(v) == 1 for v in held.values())
    order, _ = engine.ranker.rank(pid)
    assert ids[5] not in order
    shown = tab(ls, engine, pid)
    assert shown[:-2] == order[:-1] and set(shown[-2:]) == {order[-1], ids[5]}
    assert engine.rerank(pid)["ended"] == 0  # already at the end: nothing written again


def test_a_prediction_label_studio_never_stored_is_imported_not_lost(label_studio, tmp_path):
    """/predict records its answers as written; when Label Studio dropped one (its request timed
    out), a later move of that task must import a prediction instead of patching nothing."""
    ls = label_studio
    engine = engine_for(ls, tmp_path)
    pid, ids = text_project(ls, engine, "lost answer e2e")
    engine.tasks.mine(pid, [{"id": ids[7], "data": {"text": "an okapi on a unicycle"}}])
    engine.rerank(pid)
    client = engine.label_studio()
    version = engine.live_version(pid)
    lost = ids[3]
    mine = [p["id"] for p in client.list_predictions(pid, version) if p["task"] == lost]
    client.delete_predictions(mine)  # what Label Studio holds when it never stored the answer
    engine.store.set_written(pid, version, {lost: (0.001, None)})  # out of place: the next plan moves it

    report = engine.rerank(pid)
    assert report["imported"] == 1
    held = scores(engine, pid)
    assert set(held) == set(ids) and all(len(v) == 1 for v in held.values())
    order, _ = engine.ranker.rank(pid)
    assert tab(ls, engine, pid) == order


def test_predict_answers_are_confirmed_with_label_studio_at_the_next_write_back(label_studio, tmp_path):
    """/predict's answers are recorded as written (Label Studio stores them), but one whose
    request timed out never was: even when the next plan keeps its place, the write-back
    finds it missing and imports it; one that was stored gets no second prediction."""
    ls = label_studio
    engine = engine_for(ls, tmp_path)
    pid, ids = text_project(ls, engine, "predict answers e2e")
    engine.rerank(pid)
    client = engine.label_studio()
    version = engine.live_version(pid)
    new = import_tasks(ls, pid, [{"text": "an okapi on a unicycle"}, {"text": "a yak playing chess"}])
    tasks = [{"id": t, "data": {"text": text}} for t, text in zip(new, ["an okapi on a unicycle",
                                                                        "a yak playing chess"])]
    answers = engine.predict(pid, tasks, TEXT_CONFIG)  # mined on the spot
    assert all(a["score"] > 0 for a in answers)
    # Label Studio stored the first answer; the request of the second timed out
    client.import_predictions(pid, [{"task": new[0], "score": answers[0]["score"], "model_version": version,
                                     "result": []}])

    report = engine.rerank(pid)
    assert report["imported"] == 1
    held = scores(engine, pid)
    assert set(held) == set(ids) | set(new) and all(len(v) == 1 for v in held.values())
    assert held[new[0]] == [answers[0]["score"]]
    order, _ = engine.ranker.rank(pid)
    assert tab(ls, engine, pid) == order
    assert engine.store.written(pid, version)[new[0]][1] > 0  # the stored answer's id, found in Label Studio
    # the imported one is confirmed by the next write-back, which writes nothing twice
    assert engine.rerank(pid)["imported"] == 0
    assert PROVISIONAL not in {p for _, p in engine.store.written(pid, version).values()}
    assert all(len(v) == 1 for v in scores(engine, pid).values())


def test_a_sync_tries_failed_tasks_again(label_studio, tmp_path):
    """An image host that was down fails its tasks; Start Training (a sync) mines them again
    once it is back, instead of leaving them at the end of the queue for good."""
    ls = label_studio
    files: dict[str, bytes] = {"/red.png": png("red", 1)}
    images = ImageServer(files)
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        try:
            engine = engine_for(ls, tmp_path, VLM_API_URL=vlm.base_url, VLM_API_MODEL="fake-vlm",
                                IMAGE_ALLOW_PRIVATE_NETWORKS="true")
            pid, ids = create_project(ls, "retry failed e2e", IMAGE_CONFIG,
                                      [{"image": f"{images.url}/red.png"}, {"image": f"{images.url}/blue.png"}])
            engine.project(pid, IMAGE_CONFIG)
            queue = EmbeddedQueue(engine)
            queue.submit_sync(pid)
            queue.run_pending(kinds=("sync", "mine"))
            records = engine.store.get_tasks(pid)
            assert records[ids[0]].status == "mined"
            assert records[ids[1]].status == "failed" and "404" in (records[ids[1]].error or "")
            assert engine.tasks.unknown(pid, ids) == []  # a /predict does not fetch it again and again

            files["/blue.png"] = png("blue", 2)  # the host is back
            queue.submit_sync(pid)
            queue.run_pending(kinds=("sync", "mine"))
            assert engine.store.get_tasks(pid)[ids[1]].status == "mined"
            assert engine.index.contains(engine.scope(pid), ids) == set(ids)
        finally:
            images.stop()


def test_tasks_mined_while_a_sync_listed_the_project_are_not_forgotten(label_studio, tmp_path):
    ls = label_studio
    engine = engine_for(ls, tmp_path)
    pid, ids = text_project(ls, engine, "listing race e2e", n=6)
    known = engine.tasks.known(pid)  # taken before the listing, as a sync does
    listing = sorted(engine.label_studio().task_ids(pid))
    # meanwhile a task is imported and mined by another worker
    new = import_tasks(ls, pid, [{"text": "an okapi on a unicycle"}])
    engine.tasks.mine(pid, [{"id": new[0], "data": {"text": "an okapi on a unicycle"}}])
    assert engine.tasks.forget_deleted(pid, listing, known=known) == []
    assert engine.index.contains(engine.scope(pid), new) == set(new)

    # a task the listing skipped (a deletion shifted the pages) but Label Studio still has
    assert engine.tasks.forget_deleted(pid, [t for t in listing if t != ids[2]], known=known) == []
    assert ids[2] in engine.store.get_tasks(pid)
    # a task really gone is forgotten
    assert ls.api("DELETE", f"/api/tasks/{ids[4]}").status_code == 204
    assert engine.tasks.forget_deleted(pid, [t for t in listing if t != ids[4]], known=known) == [ids[4]]
    assert ids[4] not in engine.store.get_tasks(pid)


def test_a_label_config_mining_another_field_is_noticed_whichever_request_brings_it(tmp_path):
    """/setup, /predict and every webhook carry the label config. Whichever brings a config
    that mines another field first, the index is dropped and the project mined again; a
    mining job queued under the old config never puts it back."""
    settings = Settings.from_env({}, model_dir=str(tmp_path), rerank_delay=0.0)
    engine = Engine(settings)
    queue = EmbeddedQueue(engine)
    client = create_app(settings, VLMineModel, engine=engine, queue=queue, start_workers=False).test_client()
    tasks = [{"id": 1, "data": {"text": "a kite", "caption": "a walrus"}},
             {"id": 2, "data": {"text": "a dog", "caption": "a seal"}}]
    resp = client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 6, "label_config": TEXT_CONFIG},
                                         "tasks": tasks})
    assert resp.status_code == 200
    queue.run_pending(kinds=("mine",))
    scope = engine.scope(6)
    assert engine.index.task_count(scope) == 2

    # one more import is queued under the old config...
    queue.submit_tasks(6, [{"id": 3, "data": {"text": "a cat", "caption": "a puffin"}}], TEXT_CONFIG)
    # ...then the config changes, and the first request to bring it is a /setup
    caption = TEXT_CONFIG.replace('value="$text"', 'value="$caption"')
    assert client.post("/setup", json={"project": "6.1700000000", "schema": caption}).status_code == 200
    assert engine.index.task_count(scope) == 0
    assert engine.store.get_project(6).synced is None  # a sync is due once Label Studio is known
    resp = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 6, "label_config": caption}})
    assert resp.get_json() == {"status": "ok", "remine": False}  # nothing more to do: /setup did it

    queue.run_pending(kinds=("mine",))
    assert engine.store.get_project(6).label_config == caption
    assert engine.index.get_many(scope, [3]) == {3: ["puffin"]}


def test_a_batch_mined_while_the_field_to_mine_changed_is_left_to_the_sync(tmp_path):
    engine = Engine(Settings.from_env({}, model_dir=str(tmp_path)))
    engine.project(9, TEXT_CONFIG)
    caption = TEXT_CONFIG.replace('value="$text"', 'value="$caption"')
    real_describe = engine.miner.describe

    def describe_while_the_config_changes(tasks, source):
        mined = real_describe(tasks, source)
        engine.project(9, caption)  # a /setup with the new config arrives meanwhile
        return mined

    engine.miner.describe = describe_while_the_config_changes
    engine.tasks.mine(9, [{"id": 1, "data": {"text": "a kite", "caption": "a walrus"}}])
    assert engine.index.task_count(engine.scope(9)) == 0  # no keywords of the old field
    assert engine.tasks.unknown(9, [1]) == [1]  # so the sync mines it from the new one
    engine.miner.describe = real_describe
    engine.tasks.mine(9, [{"id": 1, "data": {"text": "a kite", "caption": "a walrus"}}])
    assert engine.index.get_many(engine.scope(9), [1]) == {1: ["walrus"]}
