"""Tail recall at a labeling budget on a synthetic keyword corpus.

THIS CHECKS THE MATHEMATICS OF THE RANKING, NOT A VLM: keyword sets are drawn at
random, nothing is described, no image is seen.

Corpus: every task gets about 8 keywords from a Zipf distribution over a common
vocabulary. A few planted rare concepts each appear in 5-40 tasks; a concept brings 1-3
rare keywords of its own (a rare thing tends to be described with several unusual
words), and each of its tasks carries a non-empty subset of them. "Hallucinations":
with probability ``noise`` a task also gets one random word from a huge vocabulary
(df about 1), as VLM descriptions do (odd words, misspellings, invented objects).
Uncertainty is only partly aligned with the tail: N(0, 1), plus ``shift`` for tail tasks.

Methods at a budget of ``budget`` x N tasks: random, uncertainty only, novelty alone
with each pooling (gmean = geometric mean of df, mean, min), and Pareto (novelty +
uncertainty, whole fronts, Borda tie-break) with each pooling, and ``product_default``:
the order ``mining.prioritise`` gives with the default Settings (pooling, transform and the
head re-order, HEAD_DIVERSITY), as the server and ``python -m backend mine`` rank. Reported per noise level, averaged over seeds:
tail recall (share of planted-concept tasks selected) and concept recall (share of
planted concepts with at least one task selected: what "meet the long tail" means).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from backend.mining import IndexArrays, prioritise, novelty, select  # noqa: E402
from backend.mining.novelty import POOLINGS  # noqa: E402
from backend.settings import Settings  # noqa: E402

NOTE = "synthetic keyword sets: checks the ranking mathematics, not a VLM"


def make_corpus(args: argparse.Namespace, noise: float, rng: np.random.Generator):
    """Keyword sets (as CSR), the tail mask and each tail task's concept."""
    n, vocab = args.tasks, args.vocab
    weights = 1.0 / np.arange(1, vocab + 1) ** args.zipf
    weights /= weights.sum()
    lengths = np.maximum(rng.poisson(args.keywords, n), 1)
    rows = np.repeat(np.arange(n), lengths)
    cols = [rng.choice(vocab, size=rows.size, p=weights)]
    row_parts = [rows]

    concept = np.full(n, -1)
    next_id = vocab
    tail_tasks = rng.permutation(n)
    used = 0
    for c in range(args.concepts):
        size = int(rng.integers(5, 41))
        members = tail_tasks[used : used + size]
        used += size
        concept[members] = c
        words = np.arange(next_id, next_id + int(rng.integers(1, 4)))
        next_id += words.size
        for t in members:
            subset = words[rng.random(words.size) < 0.7]
            subset = subset if subset.size else words[:1]
            row_parts.append(np.full(subset.size, t))
            cols.append(subset)

    noisy = np.flatnonzero(rng.random(n) < noise)
    row_parts.append(noisy)
    cols.append(next_id + rng.integers(0, 10**7, noisy.size))

    return _csr(np.concatenate(row_parts), np.concatenate(cols), n), concept


def _csr(rows: np.ndarray, cols: np.ndarray, n: int) -> IndexArrays:
    """De-duplicated CSR arrays with compact keyword ids and their df."""
    _, compact = np.unique(cols, return_inverse=True)
    vocab = int(compact.max()) + 1
    key = np.unique(rows.astype(np.int64) * vocab + compact)
    kw = (key % vocab).astype(np.int32)
    counts = np.bincount(key // vocab, minlength=n)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    df = np.bincount(kw, minlength=vocab).astype(np.int64)
    return IndexArrays(np.arange(n, dtype=np.int64), indptr, kw, df)


def top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values (ties by index, like the ranking)."""
    return np.lexsort((np.arange(values.size), -values))[:k]


def product_order(arrays: IndexArrays, uncertainty: np.ndarray) -> np.ndarray:
    """Row indices in the order the product ranks them with its default settings: the same
    ``mine`` call as the server (Ranking.rank) and ``python -m backend mine``, with
    Settings' defaults for pooling, transform, head diversity and score direction. Unlike
    the ``pareto_*`` rows (``select`` on [novelty, uncertainty]) it includes the head
    re-order."""
    s = Settings()
    result = prioritise(arrays, {"uncertainty": uncertainty}, pooling=s.pooling, transform=s.novelty_transform,
                  invert=s.scores_ascending, head_diversity=s.head_diversity)
    return result.order


def evaluate(args: argparse.Namespace, noise: float, seed: int) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    arrays, concept = make_corpus(args, noise, rng)
    tail = concept >= 0
    uncertainty = rng.standard_normal(args.tasks) + args.shift * tail
    budget = int(args.budget * args.tasks)
    picks = {
        "random": rng.permutation(args.tasks)[:budget],
        "uncertainty": top(uncertainty, budget),
    }
    for pooling in POOLINGS:
        nov = novelty(arrays, pooling=pooling)
        picks[f"novelty_{pooling}"] = top(nov, budget)
        picks[f"pareto_{pooling}"] = select(np.column_stack([nov, uncertainty]), budget)
    picks["product_default"] = product_order(arrays, uncertainty)[:budget]
    n_concepts = len(set(concept[tail].tolist()))
    out = {}
    for name, chosen in picks.items():
        hit = concept[chosen]
        out[name] = (
            float(tail[chosen].sum() / tail.sum()),
            len(set(hit[hit >= 0].tolist())) / n_concepts,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--vocab", type=int, default=3_000, help="common vocabulary size")
    ap.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of common words")
    ap.add_argument("--keywords", type=float, default=8.0, help="mean common keywords a task")
    ap.add_argument("--concepts", type=int, default=30, help="planted rare concepts")
    ap.add_argument("--shift", type=float, default=1.0, help="uncertainty shift of tail tasks (sd)")
    ap.add_argument("--budget", type=float, default=0.02, help="share of tasks labeled")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.05, 0.2])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    results = {}
    for noise in args.noise:
        runs = [evaluate(args, noise, seed) for seed in range(args.seeds)]
        results[f"noise={noise:g}"] = {
            name: {
                "tail_recall": round(float(np.mean([r[name][0] for r in runs])), 3),
                "concept_recall": round(float(np.mean([r[name][1] for r in runs])), 3),
            }
            for name in runs[0]
        }
    print(
        json.dumps(
            {
                "bench": "synthetic_tail",
                "note": NOTE,
                "tasks": args.tasks,
                "concepts": args.concepts,
                "budget": args.budget,
                "uncertainty_shift": args.shift,
                "seeds": args.seeds,
                "results": results,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
