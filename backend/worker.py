"""``python -m backend.worker``: a worker that mines on this machine's GPU.

Why ``SimpleWorker``: RQ's default worker forks a child per job, and CUDA
cannot be used in a child forked after the parent touched it; a model loaded in
a fresh child per job would also cost minutes each time (``SpawnWorker``). A
SimpleWorker runs every job in its own process, so the VLM is loaded once and
stays on the GPU. What it gives up: no heartbeat while a job runs, so a job's
started-registry entry is only renewed when the job ends. That is why jobs are
small batches (``BATCH_SIZE``) with a ``JOB_TIMEOUT`` well above a batch's time:
a worker killed mid-batch leaves an entry that expires about two minutes after
the timeout, and RQ's abandoned-job handling (run by every worker's
maintenance, every ``--maintenance-interval`` seconds) queues the job again.
Start one worker per GPU (``CUDA_VISIBLE_DEVICES``), on as many machines as you
like, all pointing at the same ``REDIS_URL``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from rq import SimpleWorker

from .rq_queue import MINE_QUEUE, WRITE_QUEUE, runtime
from .settings import Settings, SettingsError

log = logging.getLogger("vlmine.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--queues", default="mine,write",
                        help="which queues to serve: mine (describe and index), write (re-rank, clean-up)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--name", help="worker name (default: host and pid)")
    parser.add_argument("--preload", action="store_true", help="load the VLM before taking the first job")
    parser.add_argument("--maintenance-interval", type=int, default=60,
                        help="seconds between RQ maintenance runs (finding abandoned jobs), default 60")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        parser.exit(2, f"configuration error: {exc}\n")
    if not settings.redis_url:
        parser.exit(2, "configuration error: REDIS_URL must be set for RQ workers\n")
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    engine, queue = runtime()
    names = {"mine": MINE_QUEUE, "write": WRITE_QUEUE}
    try:
        queues = [queue.queues[names[q.strip()]] for q in args.queues.split(",") if q.strip()]
    except KeyError as exc:
        parser.exit(2, f"unknown queue {exc}; use mine and/or write\n")
    if args.preload and not settings.vlm_api_url:
        describer = engine.miner.describer()
        describer.load()
        log.info("loaded %s", describer.name)
    worker = SimpleWorker(queues, connection=queue.redis, name=args.name,
                          maintenance_interval=args.maintenance_interval)
    log.info("worker %s serving %s", worker.name, ", ".join(q.name for q in queues))
    worker.work(with_scheduler=True, burst=args.burst, logging_level=settings.log_level.upper())
    return 0


if __name__ == "__main__":
    sys.exit(main())
