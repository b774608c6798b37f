"""backend.engine.stream without a server: the tab's columns, the ordering, what the guard wants,
and which part of an annotation is the backend's explanation. The two tests marked ``e2e`` run
against a real Label Studio, as do tests/e2e/test_browser.py, tests/e2e/test_text.py and
tests/e2e/test_labelstudio.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.engine import Engine, stream
from backend.settings import Settings
from backend.state.sqlite_store import ProjectState

# GET /api/dm/columns?project=P of Label Studio 1.23.2 for a project with a "text" field, trimmed
# to what hidden_columns reads (captured from the suite's server)
COLUMNS = [
    {"id": "text", "parent": "data", "visibility_defaults": {"explore": True, "labeling": True}},
    {"id": "meta_note", "parent": "data", "visibility_defaults": {"explore": True, "labeling": False}},
    {"id": "id", "visibility_defaults": {"explore": True, "labeling": False}},
    {"id": "inner_id", "visibility_defaults": {"explore": False, "labeling": False}},
    {"id": "completed_at", "visibility_defaults": {"explore": True, "labeling": False}},
    {"id": "total_annotations", "visibility_defaults": {"explore": True, "labeling": True}},
    {"id": "predictions_score", "visibility_defaults": {"explore": False, "labeling": False}},
    {"id": "predictions_results", "visibility_defaults": {"explore": False, "labeling": False}},
    {"id": "created_at", "visibility_defaults": {"explore": False, "labeling": False}},
    {"id": "data", "children": ["text", "meta_note"]},
]
CONFIG = """<View><Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="a"/></Choices>
  <TextArea name="vlmine" toName="text"/></View>"""


def test_the_tab_hides_what_the_default_tab_hides_and_shows_the_score_and_the_configs_fields():
    hidden = stream.hidden_columns(COLUMNS, stream.config_fields(CONFIG))
    assert set(hidden["explore"]) == {"tasks:inner_id", "tasks:predictions_results", "tasks:created_at",
                                      "tasks:data.meta_note"}
    assert "tasks:predictions_score" not in hidden["explore"] + hidden["labeling"]
    assert "tasks:data.text" not in hidden["explore"] + hidden["labeling"]
    assert "tasks:id" in hidden["labeling"] and "tasks:id" not in hidden["explore"]


def test_every_data_column_stays_when_the_config_names_none_of_them():
    hidden = stream.hidden_columns(COLUMNS, {"caption"})
    assert not [c for c in hidden["explore"] if c.startswith("tasks:data.")]


def test_config_fields_are_the_objects_top_level_keys():
    xml = '<View><Image name="i" value="$meta.url"/><Text name="t" value="$texts[0]"/></View>'
    assert stream.config_fields(xml) == {"meta", "texts"}
    assert stream.config_fields("<View") == set()


def test_the_tab_ordering_follows_the_score_direction():
    assert stream.tab_ordering(Settings()) == ["tasks:predictions_score"]
    assert stream.stale_orderings(Settings()) == [["-tasks:predictions_score"]]
    tab = Settings(label_stream="tab")
    assert stream.tab_ordering(tab) == ["-tasks:predictions_score"]
    assert stream.tab_ordering(Settings(label_stream="tab", invert_priority=True)) == ["tasks:predictions_score"]


def test_only_the_backends_own_lines_leave_an_annotation():
    why = ["Rarest keywords: tram: 1 task", "Description: a tram on a bridge"]
    chosen = {"from_name": "label", "value": {"choices": ["a"]}}
    copied = {"from_name": "vlmine", "value": {"text": list(why)}}
    assert stream.without_explanation([chosen, copied], "vlmine", why) == [chosen]
    # a note typed under the explanation, and a line of it edited: the annotator's words stay
    noted = {"from_name": "vlmine", "value": {"text": [*why, "annotator note: looks like a tram"]}}
    assert stream.without_explanation([chosen, noted], "vlmine", why) == [
        chosen, {"from_name": "vlmine", "value": {"text": ["annotator note: looks like a tram"]}}]
    edited = {"from_name": "vlmine", "value": {"text": ["Rarest keywords: tram: 1 task, not a bus", why[1]]}}
    assert stream.without_explanation([edited], "vlmine", why) == [
        {"from_name": "vlmine", "value": {"text": ["Rarest keywords: tram: 1 task, not a bus"]}}]
    # nothing of the backend's in it: nothing to do
    typed = {"from_name": "vlmine", "value": {"text": ["annotator note: looks like a tram"]}}
    assert stream.without_explanation([chosen, typed], "vlmine", why) is None
    assert stream.without_explanation([chosen, copied], "vlmine", []) is None
    assert stream.without_explanation([chosen], "vlmine", why) is None
    assert stream.without_explanation(None, "vlmine", why) is None
    # the line Label Studio sent back with blanks around it is still the backend's
    assert stream.without_explanation([{"from_name": "vlmine", "value": {"text": [why[0] + " "]}}],
                                      "vlmine", why) == []
    assert stream.textarea_lines([chosen, noted, {"from_name": "vlmine", "value": {"text": "one"}}], "vlmine") == [
        *why, "annotator note: looks like a tram", "one"]


def test_the_annotation_webhook_payload_is_read(tmp_path):
    engine = Engine(Settings(model_dir=str(tmp_path)))
    payload = json.loads((Path(__file__).parent / "fixtures" / "ls-payloads" / "webhook_annotation_created.json").read_text())
    annotation = dict(payload["annotation"])
    assert not engine.annotation_cleaner.holds_textarea(annotation)  # no TextArea of the backend's in it
    note = {"from_name": "vlmine", "value": {"text": ["annotator note: looks like a tram"]}}
    annotation["result"] = payload["annotation"]["result"] + [note]
    assert not engine.annotation_cleaner.holds_textarea(annotation)  # only an annotator's words: unread
    annotation["result"] = payload["annotation"]["result"] + [
        {"from_name": "vlmine", "value": {"text": ["Rarest keywords: tram: 1 task"]}}, note]
    assert engine.annotation_cleaner.holds_textarea(annotation)
    kept = Engine(Settings(model_dir=str(tmp_path / "k"), keep_explanations=True))
    assert not kept.annotation_cleaner.holds_textarea(annotation)


def test_the_guard_wants_the_live_version_only_once_it_was_written(tmp_path):
    engine = Engine(Settings(model_dir=str(tmp_path)))
    engine.project(4, CONFIG)
    assert engine.stream.wanted(4) == {}  # nothing written yet: connecting sets the backend's title
    version = engine.project(4).live_version
    engine.store.set_written(4, version, {1: (0.5, 11)})
    want = engine.stream.wanted(4)
    assert want == {"model_version": version, "sampling": "Uncertainty sampling"}
    assert engine.stream.differs(4, {"model_version": "", "sampling": "Uncertainty sampling"})
    assert engine.stream.differs(4, {"model_version": version, "sampling": "Sequential sampling"})
    assert not engine.stream.differs(4, {"model_version": version, "sampling": "Uncertainty sampling"})
    assert not engine.stream.differs(4, {"id": 4})  # a payload without the fields says nothing
    engine.store.update_project(4, dirty=version)
    assert engine.stream.wanted(4) == {}  # a write under way sets the version itself
    tab = Engine(Settings(model_dir=str(tmp_path / "tab"), label_stream="tab"))
    tab.store.save_project(ProjectState(pid=4, label_config=CONFIG, base_version=tab.base_version))
    tab.store.set_written(4, tab.base_version, {1: (0.5, 11)})
    assert tab.stream.wanted(4) == {"model_version": tab.base_version}  # the sampling is the admin's


@pytest.mark.e2e
def test_the_backends_lines_leave_annotations_and_the_annotators_stay(label_studio, tmp_path):
    """Against a real Label Studio: after a re-rank wrote the explanations, a sync cleans the
    annotations whose webhook was lost, and a webhook's check cleans a new one. Only the
    lines the backend wrote go; a note typed in the same TextArea stays, and an annotation
    holding only the annotator's own words is left alone."""
    import time

    from tests.support.label_studio import create_project

    ls = label_studio
    texts = ["a cat on a sofa", "a dog on a sofa", "a cat in a park", "a walrus playing a harp", "a tram on a bridge"]
    pid, tids = create_project(ls, "sweep", CONFIG, [{"text": t} for t in texts])
    engine = Engine(Settings(model_dir=str(tmp_path), label_studio_url=ls.base_url, label_studio_api_key=ls.token))
    engine.tasks.mine(pid, [{"id": t, "data": {"text": x}} for t, x in zip(tids, texts)], CONFIG)
    engine.rerank(pid)
    held = {p["task"]: p["result"] for p in engine.label_studio().prediction_results(project_id=pid)}
    copied = {t: next(r for r in held[t] if r["from_name"] == "vlmine") for t in tids}
    [line] = copied[tids[3]]["value"]["text"]
    assert line.startswith("Rarest keywords: ") and "walrus: 1 task" in line, line

    chosen = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}
    note = "annotator note: looks like a tram"

    def annotate(task: int, *results: dict) -> int:
        return ls.api("POST", f"/api/tasks/{task}/annotations/", json={"result": [chosen, *results]}).json()["id"]

    def kept(aid: int) -> list[tuple[str, dict]]:
        return [(r["from_name"], r["value"]) for r in ls.api("GET", f"/api/annotations/{aid}/").json()["result"]]

    as_copied = annotate(tids[0], copied[tids[0]])
    with_note = annotate(tids[3], {**copied[tids[3]], "value": {"text": [*copied[tids[3]]["value"]["text"], note]}})
    only_note = annotate(tids[4], {**copied[tids[4]], "value": {"text": [note]}})
    untouched = annotate(tids[1])
    assert engine.annotation_cleaner.sweep(pid) == 2
    assert kept(as_copied) == [("label", {"choices": ["a"]})]
    assert kept(with_note) == [("label", {"choices": ["a"]}), ("vlmine", {"text": [note]})]
    assert kept(only_note) == [("label", {"choices": ["a"]}), ("vlmine", {"text": [note]})]
    assert kept(untouched) == [("label", {"choices": ["a"]})]
    assert engine.annotation_cleaner.sweep(pid) == 0
    assert engine.coord.counters()["explanations_removed"] == 2

    # the webhook's way: the annotation as Label Studio sends it, checked in a thread
    fresh = annotate(tids[2], copied[tids[2]])
    assert engine.annotation_cleaner.submit(pid, ls.api("GET", f"/api/annotations/{fresh}/").json())
    deadline = time.monotonic() + 20
    while kept(fresh) != [("label", {"choices": ["a"]})] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kept(fresh) == [("label", {"choices": ["a"]})]
    assert engine.coord.counters()["explanations_removed"] == 3


@pytest.mark.e2e
def test_a_sync_only_reads_label_studio_and_its_annotation_sweep_cleans_on_the_write_lane(label_studio, tmp_path):
    """The mining lane never writes to Label Studio: a sync job sends GETs only, and queues the
    sweep of annotations whose webhook was lost as a job of the write lane; that job takes the
    copied explanation out (real Label Studio, behind a proxy that records every request)."""
    from backend.jobs.embedded import EmbeddedQueue
    from backend.jobs.runner import MINE_LANE, WRITE_LANE
    from tests.support.label_studio import create_project
    from tests.support.recording_server import RecordingProxy

    ls = label_studio
    texts = ["a cat on a sofa", "a dog on a sofa", "a walrus playing a harp"]
    pid, tids = create_project(ls, "sweep on the write lane", CONFIG, [{"text": t} for t in texts])
    proxy = RecordingProxy(ls.base_url).start()
    try:
        engine = Engine(Settings(model_dir=str(tmp_path), label_studio_url=proxy.url, label_studio_api_key=ls.token))
        engine.tasks.mine(pid, [{"id": t, "data": {"text": x}} for t, x in zip(tids, texts)], CONFIG)
        engine.rerank(pid)
        held = {p["task"]: p["result"] for p in engine.label_studio().prediction_results(project_id=pid)}
        copied = next(r for r in held[tids[2]] if r["from_name"] == "vlmine")
        chosen = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}
        aid = ls.api("POST", f"/api/tasks/{tids[2]}/annotations/", json={"result": [chosen, copied]}).json()["id"]

        def kept() -> list[str]:
            return [r["from_name"] for r in ls.api("GET", f"/api/annotations/{aid}/").json()["result"]]

        assert "sync" in MINE_LANE and "sweep_annotations" in WRITE_LANE
        queue = EmbeddedQueue(engine)
        queue.submit_sync(pid)
        proxy.requests.clear()
        assert queue.run_pending(kinds=MINE_LANE) == 1  # the sync alone: every task is mined already
        assert proxy.requests and proxy.writes() == []
        assert kept() == ["label", "vlmine"]

        queue.submit_annotation_sweep(pid)  # one waiting sweep per project is enough
        assert queue.run_pending(kinds=("sweep_annotations",)) == 1
        assert kept() == ["label"]
        assert [(method, path) for method, path, _ in proxy.writes()] == [("PATCH", f"/api/annotations/{aid}/")]
        assert engine.coord.counters()["explanations_removed"] == 1
    finally:
        proxy.stop()


@pytest.mark.e2e
def test_the_stream_settings_are_put_back_by_a_rerank_and_by_setup(label_studio, tmp_path):
    """Prelabeling turned off and the sampling changed in Label Studio: the next re-rank puts
    both back, and so does the next /setup (real Label Studio)."""
    import time

    from backend.server.app import create_app
    from model import VLMineModel
    from tests.support.label_studio import create_project

    ls = label_studio
    texts = ["a cat on a sofa", "a dog on a sofa", "a cat in a park", "a walrus playing a harp"]
    pid, tids = create_project(ls, "guard", CONFIG, [{"text": t} for t in texts])
    settings = Settings(model_dir=str(tmp_path), label_studio_url=ls.base_url, label_studio_api_key=ls.token)
    engine = Engine(settings)
    engine.tasks.mine(pid, [{"id": t, "data": {"text": x}} for t, x in zip(tids, texts)], CONFIG)
    first = engine.rerank(pid)
    client = engine.label_studio()
    version = first["version"]
    project = client.get_project(pid)
    assert project["model_version"] == version and project["sampling"] == "Uncertainty sampling"
    assert "stream_restored" not in first  # a new project starts Sequential: set up, not a repair

    ls.api("PATCH", f"/api/projects/{pid}", json={"show_collab_predictions": False,
                                                   "sampling": "Sequential sampling"})
    assert client.get_project(pid)["model_version"] == ""  # what Label Studio does
    report = engine.rerank(pid)
    assert report["stream_restored"] == ["model_version", "sampling"]
    project = client.get_project(pid)
    assert (project["model_version"], project["sampling"]) == (version, "Uncertainty sampling")
    assert project["show_collab_predictions"] is False  # the admin's choice stays
    assert "model_version was empty" in engine.progress(pid)["stream_restored"]
    assert "stream_restored" not in engine.rerank(pid)  # nothing to put back now

    ls.api("PATCH", f"/api/projects/{pid}", json={"show_collab_predictions": False})
    app = create_app(settings, VLMineModel, engine=engine, start_workers=False).test_client()
    assert app.post("/setup", json={"project": f"{pid}.1", "schema": CONFIG}).status_code == 200
    deadline = time.monotonic() + 20
    while client.get_project(pid)["model_version"] != version and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.get_project(pid)["model_version"] == version
    assert engine.coord.counters()["stream_restored"] == 2
