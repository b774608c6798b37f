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

**Sizes** (``subsets`` in the output): one split of one size says little about a project
of another, so the same keywords are also ranked on random subsets of 500, 1,000 and 2,000
rows (``--subsets`` per size, 20 by default, seeded), each a project of its own: its
document frequencies, its N and its 10 rarest categories are recomputed from its rows. Per
size and pooling: the mean rare share of the top 5% with a 95% interval (Student's t over
the subsets), the base rate (the rare share of the whole subset), and each alternative
pooling's paired difference from the default (same subsets) with its 95% interval; "all"
is the whole set (one set: its interval is the Wilson interval of the share among the
head's tasks). The length bias is measured beside it: the share of the head whose text is
longer than three quarters of the subset's texts, and the head's mean keyword count over
the subset's (1.0: the head is no wordier than the project).

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

from backend.mining import IndexArrays, prioritise  # noqa: E402
from backend.mining.novelty import POOLINGS  # noqa: E402
from backend.offline import label_eval  # noqa: E402
from backend.offline.run import build_engine, run_mining  # noqa: E402
from backend.offline.sources import load_source  # noqa: E402

DATA = ROOT / "bench" / "data" / "coco-dev"
SIZES = (500, 1000, 2000)
HEAD = 0.05  # the budget the size table measures: the top 5%
RARE = 10  # rare = one of the 10 rarest categories of the subset


def nothing_said(text: str) -> bool:
    """Whether a sentence of ``text`` is a refusal or a "no image" note (the keyword rules' own test)."""
    try:
        from backend.mining.keywords import describes_nothing
    except ImportError:  # a checkout older than the refusal rule: measured with that rule elsewhere
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


def subset_arrays(arrays: IndexArrays, rows: np.ndarray) -> IndexArrays:
    """The keyword sets of ``rows`` (ascending row indices of ``arrays``) as a project of their
    own: document frequencies counted over these rows only (keyword ids kept; a keyword no
    row of the subset holds has df 0 and is never looked up)."""
    lengths = np.diff(arrays.indptr)[rows]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    keyword_ids = (np.concatenate([arrays.keyword_ids[arrays.indptr[r]:arrays.indptr[r + 1]] for r in rows])
                   if rows.size else np.zeros(0, np.int32)).astype(np.int32)
    df = np.bincount(keyword_ids, minlength=arrays.vocab_size).astype(np.int64)
    return IndexArrays(task_ids=arrays.task_ids[rows], indptr=indptr, keyword_ids=keyword_ids, df=df)


def interval(values: list[float]) -> list[float]:
    """95% interval of the mean of ``values`` (Student's t; independent random subsets)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return [float(v.mean()), float(v.mean())]
    half = t_975(v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return [float(v.mean() - half), float(v.mean() + half)]


def t_975(dof: int) -> float:
    """Student's t 0.975 quantile by its Cornish-Fisher expansion in 1/dof (no SciPy here):
    2.2622 at 9 degrees of freedom (exact 2.2622), 2.0930 at 19 (2.0930)."""
    z = 1.959964
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


def wilson(share: float, k: int) -> list[float]:
    """95% Wilson interval of a share observed among ``k`` tasks."""
    z = 1.959964
    centre = (share + z * z / (2 * k)) / (1 + z * z / k)
    half = z * np.sqrt(share * (1 - share) / k + z * z / (4 * k * k)) / (1 + z * z / k)
    return [float(centre - half), float(centre + half)]


def head_figures(order: np.ndarray, is_rare: np.ndarray, keywords: np.ndarray, long_text: np.ndarray) -> dict:
    """Rare share of the top 5% of ``order`` (row indices) and its length bias."""
    k = label_eval.budget_size(HEAD, order.size)
    head = order[:k]
    return {"rare_share": float(is_rare[head].mean()), "long_share": float(long_text[head].mean()),
            "keywords_ratio": float(keywords[head].mean() / max(keywords.mean(), 1e-9))}


def methods_on(arrays: IndexArrays, settings) -> dict[str, np.ndarray]:
    """Each method's order (row indices of ``arrays``): the default as the settings rank (head
    re-order included) and every other pooling, without it (the head's set is the same)."""
    out = {}
    for pooling in (settings.pooling, *[p for p in POOLINGS if p != settings.pooling]):
        res = prioritise(arrays, pooling=pooling, transform=settings.novelty_transform,
                   head_diversity=settings.head_diversity if pooling == settings.pooling else 0.0)
        out["default" if pooling == settings.pooling else pooling] = np.argsort(res.position, kind="stable")
    return out


def size_table(arrays: IndexArrays, ids: list[int], texts: list[str], labels: dict[str, list[str]], settings,
               n_subsets: int, full_default: np.ndarray) -> dict:
    """The size table of one rows file: per size, per method, mean and 95% interval of the
    rare share of the top 5%, the paired difference from the default, and the length bias."""
    row_of = {t: i for i, t in enumerate(ids)}
    rows_of_index = np.array([row_of[int(t)] for t in arrays.task_ids.tolist()])  # index row -> rows-file row
    words = np.array([len(t.split()) for t in texts])
    out = {}
    n_all = arrays.n_tasks
    for size in (*[s for s in SIZES if s < n_all], n_all):
        runs = 1 if size == n_all else n_subsets
        per: dict[str, list[dict]] = {}
        bases, long_bases, matches = [], [], None
        for seed in range(runs):
            pick = (np.arange(n_all) if size == n_all
                    else np.sort(np.random.default_rng(seed).choice(n_all, size, replace=False)))
            sub = subset_arrays(arrays, pick)
            file_rows = rows_of_index[pick]
            truth = label_eval.LabelTruth([labels.get(str(ids[r]), []) for r in file_rows], (RARE,))
            is_rare = truth.is_rare[RARE]
            keywords = np.diff(sub.indptr).astype(float)
            sub_words = words[file_rows]
            long_text = sub_words > np.percentile(sub_words, 75)
            bases.append(float(is_rare.mean()))
            long_bases.append(float(long_text.mean()))
            for name, order in methods_on(sub, settings).items():
                per.setdefault(name, []).append(head_figures(order, is_rare, keywords, long_text))
                if size == n_all and name == "default":  # the in-memory ranking is the mine path's
                    matches = bool(np.array_equal(sub.task_ids[order], full_default))
        k = label_eval.budget_size(HEAD, size)
        entry = {"subsets": runs, "head": k, "base_rate": round(float(np.mean(bases)), 4),
                 "long_share_of_all": round(float(np.mean(long_bases)), 3), "methods": {}}
        for name, figures in per.items():
            shares = [f["rare_share"] for f in figures]
            m = {"rare_share": round(float(np.mean(shares)), 4),
                 "rare_share_95": [round(x, 4) for x in (interval(shares) if runs > 1 else wilson(shares[0], k))],
                 "long_share": round(float(np.mean([f["long_share"] for f in figures])), 3),
                 "keywords_ratio": round(float(np.mean([f["keywords_ratio"] for f in figures])), 3)}
            if name != "default":
                diff = [a - b for a, b in zip(shares, (f["rare_share"] for f in per["default"]))]
                m["minus_default"] = round(float(np.mean(diff)), 4)
                if runs > 1:
                    m["minus_default_95"] = [round(x, 4) for x in interval(diff)]
            entry["methods"][name] = m
        if matches is not None:
            entry["default_matches_mine_path"] = matches
        out["all" if size == n_all else str(size)] = entry
    return out


def size_lines(name: str, table: dict) -> list[str]:
    """The size table as text: one line per size and method."""
    lines = [f"== rows_{name}.jsonl: rare share of the top 5% (mean [95%]), head keywords / mean, long share"]
    for size, entry in table.items():
        lines.append(f"{size:>5} ({entry['subsets']} sets, head {entry['head']}), base {entry['base_rate']:.3f}, "
                     f"long share of all {entry['long_share_of_all']:.2f}")
        for method, m in entry["methods"].items():
            lo, hi = m["rare_share_95"]
            diff = ""
            if "minus_default" in m:
                diff = f"  vs default {m['minus_default']:+.3f}"
                if "minus_default_95" in m:
                    diff += f" [{m['minus_default_95'][0]:+.3f}, {m['minus_default_95'][1]:+.3f}]"
            lines.append(f"      {method:<10}{m['rare_share']:.3f} [{lo:.3f}, {hi:.3f}]  kw x{m['keywords_ratio']:.2f}"
                         f"  long {m['long_share']:.2f}{diff}")
    return lines


def run(name: str, labels: dict[str, list[str]], show: bool, n_subsets: int) -> dict:
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
        t1 = time.perf_counter()
        rep["sizes"] = size_table(outcome.arrays, ids, texts, labels, engine.settings, n_subsets,
                                  np.asarray(outcome.order, dtype=np.int64))
        rep["sizes_seconds"] = round(time.perf_counter() - t1, 1)
        if show:
            print(f"== rows_{name}.jsonl ({seconds:.1f} s)", file=sys.stderr)
            print(label_eval.table(rep), file=sys.stderr)
            print("\n".join(size_lines(name, rep["sizes"])), file=sys.stderr)
        return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=["first", "all"], choices=["first", "all"])
    ap.add_argument("--table", action="store_true", help="print the tables on stderr")
    ap.add_argument("--subsets", type=int, default=20, help="random subsets per size (at least 10)")
    args = ap.parse_args()
    if args.subsets < 10:
        ap.error("--subsets: at least 10 subsets per size, or the intervals say nothing")
    labels = json.loads((DATA / "labels.json").read_text(encoding="utf-8"))["image_categories"]
    results = {name: run(name, labels, args.table, args.subsets) for name in args.rows}
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
            "sizes": {size: {"base": e["base_rate"],
                             **{m: [v["rare_share"], *v["rare_share_95"]] for m, v in e["methods"].items()},
                             "default_keywords_ratio": e["methods"]["default"]["keywords_ratio"],
                             "default_long_share": e["methods"]["default"]["long_share"]}
                      for size, e in rep["sizes"].items()},
        }
    os.environ.pop("REDIS_URL", None)
    summary["seconds_5000_texts"] = round(timed_5000(), 2)
    print(json.dumps({"bench": "quality", "data": "coco-dev (4,183 COCO 2014 val images)", "summary": summary,
                      "results": results}))


if __name__ == "__main__":
    main()
