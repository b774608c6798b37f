"""What the report's labeling progress costs: Label Studio listings at each page request.

    .venv/bin/python bench/report_labeling.py --tasks 10000 --labeled 300

Starts a real Label Studio (tests/support/label_studio.py, its own data directory and port),
imports ``--tasks`` short captions with a Zipf vocabulary, labels ``--labeled`` of them
through the API, and mines them with the backend's rules (SQLite state). Timed, best of
``--repeat``: ``Engine.labeling_state`` for 200, 1,000 and 5,000 task ids (one listing per
200 ids), and ``collect`` (backend/server/report/data.py) with the default budget (5%) with a Label Studio connection
and without one (the page as it was before the progress view: the lookup is skipped).
Prints ONE JSON line.
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

from backend.engine.engine import Engine  # noqa: E402
from backend.server.report.data import collect  # noqa: E402
from backend.settings import Settings  # noqa: E402
from tests.support.label_studio import create_project, start_label_studio  # noqa: E402

CONFIG = ('<View><Text name="text" value="$text"/>'
          '<Choices name="label" toName="text"><Choice value="common"/><Choice value="rare"/></Choices></View>')
NOUNS = [f"thing{i}" for i in range(3000)]


def captions(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) ** 1.1 for i in range(len(NOUNS))]
    return [" ".join(["a"] + rng.choices(NOUNS, weights, k=3)) for _ in range(n)]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--labeled", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    texts = captions(args.tasks)
    ls = start_label_studio()
    try:
        pid, tids = create_project(ls, "report labeling bench", CONFIG, [{"text": t} for t in texts])
        chosen = random.Random(2).sample(tids, args.labeled)
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["rare"]}}]
        for task in chosen:
            ls.api("POST", f"/api/tasks/{task}/annotations/", json={"result": result})
        with tempfile.TemporaryDirectory() as tmp:
            connected = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "a"), label_studio_url=ls.base_url,
                                                 label_studio_api_key=ls.token))
            alone = Engine(Settings.from_env({}, model_dir=os.path.join(tmp, "b")))
            tasks = [{"id": t, "data": {"text": x}} for t, x in zip(tids, texts)]
            for engine in (connected, alone):
                for i in range(0, len(tasks), 2000):
                    engine.tasks.mine(pid, tasks[i:i + 2000], CONFIG)
            lookups = {}
            for k in (200, 1000, 5000):
                ids = tids[:k]
                lookups[str(k)] = round(best(lambda: connected.labeling_state(pid, ids), args.repeat), 3)
            collect(alone, pid)  # matplotlib's first import and font cache, untimed
            with_ls = best(lambda: collect(connected, pid), args.repeat)
            without = best(lambda: collect(alone, pid), args.repeat)
            data = collect(connected, pid)
            assert data.labeling is not None, data.labeling_note
    finally:
        ls.stop()
    print(json.dumps({
        "bench": "report_labeling", "tasks": args.tasks, "labeled": args.labeled, "budget": data.budget,
        "budget_labeled": data.labeling.budget_labeled, "asked": len(data.labeling.state),
        "labeling_state_s": lookups, "collect_with_label_studio_s": round(with_ls, 3),
        "collect_without_s": round(without, 3), "cpus": os.cpu_count(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
