"""Mining a :class:`~.sources.Dataset` offline on an :class:`Engine`, and the signals it ranks.

The same pipeline as the server (fetch -> VLM description -> keywords -> index ->
novelty + signals -> Pareto ranking), run in this process on an engine built from
``Settings.from_env()``, so every setting of the server applies (``VLM_MODEL``,
``VLM_API_URL``, ``KEYWORD_MODE``, ``POOLING``...), except that the engine never talks to
Label Studio: the tasks are the source's rows, not a Label Studio project's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import UsageError
from .ids import Manifest, ids_file, project_id, stabilise_ids
from .sources import Dataset

if TYPE_CHECKING:  # heavy imports stay out of argument parsing
    import numpy as np

    from ..engine.engine import Engine
    from ..engine.object_mining import RarestObject
    from ..mining import IndexArrays, MiningResult
    from ..settings import Settings

def signal_columns(dataset: Dataset, fields: Sequence[str], settings: "Settings") -> dict[str, "np.ndarray"]:
    """Signal name -> each item's value as ranked (NaN = missing), read by the engine's readers:
    the output's signal columns, for failed items too."""
    import numpy as np

    from ..engine import ranking_signals
    from ..fields import field_number

    out: dict[str, np.ndarray] = {}
    for name, ranked_as in ranking_signals.ranked_fields(settings, fields).items():
        out[ranked_as] = np.array([field_number(it.task["data"], name) for it in dataset.items], dtype=float)
    if ranking_signals.uses_predictions(settings):
        out[ranking_signals.UNCERTAINTY] = np.array(
            [ranking_signals.prediction_uncertainty(it.task, settings) for it in dataset.items], dtype=float)
    out.pop("novelty", None)
    return out


# ---------------------------------------------------------------------------- mining
@dataclass
class Outcome:
    dataset: Dataset
    pid: int
    arrays: "IndexArrays"  # the project's keyword index, as ranked (the evaluation harness reads it)
    result: "MiningResult | None"
    signals: dict[str, "np.ndarray"]  # aligned with dataset.items, NaN = missing
    errors: dict[int, str]
    descriptions: dict[int, str]
    keywords: dict[int, list[str]]  # rarest first
    df: dict[str, int]
    mined_now: int = 0
    skipped: int = 0
    order: list[int] = field(default_factory=list)  # mined item ids, label-first first
    rarest: dict[int, "RarestObject"] = field(default_factory=dict)  # detection inputs: each task's rarest object
    object_errors: dict[int, list[str]] = field(default_factory=dict)  # boxes refused when mined, by task

    @property
    def ok(self) -> int:
        return len(self.order)


def build_engine(model_dir: str | None, dataset: Dataset | None = None, **overrides: Any) -> "Engine":
    """An engine on the environment's settings for mining ``dataset`` in this process.

    It never talks to Label Studio, whatever LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY the
    environment holds: the project is a synthetic one (:func:`.ids.project_id`) that no Label
    Studio knows, and the tasks with their predictions are the source's rows.
    """
    from ..engine.engine import Engine
    from ..errors import SettingsError
    from ..settings import Settings

    if model_dir:
        overrides["model_dir"] = model_dir
    if dataset is not None and dataset.local_root:
        overrides["local_files_document_root"] = dataset.local_root
    if dataset is not None and dataset.objects is not None:
        overrides.update(dataset.objects.settings())
    overrides.update(label_studio_url=None, label_studio_api_key=None)
    try:
        settings = Settings.from_env(invert_priority=False, label_stream="tab", **overrides)
    except SettingsError as exc:
        raise UsageError(f"setting: {exc}") from None
    return Engine(settings)


def build_engine_settings(model_dir: str | None) -> "Settings":
    """The settings as the environment gives them (for reading the source before the engine exists)."""
    from ..errors import SettingsError
    from ..settings import Settings

    try:
        return Settings.from_env(**({"model_dir": model_dir} if model_dir else {}))
    except SettingsError as exc:
        raise UsageError(f"setting: {exc}") from None


def run_mining(engine: "Engine", dataset: Dataset, fields: Sequence[str] = (), progress: bool = True) -> Outcome:
    """Mine what is not mined yet (in BATCH_SIZE batches, with a progress bar), then rank.

    Everything but the reading of the source goes through the engine, as on the server:
    forgetting what left the source, mining, the signals (``fields``: row fields ranked
    beside the settings' own, see :func:`signal_fields`), the ranking and its tie-breaks,
    and the rarest-first keyword order.
    """
    pid = project_id(dataset.identity)
    stabilise_ids(dataset, ids_file(engine, pid))
    engine.project(pid, dataset.label_config)
    engine.set_total(pid, len(dataset.items))
    ids = [it.id for it in dataset.items]
    current = set(ids)
    manifest = Manifest(engine.settings.data_dir / "cli" / f"{pid}-{engine.mining_hash}.jsonl")
    engine.tasks.forget_absent(pid, current)  # items that left the source count in no document frequency
    manifest.compact(current)
    indexed = engine.tasks.indexed(pid, ids)
    # manifests written before a signature changed format: rewrite the entry, do not re-mine
    manifest.add((it.id, it.sig) for it in dataset.items
                 if it.legacy_sig is not None and it.id in indexed and manifest.entries.get(it.id) == it.legacy_sig)
    todo = [it for it in dataset.items if it.id not in indexed or manifest.entries.get(it.id) != it.sig]
    skipped = len(ids) - len(todo)
    failed = 0
    if todo:
        bar = _progress(len(ids), skipped, dataset.kind, enabled=progress)
        try:
            size = engine.settings.batch_size
            for start in range(0, len(todo), size):
                batch = todo[start:start + size]
                mined = engine.tasks.mine(pid, [it.task for it in batch])
                by_id = {it.id: it for it in batch}
                manifest.add((m.task_id, by_id[m.task_id].sig) for m in mined if m.ok)
                failed += sum(1 for m in mined if not m.ok)
                bar.update(len(batch), failed)
        finally:
            bar.close()

    tasks = [it.task for it in dataset.items]
    # the values the rows hold now: a row re-scored since it was mined is not mined again
    engine.tasks.record_field_signals(pid, tasks, fields)
    order, result = engine.ranker.rank(pid, fresh_tasks=tasks, extra_fields=fields)
    view = engine.view(pid)
    records = view.task_records(ids)
    indexed = engine.tasks.indexed(pid, ids)
    errors = {t: (records[t].error if t in records and records[t].error else "not mined")
              for t in ids if t not in indexed}
    descriptions = {t: r.description for t, r in records.items() if r.description and t in indexed}
    keywords, df = engine.explainer.rarest_keywords(pid, sorted(indexed))
    outcome = Outcome(dataset, pid, view.index_arrays(), result, signal_columns(dataset, fields, engine.settings),
                      errors, descriptions, keywords, df, mined_now=len(todo), skipped=skipped,
                      order=[t for t in order if t in current])
    if dataset.objects is not None:
        # the rarest object as the annotator's explanation names it (one owner: the engine)
        outcome.rarest = engine.explainer.rarest_objects(pid, sorted(indexed), records)
        outcome.object_errors = view.object_errors(ids)
    return outcome


def mine_with_progress(engine: "Engine", dataset: Dataset, fields: Sequence[str], quiet: bool) -> Outcome:
    """``run_mining`` with its progress bar, log lines printed above the bar."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        return run_mining(engine, dataset, fields, progress=not quiet)


class _progress:
    """done/total, rate and failures on stderr (tqdm)."""

    def __init__(self, total: int, initial: int, kind: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit=" " + kind + "s", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, smoothing=0.1, desc="mining")
        self.bar.set_postfix(failed=0, refresh=False)

    def update(self, n: int, failed: int) -> None:
        self.bar.set_postfix(failed=failed, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
