"""Detection data read by ``python -m backend mine`` (backend/offline/detections.py).

Each format (COCO annotations, COCO detections with and without their annotation file,
JSONL rows with boxes, a Label Studio export) is written to tmp with real images made by
Pillow, loaded with ``load_source``, and its objects read back through
``backend.objects.regions.objects_of_task``, exactly as the server reads a task's boxes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from backend.errors import UsageError
from backend.labelstudio.config import LabelConfig
from backend.objects.regions import ObjectSource, objects_of_task
from backend.offline import detections
from backend.offline.sources import load_source
from backend.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({})


def image(path: Path, size: tuple[int, int] = (200, 100)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (128, 128, 128)).save(path)
    return path


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    else:
        path.write_text(json.dumps(data))
    return path


def objects(dataset, item):
    o = dataset.objects
    return objects_of_task(item.task, ObjectSource(o.source, o.model_version), to_name=o.image_tag)


def fractions(obj) -> tuple[float, float, float, float]:
    b = obj.box
    return tuple(round(v, 6) for v in (b.left, b.top, b.right, b.bottom))


# ------------------------------------------------------------------------------- COCO
def coco_doc() -> dict:
    return {
        "images": [
            {"id": 7, "file_name": "a.png", "width": 200, "height": 100},
            {"id": 9, "file_name": "sub/b.png"},  # no size: read from the file, only because it has a box
            {"id": 11, "file_name": "c.png", "width": 200, "height": 100},  # no boxes: a scene alone
        ],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "horse trailer"}],
        "annotations": [
            {"id": 100, "image_id": 7, "bbox": [20, 10, 50, 40], "category_id": 1},
            {"id": 101, "image_id": 7, "bbox": [100, 50, 100, 50], "category_id": 2},
            {"id": 102, "image_id": 7, "bbox": [1, 2, 3], "category_id": 1},  # broken: 3 numbers
            {"id": 103, "image_id": 9, "bbox": [0, 0, 40, 30], "category_id": 1},
            {"id": 104, "image_id": 9, "bbox": [0, 0, 40, 30], "category_id": 5},  # unknown category
            {"id": 105, "image_id": 99, "bbox": [0, 0, 1, 1], "category_id": 1},  # no such image
        ],
    }


def test_coco_annotations_become_tasks_whose_boxes_the_objects_package_reads(tmp_path, settings):
    folder = tmp_path / "imgs"
    image(folder / "a.png"), image(folder / "sub" / "b.png", (80, 60)), image(folder / "c.png")
    src = write(tmp_path / "ann" / "instances.json", coco_doc())
    ds = load_source(str(src), None, settings, images=str(folder))

    assert ds.kind == "image" and [it.id for it in ds.items] == [7, 9, 11]
    assert [it.shown_id for it in ds.items] == [7, 9, 11]
    assert ds.objects.format == "COCO annotations" and ds.objects.model_version == detections.DETECTOR_VERSION
    # the images are read from the folder, not from the JSON's
    assert Path(ds.local_root) == folder.resolve()
    assert ds.items[1].task["data"]["image"] == "/data/local-files/?d=sub/b.png"
    assert ds.items[1].ref == {"image": "sub/b.png"}

    objs, failures = objects(ds, ds.items[0])
    assert failures == []
    assert [(o.label, fractions(o), o.original_size, o.score) for o in objs] == [
        ("car", (0.1, 0.1, 0.35, 0.5), (200, 100), None),
        ("horse trailer", (0.5, 0.5, 1.0, 1.0), (200, 100), None),
    ]
    objs, _ = objects(ds, ds.items[1])  # 80 x 60 from the file's header
    assert [(o.label, fractions(o), o.original_size) for o in objs] == [("car", (0.0, 0.0, 0.5, 0.5), (80, 60))]
    assert objects(ds, ds.items[2]) == ([], [])

    # each broken box fails alone, named by its annotation and why; the others are kept
    assert ds.items[0].box_errors == [
        "instances.json: annotation 2 (id 102): bbox must be [x, y, width, height] in pixels, got [1, 2, 3]"]
    assert ds.items[1].box_errors == ["instances.json: annotation 4 (id 104): category_id 5 is not in categories"]
    assert ds.objects.orphans == ["instances.json: annotation 5 (id 105): image_id 99 is not among the images"]

    config = LabelConfig.parse(ds.label_config)
    assert config.source().key == "image"
    assert 'RectangleLabels name="label" toName="image"' in ds.label_config


def test_coco_detections_keep_their_scores_and_a_missing_size_fails_only_that_images_boxes(tmp_path, settings):
    image(tmp_path / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 100},
                      {"id": 2, "file_name": "gone.png"}],
           "categories": [{"id": 3, "name": "dog"}],
           "annotations": [{"image_id": 1, "bbox": [0, 0, 100, 50], "category_id": 3, "score": 0.25},
                           {"image_id": 1, "bbox": [0, 0, 10, 10], "category_id": 3, "score": "high"},
                           {"image_id": 2, "bbox": [0, 0, 10, 10], "category_id": 3, "score": 0.9}]}
    ds = load_source(str(write(tmp_path / "dets.json", doc)), None, settings)
    assert ds.objects.format == "COCO detections"
    objs, _ = objects(ds, ds.items[0])
    assert [(o.label, o.score, round(o.uncertainty, 6)) for o in objs] == [("dog", 0.25, 0.75)]
    assert ds.items[0].box_errors == ["dets.json: annotation 1: score must be a number, got 'high'"]
    assert ds.items[1].box_errors == [
        "dets.json: annotation 2: the size of gone.png is unknown (no width/height in images, and the file cannot be read)"]
    assert objects(ds, ds.items[1]) == ([], [])


def test_a_detection_results_list_with_its_annotation_file_or_with_images_named_by_id(tmp_path, settings):
    folder = tmp_path / "val"
    image(folder / "000000000042.jpg", (100, 100)), image(folder / "000000000043.jpg", (50, 100))
    image(folder / "notes.png")
    results = [{"image_id": 42, "bbox": [10, 10, 20, 20], "score": 0.8, "category_id": 1},
               {"image_id": 43, "bbox": [0, 50, 50, 50], "score": 0.3, "category_id": 2},
               {"image_id": 44, "bbox": [0, 0, 5, 5], "score": 0.3, "category_id": 2}]
    src = write(tmp_path / "results.json", results)

    # without --coco: images named by their id, labels are the category ids, sizes from the files
    ds = load_source(str(src), None, settings, images=str(folder))
    assert [it.id for it in ds.items] == [42, 43]
    assert ds.objects.format.endswith("(left out, not named by an id: 1 files)")
    objs, _ = objects(ds, ds.items[1])
    assert [(o.label, fractions(o), o.score) for o in objs] == [("2", (0.0, 0.5, 1.0, 1.0), 0.3)]
    assert ds.objects.orphans == ["results.json: annotation 2: image_id 44 is not among the images"]

    # with --coco: the annotation file's images and category names
    info = write(tmp_path / "instances.json", {
        "images": [{"id": 42, "file_name": "000000000042.jpg", "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "kite"}], "annotations": []})
    ds = load_source(str(src), None, settings, images=str(folder), coco=str(info))
    assert [it.id for it in ds.items] == [42] and ds.objects.format == "COCO detection results"
    objs, _ = objects(ds, ds.items[0])
    assert [(o.label, fractions(o)) for o in objs] == [("person", (0.1, 0.1, 0.3, 0.3))]
    assert len(ds.objects.orphans) == 2

    image(folder / "sub" / "42.png")  # a second file named image 42
    with pytest.raises(UsageError, match="000000000042.jpg and sub/42.png are both image 42"):
        load_source(str(src), None, settings, images=str(folder))


@pytest.mark.parametrize("doc, message", [
    ({"images": [{"id": 1}]}, "images[0] (id 1) has no file_name"),
    ({"images": [{"file_name": "a.png"}]}, "images[0] has no id"),
    ({"images": [{"id": 1, "file_name": "a.png"}, {"id": 1.0, "file_name": "b.png"}]}, "duplicate image id 1"),
    ({"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1}]}, "category 0 needs an id and a name"),
    ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": {"x": 1}}, "annotations must be a list"),
])
def test_a_malformed_coco_file_is_a_usage_error_naming_the_entry(doc, message, tmp_path, settings):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        load_source(str(write(tmp_path / "c.json", doc)), None, settings)


def test_images_and_coco_flags_go_with_coco_sources_only(tmp_path, settings):
    rows = write(tmp_path / "rows.jsonl", [{"image": "a.png"}])
    with pytest.raises(UsageError, match="--images and --coco go with a COCO JSON source"):
        load_source(str(rows), None, settings, images=str(tmp_path))
    with pytest.raises(UsageError, match="not a folder"):
        load_source(str(tmp_path), None, settings, coco="x.json")
    results = write(tmp_path / "r.json", [{"image_id": 1, "bbox": [0, 0, 1, 1]}])
    with pytest.raises(UsageError, match="--coco .*not a COCO JSON file"):
        load_source(str(results), None, settings, coco=str(rows))
    with pytest.raises(UsageError, match="no such folder"):
        load_source(str(results), None, settings, images=str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="--field url: a COCO file's images are its file names"):
        load_source(str(results), "url", settings)
    # COCO's usual layout (annotations/ beside val2017/) without --images: said at once
    coco = write(tmp_path / "annotations" / "instances.json", {"images": [{"id": 1, "file_name": "a.png"}]})
    image(tmp_path / "val" / "a.png")
    with pytest.raises(UsageError, match="none of its images is in .*annotations .e.g. a.png.; name their folder "
                                         "with --images"):
        load_source(str(coco), None, settings)
    assert [it.id for it in load_source(str(coco), None, settings, images=str(tmp_path / "val")).items] == [1]


# ------------------------------------------------------------------------------ rows
def test_jsonl_rows_with_percent_and_pixel_boxes(tmp_path, settings):
    image(tmp_path / "imgs" / "a.png", (200, 100))
    image(tmp_path / "imgs" / "b.png", (400, 200))
    rows = [
        {"id": "a", "image": "imgs/a.png", "boxes": [
            {"x": 10, "y": 20, "width": 30, "height": 40, "label": "car", "score": 0.9},
            {"x": 10, "y": 20, "width": 30, "label": "car"},  # broken: no height
            {"bbox": [100, 50, 100, 50], "label": "trailer", "score": 0.4},  # pixels: size from the file
        ]},
        {"id": "b", "image": "imgs/b.png", "width": 800, "height": 400,  # stated size wins over the file
         "boxes": [{"bbox": [400, 200, 400, 200], "label": "cone"}]},
        {"id": "c", "image": "https://example.invalid/c.png", "boxes": [
            {"bbox": [0, 0, 10, 10], "label": "cone"}, {"x": 0, "y": 0, "width": 50, "height": 50, "label": "sign"}]},
        {"id": "d", "image": "imgs/a.png", "boxes": "car at the left"},
        {"id": "e", "image": "imgs/b.png"},  # no boxes: the scene alone
    ]
    ds = load_source(str(write(tmp_path / "rows.jsonl", rows)), None, settings)
    assert ds.objects.format == "rows with boxes" and ds.objects.source == "predictions"
    by_key = {it.shown_id: it for it in ds.items}

    objs, _ = objects(ds, by_key["a"])
    assert [(o.label, fractions(o), o.score) for o in objs] == [
        ("car", (0.1, 0.2, 0.4, 0.6), 0.9), ("trailer", (0.5, 0.5, 1.0, 1.0), 0.4)]
    assert objs[1].original_size == (200, 100)
    assert by_key["a"].box_errors == [
        "rows.jsonl: row 1 box 1: no height (a box is x, y, width, height in percent, or bbox in pixels)"]
    objs, _ = objects(ds, by_key["b"])
    assert [(o.label, fractions(o), o.original_size) for o in objs] == [("cone", (0.5, 0.5, 1.0, 1.0), (800, 400))]
    objs, _ = objects(ds, by_key["c"])  # the pixel box fails, the percent one is kept
    assert [o.label for o in objs] == ["sign"]
    assert by_key["c"].box_errors == ["rows.jsonl: row 3 box 0: bbox is in pixels, but the image's size is "
                                      "unknown (give the row width and height, or a local image file)"]
    assert by_key["d"].box_errors == ["rows.jsonl: row 4: boxes must be a list, got 'car at the left'"]
    assert objects(ds, by_key["e"]) == ([], [])
    assert by_key["e"].task["predictions"] == []  # no boxes: said so, nothing left to read back from Label Studio
    assert "boxes" not in by_key["a"].task["data"]  # the boxes live in the prediction, not in the data


def test_an_out_of_bounds_box_is_refused_by_the_objects_package_alone(tmp_path, settings):
    """Whether a box lies in its image is the objects package's rule: the converter passes
    the box on and the region fails when read, with the geometry's reason."""
    image(tmp_path / "a.png")
    rows = [{"image": "a.png", "boxes": [{"x": 150, "y": 10, "width": 20, "height": 20, "label": "ghost"},
                                         {"x": 10, "y": 10, "width": 20, "height": 20, "label": "car"}]}]
    ds = load_source(str(write(tmp_path / "rows.jsonl", rows)), None, settings)
    objs, failures = objects(ds, ds.items[0])
    assert [o.label for o in objs] == ["car"]
    assert len(failures) == 1 and "box outside the image" in failures[0].reason
    assert ds.items[0].box_errors == []


# ---------------------------------------------------------------- Label Studio exports
def ls_task(tid: int, image_ref: str, predictions=(), annotations=()) -> dict:
    return {"id": tid, "data": {"img": image_ref}, "predictions": list(predictions), "annotations": list(annotations)}


def rect(x, y, w, h, label, score=None, to_name="photo") -> dict:
    r = {"type": "rectanglelabels", "from_name": "box", "to_name": to_name, "original_width": 200,
         "original_height": 100, "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]}}
    if score is not None:
        r["score"] = score
    return r


def test_an_export_with_detector_predictions_is_read_as_the_server_reads_it(tmp_path, settings):
    image(tmp_path / "a.png"), image(tmp_path / "b.png")
    tasks = [
        ls_task(1, "a.png", predictions=[
            {"model_version": "yolo-v8", "result": [rect(10, 10, 20, 20, "car", 0.9), rect(50, 50, 10, 10, "cone", 0.3)]},
            {"model_version": "vlmine-2024-abc", "result": [{"type": "textarea", "value": {"text": ["x"]}}]}]),
        ls_task(2, "b.png"),
    ]
    ds = load_source(str(write(tmp_path / "export.json", tasks)), None, settings)
    assert ds.objects.source == "predictions" and ds.objects.model_version is None
    assert ds.objects.image_tag == "photo" and ds.key == "img"
    assert 'Image name="photo" value="$img"' in ds.label_config
    assert LabelConfig.parse(ds.label_config).source().key == "img"
    objs, _ = objects(ds, ds.items[0])
    assert [(o.label, o.score) for o in objs] == [("car", 0.9), ("cone", 0.3)]

    assert "annotations" not in ds.items[0].task  # boxes from predictions: annotations are not kept

    ds = load_source(str(write(tmp_path / "export.json", tasks)), None, settings, objects=False)
    assert ds.objects is None and "RectangleLabels" not in ds.label_config


def test_an_export_with_boxes_only_in_annotations_reads_the_annotations(tmp_path, settings):
    image(tmp_path / "a.png")
    tasks = [ls_task(1, "a.png", annotations=[{"id": 5, "result": [rect(0, 0, 50, 50, "bike")]},
                                              {"id": 6, "was_cancelled": True, "result": [rect(0, 0, 9, 9, "no")]}])]
    ds = load_source(str(write(tmp_path / "export.json", tasks)), None, settings)
    assert ds.objects.source == "annotations" and len(ds.items[0].task["annotations"]) == 2
    objs, _ = objects(ds, ds.items[0])
    assert [o.label for o in objs] == ["bike"]


def test_an_export_whose_only_boxes_are_this_backends_own_is_no_detection_input(tmp_path, settings):
    image(tmp_path / "a.png")
    tasks = [ls_task(1, "a.png", predictions=[{"model_version": "vlmine-1", "result": [rect(0, 0, 5, 5, "x")]}])]
    ds = load_source(str(write(tmp_path / "export.json", tasks)), None, settings)
    assert ds.objects is None and "RectangleLabels" not in ds.label_config


def test_changed_boxes_change_the_items_signature_and_unchanged_ones_keep_it(tmp_path, settings):
    image(tmp_path / "a.png")
    rows = [{"id": 1, "image": "a.png", "boxes": [{"x": 1, "y": 1, "width": 20, "height": 20, "label": "car"}]}]
    src = tmp_path / "rows.jsonl"
    first = load_source(str(write(src, rows)), None, settings).items[0].sig
    assert load_source(str(src), None, settings).items[0].sig == first
    rows[0]["boxes"][0]["x"] = 30
    assert load_source(str(write(src, rows)), None, settings).items[0].sig != first
    # mined whole, the boxes do not count
    plain = load_source(str(src), None, settings, objects=False).items[0].sig
    assert "boxes:" not in plain and plain != first


def test_an_export_with_boxes_in_both_reads_the_configured_source():
    tasks = [ls_task(1, "a.png", predictions=[{"model_version": "yolo", "result": [rect(0, 0, 5, 5, "car")]}],
                     annotations=[{"id": 2, "result": [rect(0, 0, 5, 5, "car")]}]),
             ls_task(2, "b.png", predictions=[{"model_version": "vlmine-x", "result": [rect(0, 0, 5, 5, "car")]}])]
    assert detections.export_object_source(tasks, "vlmine") == "predictions"
    assert detections.export_object_source(tasks, "vlmine", preferred="annotations") == "annotations"
    assert detections.export_object_source(tasks[1:], "vlmine") is None  # only this backend's own boxes
    assert detections.export_object_source(tasks[1:], "other") == "predictions"


def test_the_engine_reads_converted_boxes_whatever_the_environment_names(tmp_path, monkeypatch):
    """Converted boxes are a prediction of DETECTOR_VERSION: the run's settings read exactly
    that, over OBJECT_SOURCE/OBJECT_MODEL_VERSION of the environment; an export follows
    OBJECT_SOURCE when its boxes are there."""
    from backend.offline.run import build_engine

    for name in Settings.__dataclass_fields__:  # a developer's REDIS_URL and friends stay out
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in {"OBJECT_SOURCE": "annotations", "OBJECT_MODEL_VERSION": "yolo-v9",
                        "OBJECT_MINING": "false"}.items():
        monkeypatch.setenv(name, value)
    image(tmp_path / "a.png")
    rows = write(tmp_path / "rows.jsonl", [{"image": "a.png", "boxes": [{"x": 1, "y": 1, "width": 50, "height": 50}]}])
    ds = load_source(str(rows), None, Settings.from_env())
    engine = build_engine(str(tmp_path / "model"), ds)
    rule = engine.settings.object_source_rule()
    assert engine.settings.object_mining
    assert (rule.kind, rule.model_version) == ("predictions", detections.DETECTOR_VERSION)
    assert len(objects_of_task(ds.items[0].task, rule, to_name=ds.objects.image_tag)[0]) == 1

    tasks = [ls_task(1, "a.png", predictions=[{"model_version": "yolo-v9", "result": [rect(0, 0, 5, 5, "car")]}],
                     annotations=[{"id": 2, "result": [rect(0, 0, 50, 50, "bike")]}])]
    ds = load_source(str(write(tmp_path / "export.json", tasks)), None, Settings.from_env())
    assert ds.objects.source == "annotations"
    engine = build_engine(str(tmp_path / "model2"), ds)
    found, _ = objects_of_task(ds.items[0].task, engine.settings.object_source_rule(), to_name=ds.objects.image_tag)
    assert [o.label for o in found] == ["bike"]


def test_a_json_min_export_reads_its_region_fields(tmp_path, settings):
    """Label Studio's JSON-MIN export: flat rows, each region field (the control's name)
    listing the annotation's values with their original size."""
    image(tmp_path / "a.png"), image(tmp_path / "b.png")
    rows = [
        {"id": 3, "image": "a.png", "annotator": "x@example.com", "lead_time": 2.5,
         "label": [{"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["car"],
                    "original_width": 200, "original_height": 100},
                   {"points": [[50, 50], [70, 50], [60, 90]], "closed": True, "polygonlabels": ["cone"],
                    "original_width": 200, "original_height": 100},
                   "a stray string"]},
        {"id": 4, "image": "b.png", "sentiment": "ok"},
    ]
    ds = load_source(str(write(tmp_path / "project-1-min.json", rows)), None, settings)
    assert ds.objects.format == "a Label Studio JSON-MIN export with regions" and ds.key == "image"
    objs, failures = objects(ds, ds.items[0])
    assert failures == []
    assert [(o.label, o.kind, fractions(o), o.original_size) for o in objs] == [
        ("car", "rectangle", (0.1, 0.2, 0.4, 0.6), (200, 100)), ("cone", "polygon", (0.5, 0.5, 0.7, 0.9), (200, 100))]
    assert ds.items[0].box_errors == ["project-1-min.json: row 1 label region 2: not a region (an object with "
                                      "rectanglelabels or polygonlabels), got 'a stray string'"]
    assert "label" not in ds.items[0].task["data"] and ds.items[0].task["data"]["lead_time"] == 2.5
    assert objects(ds, ds.items[1]) == ([], [])
