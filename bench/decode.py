"""Decoding cost of big photos at IMAGE_DECODE_MIN_SIDE settings.

    .venv/bin/python bench/decode.py
    .venv/bin/python bench/decode.py --sizes 4000x3000,6000x4000 --min-sides 0,1024,672 --formats JPEG,PNG

Each photo is synthetic (smooth colour fields with grain, JPEG quality 90 like a camera's
output in size, or the same pixels as PNG). JPEGs shrink while decoding; other formats are
decoded in full, then reduced. Per size and setting: the milliseconds of ``ImageFetcher.decode`` (header,
decode, EXIF rotation, RGB), the decoded size and its memory, and the milliseconds of what
the endpoint describer then does with it (shrink to 2048 and re-encode as JPEG for the
request; ``endpoint_ms``). Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.pipeline.images import ImageFetcher  # noqa: E402
from backend.vlm.openai_vlm import encode_image  # noqa: E402


def photo(width: int, height: int, fmt: str = "JPEG") -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(width * 7 + height)
    base = Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-8, 9, size=(height, width, 1), dtype=np.int16)
    pixels = np.clip(np.asarray(base, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    else:
        Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4000x3000,6000x4000")
    parser.add_argument("--min-sides", default="0,1024,672", help="IMAGE_DECODE_MIN_SIDE values (0: full)")
    parser.add_argument("--formats", default="JPEG,PNG")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    rows = []
    cases = [(spec, fmt) for fmt in args.formats.upper().split(",") for spec in args.sizes.split(",")]
    for spec, fmt in cases:
        width, height = (int(v) for v in spec.lower().split("x"))
        data = photo(width, height, fmt)
        for side in (int(v) for v in args.min_sides.split(",")):
            fetcher = ImageFetcher(decode_min_side=side)
            times, sends = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                image = fetcher.decode(data)
                times.append(time.perf_counter() - started)
                started = time.perf_counter()
                encode_image(image, "JPEG", 2048)
                sends.append(time.perf_counter() - started)
            rows.append({"photo": spec, "format": fmt, "file_mb": round(len(data) / 2**20, 2), "min_side": side,
                         "decoded": f"{image.size[0]}x{image.size[1]}",
                         "decoded_mb": round(image.size[0] * image.size[1] * 3 / 2**20, 1),
                         "ms": round(statistics.median(times) * 1000, 1),
                         "endpoint_ms": round(statistics.median(sends) * 1000, 1)})
    report = {"bench": "decode", "repeat": args.repeat, "results": rows,
              "python": platform.python_version(), "machine": platform.machine()}
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
