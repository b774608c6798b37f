"""Time novelty + full Pareto ranking + priorities on synthetic IndexArrays.

Prints one JSON line. ``--signals`` counts every ranked column, novelty included
(2 = novelty + one random uncertainty signal). The arrays are built directly (Zipf
keyword ids, about 8 per task), not through an index, and are not timed.

    python bench/ranking.py --tasks 1000000 --signals 2

``--verify`` also compares the fronts (untimed) with moocore's C ``pareto_rank`` on the
same columns and reports ``fronts_match_moocore``; moocore peels fronts one by one above
two signals, so that takes several seconds at 1M x 3.

``rank_s`` times exact dominance (``rank``), ``rank_margin_s`` what ``mining.prioritise``
ranks: the informative columns by dominance by a margin (``fronts_margin`` fronts);
``mine_s`` is ``mining.prioritise`` end to end (novelty included; the key keeps its
name so results stay comparable with earlier runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

import moocore
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from backend.mining import IndexArrays, prioritise  # noqa: E402
from backend.mining.novelty import novelty  # noqa: E402
from backend.mining.pareto import informative_columns, rank, signal_margins  # noqa: E402


def synthetic_arrays(n_tasks: int, vocab: int, mean_kw: float, seed: int) -> IndexArrays:
    """Zipf keyword sets (de-duplicated per task), built in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    lengths = rng.poisson(mean_kw, n_tasks).astype(np.int64)
    rows_kw: list[np.ndarray] = []
    row_len = np.zeros(n_tasks, dtype=np.int64)
    chunk = 1 << 20
    for lo in range(0, n_tasks, chunk):
        hi = min(lo + chunk, n_tasks)
        lens = lengths[lo:hi]
        rows = np.repeat(np.arange(hi - lo, dtype=np.int64), lens)
        ids = (rng.zipf(1.1, rows.size) - 1) % vocab
        key = np.unique(rows * vocab + ids)  # sorted by (row, id), duplicates gone
        rows_kw.append((key % vocab).astype(np.int32))
        row_len[lo:hi] = np.bincount(key // vocab, minlength=hi - lo)
    kw = np.concatenate(rows_kw)
    indptr = np.zeros(n_tasks + 1, dtype=np.int64)
    np.cumsum(row_len, out=indptr[1:])
    df = np.bincount(kw, minlength=vocab).astype(np.int64)
    task_ids = np.arange(1, n_tasks + 1, dtype=np.int64) * 3  # ascending, not 0..n-1
    return IndexArrays(task_ids=task_ids, indptr=indptr, keyword_ids=kw, df=df)


def fronts_match_moocore(arrays: IndexArrays, extra: dict[str, np.ndarray]) -> bool:
    """Whether rank()'s fronts equal moocore's on the same columns (all maximised)."""
    X = np.column_stack([novelty(arrays), *extra.values()])
    ours = rank(X, ids=arrays.task_ids).front
    negated = np.negative(X)
    negated += 0.0  # -0.0 -> 0.0, so that zeros tie
    return bool(np.array_equal(ours, moocore.pareto_rank(negated)))


def timed_run(arrays: IndexArrays, extra: dict[str, np.ndarray]) -> dict[str, float]:
    """novelty + rank (the goal's scope), then prioritise() end to end."""
    t0 = time.perf_counter()
    nov = novelty(arrays)
    t1 = time.perf_counter()
    X = np.column_stack([nov, *extra.values()])
    ranking = rank(X, ids=arrays.task_ids)
    t2 = time.perf_counter()
    kept = X[:, informative_columns(X)]
    by_margin = rank(kept, ids=arrays.task_ids, margins=signal_margins(kept))
    t3 = time.perf_counter()
    result = prioritise(arrays, extra)
    t4 = time.perf_counter()
    assert np.array_equal(result.position, by_margin.position)
    return {
        "seconds": t2 - t0,
        "novelty_s": t1 - t0,
        "rank_s": t2 - t1,
        "rank_margin_s": t3 - t2,
        "mine_s": t4 - t3,
        "fronts": int(ranking.front.max()) + 1 if ranking.front.size else 0,
        "fronts_margin": int(by_margin.front.max()) + 1 if by_margin.front.size else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--signals", type=int, default=2, help="ranked columns incl. novelty")
    ap.add_argument("--vocab", type=int, default=100_000)
    ap.add_argument("--keywords", type=float, default=8.4, help="mean draws a task (~8 kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the median is reported")
    ap.add_argument("--verify", action="store_true", help="compare the fronts with moocore's")
    args = ap.parse_args()
    if args.signals < 1:
        ap.error("--signals must be >= 1 (novelty)")

    arrays = synthetic_arrays(args.tasks, args.vocab, args.keywords, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    extra = {f"u{j}": rng.random(args.tasks) for j in range(args.signals - 1)}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    runs = [timed_run(arrays, extra) for _ in range(max(args.repeat, 1))]
    fronts = [r.pop("fronts") for r in runs][-1]
    fronts_margin = [r.pop("fronts_margin") for r in runs][-1]
    checked = {"fronts_match_moocore": fronts_match_moocore(arrays, extra)} if args.verify else {}

    print(
        json.dumps(
            {
                "bench": "ranking",
                "tasks": args.tasks,
                "signals": args.signals,
                "nnz": int(arrays.keyword_ids.size),
                "vocab": args.vocab,
                **{k: round(float(np.median([r[k] for r in runs])), 3) for k in runs[0]},
                "seconds_min": round(min(r["seconds"] for r in runs), 3),
                "repeat": len(runs),
                "fronts": fronts,
                "fronts_margin": fronts_margin,
                **checked,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "rss_after_setup_mb": round(rss_before),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
