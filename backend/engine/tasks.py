"""A project's tasks as the backend holds them: mining them, and keeping the set in step.

:class:`ProjectTasks` describes and indexes tasks (the keyword index, the task records, the
object scope), notices tasks whose data changed or that Label Studio no longer has, and
forgets them. It writes the backend's own state only, never Label Studio (it reads the boxes
of tasks that came without them, and the listings that find deleted tasks): what reaches
Label Studio goes through ``backend.engine.scores_writer`` on the write lane. A task mined
again with object mining is marked in the store (``Store.mark_explanations_stale``); the next
write-back rewrites its prediction's explanation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Iterable, Sequence

from ..errors import LabelStudioError
from ..objects import forget_tasks
from ..pipeline.miner import MinedTask
from ..state import TaskRecord
from . import object_mining
from . import ranking_signals

log = logging.getLogger(__name__)


def data_digest(data: Any) -> str:
    """A short fingerprint of a task's data, to notice edits made in Label Studio."""
    raw = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class ProjectTasks:
    """The tasks of one backend's projects: what is mined, what changed, what is gone.

    Args:
        engine: the engine whose settings, state, miner, scopes, project state and Label
            Studio client it uses.
    """

    def __init__(self, engine) -> None:
        self.settings = engine.settings
        self.store = engine.store
        self.index = engine.index
        self.coord = engine.coord
        self._engine = engine

    def mine(self, pid: int, tasks: Sequence[dict], label_config: str | None = None) -> list[MinedTask]:
        """Describe and index a batch of tasks (idempotent).

        ``label_config``: the config the tasks were queued under, used only for a project
        that has none yet; a queued job must never put back a config changed since.
        """
        state = self._engine.project(pid)
        if not state.label_config and label_config:
            state = self._engine.project(pid, label_config)
        source = self._engine.source(state)
        if self._engine.miner.mines_objects(source):
            tasks = self._with_boxes(pid, tasks)
        mined = self._engine.miner.describe(tasks, source)
        if self._engine.source_of(self._engine.project(pid).label_config) != source:
            # the label config changed to another field while this batch was described: its
            # keywords are of the old field; the sync that the change queued mines these tasks
            log.info("project %s: the field to mine changed while %d tasks were mined; left to the sync",
                     pid, len(tasks))
            return mined
        fields = ranking_signals.field_names(self.settings)
        if fields:
            by_id = {int(t["id"]): t for t in tasks}
            for m in mined:
                if m.ok:
                    m.signals = ranking_signals.field_signals(by_id[m.task_id], fields)
        with_objects = self._engine.miner.mines_objects(source)
        if with_objects:
            for m in mined:
                uncertainty = object_mining.uncertainty_of(m) if m.ok else None
                if uncertainty is not None:
                    m.signals[object_mining.OBJECT_UNCERTAINTY] = uncertainty
        ok = {m.task_id: m.keywords for m in mined if m.ok}
        failed = [m.task_id for m in mined if not m.ok]
        if ok:
            self.index.upsert_many(self._engine.scope(pid), ok)
        if failed:
            self.index.delete(self._engine.scope(pid), failed)
        if with_objects:
            object_mining.index_mined(self.index, self._engine.object_scope(pid), mined,
                                      self.settings.object_with_scene)
        digests = {int(t["id"]): data_digest(t.get("data")) for t in tasks}
        self.store.save_tasks(pid, [
            TaskRecord(m.task_id, self._engine.mining_hash, "mined" if m.ok else "failed",
                       m.description, m.error, m.signals, digests.get(m.task_id),
                       object_mining.record_objects(m) if with_objects and m.ok else None) for m in mined
        ])
        self.coord.incr("tasks_mined", len(ok))
        self.coord.incr("tasks_failed", len(failed))
        if failed:
            first = next(m for m in mined if not m.ok)
            self.coord.set_error("task", f"project {pid} task {first.task_id}: {first.error}")
        if with_objects:
            self.keep_thumbnails(pid, [m for m in mined if m.ok and m.thumbnails])
            # their predictions may still hold the explanation of what they held before: the
            # re-rank that follows every mining job rewrites them (ScoresWriter.write_order)
            self.store.mark_explanations_stale(pid, [m.task_id for m in mined if m.ok])
            self.coord.incr("objects_mined", sum(sum(k is not None for k in m.object_keywords) for m in mined if m.ok))
            count, message = object_mining.failures_message(pid, mined)
            if message:
                # a broken or out-of-bounds box fails alone: its task stays ranked, /metrics says why
                self.coord.incr("objects_failed", count)
                self.coord.set_error("object", message)
        counts = self.store.task_counts(pid)
        total = self.store.get_project(pid).total
        log.info("project %s: mined %d tasks, %d failed; progress %d mined, %d failed of %s", pid, len(ok),
                 len(failed), counts.get("mined", 0), counts.get("failed", 0), total if total is not None else "?")
        return mined

    def keep_thumbnails(self, pid: int, mined: Sequence[MinedTask]) -> None:
        """Store each task's thumbnail of its rarest object, as the object scope ranks it right
        after this batch was indexed (``Explainer.rarest_objects``, the report's own choice), with its slot:
        the report shows it only while that slot is still the task's rarest. One per task keeps
        the store small (docs/objects.md, "Report"). Tasks whose image was not decoded (every
        crop cached) bring no thumbnails and keep the one stored before."""
        if not mined:
            return
        rarest = self._engine.explainer.rarest_objects(pid, [m.task_id for m in mined])
        keep = {m.task_id: (rarest[m.task_id].slot, m.thumbnails[rarest[m.task_id].slot]) for m in mined
                if m.task_id in rarest and rarest[m.task_id].slot in m.thumbnails}
        self.store.put_thumbnails(pid, keep)

    def _with_boxes(self, pid: int, tasks: Sequence[dict]) -> list[dict]:
        """The tasks with the entries their boxes come from (OBJECT_SOURCE), read back from Label
        Studio for those that came without (one listing for the batch): its TASKS_CREATED webhook
        carries no predictions (they are no field of the task), so a task imported with its
        detector's boxes would otherwise be mined without objects until the next sync."""
        key = self.settings.object_source
        missing = [t for t in tasks if not isinstance(t.get(key), list)]
        client = self._engine.label_studio_or_none() if missing else None
        if client is None:
            return list(tasks)
        try:
            listed = client.tasks_by_id(pid, [int(t["id"]) for t in missing])
        except LabelStudioError as exc:  # no boxes this time: the next sync sees them (digest)
            log.warning("project %s: cannot read the %s of %d tasks: %s", pid, key, len(missing), exc)
            return list(tasks)
        read = {int(t["id"]): t[key] for t in listed if isinstance(t.get(key), list)}
        return [{**t, key: read[int(t["id"])]} if int(t["id"]) in read else t for t in tasks]

    def delete(self, pid: int, task_ids: Iterable[int]) -> int:
        ids = [int(t) for t in task_ids]
        removed = self.index.delete(self._engine.scope(pid), ids)
        if self.settings.object_mining and ids:
            forget_tasks(self.index, self._engine.object_scope(pid), ids)
        self.store.delete_tasks(pid, ids)
        return removed

    def known(self, pid: int) -> set[int]:
        """Every task the backend holds anything of (a record or keywords)."""
        indexed = self.index.arrays(self._engine.scope(pid)).task_ids.tolist()
        return set(self.store.get_tasks(pid)) | {int(t) for t in indexed}

    def forget_deleted(self, pid: int, existing: Iterable[int] | None = None,
                       known: set[int] | None = None) -> list[int]:
        """Forget the tasks Label Studio no longer has; returns their ids.

        TASKS_DELETED reaches the backend only while it is up; a task deleted meanwhile
        would stay in the index and make every bulk write of the project fail (Label
        Studio refuses the whole import for one unknown task). ``existing``: the ids
        Label Studio holds, when the caller has just read them; ``known``: what the
        backend held *before* that listing began (:meth:`known`), so a task imported
        and mined while the listing ran is not taken for a deleted one.
        """
        if known is None:
            known = self.known(pid)
        present = set(existing) if existing is not None else self._engine.label_studio().task_ids(pid)
        candidates = known - present
        if candidates:
            # Label Studio lists by page number: a deletion during the listing shifts the
            # pages and one task is never listed. Only a task missing twice is gone.
            candidates -= self._engine.label_studio().task_ids(pid)
        gone = sorted(candidates)
        if gone:
            self.delete(pid, gone)
            log.warning("project %s: %d tasks are no longer in Label Studio (no TASKS_DELETED reached the "
                        "backend); forgotten: %s%s", pid, len(gone), gone[:10], " ..." if len(gone) > 10 else "")
        return gone

    def forget_absent(self, pid: int, present: Iterable[int]) -> list[int]:
        """Forget every task not in ``present``, a complete listing (an offline source: the
        items that left it count in no document frequency); returns their ids."""
        gone = sorted(self.known(pid) - set(present))
        if gone:
            self.delete(pid, gone)
        return gone

    def indexed(self, pid: int, task_ids: Iterable[int]) -> set[int]:
        """Which of ``task_ids`` have keywords in the index (mined under the current settings)."""
        return self.index.contains(self._engine.scope(pid), [int(t) for t in task_ids])

    def record_field_signals(self, pid: int, tasks: Sequence[dict], extra_fields: Sequence[str] = ()) -> int:
        """Record the field signals of ``tasks`` as their data holds them now; returns how many changed.

        Mining records them; a source whose signal values change while its texts and images
        do not (an offline file re-scored by another model) is not mined again, so the
        offline command records them here before it ranks.
        """
        fields = list(dict.fromkeys([*extra_fields, *ranking_signals.field_names(self.settings)]))
        if not fields:
            return 0
        records = self.store.get_tasks(pid, [int(t["id"]) for t in tasks])
        changed = []
        for task in tasks:
            rec = records.get(int(task["id"]))
            if rec is None:
                continue
            values = ranking_signals.field_signals(task, fields)
            if object_mining.OBJECT_UNCERTAINTY in rec.signals:  # recorded when mined, not a field
                values[object_mining.OBJECT_UNCERTAINTY] = rec.signals[object_mining.OBJECT_UNCERTAINTY]
            if values != rec.signals:
                rec.signals = values
                changed.append(rec)
        if changed:
            self.store.save_tasks(pid, changed)
        return len(changed)

    def changed(self, pid: int, tasks: Sequence[dict]) -> list[int]:
        """Known tasks whose data differs from the data they were mined from (edited in Label Studio)."""
        records = self.store.get_tasks(pid, [int(t["id"]) for t in tasks])
        # object mining: the boxes count too (Start Training re-reads the detector's predictions)
        boxes = self.settings.object_mining and self._engine.mines_objects(self.store.get_project(pid))
        out = []
        for task in tasks:
            rec = records.get(int(task["id"]))
            if rec is None:
                continue
            if rec.data_digest and rec.data_digest != data_digest(task.get("data")):
                out.append(int(task["id"]))
            elif boxes and rec.status == "mined" and object_mining.changed_boxes(task, rec.objects,
                                                                               self._engine.miner.object_source):
                out.append(int(task["id"]))
        return out

    def unknown(self, pid: int, task_ids: Iterable[int], retry_failed: bool = False) -> list[int]:
        """The tasks to mine: not in the index, and not failed under the current settings.

        A failure under other settings (or a label config mining another field) counts as
        unknown; ``retry_failed`` (a sync: start-up, Start Training) tries every failed
        task again, so a passing outage (the VLM endpoint, an image host) leaves no task
        at the end of the queue for good.
        """
        ids = [int(t) for t in task_ids]
        known = self.index.contains(self._engine.scope(pid), ids)
        failed = set() if retry_failed else {
            t for t, r in self.store.get_tasks(pid, ids).items()
            if r.status == "failed" and r.mining_hash == self._engine.mining_hash}
        return [t for t in ids if t not in known and t not in failed]
