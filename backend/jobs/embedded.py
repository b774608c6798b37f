"""The job queue without Redis: rows in the SQLite state file, run by threads of this process.

Two lanes: one for mining (the VLM is used by one thread at a time), one for Label
Studio writes, so a long delete never stalls mining. The mining lane writes nothing to Label
Studio: what mining changes there (a task mined again needs its prediction's explanation
rewritten) is marked in the store and written by the re-rank that follows on the write lane,
and a sync queues the sweep of the annotations whose webhook was lost there too. Jobs
survive a restart: a job left running by a dead process is queued again. The job table lives
in the same SQLite file as the project state (``state.sqlite3``, table ``jobs``; see
``backend.state.sqlite_store``).
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Sequence

from ..engine import Engine
from ..errors import retryable
from ..state import JobTable, open_job_table
from .runner import MINE_LANE, WRITE_LANE, chunks, run_job

log = logging.getLogger(__name__)


class EmbeddedQueue:
    """The job queue without Redis: rows in the SQLite store, threads in this process."""

    #: /predict's unknown tasks are mined by the web process itself (see ``JobQueue``)
    mines_in_process = True

    def __init__(self, engine: Engine, jobs: JobTable | None = None, poll_interval: float = 0.2) -> None:
        """``jobs``: the job table (the SQLite state's ``jobs``); opened from the settings when None."""
        self.engine = engine
        self.store = jobs if jobs is not None else open_job_table(engine.settings)
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

    def submit_annotation_sweep(self, pid: int) -> None:
        """At most one waiting sweep per project: a sweep reads every annotated task anyway."""
        self.store.enqueue("sweep_annotations", pid, {}, unique=True)
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
            permanent = not retryable(exc) or job.attempts > self.settings.job_retries
            retry_in = None if permanent else float(2 ** job.attempts)
            log.error("job %s %s (project %s) failed, attempt %d%s: %s", job.id, job.kind, job.project,
                      job.attempts, "" if permanent else f", retrying in {retry_in:.0f}s", reason)
            log.debug("%s", traceback.format_exc())
            self.engine.record_error(f"job:{job.kind}", f"project {job.project}: {reason}")
            self.store.fail(job.id, reason, retry_in)
        else:
            self.processed += 1
            self.store.finish(job.id)
