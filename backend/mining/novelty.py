"""Novelty: how rare a task's keywords are in its scope.

novelty(t) = phi(pool over k in keywords(t) of df(k)), with phi decreasing. The pool is
computed on the CSR arrays with ``np.add.reduceat`` / ``np.minimum.reduceat``, a few
milliseconds per million keyword occurrences, in chunks so that memory stays bounded at
tens of millions of tasks.

Defaults (evidence: bench/quality.py on real captions and bench/synthetic_tail.py,
numbers in docs/benchmarks.md, reasons in docs/mining.md):

* pooling ``"confirmed"``: the mean IDF of the task's keywords, each weighted by how many
  tasks confirm it, shrunk towards 0 by one pseudo-keyword (``_confirmed``). A keyword
  seen once is more often a typo or a hallucination than a rare object; real captions
  are full of them, and gmean let them decide (rare share of the top 5% on the COCO dev
  set 0.158 / 0.163 vs 0.206 / 0.230 for confirmed). The count that confirms scales with
  a project below CONFIRM_REFERENCE_TASKS (a small project's rare things have small df),
  and the prior grows with a task's keyword count relative to the scope's mean (a long
  list-like caption does not add up to a rare one): random subsets of 500-2,000 rows of
  the dev set, bench/quality.py.
* ``"gmean"``, the geometric mean of df; with neglog this is the mean IDF of the
  task's keywords. The arithmetic ``"mean"`` of df is dominated by the one or two very
  common words nearly every task has, so it ranked planted rare concepts no better than
  random. ``"min"`` (the rarest keyword decides) is best when every rare word is real,
  but one spurious word with df 1 (a hallucination, a typo; and real text has many
  words seen once) captures it: with 5% of tasks carrying one, it fell to random.
  The geometric mean needs several rare words or a very rare one, and held up.
  ``"mean"`` and ``"min"`` stay available.
* transform ``"neglog"``: -log(pooled / N), 0 for a keyword in every task. The ranking
  only uses the order of novelty, so "inverse" (N / pooled) ranks identically.
* novelty is rounded to ``DECIMALS`` (6) places before anything ranks it, the precision
  the output shows: scores equal in exact arithmetic then compare equal.
* ``empty=0.0``: a task without keywords (no description yet, or a description of pure
  filler) gets the novelty of "in every task", so missing text never floats to the top.
"""

from __future__ import annotations

import numpy as np

from .keyword_index import IndexArrays

__all__ = ["novelty", "pooled_df", "keyword_effects", "order_by_effect", "confirm_count", "quantise", "rule_fingerprint", "DEFAULT_POOLING", "POOLINGS", "TRANSFORMS", "DECIMALS"]

POOLINGS = ("confirmed", "gmean", "mean", "min")
TRANSFORMS = ("neglog", "inverse")
DEFAULT_POOLING = "confirmed"
#: ``confirmed`` pooling: in a project of at least CONFIRM_REFERENCE_TASKS tasks, a keyword
#: seen in df tasks is taken for a real concept with weight df / (df + CONFIRM_DF): 1/4 for a
#: keyword no other task confirms, 1/2 at 3 tasks (``confirm_count``).
CONFIRM_DF = 3.0
#: ``confirmed`` pooling: below this many tasks the confirmation count shrinks in proportion
#: to the project (``confirm_count``). Every real thing's df is proportional to the number of
#: tasks, so in 1,000 tasks the rarest real objects are held by 1-3 tasks, and a fixed count of
#: 3 discounted exactly them. Above it the count stays: a typo's or a hallucination's df does
#: not grow with the project (each is a word of its own), so the same count separates them at
#: every large size. 4,000 is the size CONFIRM_DF was chosen at (the 4,183-task dev set).
CONFIRM_REFERENCE_TASKS = 4000.0
#: ``confirmed`` pooling: the weight of the prior "nothing rare here" (novelty 0) that a
#: task's keywords must outweigh, for a task of the scope's mean keyword count: one
#: pseudo-keyword, fully confirmed, that every task holds (IDF 0), as in Laplace's add-one
#: rule. It grows with the task's keyword count (``prior_weight``).
PRIOR_WEIGHT = 1.0
#: ``confirmed`` pooling: a task's prior is PRIOR_WEIGHT * (keywords / mean keywords) **
#: PRIOR_LENGTH_POWER. With one fixed prior (power 0) a long list-like caption escaped it
#: through many moderately rare keywords (the head held 1.4-1.5x the mean keyword count);
#: the square root, the rate at which the noise of a mean of that many values shrinks,
#: asks evidence of the same strength of a long task and a short one. Relative to the
#: scope's mean, so short captions and long VLM paragraphs are held alike (docs/mining.md).
PRIOR_LENGTH_POWER = 0.5
#: Novelty is rounded to this many decimals before it is ranked or shown, so that scores
#: equal in exact arithmetic compare equal (float sums differ in their last bits).
DECIMALS = 6
_ROW_CHUNK = 1 << 20  # rows per chunk: ~8M gathered df values at 8 keywords a task
# log df in units of 2**-40 (about 1e-12): log(1e9) * 2**40 is 2.3e13, so a task of even
# 100,000 keywords sums far inside int64
_LOG_SCALE = float(2**40)


def pooled_df(arrays: IndexArrays, pooling: str = DEFAULT_POOLING) -> np.ndarray:
    """The df a task's keywords amount to, by ``pooling``; NaN when the task has none.

    gmean, mean, min: of the df of its keywords. confirmed: N * exp(-confirmed novelty),
    the df whose -log(df / N) is the task's confirmed novelty (see ``_confirmed``).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    if pooling == "confirmed":
        return max(arrays.n_tasks, 1) * np.exp(-_confirmed(arrays))
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


def confirm_count(n_tasks: int) -> float:
    """The df at which a keyword counts half as confirmed in a scope of ``n_tasks`` tasks:
    CONFIRM_DF from CONFIRM_REFERENCE_TASKS tasks on, in proportion to the project below
    (1.5 in 2,000 tasks, 0.75 in 1,000), since a real thing's df scales with the project
    and a typo's does not."""
    return CONFIRM_DF * min(1.0, max(n_tasks, 1) / CONFIRM_REFERENCE_TASKS)


def confirmation_weight(arrays: IndexArrays) -> np.ndarray:
    """Per keyword, how far other tasks confirm it: df / (df + confirm_count(N)), a quarter
    for a keyword one task holds in a large project, nearly 1 for one many share. One owner
    for the confirmed novelty, the head's coverage weights and the explanation's keyword
    order, so they never disagree."""
    return _weight(np.maximum(arrays.df, 1).astype(np.float64), arrays.n_tasks)


def _weight(df: np.ndarray, n_tasks: int) -> np.ndarray:
    return df / (df + confirm_count(n_tasks))


def prior_weight(lengths: np.ndarray, mean_length: float) -> np.ndarray:
    """The prior's weight for tasks of ``lengths`` keywords in a scope whose tasks hold
    ``mean_length`` on average: PRIOR_WEIGHT at the mean, growing with the count to the
    power PRIOR_LENGTH_POWER (see there)."""
    relative = np.maximum(lengths, 1) / max(float(mean_length), 1.0)
    return PRIOR_WEIGHT * relative**PRIOR_LENGTH_POWER


def keyword_effects(df: np.ndarray, n_tasks: int, pooling: str = DEFAULT_POOLING) -> np.ndarray:
    """How much each keyword of a task lifts its novelty, given the keywords' df in a scope of
    ``n_tasks`` tasks (larger = lifts more). Under ``confirmed``, its term in the sum,
    confirmation weight x IDF: an unconfirmed rare keyword lifts less than a confirmed one;
    under the other poolings, its IDF (the rarest keyword counts most). What an explanation
    shows first, so that it names what made the task rank where it is."""
    df = np.maximum(np.asarray(df, dtype=np.float64), 1.0)
    idf = np.maximum(np.log(float(max(n_tasks, 1))) - np.log(df), 0.0)
    if pooling == "confirmed":
        return _weight(df, n_tasks) * idf
    return idf


def order_by_effect(keywords: list[str], df: dict[str, int], n_tasks: int,
                    pooling: str = DEFAULT_POOLING) -> list[str]:
    """A task's ``keywords``, the one that lifts its novelty most first (``keyword_effects``;
    ties by name). An explanation that listed the rarest keyword first named a word one task
    holds ("fabric (1)") on a task ranked at the back, because an unconfirmed word barely
    lifts it; this order names what made the task rank where it is."""
    effects = keyword_effects(np.array([df.get(k, 0) for k in keywords], dtype=np.float64), n_tasks, pooling)
    return [k for _, k in sorted(zip((-e for e in effects.tolist()), keywords))]


def _confirmed(arrays: IndexArrays) -> np.ndarray:
    """Mean IDF of a task's keywords, each weighted by how well other tasks confirm it,
    shrunk towards 0 by a prior weight; NaN when the task has no keywords.

        novelty = sum_k w_k * log(N / df_k) / (p(L) + sum_k w_k),
        w_k = df_k / (df_k + c(N)),  c(N) = CONFIRM_DF * min(1, N / CONFIRM_REFERENCE_TASKS),
        p(L) = PRIOR_WEIGHT * (L / mean L) ** PRIOR_LENGTH_POWER,
        L = the task's keyword count, mean L over the scope's tasks that have keywords

    A keyword only one task holds is more often a typo, a hallucination or an odd
    phrasing than a rare object, so it counts a quarter in a large project; a keyword
    several tasks share counts nearly fully. In a small project every df is small, so the
    count that confirms shrinks with it. The prior, a confirmed pseudo-keyword of IDF 0,
    holds down a task of few keywords: a task whose only rare words are unconfirmed stays
    near 0, and a task needs confirmed evidence to rise; it grows with the square root of
    the keyword count relative to the scope's mean, so many moderately rare keywords do
    not add up to a rare task. In
    integer fixed point, like gmean, so the sum does not depend on the order of a task's
    keywords.
    """
    n = float(max(arrays.n_tasks, 1))
    df = np.maximum(arrays.df, 1).astype(np.float64)
    weight = confirmation_weight(arrays)
    idf = np.maximum(np.log(n) - np.log(df), 0.0)
    w_fixed = np.rint(weight * _LOG_SCALE).astype(np.int64)
    wi_fixed = np.rint(weight * idf * _LOG_SCALE).astype(np.int64)
    indptr, kw = arrays.indptr, arrays.keyword_ids
    lengths = np.diff(indptr)
    out = np.full(arrays.n_tasks, np.nan)
    rows = np.flatnonzero(lengths > 0)
    mean_length = float(lengths[rows].mean()) if rows.size else 1.0
    for lo in range(0, rows.size, _ROW_CHUNK):
        chunk = rows[lo : lo + _ROW_CHUNK]
        start, stop = indptr[chunk[0]], indptr[chunk[-1] + 1]
        ids = kw[start:stop]
        starts = indptr[chunk] - start
        total_w = np.add.reduceat(w_fixed[ids], starts)
        total_wi = np.add.reduceat(wi_fixed[ids], starts)
        prior = np.rint(prior_weight(lengths[chunk], mean_length) * _LOG_SCALE).astype(np.int64)
        out[chunk] = total_wi / (total_w + prior)
    return out


def rule_fingerprint(pooling: str) -> dict[str, float]:
    """The constants of ``pooling``'s rule that a model version must cover: a new value
    re-ranks every project, so it must give a new version (Settings.ranking_fingerprint).
    The confirmation count (CONFIRM_DF, CONFIRM_REFERENCE_TASKS) weighs the head re-order
    (diversity) under every pooling, so every pooling's version covers it; the prior's
    constants only the confirmed pooling's."""
    confirmation = {"confirm_df": CONFIRM_DF, "confirm_reference_tasks": CONFIRM_REFERENCE_TASKS}
    if pooling == "confirmed":
        return {**confirmation, "prior_weight": PRIOR_WEIGHT,
                "prior_length_power": PRIOR_LENGTH_POWER}
    return confirmation


def quantise(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to ``DECIMALS``: what is ranked is what the output shows."""
    return np.round(values, DECIMALS)


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
    n = float(max(arrays.n_tasks, 1))
    if pooling == "confirmed":
        # computed directly: N * exp(-x) and back would lose the last bits
        confirmed = _confirmed(arrays)
        missing = np.isnan(confirmed)
        confirmed[missing] = 0.0
        out = confirmed if transform == "neglog" else np.exp(confirmed)
        if empty is not None:
            out[missing] = empty
        return quantise(out)
    pooled = pooled_df(arrays, pooling)
    missing = np.isnan(pooled)
    # A keyword in a task's set has df >= 1; clamp so hand-built arrays cannot give inf.
    pooled = np.maximum(np.where(missing, n, pooled), 1.0)
    if transform == "neglog":
        out = np.log(n) - np.log(pooled)
    else:
        out = n / pooled
    if empty is not None:
        out[missing] = empty
    return quantise(out)
