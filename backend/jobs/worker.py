"""``python -m backend.worker``: a worker that mines on this machine's GPU.

Why a ``SimpleWorker``: RQ's default worker forks a child per job, and CUDA
cannot be used in a child forked after the parent touched it; a model loaded in
a fresh child per job (``SpawnWorker``) would cost minutes each time. A
SimpleWorker runs every job in its own process, so the VLM is loaded once and
stays on the GPU.

What a plain SimpleWorker gives up, and what ``VLMineWorker`` adds back:

- no heartbeat while a job runs, so a job's started-registry entry would only
  expire ``JOB_TIMEOUT`` + 60 s after it began. A heartbeat thread renews it
  every 15 s with a 60 s lease, so a worker killed mid-batch leaves a job that
  RQ's abandoned-job handling finds about two minutes later, whatever the timeout;
- RQ runs that handling (registry clean-up) only between jobs or after a long
  idle wait; a maintenance thread runs it every ``--maintenance-interval``
  seconds, so an idle worker picks up a dead worker's job. The job has an RQ
  ``Retry`` and goes back to its queue; mining is idempotent, so the tasks the
  dead worker had already indexed are not counted twice;
- a lost Redis connection ends RQ's work loop; ``main`` starts it again after a
  pause, so a worker rides out a Redis restart. The old loop could not record its
  end in Redis then, so its key still says "alive" (RQ would refuse a new worker of
  the same ``--name``): ``main`` records that end first, and waits out a key that is
  not its own.

Start one worker per GPU (``CUDA_VISIBLE_DEVICES``), on as many machines as you
like, all pointing at the same ``REDIS_URL``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import redis
from rq import SimpleWorker
from rq.utils import now, utcformat

from ..errors import SettingsError
from ..logs import configure_logging
from ..settings import Settings
from .rq import MINE_QUEUE, WRITE_QUEUE, runtime

log = logging.getLogger("vlmine.worker")


class VLMineWorker(SimpleWorker):
    """A SimpleWorker with a heartbeat during jobs and a clean-up thread (see the module doc)."""

    heartbeat_interval = 15
    lease = 60

    def __init__(self, *args, maintenance_interval: int = 60, **kwargs) -> None:
        super().__init__(*args, maintenance_interval=maintenance_interval, **kwargs)
        self._closing = threading.Event()
        self._maintenance_lock = threading.Lock()
        self._maintenance = threading.Thread(target=self._maintain, name="rq-maintenance", daemon=True)

    def get_heartbeat_ttl(self, job) -> int:
        return self.lease

    def work(self, *args, **kwargs):
        self._maintenance.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            self._closing.set()

    def execute_job(self, job, queue) -> None:
        self.prepare_execution(job)
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job, done), name="rq-heartbeat", daemon=True)
        beat.start()
        try:
            self.perform_job(job, queue)
        finally:
            done.set()
            beat.join(5)
        self.set_state("idle")

    def _beat(self, job, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_interval):
            execution = self.execution
            if execution is None:
                return
            try:
                with self.connection.pipeline() as pipe:
                    self.heartbeat(self.lease + 60, pipeline=pipe)
                    execution.heartbeat(job.started_job_registry, self.lease, pipeline=pipe)
                    job.heartbeat(now(), self.lease, pipeline=pipe, xx=True)
                    pipe.execute()
            except redis.exceptions.RedisError as exc:
                self.log.warning("heartbeat failed: %s", type(exc).__name__)

    def unsubscribe(self) -> None:
        """RQ's unsubscribe, without waiting up to a minute on the way out.

        RQ reads its command channel with a 60 s blocking read and relies on the reply to
        UNSUBSCRIBE to wake that thread; redis-py 8's ``stop()`` then waits for the thread
        with no limit. When the reply does not wake it, a finished ``--burst`` worker (or one
        asked to stop) lingers for that minute. The thread is a daemon: wait a second, and
        close the connection only once the thread has let go of it.
        """
        thread = self.pubsub_thread
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        self.pubsub.unsubscribe()
        try:
            thread.stop(timeout=1)
        except TypeError:  # redis-py before 8: stop() takes no timeout and does not wait
            thread.stop()
        thread.join(timeout=1)
        if not thread.is_alive():
            self.pubsub.close()

    def run_maintenance_tasks(self) -> None:
        # RQ's own: take over the scheduler of a dead worker, find abandoned jobs and retry them
        with self._maintenance_lock:
            if self._closing.is_set():
                return
            super().run_maintenance_tasks()

    def teardown(self) -> None:
        """RQ's teardown, after which the maintenance thread does nothing more.

        RQ's maintenance starts the scheduler again whenever its process is not alive, and
        teardown has just stopped it: a maintenance run in the seconds the worker takes to
        leave would start a new scheduler process, which the worker then waits for on exit,
        so a worker asked to stop would hang. The lock lets a running maintenance finish
        before the scheduler is stopped."""
        with self._maintenance_lock:
            self._closing.set()
        super().teardown()

    def _maintain(self) -> None:
        while not self._closing.wait(self.maintenance_interval):
            try:
                self.run_maintenance_tasks()
            except redis.exceptions.RedisError as exc:
                self.log.warning("maintenance failed: %s", type(exc).__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m backend.worker`` (also read by tests/test_compose.py)."""
    parser = argparse.ArgumentParser(prog="python -m backend.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--queues", default="mine,write",
                        help="which queues to serve: mine (describe and index), write (re-rank, clean-up)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--name", help="worker name (default: host and pid)")
    parser.add_argument("--preload", action="store_true", help="load the VLM before taking the first job")
    parser.add_argument("--maintenance-interval", type=int, default=60,
                        help="seconds between RQ maintenance runs (finding abandoned jobs), default 60")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        parser.exit(2, f"configuration error: {exc}\n")
    if not settings.redis_url:
        parser.exit(2, "configuration error: REDIS_URL must be set for RQ workers\n")
    configure_logging(settings.log_level)
    engine, queue = runtime()
    names = {"mine": MINE_QUEUE, "write": WRITE_QUEUE}
    try:
        queues = [queue.queues[names[q.strip()]] for q in args.queues.split(",") if q.strip()]
    except KeyError as exc:
        parser.exit(2, f"unknown queue {exc}; use mine and/or write\n")
    if args.preload and not settings.vlm_api_url:
        describer = engine.load_describer()
        log.info("loaded %s", describer.name)
    previous: VLMineWorker | None = None
    while True:
        if previous is not None:
            _end_registration(previous)
        worker = VLMineWorker(queues, connection=queue.redis, name=args.name,
                              maintenance_interval=args.maintenance_interval)
        log.info("worker %s serving %s", worker.name, ", ".join(q.name for q in queues))
        try:
            worker.work(with_scheduler=True, burst=args.burst, logging_level=settings.log_level.upper())
        except redis.exceptions.ConnectionError as exc:
            log.error("lost Redis (%s); starting again in 5 s", type(exc).__name__)
        except ValueError as exc:  # RQ's register_birth: the name is held by a live-looking key
            if previous is None or "active worker named" not in str(exc):
                raise  # a fresh process whose --name another worker uses: RQ's own refusal stands
            _wait_for_name(worker)
            continue
        previous = worker
        if args.burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            return 0
        time.sleep(2)
        if not _redis_up(queue.redis):
            log.error("Redis is unreachable; waiting for it")
        while not _redis_up(queue.redis):
            time.sleep(5)


def _end_registration(old: VLMineWorker) -> None:
    """Record the end of this process's previous work loop, if a Redis outage kept it from doing so.

    Only a key that is this loop's own (its birth time) is touched: another process that
    took the name meanwhile keeps it.
    """
    if old.birth_date is None:
        return
    try:
        birth, death = old.connection.hmget(old.key, ["birth", "death"])
        if isinstance(birth, bytes):
            birth = birth.decode()
        if birth is None or death is not None or birth != utcformat(old.birth_date):
            return
        old.register_death()
        log.info("worker %s: recorded the end of the work loop that lost Redis", old.name)
    except redis.exceptions.RedisError as exc:  # the next start says what is wrong
        log.warning("worker %s: cannot clean up after the lost work loop (%s)", old.name, type(exc).__name__)


def _wait_for_name(worker: VLMineWorker) -> None:
    """Wait (at most 30 s at a time) while another registration of ``worker``'s name is alive."""
    try:
        ttl = int(worker.connection.ttl(worker.key))
    except redis.exceptions.RedisError:
        ttl = 5
    pause = min(max(ttl, 1), 30)
    log.warning("worker name %s is registered as alive by another worker loop (expires in %s s); "
                "trying again in %d s", worker.name, ttl if ttl >= 0 else "?", pause)
    time.sleep(pause)


def _redis_up(client) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


if __name__ == "__main__":
    sys.exit(main())
