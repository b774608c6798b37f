"""What the report's object view costs: ``collect`` (backend/server/report/data.py) with object mining off and on.

    .venv/bin/python bench/report_objects.py --tasks 20000 --objects 8

The same synthetic project as ``bench/object_ranking.py`` (its ``build``: Zipf keywords,
about 8 per image and 4 per object, SQLite state), once without objects and once with
``--objects`` object documents per task plus the scene. Timed: the whole of
``collect`` (the ranking, the charts, the rarest keywords and, when on, the object
view), best of ``--repeat``, and the object view alone. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.engine.engine import Engine  # noqa: E402
from backend.server.report.data import collect, object_view  # noqa: E402
from backend.server.report.page import render_page  # noqa: E402
from backend.settings import Settings  # noqa: E402


def object_ranking_bench():
    """bench/object_ranking.py as a module: its ``build`` is the one synthetic project."""
    spec = importlib.util.spec_from_file_location("object_ranking", ROOT / "bench" / "object_ranking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--objects", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    bench = object_ranking_bench()
    with tempfile.TemporaryDirectory() as tmp:
        off = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "off"), head_diversity=0.0))
        on = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "on"), object_mining=True, head_diversity=0.0))
        bench.build(off, 1, args.tasks, 0, 1)
        bench.build(on, 1, args.tasks, args.objects, 1)
        collect(off, 1)  # matplotlib's first import and font cache, untimed
        off_s = bench.timed(lambda: collect(off, 1), args.repeat)
        on_s = bench.timed(lambda: collect(on, 1), args.repeat)
        _, result = on.ranker.rank(1)
        view_s = bench.timed(lambda: object_view(on, 1, result), args.repeat)
        view = object_view(on, 1, result)
        page = render_page(collect(on, 1), "n")
    print(json.dumps({
        "bench": "report_objects", "tasks": args.tasks, "objects_per_task": args.objects,
        "collect_off_s": off_s, "collect_on_s": on_s, "object_view_s": view_s,
        "object_documents": view.n_objects if view else 0, "rarest_rows": len(view.rarest) if view else 0,
        "page_kb_on": round(len(page.encode()) / 1024, 1),
        "cpus": os.cpu_count(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
