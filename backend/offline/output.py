"""What the offline commands write: the ranking's rows (.csv or .jsonl), the printed
selection, the run's summary, and an evaluation's files."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..settings import OBJECT_SIGNALS

if TYPE_CHECKING:
    from ..engine.object_mining import RarestObject
    from .run import Outcome
    from .sources import Item

NOVELTY_DECIMALS = 6  # = backend.mining.novelty.DECIMALS (not imported: the CLI starts without numpy)
SHOWN_KEYWORDS = 5
BOX_DECIMALS = 2  # the rarest object's box, percent of the image
#: the output's own columns: a signal of one of these names would overwrite it
OUTPUT_COLUMNS = frozenset({"id", "priority", "front", "novelty", "keywords", "path", "image", "text",
                            "description", "error", "rarest_object", "object_score", "object_box",
                            "object_keywords", "object_errors", *OBJECT_SIGNALS})


def output_rows(outcome: Outcome) -> list[dict[str, Any]]:
    """One row per item, label-first first; failed items last, with priority 0 and no front."""
    ds = outcome.dataset
    pos = {it.id: i for i, it in enumerate(ds.items)}
    res = outcome.result
    row_of = {int(t): i for i, t in enumerate(res.task_ids.tolist())} if res is not None else {}
    rows = []
    for tid in outcome.order + sorted(outcome.errors):
        item = ds.items[pos[tid]]
        r = row_of.get(tid) if tid not in outcome.errors else None
        row: dict[str, Any] = {
            "id": item.shown_id,
            "priority": float(res.priority[r]) if r is not None else 0.0,  # in full: 1e6+ rows differ below 1e-6
            "front": int(res.front[r]) if r is not None else None,
            # novelty is ranked at this precision (mining.novelty.DECIMALS): equal shown, equal ranked
            "novelty": round(float(res.novelty[r]), NOVELTY_DECIMALS) if r is not None else None,
        }
        for name, values in outcome.signals.items():
            value = float(values[pos[tid]])
            row[name] = None if math.isnan(value) else value
        row["keywords"] = outcome.keywords.get(tid, []) if r is not None else []
        row.update(item.ref)
        if ds.kind == "image":
            row["description"] = outcome.descriptions.get(tid)
        row["error"] = outcome.errors.get(tid)
        if ds.objects is not None:
            row.update(object_columns(outcome, item, tid, r))
        rows.append(row)
    return rows


def object_columns(outcome: Outcome, item: Item, tid: int, r: int | None) -> dict[str, Any]:
    """A detection input's columns: the task's rarest object (the detector's label and
    score, its box in percent ``[x, y, width, height]``, its keywords rarest first), the
    object signals as ranked, and every box that failed (unreadable in the input, or
    refused when mined) with its reason. Empty for a task whose image failed or that has
    no mined object."""
    rare = outcome.rarest.get(tid) if r is not None else None
    res = outcome.result
    out: dict[str, Any] = {"rarest_object": None, "object_score": None, "object_box": None, "object_keywords": []}
    if rare is not None:
        box = rare.box
        out.update(rarest_object=rare.label, object_score=rare.score,
                   object_box=[round(v * 100, BOX_DECIMALS) for v in (box.left, box.top, box.width, box.height)],
                   object_keywords=[k for k, _ in rare.keywords])
    for name in OBJECT_SIGNALS:
        values = res.signals.get(name) if res is not None and r is not None else None
        out[name] = None if values is None or math.isnan(float(values[r])) else float(values[r])
    out["object_errors"] = list(item.box_errors) + outcome.object_errors.get(tid, [])
    return out


def write_evaluation(out: Path, rows: list[dict[str, Any]], report: dict[str, Any],
                     plot: Any, table: str) -> None:
    """Write what an evaluation leaves in ``out`` (items.csv, evaluation.json, evaluation.png)
    and print its table: the image and the labelled-rows evaluations write the same set."""
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "items.csv", rows)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(report, out / "evaluation.png")
    print(table)
    print(f"wrote {out / 'evaluation.json'}, {out / 'evaluation.png'}, {out / 'items.csv'}", file=sys.stderr)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".csv":
            columns = list(rows[0]) if rows else ["id", "priority", "front", "novelty", "keywords", "error"]
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("; ".join(map(str, v)) if isinstance(v, list) else "" if v is None else v)
                                 for k, v in row.items()})
        else:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def print_selection(outcome: Outcome, rows: list[dict[str, Any]], budget: int, out=None) -> None:
    out = out or sys.stdout
    ref = outcome.dataset.ref_column
    objects = outcome.dataset.objects is not None
    tid_of = {it.shown_id: it.id for it in outcome.dataset.items} if objects else {}
    print("rank\tid\tpriority\tfront\t" + ("rarest object\t" if objects else "") + "rarest keywords\t" + ref,
          file=out)
    for n, row in enumerate([r for r in rows if r["error"] is None][:budget], 1):
        kws = ", ".join(f"{k} ({outcome.df.get(k, 0)})" for k in row["keywords"][:SHOWN_KEYWORDS])
        shown = str(row.get(ref) or "").replace("\n", " ").replace("\t", " ")
        rare = (rarest_object_text(outcome.rarest.get(tid_of.get(row["id"], -1)), row) + "\t") if objects else ""
        print(f"{n}\t{row['id']}\t{row['priority']:.4f}\t{row['front']}\t{rare}{kws}\t{shown[:120]}", file=out)


def rarest_object_text(rare: "RarestObject | None", row: dict[str, Any]) -> str:
    """``trailer (0.80) at [37.5, 8.33, 18.75, 25.0]: hitch (3), horse (3)``: a printed row's
    rarest object, its keywords with their counts in the object scope (objects, and the
    scenes while OBJECT_WITH_SCENE counts them)."""
    if rare is None or row.get("object_box") is None:
        return "-"
    score = rare.score
    label = (rare.label or "a box") + (f" ({score:.2f})" if isinstance(score, (int, float)) else "")
    kws = ", ".join(f"{k} ({n})" for k, n in rare.keywords[:SHOWN_KEYWORDS])
    return f"{label} at {row['object_box']}: {kws}".replace("\t", " ")


def summarise(outcome: Outcome, err=None) -> bool:
    """Print how many items were mined and the commonest failures; False (with an error line)
    when nothing could be mined, which every offline command treats as a failed run."""
    err = err or sys.stderr
    total = len(outcome.dataset.items)
    print(f"{outcome.ok} of {total} {outcome.dataset.kind}s mined, {len(outcome.errors)} failed "
          f"({outcome.mined_now} processed now, {outcome.skipped} already mined)", file=err)
    for reason, n in Counter(outcome.errors.values()).most_common(5):
        print(f"  failed: {n} x {reason}", file=err)
    if not outcome.ok:
        print("error: nothing could be mined", file=err)
    return bool(outcome.ok)
