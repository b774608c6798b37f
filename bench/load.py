"""Load on the backend as a real gunicorn server (embedded mode, no Label Studio needed).

    .venv/bin/python bench/load.py                        # both parts
    .venv/bin/python bench/load.py --part predict --concurrency 50 --rounds 4
    .venv/bin/python bench/load.py --part import --import-tasks 100000 --chunk 10000

predict: a text project of --known tasks is mined once; then --concurrency threads each
         send --rounds /predict calls of --per-call known tasks at the same moment (a
         barrier per round). Reports p50/p99/max latency and errors (non-200 answers).
import:  --import-tasks tasks arrive as TASKS_CREATED webhooks of --chunk tasks each
         (Label Studio sends one per import); reports each answer's latency, the time
         until every task is mined, and the server's peak RSS (VmHWM of the gunicorn
         worker process).
Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import requests  # noqa: E402

from predict import (TEXT_CONFIG, CaptionGenerator, _children, load_average, peak_rss_mb,  # noqa: E402
                     percentile, predict_body, scrubbed_environ)
from tests.support.backend_server import BackendServer  # noqa: E402


def worker_pid(server: BackendServer) -> int:
    kids = _children(server.proc.pid)
    return kids[0] if kids else server.proc.pid


def part_predict(server: BackendServer, args) -> dict:
    gen = CaptionGenerator(seed=1)
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(gen.captions(args.known), start=1)]
    started = time.perf_counter()
    resp = requests.post(server.url + "/predict", json=predict_body(1, tasks, TEXT_CONFIG), timeout=600)
    resp.raise_for_status()
    cold = time.perf_counter() - started
    rng = random.Random(2)
    bodies = [[predict_body(1, rng.sample(tasks, args.per_call), TEXT_CONFIG) for _ in range(args.concurrency)]
              for _ in range(args.rounds)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    for round_bodies in bodies:
        barrier = threading.Barrier(args.concurrency)

        def call(body: dict) -> None:
            session = requests.Session()
            barrier.wait()
            t0 = time.perf_counter()
            try:
                r = session.post(server.url + "/predict", json=body, timeout=120)
                ok = r.status_code == 200 and len(r.json()["results"]) == len(body["tasks"])
                why = None if ok else f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                why = type(exc).__name__
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)
                if why:
                    errors.append(why)

        threads = [threading.Thread(target=call, args=(b,)) for b in round_bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return {"known_tasks": args.known, "cold_s": round(cold, 2), "concurrency": args.concurrency,
            "per_call": args.per_call, "calls": len(latencies), "errors": len(errors),
            "p50_ms": round(percentile(latencies, 50), 1), "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1)}


def part_import(server: BackendServer, args) -> dict:
    gen = CaptionGenerator(seed=3)
    n, chunk = args.import_tasks, args.chunk
    answers: list[float] = []
    started = time.perf_counter()
    for first in range(1, n + 1, chunk):
        tasks = [{"id": i, "data": {"text": gen.caption()}} for i in range(first, min(first + chunk, n + 1))]
        body = {"action": "TASKS_CREATED", "project": {"id": 2, "label_config": TEXT_CONFIG, "task_number": n},
                "tasks": tasks}
        t0 = time.perf_counter()
        resp = requests.post(server.url + "/webhook", json=body, timeout=60)
        answers.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
    sent = time.perf_counter() - started
    deadline = time.time() + args.timeout
    mined = 0
    while time.time() < deadline:
        mined = requests.get(server.url + "/metrics", timeout=30).json()["projects"]["2"]["mined"]
        if mined >= n:
            break
        time.sleep(1.0)
    return {"import_tasks": n, "chunk": chunk, "webhooks": len(answers),
            "webhook_p50_ms": round(percentile(answers, 50), 1), "webhook_max_ms": round(max(answers), 1),
            "sent_s": round(sent, 2), "mined": mined, "all_mined_s": round(time.perf_counter() - started, 1),
            "peak_rss_mb": peak_rss_mb(worker_pid(server))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["predict", "import", "both"], default="both")
    ap.add_argument("--known", type=int, default=5000)
    ap.add_argument("--per-call", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--import-tasks", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    scrubbed_environ()
    out: dict = {"bench": "load", "server": "gunicorn, 1 worker process x 8 threads (tests/support/backend_server.py)",
                 "load_avg": load_average()}
    with tempfile.TemporaryDirectory() as tmp:
        server = BackendServer({"MODEL_DIR": tmp, "LOG_LEVEL": "WARNING", "MAX_REQUEST_MB": "256"},
                               Path(tmp) / "backend.log", gunicorn=True)
        try:
            if args.part in ("predict", "both"):
                out["predict"] = part_predict(server, args)
            if args.part in ("import", "both"):
                out["import"] = part_import(server, args)
            out["alive"] = server.proc.poll() is None
        finally:
            server.stop()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
