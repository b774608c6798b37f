"""Novelty: how rare a task's keywords are in its scope.

novelty(t) = phi(pool over k in keywords(t) of df(k)), with phi decreasing. The pool is
computed on the CSR arrays with ``np.add.reduceat`` / ``np.minimum.reduceat``, a few
milliseconds per million keyword occurrences, in chunks so that memory stays bounded at
tens of millions of tasks.

Defaults (evidence: bench/synthetic_tail.py, numbers in docs/benchmarks.md):

* pooling ``"gmean"``, the geometric mean of df; with neglog this is the mean IDF of the
  task's keywords. The arithmetic ``"mean"`` of df is dominated by the one or two very
  common words nearly every task has, so it ranked planted rare concepts no better than
  random. ``"min"`` (the rarest keyword decides) is best when every rare word is real,
  but one spurious word with df 1 (a hallucination, a typo; and real text has many
  words seen once) captures it: with 5% of tasks carrying one, it fell to random.
  The geometric mean needs several rare words or a very rare one, and held up.
  ``"mean"`` and ``"min"`` stay available.
* transform ``"neglog"``: -log(pooled / N), 0 for a keyword in every task. The ranking
  only uses the order of novelty, so "inverse" (N / pooled) ranks identically.
* ``empty=0.0``: a task without keywords (no description yet, or a description of pure
  filler) gets the novelty of "in every task", so missing text never floats to the top.
"""

from __future__ import annotations

import numpy as np

from .index import IndexArrays

__all__ = ["novelty", "pooled_df", "DEFAULT_POOLING", "POOLINGS", "TRANSFORMS"]

POOLINGS = ("gmean", "mean", "min")
TRANSFORMS = ("neglog", "inverse")
DEFAULT_POOLING = "gmean"
_ROW_CHUNK = 1 << 20  # rows per chunk: ~8M gathered df values at 8 keywords a task
# log df in units of 2**-40 (about 1e-12): log(1e9) * 2**40 is 2.3e13, so a task of even
# 100,000 keywords sums far inside int64
_LOG_SCALE = float(2**40)


def pooled_df(arrays: IndexArrays, pooling: str = DEFAULT_POOLING) -> np.ndarray:
    """Geometric mean, mean or min of df over each task's keywords; NaN when empty."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    indptr, kw = arrays.indptr, arrays.keyword_ids
    # gmean averages log df (looked up per keyword id, so no extra pass over nnz), in fixed
    # point: integer sums do not depend on the order of a task's keywords, so two tasks
    # whose keywords have the same frequencies get exactly the same novelty (and share a
    # Pareto front) instead of differing in the last bit of a float sum.
    df = (np.rint(np.log(np.maximum(arrays.df, 1)) * _LOG_SCALE).astype(np.int64)
          if pooling == "gmean" else arrays.df)
    lengths = np.diff(indptr)
    out = np.full(arrays.n_tasks, np.nan)
    rows = np.flatnonzero(lengths > 0)
    for lo in range(0, rows.size, _ROW_CHUNK):
        chunk = rows[lo : lo + _ROW_CHUNK]
        start, stop = indptr[chunk[0]], indptr[chunk[-1] + 1]
        values = df[kw[start:stop]]
        # reduceat over the starts of non-empty rows only: each segment then holds
        # exactly one row's entries (empty rows in between contribute nothing).
        starts = indptr[chunk] - start
        if pooling == "min":
            out[chunk] = np.minimum.reduceat(values, starts)
        else:
            out[chunk] = np.add.reduceat(values, starts) / lengths[chunk]
    if pooling == "gmean":
        np.exp(out / _LOG_SCALE, out=out)
    return out


def novelty(
    arrays: IndexArrays,
    pooling: str = DEFAULT_POOLING,
    transform: str = "neglog",
    empty: float | None = None,
) -> np.ndarray:
    """Per-task novelty (float64, aligned with ``arrays.task_ids``); larger = rarer.

    A task with no keywords gets ``empty``; by default the novelty of a keyword held by
    every task (0 under ``neglog``, 1 under ``inverse``), so both transforms rank alike.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, not {transform!r}")
    pooled = pooled_df(arrays, pooling)
    missing = np.isnan(pooled)
    n = float(max(arrays.n_tasks, 1))
    # A keyword in a task's set has df >= 1; clamp so hand-built arrays cannot give inf.
    pooled = np.maximum(np.where(missing, n, pooled), 1.0)
    if transform == "neglog":
        out = np.log(n) - np.log(pooled)
    else:
        out = n / pooled
    if empty is not None:
        out[missing] = empty
    return out
