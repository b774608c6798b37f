"""Taking the backend's explanation out of submitted annotations, against a real Label Studio.

    .venv/bin/python bench/annotation_cleanup.py                     # 10,000 tasks, 500 annotated
    .venv/bin/python bench/annotation_cleanup.py --tasks 2000 --annotated 200

A text project with the ``vlmine`` TextArea is mined and written back by the backend's own
engine; then annotations are made as Label Studio makes them with prelabeling on (the
choice plus the copied explanation), one in five with a note typed under the explanation.

Prints ONE JSON line (seconds unless named otherwise):
  first_write_s          setup: the first write-back (every explanation written)
  export_s               the sync's read of the annotated tasks (one export request)
  prediction_results_s   the project's predictions with their results (one request): what
                         the sweep compares annotations with
  explanations_s         the explanations the engine would write now, for the annotated tasks
  sweep_s / swept        a sync's whole clean-up (the three reads above, then one PATCH per
                         annotation holding a line of the backend's) and how many it cleaned
  sweep_again_s          the next sync: nothing left to clean, but the annotations with a
                         note still hold the TextArea, so the reads are made again
  webhook_check_s        mean of 20 single-annotation checks, as after an annotation webhook
                         (read the annotation, the task's predictions, compare, PATCH)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.rerank import CONFIG, captions  # noqa: E402
from backend.engine.engine import Engine  # noqa: E402
from backend.settings import Settings  # noqa: E402
from tests.support.label_studio import LS_VERSION, create_project, start_label_studio  # noqa: E402

NOTE = "annotator note: looks like a tram"


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 3)


def run(server, n: int, annotated: int) -> dict:
    out: dict = {"bench": "annotation_cleanup", "tasks": n, "annotated": annotated, "label_studio": LS_VERSION}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"MODEL_DIR": tmp, "LABEL_STUDIO_URL": server.base_url,
                                      "LABEL_STUDIO_API_KEY": server.token})
        engine = Engine(settings)
        texts = captions(n)
        pid, ids = create_project(server, "annotation cleanup bench", CONFIG, [{"text": t} for t in texts])
        tasks = [{"id": t, "data": {"text": c}} for t, c in zip(ids, texts)]
        for i in range(0, n, 1000):
            engine.tasks.mine(pid, tasks[i:i + 1000], CONFIG)
        _, out["first_write_s"] = timed(lambda: engine.rerank(pid))
        client = engine.label_studio()
        held = {p["task"]: p["result"] for p in client.prediction_results(project_id=pid)}

        def annotate(task: int, with_note: bool) -> int:
            copied = next(r for r in held[task] if r["from_name"] == "vlmine")
            if with_note:
                copied = {**copied, "value": {"text": [*copied["value"]["text"], NOTE]}}
            chosen = {"from_name": "c", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}
            return server.api("POST", f"/api/tasks/{task}/annotations/",
                              json={"result": [chosen, copied]}).json()["id"]

        for i, task in enumerate(ids[:annotated]):
            annotate(task, with_note=i % 5 == 0)

        cleaner = engine.annotation_cleaner
        _, out["export_s"] = timed(lambda: client.annotated_tasks(pid))
        _, out["prediction_results_s"] = timed(lambda: client.prediction_results(project_id=pid))
        config = engine.config(engine.project(pid))
        _, out["explanations_s"] = timed(lambda: engine.explainer.explanations(pid, config, ids[:annotated]))
        out["swept"], out["sweep_s"] = timed(lambda: cleaner.sweep(pid))
        assert out["swept"] == annotated, out
        again, out["sweep_again_s"] = timed(lambda: cleaner.sweep(pid))
        assert again == 0

        fresh = [annotate(t, with_note=False) for t in ids[annotated:annotated + 20]]
        checks = []
        for aid in fresh:
            done, seconds = timed(lambda aid=aid: cleaner._run_one(pid, aid))
            assert done == 1
            checks.append(seconds)
        out["webhook_check_s"] = round(statistics.mean(checks), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--annotated", type=int, default=500)
    args = ap.parse_args()
    server = start_label_studio()
    try:
        result = run(server, args.tasks, args.annotated)
    finally:
        server.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
