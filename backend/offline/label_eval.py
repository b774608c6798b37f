"""Rank quality against multi-label ground truth: does the head of the queue hold the rare labels?

Used by ``python -m backend evaluate --rows rows.jsonl`` (rows with a ``labels`` list) and by
``bench/quality.py`` (the COCO development set). Everything here takes an *order* (row
indices, label-first first) and the label sets of the rows; nothing depends on how the
order was made, so a method and its baselines are measured the same way.

"Rare" labels are the R labels present in the fewest rows (ties: by name); a row is a rare
row when it holds at least one of them. At a budget of K rows (a share of the rows, rounded,
at least 1) the figures are:

* ``rare_share``: the share of the top K that are rare rows (precision);
* ``rare_recall``: the share of all rare rows that are in the top K;
* ``labels_covered``: how many distinct labels the top K holds (diversity of the head);
* ``auc`` (per R, not per budget): the probability that a random rare row comes before a
  random other row in the whole order (0.5 is random, 1 is every rare row first).

Random selection is given exactly where that is cheap: the number of rare rows among K
drawn without replacement is hypergeometric, so its expectation and central 95% interval
are exact; the expected number of labels covered is exact too (a sum over labels of
1 - C(N - n_l, K) / C(N, K)), and its 95% interval comes from seeded random draws.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError, UsageError

BUDGETS = (0.01, 0.05, 0.10)
RARE_COUNTS = (10, 20)
_COVERAGE_DRAWS = 2000


def budget_size(fraction: float, n: int) -> int:
    return min(n, max(1, round(fraction * n)))


def rare_labels(label_sets: Sequence[Sequence[str]], r: int) -> list[str]:
    """The ``r`` labels held by the fewest rows, rarest first (ties by name)."""
    counts = Counter(label for labels in label_sets for label in set(labels))
    return sorted(counts, key=lambda label: (counts[label], label))[:r]


def _hypergeom_interval(n: int, m: int, k: int, mass: float = 0.95) -> tuple[int, int]:
    """Central ``mass`` interval of the rare rows among k drawn from n rows of which m are rare."""
    lo_x, hi_x = max(0, k - (n - m)), min(k, m)
    total = math.comb(n, k)
    cdf, lower, upper = 0.0, None, hi_x
    tail = (1.0 - mass) / 2
    for x in range(lo_x, hi_x + 1):
        cdf += math.comb(m, x) * math.comb(n - m, k - x) / total
        if lower is None and cdf > tail:
            lower = x
        if cdf >= 1.0 - tail:
            upper = x
            break
    return (lower if lower is not None else lo_x), upper


def _expected_coverage(label_counts: Sequence[int], n: int, k: int) -> float:
    """Exact expected number of labels with at least one row among k random rows."""
    total = 0.0
    for c in label_counts:
        # C(n - c, k) / C(n, k) as a product, stable for large n
        missing = 0.0 if n - c < k else math.exp(
            math.lgamma(n - c + 1) - math.lgamma(n - c - k + 1) - math.lgamma(n + 1) + math.lgamma(n - k + 1))
        total += 1.0 - missing
    return total


def auc(order: Sequence[int], positive: np.ndarray) -> float | None:
    """Probability that a random positive row precedes a random negative row in ``order``."""
    pos = np.asarray(positive, dtype=bool)[np.asarray(order, dtype=np.int64)]
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return None
    negatives_after = np.cumsum((~pos)[::-1])[::-1]  # negatives at or after each place
    return float(negatives_after[pos].sum() / (n_pos * n_neg))


class LabelTruth:
    """The label sets of N rows, with the rare sets for each R precomputed."""

    def __init__(self, label_sets: Sequence[Sequence[str]], rare_counts: Sequence[int] = RARE_COUNTS) -> None:
        self.label_sets = [frozenset(labels) for labels in label_sets]
        self.n = len(self.label_sets)
        self.counts = Counter(label for labels in self.label_sets for label in labels)
        self.rare = {r: rare_labels(self.label_sets, r) for r in rare_counts}
        self.is_rare = {r: np.array([bool(labels & set(names)) for labels in self.label_sets])
                        for r, names in self.rare.items()}

    def measure(self, order: Sequence[int], budgets: Sequence[float] = BUDGETS) -> dict[str, Any]:
        """The figures of one order (row indices, label-first first; every row once)."""
        order = np.asarray(order, dtype=np.int64)
        out: dict[str, Any] = {"budgets": {}, "auc": {}}
        for frac in budgets:
            k = budget_size(frac, self.n)
            head = order[:k]
            entry: dict[str, Any] = {"k": k, "labels_covered": len(set().union(*(self.label_sets[i] for i in head)))}
            for r, mask in self.is_rare.items():
                hits = int(mask[head].sum())
                entry[f"rare_share@R{r}"] = hits / k
                entry[f"rare_recall@R{r}"] = hits / max(int(mask.sum()), 1)
            out["budgets"][f"{frac:g}"] = entry
        for r, mask in self.is_rare.items():
            out["auc"][f"R{r}"] = auc(order, mask)
        return out

    def random_baseline(self, budgets: Sequence[float] = BUDGETS, seed: int = 0) -> dict[str, Any]:
        """Random selection: exact expectations, 95% intervals (hypergeometric; coverage by draws)."""
        rng = np.random.default_rng(seed)
        label_counts = list(self.counts.values())
        out: dict[str, Any] = {"budgets": {}, "auc": {f"R{r}": 0.5 for r in self.is_rare}}
        for frac in budgets:
            k = budget_size(frac, self.n)
            draws = [len(set().union(*(self.label_sets[i] for i in rng.choice(self.n, k, replace=False))))
                     for _ in range(_COVERAGE_DRAWS // max(1, k // 50 + 1))]
            entry: dict[str, Any] = {
                "k": k,
                "labels_covered": _expected_coverage(label_counts, self.n, k),
                "labels_covered_95": [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))],
            }
            for r, mask in self.is_rare.items():
                m = int(mask.sum())
                lo, hi = _hypergeom_interval(self.n, m, k)
                entry[f"rare_share@R{r}"] = m / self.n
                entry[f"rare_share@R{r}_95"] = [lo / k, hi / k]
                entry[f"rare_recall@R{r}"] = k / self.n
                entry[f"rare_recall@R{r}_95"] = [lo / max(m, 1), hi / max(m, 1)]
            out["budgets"][f"{frac:g}"] = entry
        return out

    def oracle(self, r: int) -> np.ndarray:
        """The best order for rare share at every budget: rare rows first (an upper bound)."""
        mask = self.is_rare[r]
        return np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])


def report(truth: LabelTruth, methods: dict[str, Sequence[int]], budgets: Sequence[float] = BUDGETS) -> dict[str, Any]:
    """Every method's figures beside random's."""
    return {
        "rows": truth.n,
        "labels": len(truth.counts),
        "rare_labels": {f"R{r}": names for r, names in truth.rare.items()},
        "rare_rows": {f"R{r}": int(mask.sum()) for r, mask in truth.is_rare.items()},
        "methods": {"random": truth.random_baseline(budgets),
                    **{name: truth.measure(order, budgets) for name, order in methods.items()}},
    }


def table(rep: dict[str, Any]) -> str:
    """Rows: methods; columns: rare share (R = first R) and labels covered at each budget, AUC."""
    r = next(iter(rep["rare_labels"]))
    budgets = list(rep["methods"]["random"]["budgets"])
    head = "".join(f"{'share@' + b:>12}{'labels@' + b:>12}" for b in budgets)
    lines = [f"{rep['rows']} rows, {rep['labels']} labels; rare = the {r[1:]} rarest labels "
             f"({rep['rare_rows'][r]} rows): {', '.join(rep['rare_labels'][r])}",
             f"{'method':<24}{head}{'AUC':>8}"]
    for name, m in rep["methods"].items():
        cells = "".join(f"{m['budgets'][b][f'rare_share@{r}']:>12.3f}{m['budgets'][b]['labels_covered']:>12.1f}"
                        for b in budgets)
        a = m["auc"][r]
        lines.append(f"{name:<24}{cells}{'-' if a is None else f'{a:.3f}':>8}")
    rnd = rep["methods"]["random"]["budgets"]
    lines.append("random 95%: " + "; ".join(
        f"{b}: share {rnd[b][f'rare_share@{r}_95'][0]:.3f}-{rnd[b][f'rare_share@{r}_95'][1]:.3f}, labels "
        f"{rnd[b]['labels_covered_95'][0]:.0f}-{rnd[b]['labels_covered_95'][1]:.0f}" for b in budgets))
    return "\n".join(lines)


def plot(rep: dict[str, Any], path: Path) -> None:
    """Rare share at each budget per method (random's 95% interval as a band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = next(iter(rep["rare_labels"]))
    budgets = list(rep["methods"]["random"]["budgets"])
    names = list(rep["methods"])
    x = np.arange(len(budgets))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(names) + 3), 4.2))
    for j, name in enumerate(names):
        values = [rep["methods"][name]["budgets"][b][f"rare_share@{r}"] for b in budgets]
        at = x + (j - (len(names) - 1) / 2) * width
        ax.bar(at, values, width, label=name)
        if name == "random":
            rnd = rep["methods"]["random"]["budgets"]
            lo = [values[i] - rnd[b][f"rare_share@{r}_95"][0] for i, b in enumerate(budgets)]
            hi = [rnd[b][f"rare_share@{r}_95"][1] - values[i] for i, b in enumerate(budgets)]
            ax.errorbar(at, values, yerr=[lo, hi], fmt="none", ecolor="black", capsize=2, lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels([f"top {float(b) * 100:g}%" for b in budgets])
    ax.set_ylabel(f"share holding one of the {r[1:]} rarest labels")
    ax.set_title(f"Rare labels at the head of the queue ({rep['rows']} rows)")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------ python -m backend evaluate --rows
def row_labels(dataset, field: str = "labels") -> list[list[str]]:
    """Each row's ``labels`` (a list of names; one string is one label; missing is none)."""
    out: list[list[str]] = []
    for it in dataset.items:
        value = it.task["data"].get(field)
        if value is None:
            out.append([])
        elif isinstance(value, str):
            out.append([value] if value.strip() else [])
        elif isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            out.append([str(v) for v in value])
        else:
            raise UsageError(f"row {it.id}: '{field}' must be a list of label names, got {type(value).__name__}")
    if not any(out):
        raise UsageError(f"no row has a '{field}' list: the evaluation needs each row's labels")
    return out


def _aligned(arrays, ids: list[int], signals: dict) -> dict:
    """Row-aligned signals re-aligned with the index's task ids (NaN where missing)."""
    row = {t: i for i, t in enumerate(ids)}
    take = np.array([row.get(int(t), -1) for t in arrays.task_ids.tolist()], dtype=np.int64)
    out = {}
    for name, values in signals.items():
        col = np.full(arrays.n_tasks, np.nan)
        col[take >= 0] = np.asarray(values, dtype=float)[take[take >= 0]]
        out[name] = col
    return out


def _as_rows(task_order, ids: list[int]) -> list[int]:
    """Task ids, label-first first -> row indices, rows the order lacks (failed) last."""
    row = {t: i for i, t in enumerate(ids)}
    ranked = [row[t] for t in task_order if t in row]
    seen = set(ranked)
    return ranked + [i for i in range(len(ids)) if i not in seen]


def methods_for(outcome, ids: list[int], texts: list[str] | None, signals: dict, settings) -> dict[str, list[int]]:
    """The backend's order and the baselines, each as row indices."""
    from ..mining import prioritise
    from ..mining.novelty import POOLINGS

    arrays = outcome.arrays
    aligned = _aligned(arrays, ids, signals)
    out = {"vlmine (settings)": _as_rows(outcome.order, ids)}
    for pooling in POOLINGS:  # the other poolings, without the head re-order: how much each part adds
        res = prioritise(arrays, aligned, pooling=pooling, transform=settings.novelty_transform)
        out[f"pooling={pooling}"] = _as_rows(
            [int(t) for t in arrays.task_ids[np.argsort(res.position, kind="stable")]], ids)
    for name, values in signals.items():  # a signal alone: what the model's own uncertainty finds
        filled = np.where(np.isnan(values), -np.inf, values)
        out[f"{name} only"] = list(np.argsort(-filled, kind="stable"))
    if texts is not None:  # a detailed text is not a rare one
        out["longest text"] = list(np.argsort([-len(t) for t in texts], kind="stable"))
    return out


def run_rows(args) -> int:
    """``python -m backend evaluate --rows rows.jsonl``: mine the rows, measure against their labels."""
    from .mine import command_error
    from .output import output_rows, summarise, write_evaluation
    from .run import build_engine, build_engine_settings, mine_with_progress, signal_columns
    from .signal_choice import signal_fields
    from .sources import load_source

    try:
        budgets = tuple(args.budgets)
        rare_counts = tuple(args.rare)
        if not budgets or any(not 0 < b <= 1 for b in budgets):
            raise UsageError("--budgets must be shares in (0, 1]")
        if not rare_counts or any(r < 1 for r in rare_counts):
            raise UsageError("--rare must be positive counts")
        probe = build_engine_settings(args.model_dir)
        if not str(args.rows).lower().endswith((".jsonl", ".ndjson", ".json")):
            raise UsageError(f"--rows {args.rows}: expected a .jsonl (or .json) file of rows with 'labels'")
        dataset = load_source(args.rows, args.field, probe)
        labels = row_labels(dataset)
        fields = signal_fields(dataset, args.signal, probe)
        engine = build_engine(args.model_dir, dataset)
        names = list(signal_columns(dataset, fields, engine.settings))
        print(f"{len(dataset.items)} {dataset.kind}s, {len({x for ls in labels for x in ls})} labels"
              + (f"; signals: novelty, {', '.join(names)}" if names else ""), file=sys.stderr)
        outcome = mine_with_progress(engine, dataset, fields, quiet=args.quiet)
    except (UsageError, SourceError, KeyboardInterrupt) as exc:
        return command_error(exc)
    if not summarise(outcome):
        return 1
    ids = [it.id for it in dataset.items]
    texts = [str(it.ref.get("text") or "") for it in dataset.items] if dataset.kind == "text" else None
    truth = LabelTruth(labels, rare_counts)
    s = engine.settings
    rep = report(truth, methods_for(outcome, ids, texts, outcome.signals, s), budgets)
    rep = {"source": str(args.rows), "kind": dataset.kind, "mined": outcome.ok, "failed": len(outcome.errors),
           "settings": {"model_version": s.model_version(kind=dataset.kind), "pooling": s.pooling,
                        "novelty_transform": s.novelty_transform, "head_diversity": s.head_diversity},
           **rep}
    rows = output_rows(outcome)
    by_id = {json.dumps(it.shown_id): row_labels_ for it, row_labels_ in zip(dataset.items, labels)}
    for row in rows:
        row["labels"] = by_id.get(json.dumps(row["id"]), [])
    write_evaluation(Path(args.out), rows, rep, plot, table(rep))
    return 0
