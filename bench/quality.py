"""Mining quality on real captions: the COCO development set through the real ``mine`` path.

bench/data/coco-dev holds 4,183 COCO 2014 val images (none in COCO 2017 val) as JSONL rows,
one with each image's first caption and one with all its captions, and each image's COCO
instance categories (labels.json; CC BY 4.0, see its README). Each rows file is mined with
the default settings exactly as ``python -m backend mine rows.jsonl`` mines it (a fresh
model dir, the SQLite index), and the order is measured with backend.offline.label_eval: the share
of the top 1/5/10% that holds one of the R rarest categories (R = 10, 20), their recall,
categories covered, ROC AUC, beside random (exact) and two instructive baselines:

* ``longest text``: the longest texts first (a detailed caption is not a rare one);
* ``pooling=...``: the same keywords with each pooling, without the head re-order.

Setting environment variables (POOLING, HEAD_DIVERSITY...) changes what is measured, as for
``mine``. Prints one JSON line; ``--table`` also prints the tables on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.offline import label_eval  # noqa: E402
from backend.offline.mine import build_engine, load_source, run_mining  # noqa: E402

DATA = ROOT / "bench" / "data" / "coco-dev"


def nothing_said(text: str) -> bool:
    """Whether a sentence of ``text`` is a refusal or a "no image" note (the keyword rules' own test)."""
    try:
        from backend.mining.keywords import describes_nothing
    except ImportError:  # a checkout from before issue 14: measured with that rule elsewhere
        return False
    return any(describes_nothing(s) for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip())


def timed_5000() -> float:
    """Seconds to mine 5,000 texts end to end (engine start, keywords, index, ranking):
    the 4,183 first captions plus the all-caption rows of the first 817 images, new ids."""
    rows = [json.loads(line) for line in (DATA / "rows_first.jsonl").read_text(encoding="utf-8").splitlines()]
    extra = [json.loads(line) for line in (DATA / "rows_all.jsonl").read_text(encoding="utf-8").splitlines()]
    rows += [{"id": 10**7 + r["id"], "text": r["text"]} for r in extra[: 5000 - len(rows)]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        t0 = time.perf_counter()
        engine = build_engine(str(Path(tmp) / "model"))
        dataset = load_source(str(path), None, engine.settings)
        outcome = run_mining(engine, dataset, {}, progress=False)
        seconds = time.perf_counter() - t0
    assert outcome.ok == 5000, outcome.ok
    return seconds


def order_rows(outcome, ids: list[int]) -> list[int]:
    """The mined order as row indices of ``ids``; failed rows last (as the output file has them)."""
    row = {t: i for i, t in enumerate(ids)}
    ranked = [row[t] for t in outcome.order]
    seen = set(ranked)
    return ranked + [i for i in range(len(ids)) if i not in seen]


def run(name: str, labels: dict[str, list[str]], show: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("REDIS_URL", None)
        t0 = time.perf_counter()
        engine = build_engine(tmp)
        dataset = load_source(str(DATA / f"rows_{name}.jsonl"), None, engine.settings)
        outcome = run_mining(engine, dataset, {}, progress=False)
        seconds = time.perf_counter() - t0
        ids = [it.id for it in dataset.items]
        texts = [str(it.ref.get("text") or "") for it in dataset.items]
        truth = label_eval.LabelTruth([labels.get(str(t), []) for t in ids])
        methods = label_eval.methods_for(outcome, ids, texts, {}, engine.settings)
        methods = {"default": methods.pop("vlmine (settings)"), **methods}
        rep = label_eval.report(truth, methods)
        top = order_rows(outcome, ids)[: label_eval.budget_size(0.01, len(ids))]
        rep["top_1pct_ids"] = [ids[i] for i in top]
        rep["top_1pct_texts"] = [texts[i][:100] for i in top[:10]]
        rep["describes_nothing_in_top_1pct"] = sum(1 for i in top if nothing_said(texts[i]))
        rep["mining_seconds"] = round(seconds, 2)
        rep["settings"] = {"pooling": engine.settings.pooling, "transform": engine.settings.novelty_transform,
                           "model_version": engine.settings.model_version()}
        if show:
            print(f"== rows_{name}.jsonl ({seconds:.1f} s)", file=sys.stderr)
            print(label_eval.table(rep), file=sys.stderr)
        return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=["first", "all"], choices=["first", "all"])
    ap.add_argument("--table", action="store_true", help="print the tables on stderr")
    args = ap.parse_args()
    labels = json.loads((DATA / "labels.json").read_text(encoding="utf-8"))["image_categories"]
    results = {name: run(name, labels, args.table) for name in args.rows}
    summary = {}
    for name, rep in results.items():
        d, rnd = rep["methods"]["default"]["budgets"], rep["methods"]["random"]["budgets"]
        summary[name] = {
            "rare_share@5%": round(d["0.05"]["rare_share@R10"], 3),
            "rare_share@5%_R20": round(d["0.05"]["rare_share@R20"], 3),
            "labels@1%": d["0.01"]["labels_covered"],
            "random_labels@1%": round(rnd["0.01"]["labels_covered"], 1),
            "auc_R10": round(rep["methods"]["default"]["auc"]["R10"], 3),
            "describes_nothing_in_top_1pct": rep["describes_nothing_in_top_1pct"],
            "seconds": rep["mining_seconds"],
        }
    os.environ.pop("REDIS_URL", None)
    summary["seconds_5000_texts"] = round(timed_5000(), 2)
    print(json.dumps({"bench": "quality", "data": "coco-dev (4,183 COCO 2014 val images)", "summary": summary,
                      "results": results}))


if __name__ == "__main__":
    main()
