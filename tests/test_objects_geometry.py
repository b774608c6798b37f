"""Crop geometry and region parsing (backend/objects/geometry.py, regions.py): pure functions."""

from __future__ import annotations

import math

import pytest

from backend.objects import (
    Box,
    BoxError,
    ObjectSource,
    crop_rect,
    highlight_region,
    most_confident,
    objects_digest,
    objects_from_results,
    objects_of_task,
    polygon_box,
    rect_box,
)


def rect(x, y, w, h, *, rotation=0, labels=("car",), score=None, rid="r1", ow=1000, oh=500, to_name="image"):
    result = {
        "id": rid, "from_name": "label", "to_name": to_name, "type": "rectanglelabels",
        "original_width": ow, "original_height": oh, "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": list(labels)},
    }
    if score is not None:
        result["score"] = score
    return result


# ------------------------------------------------------------------ percent to pixels
def test_percent_box_lands_on_the_same_pixels_at_any_decode_scale():
    box = rect_box(10, 20, 30, 40)
    assert box == Box(0.1, 0.2, 0.4, 0.6)
    assert crop_rect(box, (1000, 500)).as_tuple() == (100, 100, 400, 300)
    # the same region on a half-scale decode: half the pixels, same place
    assert crop_rect(box, (500, 250)).as_tuple() == (50, 50, 200, 150)


def test_fractional_pixels_are_covered_not_cut():
    box = rect_box(10.05, 10.05, 10.0, 10.0)  # 100.5 .. 200.5 px on a 1000 px side
    px = crop_rect(box, (1000, 1000))
    assert (px.left, px.top, px.right, px.bottom) == (100, 100, 201, 201)


# ------------------------------------------------------------------ margins and clipping
def test_margin_adds_context_of_the_objects_own_size():
    box = rect_box(40, 40, 20, 10)  # 200 x 50 px of a 1000 x 500 image at 400,200
    px = crop_rect(box, (1000, 500), margin=0.25)
    assert px.as_tuple() == (350, 187, 650, 263)  # 50 px each side wide, 12.5 px tall


def test_margin_and_box_are_clipped_at_the_border():
    box = rect_box(90, -5, 20, 20)  # reaches past the right and top edges
    px = crop_rect(box, (1000, 1000), margin=0.5)
    # the margin is a share of the visible part (100 x 150 px): 50 px wide, 75 px tall
    assert px.left == 850 and px.top == 0 and px.right == 1000 and px.bottom == 225
    assert box.clipped() == Box(0.9, 0.0, 1.0, 0.15)


def test_box_outside_the_image_is_refused_with_a_reason():
    with pytest.raises(BoxError, match="outside the image"):
        rect_box(120, 10, 10, 10).clipped()
    with pytest.raises(BoxError, match="far outside"):
        rect_box(-80, 10, 90, 10).clipped()


def test_box_without_area_or_numbers_is_refused():
    with pytest.raises(BoxError, match="no area"):
        rect_box(10, 10, 0, 5)
    with pytest.raises(BoxError, match="not a number"):
        rect_box("ten", 10, 5, 5)
    with pytest.raises(BoxError, match="not finite"):
        rect_box(float("nan"), 10, 5, 5)


# ------------------------------------------------------------------ rotation
def test_rotated_box_is_covered_by_its_bounding_box_in_original_pixels():
    # 200 x 100 px at (400, 200) of a 1000 x 500 image, turned 90 degrees clockwise about
    # its top-left corner: it now spans x 300..400 and y 200..400 px
    box = rect_box(40, 40, 20, 20, rotation=90, original_width=1000, original_height=500)
    assert box.left == pytest.approx(0.3) and box.right == pytest.approx(0.4)
    assert box.top == pytest.approx(0.4) and box.bottom == pytest.approx(0.8)


def test_rotation_by_45_degrees_grows_the_cover():
    box = rect_box(40, 40, 10, 10, rotation=45, original_width=1000, original_height=1000)
    side = 100 * math.sqrt(2) / 1000  # diagonal of a 100 px square
    assert box.width == pytest.approx(side) and box.height == pytest.approx(side)
    assert rect_box(40, 40, 10, 10, rotation=360) == rect_box(40, 40, 10, 10)


def test_polygon_counts_by_its_bounding_box():
    assert polygon_box([[10, 20], [30, 25], [20, 60]]) == Box(0.1, 0.2, 0.3, 0.6)
    with pytest.raises(BoxError, match="at least 3 points"):
        polygon_box([[1, 2], [3, 4]])
    with pytest.raises(BoxError, match="point 1 is not"):
        polygon_box([[1, 2], "x", [3, 4]])


# ------------------------------------------------------------------ tiny boxes
def test_tiny_box_is_refused_in_original_pixels():
    box = rect_box(50, 50, 1, 10)  # 10 x 50 px in a 1000 x 500 original
    with pytest.raises(BoxError, match=r"too small: 10x50 px, the smallest is 16 px"):
        crop_rect(box, (1000, 500), min_side=16, original_size=(1000, 500))
    # the rule reads the original, not a reduced decode: 20 original px pass on a half-scale image
    wide = rect_box(50, 50, 2, 10)
    assert crop_rect(wide, (500, 250), min_side=16, original_size=(1000, 500)).width == 10


def test_most_confident_keeps_the_highest_scores_first_and_unscored_last():
    items = [("a", 0.5), ("b", None), ("c", 0.9), ("d", 0.5)]
    kept = most_confident(items, 3, lambda t: t[1])
    assert [t[0] for t in kept] == ["c", "a", "d"]
    assert [t[0] for t in most_confident(items, None, lambda t: t[1])] == ["c", "a", "d", "b"]


# ------------------------------------------------------------------ regions of a task
def test_regions_take_their_own_score_else_the_predictions():
    results = [rect(10, 10, 20, 20, score=0.3, rid="a"), rect(50, 50, 20, 20, rid="b", labels=("bus",))]
    objects, failures = objects_from_results(results, default_score=0.8)
    assert failures == []
    assert [(o.region_id, o.label, o.score) for o in objects] == [("a", "car", 0.3), ("b", "bus", 0.8)]
    assert objects[0].uncertainty == pytest.approx(0.7)
    assert objects[0].original_size == (1000, 500)


def test_a_broken_region_fails_alone_with_its_reason():
    results = [
        rect(10, 10, 20, 20, rid="ok"),
        rect(150, 10, 20, 20, rid="outside"),
        {"id": "novalue", "type": "rectanglelabels"},
        {"id": "poly", "type": "polygonlabels", "value": {"points": [[1, 1], [2, 2]], "polygonlabels": ["x"]}},
        {"id": "t", "type": "textarea", "value": {"text": ["not an object"]}},
        "garbage",
    ]
    objects, failures = objects_from_results(results)
    assert [o.region_id for o in objects] == ["ok"]
    reasons = {f.region_id: f.reason for f in failures}
    assert "outside the image" in reasons["outside"]
    assert "no value" in reasons["novalue"]
    assert "at least 3 points" in reasons["poly"]
    assert "t" not in reasons  # a TextArea is no object, and no failure
    assert any("is not an object" in f.reason for f in failures if f.region_id is None)


def test_polygon_region_and_image_tag_filter():
    poly = {"id": "p", "to_name": "image", "type": "polygonlabels",
            "value": {"points": [[10, 10], [40, 10], [25, 50]], "polygonlabels": ["mattress"]}}
    other = rect(10, 10, 20, 20, rid="elsewhere", to_name="thumbnail")
    objects, _ = objects_from_results([poly, other], to_name="image")
    assert [(o.region_id, o.kind, o.label) for o in objects] == [("p", "polygon", "mattress")]
    assert objects[0].box == Box(0.1, 0.1, 0.4, 0.5)


def test_source_reads_another_models_newest_prediction_never_our_own():
    task = {"predictions": [
        {"id": 1, "model_version": "yolo-v8", "score": 0.9, "created_at": "2026-01-01T00:00:00Z",
         "result": [rect(1, 1, 10, 10, rid="old")]},
        {"id": 2, "model_version": "yolo-v8", "score": 0.7, "created_at": "2026-02-01T00:00:00Z",
         "result": [rect(1, 1, 10, 10, rid="new")]},
        {"id": 3, "model_version": "vlmine-abc", "score": 0.5, "created_at": "2026-03-01T00:00:00Z",
         "result": [rect(1, 1, 10, 10, rid="ours")]},
    ], "annotations": [
        {"id": 7, "result": [rect(5, 5, 10, 10, rid="human")], "was_cancelled": False},
        {"id": 8, "result": [rect(5, 5, 10, 10, rid="cancelled")], "was_cancelled": True},
    ]}
    objects, _ = objects_of_task(task)
    assert [(o.region_id, o.score) for o in objects] == [("new", 0.7)]
    objects, _ = objects_of_task(task, ObjectSource(model_version="yolo-v8"))
    assert [o.region_id for o in objects] == ["new"]
    objects, _ = objects_of_task(task, ObjectSource(kind="annotations"))
    assert [(o.region_id, o.score) for o in objects] == [("human", None)]
    assert objects_of_task({"predictions": []}) == ([], [])
    with pytest.raises(ValueError):
        ObjectSource(kind="boxes")


def test_digest_changes_with_the_boxes_not_with_key_order_or_other_results():
    task = {"predictions": [{"id": 1, "model_version": "yolo", "score": 0.5,
                             "result": [rect(10, 10, 20, 20, score=0.9)]}]}
    same = {"predictions": [{"id": 1, "model_version": "yolo", "score": 0.5,
                             "result": [dict(reversed(list(rect(10, 10, 20, 20, score=0.9).items()))),
                                        {"type": "textarea", "value": {"text": ["a note"]}}]}]}
    moved = {"predictions": [{"id": 1, "model_version": "yolo", "score": 0.5,
                              "result": [rect(11, 10, 20, 20, score=0.9)]}]}
    assert objects_digest(task) == objects_digest(same) != objects_digest(moved)
    assert objects_digest({"predictions": []}) == ""


def test_highlight_region_round_trips_through_the_parser():
    objects, _ = objects_from_results([rect(12.5, 40, 20, 10, labels=("trailer",), score=0.4, rid="t")])
    region = highlight_region(objects[0], "label", "image", "rare: horse trailer (1 of 400 objects)")
    assert region["meta"] == {"text": ["rare: horse trailer (1 of 400 objects)"]}
    assert region["value"]["rectanglelabels"] == ["trailer"]
    again, failures = objects_from_results([region])
    assert failures == [] and again[0].box == objects[0].box and again[0].label == "trailer"
