"""/predict latency of the backend as a real server process (text project, no Label Studio).

    .venv/bin/python bench/predict.py --tasks 1000 --repeats 30
    .venv/bin/python bench/predict.py --tasks 1000 --repeats 30 --server gunicorn

The backend runs as ``python _wsgi.py`` (werkzeug, threaded) or ``gunicorn _wsgi:app``
(1 worker, 8 threads) with MODEL_DIR in a temporary directory and LABEL_STUDIO_URL,
LABEL_STUDIO_API_KEY and REDIS_URL removed from its environment. The request body has the
shape Label Studio 1.23 sends for "Retrieve predictions" (tasks with id, data, meta,
predictions of another model, annotations; "project": "<id>.<timestamp>"; label_config).

1. ``cold_s``: the first POST /predict with the N tasks (they are unknown, so the backend
   mines them on the spot: rule keywords, index, ranking, explanations).
2. ``--repeats`` further POSTs of the same N tasks (already mined): p50 / p99 / mean /
   min / max latency in ms, measured by the client from sending the request until the
   whole answer is read.

Prints ONE JSON line on stdout; logs go to stderr, the server's log to a file in the
temporary directory (kept with ``--keep``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench.predict")

TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="common"/><Choice value="rare"/></Choices>
  <TextArea name="vlmine" toName="text" editable="false" perRegion="false"/>
</View>"""

# Scrubbed from the backend's environment: the benchmark needs none of them.
FOREIGN_ENV = ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "REDIS_URL", "VLM_API_URL", "WEBHOOK_SECRET",
               "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "SYNONYMS_FILE", "UNCERTAINTY_SOURCE", "SIGNAL_FIELDS")

# ----------------------------------------------------------------------------------------
# Realistic captions: a Zipf-like draw over a vocabulary, plus rare words
# ----------------------------------------------------------------------------------------

NOUNS = """
man woman person child boy girl dog cat car bus truck bicycle motorcycle horse bird tree
street road table chair sofa bed kitchen window door building house sign pole bench train
boat plane sky cloud grass field water beach wave umbrella bag backpack phone laptop cup
bottle plate bowl pizza sandwich cake banana apple orange broccoli carrot clock vase book
shelf lamp picture wall floor ceiling fence gate bridge river mountain hill rock snow ice
ball kite frisbee skateboard surfboard racket helmet hat shirt jacket dress shoe glove
scarf tie cow sheep elephant zebra giraffe bear duck goose pigeon seagull squirrel deer
tent flag statue fountain tower church market shop counter oven sink refrigerator toilet
mirror curtain pillow blanket carpet stair ladder bucket barrel crate box basket cart
tractor van taxi ambulance scooter wheelchair stroller crane container pier harbor dock
""".split()

ADJECTIVES = """
red blue green yellow white black brown gray orange purple pink large small tall short
old young wooden metal plastic wet dry empty crowded busy quiet dirty clean broken parked
open closed striped dark bright sunny cloudy snowy rainy foggy
""".split()

VERBS = """
standing sitting walking running riding holding carrying eating looking lying parked
waiting crossing playing flying driving leaning hanging floating resting sleeping
""".split()

PREPOSITIONS = ["on", "in", "near", "beside", "behind", "under", "next to", "in front of", "across", "along"]

PLACES = ["street", "road", "park", "beach", "kitchen", "room", "field", "yard", "station", "airport", "market",
          "shop", "garden", "sidewalk", "parking lot", "highway", "forest", "lake", "harbor", "plaza", "office"]

SYLLABLES = ["ba", "ko", "ri", "zu", "mel", "tor", "qua", "ix", "vel", "dro", "shan", "pli", "gor", "nue",
             "fen", "yar", "lus", "kri", "oth", "wim"]


def rare_words(n: int, rng: random.Random) -> list[str]:
    """Made-up words (nobody's vocabulary), each a long-tail concept of its own."""
    out: dict[str, None] = {}
    while len(out) < n:
        out["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4)))] = None
    return list(out)


class CaptionGenerator:
    """Captions whose nouns follow a Zipf-like law (exponent ``zipf``); a share ``rare``
    of captions also mentions one word drawn from a pool of made-up rare words."""

    def __init__(self, seed: int = 0, zipf: float = 1.1, rare: float = 0.03, rare_pool: int = 2000) -> None:
        self.rng = random.Random(seed)
        nouns = NOUNS[:]
        self.rng.shuffle(nouns)
        self.nouns = nouns
        weights = [1.0 / (rank ** zipf) for rank in range(1, len(nouns) + 1)]
        total = sum(weights)
        self.cum = []
        acc = 0.0
        for w in weights:
            acc += w / total
            self.cum.append(acc)
        self.rare = rare
        self.rare_words = rare_words(rare_pool, self.rng)

    def noun(self) -> str:
        return self.nouns[min(self._bisect(self.rng.random()), len(self.nouns) - 1)]

    def _bisect(self, x: float) -> int:
        lo, hi = 0, len(self.cum)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.cum[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def caption(self) -> str:
        r = self.rng
        parts = [r.choice(["a", "the", "two", "a", "an old", "some"]) if r.random() < 0.9 else "",
                 r.choice(ADJECTIVES) if r.random() < 0.5 else "", self.noun(),
                 r.choice(VERBS), r.choice(PREPOSITIONS), "a", self.noun()]
        if r.random() < 0.6:
            parts += ["with", "a" if r.random() < 0.5 else "some", r.choice(ADJECTIVES) if r.random() < 0.3 else "",
                      self.noun()]
        if r.random() < 0.5:
            parts += [r.choice(["in the", "at the", "near the"]), r.choice(PLACES)]
        if r.random() < self.rare:
            parts += [r.choice(["and a", "beside a", "holding a"]), r.choice(self.rare_words)]
        return " ".join(p for p in parts if p).replace(" a a", " an a").replace(" a o", " an o")

    def captions(self, n: int) -> list[str]:
        return [self.caption() for _ in range(n)]


# ----------------------------------------------------------------------------------------
# Label Studio-shaped payloads
# ----------------------------------------------------------------------------------------

def _stamp(i: int) -> str:
    return f"2026-11-29T00:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000000:06d}Z"


def ls_task(task_id: int, data: dict, pid: int, prediction_score: float | None = None) -> dict:
    """A task as Label Studio serialises it for /predict (Retrieve predictions)."""
    preds = []
    if prediction_score is not None:
        preds.append({
            "id": task_id, "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                       "value": {"choices": ["common"]}}],
            "model_version": "manual-v1", "created_ago": "0\u00a0minutes", "score": prediction_score,
            "cluster": None, "neighbors": None, "mislabeling": 0.0, "created_at": _stamp(task_id),
            "updated_at": _stamp(task_id), "model": None, "model_run": None, "task": task_id, "project": pid,
        })
    return {
        "id": task_id, "data": data, "meta": {}, "created_at": _stamp(task_id), "updated_at": _stamp(task_id),
        "is_labeled": False, "overlap": 1, "inner_id": task_id, "total_annotations": 0,
        "cancelled_annotations": 0, "total_predictions": len(preds), "comment_count": 0,
        "unresolved_comment_count": 0, "last_comment_updated_at": None, "project": pid, "updated_by": 1,
        "file_upload": None, "comment_authors": [], "annotations": [], "predictions": preds,
    }


def predict_body(pid: int, tasks: list[dict], label_config: str) -> dict:
    return {"tasks": tasks, "project": f"{pid}.{int(time.time())}", "label_config": label_config,
            "params": {"login": None, "password": None, "context": None}}


# ----------------------------------------------------------------------------------------
# Process helpers shared by the backend benchmarks
# ----------------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    """Peak RSS (VmHWM) of the process, or of its largest child (a gunicorn worker)."""
    values = [v for p in [pid, *_children(pid)] if (v := _status_kb(p, "VmHWM")) is not None]
    return round(max(values) / 1024, 1) if values else None


def rss_mb(pid: int) -> float | None:
    values = [v for p in [pid, *_children(pid)] if (v := _status_kb(p, "VmRSS")) is not None]
    return round(max(values) / 1024, 1) if values else None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def scrubbed_environ() -> None:
    """Remove settings of the calling shell that would change what the backend does."""
    for name in FOREIGN_ENV:
        os.environ.pop(name, None)


def start_backend(env: dict[str, str], log_path: Path, server: str):
    from tests.support.backend_server import BackendServer

    return BackendServer(env, log_path, gunicorn=(server == "gunicorn"))


# ----------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------

def run(args: argparse.Namespace, work: Path) -> dict:
    import requests

    gen = CaptionGenerator(seed=args.seed, zipf=args.zipf, rare=args.rare)
    rng = random.Random(args.seed + 1)
    tasks = [ls_task(i, {"text": text}, args.project, round(rng.random(), 3) if args.with_predictions else None)
             for i, text in enumerate(gen.captions(args.tasks), start=1)]
    body = predict_body(args.project, tasks, TEXT_CONFIG)
    raw = json.dumps(body).encode()
    log.info("request body: %d tasks, %.2f MB", len(tasks), len(raw) / 2**20)

    scrubbed_environ()
    env = {"MODEL_DIR": str(work / "model"), "LOG_LEVEL": args.log_level}
    backend = start_backend(env, work / "backend.log", args.server)
    out: dict = {"bench": "predict", "tasks": args.tasks, "repeats": args.repeats, "server": args.server}
    try:
        http = requests.Session()
        headers = {"Content-Type": "application/json"}

        def post() -> tuple[float, "requests.Response"]:
            started = time.perf_counter()
            resp = http.post(backend.url + "/predict", data=raw, headers=headers, timeout=args.timeout)
            _ = resp.content
            return time.perf_counter() - started, resp

        cold, resp = post()
        if resp.status_code != 200:
            raise RuntimeError(f"/predict answered {resp.status_code}: {resp.text[:500]}\n{backend.log_tail()}")
        answer = resp.json()
        results = answer["results"]
        if len(results) != len(tasks):
            raise RuntimeError(f"/predict gave {len(results)} results for {len(tasks)} tasks")
        scores = [r["score"] for r in results]
        log.info("cold: %.3f s; scores %.3f..%.3f; version %s", cold, min(scores), max(scores),
                 answer.get("model_version"))
        latencies: list[float] = []
        for i in range(args.repeats):
            seconds, resp = post()
            if resp.status_code != 200 or len(resp.json()["results"]) != len(tasks):
                raise RuntimeError(f"repeat {i}: /predict answered {resp.status_code}: {resp.text[:300]}")
            latencies.append(seconds * 1000)
            log.debug("repeat %d: %.1f ms", i, latencies[-1])
        ms = [round(x, 1) for x in latencies]
        out.update({
            "cold_s": round(cold, 3),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
            "min_ms": min(ms) if ms else None,
            "max_ms": max(ms) if ms else None,
            "goal_p50_ms": 200,
            "request_mb": round(len(raw) / 2**20, 2),
            "response_kb": round(len(resp.content) / 1024, 1),
            "with_textarea": True,
            "with_predictions": args.with_predictions,
            "peak_rss_mb": peak_rss_mb(backend.proc.pid),
        })
        metrics = http.get(backend.url + "/metrics", timeout=30).json()
        project = metrics.get("projects", {}).get(str(args.project), {})
        out["indexed"] = project.get("indexed")
    finally:
        backend.stop()
    out.update({"load_avg": load_average(), "cpus": os.cpu_count(), "python": platform.python_version()})
    return out


@contextlib.contextmanager
def own_redis(work: Path):
    """A redis-server of the benchmark's own (a free loopback port, no persistence, its files in
    ``work``), stopped on exit; yields its URL. Benchmarks flush the database they use, so
    they never default to a Redis that was already running: it may hold someone's data."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_in_workdir(args: argparse.Namespace, prefix: str, run) -> int:
    """``run(args, work)`` in a fresh temporary directory (kept with ``--keep``); print its JSON line.

    A benchmark with a ``--redis-url`` option left unset gets a redis-server of its own
    (:func:`own_redis`) for the run."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with contextlib.ExitStack() as stack:
            if getattr(args, "redis_url", "") is None and getattr(args, "redis", True):
                args.redis_url = stack.enter_context(own_redis(work))
            out = run(args, work)
    finally:
        if args.keep:
            logging.getLogger("bench").info("kept %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in each /predict request (default 1000)")
    parser.add_argument("--repeats", type=int, default=30, help="timed warm requests (default 30)")
    parser.add_argument("--server", choices=("werkzeug", "gunicorn"), default="werkzeug",
                        help="python _wsgi.py (werkzeug) or gunicorn _wsgi:app (1 worker, 8 threads)")
    parser.add_argument("--project", type=int, default=7, help="Label Studio project id to pretend (default 7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the noun draw (default 1.1)")
    parser.add_argument("--rare", type=float, default=0.03, help="share of captions with a rare word (default 0.03)")
    parser.add_argument("--no-predictions", dest="with_predictions", action="store_false",
                        help="send tasks without another model's predictions")
    parser.add_argument("--timeout", type=float, default=600.0, help="HTTP timeout per request, seconds")
    parser.add_argument("--log-level", default="WARNING", help="the backend's LOG_LEVEL (default WARNING)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server log, store)")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.repeats < 1:
        parser.error("--tasks and --repeats must be at least 1")
    return run_in_workdir(args, "vlmine-bench-predict-", run)


if __name__ == "__main__":
    sys.exit(main())
