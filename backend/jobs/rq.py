"""Jobs on RQ when REDIS_URL is set: the same job functions as the embedded runner.

Two queues, one per lane of ``runner``: ``vlmine-mine`` (describe and index: the GPU work;
no Label Studio writes) and ``vlmine-write`` (re-ranks, clean-ups and the sweep of annotations:
Label Studio I/O, the explanation rewrite of tasks mined again included). A GPU worker
(``python -m backend.worker``, see ``backend.jobs.worker``) serves both by default; a team can run CPU-only
workers on ``vlmine-write`` alone.

Nothing is lost or counted twice when a worker dies: every job carries an RQ
``Retry``, a job whose worker was killed is found by RQ's abandoned-job
handling (its started-registry entry expires ``JOB_TIMEOUT`` + about two
minutes after it began) and queued again, and every job is idempotent
(mining replaces a task's keywords, a re-rank writes only what changed).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator, Sequence

from rq import Queue, Retry
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from ..engine import Engine
from ..engine.object_mining import task_payload
from ..errors import retryable
from .runner import MINE_LANE, WRITE_LANE, chunks, run_job

log = logging.getLogger(__name__)

MINE_QUEUE = "vlmine-mine"
WRITE_QUEUE = "vlmine-write"
#: the job function as RQ stores it in every job: the stable alias module, so jobs queued by
#: an earlier release, or by this one for an earlier release's workers, run on either
PERFORM = "backend.rq_queue.perform"
#: job kind -> its RQ queue, by the kind's lane
QUEUE_OF = {**{kind: MINE_QUEUE for kind in MINE_LANE}, **{kind: WRITE_QUEUE for kind in WRITE_LANE}}
#: the kinds of which one waits per project, under a pending mark that the job takes down as it starts
DEBOUNCED = ("sync", "rerank", "sweep_annotations")


class RQQueue:
    """Submits jobs to RQ; the debounce of re-ranks is a Redis key per project."""

    #: /predict's unknown tasks are mined by the workers: the web process never loads the VLM
    mines_in_process = False

    def __init__(self, engine: Engine, connection=None) -> None:
        """``connection``: the Redis client (the state's); opened from REDIS_URL when None."""
        self.engine = engine
        self.settings = engine.settings
        if connection is None and self.settings.redis_url:
            import redis

            connection = redis.Redis.from_url(self.settings.redis_url)
        if connection is None:
            raise ValueError("RQQueue needs a Redis connection (REDIS_URL)")
        self.redis = connection
        self.queues = {name: Queue(name, connection=self.redis) for name in (MINE_QUEUE, WRITE_QUEUE)}

    # ---------------------------------------------------------------- submitting
    def _retry(self) -> Retry | None:
        n = self.settings.job_retries
        return Retry(max=n, interval=[min(2 ** i, 60) for i in range(1, n + 1)]) if n > 0 else None

    def _options(self, kind: str, pid: int) -> dict[str, Any]:
        return {"job_timeout": self.settings.job_timeout, "retry": self._retry(), "result_ttl": 600,
                "failure_ttl": 7 * 24 * 3600, "description": f"vlmine {kind} project {pid}"}

    def _enqueue(self, kind: str, pid: int, payload: dict[str, Any]) -> Job:
        queue = self.queues[QUEUE_OF[kind]]
        return queue.enqueue(PERFORM, kind, pid, payload, **self._options(kind, pid))

    def submit_tasks(self, pid: int, tasks: Sequence[dict], label_config: str | None = None) -> int:
        parts = chunks(list(tasks), self.settings.batch_size)
        queue = self.queues[MINE_QUEUE]
        options = self._options("mine", pid)
        options["timeout"] = options.pop("job_timeout")  # prepare_data's name for it
        jobs = [Queue.prepare_data(PERFORM, ("mine", pid, {"tasks": list(p), "label_config": label_config}),
                                   **options) for p in parts]
        for start in range(0, len(jobs), 500):
            queue.enqueue_many(jobs[start:start + 500])
        return len(parts)

    def mine_and_wait(self, pid: int, tasks: Sequence[dict], label_config: str | None, timeout: float) -> bool:
        """Mine tasks on the workers, ahead of queued batches, and wait up to ``timeout`` seconds.

        /predict uses this: Label Studio waits up to 100 s for an answer, and
        the web process must not load the VLM itself.
        """
        queue = self.queues[MINE_QUEUE]
        payload = {"tasks": [{**task_payload(t, self.settings), "id": int(t["id"])} for t in tasks],
                   "label_config": label_config}
        job = queue.enqueue(PERFORM, "mine", pid, payload, at_front=True, **self._options("mine", pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = job.get_status(refresh=True)
            if status == "finished":
                return True
            if status in ("failed", "stopped", "canceled"):
                return False
            time.sleep(0.1)
        log.warning("project %s: %d tasks not mined within %.0fs; answered with score 0", pid, len(tasks), timeout)
        return False

    def submit_delete(self, pid: int, task_ids: Sequence[int]) -> None:
        self._enqueue("delete", pid, {"task_ids": [int(t) for t in task_ids]})

    def submit_sync(self, pid: int) -> None:
        self._enqueue_once("sync", pid)

    def submit_rerank(self, pid: int, delay: float | None = None) -> None:
        """At most one waiting re-rank per project; it runs ``RERANK_DELAY`` seconds from now."""
        delay = self.settings.rerank_delay if delay is None else delay
        if not self.redis.set(self._pending_key("rerank", pid), 1, nx=True,
                              ex=int(self.settings.job_timeout + delay + 60)):
            return
        queue = self.queues[WRITE_QUEUE]
        with self._pending_until_queued(self._pending_key("rerank", pid)):
            if delay > 0:
                queue.enqueue_in(timedelta(seconds=delay), PERFORM, "rerank", pid, {}, **self._options("rerank", pid))
            else:
                queue.enqueue(PERFORM, "rerank", pid, {}, **self._options("rerank", pid))

    def submit_cleanup(self, pid: int, version: str) -> None:
        self._enqueue("cleanup", pid, {"version": version})

    def submit_annotation_sweep(self, pid: int) -> None:
        """At most one waiting sweep per project: a sweep reads every annotated task anyway."""
        self._enqueue_once("sweep_annotations", pid)

    def _enqueue_once(self, kind: str, pid: int) -> None:
        """Queue a job of ``kind`` (one of ``DEBOUNCED``) unless one of the project's waits."""
        key = self._pending_key(kind, pid)
        if self.redis.set(key, 1, nx=True, ex=self.settings.job_timeout):
            with self._pending_until_queued(key):
                self._enqueue(kind, pid, {})

    def _pending_key(self, kind: str, pid: int) -> str:
        return f"vlmine:pending:{kind}:{pid}"

    @contextmanager
    def _pending_until_queued(self, key: str) -> Iterator[None]:
        """A pending mark whose job could not be queued (Redis went away in between) is
        taken back, so it does not swallow every later job of its kind until it expires."""
        try:
            yield
        except BaseException:
            try:
                self.redis.delete(key)
            except Exception:  # Redis is gone: the mark expires on its own
                pass
            raise

    # ---------------------------------------------------------------- status
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, queue in self.queues.items():
            short = name.split("-", 1)[1]
            out[f"{short}_queued"] = queue.count
            out[f"{short}_started"] = StartedJobRegistry(queue=queue).count
            out[f"{short}_scheduled"] = ScheduledJobRegistry(queue=queue).count
            out[f"{short}_failed"] = FailedJobRegistry(queue=queue).count
        return out

    def failed_jobs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest failures of both queues, newest first (as the embedded runner lists them)."""
        found: list[tuple[float, dict[str, Any]]] = []
        for queue in self.queues.values():
            registry = FailedJobRegistry(queue=queue)
            for job in Job.fetch_many(registry.get_job_ids(0, limit - 1, desc=True), connection=self.redis):
                if job is None:
                    continue
                error = (job.exc_info or "").strip().splitlines()
                kind, pid = (job.args[0], job.args[1]) if len(job.args) >= 2 else ("?", None)
                ended = job.ended_at.timestamp() if job.ended_at else 0.0
                found.append((ended, {"id": job.id, "kind": kind, "project": pid,
                                      "error": error[-1] if error else ""}))
        found.sort(key=lambda pair: pair[0], reverse=True)
        return [entry for _, entry in found[:limit]]

    def start(self) -> None:  # the workers are separate processes
        return None

    def stop(self) -> None:
        return None


# ------------------------------------------------------------------ in the worker
_runtime: tuple[Engine, RQQueue] | None = None


def runtime() -> tuple[Engine, RQQueue]:
    """The worker process's engine and queue, built once (one loaded model per process)."""
    global _runtime
    if _runtime is None:
        from ..settings import Settings
        from ..state import open_state

        settings = Settings.from_env()
        state = open_state(settings)
        engine = Engine(settings, state)
        _runtime = (engine, RQQueue(engine, state.redis))
    return _runtime


def perform(kind: str, pid: int, payload: dict[str, Any]) -> Any:
    """The RQ job function: one job of the embedded runner's kinds."""
    from rq import get_current_job

    engine, queue = runtime()
    if kind in DEBOUNCED:
        queue.redis.delete(queue._pending_key(kind, pid))
    try:
        return run_job(engine, queue, kind, pid, payload)
    except Exception as exc:
        if not retryable(exc):
            # a bad label config or a missing Label Studio connection will not heal by retrying
            job = get_current_job()
            if job is not None:
                job.retries_left = 0
        engine.record_error(f"job:{kind}", f"project {pid}: {type(exc).__name__}: {exc}")
        raise
