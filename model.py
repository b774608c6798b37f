"""The Label Studio-facing model: VLMine in the shape of label-studio-ml's base class.

``setup`` reports the live model version, ``predict`` answers Label Studio's
/predict (tasks it asks for get their long-tail priority as the prediction
score), and ``fit`` takes webhook events: new tasks are queued for mining,
deleted ones leave the index, a changed label config is remembered, and
START_TRAINING (the model card's "Start Training") re-reads the project and re-ranks.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from backend.engine import Engine
from backend.engine.object_mining import task_payload
from backend.jobs import JobQueue
from backend.jobs.runner import ensure_synced
from backend.server.mlbase import LabelStudioMLBase, parse_project_id

log = logging.getLogger(__name__)


class VLMineModel(LabelStudioMLBase):
    engine: ClassVar[Engine]
    queue: ClassVar[JobQueue]

    def setup(self) -> None:
        pid = self.project
        state = self.engine.project(pid, self.label_config)
        self.model_version = state.live_version or self.engine.base_version
        ensure_synced(self.engine, self.queue, pid)

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs: Any) -> list[dict]:
        if not self.queue.mines_in_process:
            # RQ mode: the GPU workers mine what is unknown; the web process never loads the VLM
            unknown = set(self.engine.tasks.unknown(self.project, [t["id"] for t in tasks]))
            if unknown:
                self.queue.mine_and_wait(self.project, [t for t in tasks if int(t["id"]) in unknown],
                                         self.label_config, timeout=self.engine.settings.predict_wait)
        predictions = self.engine.predict(self.project, tasks, self.label_config,
                                          mine_missing=self.queue.mines_in_process)
        if self.engine.label_studio_or_none():
            self.queue.submit_rerank(self.project)
        return predictions

    def fit(self, event: str, data: dict, **kwargs: Any) -> dict[str, Any]:
        pid = self.project
        project = data.get("project")
        if isinstance(project, dict):
            self.engine.set_total(pid, project.get("task_number"))
            if self.engine.stream.differs(pid, project):
                # prelabeling turned off, another model chosen, the sampling changed: put it back
                self.engine.stream.check_soon(pid)
        if event in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            # the backend's own lines leave the annotation; what an annotator wrote stays
            checking = self.engine.annotation_cleaner.submit(pid, data.get("annotation"))
            return {"status": "ok" if checking else "ignored", "event": event, "explanation_check": checking}
        if event == "TASKS_CREATED":
            # with object mining the boxes' source travels too, when Label Studio sent it
            tasks = [{**task_payload(t, self.engine.settings), "id": int(t["id"])} for t in data.get("tasks") or []]
            jobs = self.queue.submit_tasks(pid, tasks, self.label_config)
            return {"status": "queued", "tasks": len(tasks), "jobs": jobs}
        if event == "TASKS_DELETED":
            ids = [int(t["id"]) for t in data.get("tasks") or []]
            self.queue.submit_delete(pid, ids)
            return {"status": "queued", "deleted": len(ids)}
        if event == "PROJECT_UPDATED" and self.label_config:
            return self._label_config_changed(pid, kwargs.get("previous_label_config"))
        if event == "START_TRAINING":
            # Nothing to train: the admin's way to say "re-rank now". Every task is read
            # again (tasks the webhooks missed are mined; other models' latest predictions
            # give the uncertainty) and the order is written.
            if not self.engine.label_studio_or_none():
                return {"status": "ignored", "event": event,
                        "reason": "no Label Studio connection yet (LABEL_STUDIO_URL, or a /setup call)"}
            log.info("project %s: START_TRAINING: reading every task again, then re-ranking", pid)
            self.queue.submit_sync(pid)
            return {"status": "queued", "event": event, "sync": True}
        return {"status": "ignored", "event": event}

    def _label_config_changed(self, pid: int, old: str | None) -> dict[str, Any]:
        """Whether a new label config mines another field (``old``: the config known before
        this request). The work is done already: ``setup()`` passed the new config to the
        engine, which dropped the index and queued a sync when the field changed."""
        new_source = self.engine.source_of(self.label_config)
        old_source = self.engine.source_of(old)
        return {"status": "ok", "remine": old_source is None or old_source != new_source}

__all__ = ["VLMineModel", "parse_project_id"]
