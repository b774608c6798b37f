"""Uncertainty measures by hand, and from real-shaped Label Studio task dicts."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from backend.mining.uncertainty import (
    entropy,
    fill_missing,
    least_confidence,
    margin,
    one_minus_confidence,
    uncertainty_from_task,
    uncertainty_from_tasks,
    variation_ratio,
)

PAYLOADS = Path(__file__).resolve().parent / "fixtures" / "ls-payloads"


def test_entropy_by_hand():
    got = entropy(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.7, 0.2, 0.1]]))
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)) / math.log(3)
    assert got == pytest.approx([math.log(2) / math.log(3), 0.0, h])
    assert entropy([0.25, 0.25, 0.25, 0.25]) == pytest.approx([1.0])
    assert entropy([[2.0, 2.0]]) == pytest.approx([1.0])  # rows are renormalised


def test_entropy_nan_and_degenerate_rows():
    got = entropy(np.array([[np.nan, 0.5], [0.0, 0.0], [0.3, 0.7]]))
    assert math.isnan(got[0]) and math.isnan(got[1]) and not math.isnan(got[2])
    assert entropy([[1.0], [3.0]]).tolist() == [0.0, 0.0]  # a single class: certain


def test_margin_and_least_confidence_by_hand():
    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert margin(p) == pytest.approx([0.7, 1.0, 0.0])
    assert least_confidence(p) == pytest.approx([0.4, 0.5, 0.0])
    assert margin([[3.0, 1.0]]) == pytest.approx([0.5])  # renormalised: .75 - .25
    assert math.isnan(margin([[np.nan, 1.0]])[0])
    assert math.isnan(least_confidence([[0.0, 0.0]])[0])


def test_variation_ratio_by_hand():
    got = variation_ratio([["a", "a", "b"], [], ["x"], [("a", "b"), ("a", "b"), "c", "d"]])
    assert got[0] == pytest.approx(1 / 3)
    assert math.isnan(got[1])
    assert got[2] == 0.0
    assert got[3] == pytest.approx(0.5)


def test_one_minus_confidence_keeps_nan():
    got = one_minus_confidence([0.9, np.nan, 0.0])
    assert got[0] == pytest.approx(0.1) and math.isnan(got[1]) and got[2] == 1.0


@pytest.mark.parametrize(
    "strategy, fill", [("min", 0.1), ("max", 0.9), ("mean", 0.5), ("median", 0.5), ("zero", 0.0)]
)
def test_fill_missing(strategy, fill):
    values = np.array([0.1, np.nan, 0.9, 0.5, np.nan])
    out = fill_missing(values, strategy)
    assert out[[1, 4]].tolist() == [fill, fill]
    assert out[[0, 2, 3]].tolist() == [0.1, 0.9, 0.5]
    assert np.isnan(values[1])  # input untouched


def test_fill_missing_all_nan_and_bad_strategy():
    assert fill_missing(np.array([np.nan, np.nan])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        fill_missing(np.array([1.0]), "random")


# -- Label Studio tasks -------------------------------------------------------------------


@pytest.fixture
def tasks() -> list[dict]:
    """The tasks of a real /predict request (Label Studio's retrieve action)."""
    return json.loads((PAYLOADS / "predict_retrieve_action.json").read_text())["tasks"]


def prediction(pid, version, created, score=None, choices=None, probs=None):
    value = {"choices": choices or ["a"]}
    if probs is not None:
        value["probabilities"] = probs
    return {
        "id": pid,
        "model_version": version,
        "created_at": created,
        "score": score,
        "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": value}],
    }


def test_prediction_score_from_real_payload(tasks):
    got = uncertainty_from_tasks(tasks, "prediction_score")
    # scores 0.9, 0.2, 0.5, 0.7, 0.1; the last task has no prediction
    assert got[:5] == pytest.approx([0.1, 0.8, 0.5, 0.3, 0.9])
    assert [t["id"] for t in tasks][-1] == 7 and math.isnan(got[5])


def test_prediction_score_skips_our_own_and_takes_the_newest(tasks):
    task = copy.deepcopy(tasks[0])  # manual-v1, score 0.9
    task["predictions"].append(prediction(99, "vlmine-abc", "2030-01-01T00:00:00Z", score=0.5))
    assert uncertainty_from_task(task, "prediction_score") == pytest.approx(0.1)
    assert uncertainty_from_task(task, "prediction_score", "vlmine-abc") == pytest.approx(0.5)
    task["predictions"].append(prediction(7, "manual-v1", "2027-01-01T00:00:00.000Z", score=0.3))
    assert uncertainty_from_task(task, "prediction_score") == pytest.approx(0.7)
    # same timestamp: the larger id is newer
    task["predictions"].append(prediction(8, "manual-v1", "2027-01-01T00:00:00Z", score=0.6))
    assert uncertainty_from_task(task, "prediction_score", "manual-v1") == pytest.approx(0.4)


def test_missing_signals_are_nan(tasks):
    opened = json.loads((PAYLOADS / "predict_task_open.json").read_text())["tasks"][0]
    for source in ("prediction_score", "prediction_probs", "predictions_vote"):
        assert math.isnan(uncertainty_from_task(opened, source))
    assert math.isnan(uncertainty_from_task(tasks[0], "prediction_score", "other-model"))
    assert math.isnan(uncertainty_from_task(tasks[0], "prediction_probs"))  # no probs stored
    no_score = copy.deepcopy(tasks[0])
    no_score["predictions"][0]["score"] = None
    assert math.isnan(uncertainty_from_task(no_score, "prediction_score"))


def test_prediction_probs(tasks):
    task = copy.deepcopy(tasks[0])
    task["predictions"] = [
        prediction(1, "clf-1", "2026-01-01T00:00:00Z", probs={"a": 0.8, "b": 0.2}),
        prediction(2, "clf-1", "2026-02-01T00:00:00Z", probs=[0.6, 0.3, 0.1]),
    ]
    assert uncertainty_from_task(task, "prediction_probs", measure="margin") == pytest.approx(0.7)
    assert uncertainty_from_task(
        task, "prediction_probs", measure="least_confidence"
    ) == pytest.approx(0.4)
    task["predictions"] = task["predictions"][:1]
    h = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2)) / math.log(2)
    assert uncertainty_from_task(task, "prediction_probs") == pytest.approx(h)
    task["predictions"][0]["result"][0]["value"] = {"scores": [0.5, 0.5]}
    assert uncertainty_from_task(task, "prediction_probs") == pytest.approx(1.0)


def test_predictions_vote(tasks):
    task = copy.deepcopy(tasks[0])  # one manual-v1 prediction choosing "a"
    task["predictions"] += [
        prediction(10, "m2", "2026-01-01T00:00:00Z", choices=["a"]),
        prediction(11, "m3", "2026-01-01T00:00:00Z", choices=["b"]),
        prediction(12, "vlmine-x", "2026-01-01T00:00:00Z", choices=["b"]),  # ours: ignored
    ]
    assert uncertainty_from_task(task, "predictions_vote") == pytest.approx(1 / 3)
    assert uncertainty_from_task(tasks[0], "predictions_vote") == 0.0
    labels = copy.deepcopy(task)
    labels["predictions"][1]["result"][0]["value"] = {"labels": ["c"], "x": 1}
    assert uncertainty_from_task(labels, "predictions_vote") == pytest.approx(2 / 3)


def test_field_source(tasks):
    task = copy.deepcopy(tasks[0])
    task["data"]["uncertainty"] = "0.25"
    task["data"]["bad"] = "high"
    assert uncertainty_from_task(task, "field", field="uncertainty") == 0.25
    assert math.isnan(uncertainty_from_task(task, "field", field="bad"))
    assert math.isnan(uncertainty_from_task(task, "field", field="absent"))
    with pytest.raises(ValueError):
        uncertainty_from_task(task, "field")
    with pytest.raises(ValueError):
        uncertainty_from_task(task, "telepathy")


def test_field_source_reads_paths_and_no_booleans_as_the_server_does():
    """The mining core's ``field`` source and the engine's field signals share one rule: a
    path into the data (``meta.loss``) is followed, a key holding a dot wins, and a JSON
    true/false is no number (``True`` read as 1.0 would outrank every real score)."""
    from backend.engine.ranking_signals import field_signals

    task = {"id": 1, "data": {"meta": {"loss": 0.7}, "meta.flag": 0.3, "flagged": True, "off": False}}
    assert uncertainty_from_task(task, "field", field="meta.loss") == 0.7
    assert uncertainty_from_task(task, "field", field="meta.flag") == 0.3
    assert math.isnan(uncertainty_from_task(task, "field", field="flagged"))
    assert math.isnan(uncertainty_from_task(task, "field", field="off"))
    assert field_signals(task, ["meta.loss", "meta.flag", "flagged"]) == {"meta.loss": 0.7, "meta.flag": 0.3}


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), "Infinity", "-inf", "nan", 10**400])
def test_non_finite_numbers_are_missing(value):
    from backend.mining.uncertainty import fill_missing

    task = {"id": 1, "data": {"u": value}}
    got = uncertainty_from_task(task, "field", field="u")
    assert math.isnan(got)
    # filled like any missing value: never NaN, never above every real value
    filled = fill_missing(np.array([0.2, got, 0.6]), "mean")
    assert filled.tolist() == pytest.approx([0.2, 0.4, 0.6])


def test_own_predictions_follow_model_version_prefix():
    """Predictions whose version starts with MODEL_VERSION_PREFIX are ours; any other
    backend's (even one named vlmine-...) are another model's and give the uncertainty."""
    task = {"predictions": [
        {"id": 1, "model_version": "acme-llava-1", "score": 0.1, "created_at": "2026-01-02T00:00:00Z"},
        {"id": 2, "model_version": "vlmine-llava-1", "score": 0.8, "created_at": "2026-01-01T00:00:00Z"},
    ]}
    assert uncertainty_from_task(task, "prediction_score", own_prefix="acme") == pytest.approx(0.2)
    assert uncertainty_from_task(task, "prediction_score") == pytest.approx(0.9)  # the default prefix, vlmine
