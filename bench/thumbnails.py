"""What the report's crop thumbnails cost: bytes per task, encoding time, and the engine's
per-batch choice of which one to keep.

    .venv/bin/python bench/thumbnails.py --tasks 20000 --objects 8

* Sizes: ``objects.thumbnail_jpeg`` of (a) every crop of the test data's street scenes
  (tests/support/street_scenes.py: flat colours, 40 scenes), cut by ``objects.cut_crops``
  as the pipeline does, and (b) 200 crops at random boxes (10-60% of each side) of a real
  photo, matplotlib's sample ``grace_hopper.jpg`` (512 x 600), the margin as the pipeline's.
* Encoding: the mean time of one thumbnail from those photo crops, and from a 2000 x 1500
  crop (the photo enlarged: a big decoded image).
* Keeping: ``ProjectTasks.keep_thumbnails`` for a batch of ``--batch`` tasks (each with a
  thumbnail for every slot) on the synthetic project of ``bench/object_ranking.py`` (its
  ``build``: ``--tasks`` tasks, ``--objects`` objects each plus the scene, SQLite state):
  the object scope's novelty, the rarest slot of each task and the store's write, best of
  ``--repeat``. This runs once per mined batch with object mining on.

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from backend.engine.engine import Engine  # noqa: E402
from backend.objects import Box, CropRules, DetectedObject, cut_crops, thumbnail_jpeg  # noqa: E402
from backend.pipeline.miner import MinedTask  # noqa: E402
from backend.settings import Settings  # noqa: E402
from tests.support.street_scenes import HEIGHT, WIDTH, street_scene  # noqa: E402


def object_ranking_bench():
    """bench/object_ranking.py as a module: its ``build`` is the one synthetic project."""
    spec = importlib.util.spec_from_file_location("object_ranking", ROOT / "bench" / "object_ranking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def street_sizes() -> list[int]:
    sizes = []
    for seed in range(40):
        scene = street_scene(seed, rare=seed % 10 == 0)
        image = Image.open(io.BytesIO(scene.png)).convert("RGB")
        objects = [DetectedObject(Box(b.left / WIDTH, b.top / HEIGHT, (b.left + b.width) / WIDTH,
                                      (b.top + b.height) / HEIGHT), b.label, b.score) for b in scene.boxes]
        crops, _ = cut_crops(seed, image, "h", objects, CropRules())
        sizes += [len(thumbnail_jpeg(c.image)) for c in crops]
    return sizes


def photo() -> Image.Image:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return Image.open(path).convert("RGB")


def photo_crops(image: Image.Image, n: int, seed: int = 5) -> list[Image.Image]:
    rng = random.Random(seed)
    objects = []
    for _ in range(n):
        w, h = rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.6)
        x, y = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
        objects.append(DetectedObject(Box(x, y, x + w, y + h), "thing", 0.5))
    crops = []
    for i in range(0, n, 16):  # cut_crops takes at most max_objects (16) per call
        cut, _ = cut_crops(i, image, "h", objects[i:i + 16], CropRules())
        crops += [c.image for c in cut]
    return crops


def mean_ms(fn, items) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return round(1000 * (time.perf_counter() - started) / len(items), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--objects", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    streets = street_sizes()
    image = photo()
    crops = photo_crops(image, 200)
    photos = [len(thumbnail_jpeg(c)) for c in crops]
    encode_ms = mean_ms(thumbnail_jpeg, crops)
    big = image.resize((2000, 2344)).crop((0, 0, 2000, 1500))
    big_ms = mean_ms(thumbnail_jpeg, [big] * 20)

    bench = object_ranking_bench()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "on"), object_mining=True,
                                          head_diversity=0.0))
        bench.build(engine, 1, args.tasks, args.objects, 1)
        jpeg = thumbnail_jpeg(crops[0])
        batch = [MinedTask(t, ["x"], thumbnails={s: jpeg for s in range(args.objects)})
                 for t in range(1, args.batch + 1)]
        keep_s = bench.timed(lambda: engine.tasks.keep_thumbnails(1, batch), args.repeat)
        kept = engine.view(1).thumbnails(range(1, args.batch + 1))
    print(json.dumps({
        "bench": "thumbnails", "street_crops": len(streets), "street_bytes_mean": round(statistics.mean(streets)),
        "street_bytes_max": max(streets), "photo_crops": len(photos), "photo_bytes_mean": round(statistics.mean(photos)),
        "photo_bytes_p95": sorted(photos)[int(0.95 * len(photos))], "photo_bytes_max": max(photos),
        "encode_ms_photo_crop": encode_ms, "encode_ms_2000x1500": big_ms,
        "tasks": args.tasks, "objects_per_task": args.objects, "batch": args.batch, "keep_batch_s": keep_s,
        "kept": len(kept), "cpus": os.cpu_count(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
