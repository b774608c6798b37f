"""What object mining adds to a ranking through the engine (SQLite state).

    .venv/bin/python bench/object_ranking.py --tasks 20000 --objects 8

Two engines rank the same synthetic project (Zipf keywords, about 8 per image and 4 per
object) through ``Engine.ranking``, the one ranking path of the server and the offline
command: one with OBJECT_MINING off (the image scope only), one with it on (the image
scope, ``--objects`` object documents per task plus the scene, and each task's recorded
object uncertainty). Also timed: ``Engine.explanations`` of 100 tasks with object
mining on (the rarest object of each, the TextArea and the highlighted box). The index
and records are written first, untimed. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.engine.engine import Engine  # noqa: E402
from backend.labelstudio.config import LabelConfig  # noqa: E402
from backend.objects import OBJECT_SLOTS, SCENE_SLOT  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.state import TaskRecord  # noqa: E402

CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="det" toName="image">'
          '<Label value="car"/></RectangleLabels><TextArea name="vlmine" toName="image"/></View>')


def words(rng: np.random.Generator, n: int, vocab: int) -> list[str]:
    return sorted({f"w{int(k)}" for k in np.minimum(rng.zipf(1.3, n), vocab)})


def build(engine: Engine, pid: int, n: int, objects: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    engine.project(pid, CONFIG)
    images = {t: words(rng, 8, 5000) for t in range(1, n + 1)}
    engine.index.upsert_many(engine.scope(pid), images)
    records = []
    if objects:
        docs = {}
        for t in range(1, n + 1):
            for slot in range(objects):
                docs[t * OBJECT_SLOTS + slot] = words(rng, 4, 2000)
            docs[t * OBJECT_SLOTS + SCENE_SLOT] = images[t]
        engine.index.upsert_many(engine.object_scope(pid), docs)
    for t in range(1, n + 1):
        items = [{"slot": s, "label": "car", "score": float(rng.uniform(0.3, 1.0)),
                  "box": [0.1, 0.1, 0.3, 0.3], "region": None, "size": [800, 600], "mined": True}
                 for s in range(objects)]
        rec_objects = json.dumps({"digest": "x", "items": items, "errors": []}) if objects else None
        sig = {"object_uncertainty": 1 - min(i["score"] for i in items)} if objects else {}
        records.append(TaskRecord(t, engine.mining_hash, "mined", "a scene", None, sig, "d", rec_objects))
    engine.store.save_tasks(pid, records)


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return round(best, 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--objects", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "off"), head_diversity=0.0))
        on = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "on"), object_mining=True, head_diversity=0.0))
        started = time.perf_counter()
        build(off, 1, args.tasks, 0, 1)
        build(on, 1, args.tasks, args.objects, 1)
        setup_s = time.perf_counter() - started
        off_s = timed(lambda: off.ranking(1), args.repeat)
        on_s = timed(lambda: on.ranking(1), args.repeat)
        _, result = on.ranking(1)
        ids = list(range(1, 101))
        config = LabelConfig.parse(CONFIG)
        explain_s = timed(lambda: on.explanations(1, config, ids), args.repeat)
        explained = on.explanations(1, config, ids)
    print(json.dumps({
        "bench": "object_ranking", "tasks": args.tasks, "objects_per_task": args.objects,
        "ranking_off_s": off_s, "ranking_on_s": on_s, "signals_on": sorted(result.signals),
        "explanations_100_on_s": explain_s,
        "highlighted": sum(any(r["type"] == "rectanglelabels" for r in res) for res in explained.values()),
        "setup_s": round(setup_s, 1), "cpus": os.cpu_count(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
