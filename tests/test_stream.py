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
from backend.state.sqlite import ProjectState

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


def test_only_the_backends_textarea_leaves_an_annotation():
    result = [{"from_name": "label", "value": {"choices": ["a"]}},
              {"from_name": "vlmine", "value": {"text": ["Rarest keywords: x (1)"]}}]
    assert stream.without_explanation(result, "vlmine") == [result[0]]
    assert stream.without_explanation([result[0]], "vlmine") is None  # nothing to do
    assert stream.without_explanation(None, "vlmine") is None


def test_the_annotation_webhook_payload_is_read(tmp_path):
    engine = Engine(Settings(model_dir=str(tmp_path)))
    payload = json.loads((Path(__file__).parent / "fixtures" / "ls-payloads" / "webhook_annotation_created.json").read_text())
    annotation = dict(payload["annotation"])
    assert engine.annotation_cleaner.wanted(annotation) is None  # no explanation in it
    annotation["result"] = annotation["result"] + [{"from_name": "vlmine", "value": {"text": ["t"]}}]
    assert engine.annotation_cleaner.wanted(annotation) == payload["annotation"]["result"]
    kept = Engine(Settings(model_dir=str(tmp_path / "k"), keep_explanations=True))
    assert kept.annotation_cleaner.wanted(annotation) is None


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
def test_a_sync_cleans_annotations_whose_webhook_was_lost(label_studio, tmp_path):
    """A sync finds the annotations that still hold the explanation (real Label Studio)."""
    from tests.support.label_studio import create_project

    ls = label_studio
    pid, tids = create_project(ls, "sweep", CONFIG, [{"text": "a"}, {"text": "b"}])
    chosen = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}
    why = {"from_name": "vlmine", "to_name": "text", "type": "textarea", "value": {"text": ["Rarest keywords: a (1)"]}}
    aid = ls.api("POST", f"/api/tasks/{tids[0]}/annotations/", json={"result": [chosen, why]}).json()["id"]
    ls.api("POST", f"/api/tasks/{tids[1]}/annotations/", json={"result": [chosen]})
    engine = Engine(Settings(model_dir=str(tmp_path), label_studio_url=ls.base_url, label_studio_api_key=ls.token))
    engine.project(pid, CONFIG)
    assert engine.annotation_cleaner.sweep(pid) == 1
    assert [r["from_name"] for r in ls.api("GET", f"/api/annotations/{aid}/").json()["result"]] == ["label"]
    assert engine.annotation_cleaner.sweep(pid) == 0
    assert engine.coord.counters()["explanations_removed"] == 1


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
    engine.mine_tasks(pid, [{"id": t, "data": {"text": x}} for t, x in zip(tids, texts)], CONFIG)
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
