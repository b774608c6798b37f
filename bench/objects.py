"""Object mining's cost: crops per second through both describers, and what cropping and
caching add per task against describing the whole image.

    .venv/bin/python bench/objects.py
    .venv/bin/python bench/objects.py --tasks 32 --objects 6 --delay 0.02 --concurrency 8

Each task is a decoded 1024x768 scene (what the pipeline holds after IMAGE_DECODE_MIN_SIDE)
with ``--objects`` detector boxes of 3-25% of the image side. Timed, on the package's own
calls (``backend.objects``), as the pipeline will make them per job:

* ``endpoint``: ``describe_crops`` of every crop of the job in one call to
  ``OpenAIDescriber`` against the test suite's OpenAI-compatible stand-in on loopback
  (``tests/support/fake_openai.py``), which sleeps ``--delay`` s per request to stand for
  the server's GPU time, and the whole images of the same tasks through the same describer;
* ``local``: the same through ``TransformersDescriber`` on the tiny random LLaVA of the
  tests (``tests/support/tiny_llava.py``, CPU): crops per second at ``--batch-size``; with
  ``--random-weights llava-1.5-7b`` on a GPU, the real 7B architecture with random weights
  (``bench/describe.py``'s builder, nothing downloaded), ``--max-new-tokens`` every time;
* ``overhead``: per task, cutting its crops (``cut_crops``), computing their cache keys and
  answering them all from the cache (a re-mined task), and indexing its objects in a
  SQLite index, against the time the whole image takes through the endpoint.

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from backend.mining import KeywordNormaliser  # noqa: E402
from backend.objects import (  # noqa: E402
    CropRules,
    MemoryCropCache,
    TaskObjectKeywords,
    cut_crops,
    describe_crops,
    index_objects,
    object_novelty,
    object_scope,
    objects_from_results,
)
from backend.state.sqlite_index import SQLiteIndex  # noqa: E402
from backend.vlm import DEFAULT_DESCRIBE_PROMPT, DEFAULT_OBJECT_PROMPT, OpenAIDescriber  # noqa: E402
from support.fake_openai import FakeOpenAI  # noqa: E402


def scene(seed: int, width: int = 1024, height: int = 768):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-8, 9, size=(height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(base, dtype=np.int16) + grain, 0, 255).astype(np.uint8))


def detections(seed: int, count: int) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    out = []
    for i in range(count):
        w, h = rng.uniform(3, 25, size=2)
        x, y = rng.uniform(0, 100 - w), rng.uniform(0, 100 - h)
        out.append({"id": f"r{i}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                    "original_width": 4032, "original_height": 3024, "score": float(rng.uniform(0.2, 1.0)),
                    "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                              "rectanglelabels": ["car"]}})
    return out


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32, help="tasks in the job (BATCH_SIZE)")
    parser.add_argument("--objects", type=int, default=6, help="detector boxes per task")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds the stand-in takes a request")
    parser.add_argument("--concurrency", type=int, default=8, help="VLM_API_CONCURRENCY")
    parser.add_argument("--batch-size", type=int, default=8, help="the local model's batch size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--random-weights", default=None, help="local model: an ARCH of bench/describe.py")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args(argv)

    rules = CropRules(margin=0.15, min_side=16, max_objects=16)
    images = [scene(t) for t in range(args.tasks)]
    hashes = [hashlib.sha256(im.tobytes()).hexdigest() for im in images]
    objects = [objects_from_results(detections(t, args.objects))[0] for t in range(args.tasks)]

    def cut_all():
        return [c for t in range(args.tasks) for c in cut_crops(t, images[t], hashes[t], objects[t], rules)[0]]

    crops = cut_all()
    cut_s = best_of(cut_all, args.repeat)
    kn = KeywordNormaliser()
    report: dict = {"bench": "objects", "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
                    f"Python {platform.python_version()}", "load_avg": [round(v, 2) for v in os.getloadavg()],
                    "tasks": args.tasks, "objects_per_task": args.objects, "crops": len(crops)}

    # -------------------------------------------------------------- endpoint
    with FakeOpenAI(delay=args.delay) as server:
        vlm = OpenAIDescriber(server.base_url, "bench-vlm", concurrency=args.concurrency)
        vlm.describe_each(images[: args.concurrency], "warm")
        crops_s = best_of(lambda: describe_crops(vlm, crops, DEFAULT_OBJECT_PROMPT), args.repeat)
        whole_s = best_of(lambda: vlm.describe_each(images, DEFAULT_DESCRIBE_PROMPT), args.repeat)
        cache = MemoryCropCache()
        described = describe_crops(vlm, crops, DEFAULT_OBJECT_PROMPT, keywords=kn.from_text, cache=cache)
        calls = server.calls
        cached_s = best_of(lambda: describe_crops(vlm, cut_all(), DEFAULT_OBJECT_PROMPT,
                                                  keywords=kn.from_text, cache=cache), args.repeat)
        assert server.calls == calls, "a cached crop reached the endpoint"
        vlm.close()
    report["endpoint"] = {
        "delay_s": args.delay, "concurrency": args.concurrency,
        "crops_per_s": round(len(crops) / crops_s, 1), "whole_images_per_s": round(args.tasks / whole_s, 1),
        "floor_crops_per_s": round(args.concurrency / args.delay, 1) if args.delay else None,
    }

    # -------------------------------------------------------------- index
    with tempfile.TemporaryDirectory() as tmp:
        index = SQLiteIndex(Path(tmp) / "index.sqlite3")
        scope = object_scope("p1:bench")
        mined: dict[int, list] = {t: [None] * len(objects[t]) for t in range(args.tasks)}
        for d in described:
            mined[d.crop.task_id][d.crop.slot] = d.keywords
        docs = {t: TaskObjectKeywords(objects=kws) for t, kws in mined.items()}
        index_s = best_of(lambda: index_objects(index, scope, docs), args.repeat)
        novelty_s = best_of(lambda: object_novelty(index.arrays(scope)), args.repeat)
        index.close()

    per_task = lambda s: round(1000 * s / args.tasks, 2)  # noqa: E731
    report["overhead_ms_per_task"] = {
        "cut_crops": per_task(cut_s),
        "cache_keys_and_hits": per_task(max(0.0, cached_s - cut_s)),
        "index_objects_sqlite": per_task(index_s),
        "object_novelty": per_task(novelty_s),
        "whole_image_endpoint": per_task(whole_s),
        "crops_endpoint": per_task(crops_s),
    }

    # -------------------------------------------------------------- local tiny model
    from backend.vlm import TransformersDescriber
    from support.tiny_llava import build_tiny_llava

    with tempfile.TemporaryDirectory() as tmp:
        if args.random_weights:
            import torch

            sys.path.insert(0, str(ROOT / "bench"))
            from describe import random_llava

            device = "cuda" if torch.cuda.is_available() else "cpu"
            model, processor = random_llava(args.random_weights, device,
                                            "bfloat16" if device == "cuda" else "float32", DEFAULT_OBJECT_PROMPT)
            local = TransformersDescriber.from_loaded(
                model, processor, name=f"random:{args.random_weights}", batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens, generation_kwargs={"min_new_tokens": args.max_new_tokens})
        else:
            local = TransformersDescriber(build_tiny_llava(Path(tmp) / "tiny"), device="cpu", dtype="float32",
                                          batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
            local.load()
        describe_crops(local, crops[: args.batch_size], DEFAULT_OBJECT_PROMPT)  # warm
        local_crops_s = best_of(lambda: describe_crops(local, crops, DEFAULT_OBJECT_PROMPT), args.repeat)
        local_whole_s = best_of(lambda: local.describe_each(images, DEFAULT_DESCRIBE_PROMPT), args.repeat)
    report["local"] = {
        "model": local.name if args.random_weights else "tiny random LLaVA (tests/support/tiny_llava.py)",
        "device": local.device, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "crops_per_s": round(len(crops) / local_crops_s, 1),
        "whole_images_per_s": round(args.tasks / local_whole_s, 1),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
