"""What object mining adds to a ranking through the engine (SQLite state).

    .venv/bin/python bench/object_ranking.py --tasks 20000 --objects 8

Two engines rank the same synthetic project (Zipf keywords, about 8 per image and 4 per
object) through ``Ranking.rank``, the one ranking path of the server and the offline
command: one with OBJECT_MINING off (the image scope only), one with it on (the image
scope, ``--objects`` object documents per task plus the scene, and each task's recorded
object uncertainty). Also timed: ``Explainer.explanations`` of 100 tasks with object
mining on (the rarest object of each, the TextArea and the highlighted box). The index
and records are written first, untimed. Prints ONE JSON line.

    .venv/bin/python bench/object_ranking.py --scenes 20

``--scenes K`` measures where rare objects land instead, on K seeds of a detection
project whose scenes differ: 150 images of five kinds of street scene (a city street, a
park road, a desert road, a snowy street, a street at night; 50, 35, 30, 20 and 15 of
them), each described by its kind's words plus a few common extras (sky, tree, sign...),
so scene novelty varies a little from image to image; three detector boxes per image
(cars, trucks, buses), and in six images, spread over the kinds, a horse trailer (scored
like the rest). Twice: every box scored 0.9 (as the end-to-end test's detector does:
the object uncertainty is the same for all), and scores drawn from 0.5-0.95 (the
uncertainty then varies as much as the novelty does). It reports the trailers' places in
the queue (``Ranking.rank``, head diversity at its default and off): how many are in
the first 10, the mean and the worst place.
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


SCENE_KINDS = (  # (how many images, the kind's words)
    (50, ["street", "city", "building"]),
    (35, ["road", "park", "grass"]),
    (30, ["road", "desert", "sand"]),
    (20, ["street", "snow", "winter"]),
    (15, ["street", "night", "lamp"]),
)
SCENE_EXTRAS = ["sky", "tree", "sign", "person", "pole", "fence", "cloud", "bicycle", "wall", "window"]
VEHICLES = [["car", "sedan"], ["car", "hatchback"], ["truck", "pickup"], ["bus", "city"], ["car", "taxi"]]
TRAILER_IMAGES = (3, 60, 95, 120, 140, 148)  # one in each kind, two in the city


def build_scenes(engine: Engine, pid: int, seed: int, varied_scores: bool) -> list[int]:
    """The project of five scene kinds with six horse trailers; returns the trailers' task ids."""
    rng = np.random.default_rng(seed)
    engine.project(pid, CONFIG)
    kinds = [words for size, words in SCENE_KINDS for _ in range(size)]
    images, docs, records = {}, {}, []
    for t, kind in enumerate(kinds, start=1):
        extras = rng.choice(SCENE_EXTRAS, size=int(rng.integers(1, 4)), replace=False,
                            p=np.linspace(2, 1, len(SCENE_EXTRAS)) / np.linspace(2, 1, len(SCENE_EXTRAS)).sum())
        images[t] = sorted(set(kind) | set(extras.tolist()) | {"car"})
        objects = [VEHICLES[int(rng.integers(len(VEHICLES)))] + [str(rng.choice(["blue", "red", "white", "black"]))]
                   for _ in range(3)]
        if t - 1 in TRAILER_IMAGES:
            objects.append(["trailer", "horse", "hitch"])
        for slot, kws in enumerate(objects):
            docs[t * OBJECT_SLOTS + slot] = kws
        docs[t * OBJECT_SLOTS + SCENE_SLOT] = images[t]
        items = [{"slot": s, "label": "car", "score": float(rng.uniform(0.5, 0.95)) if varied_scores else 0.9,
                  "box": [0.1, 0.1, 0.3, 0.3], "region": None, "size": [800, 600], "mined": True}
                 for s in range(len(objects))]
        records.append(TaskRecord(t, engine.mining_hash, "mined", "a scene", None,
                                  {"object_uncertainty": 1 - min(i["score"] for i in items)}, "d",
                                  json.dumps({"digest": "x", "items": items, "errors": []})))
    engine.index.upsert_many(engine.scope(pid), images)
    engine.index.upsert_many(engine.object_scope(pid), docs)
    engine.store.save_tasks(pid, records)
    return [i + 1 for i in TRAILER_IMAGES]


def scene_places(seeds: int) -> dict:
    """The trailers' places over ``seeds`` projects: detector scores all alike or varied,
    head diversity at its default and off."""
    out = {}
    for label, diversity, varied in (("same_scores", None, False), ("same_scores_head_off", 0.0, False),
                                     ("varied_scores", None, True), ("varied_scores_head_off", 0.0, True)):
        in_first_10, places = [], []
        with tempfile.TemporaryDirectory() as tmp:
            extra = {} if diversity is None else {"head_diversity": diversity}
            for seed in range(seeds):
                engine = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, str(seed)), object_mining=True,
                                                  **extra))
                trailers = build_scenes(engine, 1, seed, varied)
                order, _ = engine.ranker.rank(1)
                where = sorted(order.index(t) + 1 for t in trailers)
                places.append(where)
                in_first_10.append(sum(p <= 10 for p in where))
        out[label] = {"trailers_in_first_10_mean": round(float(np.mean(in_first_10)), 2),
                      "trailers_in_first_10_min": int(min(in_first_10)),
                      "place_mean": round(float(np.mean(places)), 1), "place_worst": int(np.max(places)),
                      "places_seed0": places[0]}
    return out


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
    ap.add_argument("--scenes", type=int, default=0, help="seeds of the scene-kind project (places, not times)")
    args = ap.parse_args()
    if args.scenes:
        print(json.dumps({"bench": "object_ranking_scenes", "tasks": 150, "trailers": len(TRAILER_IMAGES),
                          "seeds": args.scenes, **scene_places(args.scenes), "cpus": os.cpu_count(),
                          "python": platform.python_version()}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        off = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "off"), head_diversity=0.0))
        on = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "on"), object_mining=True, head_diversity=0.0))
        started = time.perf_counter()
        build(off, 1, args.tasks, 0, 1)
        build(on, 1, args.tasks, args.objects, 1)
        setup_s = time.perf_counter() - started
        off_s = timed(lambda: off.ranker.rank(1), args.repeat)
        on_s = timed(lambda: on.ranker.rank(1), args.repeat)
        _, result = on.ranker.rank(1)
        ids = list(range(1, 101))
        config = LabelConfig.parse(CONFIG)
        explain_s = timed(lambda: on.explainer.explanations(1, config, ids), args.repeat)
        explained = on.explainer.explanations(1, config, ids)
    print(json.dumps({
        "bench": "object_ranking", "tasks": args.tasks, "objects_per_task": args.objects,
        "ranking_off_s": off_s, "ranking_on_s": on_s, "signals_on": sorted(result.signals),
        "explanations_100_on_s": explain_s,
        "highlighted": sum(any(r["type"] == "rectanglelabels" for r in res) for res in explained.values()),
        "setup_s": round(setup_s, 1), "cpus": os.cpu_count(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
