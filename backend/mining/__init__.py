"""The mining core: keywords -> index -> novelty + uncertainty -> Pareto priorities.

No network I/O here: the keyword index's stores (SQLite, Redis) live in ``backend.state``.
``prioritise`` is the one call the rest of the backend needs: it takes a scope's ``IndexArrays``
and any uncertainty signals and returns fronts, positions and priorities aligned with the
task ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .diversity import diversify_head, head_size
from .keyword_index import IndexArrays, KeywordIndex
from .keywords import KeywordNormaliser, parse_keyword_list
from .novelty import DEFAULT_POOLING, novelty
from .pareto import Ranking, informative_columns, pareto_fronts, rank, select, signal_margins
from .uncertainty import (
    entropy,
    fill_missing,
    least_confidence,
    margin,
    one_minus_confidence,
    uncertainty_from_task,
    uncertainty_from_tasks,
    variation_ratio,
)

__all__ = [
    "DEFAULT_POOLING",
    "diversify_head",
    "IndexArrays",
    "KeywordIndex",
    "KeywordNormaliser",
    "MiningResult",
    "Ranking",
    "entropy",
    "fill_missing",
    "least_confidence",
    "margin",
    "novelty",
    "one_minus_confidence",
    "pareto_fronts",
    "parse_keyword_list",
    "prioritise",
    "rank",
    "select",
    "uncertainty_from_task",
    "uncertainty_from_tasks",
    "variation_ratio",
]


@dataclass(frozen=True)
class MiningResult:
    """Everything aligned with ``task_ids``; ``signals`` holds the filled values of every
    signal, "novelty" included, and ``ranked`` the names of those the ranking used (the
    others were nearly constant or repeated another's order). ``order`` lists row
    indices, label-first first."""

    task_ids: np.ndarray
    novelty: np.ndarray
    signals: dict[str, np.ndarray]
    front: np.ndarray
    priority: np.ndarray
    position: np.ndarray
    order: np.ndarray | None = None
    ranked: tuple[str, ...] = ()


def prioritise(
    arrays: IndexArrays,
    signals: Mapping[str, np.ndarray] | None = None,
    pooling: str = DEFAULT_POOLING,
    transform: str = "neglog",
    invert: bool = False,
    empty_novelty: float | None = None,
    missing: str = "min",
    head_diversity: float = 0.0,
    novelty_from: str | None = None,
    head_keywords: IndexArrays | None = None,
) -> MiningResult:
    """Novelty plus the given signals (NaN = missing, filled by ``missing``), ranked.

    What is ranked (``pareto.informative_columns``): a signal that is nearly constant, or
    that orders the tasks exactly as an earlier one does, is left out, and the rest rank
    by dominance by a margin (``pareto.signal_margins``): a task is put behind another
    only when the other is better by more than MARGIN_SHARE (5%) of a signal's spread on at
    least one signal and no worse on any. A difference by a hair on one signal cannot put
    a task behind a whole front of ordinary ones; the Borda count still orders a front
    by every difference. Novelty is compared on its -log scale under either transform.

    ``novelty_from``: the name of one of ``signals`` that is each task's novelty, in place
    of the keyword novelty of ``arrays`` (object mining's ``object_novelty``: the rarest
    thing in the task, its scene or one of its objects, on one scale). It is ranked once,
    as "novelty", and stays in ``signals`` under its own name for what reports it.

    ``head_diversity``: this share of the tasks at the head of the ranking (at most
    ``diversity.MAX_HEAD``) is re-ordered by greedy coverage of their keywords
    (``diversity.diversify_head``; ``head_keywords``, rows aligned with ``arrays``, when
    the task's keywords are not those of ``arrays``), so one rare concept does not fill
    the head; 0 keeps the ranking's order. The set of tasks in the head is unchanged.
    Fronts stay as ranked; positions and priorities follow the new order.
    """
    columns: dict[str, np.ndarray] = {"novelty": np.zeros(0)}
    for name, values in (signals or {}).items():
        if name in columns:
            raise ValueError(f"signal name {name!r} is reserved")
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (arrays.n_tasks,):
            raise ValueError(
                f"signal {name!r} has shape {values.shape}, expected ({arrays.n_tasks},)"
            )
        columns[name] = fill_missing(values, missing)
    if novelty_from is None:
        nov = novelty(arrays, pooling=pooling, transform=transform, empty=empty_novelty)
    elif novelty_from in columns and novelty_from != "novelty":
        nov = columns[novelty_from]
    else:
        raise ValueError(f"novelty_from names no signal: {novelty_from!r}")
    columns["novelty"] = nov
    names = [k for k in columns if k != novelty_from]
    ranked_values = [columns[k] for k in names]
    if transform == "inverse" and novelty_from is None:
        # N / df: its margins would be taken on another scale than -log(df / N)'s
        ranked_values[0] = np.log(np.maximum(nov, np.finfo(np.float64).tiny))
    X = np.column_stack(ranked_values) if arrays.n_tasks else np.zeros((0, len(columns)))
    kept = informative_columns(X)
    X = X[:, kept]
    ranking = rank(X, ids=arrays.task_ids, invert=invert, margins=signal_margins(X))
    order, position, priority = ranking.order, ranking.position, ranking.priority
    head = head_size(head_diversity, arrays.n_tasks)
    if head:
        n = arrays.n_tasks
        # coverage weighs the ranking's own score, so every signal keeps its say in the head
        order = diversify_head(order, head_keywords if head_keywords is not None else arrays,
                               head, (n - ranking.position) / n)
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n, dtype=np.int64)
        # the same mapping from position to priority as pareto.rank's
        priority = (position + 1) / n if invert else (n - position) / n
    return MiningResult(
        task_ids=arrays.task_ids,
        novelty=nov,
        signals=columns,
        front=ranking.front,
        priority=priority,
        position=position,
        order=order,
        ranked=tuple(names[j] for j in kept),
    )
