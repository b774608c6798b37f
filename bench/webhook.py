"""Webhook answer times while the backend is busy mining (Label Studio waits at most 1 s).

    .venv/bin/python bench/webhook.py --tasks 10000 --probes 200
    .venv/bin/python bench/webhook.py --tasks 10000 --probes 200 --redis

The backend runs as a real server (``python _wsgi.py``, or ``--server gunicorn``) with
MODEL_DIR in a temporary directory and no Label Studio (LABEL_STUDIO_URL unset).

1. One TASKS_CREATED webhook holding ``--tasks`` text tasks, in the shape Label Studio
   1.23 sends (every task field, the whole project object with its label config):
   ``big_s`` is the time until its answer is read.
2. At once, while the backend mines those tasks, ``--probes`` small TASKS_CREATED
   webhooks (one new task each), one after the other, a new one every
   ``--probe-interval`` seconds (default 0.02) or as soon as the previous one is
   answered if that took longer; each on a fresh connection, as Label Studio does.
   Reported: p50 / p99 / max answer time in ms, and how many were answered in over 1 s.

Embedded mode (default): no Redis; the server's own mining thread works through the
jobs, so the probes compete with mining for the GIL and the SQLite store. A thread polls
/metrics every 0.5 s to tell when mining finished: ``probes_while_mining`` counts the
probes sent before that, ``mine_s`` is the time from the big webhook's answer until every
task (big + probes) is mined. Without Label Studio, a re-rank that mining queues (it
waits RERANK_DELAY, 2 s) fails at once ("LABEL_STUDIO_URL ... needed"); that is
expected here and costs little.

``--redis`` (RQ mode, REDIS_URL = ``--redis-url``, by default a redis-server of the
benchmark's own; flushed before and
after): no workers run, the jobs only queue, so this measures enqueueing.

``peak_rss_mb`` is the server process's VmHWM (for gunicorn, its worker's).
Prints ONE JSON line on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from predict import (  # noqa: E402
    TEXT_CONFIG,
    CaptionGenerator,
    load_average,
    peak_rss_mb,
    percentile,
    rss_mb,
    run_in_workdir,  # noqa: E402
    scrubbed_environ,
    start_backend,
)

log = logging.getLogger("bench.webhook")

LS_TIMEOUT_S = 1.0


# ----------------------------------------------------------------------------------------
# Label Studio-shaped webhook bodies
# ----------------------------------------------------------------------------------------

def _stamp(i: int) -> str:
    return f"2026-11-29T01:{(i // 60) % 60:02d}:{i % 60:02d}.{(i * 7919) % 1000000:06d}Z"


def webhook_task(task_id: int, text: str, pid: int) -> dict:
    return {
        "id": task_id, "data": {"text": text}, "meta": {}, "created_at": _stamp(task_id),
        "updated_at": _stamp(task_id), "is_labeled": False, "allow_skip": True, "overlap": 1,
        "inner_id": task_id, "total_annotations": 0, "cancelled_annotations": 0, "total_predictions": 0,
        "precomputed_agreement": None, "comment_count": 0, "unresolved_comment_count": 0,
        "last_comment_updated_at": None, "project": pid, "updated_by": None, "file_upload": None,
        "comment_authors": [],
    }


def project_object(pid: int, task_number: int, label_config: str) -> dict:
    """The project as Label Studio puts it in a webhook (every field it serialises)."""
    return {
        "id": pid, "task_number": task_number, "finished_task_number": 0, "total_predictions_number": 0,
        "total_annotations_number": 0, "num_tasks_with_annotations": 0, "useful_annotation_number": 0,
        "ground_truth_number": 0, "skipped_annotations_number": 0, "title": "webhook bench", "description": "",
        "label_config": label_config,
        "parsed_label_config": {
            "label": {"type": "Choices", "to_name": ["text"], "inputs": [{"type": "Text", "valueType": None,
                                                                          "value": "text"}],
                      "labels": ["common", "rare"], "labels_attrs": {"common": {"value": "common"},
                                                                     "rare": {"value": "rare"}}},
            "vlmine": {"type": "TextArea", "to_name": ["text"], "inputs": [{"type": "Text", "valueType": None,
                                                                            "value": "text"}],
                       "labels": [], "labels_attrs": {}},
        },
        "label_config_hash": 4242424242424242424, "expert_instruction": "", "show_instruction": False,
        "show_skip_button": True, "enable_empty_annotation": True, "reveal_preannotations_interactively": False,
        "show_annotation_history": False, "show_collab_predictions": True,
        "evaluate_predictions_automatically": False, "token": "<redacted>", "result_count": 0, "color": "#FFFFFF",
        "maximum_annotations": 1, "min_annotations_to_start_training": 0,
        "control_weights": {"label": {"overall": 1.0, "type": "Choices",
                                      "labels": {"common": 1.0, "rare": 1.0}},
                            "vlmine": {"overall": 1.0, "type": "TextArea", "labels": {}}},
        "model_version": "", "data_types": {"text": "Text"}, "is_draft": False, "is_published": False,
        "created_at": _stamp(0), "updated_at": _stamp(1), "sampling": "Sequential sampling",
        "skip_queue": "REQUEUE_FOR_OTHERS", "show_ground_truth_first": False,
        "annotator_evaluation_enabled": False, "show_overlap_first": False, "overlap_cohort_percentage": 100,
        "task_data_login": None, "task_data_password": None, "pinned_at": None, "custom_task_lock_ttl": None,
        "deleted_at": None, "purge_at": None, "search_vector": None, "organization": 1, "created_by": 1,
        "deleted_by": None,
    }


def tasks_created(pid: int, tasks: list[dict], task_number: int) -> bytes:
    body = {"action": "TASKS_CREATED", "tasks": tasks, "project": project_object(pid, task_number, TEXT_CONFIG)}
    return json.dumps(body).encode()


# ----------------------------------------------------------------------------------------
# /metrics watcher
# ----------------------------------------------------------------------------------------

class MinedWatcher:
    """Polls /metrics and remembers when the project's mined count first reached a target."""

    def __init__(self, url: str, pid: int, target: int, interval: float = 0.5) -> None:
        self.url, self.pid, self.target, self.interval = url, pid, target, interval
        self.done_at: float | None = None
        self.last: dict = {}
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-watch", daemon=True)

    def start(self) -> "MinedWatcher":
        self._thread.start()
        return self

    def _loop(self) -> None:
        import requests

        while not self._stop.is_set():
            try:
                project = requests.get(self.url + "/metrics", timeout=30).json()["projects"].get(str(self.pid), {})
                now = time.perf_counter()
                self.last = project
                self.samples.append((now, int(project.get("mined", 0))))
                if self.done_at is None and int(project.get("mined", 0)) + int(project.get("failed", 0)) \
                        >= self.target:
                    self.done_at = now
            except Exception as exc:  # the server may be busy; keep polling
                log.debug("metrics poll failed: %s", exc)
            self._stop.wait(self.interval)

    def mined_at(self, t: float) -> int:
        """The mined count of the last sample taken at or before ``t``."""
        best = 0
        for ts, n in self.samples:
            if ts <= t:
                best = n
        return best

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(35)


# ----------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------

def run(args: argparse.Namespace, work: Path) -> dict:
    import requests

    gen = CaptionGenerator(seed=args.seed)
    texts = gen.captions(args.tasks + args.probes)
    pid = args.project
    big = tasks_created(pid, [webhook_task(i, texts[i - 1], pid) for i in range(1, args.tasks + 1)], args.tasks)
    probes = [tasks_created(pid, [webhook_task(i, texts[i - 1], pid)], i)
              for i in range(args.tasks + 1, args.tasks + args.probes + 1)]
    log.info("big webhook: %d tasks, %.2f MB; probe webhook: %.1f KB", args.tasks, len(big) / 2**20,
             len(probes[0]) / 1024 if probes else 0)

    scrubbed_environ()
    env = {"MODEL_DIR": str(work / "model"), "LOG_LEVEL": args.log_level}
    redis_client = None
    if args.redis:
        import redis

        redis_client = redis.Redis.from_url(args.redis_url)
        redis_client.ping()
        redis_client.flushdb()
        env["REDIS_URL"] = args.redis_url
    backend = start_backend(env, work / "backend.log", args.server)
    headers = {"Content-Type": "application/json"}
    out: dict = {"bench": "webhook", "mode": "rq" if args.redis else "embedded", "server": args.server,
                 "tasks": args.tasks, "probes": args.probes, "probe_interval_s": args.probe_interval,
                 "big_mb": round(len(big) / 2**20, 2)}
    watcher = None
    try:
        rss_before = rss_mb(backend.proc.pid)
        started = time.perf_counter()
        resp = requests.post(backend.url + "/webhook", data=big, headers=headers, timeout=args.timeout)
        big_s = time.perf_counter() - started
        if resp.status_code != 200:
            raise RuntimeError(f"big webhook answered {resp.status_code}: {resp.text[:300]}\n{backend.log_tail()}")
        answered_at = time.perf_counter()
        log.info("big webhook answered in %.3f s: %s", big_s, resp.text.strip()[:200])
        out["big_s"] = round(big_s, 3)
        out["big_answer"] = resp.json()

        target = args.tasks + args.probes
        if not args.redis:
            watcher = MinedWatcher(backend.url, pid, target).start()
        latencies: list[float] = []
        sent_at: list[float] = []
        errors = 0
        next_at = time.perf_counter()
        for body in probes:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t = time.perf_counter()
            try:
                r = requests.post(backend.url + "/webhook", data=body, headers=headers, timeout=args.timeout)
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            latencies.append((time.perf_counter() - t) * 1000)
            sent_at.append(t)
            errors += 0 if ok else 1
            next_at = t + args.probe_interval
        probes_end = time.perf_counter()
        if latencies:
            out.update({
                "p50_ms": round(percentile(latencies, 50), 1),
                "p99_ms": round(percentile(latencies, 99), 1),
                "max_ms": round(max(latencies), 1),
                "over_1s": sum(1 for x in latencies if x > LS_TIMEOUT_S * 1000),
                "probe_errors": errors,
                "probes_s": round(probes_end - sent_at[0], 2),
            })
        if watcher is not None:
            deadline = time.perf_counter() + args.mine_timeout
            while watcher.done_at is None and time.perf_counter() < deadline and backend.proc.poll() is None:
                time.sleep(0.2)
            watcher.stop()
            done = watcher.done_at
            out["mined"] = watcher.last.get("mined")
            out["mine_failed"] = watcher.last.get("failed")
            if done is not None:
                out["mine_s"] = round(done - answered_at, 2)
                out["mine_tasks_per_s"] = round(target / (done - answered_at), 1)
                out["probes_while_mining"] = sum(1 for t in sent_at if t < done)
            else:
                out["mine_s"] = None
                out["probes_while_mining"] = len(sent_at)
            if sent_at:
                out["mined_at_first_probe"] = watcher.mined_at(sent_at[0])
        else:
            from rq import Queue

            from backend.jobs.rq import MINE_QUEUE

            out["queued_jobs"] = Queue(MINE_QUEUE, connection=redis_client).count
        metrics = requests.get(backend.url + "/metrics", timeout=60).json()
        out["jobs"] = metrics.get("jobs", {}).get("counts")
        out["peak_rss_mb"] = peak_rss_mb(backend.proc.pid)
        out["rss_at_start_mb"] = rss_before
    finally:
        if watcher is not None:
            watcher.stop()
        backend.stop()
        if redis_client is not None:
            redis_client.flushdb()
    out.update({"load_avg": load_average(), "cpus": os.cpu_count(), "python": platform.python_version()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000, help="tasks in the big TASKS_CREATED webhook")
    parser.add_argument("--probes", type=int, default=200, help="small webhooks sent while mining (default 200)")
    parser.add_argument("--probe-interval", type=float, default=0.02,
                        help="seconds from one probe's start to the next (default 0.02)")
    parser.add_argument("--redis", action="store_true", help="RQ mode: REDIS_URL set, no workers (jobs only queue)")
    parser.add_argument("--redis-url", default=None,
                        help="the Redis db for --redis; FLUSHED before and after (default: a redis-server the "
                             "benchmark starts and stops)")
    parser.add_argument("--server", choices=("werkzeug", "gunicorn"), default="werkzeug")
    parser.add_argument("--project", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout per webhook, seconds")
    parser.add_argument("--mine-timeout", type=float, default=900.0,
                        help="seconds to wait for mining to finish after the probes (embedded mode)")
    parser.add_argument("--log-level", default="WARNING", help="the backend's LOG_LEVEL (default WARNING)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server log, store)")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.probes < 0:
        parser.error("--tasks must be at least 1 and --probes at least 0")
    return run_in_workdir(args, "vlmine-bench-webhook-", run)


if __name__ == "__main__":
    sys.exit(main())
