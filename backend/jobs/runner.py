"""Background work: the job kinds, what each does, and the retry policy's use.

Six kinds of job, each idempotent, each taking plain JSON:

- ``mine``:    {"tasks": [...], "label_config": str|None} -> describe and index a chunk
               (no write to Label Studio: tasks mined again are marked, and the re-rank it
               queues rewrites their explanations)
- ``delete``:  {"task_ids": [...]}                          -> drop tasks from the index
- ``sync``:    {}                                           -> mine every task of the project
               that the index lacks, failed before or was edited (first connection,
               changed settings, start-up, Start Training); only reads Label Studio, and
               queues a re-rank and a ``sweep_annotations`` for what it must write there
- ``rerank``:  {}                                           -> rank and write back, then rewrite
               the explanations of the tasks mined again (debounced: one waiting re-rank per project)
- ``cleanup``: {"version": str}                             -> delete an old version's predictions
               (and have Label Studio recount the tasks whose cached count is wrong)
- ``sweep_annotations``: {}                                 -> take the backend's explanation out
               of the annotations whose webhook was lost (one waiting sweep per project)

The kinds in ``MINE_LANE`` never write to Label Studio; every write there runs in
``WRITE_LANE`` (the embedded queue's second thread, RQ's write queue), so workers serving
the mining lane alone need no write access.

Two runners take them: :class:`backend.jobs.embedded.EmbeddedQueue` (no Redis: threads of
the server process) and :class:`backend.jobs.rq.RQQueue` (RQ workers). Both run
:func:`run_job` and retry what :func:`backend.errors.retryable` says may heal.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

from ..engine.engine import Engine
from ..engine.object_mining import task_payload

if TYPE_CHECKING:
    from . import JobQueue

log = logging.getLogger(__name__)

MINE_LANE = ("mine", "delete", "sync")
WRITE_LANE = ("rerank", "cleanup", "sweep_annotations")


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def ensure_synced(engine: Engine, queue: JobQueue, pid: int) -> bool:
    """Queue a sync when the project's tasks were never mined under the current settings.

    Called on every /setup (first sight of a project) and at start-up for every known
    project (settings changed while the backend was down). Needs a Label Studio
    connection to read the tasks; returns whether a sync was queued.
    """
    state = engine.project(pid)
    if not state.label_config or state.synced == state.base_version or engine.label_studio_or_none() is None:
        return False
    engine.mark_synced(pid)
    queue.submit_sync(pid)
    return True


def catch_up(engine: Engine, queue: JobQueue, pid: int) -> str | None:
    """At start-up: queue a sync of a known project; returns why, or None when none was queued.

    A changed setting re-mines (see :func:`ensure_synced`). Otherwise, with SYNC_ON_START,
    the project is read again anyway: webhooks sent while the backend was down are lost,
    so tasks imported meanwhile are mined and tasks deleted meanwhile forgotten.
    """
    if ensure_synced(engine, queue, pid):
        return "settings changed since the last run"
    state = engine.project(pid)
    if engine.settings.sync_on_start and state.label_config and engine.label_studio_or_none() is not None:
        queue.submit_sync(pid)
        return "catching up on webhooks missed while the backend was down"
    return None


def run_job(engine: Engine, queue: JobQueue, kind: str, pid: int, payload: dict[str, Any]) -> Any:
    """Run one job; shared by the embedded runner and the RQ workers."""
    if kind == "mine":
        engine.tasks.mine(pid, payload["tasks"], payload.get("label_config"))
        queue.submit_rerank(pid)
    elif kind == "delete":
        engine.tasks.delete(pid, payload["task_ids"])
        queue.submit_rerank(pid)
    elif kind == "sync":
        known = engine.tasks.known(pid)  # before the listing: tasks mined while it runs are not "deleted"
        tasks = list(engine.label_studio().iter_tasks(pid))
        engine.set_total(pid, len(tasks))
        engine.tasks.forget_deleted(pid, [t["id"] for t in tasks], known=known)  # deleted while nobody told us
        # new, failed (tried again) and edited tasks
        todo = (set(engine.tasks.unknown(pid, [t["id"] for t in tasks], retry_failed=True))
                | set(engine.tasks.changed(pid, tasks)))
        # the data (and with object mining the boxes' source): nothing else of what Label Studio listed
        queue.submit_tasks(pid, [task_payload(t, engine.settings) for t in tasks if t["id"] in todo])
        queue.submit_rerank(pid)
        if engine.annotation_cleaner.enabled():
            queue.submit_annotation_sweep(pid)  # annotations whose webhook was lost
    elif kind == "rerank":
        report = engine.rerank(pid)
        for version in [report.get("old_version"), *report.get("retired", [])]:
            if version:
                queue.submit_cleanup(pid, version)
        return report
    elif kind == "cleanup":
        return engine.writer.retire_version(pid, payload["version"])
    elif kind == "sweep_annotations":
        return engine.annotation_cleaner.sweep(pid)
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    return None
