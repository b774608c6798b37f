"""A growing project: what each small import costs in Label Studio writes, and how fast its
tasks are ranked.

    .venv/bin/python bench/growth.py                       # 20,000 tasks, 3 imports of 1%, then
                                                           # the 1,000,000-task simulation
    .venv/bin/python bench/growth.py --tasks 2000 --sim-tasks 100000
    .venv/bin/python bench/growth.py --tasks 0             # the simulation only
    .venv/bin/python bench/growth.py --sim-tasks 0         # Label Studio only

Label Studio part: a real Label Studio 1.23.2 and the backend as a server on its embedded
defaults (SQLite, no Redis; the default LABEL_STREAM=uncertainty), connected to a project
whose tasks are COCO captions, one caption a task (bench/data/coco-dev, 20,954 captions).
The first ``--tasks`` are imported and ranked; then ``--imports`` imports of ``--share`` of
them each, through Label Studio's own import API. Per import:

  predictions_rewritten   old tasks whose live prediction was written again (another id or
                          another score than before the import), read from Label Studio
  rewritten_share         that over the old tasks
  generation_switched     whether project.model_version changed
  scored_s                from the start of the import request until every new task has a
                          live score (Label Studio's predictions_score, read every 0.5 s)
  settled_s               until the backend's job queue is empty as well
  first100_equal          whether the first 100 tasks of the "Long-tail first" tab (what
                          Uncertainty sampling serves, lowest score first) are the engine's
                          exact first 100, in order
  first100_overlap / first1000_overlap   how many of them are among the engine's
  spearman                Spearman's rank correlation of the whole tab with the exact order
Plus first_write_s: from connecting the backend to the project holding the first tasks (its
first /setup mines them all) until every one has a live score.

Simulation part (no Label Studio): the ranking and the write planner of the engine, under the
default settings, on synthetic keyword sets (Zipf, about 8 keywords a task, new tasks drawn
from the same distribution) of ``--sim-tasks`` tasks and three imports of ``--share``: per
import the writes planned (imports of new tasks, PATCHes of old ones, a bump or not), the
seconds to rank and to plan, and the same agreement figures between the planned order and
the exact one.

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.engine.engine import Engine  # noqa: E402
from backend.mining import IndexArrays  # noqa: E402
from backend.settings import Settings  # noqa: E402
from bench.ranking import synthetic_arrays  # noqa: E402

CAPTIONS = ROOT / "bench" / "data" / "coco-dev" / "rows_all.jsonl"
CONFIG = ('<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/>'
          '<Choices name="c" toName="text"><Choice value="a"/></Choices></View>')


def captions() -> list[str]:
    """Every COCO caption of the dev set, one a task (rows_all joins an image's captions, each
    ending with '.', with single spaces)."""
    out = []
    for line in CAPTIONS.read_text().splitlines():
        text = json.loads(line)["text"]
        out += [c.strip() + "." for c in text.rstrip(".").split(". ") if c.strip()]
    return out


def agreement(served: list[int], exact: list[int]) -> dict:
    """How Label Studio's order (``served``, label-first first) agrees with the exact one."""
    where = {t: i for i, t in enumerate(exact)}
    common = [t for t in served if t in where]
    n = len(common)
    if n > 1:
        d = np.array([i - where[t] for i, t in enumerate(common)], dtype=float)
        rho = 1 - 6 * float(np.sum(d * d)) / (n * (n * n - 1.0))
    else:
        rho = 1.0
    return {"first100_equal": served[:100] == exact[:100],
            "first100_overlap": len(set(served[:100]) & set(exact[:100])),
            "first1000_overlap": len(set(served[:1000]) & set(exact[:1000])),
            "spearman": round(rho, 5)}


# ---------------------------------------------------------------------- Label Studio
def live_scored(ls, pid: int, lo: int, hi: int) -> int:
    """How many tasks with ids in [lo, hi] have a score of the project's model version."""
    query = {"filters": {"conjunction": "and", "items": [
        {"filter": "filter:tasks:id", "operator": "in", "type": "Number", "value": {"min": lo, "max": hi}}]}}
    got = 0
    page = 1
    while True:
        resp = requests.get(f"{ls.base_url}/api/tasks", headers=ls.headers, timeout=120,
                            params={"project": pid, "fields": "all", "page": page, "page_size": 1000,
                                    "include": "id,predictions_score", "query": json.dumps(query)})
        if resp.status_code == 404:  # "Invalid page": the last page was full
            return got
        resp.raise_for_status()
        rows = resp.json()
        rows = rows.get("tasks", []) if isinstance(rows, dict) else rows
        got += sum(1 for r in rows if r.get("predictions_score") is not None)
        if len(rows) < 1000:
            return got
        page += 1


def run_label_studio(n: int, share: float, imports: int, model_dir: Path, log_dir: Path) -> dict:
    from backend.labelstudio.client import LabelStudioClient
    from tests.support.backend_server import BackendServer
    from tests.support.data import connect
    from tests.support.label_studio import LS_VERSION, create_project, import_tasks, start_label_studio

    texts = captions()
    step = max(1, round(n * share))
    if n + imports * step > len(texts):
        raise SystemExit(f"the dev set holds {len(texts)} captions, fewer than {n} + {imports} x {step}")
    out: dict = {"tasks": n, "import_size": step, "label_studio": LS_VERSION}
    ls = start_label_studio()
    backend = None
    try:
        env = {"MODEL_DIR": str(model_dir), "LABEL_STUDIO_URL": ls.base_url, "LABEL_STUDIO_API_KEY": ls.token}
        backend = BackendServer(env, log_dir / "backend.log")
        client = LabelStudioClient(ls.base_url, ls.token)
        engine = Engine(Settings.from_env(env))  # reads the backend's own state: the exact order
        # the first tasks are there before the backend is connected: its first /setup reads and
        # mines them all and writes them in one go (a project growing from nothing through
        # 20,000 webhooks would rewrite itself at every doubling, which is not what is measured)
        pid, ids = create_project(ls, "growth bench", CONFIG, [{"text": t} for t in texts[:n]])

        def settled() -> bool:
            jobs = requests.get(backend.url + "/metrics", timeout=30).json()["jobs"]["counts"]
            return not jobs.get("queued") and not jobs.get("running")

        def wait(what, predicate, limit: float = 3600) -> float:
            started = time.perf_counter()
            while not predicate():
                if time.perf_counter() - started > limit or backend.proc.poll() is not None:
                    raise SystemExit(f"{what} did not happen:\n{backend.log_tail()}")
                time.sleep(0.5)
            return time.perf_counter()

        started = time.perf_counter()
        connect(ls, pid, backend)
        done = wait("the first write", lambda: live_scored(ls, pid, min(ids), max(ids)) == len(ids))
        out["first_write_s"] = round(done - started, 1)
        print(f"first write of {n} tasks: {out['first_write_s']} s", file=sys.stderr)
        wait("the first settling", settled)
        steps = []
        for k in range(imports):
            version = client.get_project(pid)["model_version"]
            before = {p["task"]: (p["id"], p["score"]) for p in client.list_predictions(pid, version)}
            batch = texts[n + k * step:n + (k + 1) * step]
            started = time.perf_counter()
            new = import_tasks(ls, pid, [{"text": t} for t in batch], batch=len(batch))
            scored = wait(f"import {k + 1} scored", lambda: live_scored(ls, pid, min(new), max(new)) == len(new))
            done = wait(f"import {k + 1} settled", settled)
            live = client.get_project(pid)["model_version"]
            after = {p["task"]: (p["id"], p["score"]) for p in client.list_predictions(pid, live)}
            rewritten = sum(1 for t, v in before.items() if after.get(t) != v)
            state = engine.project(pid)
            view = client.tasks_in_view(state.view_id)
            exact, _ = engine.ranker.rank(pid)
            steps.append({"new_tasks": len(new), "old_tasks": len(before), "predictions_rewritten": rewritten,
                          "rewritten_share": round(rewritten / max(1, len(before)), 4),
                          "generation_switched": live != version, "scored_s": round(scored - started, 1),
                          "settled_s": round(done - started, 1),
                          **agreement([t["id"] for t in view], exact)})
            print(f"import {k + 1}: {steps[-1]}", file=sys.stderr)
            ids += new
        out["imports"] = steps
        out["max_rewritten_share"] = max(s["rewritten_share"] for s in steps) if steps else None
        out["max_scored_s"] = max(s["scored_s"] for s in steps) if steps else None
        return out
    finally:
        if backend is not None:
            backend.stop()
        ls.stop()


# ---------------------------------------------------------------------- simulation
def subset(arrays: IndexArrays, m: int, vocab: int) -> IndexArrays:
    """The first ``m`` tasks of ``arrays``, as an index holding only them would give them."""
    end = int(arrays.indptr[m])
    kw = arrays.keyword_ids[:end]
    return IndexArrays(task_ids=arrays.task_ids[:m], indptr=arrays.indptr[:m + 1], keyword_ids=kw,
                       df=np.bincount(kw, minlength=vocab).astype(np.int64))


def simulate(n: int, share: float, imports: int, vocab: int = 100_000, seed: int = 0) -> dict:
    step = max(1, round(n * share))
    every = synthetic_arrays(n + imports * step, vocab, 8.4, seed)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Settings.from_env({"MODEL_DIR": tmp}))
        s = engine.settings
        out: dict = {"tasks": n, "import_size": step, "exact_head": s.exact_head,
                     "place_tolerance": s.place_tolerance, "patch_budget": engine.writer.patch_budget(n)}
        written: dict[int, tuple[float, None]] = {}
        steps = []
        for k in range(imports + 1):
            arrays = subset(every, n + k * step, vocab)
            started = time.perf_counter()
            order, _ = engine.ranker.rank_arrays(arrays)
            ranked = time.perf_counter()
            plan = engine.writer.write_plan(order, written)
            planned = time.perf_counter()
            old = len(written)
            written = {t: (s_, None) for t, s_ in plan.scores.items()} if plan.bump else {
                **written, **{t: (s_, None) for t, s_ in {**plan.imports, **plan.patches}.items()}}
            row = {"tasks": len(order), "imports": len(plan.imports), "patches": len(plan.patches),
                   "bump": plan.bump, "rank_s": round(ranked - started, 2), "plan_s": round(planned - ranked, 2)}
            if k:
                rewritten = old if plan.bump else len(plan.patches)
                row["rewritten_share"] = round(rewritten / old, 4)
                row.update(agreement(plan.served, order))
                place = np.empty(len(order), dtype=np.int64)
                where = {t: i for i, t in enumerate(order)}
                for i, t in enumerate(plan.served):
                    place[i] = where[t]
                beyond = place >= s.exact_head
                shift = np.abs(np.arange(len(order)) - place)[beyond] / place[beyond]
                row["max_shift_share"] = round(float(shift.max()) if shift.size else 0.0, 4)
            else:
                out["first_write"] = row
                continue
            steps.append(row)
        out["imports"] = steps
        out["max_rewritten_share"] = max(r["rewritten_share"] for r in steps)
        out["spearman_bound"] = round(1 - 2 * s.place_tolerance ** 2, 4)
        out["first100_overlap_bound"] = math.ceil(100 / (1 + s.place_tolerance))
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=20_000, help="Label Studio project size; 0 skips that part")
    ap.add_argument("--sim-tasks", type=int, default=1_000_000, help="simulated project size; 0 skips it")
    ap.add_argument("--share", type=float, default=0.01, help="each import, as a share of the first tasks")
    ap.add_argument("--imports", type=int, default=3)
    args = ap.parse_args()
    out: dict = {"bench": "growth"}
    if args.tasks:
        with tempfile.TemporaryDirectory() as tmp:
            out["label_studio"] = run_label_studio(args.tasks, args.share, args.imports, Path(tmp) / "model",
                                                   Path(tmp))
    if args.sim_tasks:
        out["simulation"] = simulate(args.sim_tasks, args.share, args.imports)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
