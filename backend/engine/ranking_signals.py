"""The one owner of ranking signals: which there are, how each is read, and whose predictions count.

Novelty comes from the keyword index; every other signal is read here, for the server
(``Ranking.rank``, ``ProjectTasks.mine``) and the offline commands alike:

- **field signals**: ``SIGNAL_FIELDS`` (and ``UNCERTAINTY_FIELD`` with
  ``UNCERTAINTY_SOURCE=field``, ranked under the name ``uncertainty``), read from the
  task data by path (``meta.loss``; a flat key holding the dot is read first), through
  :func:`backend.fields.field_number`. Their values are recorded with each task when it is mined;
- **prediction uncertainty** (``UNCERTAINTY_SOURCE=prediction_*``): from the predictions
  of other models stored with each task; the backend's own (``MODEL_VERSION_PREFIX``,
  :func:`backend.versions.is_own_version`) never count.

- **object signals** (OBJECT_MINING, docs/objects.md): ``object_novelty``, a task's
  rarest object by the object scope's keyword frequencies (OBJECT_POOLING), read at each
  ranking; with OBJECT_WITH_SCENE the scene is one of the objects, and ``Ranking.rank``
  ranks it as the task's one novelty in place of the whole-image novelty; ``object_uncertainty``, 1 - the score of its least confident box, recorded
  with the task when mined.

Larger values mean "label sooner"; NaN means the task lacks the signal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from ..fields import field_number
from ..mining import uncertainty_from_task
from ..objects import object_novelty
from ..settings import OBJECT_SIGNALS

if TYPE_CHECKING:
    from ..settings import Settings

#: the name every uncertainty signal is ranked (and reported) under
UNCERTAINTY = "uncertainty"
PREDICTION_SOURCES = ("prediction_score", "prediction_probs", "predictions_vote")
#: the names object mining ranks under (settings refuses data fields of these names)
OBJECT_NOVELTY, OBJECT_UNCERTAINTY = OBJECT_SIGNALS


def field_names(settings: "Settings") -> list[str]:
    """The data fields read as signals: SIGNAL_FIELDS, plus UNCERTAINTY_FIELD when it is the source."""
    names = list(settings.signal_fields)
    if settings.uncertainty_source == "field" and settings.uncertainty_field:
        names.append(settings.uncertainty_field)
    return names


def signal_name(settings: "Settings", field: str) -> str:
    """The name a field signal is ranked under: ``uncertainty`` for UNCERTAINTY_FIELD, else the field."""
    if settings.uncertainty_source == "field" and field == settings.uncertainty_field:
        return UNCERTAINTY
    return field


def ranked_fields(settings: "Settings", extra_fields: Iterable[str] = ()) -> dict[str, str]:
    """Data field -> the name its signal is ranked under, for every field signal of a ranking:
    ``extra_fields`` (the offline command's ``--signal``) first, then the settings' own, each once.
    ``Ranking.rank`` and the offline output's signal columns both read their fields from here."""
    return {name: signal_name(settings, name) for name in dict.fromkeys([*extra_fields, *field_names(settings)])}


def field_signals(task: dict, names: Iterable[str]) -> dict[str, float]:
    """The task's field signals that it has: field -> number (missing ones left out)."""
    out: dict[str, float] = {}
    for name in names:
        number = field_number(task.get("data"), name)
        if not math.isnan(number):
            out[name] = number
    return out


def uses_predictions(settings: "Settings") -> bool:
    """Whether the uncertainty comes from other models' predictions stored with the tasks."""
    return settings.uncertainty_source in PREDICTION_SOURCES


def prediction_uncertainty(task: dict, settings: "Settings") -> float:
    """One task's uncertainty from the predictions of other models (ours excluded); NaN when none."""
    return uncertainty_from_task(task, settings.uncertainty_source, settings.uncertainty_model_version,
                                 settings.uncertainty_measure, own_prefix=settings.model_version_prefix)


def task_object_novelty(arrays: Any, task_ids: np.ndarray, pooling: str, keyword_pooling: str,
                        transform: str) -> np.ndarray | None:
    """Each task's object novelty (OBJECT_POOLING over its objects) in the order of
    ``task_ids``, NaN for a task without objects; None when the scope holds no object."""
    if arrays.n_tasks == 0:
        return None
    found = object_novelty(arrays, pooling=pooling, keyword_pooling=keyword_pooling, transform=transform)
    return found.aligned(task_ids)
