"""Uncertainty signals from what a Label Studio project already stores.

Every function returns float64 where LARGER means "more worth labeling", so any of them
can go straight into Pareto ranking next to novelty. NaN means "this task lacks the
signal"; ``fill_missing`` turns that into a value before ranking, because a task
without a signal must still get a place in the queue.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..fields import field_number, finite_number
from ..versions import DEFAULT_PREFIX, is_own_version

__all__ = [
    "entropy",
    "margin",
    "least_confidence",
    "variation_ratio",
    "one_minus_confidence",
    "fill_missing",
    "uncertainty_from_task",
    "uncertainty_from_tasks",
    "SOURCES",
    "MEASURES",
    "FILL_STRATEGIES",
    "OWN_MODEL_PREFIX",
]

SOURCES = ("prediction_score", "prediction_probs", "predictions_vote", "field")
MEASURES = ("entropy", "margin", "least_confidence")
FILL_STRATEGIES = ("min", "max", "mean", "median", "zero")
#: MODEL_VERSION_PREFIX's default; callers pass the configured prefix as ``own_prefix``
#: (who owns the rule: ``backend.versions.is_own_version``)
OWN_MODEL_PREFIX = DEFAULT_PREFIX


# --------------------------------------------------------------------------------------
# Array measures
# --------------------------------------------------------------------------------------


def _prob_rows(probs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Rows renormalised to sum 1; returns (rows, invalid-row mask).

    Model outputs are often slightly off (softmax rounding, top-k truncation), so rows
    are renormalised. A row with a NaN, or with no positive mass, is invalid.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2:
        raise ValueError(f"probabilities must be 2-D (tasks x classes), got shape {p.shape}")
    p = np.clip(p, 0.0, None)  # NaN stays NaN
    total = p.sum(axis=1, keepdims=True)
    invalid = ~np.isfinite(total[:, 0]) | (total[:, 0] <= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / total
    p[invalid] = np.nan
    return p, invalid


def entropy(probs: ArrayLike) -> np.ndarray:
    """Shannon entropy / log(n_classes), in [0, 1]; 0 with a single class."""
    p, invalid = _prob_rows(probs)
    n_classes = p.shape[1]
    if n_classes <= 1:
        out = np.zeros(p.shape[0])
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        out = -terms.sum(axis=1) / math.log(n_classes)
    out[invalid] = np.nan
    return np.clip(out, 0.0, 1.0, out=out, where=~invalid)


def _top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if p.shape[1] == 0:
        nan = np.full(p.shape[0], np.nan)
        return nan, nan
    if p.shape[1] == 1:
        return p[:, 0], np.zeros(p.shape[0])
    part = np.partition(np.nan_to_num(p, nan=0.0), p.shape[1] - 2, axis=1)
    return part[:, -1], part[:, -2]


def margin(probs: ArrayLike) -> np.ndarray:
    """1 - (p_top1 - p_top2): 1 when the two best classes tie."""
    p, invalid = _prob_rows(probs)
    first, second = _top2(p)
    out = 1.0 - (first - second)
    out[invalid] = np.nan
    return out


def least_confidence(probs: ArrayLike) -> np.ndarray:
    """1 - p_top1."""
    p, invalid = _prob_rows(probs)
    first, _ = _top2(p)
    out = 1.0 - first
    out[invalid] = np.nan
    return out


def variation_ratio(labels_per_task: Sequence[Sequence[Hashable]]) -> np.ndarray:
    """1 - count(mode) / count(votes) per task; NaN for a task without votes."""
    out = np.full(len(labels_per_task), np.nan)
    for i, labels in enumerate(labels_per_task):
        votes = [tuple(v) if isinstance(v, list) else v for v in labels]
        if votes:
            out[i] = 1.0 - Counter(votes).most_common(1)[0][1] / len(votes)
    return out


def one_minus_confidence(conf: ArrayLike) -> np.ndarray:
    """1 - confidence (a model's own score), NaN kept."""
    return 1.0 - np.asarray(conf, dtype=np.float64)


def fill_missing(values: np.ndarray, strategy: str = "min") -> np.ndarray:
    """Replace NaN so every task can be ranked.

    ``"min"`` (default) puts a task lacking a signal level with the least uncertain
    task on that signal: it can still win on other signals, but never jumps the queue
    just because data is missing. ``"max"`` does the opposite (label what we know least
    about), ``"mean"``/``"median"`` are neutral, ``"zero"`` is literal 0. If every value
    is missing the column becomes 0 (constant, so it cannot change the ranking).
    """
    if strategy not in FILL_STRATEGIES:
        raise ValueError(f"strategy must be one of {FILL_STRATEGIES}, not {strategy!r}")
    out = np.array(values, dtype=np.float64, copy=True)
    missing = np.isnan(out)
    if not missing.any():
        return out
    present = out[~missing]
    if strategy == "zero" or present.size == 0:
        fill = 0.0
    else:
        fill = {"min": np.min, "max": np.max, "mean": np.mean, "median": np.median}[strategy](
            present
        )
    out[missing] = fill
    return out


# --------------------------------------------------------------------------------------
# Label Studio tasks
# --------------------------------------------------------------------------------------


def uncertainty_from_task(
    task: dict,
    source: str,
    model_version: str | None = None,
    measure: str = "entropy",
    field: str | None = None,
    own_prefix: str = DEFAULT_PREFIX,
) -> float:
    """One task's uncertainty from its stored predictions or data; NaN when absent.

    ``source``:

    * ``"prediction_score"``: 1 - score of the newest prediction of ``model_version``
      (when None: any version that is not our own, i.e. not starting with ``own_prefix``,
      MODEL_VERSION_PREFIX);
    * ``"prediction_probs"``: ``measure`` over the class probabilities in that
      prediction (``result[*].value["probabilities"]`` or ``["scores"]``, a list or a
      ``{class: p}`` object);
    * ``"predictions_vote"``: variation ratio over the labels of all matching
      predictions, one vote per prediction (its sorted choices/labels);
    * ``"field"``: the number at ``field`` in the task data, a key or a path (``meta.loss``),
      by :func:`backend.fields.field_number`, the rule the server and ``mine`` read
      field signals by (true/false and non-finite values are NaN).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    if source == "field":
        if not field:
            raise ValueError("source 'field' needs a field name")
        return field_number(task.get("data"), field)
    preds = _matching_predictions(task, model_version, own_prefix)
    if source == "predictions_vote":
        votes = [v for v in (_vote(p) for p in preds) if v is not None]
        return float(variation_ratio([votes])[0])
    newest = max(preds, key=_recency, default=None)
    if newest is None:
        return math.nan
    if source == "prediction_score":
        score = finite_number(newest.get("score"))
        return 1.0 - score
    return _probs_measure(newest, measure)


def uncertainty_from_tasks(
    tasks: Iterable[dict],
    source: str,
    model_version: str | None = None,
    measure: str = "entropy",
    field: str | None = None,
    own_prefix: str = DEFAULT_PREFIX,
) -> np.ndarray:
    """``uncertainty_from_task`` over many tasks, as a float64 array."""
    return np.array(
        [uncertainty_from_task(t, source, model_version, measure, field, own_prefix) for t in tasks],
        dtype=np.float64,
    )


def _matching_predictions(task: dict, model_version: str | None, own_prefix: str) -> list[dict]:
    preds = [p for p in (task.get("predictions") or []) if isinstance(p, dict)]
    if model_version is not None:
        return [p for p in preds if p.get("model_version") == model_version]
    return [p for p in preds if not is_own_version(p.get("model_version"), own_prefix)]


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _recency(pred: dict) -> tuple[datetime, float]:
    """Sort key: created_at, then id (later ids are newer in Label Studio)."""
    created = pred.get("created_at")
    when = _EPOCH
    if isinstance(created, str):
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
        except ValueError:
            when = _EPOCH
    pid = finite_number(pred.get("id"))
    return when, (-math.inf if math.isnan(pid) else pid)


def _results(pred: dict) -> list[dict]:
    return [r for r in (pred.get("result") or []) if isinstance(r, dict)]


def _vote(pred: dict) -> tuple | None:
    labels: list[str] = []
    for r in _results(pred):
        value = r.get("value") or {}
        for key in ("choices", "labels"):
            items = value.get(key)
            if isinstance(items, list):
                labels.extend(str(x) for x in items)
    return tuple(sorted(labels)) if labels else None


def _probs_measure(pred: dict, measure: str) -> float:
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, not {measure!r}")
    for r in _results(pred):
        value = r.get("value") or {}
        for key in ("probabilities", "scores"):
            vector = _prob_vector(value.get(key))
            if vector is not None:
                fn = {"entropy": entropy, "margin": margin, "least_confidence": least_confidence}
                return float(fn[measure](vector[None, :])[0])
    return math.nan


def _prob_vector(raw: Any) -> np.ndarray | None:
    if isinstance(raw, dict):
        raw = list(raw.values())
    if not isinstance(raw, list) or not raw:
        return None
    values = [finite_number(v) for v in raw]
    return np.array(values, dtype=np.float64)
