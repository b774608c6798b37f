"""Background work: the job functions and the embedded (no Redis) runner.

Five kinds of job, each idempotent, each taking plain JSON:

- ``mine``:    {"tasks": [...], "label_config": str|None} -> describe and index a chunk
- ``delete``:  {"task_ids": [...]}                          -> drop tasks from the index
- ``sync``:    {}                                           -> mine every task of the project
               that the index lacks, failed before or was edited (first connection,
               changed settings, start-up, Start Training)
- ``rerank``:  {}                                           -> rank and write back (debounced:
               one waiting re-rank per project)
- ``cleanup``: {"version": str}                             -> delete an old version's predictions

Without REDIS_URL they are kept in the SQLite store and run by two threads of
the server process: one lane for mining (the VLM is used by one thread at a
time), one for Label Studio writes, so a long delete never stalls mining. Jobs
survive a restart: a job left running by a dead process is queued again.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Sequence

from .engine import Engine, EngineError
from .labelconfig import LabelConfigError

log = logging.getLogger(__name__)

MINE_LANE = ("mine", "delete", "sync")
WRITE_LANE = ("rerank", "cleanup")
PERMANENT = (EngineError, LabelConfigError, ValueError, KeyError, TypeError)


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class EmbeddedQueue:
    """The job queue without Redis: rows in the SQLite store, threads in this process."""

    def __init__(self, engine: Engine, poll_interval: float = 0.2) -> None:
        self.engine = engine
        self.store = engine.store
        self.settings = engine.settings
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self.failed = 0

    # ---------------------------------------------------------------- submitting
    def submit_tasks(self, pid: int, tasks: Sequence[dict], label_config: str | None = None) -> int:
        parts = chunks(list(tasks), self.settings.batch_size)
        self.store.enqueue_many("mine", pid, [{"tasks": list(p), "label_config": label_config} for p in parts])
        self._wake.set()
        return len(parts)

    def submit_delete(self, pid: int, task_ids: Sequence[int]) -> None:
        self.store.enqueue("delete", pid, {"task_ids": [int(t) for t in task_ids]})
        self._wake.set()

    def submit_sync(self, pid: int) -> None:
        self.store.enqueue("sync", pid, {}, unique=True)
        self._wake.set()

    def submit_rerank(self, pid: int, delay: float | None = None) -> None:
        delay = self.settings.rerank_delay if delay is None else delay
        self.store.enqueue("rerank", pid, {}, delay=delay, unique=True)
        self._wake.set()

    def submit_cleanup(self, pid: int, version: str) -> None:
        self.store.enqueue("cleanup", pid, {"version": version})
        self._wake.set()

    def counts(self) -> dict[str, int]:
        return self.store.job_counts()

    def failed_jobs(self, limit: int = 10) -> list[dict[str, Any]]:
        return self.store.failed_jobs(limit)

    # ---------------------------------------------------------------- running
    def start(self) -> None:
        if self._threads:
            return
        requeued = self.store.requeue_running()
        if requeued:
            log.info("requeued %d jobs left running by an earlier process", requeued)
        for name, kinds in (("mine", MINE_LANE), ("write", WRITE_LANE)):
            t = threading.Thread(target=self._loop, args=(kinds,), name=f"vlmine-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def run_pending(self, kinds: Sequence[str] = MINE_LANE + WRITE_LANE) -> int:
        """Run every runnable job now, in this thread (tests and the command line)."""
        done = 0
        while (job := self.store.claim(kinds)) is not None:
            self._run(job)
            done += 1
        return done

    def _loop(self, kinds: Sequence[str]) -> None:
        while not self._stop.is_set():
            job = None
            try:
                job = self.store.claim(kinds)
            except Exception:  # the store is busy or broken: log, wait, try again
                log.exception("claiming a job failed")
            if job is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception:  # recording the outcome failed (the store is busy): the lane carries on
                log.exception("job %s %s (project %s): recording its outcome failed; it is run again "
                              "at the next start", job.id, job.kind, job.project)
                self._stop.wait(self.poll_interval)

    def _run(self, job) -> None:
        try:
            run_job(self.engine, self, job.kind, job.project, job.payload)
        except Exception as exc:
            self.failed += 1
            reason = f"{type(exc).__name__}: {exc}"
            # JOB_RETRIES retries after the first attempt, as RQ's Retry(max=JOB_RETRIES) does
            permanent = isinstance(exc, PERMANENT) or job.attempts > self.settings.job_retries
            retry_in = None if permanent else float(2 ** job.attempts)
            log.error("job %s %s (project %s) failed, attempt %d%s: %s", job.id, job.kind, job.project,
                      job.attempts, "" if permanent else f", retrying in {retry_in:.0f}s", reason)
            log.debug("%s", traceback.format_exc())
            self.engine.coord.set_error(f"job:{job.kind}", f"project {job.project}: {reason}")
            self.store.fail(job.id, reason, retry_in)
        else:
            self.processed += 1
            self.store.finish(job.id)


def ensure_synced(engine: Engine, queue: Any, pid: int) -> bool:
    """Queue a sync when the project's tasks were never mined under the current settings.

    Called on every /setup (first sight of a project) and at start-up for every known
    project (settings changed while the backend was down). Needs a Label Studio
    connection to read the tasks; returns whether a sync was queued.
    """
    state = engine.project(pid)
    if not state.label_config or state.synced == state.base_version or engine.label_studio_or_none() is None:
        return False
    engine.store.update_project(pid, synced=state.base_version)
    queue.submit_sync(pid)
    return True


def catch_up(engine: Engine, queue: Any, pid: int) -> str | None:
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


def run_job(engine: Engine, queue: Any, kind: str, pid: int, payload: dict[str, Any]) -> Any:
    """Run one job; shared by the embedded runner and the RQ workers."""
    if kind == "mine":
        engine.mine_tasks(pid, payload["tasks"], payload.get("label_config"))
        queue.submit_rerank(pid)
    elif kind == "delete":
        engine.delete_tasks(pid, payload["task_ids"])
        queue.submit_rerank(pid)
    elif kind == "sync":
        known = engine.known_tasks(pid)  # before the listing: tasks mined while it runs are not "deleted"
        tasks = list(engine.label_studio().iter_tasks(pid))
        engine.set_total(pid, len(tasks))
        engine.forget_deleted(pid, [t["id"] for t in tasks], known=known)  # deleted while nobody told us
        # new, failed (tried again) and edited tasks
        todo = set(engine.unknown(pid, [t["id"] for t in tasks], retry_failed=True)) | set(engine.changed(pid, tasks))
        queue.submit_tasks(pid, [{"id": t["id"], "data": t.get("data", {})} for t in tasks if t["id"] in todo])
        queue.submit_rerank(pid)
        engine.annotation_cleaner.sweep(pid)  # annotations whose webhook was lost
    elif kind == "rerank":
        report = engine.rerank(pid)
        for version in [report.get("old_version"), *report.get("retired", [])]:
            if version:
                queue.submit_cleanup(pid, version)
        return report
    elif kind == "cleanup":
        engine.label_studio().delete_model_version(pid, payload["version"])
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    return None
