"""Reading detection data for ``python -m backend mine``: seconds to turn a COCO-format file
into the tasks the engine mines, before any image is described.

    .venv/bin/python bench/detections.py
    .venv/bin/python bench/detections.py --images 118287 --annotations 860001   # COCO train2017's size

A synthetic COCO detections file (``--images`` entries with width/height, ``--annotations``
boxes with a score on random images, 80 categories) is written to a temporary folder with
one real image file (the folder check needs one), then read by ``load_source`` as the
command reads it: conversion of every box to a percent region, the rows' local paths, the
boxes' digest in each item's signature. The same boxes as JSONL rows (``boxes`` in pixels,
each row stating its size) are timed too. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000, help="images (default: COCO val2017's 5000)")
    p.add_argument("--annotations", type=int, default=36781, help="boxes (default: COCO val2017's 36781)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from PIL import Image

    from backend.offline.sources import load_source
    from backend.settings import Settings

    rng = random.Random(args.seed)
    settings = Settings.from_env({})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        Image.new("RGB", (640, 480)).save(root / "images" / f"{0:012d}.jpg")
        images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(args.images)]
        on = [rng.randrange(args.images) for _ in range(args.annotations)]
        boxes = [[rng.uniform(0, 560), rng.uniform(0, 420), rng.uniform(8, 80), rng.uniform(8, 60)]
                 for _ in range(args.annotations)]
        anns = [{"id": k, "image_id": on[k], "bbox": boxes[k], "category_id": rng.randint(1, 80),
                 "score": rng.random()} for k in range(args.annotations)]
        coco = root / "detections.json"
        coco.write_text(json.dumps({"images": images, "annotations": anns,
                                    "categories": [{"id": c, "name": f"class {c}"} for c in range(1, 81)]}))
        per_image: list[list[dict]] = [[] for _ in range(args.images)]
        for k in range(args.annotations):
            per_image[on[k]].append({"bbox": boxes[k], "label": "car", "score": 0.5})
        rows = root / "boxes.jsonl"
        with open(rows, "w") as fh:
            for i in range(args.images):
                fh.write(json.dumps({"id": i, "image": f"images/{i:012d}.jpg", "width": 640, "height": 480,
                                     "boxes": per_image[i]}) + "\n")

        t = time.perf_counter()
        ds = load_source(str(coco), None, settings, images=str(root / "images"))
        coco_s = time.perf_counter() - t
        assert len(ds.items) == args.images and ds.objects is not None
        t = time.perf_counter()
        ds = load_source(str(rows), None, settings)
        rows_s = time.perf_counter() - t
        assert len(ds.items) == args.images and ds.objects is not None
    print(json.dumps({
        "bench": "detections", "images": args.images, "annotations": args.annotations,
        "coco_s": round(coco_s, 2), "coco_boxes_per_s": round(args.annotations / coco_s),
        "jsonl_rows_s": round(rows_s, 2), "jsonl_boxes_per_s": round(args.annotations / rows_s),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
