"""RQ mining throughput and its scaling with the number of worker processes.

    .venv/bin/python bench/pipeline.py --tasks 2000 --workers 1,2
    .venv/bin/python bench/pipeline.py --tasks 2000 --workers 1,2 --vlm-delay 0.1
    .venv/bin/python bench/pipeline.py --tasks 1000 --workers 1 --image-delay 0.05 --fetch-concurrency 1
    .venv/bin/python bench/pipeline.py --tasks 20000 --workers 1,2 --text

What it measures: the queue and worker overhead of the RQ deployment and how it scales
with workers, with a stand-in VLM. It is NOT a GPU throughput figure: the "VLM" is the
test suite's OpenAI-compatible stand-in (tests/support/fake_openai.py) on loopback,
which sleeps ``--vlm-delay`` seconds per call (default 0.05 s, standing for GPU time)
and answers a caption chosen by the image's hash from a Zipf-like caption pool.

Per worker count: flush the Redis db (``--redis-url``; by default a redis-server the benchmark
starts and stops, never one already running), enqueue all
tasks with ``RQQueue.submit_tasks`` (BATCH_SIZE 32 a job), start that many real workers
(``python -m backend.worker --burst --queues mine``, each in a session of its own), and
time from their start until every task is in the index. Image tasks point at a loopback
HTTP image server (one distinct PNG a task, so the description cache never hits); each
worker has VLM_API_CONCURRENCY=1 and KEYWORD_MODE=rules. ``--image-delay`` makes each image
download take that long (an object store's round trip), and ``--fetch-concurrency`` sets the
workers' IMAGE_FETCH_CONCURRENCY. ``--text`` mines text tasks instead (rule keywords, no VLM,
no images).

Reported per worker count: tasks/s from the workers' start (``tasks_per_s``, worker start-up
included) and from the first indexed task on (``steady_tasks_per_s``); CPU seconds of the
workers, of this process (image server and stand-in VLM) and of the Redis server
(``redis_cpu_s``, whoever else uses it); and ``vlm_bound_tasks_per_s`` = workers /
vlm_delay, what a perfect pipeline could reach with this stand-in. ``scaling`` = tasks/s
at the largest count / at 1 worker.

Prints ONE JSON line on stdout; logs go to stderr. The db is flushed again at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from predict import (  # noqa: E402
    CaptionGenerator,
    load_average,
    run_in_workdir,  # noqa: E402
)

from tests.support.image_server import ImageServer  # noqa: E402

log = logging.getLogger("bench.pipeline")

IMAGE_CONFIG = ('<View><Image name="image" value="$image"/>'
                '<Choices name="label" toName="image"><Choice value="common"/><Choice value="rare"/></Choices>'
                '<TextArea name="vlmine" toName="image" editable="false"/></View>')
TEXT_CONFIG = ('<View><Text name="text" value="$text"/>'
               '<Choices name="label" toName="text"><Choice value="common"/><Choice value="rare"/></Choices></View>')
PROJECT = 21


# ----------------------------------------------------------------------------------------
# Loopback services: images and the stand-in VLM
# ----------------------------------------------------------------------------------------

def make_png(index: int, size: int = 64) -> bytes:
    """A small PNG unique to ``index``: a flat colour from the index, the index's bytes in row 0."""
    from PIL import Image

    colour = ((index * 67) % 256, (index * 151) % 256, (index * 199) % 256)
    image = Image.new("RGB", (size, size), colour)
    for i, byte in enumerate(index.to_bytes(4, "big")):
        image.putpixel((i, 0), (byte, 255 - byte, byte))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def captioning_vlm(captions: list[str], delay: float):
    """The suite's FakeOpenAI, answering images with a caption picked by the image's hash."""
    from tests.support.fake_openai import FakeOpenAI

    class CaptioningVLM(FakeOpenAI):
        def _handler(self):
            handler = super()._handler()
            handler.disable_nagle_algorithm = True  # see tests/support/image_server.py: else ~40 ms per call on keep-alive
            return handler

        def _answer(self, body):
            content = body["messages"][-1]["content"]
            if isinstance(content, list):
                urls = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
                if urls:
                    digest = hashlib.sha256(urls[0].encode()).digest()
                    return captions[int.from_bytes(digest[:8], "big") % len(captions)]
            return super()._answer(body)

    vlm = CaptioningVLM(delay=delay)
    vlm.requests = _Discard()  # the stand-in records every request; a benchmark has no use for them
    return vlm


class _Discard(list):
    def append(self, item) -> None:  # noqa: D401 - keep nothing
        return None


# ----------------------------------------------------------------------------------------
# Workers
# ----------------------------------------------------------------------------------------

def start_worker(env: dict[str, str], log_path: Path, name: str) -> subprocess.Popen:
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "backend.worker", "--burst", "--queues", "mine", "--name", name],
                            cwd=ROOT, env=full, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_worker(proc: subprocess.Popen, grace: float = 10.0) -> int | None:
    """Wait for a burst worker to exit; end its session if it does not."""
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _redis_cpu(client) -> float:
    """CPU seconds of the Redis server so far (all its clients, not only this benchmark)."""
    info = client.info("cpu")
    return float(info.get("used_cpu_user", 0.0)) + float(info.get("used_cpu_sys", 0.0))


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ----------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------

def run_once(args: argparse.Namespace, workers: int, tasks: list[dict], config: str, base_env: dict[str, str],
             work: Path) -> dict:
    import redis

    from backend.engine.engine import Engine
    from backend.jobs.rq import MINE_QUEUE, RQQueue
    from backend.settings import Settings

    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    run_dir = work / f"w{workers}"
    run_dir.mkdir()
    env = {**base_env, "MODEL_DIR": str(run_dir / "model")}
    engine = Engine(Settings.from_env(env))
    queue = RQQueue(engine)
    scope = engine.scope(PROJECT)
    engine.project(PROJECT, config)

    started = time.perf_counter()
    jobs = queue.submit_tasks(PROJECT, tasks, config)
    enqueue_s = time.perf_counter() - started
    log.info("%d workers: %d jobs enqueued in %.2f s", workers, jobs, enqueue_s)

    cpu_children, cpu_self, cpu_redis = _children_cpu(), _self_cpu(), _redis_cpu(client)
    procs = []
    t0 = time.perf_counter()
    for i in range(workers):
        procs.append(start_worker(env, run_dir / f"worker{i}.log", f"bench-{os.getpid()}-{workers}-{i}"))
    first = None
    count = 0
    deadline = t0 + args.timeout
    timed_out = False
    last_log = t0
    while True:
        count = engine.index.task_count(scope)
        now = time.perf_counter()
        if first is None and count > 0:
            first = (now - t0, count)
        if count >= len(tasks):
            break
        if now > deadline:
            timed_out = True
            break
        dead = [p for p in procs if p.poll() is not None]
        if len(dead) == len(procs) and engine.redis.llen(f"rq:queue:{MINE_QUEUE}") == 0:
            # every worker left and nothing is queued: what is missing failed
            time.sleep(0.5)
            count = engine.index.task_count(scope)
            break
        if now - last_log > 10:
            log.info("%d workers: %d/%d indexed after %.0f s", workers, count, len(tasks), now - t0)
            last_log = now
        time.sleep(args.poll)
    elapsed = time.perf_counter() - t0
    codes = [stop_worker(p) for p in procs]
    cpu_workers = _children_cpu() - cpu_children
    cpu_harness = _self_cpu() - cpu_self
    cpu_redis = _redis_cpu(client) - cpu_redis
    counts = engine.store.task_counts(PROJECT)
    result = {
        "workers": workers,
        "indexed": count,
        "failed": counts.get("failed", 0),
        "seconds": round(elapsed, 2),
        "tasks_per_s": round(count / elapsed, 1) if elapsed > 0 else None,
        "first_indexed_s": round(first[0], 2) if first else None,
        "steady_tasks_per_s": (round((count - first[1]) / (elapsed - first[0]), 1)
                               if first and elapsed > first[0] and count > first[1] else None),
        "enqueue_s": round(enqueue_s, 3),
        "jobs": jobs,
        "worker_cpu_s": round(cpu_workers, 1),
        "worker_cpu_ms_per_task": round(1000 * cpu_workers / count, 2) if count else None,
        "harness_cpu_s": round(cpu_harness, 1),
        "redis_cpu_s": round(cpu_redis, 1),
        "exit_codes": codes,
    }
    if timed_out:
        result["timed_out"] = True
    if not args.text:
        result["vlm_bound_tasks_per_s"] = round(workers / args.vlm_delay, 1) if args.vlm_delay > 0 else None
    if count < len(tasks):
        logs = sorted(run_dir.glob("worker*.log"))
        tail = logs[0].read_text(errors="replace")[-2000:] if logs else ""
        log.error("%d workers: only %d/%d tasks indexed; worker log tail:\n%s", workers, count, len(tasks), tail)
    engine.index.close()
    client.flushdb()
    return result


def run(args: argparse.Namespace, work: Path) -> dict:
    counts = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    if not counts or counts[0] < 1:
        raise SystemExit("--workers needs positive counts, e.g. 1,2")
    gen = CaptionGenerator(seed=args.seed)
    base_env = {"REDIS_URL": args.redis_url, "BATCH_SIZE": str(args.batch_size), "LOG_LEVEL": "WARNING",
                "KEYWORD_MODE": "rules", "IMAGE_ALLOW_PRIVATE_NETWORKS": "true", "TEXT_KEYWORD_MODE": "rules"}
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "VLM_API_URL", "SYNONYMS_FILE", "DESCRIPTION_FIELD"):
        os.environ.pop(name, None)
    host = vlm = None
    out: dict = {"bench": "pipeline", "mode": "text" if args.text else "image", "tasks": args.tasks,
                 "batch_size": args.batch_size}
    try:
        if args.text:
            config = TEXT_CONFIG
            tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(gen.captions(args.tasks), start=1)]
        else:
            config = IMAGE_CONFIG
            log.info("making %d images", args.tasks)
            host = ImageServer({f"/img{i}.png": make_png(i) for i in range(1, args.tasks + 1)},
                               delay=args.image_delay)
            vlm = captioning_vlm(gen.captions(max(args.tasks, 1000)), args.vlm_delay).start()
            base_env.update({"VLM_API_URL": vlm.base_url, "VLM_API_MODEL": "stand-in", "VLM_API_CONCURRENCY": "1",
                             "IMAGE_FETCH_CONCURRENCY": str(args.fetch_concurrency)})
            tasks = [{"id": i, "data": {"image": f"{host.url}/img{i}.png"}} for i in range(1, args.tasks + 1)]
            out.update({"vlm_delay_s": args.vlm_delay, "vlm_concurrency_per_worker": 1,
                        "image_delay_s": args.image_delay, "fetch_concurrency": args.fetch_concurrency})
        runs = []
        for w in counts:
            runs.append(run_once(args, w, tasks, config, base_env, work))
            log.info("result %s", json.dumps(runs[-1]))
        out["runs"] = runs
        if vlm is not None:
            out["vlm_calls"] = vlm.calls
            out["vlm_max_concurrent"] = vlm.max_concurrent
        base = runs[0]["tasks_per_s"] if counts[0] == 1 else None
        top = runs[-1]["tasks_per_s"]
        out["tasks_per_s"] = {str(r["workers"]): r["tasks_per_s"] for r in runs}
        out["scaling"] = round(top / base, 2) if base and top and len(runs) > 1 else None
        sb, st = runs[0].get("steady_tasks_per_s"), runs[-1].get("steady_tasks_per_s")
        out["steady_scaling"] = round(st / sb, 2) if counts[0] == 1 and sb and st and len(runs) > 1 else None
    finally:
        if vlm is not None:
            vlm.stop()
        if host is not None:
            host.stop()
    out.update({"load_avg": load_average(), "cpus": os.cpu_count(), "python": platform.python_version()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks to mine per run (default 2000)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--vlm-delay", type=float, default=0.05,
                        help="seconds the stand-in VLM sleeps per call, standing for GPU time (default 0.05)")
    parser.add_argument("--image-delay", type=float, default=0.0,
                        help="seconds the image server waits before each answer: storage latency (default 0)")
    parser.add_argument("--fetch-concurrency", type=int, default=8,
                        help="IMAGE_FETCH_CONCURRENCY of the workers (default 8)")
    parser.add_argument("--text", action="store_true", help="text tasks (rule keywords, no VLM) instead of images")
    parser.add_argument("--batch-size", type=int, default=32, help="BATCH_SIZE: tasks per mining job (default 32)")
    parser.add_argument("--redis-url", default=None,
                        help="Redis db to use; it is FLUSHED before and after each run (default: a redis-server "
                             "the benchmark starts and stops)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between index polls")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per worker count")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (worker logs)")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    return run_in_workdir(args, "vlmine-bench-pipeline-", run)


if __name__ == "__main__":
    sys.exit(main())
