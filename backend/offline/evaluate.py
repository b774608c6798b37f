"""``python -m backend evaluate``: does VLMine find the long tail of *your* data?

The paper (Ye et al., arXiv 2409.15486) reports 10-50% gains over uncertainty-based
selection on ImageNet-LT, Places-LT and LVIS. This harness is how a team with a GPU
checks that claim on a labeled long-tail image set of its own: it mines every image with
the backend's pipeline and settings (resumable, like ``python -m backend mine``), then
lets each method pick the same budget of K images and measures what it picked:

* ``random`` (seeded, mean and standard deviation over ``--seeds`` runs);
* ``uncertainty``: the K most uncertain images by your model (with ``--uncertainty``);
* ``vlmine_confirmed``, ``vlmine_gmean``, ``vlmine_mean``, ``vlmine_min``: VLMine novelty with each pooling;
* ``pareto_<POOLING>+uncertainty``: the backend's own order (with ``--uncertainty``), the one
  ``python -m backend mine`` writes: Pareto fronts of the configured pooling's novelty, the
  uncertainty and any SIGNAL_FIELDS, the head diversity re-order and the backend's tie-break.

Scores tie often (with ``min`` pooling every image whose rarest keyword is seen once, every
image without keywords, every image without an uncertainty). The backend breaks ties by
one fixed pseudo-random order of the ids, so a cut at K would measure that one draw. Ties
are therefore broken by a seeded random order of the images instead, one per seed of
``--seeds``, and every method's
metrics are the mean (and standard deviation) over those seeds, as for ``random``; a
method without ties at the cut gets the same selection for every seed, and so does the
backend's own order, which is measured as the product ranks (its ties already broken).

Classes are split by how many images they have in the set: many-shot (> ``--many``,
default 100), few-shot (< ``--few``, default 20), medium-shot between. That is the
ImageNet-LT / Places-LT convention, where the counts are those of the long-tailed
*training* split: evaluate on that split's list (e.g. ImageNet_LT_train.txt) to compare
with published numbers. Per method: the share of the selection from many / medium /
few-shot classes, class coverage (share of classes with at least one selected image),
few-shot class coverage, and tail recall (share of the few-shot images selected).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..errors import SourceError, UsageError
from ..ids import integer_cell
from ..mining.novelty import POOLINGS  # every pooling is a method
from .ids import ids_file, project_id, stabilise_ids
from .mine import command_error, setup_logging
from .output import output_rows, summarise, write_evaluation
from .run import build_engine, build_engine_settings, mine_with_progress
from .sources import list_images, local_dataset

SPLITS = ("many", "medium", "few")
METRICS = ("share_many", "share_medium", "share_few", "coverage", "few_class_coverage", "tail_recall")
#: the task data key the --uncertainty values are ranked from
UNCERTAINTY_KEY = "uncertainty"
TIE_STREAM = 1  # tie-break orders come from their own random stream, apart from the random baseline's


# ------------------------------------------------------------------------------ input
def labeled_images(args: argparse.Namespace) -> tuple[Path, list[str], list[str], str]:
    """(root, relative paths, class labels, identity) of the labeled set."""
    if args.images:
        root = Path(args.images).expanduser()
        if not root.is_dir():
            raise UsageError(f"--images {args.images}: not a folder")
        root = root.resolve()
        rels, labels, loose = [], [], 0
        for rel in list_images(root):
            if "/" not in rel:
                loose += 1  # not in a class folder
                continue
            rels.append(rel)
            labels.append(rel.split("/", 1)[0])
        if loose:
            print(f"note: {loose} images directly in {args.images} have no class folder; left out", file=sys.stderr)
        return root, rels, labels, f"evaluate|folder|{root}"
    listing = Path(args.list).expanduser()
    if not listing.is_file():
        raise UsageError(f"--list {args.list}: no such file")
    root = Path(args.root).expanduser() if args.root else listing.parent
    if not root.is_dir():
        raise UsageError(f"--root {args.root}: not a folder")
    root = root.resolve()
    rels, labels = [], []
    for n, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise UsageError(f"{args.list}:{n}: expected 'relative/path.jpg LABEL'")
        rels.append(parts[0].lstrip("/"))
        labels.append(parts[1])
    return root, rels, labels, f"evaluate|list|{root}|{listing.resolve()}"


def _norm(path: str, root: Path) -> str:
    text = path.strip().replace("\\", "/")
    p = Path(text)
    if p.is_absolute():
        try:
            text = p.resolve().relative_to(root).as_posix()
        except ValueError:
            return text
    while text.startswith("./"):
        text = text[2:]
    return text


def read_uncertainty(path: str, rels: Sequence[str], root: Path, ids: Sequence[int]):
    """Uncertainty per image (NaN where the file has none), matched by ``path`` or by ``id``.

    ``path`` is relative to the root (or absolute under it); ``id`` is the image's id in
    ``items.csv`` (``ids[i]`` is the id of ``rels[i]``), stable across runs. A row with both
    is matched by its path.
    """
    import numpy as np

    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"--uncertainty {path}: no such file")
    try:
        text = file.read_text(encoding="utf-8-sig")
        if file.suffix.lower() == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
        elif file.suffix.lower() == ".json":
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (ValueError, OSError) as exc:
        raise UsageError(f"--uncertainty {path}: cannot read: {exc}") from None
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise UsageError(f"--uncertainty {path}: expected rows with 'path' (or 'id') and 'uncertainty'")
    if not all("uncertainty" in r and ("path" in r or "id" in r) for r in rows):
        raise UsageError(f"--uncertainty {path}: every row needs 'uncertainty' and 'path' or 'id'")
    by_path = {rel: i for i, rel in enumerate(rels)}
    by_id = {tid: i for i, tid in enumerate(ids)}
    values = np.full(len(rels), np.nan)
    matched = 0
    for r in rows:
        i = None
        if r.get("path") not in (None, ""):
            i = by_path.get(_norm(str(r["path"]), root))
        elif r.get("id") not in (None, ""):
            i = by_id.get(integer_cell(r["id"]))
        try:
            value = float(r["uncertainty"])
        except (TypeError, ValueError):
            continue
        if i is not None and math.isfinite(value):
            values[i] = value
            matched += 1
    if not matched:
        raise UsageError(f"--uncertainty {path}: no row matches an image of the set (paths are relative to "
                         f"{root}; ids are those of items.csv)")
    return values, matched


# ---------------------------------------------------------------------------- metrics
def split_of(count: int, many: int, few: int) -> str:
    return "many" if count > many else "few" if count < few else "medium"


def measure(selected: Sequence[int], labels: Sequence[str], splits: dict[str, str]) -> dict[str, Any]:
    """The metrics of one selection (row indices into the pool ``labels``)."""
    chosen = [labels[i] for i in selected]
    k = max(len(chosen), 1)
    by_split = Counter(splits[c] for c in chosen)
    classes = set(labels)
    few_classes = {c for c in classes if splits[c] == "few"}
    few_images = sum(1 for c in labels if splits[c] == "few")
    out: dict[str, Any] = {"selected": len(chosen)}
    for s in SPLITS:
        out[f"share_{s}"] = by_split[s] / k
    out["coverage"] = len(set(chosen)) / len(classes) if classes else None
    out["few_class_coverage"] = len(set(chosen) & few_classes) / len(few_classes) if few_classes else None
    out["tail_recall"] = by_split["few"] / few_images if few_images else None
    return out


def _mean_std(runs: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {"selected": runs[0]["selected"], "seeds": len(runs)}
    for m in METRICS:
        values = [r[m] for r in runs if r[m] is not None]
        out[m] = float(np.mean(values)) if values else None
        out[f"{m}_std"] = float(np.std(values)) if values else None
    return out


def tie_break(seed: int, n: int):
    """The ``ids`` that ``select`` breaks score ties by: a seeded random order of the n pool rows."""
    import numpy as np

    return np.random.default_rng([TIE_STREAM, seed]).permutation(n)


def evaluate(outcome, labels_all: Sequence[str], budget: int | None, budget_frac: float, seeds: int,
             many: int, few: int, uncertainty=None, transform: str = "neglog",
             pooling: str = "confirmed") -> dict[str, Any]:
    """Every method's selection of K images from the mined pool, measured."""
    import numpy as np

    from ..mining import fill_missing, novelty, select

    arrays = outcome.arrays
    pos = {it.id: i for i, it in enumerate(outcome.dataset.items)}
    keep = np.array([int(t) in pos for t in arrays.task_ids.tolist()], dtype=bool)
    ids = arrays.task_ids
    rows = [pos[int(t)] for t in ids[keep].tolist()]  # pool row -> item index
    labels = [labels_all[i] for i in rows]
    counts = Counter(labels_all)
    splits = {c: split_of(n, many, few) for c, n in counts.items()}
    n = len(rows)
    k = min(budget if budget else max(1, round(budget_frac * n)), n)
    nov = {p: novelty(arrays, pooling=p, transform=transform)[keep] for p in POOLINGS}
    orders = [tie_break(seed, n) for seed in range(seeds)]

    def picked(scores) -> dict[str, Any]:  # ties at the cut broken by each seed's order
        return _mean_std([measure(select(scores, k, order), labels, splits) for order in orders])

    methods: dict[str, Any] = {}
    runs = [measure(np.random.default_rng(seed).permutation(n)[:k], labels, splits) for seed in range(seeds)]
    methods["random"] = _mean_std(runs)
    unc = None
    if uncertainty is not None:
        unc = fill_missing(np.asarray(uncertainty, dtype=float)[rows], "min")
        methods["uncertainty"] = picked(unc[:, None])
    for p in POOLINGS:
        methods[f"vlmine_{p}"] = picked(nov[p][:, None])
    if unc is not None:
        methods[f"pareto_{pooling}+uncertainty"] = product_selection(outcome, ids[keep].tolist(), k, labels, splits,
                                                                     seeds)

    gains: dict[str, dict[str, float | None]] = {}
    for name, m in methods.items():
        if name == "random" or name == "uncertainty":
            continue
        gains[name] = {f"vs_{b}": _gain(m["tail_recall"], methods[b]["tail_recall"])
                       for b in ("random", "uncertainty") if b in methods}
    pool_counts = Counter(labels)
    return {
        "images": len(labels_all),
        "mined": n,
        "failed": len(outcome.errors),
        "classes": len(counts),
        "budget": k,
        "tie_break": f"ties in a method's scores are broken by a seeded random order of the images; every "
                     f"method is the mean over {seeds} seeds",
        "splits": {
            "rule": f"many: more than {many} images of the class in the set, few: fewer than {few}, "
                    "medium: in between (ImageNet-LT / Places-LT: 100 and 20, training-split counts)",
            "many": many, "few": few,
            "classes": {s: sum(1 for v in splits.values() if v == s) for s in SPLITS},
            "images": {s: sum(c for cls, c in pool_counts.items() if splits[cls] == s) for s in SPLITS},
        },
        "methods": methods,
        "tail_recall_gain": gains,
    }


def product_selection(outcome, pool_ids: Sequence[int], k: int, labels: Sequence[str], splits: dict[str, str],
                      seeds: int) -> dict[str, Any]:
    """The first K of the order the backend itself gives (``outcome.order``, from ``Ranking.rank``:
    Pareto fronts of the configured pooling's novelty and the signals, SIGNAL_FIELDS included, the
    head diversity re-order, the backend's tie-break), measured; ``ids`` names the K picked, in
    order, as items.csv and ``python -m backend mine`` name them.

    That order has no ties to break, so every seed gets the same selection (a spread of 0)."""
    pool_row = {int(t): i for i, t in enumerate(pool_ids)}
    head = [pool_row[t] for t in outcome.order if t in pool_row][:k]
    shown = {it.id: it.shown_id for it in outcome.dataset.items}
    return {**_mean_std([measure(head, labels, splits)] * seeds), "ids": [shown[pool_ids[i]] for i in head]}


def _gain(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return (value - base) / base


# ----------------------------------------------------------------------------- report
def table(report: dict[str, Any]) -> str:
    lines = [f"{report['mined']} images mined ({report['failed']} failed), {report['classes']} classes, "
             f"budget K={report['budget']}",
             f"{'method':<26}{'many':>7}{'medium':>8}{'few':>7}{'coverage':>10}{'few cov':>9}{'tail recall':>13}"]

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    for name, m in report["methods"].items():
        shown = f"random (mean of {m['seeds']})" if name == "random" else name
        lines.append(f"{shown:<26}{fmt(m['share_many']):>7}{fmt(m['share_medium']):>8}{fmt(m['share_few']):>7}"
                     f"{fmt(m['coverage']):>10}{fmt(m['few_class_coverage']):>9}{fmt(m['tail_recall']):>13}")
    seeds = report["methods"]["random"]["seeds"]
    lines.append(f"(score ties broken at random: every method is a mean over the same {seeds} seeds)")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report["methods"])
    shown = [("tail_recall", "tail recall"), ("few_class_coverage", "few-shot class coverage"),
             ("coverage", "class coverage"), ("share_few", "share of few-shot images")]
    x = np.arange(len(names))
    width = 0.8 / len(shown)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(names) + 2), 4.2))
    for j, (metric, label) in enumerate(shown):
        values = [report["methods"][n].get(metric) or 0.0 for n in names]
        at = x + (j - (len(shown) - 1) / 2) * width
        ax.bar(at, values, width, label=label)
        for i, n in enumerate(names):  # the spread over seeds (random picks, random tie-breaks)
            std = report["methods"][n].get(f"{metric}_std")
            if std:
                ax.errorbar(at[i], values[i], yerr=std, fmt="none", ecolor="black", capsize=2, lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_ylim(0, 1.22)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("at the budget")
    ax.set_title(f"Long-tail selection, K={report['budget']} of {report['mined']} images")
    ax.legend(fontsize=8, loc="upper center", ncol=len(shown), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m backend evaluate",
        description="Compare VLMine with random and uncertainty selection on a labeled long-tail image set: "
                    "how a team with a GPU checks the paper's claim (10-50%% over uncertainty baselines) on its "
                    "own data. Mining uses the backend's settings (VLM_MODEL, VLM_API_URL, KEYWORD_MODE...) and "
                    "resumes when run again.",
        epilog="examples:\n"
               "  python -m backend evaluate --images my_set/ --uncertainty unc.csv --budget 500 --out eval/\n"
               "  python -m backend evaluate --rows captions.jsonl --out eval/   # rows: {\"text\": ..., \"labels\": [...]}\n"
               "  python -m backend evaluate --list ImageNet_LT_train.txt --root /data/imagenet \\\n"
               "      --budget-frac 0.05 --uncertainty unc.jsonl --out eval/\n"
               "uncertainty file: CSV or JSONL rows with 'uncertainty' and 'path' (relative to the root) or 'id'\n"
               "(the image's id in items.csv of an earlier run). Score ties are broken at random, per seed.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR", help="a folder with one sub-folder per class")
    src.add_argument("--list", metavar="FILE", help="lines 'relative/path.jpg LABEL' (ImageNet-LT, Places-LT)")
    src.add_argument("--rows", metavar="FILE", help="JSONL rows with 'text' or 'image' and a 'labels' list (multi-label):"
                     " the share of the top 1/5/10%% holding a rare label, their recall, labels covered, AUC")
    rows = p.add_argument_group("with --rows (backend/offline/label_eval.py)")
    rows.add_argument("--field", help="the field to mine (default: detected, as python -m backend mine does)")
    rows.add_argument("--signal", action="append", default=[], metavar="NAME",
                      help="a numeric row field ranked beside novelty (default: 'uncertainty' when rows have it)")
    rows.add_argument("--rare", type=int, nargs="+", default=[10, 20], metavar="R",
                      help="rare = the R labels in the fewest rows (default: 10 20)")
    rows.add_argument("--budgets", type=float, nargs="+", default=[0.01, 0.05, 0.10], metavar="F",
                      help="shares of the rows at the head of the queue (default: 0.01 0.05 0.1)")
    p.add_argument("--root", metavar="DIR", help="the folder --list paths are relative to (default: the list's)")
    p.add_argument("--uncertainty", metavar="FILE", help="your model's uncertainty per image (CSV or JSONL)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=int, metavar="K", help="images each method selects")
    budget.add_argument("--budget-frac", type=float, default=0.05, metavar="F",
                        help="or this share of the mined images (default 0.05)")
    p.add_argument("--seeds", type=int, default=5,
                   help="random baseline runs, and random tie-breaks of the other methods (default 5)")
    p.add_argument("--many", type=int, default=100, help="many-shot: more than this many images (default 100)")
    p.add_argument("--few", type=int, default=20, help="few-shot: fewer than this many images (default 20)")
    p.add_argument("--out", required=True, metavar="DIR", help="writes evaluation.json, evaluation.png, items.csv")
    p.add_argument("--model-dir", help="state and description cache (default: MODEL_DIR, else ./data)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log the pipeline's progress")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.rows:
        from .label_eval import run_rows

        return run_rows(args)
    try:
        if args.root and not args.list:
            raise UsageError("--root goes with --list")
        if args.budget is not None and args.budget < 1:
            raise UsageError("--budget must be at least 1")
        if not 0 < args.budget_frac <= 1:
            raise UsageError("--budget-frac must be in (0, 1]")
        if args.seeds < 1:
            raise UsageError("--seeds must be at least 1")
        if not 0 < args.few <= args.many + 1:
            raise UsageError("--few must be positive and at most --many + 1")
        build_engine_settings(args.model_dir)  # a bad setting is a usage error before any work
        root, rels, labels, identity = labeled_images(args)
        if not rels:
            print("error: no labeled images found", file=sys.stderr)
            return 1
        dataset = local_dataset(root, rels, identity)
        engine = build_engine(args.model_dir, dataset)
        stabilise_ids(dataset, ids_file(engine, project_id(identity)))  # the ids of items.csv, before mining
        uncertainty, matched = (read_uncertainty(args.uncertainty, rels, root, [it.id for it in dataset.items])
                                if args.uncertainty else (None, 0))
        fields: list[str] = []
        if uncertainty is not None:  # ranked as a field of each image's task, as on the server
            fields = [UNCERTAINTY_KEY]
            for item, value in zip(dataset.items, uncertainty.tolist()):
                if math.isfinite(value):
                    item.task["data"][UNCERTAINTY_KEY] = value
        print(f"{len(rels)} images in {len(set(labels))} classes"
              + (f"; uncertainty for {matched}" if uncertainty is not None else ""), file=sys.stderr)
        outcome = mine_with_progress(engine, dataset, fields, quiet=args.quiet)
    except (UsageError, SourceError, KeyboardInterrupt) as exc:
        return command_error(exc)
    if not summarise(outcome):
        return 1
    s = engine.settings
    report = evaluate(outcome, labels, args.budget, args.budget_frac, args.seeds, args.many, args.few,
                      uncertainty, transform=s.novelty_transform, pooling=s.pooling)
    report = {
        "source": {"images": args.images, "list": args.list, "root": str(root), "project": project_id(identity)},
        "settings": {"model_version": s.model_version(), "vlm": s.vlm_name, "keyword_mode": s.keyword_mode,
                     "novelty_transform": s.novelty_transform},
        "uncertainty": {"file": args.uncertainty, "matched": matched} if args.uncertainty else None,
        **report,
    }
    rows = output_rows(outcome)
    by_path = dict(zip(rels, labels))
    for row in rows:
        row["label"] = by_path.get(row["path"])
    write_evaluation(Path(args.out), rows, report, plot, table(report))
    return 0
