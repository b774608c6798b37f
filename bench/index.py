"""Ingestion rate of the keyword index (SQLite batched, Redis) and arrays() time.

Each task gets 8 distinct keywords drawn from a Zipf vocabulary; tasks are written
with ``upsert_many`` in batches. Prints one JSON line.

    python bench/index.py --tasks 200000 [--batch 1000] [--backends sqlite redis]

Redis: a redis-server of the benchmark's own (free loopback port, temporary directory),
unless ``--redis-url`` names one; then only keys under a fresh ``vlmine-bench-*`` prefix are
written, and they are removed afterwards. A Redis that was already running is never used
by default: it may hold someone's data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backend.mining.keyword_index import KeywordIndex  # noqa: E402
from backend.state.redis_index import RedisIndex  # noqa: E402
from backend.state.sqlite_index import SQLiteIndex  # noqa: E402
from predict import own_redis  # noqa: E402


def keyword_sets(n_tasks: int, vocab: int, per_task: int, seed: int) -> list[list[str]]:
    """n_tasks lists of ``per_task`` distinct words, Zipf-distributed."""
    rng = np.random.default_rng(seed)
    names = [f"kw{i}" for i in range(vocab)]
    draws = (rng.zipf(1.1, (n_tasks, per_task * 3)) - 1) % vocab
    out = []
    for row in draws:
        distinct = list(dict.fromkeys(row.tolist()))[:per_task]
        out.append([names[k] for k in distinct])
    return out


def run(index: KeywordIndex, scope: str, sets: list[list[str]], batch: int) -> dict[str, float]:
    index.drop_scope(scope)
    t0 = time.perf_counter()
    for lo in range(0, len(sets), batch):
        index.upsert_many(scope, {lo + i: kws for i, kws in enumerate(sets[lo : lo + batch])})
    t1 = time.perf_counter()
    # Re-mining the first batch: replaces, never double counts.
    index.upsert_many(scope, {i: kws for i, kws in enumerate(sets[:batch])})
    t2 = time.perf_counter()
    arrays = index.arrays(scope)
    t3 = time.perf_counter()
    assert arrays.n_tasks == len(sets)
    assert int(arrays.df.sum()) == sum(len(s) for s in sets)
    index.drop_scope(scope)
    return {
        "ingest_tasks_per_s": round(len(sets) / (t1 - t0)),
        "reupsert_tasks_per_s": round(min(batch, len(sets)) / (t2 - t1)),
        "arrays_s": round(t3 - t2, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--vocab", type=int, default=50_000)
    ap.add_argument("--keywords", type=int, default=8)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "redis"])
    ap.add_argument("--redis-url", default=None,
                    help="a Redis to measure (keys under a fresh prefix, removed after); "
                         "default: a redis-server of the benchmark's own")
    args = ap.parse_args()

    sets = keyword_sets(args.tasks, args.vocab, args.keywords, seed=0)
    out: dict[str, object] = {
        "bench": "index",
        "tasks": args.tasks,
        "batch": args.batch,
        "keywords_per_task": args.keywords,
    }
    if "sqlite" in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            with SQLiteIndex(os.path.join(tmp, "index.sqlite3")) as idx:
                out["sqlite"] = run(idx, "bench", sets, args.batch)
    if "redis" in args.backends:
        import redis

        prefix = f"vlmine-bench-{uuid.uuid4().hex[:8]}"
        with contextlib.ExitStack() as stack:
            url = args.redis_url
            if url is None:
                url = stack.enter_context(own_redis(Path(stack.enter_context(tempfile.TemporaryDirectory()))))
            with RedisIndex(redis.Redis.from_url(url), prefix=prefix, owns_client=True) as idx:
                out["redis"] = run(idx, "bench", sets, args.batch)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
