"""Write-back through the backend's own engine against a real Label Studio.

    .venv/bin/python bench/rerank.py                  # 10,000 tasks; starts Label Studio 1.23.2
    .venv/bin/python bench/rerank.py --tasks 2000

Steps, each timed until the new order is visible in the "Long-tail first" tab:
  first_write_s     Engine.rerank on a freshly mined project: every task's priority
                    imported in bulk, project.model_version switched, the tab created
  full_reorder_s    ScoresWriter.write_order with the order reversed: every priority changes,
                    so the planner bumps to a new generation (one bulk import + a switch)
  cleanup_s         deleting the old generation's predictions (done in the background
                    by the backend; the new order is visible before it starts)
Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.engine.engine import Engine  # noqa: E402
from backend.settings import Settings  # noqa: E402
from tests.support.label_studio import LS_VERSION, create_project, start_label_studio  # noqa: E402

CONFIG = ('<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/>'
          '<Choices name="c" toName="text"><Choice value="a"/></Choices></View>')
NOUNS = ("cat dog car bus man woman tree road house boat bird horse kite train chair table lamp phone "
         "bottle cup book clock bicycle truck street park beach field river bridge").split()


def captions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(NOUNS))]
    out = []
    for i in range(n):
        words = rng.choices(NOUNS, weights=weights, k=3)
        if rng.random() < 0.02:
            words.append(f"zork{i}")
        out.append("a " + " and a ".join(words))
    return out


def visible(engine: Engine, client, view: int, top: list[int], started: float, limit: float = 600) -> float:
    while [t["id"] for t in client.tasks_in_view(view, limit=len(top))] != top:
        if time.perf_counter() - started > limit:
            raise SystemExit("the new order never showed up")
        time.sleep(0.05)
    return round(time.perf_counter() - started, 3)


def run(server, n: int) -> dict:
    out: dict = {"bench": "rerank", "tasks": n, "label_studio": LS_VERSION}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"MODEL_DIR": tmp, "LABEL_STUDIO_URL": server.base_url,
                                      "LABEL_STUDIO_API_KEY": server.token})
        engine = Engine(settings)
        pid, ids = create_project(server, "rerank bench", CONFIG, [{"text": t} for t in captions(n)])
        started = time.perf_counter()
        tasks = [{"id": t, "data": {"text": c}} for t, c in zip(ids, captions(n))]
        for i in range(0, n, 1000):
            engine.tasks.mine(pid, tasks[i:i + 1000], CONFIG)
        out["mine_s"] = round(time.perf_counter() - started, 3)
        client = engine.label_studio()

        started = time.perf_counter()
        report = engine.rerank(pid)
        view = engine.project(pid).view_id
        order, _ = engine.ranker.rank(pid)
        out["first_write_s"] = visible(engine, client, view, order[:20], started)
        out["first_write"] = {k: report[k] for k in ("imported", "patched", "bump", "seconds")}

        started = time.perf_counter()
        report = engine.writer.write_order(pid, order[::-1])
        out["full_reorder_s"] = visible(engine, client, view, order[::-1][:20], started)
        out["full_reorder"] = {k: report[k] for k in ("imported", "patched", "bump", "seconds")}

        started = time.perf_counter()
        client.delete_model_version(pid, report["old_version"])
        out["cleanup_s"] = round(time.perf_counter() - started, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=10_000)
    args = ap.parse_args()
    server = start_label_studio()
    try:
        result = run(server, args.tasks)
    finally:
        server.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
