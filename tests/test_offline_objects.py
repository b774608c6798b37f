"""``python -m backend mine`` on detection data, end to end, as real subprocesses.

Twenty-four street scenes (gray, two blue cars each, detector boxes on the cars); three of
them also hold a red patch with a box of its own, the rare object. The OpenAI-compatible
stand-in on loopback describes by dominant colour: a whole scene is gray ("a street with
parked cars", the same for every image, so whole-image novelty is flat), a car crop blue, the
red crop "a horse trailer with a rusty hitch". Mined object by object, the three planted
tasks must top the output with the red box named as their rarest object; mined whole
(``--no-objects``) they must not. The same scenes are given as COCO JSON with an image
folder, as JSONL rows with boxes and as a Label Studio export.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.support.commands import clean_env, read_csv, read_jsonl, run
from tests.support.fake_openai import COLOURS, FakeOpenAI

DESCRIPTIONS = {
    "gray": "a street with parked cars",
    "blue": "a blue car",
    "red": "a horse trailer with a rusty hitch",
}
SIZE = (160, 120)
CARS = [(10, 70, 40, 30), (100, 75, 40, 30)]  # x, y, w, h in pixels
RARE = (60, 10, 30, 30)
N = 24
PLANTED = {21, 22, 23}  # last: a tie broken by id would not put them first
SCORE = 0.8  # every box alike: the detector's uncertainty does not tell the rare ones apart


def scene(k: int, rare: bool) -> bytes:
    image = Image.new("RGB", SIZE, COLOURS["gray"])
    for x, y, w, h in CARS:
        image.paste(COLOURS["blue"], (x, y, x + w, y + h))
    if rare:
        x, y, w, h = RARE
        image.paste(COLOURS["red"], (x, y, x + w, y + h))
    image.putpixel((k % SIZE[0], 0), (k % 251, 7, 7))  # unique bytes per image
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def boxes_of(k: int) -> list[tuple[tuple[int, int, int, int], str]]:
    found = [(box, "car") for box in CARS]
    if k in PLANTED:
        found.append((RARE, "trailer"))
    return found


def percent(box: tuple[int, int, int, int]) -> list[float]:
    x, y, w, h = box
    return [x / SIZE[0] * 100, y / SIZE[1] * 100, w / SIZE[0] * 100, h / SIZE[1] * 100]


@pytest.fixture(scope="module")
def vlm():
    with FakeOpenAI(by_colour=DESCRIPTIONS) as server:
        yield server


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    for k in range(N):
        (root / "images" / f"{k:03d}.png").parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / f"{k:03d}.png").write_bytes(scene(k, k in PLANTED))
    coco = {
        "images": [{"id": k, "file_name": f"{k:03d}.png", "width": SIZE[0], "height": SIZE[1]} for k in range(N)],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "trailer"}],
        "annotations": [{"id": 1000 + 10 * k + j, "image_id": k, "bbox": list(box), "score": SCORE,
                         "category_id": 1 if label == "car" else 2}
                        for k in range(N) for j, (box, label) in enumerate(boxes_of(k))],
    }
    (root / "coco" / "detections.json").parent.mkdir()
    (root / "coco" / "detections.json").write_text(json.dumps(coco))
    with open(root / "boxes.jsonl", "w") as fh:
        for k in range(N):
            boxes = [dict(zip(("x", "y", "width", "height"), percent(box)), label=label, score=SCORE)
                     for box, label in boxes_of(k)]
            if k == 5:
                boxes.append({"bbox": [1, 2], "label": "car"})  # unreadable: fails alone, when read
            if k == 6:
                boxes.append({"x": 150, "y": 10, "width": 20, "height": 20, "label": "car"})  # outside: refused when mined
            fh.write(json.dumps({"id": f"scene-{k}", "image": f"images/{k:03d}.png", "boxes": boxes}) + "\n")
    export = [{"id": 500 + k, "data": {"img": f"images/{k:03d}.png"},
               "predictions": [{"model_version": "yolo-test", "score": SCORE, "result": [
                   {"id": f"r{j}", "type": "rectanglelabels", "from_name": "box", "to_name": "photo",
                    "original_width": SIZE[0], "original_height": SIZE[1],
                    "value": dict(zip(("x", "y", "width", "height"), percent(box)), rotation=0,
                                  rectanglelabels=[label]), "score": SCORE}
                   for j, (box, label) in enumerate(boxes_of(k))]}]}
              for k in range(N)]
    (root / "export.json").write_text(json.dumps(export))
    json_min = [{"id": 700 + k, "image": f"images/{k:03d}.png", "annotator": "a@example.com",
                 "label": [dict(zip(("x", "y", "width", "height"), percent(box)), rotation=0, rectanglelabels=[label],
                                original_width=SIZE[0], original_height=SIZE[1]) for box, label in boxes_of(k)]}
                for k in range(N)]
    (root / "export-min.json").write_text(json.dumps(json_min))
    return root


def check_planted_on_top(rows: list[dict], planted_ids: set) -> None:
    top = rows[:len(planted_ids)]
    assert {r["id"] for r in top} == planted_ids, [(r["id"], r["keywords"]) for r in rows[:6]]
    for row in top:
        assert row["error"] is None and row["rarest_object"] == "trailer"
        assert row["object_score"] == pytest.approx(SCORE)
        assert row["object_box"] == pytest.approx(percent(RARE), abs=0.01)
        assert {"horse", "trailer", "hitch"} <= set(row["object_keywords"])
    for row in rows[len(planted_ids):]:
        assert row["rarest_object"] in ("car", None)  # a car, or the scene itself


@pytest.mark.slow
def test_coco_detections_with_an_image_folder_rank_the_planted_object_first(scenes, vlm, tmp_path):
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    done = run("mine", scenes / "coco" / "detections.json", "--images", scenes / "images",
               "--out", tmp_path / "ranking.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "objects: COCO detections; each box is mined on its own" in done.stderr
    rows = read_jsonl(tmp_path / "ranking.jsonl")
    assert len(rows) == N
    check_planted_on_top(rows, PLANTED)
    assert all(r["object_errors"] == [] for r in rows)

    # the same run to CSV: one column per field of the rarest object
    again = run("mine", scenes / "coco" / "detections.json", "--images", scenes / "images",
                "--out", tmp_path / "ranking.csv", "--budget", "3", "-q", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 processed now, 24 already mined" in again.stderr
    printed = [line.split("\t") for line in again.stdout.strip().splitlines()]
    assert printed[0][4] == "rarest object" and len(printed) == 4
    for line in printed[1:]:  # the rarest object, its keywords counted over the 75 objects (3 trailers)
        assert int(line[1]) in PLANTED and line[4].startswith("trailer (0.80) at [37.5, 8.33, 18.75, 25.0]: ")
        assert "horse (3)" in line[4]
    first = read_csv(tmp_path / "ranking.csv")[0]
    assert first["rarest_object"] == "trailer" and "horse" in first["object_keywords"].split("; ")


@pytest.mark.slow
def test_whole_image_mining_of_the_same_scenes_does_not_find_the_planted_object(scenes, vlm, tmp_path):
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    done = run("mine", scenes / "coco" / "detections.json", "--images", scenes / "images", "--no-objects",
               "--out", tmp_path / "ranking.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(tmp_path / "ranking.jsonl")
    assert "rarest_object" not in rows[0] and "objects:" not in done.stderr
    assert {r["id"] for r in rows[:3]} != PLANTED
    assert len({tuple(r["keywords"]) for r in rows}) == 1  # every scene reads the same


@pytest.mark.slow
def test_jsonl_rows_with_boxes_rank_the_planted_object_first_and_a_broken_box_fails_alone(scenes, vlm, tmp_path):
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    done = run("mine", scenes / "boxes.jsonl", "--out", tmp_path / "ranking.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "1 boxes could not be read" in done.stderr and "row 6 box 2" in done.stderr
    rows = read_jsonl(tmp_path / "ranking.jsonl")
    check_planted_on_top(rows, {f"scene-{k}" for k in PLANTED})
    broken = next(r for r in rows if r["id"] == "scene-5")
    assert broken["error"] is None and broken["rarest_object"] == "car"
    assert broken["object_errors"] == ["boxes.jsonl: row 6 box 2: bbox must be [x, y, width, height] in pixels, "
                                       "got [1, 2]"]
    outside = next(r for r in rows if r["id"] == "scene-6")
    assert outside["error"] is None and outside["rarest_object"] == "car"
    assert len(outside["object_errors"]) == 1 and "box outside the image" in outside["object_errors"][0]
    assert all(r["object_errors"] == [] for r in rows if r["id"] not in ("scene-5", "scene-6"))


@pytest.mark.slow
def test_a_label_studio_export_with_detector_predictions_ranks_the_planted_object_first(scenes, vlm, tmp_path):
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    done = run("mine", scenes / "export.json", "--out", tmp_path / "ranking.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "a Label Studio export with boxes in its predictions" in done.stderr
    rows = read_jsonl(tmp_path / "ranking.jsonl")
    check_planted_on_top(rows, {500 + k for k in PLANTED})


@pytest.mark.slow
def test_a_task_whose_boxes_moved_is_mined_again_alone_and_leaves_the_head(scenes, vlm, tmp_path):
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    rows = [json.loads(line) for line in (scenes / "boxes.jsonl").read_text().splitlines()]
    source = scenes / "boxes-moved.jsonl"  # beside the images: the rows name them relative to the file
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run("mine", source, "--out", tmp_path / "first.jsonl", "-q", env=env).returncode == 0
    moved = next(r for r in rows if r["id"] == "scene-21")
    trailer = next(b for b in moved["boxes"] if b["label"] == "trailer")
    trailer["x"], trailer["y"] = percent(CARS[0])[:2]  # the box now lies on a car, off the red patch
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = run("mine", source, "--out", tmp_path / "again.jsonl", "-q", env=env)
    assert again.returncode == 0, again.stderr
    assert "1 processed now, 23 already mined" in again.stderr
    ranked = read_jsonl(tmp_path / "again.jsonl")
    assert {r["id"] for r in ranked[:2]} == {"scene-22", "scene-23"}
    row = next(r for r in ranked if r["id"] == "scene-21")
    assert row["object_keywords"] != ["hitch", "horse", "rusty", "trailer"]


@pytest.mark.slow
def test_a_json_min_export_of_annotated_boxes_ranks_the_planted_object_first(scenes, vlm, tmp_path):
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    done = run("mine", scenes / "export-min.json", "--out", tmp_path / "ranking.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "objects: a Label Studio JSON-MIN export with regions" in done.stderr
    rows = read_jsonl(tmp_path / "ranking.jsonl")
    # annotations carry no score: the rarest object has none, and no uncertainty is ranked
    top = rows[:3]
    assert {r["id"] for r in top} == {700 + k for k in PLANTED}
    assert all(r["rarest_object"] == "trailer" and r["object_score"] is None for r in top)
    assert all(r["object_box"] == pytest.approx(percent(RARE), abs=0.01) for r in top)
    assert all(r["object_uncertainty"] is None for r in rows)
