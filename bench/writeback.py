"""Write-back costs against a real Label Studio with N tasks (default 10,000).

    .venv/bin/python bench/writeback.py                 # starts Label Studio 1.23.2 itself
    .venv/bin/python bench/writeback.py --tasks 2000
    .venv/bin/python bench/writeback.py --url http://127.0.0.1:8080 --token TOKEN

Prints ONE JSON line (seconds unless named otherwise):
  import_tasks_s            setup: importing the N tasks (not write-back)
  import_predictions_s      bulk import of N predictions (backend.labelstudio.client, 5000 a request)
  list_predictions_s        list_predictions of the project (N rows, raw JSON)
  list_predictions_sdk_s    the same endpoint through the SDK's typed predictions.list, for comparison
  set_model_version_s       PATCH project model_version
  tasks_in_view_top100_s    first 100 tasks of the priority tab
  iter_tasks_s              every task with data and predictions (page_size 1000)
  rewrite_to_new_order_s    from starting a full re-write (import N under a new version, then
                            set_model_version) until tasks_in_view shows the new order
  rewrite_import_s / rewrite_switch_s   its two parts
  delete_model_version_s    deleting the N predictions of the old version
  patch_one_score_s         mean of 20 single-score PATCHes
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.labelstudio.client import PREDICTION_SCORE_DESC, LabelStudioClient  # noqa: E402
from tests.support.label_studio import LS_VERSION, create_project, start_label_studio  # noqa: E402

CONFIG = '<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/></View>'


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 3)


def run(url: str, token: str, n: int, server=None) -> dict:
    out: dict = {"bench": "writeback", "tasks": n, "label_studio": LS_VERSION if server else url}
    rng = random.Random(0)
    texts = [{"text": f"task {i} " + " ".join(rng.choice("abcdefgh") * 3 for _ in range(6))} for i in range(n)]
    if server is not None:
        (pid, tids), out["import_tasks_s"] = timed(lambda: create_project(server, "writeback bench", CONFIG, texts))
    else:
        import requests

        headers = {"Authorization": f"Token {token}"}
        started = time.perf_counter()
        pid = requests.post(f"{url}/api/projects/", json={"title": "writeback bench", "label_config": CONFIG},
                            headers=headers, timeout=60).json()["id"]
        tids = requests.post(f"{url}/api/projects/{pid}/import", params={"return_task_ids": "true"},
                             json=texts, headers=headers, timeout=600).json()["task_ids"]
        out["import_tasks_s"] = round(time.perf_counter() - started, 3)
    client = LabelStudioClient(url, token)

    scores_a = {t: rng.random() for t in tids}
    scores_b = {t: rng.random() for t in tids}
    preds_a = [{"task": t, "score": s, "model_version": "bench-a", "result": []} for t, s in scores_a.items()]
    preds_b = [{"task": t, "score": s, "model_version": "bench-b", "result": []} for t, s in scores_b.items()]

    count, out["import_predictions_s"] = timed(lambda: client.import_predictions(pid, preds_a))
    assert count == n, count
    rows, out["list_predictions_s"] = timed(lambda: client.list_predictions(pid))
    assert len(rows) == n, len(rows)
    typed, out["list_predictions_sdk_s"] = timed(lambda: client.sdk.predictions.list(project=pid))
    assert len(typed) == n
    _, out["set_model_version_s"] = timed(lambda: client.set_model_version(pid, "bench-a"))
    view = client.ensure_view(pid, "VLMine bench", PREDICTION_SCORE_DESC)
    top_a = sorted(tids, key=lambda t: -scores_a[t])[:100]
    shown, out["tasks_in_view_top100_s"] = timed(lambda: [t["id"] for t in client.tasks_in_view(view, limit=100)])
    assert shown == top_a, "tab not in score order"
    tasks, out["iter_tasks_s"] = timed(lambda: sum(1 for _ in client.iter_tasks(pid)))
    assert tasks == n

    # a full re-write: every score under a new version, then switch the project to it
    top_b = sorted(tids, key=lambda t: -scores_b[t])[:20]
    started = time.perf_counter()
    client.import_predictions(pid, preds_b)
    imported = time.perf_counter()
    client.set_model_version(pid, "bench-b")
    switched = time.perf_counter()
    while [t["id"] for t in client.tasks_in_view(view, limit=20)] != top_b:
        if time.perf_counter() - started > 600:
            raise SystemExit("new order never showed up")
        time.sleep(0.05)
    done = time.perf_counter()
    out["rewrite_import_s"] = round(imported - started, 3)
    out["rewrite_switch_s"] = round(switched - imported, 3)
    out["rewrite_to_new_order_s"] = round(done - started, 3)

    deleted, out["delete_model_version_s"] = timed(lambda: client.delete_model_version(pid, "bench-a"))
    assert deleted == n, deleted
    assert [t["id"] for t in client.tasks_in_view(view, limit=20)] == top_b

    by_task = {r["task"]: r["id"] for r in client.list_predictions(pid, "bench-b")}
    patch_times = []
    for t in tids[:20]:
        _, s = timed(lambda t=t: client.update_prediction_scores({by_task[t]: 0.5}))
        patch_times.append(s)
    out["patch_one_score_s"] = round(statistics.mean(patch_times), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--url", help="an existing Label Studio (else one is started)")
    ap.add_argument("--token", help="its legacy token or personal access token")
    args = ap.parse_args()
    if args.url:
        if not args.token:
            ap.error("--token is needed with --url")
        result = run(args.url.rstrip("/"), args.token, args.tasks)
    else:
        started = time.perf_counter()
        server = start_label_studio()
        try:
            startup = round(time.perf_counter() - started, 1)
            result = run(server.base_url, server.token, args.tasks, server)
            result["label_studio_start_s"] = startup
        finally:
            server.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
