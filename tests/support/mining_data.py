"""Keyword corpora for the mining tests: CSR arrays from lists, and random projects."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from backend.mining import IndexArrays


def keyword_arrays(rows: list[list[int]], task_ids=None) -> IndexArrays:
    """Rows of keyword ids as IndexArrays (task ids 3, 6, 9... unless given)."""
    lengths = [len(r) for r in rows]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    kw = np.array([k for r in rows for k in r], dtype=np.int32)
    df = np.bincount(kw, minlength=int(kw.max()) + 1 if kw.size else 0).astype(np.int64)
    ids = np.arange(1, len(rows) + 1, dtype=np.int64) * 3 if task_ids is None else np.asarray(task_ids)
    return IndexArrays(ids, indptr, kw, df)


@st.composite
def random_projects(draw):
    """Keyword sets (a Zipf-like vocabulary, so some keywords are rare) and one or two
    signals of another model, continuous or of few values."""
    n = draw(st.integers(8, 80))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rows = [sorted({int(k) for k in np.minimum(rng.zipf(1.6, int(rng.integers(1, 6))), 40) - 1}) for _ in range(n)]
    signals = {}
    for j in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["uniform", "few values", "skewed"]))
        if kind == "uniform":
            signals[f"s{j}"] = rng.random(n)
        elif kind == "few values":
            signals[f"s{j}"] = rng.integers(0, 4, n) / 4.0
        else:
            signals[f"s{j}"] = rng.exponential(1.0, n)
    return keyword_arrays(rows), signals, rng
