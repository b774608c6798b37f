"""Label Studio's side of the order: the writes that make its scores follow the ranking.

:class:`ScoresWriter` turns an order into imports, PATCHes and generation bumps (planned by
``backend.engine.writeback``), keeps the record of what Label Studio holds (``written``),
finds out what it holds after a write that did not finish, deletes retired versions and
rewrites the explanations of tasks mined again (marked stale by mining, rewritten by the
next write-back). Everything the backend writes to Label Studio's predictions goes through
here, with the project lock held by the caller: the write lane's jobs, never mining.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Collection, Mapping, Sequence

from ..errors import LabelStudioError
from ..labelstudio.config import LabelConfig
from ..state import ProjectState
from ..versions import generation_version
from . import stream, writeback

log = logging.getLogger(__name__)

#: the prediction id recorded for a /predict answer: Label Studio stores it unless the
#: request timed out, so the next write-back asks Label Studio whether it holds one
PROVISIONAL = -1


class ScoresWriter:
    """Writes one backend's orders to Label Studio as prediction scores.

    Args:
        engine: the engine whose project state, record of written scores, counters,
            explanations, score direction and Label Studio client it uses.
    """

    def __init__(self, engine) -> None:
        self.settings = engine.settings
        self.store = engine.store
        self.coord = engine.coord
        self._engine = engine

    def patch_budget(self, n_tasks: int) -> int:
        """The most PATCHes a re-rank of ``n_tasks`` tasks makes before it bumps to a new
        generation instead: PATCH_LIMIT, or BUMP_SHARE of the tasks when that is more. A
        PATCH costs about 45 ms against a real server, a bump about 1 ms per task to import
        and 4.5 ms per task to delete afterwards, so at a tenth of the tasks the two cost
        about the same; below that, an import that nudges many tasks is cheaper patched."""
        return max(self.settings.patch_limit, int(self.settings.bump_share * n_tasks))

    def write_plan(self, order: list[int], written: Mapping[int, tuple[float, int | None]],
                   patch_budget: int | None = None) -> writeback.WritePlan:
        """The writes that make Label Studio follow ``order`` (label-first first): the first
        EXACT_HEAD tasks exact, the rest within PLACE_TOLERANCE (see ``engine/writeback.py``)."""
        s = self.settings
        budget = self.patch_budget(len(order)) if patch_budget is None else patch_budget
        return writeback.plan(self._engine.ranker.score_order(order), written, budget, exact_head=s.exact_head,
                              tolerance=s.place_tolerance, head_last=s.scores_ascending)

    def write_order(self, pid: int, order: list[int]) -> dict[str, Any]:
        """Make Label Studio's tab follow ``order`` (label-first first) with the fewest writes.

        Called with the project lock held (``Engine.rerank``); benchmarks call it with
        an order of their own. Afterwards the tasks mined again since the last write get
        their new explanation (:meth:`rewrite_stale_explanations`).
        """
        client = self._engine.label_studio()
        started = time.perf_counter()
        state = self._engine.project(pid)
        if not order:
            return {"project": pid, "tasks": 0}
        # read before any explanation is computed: a task marked while this write runs keeps its mark
        stale = self.store.stale_explanations(pid)
        tab_checked = state.view_id is None
        if tab_checked:
            # the tab first, so it is there when the first scores land
            self._ensure_tab(pid, state)
        version = state.live_version
        written = self.store.written(pid, version)
        recovering = state.dirty == version
        if recovering:
            written = self._reconcile(pid, version, written)
        held: dict[int, int] | None = None  # Label Studio's predictions of ``version``, once read
        if not recovering and any(p == PROVISIONAL for _, p in written.values()):
            held = self._held(pid, version)
            written = self._confirm_answers(pid, version, written, held)
        plan = self.write_plan(order, written)
        # Failed tasks holding a prediction (mined once, failing now) go to the end of the
        # queue; so many that PATCHes would cost more than a bump make it one: a bump writes
        # no prediction for them, and Label Studio sorts those last.
        ends = self._ended(pid, order, written)
        if ends and not plan.bump and len(plan.patches) + len(ends) > self.patch_budget(len(order)):
            plan = writeback.bump(self._engine.ranker.score_order(order), self.settings.scores_ascending)
        if plan.bump:
            ends = {}
        # head first: while the PATCHes go out one by one, the tasks served next are right soonest
        place = {t: i for i, t in enumerate(plan.served)}
        patches = {**dict(sorted(plan.patches.items(), key=lambda item: place.get(item[0], len(place)))), **ends}
        old_version = None
        # The write that did not finish may have been a bump: Label Studio may still sort by
        # the generation before it, and nothing has scheduled that generation's deletion.
        leftover = ([self._generation_version(state, state.generation - 1)]
                    if recovering and state.generation > 0 else [])
        if plan.bump:
            old_version = version
            state.generation += 1
            version = state.live_version
            # recorded before the import: a crash must never reuse the old generation's records
            self.store.update_project(pid, generation=state.generation, dirty=version)
        elif plan.imports or patches:
            self.store.update_project(pid, dirty=version)
        config = self._engine.config(state)
        imports = dict(plan.imports)
        if patches:
            ids = {t: p for t, (_, p) in written.items() if p is not None and p != PROVISIONAL}
            if any(t not in ids for t in patches):
                held = self._held(pid, version) if held is None else held
                ids = {**held, **ids}
            # A task believed written whose prediction Label Studio lacks (a /predict answer
            # it never stored, say) gets one imported instead of a PATCH of nothing.
            imports.update({t: s for t, s in patches.items() if t not in ids})
            patches = {t: s for t, s in patches.items() if t in ids}
        if imports:
            client.import_predictions(pid, self._predictions(pid, config, imports, version))
        if patches:
            client.update_prediction_scores({ids[t]: s for t, s in patches.items()})
        changes = {t: (s, None) for t, s in {**imports, **patches}.items()}
        self.store.set_written(pid, version, changes, replace=plan.bump)
        if plan.bump or imports or (recovering and written):
            # a bump switches the whole order at once; the old generation is deleted afterwards
            client.set_model_version(pid, version)
            if not written and not tab_checked:
                # the first write of a version (changed settings, perhaps the score direction):
                # the tab may hold the backend's own ordering of the other direction, or be gone
                self._ensure_tab(pid, state)
        if plan.bump or imports or patches or recovering:
            # only now: a write (or switch) that failed must be checked and finished by the next try
            self.store.update_project(pid, dirty=None)
        rewritten = self.rewrite_stale_explanations(pid, config, version, stale, explained=imports)
        retired = [v for v in (state.retired or "").split(",") if v and v != version] + leftover
        if state.retired:
            self.store.update_project(pid, retired=None)  # their clean-up jobs are queued by the caller
        self.coord.incr("reranks")
        report = {"project": pid, "tasks": len(order), "version": version, "bump": plan.bump,
                  "imported": len(imports), "patched": len(patches), "ended": len(ends), "kept": plan.kept,
                  "old_version": old_version, "retired": retired, "explanations_rewritten": rewritten,
                  "seconds": round(time.perf_counter() - started, 3)}
        log.info("re-rank %s", report)
        return report

    def retire_version(self, pid: int, version: str) -> dict[str, int]:
        """Delete an old version's (or generation's) predictions, then check the prediction counts
        Label Studio caches per task (the Data Manager's "Predictions" column and footer) and
        have it recount the tasks whose count is not what it holds.

        Deleting a version makes Label Studio take each deleted prediction off its task's count,
        so the counts are normally right; they have been seen stale after a generation switch
        (two predictions a task shown, one held), so the clean-up makes sure. Costs one listing
        of the tasks and one of the predictions, after a generation switch only.
        """
        client = self._engine.label_studio()
        deleted = client.delete_model_version(pid, version)
        scratch = self.recount_version
        client.delete_model_version(pid, scratch)  # what a recount that did not finish left
        held: dict[int, int] = {}
        for p in client.list_predictions(pid):
            if p["task"] is not None:
                held[p["task"]] = held.get(p["task"], 0) + 1
        stale = sorted(t for t, n in client.cached_prediction_counts(pid).items() if n != held.get(t, 0))
        if stale:
            try:
                client.recount_predictions(pid, stale, scratch)
            except LabelStudioError as exc:
                if exc.status != 400:  # 400: a task deleted meanwhile; the next clean-up checks again
                    raise
                log.warning("project %s: cannot have Label Studio recount its prediction counts: %s", pid, exc)
            else:
                log.warning("project %s: Label Studio's cached prediction counts were wrong for %d tasks (the Data "
                            "Manager showed predictions that are gone); had them recounted", pid, len(stale))
                self.coord.incr("prediction_counts_refreshed")
        return {"deleted": deleted, "recounted": len(stale)}

    @property
    def recount_version(self) -> str:
        """The model version of the empty predictions a recount imports and deletes at once
        (``LabelStudioClient.recount_predictions``); it starts with the prefix, so it is never
        read as another model's predictions."""
        return f"{self.settings.model_version_prefix}-recount"

    def _ensure_tab(self, pid: int, state: ProjectState) -> None:
        """The "Long-tail first" tab: ordered to put the label-first task on top, showing only the
        tasks not labeled yet (stream.UNFINISHED_ONLY), the label config's data fields and the
        score, Label Studio's housekeeping columns hidden (set once: an admin's later choices are
        kept; see LabelStudioClient.ensure_view)."""
        client = self._engine.label_studio()
        view_id = client.ensure_view(
            pid, self.settings.view_title, stream.tab_ordering(self.settings),
            hidden_columns=lambda: stream.hidden_columns(client.columns(pid),
                                                         stream.config_fields(state.label_config)),
            replace=stream.stale_orderings(self.settings), filters=stream.tab_filters())
        if view_id != state.view_id:
            state.view_id = view_id
            self.store.update_project(pid, view_id=view_id)

    def _ended(self, pid: int, order: list[int], written: dict[int, tuple[float, int | None]]) -> dict[int, float]:
        """Failed tasks whose prediction is not yet at the end of the queue -> the end score."""
        placed = set(order)
        out = {t for t, v in written.items() if t not in placed and v[0] != self._engine.ranker.end_score}
        if not out:
            return {}
        records = self.store.get_tasks(pid, sorted(out))
        return {t: self._engine.ranker.end_score for t in sorted(out) if t in records and records[t].status == "failed"}

    @staticmethod
    def _generation_version(state: ProjectState, generation: int) -> str | None:
        return generation_version(state.base_version, generation)

    def _reconcile(self, pid: int, version: str, written: dict[int, tuple[float, int | None]]
                   ) -> dict[int, tuple[float, int | None]]:
        """After a write that did not finish (a crash, a timeout), ask Label Studio what it holds.

        Every prediction of ``version`` that Label Studio has becomes known, so the
        next plan neither imports a second one for a task nor forgets to move it; a
        task holding two (a retried request that had in fact landed) keeps the first.
        """
        client = self._engine.label_studio()
        found: dict[int, tuple[float, int | None]] = {}
        extra: list[int] = []
        for p in sorted(client.list_predictions(pid, version), key=lambda p: int(p["id"])):
            task = int(p["task"])
            if task in found:
                extra.append(int(p["id"]))
            else:
                found[task] = (float(p.get("score") or 0.0), int(p["id"]))
        if extra:
            client.delete_predictions(extra)
        log.warning("project %s: reconciled %d predictions of %s with Label Studio (%d duplicates removed)",
                    pid, len(found), version, len(extra))
        self.store.set_written(pid, version, found, replace=True)  # the caller clears ``dirty`` once done
        return found

    def _held(self, pid: int, version: str) -> dict[int, int]:
        """task -> the id of its prediction of ``version`` in Label Studio (the first listed)."""
        held: dict[int, int] = {}
        for p in self._engine.label_studio().list_predictions(pid, version):
            held.setdefault(int(p["task"]), int(p["id"]))
        return held

    def _confirm_answers(self, pid: int, version: str, written: dict[int, tuple[float, int | None]],
                         held: dict[int, int]) -> dict[int, tuple[float, int | None]]:
        """Which /predict answers Label Studio stored (``held``: what it holds; it drops an
        answer whose request timed out, while the first images are mined, say). Stored ones get
        their prediction id; the others are planned as new, so they are imported instead of
        kept without a prediction."""
        answers = [t for t, (_, p) in written.items() if p == PROVISIONAL]
        stored = {t: (written[t][0], held[t]) for t in answers if t in held}
        if stored:
            self.store.set_written(pid, version, stored)
        lost = [t for t in answers if t not in held]
        if lost:
            log.warning("project %s: Label Studio holds no prediction for %d /predict answers (their request "
                        "timed out?); writing them now", pid, len(lost))
        return {**{t: v for t, v in written.items() if v[1] != PROVISIONAL}, **stored}

    def _predictions(self, pid: int, config: LabelConfig, scores: dict[int, float], version: str) -> list[dict]:
        results = self._engine.explainer.explanations(pid, config, list(scores))
        return [{"task": t, "score": float(s), "model_version": version, "result": results.get(t, [])}
                for t, s in scores.items()]

    def rewrite_stale_explanations(self, pid: int, config: LabelConfig, version: str, stale: Sequence[int],
                                   explained: Collection[int] = ()) -> int:
        """Give the tasks mined again (``stale``, as ``Store.stale_explanations`` held them before
        this write began) the explanation and box of what they hold now, and clear their marks.

        A write-back only moves the scores of tasks that already have a prediction, so without
        this their prediction would keep the old TextArea and no box. Mining only marks them:
        a write to Label Studio belongs to the write lane, under the project lock (held by
        the caller). A task needs no rewrite when this write imported its prediction
        (``explained``: with its full result, computed after ``stale`` was read; a generation
        switch imports them all) or when it has no prediction (it gets its full result when
        first written). Returns how many predictions were rewritten. A failed rewrite is
        logged, never raised (the scores are written); its tasks stay marked for the next
        write-back.
        """
        if not stale:
            return 0
        written = self.store.written(pid, version)
        due = [t for t in stale if t in written and t not in explained]
        rewritten = self._rewrite_explanations(pid, config, version, written, due)
        self.store.clear_stale_explanations(pid, stale if rewritten is not None else set(stale) - set(due))
        if rewritten:
            self.coord.incr("explanations_rewritten", rewritten)
        return rewritten or 0

    def _rewrite_explanations(self, pid: int, config: LabelConfig, version: str,
                              written: Mapping[int, tuple[float, int | None]], task_ids: Sequence[int]) -> int | None:
        """PATCH the result of each task's prediction of ``version`` (``written``: the record of
        them); returns how many were rewritten, or None when Label Studio failed."""
        if not task_ids:
            return 0
        held = {t: written[t][1] for t in task_ids}
        try:
            if any(p in (None, PROVISIONAL) for p in held.values()):
                # a bulk import records no prediction ids: ask Label Studio which it holds, once
                # (every id learnt is recorded, so the next rewrite asks no more)
                ids = self._held(pid, version)
                learnt = {t: (v[0], ids[t]) for t, v in written.items() if v[1] in (None, PROVISIONAL) and t in ids}
                if learnt:
                    self.store.set_written(pid, version, learnt)
                held = {t: p if p not in (None, PROVISIONAL) else ids.get(t) for t, p in held.items()}
                held = {t: p for t, p in held.items() if p is not None}
            results = self._engine.explainer.explanations(pid, config, list(held))
            self._engine.label_studio().update_prediction_results({p: results.get(t, []) for t, p in held.items()})
        except LabelStudioError as exc:
            log.warning("project %s: cannot rewrite the explanations of %d tasks mined again (kept for the next "
                        "write-back): %s", pid, len(task_ids), exc)
            return None
        return len(held)
