"""The project's order: novelty, the recorded and read signals, Pareto mining, tie-breaks.

The one ranking path: the server's re-ranks, /predict, the report and the offline commands
all rank through :meth:`Ranking.rank`, with the same signals, tie-breaks and settings.
It reads the index, the recorded signals and (for prediction uncertainty) the tasks in
Label Studio; it writes nothing.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..mining import prioritise
from ..objects import task_keywords
from . import object_mining
from . import ranking_signals

UNCERTAINTY_MAX_AGE_S = 300.0


class Ranking:
    """Ranks the projects of one backend under its settings.

    Args:
        engine: the engine whose index, recorded signals, scopes and Label Studio client it reads.
    """

    def __init__(self, engine) -> None:
        self.settings = engine.settings
        self.store = engine.store
        self.index = engine.index
        self._engine = engine
        #: project -> (when read, task -> prediction uncertainty): what the last read of Label Studio found
        self._uncertainty: dict[int, tuple[float, dict[int, float]]] = {}

    def rank(self, pid: int, fresh_tasks: Sequence[dict] = (), refresh: bool = True,
             extra_fields: Sequence[str] = ()) -> tuple[list[int], Any]:
        """The project's order, label-first first, and the mining result behind it.

        The one ranking path: the server's re-ranks, /predict, the report and the offline
        commands all rank here, with the same signals, tie-breaks and settings.

        Args:
            pid: the project.
            fresh_tasks: tasks at hand with their predictions (a /predict request, the rows of
                an offline source): their prediction uncertainty is taken from them.
            refresh: False (the /predict path) reuses signals read from Label Studio recently.
            extra_fields: data fields ranked as signals beside the settings' (the offline
                command's ``--signal``); their values are recorded by
                :meth:`ProjectTasks.record_field_signals` (``engine.tasks``).
        """
        arrays = self.index.arrays(self._engine.scope(pid))
        if arrays.n_tasks == 0:
            return [], None
        ranked, object_arrays = self._signals(pid, arrays.task_ids, fresh_tasks, refresh, extra_fields)
        return self.rank_arrays(arrays, ranked, object_arrays)

    def rank_arrays(self, arrays: Any, ranked: Mapping[str, np.ndarray] | None = None,
                    object_arrays: Any = None) -> tuple[list[int], Any]:
        """The order (label-first first) and mining result of an index's arrays and signals, under
        these settings; :meth:`rank` reads both from the project, simulations build them.
        ``object_arrays``: the object scope's arrays when the project mines objects."""
        novelty_from, head_keywords = None, None
        if object_arrays is not None and self.settings.object_with_scene:
            # the scene is one of the task's objects: its object novelty is the rarest thing
            # in it, the one novelty it ranks by, and the head covers every keyword it holds
            novelty_from = object_mining.OBJECT_NOVELTY
            if self.settings.head_diversity > 0:
                head_keywords = task_keywords(object_arrays, arrays.task_ids)
        result = prioritise(arrays, ranked, pooling=self.settings.pooling,
                            transform=self.settings.novelty_transform,
                            invert=self.settings.scores_ascending,
                            head_diversity=self.settings.head_diversity,
                            novelty_from=novelty_from, head_keywords=head_keywords)
        order = [int(t) for t in arrays.task_ids[np.argsort(result.position, kind="stable")]]
        return order, result

    def score_order(self, order: list[int]) -> list[int]:
        """Tasks from the highest score to the lowest: label-first first, or last when the scores
        run lowest-first (Settings.scores_ascending)."""
        return order[::-1] if self.settings.scores_ascending else order

    @property
    def end_score(self) -> float:
        """The score of a task that has no place in the order (it failed, or is not mined yet):
        the end of the queue, 0 (1 when the scores run lowest-first: LABEL_STREAM=uncertainty, the
        default, or INVERT_PRIORITY; the most common task shares it)."""
        return 1.0 if self.settings.scores_ascending else 0.0

    def _signals(self, pid: int, task_ids: np.ndarray, fresh_tasks: Sequence[dict], refresh: bool = True,
                 extra_fields: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], Any]:
        """Signal name -> values aligned with ``task_ids`` (NaN where missing), see ``engine.ranking_signals``;
        and the object scope's arrays when the ranking has an object novelty (else None)."""
        s = self.settings
        fields = ranking_signals.ranked_fields(s, extra_fields)
        out: dict[str, np.ndarray] = {}
        with_objects = s.object_mining and self._engine.mines_objects(self.store.get_project(pid))
        if with_objects:
            fields[object_mining.OBJECT_UNCERTAINTY] = object_mining.OBJECT_UNCERTAINTY
        if fields:
            recorded = self.store.get_signals(pid)
            for name, ranked_as in fields.items():
                col = np.full(len(task_ids), np.nan)
                for i, t in enumerate(task_ids.tolist()):
                    values = recorded.get(t)
                    if values and name in values:
                        col[i] = values[name]
                out[ranked_as] = col
        if ranking_signals.uses_predictions(s):
            out[ranking_signals.UNCERTAINTY] = self._prediction_uncertainty(pid, task_ids, fresh_tasks, refresh)
        object_arrays = None
        if with_objects:
            if np.isnan(out[object_mining.OBJECT_UNCERTAINTY]).all():
                del out[object_mining.OBJECT_UNCERTAINTY]  # a detector without scores: nothing to rank by
            object_arrays = self.index.arrays(self._engine.object_scope(pid))
            novelty = ranking_signals.task_object_novelty(
                object_arrays, task_ids, s.object_pooling, s.pooling, s.novelty_transform)
            if novelty is not None:
                out[object_mining.OBJECT_NOVELTY] = novelty
            else:
                object_arrays = None
        return out, object_arrays

    def _prediction_uncertainty(self, pid: int, task_ids: np.ndarray, fresh_tasks: Sequence[dict],
                                refresh: bool) -> np.ndarray:
        """Uncertainty from predictions of another model stored with each task in Label Studio.

        Reading every task from Label Studio costs seconds per 10,000 tasks, so a
        re-rank reads them (``refresh``) and /predict reuses what the last read
        found (at most UNCERTAINTY_MAX_AGE_S old), updated with the tasks in the
        request, which carry their predictions.
        """
        cached = self._uncertainty.get(pid)
        client = self._engine.label_studio_or_none()
        values: dict[int, float]
        if client is not None and (refresh or cached is None
                                   or time.monotonic() - cached[0] > UNCERTAINTY_MAX_AGE_S):
            values = {int(t["id"]): ranking_signals.prediction_uncertainty(t, self.settings)
                      for t in client.iter_tasks(pid)}
            self._uncertainty[pid] = (time.monotonic(), values)
        else:
            values = cached[1] if cached else {}
        for task in fresh_tasks:
            values[int(task["id"])] = ranking_signals.prediction_uncertainty(task, self.settings)
        return np.array([values.get(t, np.nan) for t in task_ids.tolist()], dtype=float)
