"""Object mining wired in: settings -> pipeline -> engine -> /predict.

Real parts throughout: images served over HTTP on loopback, the OpenAI-compatible
stand-in describing every image and crop by its dominant colour, the SQLite store (and
Redis for the index in one test), the Flask app. Every scene is the same gray street
with a blue car; a few also hold a red patch, the rare object, which the detector's
predictions (model version "yolo-test") box as a "trailer".
"""

from __future__ import annotations

import io
import json

import numpy as np

import pytest
from PIL import Image, ImageDraw

from backend.engine.engine import Engine
from backend.labelstudio.config import LabelConfig
from backend.objects import OBJECT_SLOTS, SCENE_SLOT
from backend.settings import Settings
from backend.state import TaskRecord
from tests.support.data import make_client
from tests.support.fake_openai import FakeOpenAI
from tests.support.image_server import ImageServer
from tests.support.recording_server import RecordingServer

DESCRIPTIONS = {"gray": "a street with parked cars", "blue": "a blue car",
                "red": "a horse trailer with a rusty hitch"}
CONFIG = ('<View><Image name="image" value="$image"/>'
          '<RectangleLabels name="det" toName="image"><Label value="car"/><Label value="trailer"/></RectangleLabels>'
          '<TextArea name="vlmine" toName="image"/></View>')
N_TASKS = 24
RARE = {9, 14, 20}  # not the first ids: a tie-break by id would not put them on top
BROKEN = 5  # one box far outside the image


def scene(rare: bool, seed: int) -> bytes:
    image = Image.new("RGB", (800, 400), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.rectangle((80, 200, 239, 299), fill=(30, 30, 220))  # car: x 10%, y 50%, 20% x 25%
    if rare:
        draw.rectangle((480, 120, 639, 279), fill=(220, 30, 30))  # trailer: x 60%, y 30%, 20% x 40%
    draw.point((seed % 800, 0), fill=(127, 127, 127))  # every image its own content hash
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def box(rid, x, y, w, h, label, score):
    return {"id": rid, "type": "rectanglelabels", "from_name": "det", "to_name": "image",
            "original_width": 800, "original_height": 400, "score": score,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def detections(tid: int, trailer_at: float = 60) -> list[dict]:
    regions = [box(f"car{tid}", 10, 50, 20, 25, "car", 0.9)]
    if tid in RARE:
        regions.append(box(f"tr{tid}", trailer_at, 30, 20, 40, "trailer", 0.4))
    if tid == BROKEN:
        regions.append(box("far", 170, 10, 10, 10, "car", 0.8))
    return [{"id": 1000 + tid, "model_version": "yolo-test", "score": 0.7, "result": regions},
            # the backend's own prediction is never read as detections
            {"id": 5000 + tid, "model_version": "vlmine-old", "result": [box("x", 0, 0, 50, 50, "car", 0.1)]}]


@pytest.fixture()
def scenes():
    server = ImageServer({f"/s{t}.png": scene(t in RARE, t) for t in range(1, N_TASKS + 1)})
    tasks = [{"id": t, "data": {"image": f"{server.url}/s{t}.png"}, "predictions": detections(t)}
             for t in range(1, N_TASKS + 1)]
    yield tasks
    server.stop()


def settings(tmp_path, vlm, **overrides) -> Settings:
    base = {"vlm_api_url": vlm.base_url, "vlm_api_model": "fake-vlm", "keyword_mode": "rules",
            "image_allow_private_networks": True, "object_mining": True, "head_diversity": 0.0}
    return Settings.from_env({}, model_dir=str(tmp_path / "model"), **{**base, **overrides})


def label_first(results: list[dict], tasks: list[dict]) -> list[int]:
    """Task ids in the order Label Studio's default stream serves them (lowest score first)."""
    return [t["id"] for _, t in sorted(zip([r["score"] for r in results], tasks), key=lambda p: (p[0], p[1]["id"]))]


@pytest.mark.slow
def test_the_rare_object_tops_predict_with_its_box_and_reason_and_a_broken_box_fails_alone(tmp_path, scenes):
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        client, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                     keyword_mode="rules", object_mining=True, head_diversity=0.0)
        resp = client.post("/predict", json={"tasks": scenes, "project": 3, "label_config": CONFIG})
        assert resp.status_code == 200, resp.get_json()
        results = resp.get_json()["results"]
        # every scene described once, every car and trailer crop once; the broken box never
        crops = N_TASKS + len(RARE)
        assert vlm.calls == N_TASKS + crops
        metrics = client.get("/metrics").get_json()
    order = label_first(results, scenes)
    assert set(order[:len(RARE)]) == RARE, order
    by_id = {t["id"]: r for t, r in zip(scenes, results)}
    for tid in RARE:
        textarea, region = by_id[tid]["result"]
        assert textarea["type"] == "textarea"
        assert textarea["value"]["text"][0].startswith("Rarest object: trailer (detector 0.40) at x 60.0%, y 30.0%")
        # 24 cars, 3 trailers and 24 scenes (OBJECT_WITH_SCENE) in the object scope
        assert textarea["value"]["text"][0].endswith(": hitch: 3 of 27 objects and 24 scenes, trailer: 3 of them")
        assert region["type"] == "rectanglelabels" and region["from_name"] == "det" and region["to_name"] == "image"
        assert region["value"]["rectanglelabels"] == ["trailer"]
        assert region["value"]["x"] == pytest.approx(60) and region["value"]["width"] == pytest.approx(20)
        assert region["meta"]["text"][0].startswith("Rarest object: trailer")
    common = by_id[1]["result"]
    assert common[0]["value"]["text"][0].startswith("Rarest object: car (detector 0.90)")
    assert common[1]["value"]["rectanglelabels"] == ["car"]
    # the out-of-bounds box failed alone: its task is ranked, /metrics names it and why
    assert by_id[BROKEN]["score"] != engine.ranker.end_score
    assert metrics["counters"]["objects_failed"] == 1
    assert f"project 3 task {BROKEN}: rectanglelabels region far: box outside the image" in metrics["last_error"]["object"]
    assert metrics["projects"]["3"]["failed"] == 0
    assert metrics["projects"]["3"]["objects_indexed"] == 2 * N_TASKS + len(RARE)


def test_whole_image_mining_of_the_same_project_does_not_find_them(tmp_path, scenes):
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        client, _ = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                keyword_mode="rules", head_diversity=0.0)
        results = client.post("/predict", json={"tasks": scenes, "project": 3,
                                                "label_config": CONFIG}).get_json()["results"]
        assert vlm.calls == N_TASKS  # no crop described
    assert set(label_first(results, scenes)[:len(RARE)]) != RARE
    assert all(r["type"] == "textarea" for res in results for r in res["result"])


def test_changed_predictions_re_mine_the_task_and_deletes_forget_its_objects(tmp_path, scenes):
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        engine = Engine(settings(tmp_path, vlm))
        pid = 4
        engine.project(pid, CONFIG)
        engine.tasks.mine(pid, scenes)
        assert engine.tasks.changed(pid, scenes) == []
        moved = [dict(t, predictions=detections(t["id"], trailer_at=75)) if t["id"] == 14 else t for t in scenes]
        assert engine.tasks.changed(pid, moved) == [14]
        order, _ = engine.ranker.rank(pid)
        assert 14 in order[:len(RARE)]
        calls = vlm.calls
        engine.tasks.mine(pid, [t for t in moved if t["id"] == 14])
        assert vlm.calls == calls + 1  # the moved box is a new crop (gray street); the rest came from the cache
        assert engine.tasks.changed(pid, moved) == []
        order, result = engine.ranker.rank(pid)
        assert 14 not in order[:len(RARE) - 1] and set(order[:len(RARE) - 1]) == RARE - {14}
        assert "object_novelty" in result.signals and "object_uncertainty" in result.signals

        scope = engine.object_scope(pid)
        assert engine.index.get(scope, 9 * OBJECT_SLOTS + 1) is not None
        assert engine.index.get(scope, 9 * OBJECT_SLOTS + SCENE_SLOT) == engine.index.get(engine.scope(pid), 9)
        engine.tasks.delete(pid, [9])
        assert engine.index.get(scope, 9 * OBJECT_SLOTS) is None and engine.index.get(scope, 9 * OBJECT_SLOTS + 1) is None
        assert 9 not in engine.ranker.rank(pid)[0]


def test_a_task_mined_again_is_served_from_the_cache_without_decoding(tmp_path, scenes):
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        first = Engine(settings(tmp_path, vlm))
        first.project(1, CONFIG)
        mined = first.tasks.mine(1, scenes[:10])
        calls = vlm.calls
        again = first.miner.describe(scenes[:10], first.source(first.project(1)))
        assert vlm.calls == calls
    assert [m.object_keywords for m in again] == [m.object_keywords for m in mined]
    assert [m.keywords for m in again] == [m.keywords for m in mined]


def test_each_job_sends_its_crops_in_one_describe_call(tmp_path, scenes):
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        engine = Engine(settings(tmp_path, vlm, keyword_mode="llm"))
        engine.project(1, CONFIG)
        describer = engine.miner.describer()
        seen: list[tuple[int, str]] = []
        real = describer.describe_each

        def counted(images, prompt):
            seen.append((len(images), prompt))
            return real(images, prompt)

        describer.describe_each = counted
        mined = engine.tasks.mine(1, scenes)
    from backend.vlm.prompts import DEFAULT_OBJECT_PROMPT

    assert [n for n, _ in seen] == [N_TASKS, N_TASKS + len(RARE)]
    assert seen[1][1] == DEFAULT_OBJECT_PROMPT
    rare = next(m for m in mined if m.task_id == min(RARE))
    assert "trailer" in " ".join(rare.object_keywords[1])  # the llm keyword pass covered the crops too


def test_objects_follow_their_settings_and_stay_off_without_boxes_in_the_config(tmp_path, scenes):
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        engine = Engine(settings(tmp_path, vlm, object_max_per_task=1, object_with_scene=False))
        engine.project(1, CONFIG)
        mined = engine.tasks.mine(1, scenes[:10])
        rare = next(m for m in mined if m.task_id == 9)
        assert [o.label for o in rare.objects] == ["car"]  # the most confident box only
        scope = engine.object_scope(1)
        assert engine.index.get(scope, 9 * OBJECT_SLOTS + SCENE_SLOT) is None

        plain = Engine(settings(tmp_path / "plain", vlm))
        plain.project(1, CONFIG.replace('<RectangleLabels name="det" toName="image"><Label value="car"/>'
                                        '<Label value="trailer"/></RectangleLabels>', ''))
        calls = vlm.calls
        mined = plain.tasks.mine(1, scenes[:4])
        assert vlm.calls == calls + 4 and all(m.objects == [] for m in mined)
        assert plain.index.arrays(plain.object_scope(1)).n_tasks == 0


def test_object_scope_on_redis_is_dropped_with_the_image_scope(tmp_path, scenes, redis_db_url):
    url = redis_db_url
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        engine = Engine(settings(tmp_path, vlm, redis_url=url))
        engine.project(2, CONFIG)
        engine.tasks.mine(2, scenes[:12])
        assert engine.index.arrays(engine.object_scope(2)).n_tasks > 12
        # the config now mines another field: both scopes go, the project is synced again
        engine.project(2, CONFIG.replace('value="$image"', 'value="$photo"'))
        assert engine.index.arrays(engine.object_scope(2)).n_tasks == 0
        assert engine.index.arrays(engine.scope(2)).n_tasks == 0


def test_rarest_objects_and_object_errors_for_every_reader(tmp_path, scenes):
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        engine = Engine(settings(tmp_path, vlm, object_min_side=60))
        engine.project(6, CONFIG)
        engine.tasks.mine(6, scenes)
    rarest = engine.explainer.rarest_objects(6, [1, 9, BROKEN, 999])
    assert set(rarest) == {1, 9, BROKEN}  # an unknown task is left out
    assert rarest[9].label == "trailer" and rarest[9].score == pytest.approx(0.4)
    assert rarest[9].box.describe() == "x 60.0%, y 30.0%, w 20.0%, h 40.0%"
    assert [k for k, _ in rarest[9].keywords] == ["hitch", "trailer"] and rarest[9].keywords[0][1] == 3
    assert (rarest[9].objects, rarest[9].scenes) == (N_TASKS + len(RARE), N_TASKS)
    assert rarest[1].label == "car"
    errors = engine.view(6).object_errors([1, 9, BROKEN])
    # the car (100 px high) passes OBJECT_MIN_SIDE=60; the broken box is named with its reason
    assert list(errors) == [BROKEN] and "box outside the image" in errors[BROKEN][0]


def test_the_highlighted_box_needs_the_setting_and_a_rectanglelabels_listing_the_label(tmp_path, scenes):
    without_trailer = CONFIG.replace('<Label value="trailer"/>', '')
    without_textarea = CONFIG.replace('<TextArea name="vlmine" toName="image"/>', '')
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        shown = Engine(settings(tmp_path / "on", vlm))
        shown.project(1, CONFIG)
        shown.tasks.mine(1, scenes[:10])
        hidden = Engine(settings(tmp_path / "off", vlm, object_highlight=False))
        hidden.project(1, CONFIG)
        hidden.tasks.mine(1, scenes[:10])

    def kinds(engine, config):
        return [r["type"] for r in engine.explainer.explanations(1, LabelConfig.parse(config), [9])[9]]

    assert kinds(shown, CONFIG) == ["textarea", "rectanglelabels"]
    assert kinds(hidden, CONFIG) == ["textarea"]
    assert kinds(shown, without_trailer) == ["textarea"]  # Label Studio would store a label its config lacks
    assert kinds(shown, without_textarea) == ["rectanglelabels"]  # the box alone still shows the rare object
    # the predictions' results change: a new version rewrites them; the keywords mined stay valid
    assert hidden.base_version != shown.base_version and hidden.mining_hash == shown.mining_hash


def test_mining_jobs_carry_the_boxes_source_only_with_object_mining(tmp_path):
    from backend.engine.object_mining import task_payload

    task = {"id": 3, "data": {"image": "x"}, "predictions": detections(9), "annotations": [], "meta": {"a": 1}}
    on = Settings.from_env({}, model_dir=str(tmp_path), object_mining=True)
    assert task_payload(task, on) == {"id": 3, "data": {"image": "x"}, "predictions": detections(9)}
    assert task_payload(task, Settings.from_env({}, model_dir=str(tmp_path))) == {"id": 3, "data": {"image": "x"}}
    by_annotations = Settings.from_env({}, model_dir=str(tmp_path), object_mining=True, object_source="annotations")
    assert task_payload(task, by_annotations) == {"id": 3, "data": {"image": "x"}, "annotations": []}


def patch_predictions(method: str, path: str, body) -> tuple[int, dict]:
    """Label Studio's prediction PATCH: 200 with the prediction's id; anything else 404."""
    if method == "PATCH" and path.startswith("/api/predictions/"):
        return 200, {"id": int(path.split("/")[3])}
    return 404, {"detail": "Not found."}


def patched_results(label_studio: RecordingServer) -> dict[int, list[dict]]:
    """prediction id -> the result each PATCH of a prediction's result sent."""
    return {int(path.split("/")[3]): body["result"] for method, path, body in label_studio.requests
            if method == "PATCH" and path.startswith("/api/predictions/") and body and "result" in body}


def test_mining_marks_a_task_mined_again_and_the_rerank_rewrites_its_explanation(tmp_path, scenes, caplog):
    """Mining never writes to Label Studio (it runs on the mining lane): a task whose box moved
    is only marked. The re-rank that follows (the write lane) PATCHes its prediction's result
    and clears the mark; while Label Studio is down the mark stays for the next re-rank."""
    from backend.labelstudio.client import LabelStudioClient

    pid = 6
    label_studio = RecordingServer(patch_predictions).start()
    try:
        with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
            engine = Engine(settings(tmp_path, vlm), label_studio=LabelStudioClient(label_studio.url, "token"))
            engine.project(pid, CONFIG)
            mined = engine.tasks.mine(pid, scenes)
            assert label_studio.requests == []
            assert engine.store.stale_explanations(pid) == sorted(m.task_id for m in mined if m.ok)
            # as after the first write-back: every task holds a prediction (id 100 + task) with
            # the scores of the order, and nothing is pending
            order, _ = engine.ranker.rank(pid)
            version = engine.live_version(pid)
            scores = engine.writer.write_plan(order, {}).scores
            engine.store.set_written(pid, version, {t: (scores[t], 100 + t) for t in order})
            engine.store.update_project(pid, view_id=1)
            engine.store.clear_stale_explanations(pid, [m.task_id for m in mined])

            # the detector moves task 9's trailer a little (the crop is still the trailer: same order)
            moved = [dict(t, predictions=detections(9, trailer_at=62)) for t in scenes if t["id"] == 9]
            assert engine.tasks.changed(pid, moved) == [9]
            engine.tasks.mine(pid, moved)
            assert label_studio.requests == []  # no request at all from mining
            assert engine.store.stale_explanations(pid) == [9]

            # Label Studio is down: the scores need no write, the rewrite fails and 9 stays pending;
            # a marked task without a prediction (failed since, say) needs no rewrite and is cleared
            label_studio.stop()
            engine.store.mark_explanations_stale(pid, [999])
            with caplog.at_level("WARNING", logger="backend.engine.scores_writer"):
                report = engine.rerank(pid)
            assert (report["imported"], report["patched"], report["explanations_rewritten"]) == (0, 0, 0)
            assert engine.store.stale_explanations(pid) == [9]
            assert "cannot rewrite the explanations of 1 tasks mined again" in caplog.text

            label_studio.start()
            report = engine.rerank(pid)
            assert (report["imported"], report["patched"], report["explanations_rewritten"]) == (0, 0, 1)
            assert engine.store.stale_explanations(pid) == []
            rewritten = patched_results(label_studio)
            assert list(rewritten) == [109]
            text = rewritten[109][0]["value"]["text"][0]
            assert text.startswith("Rarest object: trailer (detector 0.40) at x 62.0%")
            assert rewritten[109][1]["value"]["x"] == pytest.approx(62)
            assert engine.overview().counters()["explanations_rewritten"] == 1
            # nothing pending: the next re-rank rewrites nothing
            assert engine.rerank(pid)["explanations_rewritten"] == 0
            assert list(patched_results(label_studio)) == [109]
    finally:
        label_studio.stop()


@pytest.mark.e2e
def test_in_label_studio_boxes_are_read_back_and_a_task_mined_again_gets_its_new_explanation(tmp_path, label_studio):
    """The real Label Studio: its TASKS_CREATED webhook carries no predictions, so a mining job
    reads the boxes back; a task whose boxes moved is mined again by the sync and the re-rank
    after it gives its live prediction the new explanation (the scores' write alone would only
    move its score)."""
    from backend.labelstudio.client import LabelStudioClient
    from tests.support.label_studio import create_project

    n = 12
    server = ImageServer({f"/s{t}.png": scene(t in RARE, t) for t in range(1, n + 1)})
    try:
        rows = [{"data": {"image": f"{server.url}/s{t}.png"},
                 "predictions": [{k: v for k, v in p.items() if k != "id"} for p in detections(t)[:1]]}
                for t in range(1, n + 1)]
        pid, ids = create_project(label_studio, "objects read back", CONFIG, rows)
        local = {tid: t for tid, t in zip(ids, range(1, n + 1))}  # LS id -> scene number
        client = LabelStudioClient(label_studio.base_url, label_studio.token)
        # one listing reads a batch back; a task that is gone is simply not in it
        listed = client.tasks_by_id(pid, [ids[0], ids[3], 10**9])
        assert [t["id"] for t in listed] == [ids[0], ids[3]]
        assert listed[1]["predictions"][0]["result"][0]["value"]["rectanglelabels"] == ["car"]
        with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
            engine = Engine(settings(tmp_path, vlm), label_studio=client)
            engine.project(pid, CONFIG)
            # what TASKS_CREATED gives a job: ids and data only
            mined = engine.tasks.mine(pid, [{"id": tid, "data": rows[local[tid] - 1]["data"]} for tid in ids])
            rare = {tid for tid, t in local.items() if t in RARE}
            assert {m.task_id for m in mined if any(o.label == "trailer" for o in m.objects)} == rare
            # the first write-back imports every prediction with its full result: nothing to rewrite
            assert engine.rerank(pid)["explanations_rewritten"] == 0
            assert engine.store.stale_explanations(pid) == []
            moved = next(tid for tid in ids if local[tid] == 9)
            live = engine.live_version(pid)

            def prediction(tid):
                return next(p for p in client.get_task(tid)["predictions"] if p["model_version"] == live)

            assert [r["value"]["rectanglelabels"] for r in prediction(moved)["result"][1:]] == [["trailer"]]
            # the detector moves the trailer's box onto the street; Start Training's sync sees it
            theirs = next(p for p in client.get_task(moved)["predictions"] if p["model_version"] == "yolo-test")
            result = theirs["result"]
            result[1]["value"]["x"] = 75
            label_studio.api("PATCH", f"/api/predictions/{theirs['id']}/", json={"result": result})
            listed = list(client.iter_tasks(pid))
            assert engine.tasks.changed(pid, listed) == [moved]
            before = prediction(moved)["result"]
            engine.tasks.mine(pid, [t for t in listed if t["id"] == moved])
            assert prediction(moved)["result"] == before  # mining writes nothing to Label Studio
            assert engine.store.stale_explanations(pid) == [moved]
            assert engine.rerank(pid)["explanations_rewritten"] == 1
            assert engine.store.stale_explanations(pid) == []
            text = prediction(moved)["result"][0]["value"]["text"][0]
            assert text.startswith("Rarest object: ") and "x 75.0%" in text
    finally:
        server.stop()


def test_annotated_polygons_are_objects_too(tmp_path, scenes):
    """OBJECT_SOURCE=annotations: an annotator's polygon (by its bounding box) is mined like a detector's box."""
    config = CONFIG.replace('<TextArea', '<PolygonLabels name="poly" toName="image"><Label value="trailer"/>'
                                         '</PolygonLabels><TextArea')
    tasks = []
    for task in scenes[:12]:
        result = [{"id": f"p{task['id']}", "type": "polygonlabels", "from_name": "poly", "to_name": "image",
                   "original_width": 800, "original_height": 400,
                   "value": {"points": [[60, 30], [80, 30], [80, 70], [60, 70]], "polygonlabels": ["trailer"]}}]
        tasks.append({**task, "annotations": [{"id": task["id"], "result": result}] if task["id"] in RARE else [],
                      "predictions": []})
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        engine = Engine(settings(tmp_path, vlm, object_source="annotations"))
        engine.project(1, config)
        mined = engine.tasks.mine(1, tasks)
    rare = next(m for m in mined if m.task_id == 9)
    assert [(o.kind, o.label) for o in rare.objects] == [("polygon", "trailer")]
    assert "trailer" in rare.object_keywords[0]
    assert all(m.objects == [] for m in mined if m.task_id != 9)
    assert engine.ranker.rank(1)[0][0] == 9
    region = engine.explainer.explanations(1, LabelConfig.parse(config), [9])[9][1]
    assert region["from_name"] == "det" and region["value"]["x"] == pytest.approx(60)  # drawn as its box


def test_the_local_model_describes_a_jobs_crops_in_full_batches(tmp_path_factory, tmp_path, scenes):
    """The tiny LLaVA through transformers: the job's 9 crops (a car in each of 6 tasks, a trailer
    in the 3 rare ones) go to the model in one describe_each call, which runs them in
    VLM_BATCH_SIZE batches back to back."""
    from tests.support.tiny_llava import build_tiny_llava

    model_dir = build_tiny_llava(tmp_path_factory.mktemp("tiny"))
    s = Settings.from_env({}, model_dir=str(tmp_path / "model"), vlm_model=str(model_dir), keyword_mode="rules",
                          vlm_max_new_tokens=8, vlm_batch_size=4, object_mining=True,
                          image_allow_private_networks=True)
    engine = Engine(s)
    engine.project(1, CONFIG)
    describer = engine.miner.describer()
    calls: list[int] = []
    real = describer.describe_each

    def counted(images, prompt):
        calls.append(len(images))
        return real(images, prompt)

    describer.describe_each = counted
    tasks = [t for t in scenes if t["id"] in (1, 2, 3, 9, 14, 20)]
    mined = engine.tasks.mine(1, tasks)
    assert calls == [6, 9]  # the images, then every crop of the job at once
    assert all(m.ok and len(m.object_keywords) == len(m.objects) for m in mined)
    assert sum(k is not None for m in mined for k in m.object_keywords) == 9
    assert engine.index.arrays(engine.object_scope(1)).n_tasks > 0


def dominant(jpeg: bytes) -> tuple[int, int, int]:
    """The mean colour of a thumbnail's central half (the object; the margin shows the street)."""
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    w, h = image.size
    middle = image.convert("RGB").crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    pixels = list(middle.getdata())
    return tuple(sum(p[i] for p in pixels) // len(pixels) for i in range(3))


def test_the_rarest_objects_thumbnail_is_stored_kept_from_the_cache_and_forgotten(tmp_path, scenes):
    ids = [t["id"] for t in scenes]
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        engine = Engine(settings(tmp_path, vlm))
        pid = 6
        engine.project(pid, CONFIG)
        mined = engine.tasks.mine(pid, scenes)
        rarest = engine.explainer.rarest_objects(pid, ids)
        stored = engine.view(pid).thumbnails(ids)
        assert set(stored) == set(ids)
        for t in ids:
            slot, jpeg = stored[t]
            assert slot == rarest[t].slot == (1 if t in RARE else 0)  # the trailer, else the car
            r, g, b = dominant(jpeg)
            assert (r > 150 and g < 90 and b < 90) if t in RARE else (b > 150 and r < 90), (t, (r, g, b))
            assert max(Image.open(io.BytesIO(jpeg)).size) == 64 and len(jpeg) < 3000
        # the pipeline cut a thumbnail of every crop; the broken box's slot has none
        assert set(mined[BROKEN - 1].thumbnails) == {0}

        # mined again from the cache: never decoded, so no thumbnail this time, and the stored ones stay
        again = engine.tasks.mine(pid, scenes[:10])
        assert all(m.ok and m.thumbnails == {} for m in again)
        assert engine.view(pid).thumbnails(ids) == stored

        engine.tasks.delete(pid, [9, 10])
        assert engine.view(pid).thumbnails(ids) == {t: v for t, v in stored.items() if t not in (9, 10)}


def test_no_thumbnail_is_kept_without_object_mining(tmp_path, scenes):
    with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
        engine = Engine(settings(tmp_path, vlm, object_mining=False))
        engine.project(2, CONFIG)
        mined = engine.tasks.mine(2, scenes)
    assert all(m.ok and m.thumbnails == {} for m in mined)
    assert engine.view(2).thumbnails([t["id"] for t in scenes]) == {}


# --- one novelty per task: the rarest thing in it, scene or object ------------------------------

SCENE_CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="det" toName="image">'
          '<Label value="car"/></RectangleLabels><TextArea name="vlmine" toName="image"/></View>')
KINDS = ((50, ["street", "city", "building"]), (35, ["road", "park", "grass"]), (30, ["road", "desert", "sand"]),
         (20, ["street", "snow", "winter"]), (15, ["street", "night", "lamp"]))
TRAILERS = (3, 60, 95, 120, 140, 148)  # one in each kind of scene, two in the city


def scene_project(engine, seed: int) -> list[int]:
    """150 scenes of five kinds, scene words varying a little from image to image, three
    vehicles each and in six a horse trailer; every box scored 0.9. Written to the engine's
    index and store as mining would leave them; returns the trailers' task ids."""
    rng = np.random.default_rng(seed)
    engine.project(1, SCENE_CONFIG)
    extras = ["sky", "tree", "sign", "person", "pole", "fence", "cloud", "wall"]
    images, docs, records = {}, {}, []
    kinds = [words for size, words in KINDS for _ in range(size)]
    for t, kind in enumerate(kinds, start=1):
        images[t] = sorted(set(kind) | set(rng.choice(extras, int(rng.integers(1, 4)), replace=False)) | {"car"})
        objects = [["car", str(rng.choice(["sedan", "taxi", "hatchback"])), str(rng.choice(["blue", "red", "white"]))]
                   for _ in range(3)]
        if t - 1 in TRAILERS:
            objects.append(["trailer", "horse", "hitch"])
        for slot, kws in enumerate(objects):
            docs[t * OBJECT_SLOTS + slot] = kws
        docs[t * OBJECT_SLOTS + SCENE_SLOT] = images[t]
        items = [{"slot": s, "label": "car", "score": 0.9, "box": [0.1, 0.1, 0.3, 0.3], "region": None,
                  "size": [640, 480], "mined": True} for s in range(len(objects))]
        records.append(TaskRecord(t, engine.mining_hash, "mined", "a scene", None, {"object_uncertainty": 0.1},
                                  "d", json.dumps({"digest": "x", "items": items, "errors": []})))
    engine.index.upsert_many(engine.scope(1), images)
    engine.index.upsert_many(engine.object_scope(1), docs)
    engine.store.save_tasks(1, records)
    return [i + 1 for i in TRAILERS]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_object_mining_ranks_the_rarest_thing_in_each_task(tmp_path, seed):
    engine = Engine(Settings.from_env({}, model_dir=str(tmp_path), object_mining=True))
    trailers = scene_project(engine, seed)
    order, result = engine.ranker.rank(1)
    assert sorted(order[:6]) == sorted(trailers)
    # one novelty: the object novelty (scene included) is what is ranked as "novelty"; the
    # detector's uncertainty, the same for every task, is left out
    assert result.ranked == ("novelty",)
    assert np.array_equal(result.novelty, result.signals["object_novelty"])
    # without the scene among the objects, the scene's novelty stays a signal of its own
    apart = Engine(Settings.from_env({}, model_dir=str(tmp_path / "apart"), object_mining=True,
                                     object_with_scene=False))
    scene_project(apart, seed)
    _, result_apart = apart.ranker.rank(1)
    assert result_apart.ranked == ("novelty", "object_novelty")
