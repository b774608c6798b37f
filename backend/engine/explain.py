"""What a task's prediction says about it: the explanation Label Studio shows beside the score.

The TextArea text (rarest object, rarest keywords, the image description; the words are
``backend.engine.wording``'s) and, with OBJECT_HIGHLIGHT, the rarest object's box. The one
choice of "the rarest keywords" and "the rarest object" lives here, so the explanations
written to Label Studio, the report and the offline output all name the same ones.
Reads the keyword index and the task records; writes nothing.
"""

from __future__ import annotations

from typing import Sequence

from ..labelstudio.config import LabelConfig
from ..state import TaskRecord
from . import object_mining
from . import wording


class Explainer:
    """The explanations of one backend's projects, under its settings.

    Args:
        engine: the engine whose index, task records, scopes and miner it reads.
    """

    def __init__(self, engine) -> None:
        self.settings = engine.settings
        self.store = engine.store
        self.index = engine.index
        self._engine = engine

    def explanations(self, pid: int, config: LabelConfig, task_ids: list[int]) -> dict[int, list[dict]]:
        """The results a task's prediction carries: a TextArea naming its rarest object (object
        mining), its rarest keywords and the image description, if configured; with
        OBJECT_HIGHLIGHT, the rarest object's box where a RectangleLabels on the image lists
        the detector's label."""
        s = self.settings
        names = config.textarea(s.textarea_name)
        source = config.source(s.description_field, s.image_field)
        with_objects = self._engine.miner.mines_objects(source)
        highlighting = with_objects and s.object_highlight
        if names is None and not highlighting:
            return {}
        records = self.store.get_tasks(pid, task_ids) if source.kind == "image" else {}
        rarest = self.rarest_objects(pid, task_ids, records) if with_objects else {}
        keywords, df = self.rarest_keywords(pid, task_ids) if names else ({}, {})
        out: dict[int, list[dict]] = {}
        for t in task_ids:
            results: list[dict] = []
            rare = rarest.get(t)
            if names is not None:
                lines = []
                if rare is not None:
                    lines.append(object_mining.object_line(rare, s.rare_keywords_shown))
                kws = keywords.get(t, [])[: s.rare_keywords_shown]
                if kws:
                    lines.append(wording.keywords_line(kws, df))
                rec = records.get(t)
                if rec and rec.description:
                    lines.append(wording.description_line(rec.description))
                if lines:
                    results.append({"from_name": names[0], "to_name": names[1], "type": "textarea",
                                    "value": {"text": lines}})
            if highlighting and rare is not None and source.name:
                control = config.highlight_control(source.name, rare.item.get("label"))
                if control is not None:
                    results.append(object_mining.highlight(
                        rare, control, source.name, object_mining.object_line(rare, s.rare_keywords_shown)))
            if results:
                out[t] = results
        return out

    def rarest_objects(self, pid: int, task_ids: Sequence[int], records: dict[int, TaskRecord] | None = None
                       ) -> dict[int, object_mining.RarestObject]:
        """Each task's rarest detected object (object mining): label, score, box, its keywords
        rarest first with their object-scope frequencies. The one choice of "the rare object":
        the TextArea, the highlighted box and the offline output all show it. The whole image's
        own document (OBJECT_WITH_SCENE) is never the one named; tasks without a mined object
        are left out."""
        ids = [int(t) for t in task_ids]
        if records is None:
            records = self.store.get_tasks(pid, ids)
        return object_mining.rarest_objects(self.index, self._engine.object_scope(pid), records, ids,
                                           self.settings.pooling, self.settings.novelty_transform)

    def rarest_keywords(self, pid: int, task_ids: Sequence[int]) -> tuple[dict[int, list[str]], dict[str, int]]:
        """Each task's keywords, the one that lifts its novelty most first, and the document
        frequency of each (see ``keyword_order``).

        The one keyword order: the explanations written to Label Studio, the report and the
        offline output all show it.
        """
        scope = self._engine.scope(pid)
        keywords = self.index.get_many(scope, list(task_ids))
        vocab = {k for kws in keywords.values() for k in kws}
        df = self.index.document_frequencies(scope, vocab) if vocab else {}
        return self.keyword_order(keywords, df, self.index.task_count(scope)), df

    def keyword_order(self, keywords: dict[int, list[str]], df: dict[str, int], n_tasks: int
                      ) -> dict[int, list[str]]:
        """Each task's keywords in the order an explanation shows them: by how much each lifts
        the task's novelty under the configured pooling (novelty.order_by_effect), so what it
        shows first is what made the task rank where it is. Under the confirmed pooling a word
        one task holds lifts little and comes after the confirmed rare words."""
        from ..mining.novelty import order_by_effect

        pooling = self.settings.pooling
        return {t: order_by_effect(kws, df, n_tasks, pooling) for t, kws in keywords.items()}
