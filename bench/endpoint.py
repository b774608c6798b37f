"""The endpoint describer's own cost per call: shrinking and encoding big images, requests in flight.

    .venv/bin/python bench/endpoint.py
    .venv/bin/python bench/endpoint.py --images 32 --size 3000x2000 --delay 0.05 --concurrency 8

One ``OpenAIDescriber.describe_each`` call, as the mining pipeline makes it per job, against
the test suite's OpenAI-compatible stand-in on loopback (``tests/support/fake_openai.py``),
which sleeps ``--delay`` seconds per request to stand for the server's GPU time. The images
are decoded photos of ``--size`` (what IMAGE_DECODE_MIN_SIDE=1024 leaves of a 24 MP photo is
3000x2000); the describer shrinks each to 2048 and encodes it as JPEG. ``floor_s`` is the
time the requests alone need at that concurrency. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from backend.vlm.openai_vlm import OpenAIDescriber  # noqa: E402
from support.fake_openai import FakeOpenAI  # noqa: E402


def photo(width: int, height: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(width * 7 + height)
    base = Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-8, 9, size=(height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(base, dtype=np.int16) + grain, 0, 255).astype(np.uint8))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32, help="images in the call (BATCH_SIZE)")
    parser.add_argument("--size", default="3000x2000")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the stand-in takes a request")
    parser.add_argument("--concurrency", type=int, default=8, help="VLM_API_CONCURRENCY")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    width, height = (int(v) for v in args.size.lower().split("x"))
    base = photo(width, height)
    images = [base.copy() for _ in range(args.images)]
    times = []
    with FakeOpenAI(delay=args.delay) as server:
        vlm = OpenAIDescriber(server.base_url, "bench-vlm", concurrency=args.concurrency)
        vlm.describe_each(images[: args.concurrency], "Describe.")  # warm: sessions, pool
        for _ in range(args.repeat):
            started = time.perf_counter()
            results = vlm.describe_each(images, "Describe.")
            times.append(time.perf_counter() - started)
            assert all(isinstance(r, str) for r in results), results
        vlm.close()
    floor = math.ceil(args.images / args.concurrency) * args.delay
    report = {"bench": "endpoint", "images": args.images, "size": args.size, "delay_s": args.delay,
              "concurrency": args.concurrency, "seconds": round(statistics.median(times), 3),
              "seconds_min": round(min(times), 3), "images_per_s": round(args.images / statistics.median(times), 1),
              "floor_s": round(floor, 3), "repeat": args.repeat, "cpus": os.cpu_count(),
              "python": platform.python_version()}
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
