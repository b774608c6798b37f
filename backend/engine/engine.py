"""The VLMine engine: what happens to a project's tasks, independent of HTTP and queues.

The server (``backend.server``), the job runners (``backend.jobs``) and the
command line all call these methods. Each public method is safe to run twice
with the same input: mining a task again replaces its keywords, a re-rank
writes only what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import EngineError, LabelConfigError, LabelStudioError
from ..labelstudio.config import LabelConfig, Source
from ..logs import mask_url
from ..mining import mine as mine_priorities
from ..pipeline.miner import MinedTask, Miner
from ..settings import Settings
from ..state import Coordination, ProjectState, State, Store, TaskRecord, open_state
from ..versions import KINDS, generation_version
from ..objects import forget_tasks, object_scope, task_keywords
from . import objects as object_parts
from . import signals, stream, wording, writeback

log = logging.getLogger(__name__)

UNCERTAINTY_MAX_AGE_S = 300.0
#: the prediction id recorded for a /predict answer: Label Studio stores it unless the
#: request timed out, so the next write-back asks Label Studio whether it holds one
PROVISIONAL = -1
#: task ids per Label Studio listing in labeling_state: about 2 KB of query string, well inside
#: what web servers in front of Label Studio accept in a request line
LABELING_LOOKUP_CHUNK = 200
#: label configs whose kind version_of remembers (one per project and config edit is plenty)
KINDS_REMEMBERED = 1024


def data_digest(data: Any) -> str:
    """A short fingerprint of a task's data, to notice edits made in Label Studio."""
    raw = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Engine:
    """A project's life in the backend; the only door to the state it keeps.

    Args:
        settings: the backend's settings.
        state: what to persist to; ``open_state(settings)`` when None.
        label_studio: a ready Label Studio client (tests, benchmarks); else one is built
            from the settings, or from the address a /setup call brings.
        store, index, coordination, redis_client: single parts handed to ``open_state``.
    """

    def __init__(self, settings: Settings, state: State | None = None, *, label_studio=None,
                 store: Store | None = None, index=None, coordination: Coordination | None = None,
                 redis_client=None) -> None:
        self.settings = settings
        if state is None:
            state = open_state(settings, store=store, index=index, coordination=coordination,
                               redis_client=redis_client)
        self.state = state
        self.store = state.store
        self.index = state.index
        self.coord = state.coordination
        self.redis = state.redis
        self._label_studio = label_studio
        self._setup_connection: tuple[str, str] | None = None
        self._uncertainty: dict[int, tuple[float, dict[int, float]]] = {}
        self._ls_lock = threading.Lock()
        self.miner = Miner(settings, self.store, label_studio_factory=self.label_studio_or_none)
        # from the miner's fingerprint: SYNONYMS_FILE is read once, by the miner
        #: a project's base version by what it mines: an image project names its describer, a
        #: text project names no VLM (see backend.versions.base_version)
        self.versions_by_kind = {kind: settings.model_version(self.miner.fingerprint, kind=kind)
                                 for kind in KINDS}
        #: the version of an image project: what /health, /metrics and /versions name the backend by
        self.base_version = self.versions_by_kind["image"]
        self._kind_of_config: dict[str | None, str] = {}  # label config -> "image" or "text" (version_of)
        if settings.redis_url and not (settings.vlm_model or settings.vlm_api_url or settings.vlm_device):
            # the default is chosen per machine: a web process without a GPU and workers with one
            # would name different versions and rewrite each other's priorities
            log.warning("VLM_MODEL is not set: this process describes with %s, the default for its own machine; "
                        "with RQ workers on other machines set VLM_MODEL to the same model for every process",
                        settings.describer_model)
        self.mining_hash = settings.mining_hash(self.miner.fingerprint)
        #: keeps Label Studio's stream rare-first (sampling, model version); see backend.engine.stream
        self.stream = stream.StreamGuard(self)
        #: takes the backend's explanation out of submitted annotations (KEEP_EXPLANATIONS)
        self.annotation_cleaner = stream.ExplanationRemover(self)

    # ---------------------------------------------------------------- plumbing
    def scope(self, pid: int) -> str:
        return f"p{pid}:{self.mining_hash}"

    def object_scope(self, pid: int) -> str:
        """The project's object keywords (object mining), next to its image scope."""
        return object_scope(self.scope(pid))

    def mines_objects(self, state: ProjectState | None) -> bool:
        """Whether the project's tasks get their objects mined (OBJECT_MINING, and a label
        config that draws boxes on the mined Image)."""
        return bool(self.settings.object_mining and state is not None
                    and self.miner.mines_objects(self.source_of(state.label_config)))

    def label_studio_or_none(self):
        with self._ls_lock:
            if self._label_studio is None:
                url = self.settings.label_studio_url
                key = self.settings.label_studio_api_key
                if not (url and key) and self._setup_connection is not None:
                    url, key = self._setup_connection
                if url and key:
                    from ..labelstudio.client import LabelStudioClient

                    self._label_studio = LabelStudioClient(url, key)
            return self._label_studio

    def remember_setup_connection(self, hostname: Any, access_token: Any) -> None:
        """Use the address and token Label Studio sends in /setup when none is configured.

        Kept in memory only (never written to disk or Redis), so it serves the
        embedded mode; RQ workers need LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY.
        """
        if self.settings.label_studio_url and self.settings.label_studio_api_key:
            return
        if not (isinstance(hostname, str) and hostname.startswith(("http://", "https://"))
                and isinstance(access_token, str) and access_token.strip()):
            return
        pair = (hostname.rstrip("/"), access_token.strip())
        with self._ls_lock:
            if self._setup_connection != pair:
                self._setup_connection = pair
                self._label_studio = None
                log.info("writing back to %s with the token Label Studio sent in /setup", mask_url(pair[0]))

    def label_studio(self):
        client = self.label_studio_or_none()
        if client is None:
            raise EngineError("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are needed to write priorities back "
                              "(or a /setup call from Label Studio that carries its address and a token)")
        return client

    def project(self, pid: int, label_config: str | None = None) -> ProjectState:
        """The project's state, created on first sight; a new label config is remembered.

        Every path that brings a label config (/setup, /predict, webhooks) passes through
        here, so this is where a config that mines another field is noticed, even one
        changed while the backend was down: the index is dropped and the project marked
        for a sync, which the caller's ``ensure_synced`` queues.
        """
        state = self.store.get_project(pid)
        if state is None:
            state = ProjectState(pid=pid, label_config=label_config, base_version=self.version_of(label_config))
            self.store.save_project(state)
            return state
        had_config = bool(state.label_config)  # without one, nothing was ever written
        if label_config and label_config != state.label_config:
            fields: dict[str, Any] = {"label_config": label_config}
            old_source = self.source_of(state.label_config)
            new_source = self.source_of(label_config)
            # with object mining, a config that gains (or loses) boxes on the image changes what is mined
            boxes_changed = self.settings.object_mining and (
                self.miner.mines_objects(old_source) != self.miner.mines_objects(new_source))
            if state.label_config and (old_source != new_source or boxes_changed):
                # what the index holds was mined from another field: mine the project again
                self.index.drop_scope(self.scope(pid))
                if self.settings.object_mining:
                    self.index.drop_scope(self.object_scope(pid))
                fields["synced"] = state.synced = None
                log.info("project %s: the label config now mines %s (was %s); mining every task again",
                         pid, new_source, old_source)
            state.label_config = label_config
            self.store.update_project(pid, **fields)
        wanted = self.version_of(state.label_config)
        if state.base_version != wanted:
            # settings changed since the last run (or the config now mines another kind of
            # data): a new version line; the old one is deleted from Label Studio once the new
            # one has been written
            retired = [v for v in (state.retired or "").split(",") if v]
            if had_config and state.live_version and state.live_version not in retired:
                retired.append(state.live_version)
            state.base_version, state.generation = wanted, 0
            state.retired = ",".join(retired) or None
            self.store.update_project(pid, base_version=state.base_version, generation=0, retired=state.retired)
        return state

    def version_of(self, label_config: str | None) -> str:
        """The base version of a project with ``label_config``: named after what mines its kind
        of data (an image project before its config is known). Every :meth:`project` call asks,
        so each config's kind is parsed once and remembered."""
        kind = self._kind_of_config.get(label_config)
        if kind is None:
            source = self.source_of(label_config)
            kind = source.kind if source is not None else "image"
            if len(self._kind_of_config) < KINDS_REMEMBERED:
                self._kind_of_config[label_config] = kind
        return self.versions_by_kind[kind]

    def source_of(self, label_config: str | None) -> Source | None:
        if not label_config:
            return None
        try:
            return LabelConfig.parse(label_config).source(self.settings.description_field,
                                                          self.settings.image_field)
        except (LabelConfigError, ValueError):
            return None

    def live_version(self, pid: int) -> str:
        return self.project(pid).live_version or self.base_version

    def config(self, state: ProjectState) -> LabelConfig:
        if not state.label_config:
            raise LabelConfigError(f"project {state.pid}: no label config known yet")
        return LabelConfig.parse(state.label_config)

    def source(self, state: ProjectState) -> Source:
        return self.config(state).source(self.settings.description_field, self.settings.image_field)

    # ---------------------------------------------------------------- mining
    def mine_tasks(self, pid: int, tasks: Sequence[dict], label_config: str | None = None) -> list[MinedTask]:
        """Describe and index a batch of tasks (idempotent).

        ``label_config``: the config the tasks were queued under, used only for a project
        that has none yet; a queued job must never put back a config changed since.
        """
        state = self.project(pid)
        if not state.label_config and label_config:
            state = self.project(pid, label_config)
        source = self.source(state)
        if self.miner.mines_objects(source):
            tasks = self._with_boxes(pid, tasks)
        mined = self.miner.mine(tasks, source)
        if self.source_of(self.project(pid).label_config) != source:
            # the label config changed to another field while this batch was described: its
            # keywords are of the old field; the sync that the change queued mines these tasks
            log.info("project %s: the field to mine changed while %d tasks were mined; left to the sync",
                     pid, len(tasks))
            return mined
        fields = signals.field_names(self.settings)
        if fields:
            by_id = {int(t["id"]): t for t in tasks}
            for m in mined:
                if m.ok:
                    m.signals = signals.field_signals(by_id[m.task_id], fields)
        with_objects = self.miner.mines_objects(source)
        if with_objects:
            for m in mined:
                uncertainty = object_parts.uncertainty_of(m) if m.ok else None
                if uncertainty is not None:
                    m.signals[object_parts.OBJECT_UNCERTAINTY] = uncertainty
        ok = {m.task_id: m.keywords for m in mined if m.ok}
        failed = [m.task_id for m in mined if not m.ok]
        if ok:
            self.index.upsert_many(self.scope(pid), ok)
        if failed:
            self.index.delete(self.scope(pid), failed)
        if with_objects:
            object_parts.index_mined(self.index, self.object_scope(pid), mined, self.settings.object_with_scene)
        digests = {int(t["id"]): data_digest(t.get("data")) for t in tasks}
        self.store.save_tasks(pid, [
            TaskRecord(m.task_id, self.mining_hash, "mined" if m.ok else "failed",
                       m.description, m.error, m.signals, digests.get(m.task_id),
                       object_parts.record_objects(m) if with_objects and m.ok else None) for m in mined
        ])
        self.coord.incr("tasks_mined", len(ok))
        self.coord.incr("tasks_failed", len(failed))
        if failed:
            first = next(m for m in mined if not m.ok)
            self.coord.set_error("task", f"project {pid} task {first.task_id}: {first.error}")
        if with_objects:
            self._keep_thumbnails(pid, [m for m in mined if m.ok and m.thumbnails])
            self._rewrite_explanations(pid, [m.task_id for m in mined if m.ok])
            self.coord.incr("objects_mined", sum(sum(k is not None for k in m.object_keywords) for m in mined if m.ok))
            count, message = object_parts.failures_message(pid, mined)
            if message:
                # a broken or out-of-bounds box fails alone: its task stays ranked, /metrics says why
                self.coord.incr("objects_failed", count)
                self.coord.set_error("object", message)
        counts = self.store.task_counts(pid)
        total = self.store.get_project(pid).total
        log.info("project %s: mined %d tasks, %d failed; progress %d mined, %d failed of %s", pid, len(ok),
                 len(failed), counts.get("mined", 0), counts.get("failed", 0), total if total is not None else "?")
        return mined

    def _keep_thumbnails(self, pid: int, mined: Sequence[MinedTask]) -> None:
        """Store each task's thumbnail of its rarest object, as the object scope ranks it right
        after this batch was indexed (``rarest_objects``, the report's own choice), with its slot:
        the report shows it only while that slot is still the task's rarest. One per task keeps
        the store small (docs/objects.md, "Report"). Tasks whose image was not decoded (every
        crop cached) bring no thumbnails and keep the one stored before."""
        if not mined:
            return
        rarest = self.rarest_objects(pid, [m.task_id for m in mined])
        keep = {m.task_id: (rarest[m.task_id].slot, m.thumbnails[rarest[m.task_id].slot]) for m in mined
                if m.task_id in rarest and rarest[m.task_id].slot in m.thumbnails}
        self.store.put_thumbnails(pid, keep)

    def thumbnails(self, pid: int, task_ids: Iterable[int]) -> dict[int, tuple[int, bytes]]:
        """task -> (slot, JPEG) of the thumbnail stored for its rarest object when it was mined."""
        return self.store.get_thumbnails(pid, task_ids)

    def _with_boxes(self, pid: int, tasks: Sequence[dict]) -> list[dict]:
        """The tasks with the entries their boxes come from (OBJECT_SOURCE), read back from Label
        Studio for those that came without (one listing for the batch): its TASKS_CREATED webhook
        carries no predictions (they are no field of the task), so a task imported with its
        detector's boxes would otherwise be mined without objects until the next sync."""
        key = self.settings.object_source
        missing = [t for t in tasks if not isinstance(t.get(key), list)]
        client = self.label_studio_or_none() if missing else None
        if client is None:
            return list(tasks)
        try:
            listed = client.tasks_by_id(pid, [int(t["id"]) for t in missing])
        except LabelStudioError as exc:  # no boxes this time: the next sync sees them (digest)
            log.warning("project %s: cannot read the %s of %d tasks: %s", pid, key, len(missing), exc)
            return list(tasks)
        read = {int(t["id"]): t[key] for t in listed if isinstance(t.get(key), list)}
        return [{**t, key: read[int(t["id"])]} if int(t["id"]) in read else t for t in tasks]

    def _rewrite_explanations(self, pid: int, task_ids: Sequence[int]) -> int:
        """Give tasks mined again (their boxes appeared or moved) the explanation and box of
        what they hold now. A write-back only moves scores of tasks that already have a
        prediction, so without this their prediction would keep the old TextArea and no box.
        Returns how many predictions were rewritten; a failure is logged, never raised (the
        mining is done and kept)."""
        client = self.label_studio_or_none()
        if client is None or not task_ids:
            return 0
        try:
            with self.coord.project_lock(pid):
                state = self.project(pid)
                version = state.live_version
                written = self.store.written(pid, version)
                held = {t: written[t][1] for t in task_ids if t in written}
                if not held:
                    return 0
                if any(p in (None, PROVISIONAL) for p in held.values()):
                    # a bulk import records no prediction ids: ask Label Studio which it holds, once
                    # (every id learnt is recorded, so the next batch of a sync asks no more)
                    ids = self._held(pid, version)
                    learnt = {t: (v[0], ids[t]) for t, v in written.items() if v[1] in (None, PROVISIONAL) and t in ids}
                    if learnt:
                        self.store.set_written(pid, version, learnt)
                    held = {t: p if p not in (None, PROVISIONAL) else ids.get(t) for t, p in held.items()}
                    held = {t: p for t, p in held.items() if p is not None}
                results = self.explanations(pid, self.config(state), list(held))
                client.update_prediction_results({p: results.get(t, []) for t, p in held.items()})
        except (LabelStudioError, LabelConfigError, TimeoutError) as exc:
            log.warning("project %s: cannot rewrite the explanations of %d tasks mined again: %s",
                        pid, len(task_ids), exc)
            return 0
        return len(held)

    def set_total(self, pid: int, total: object) -> None:
        """Remember how many tasks Label Studio says the project has (for progress)."""
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            state = self.project(pid)
            if state.total != total:
                self.store.update_project(pid, total=total)

    def delete_tasks(self, pid: int, task_ids: Iterable[int]) -> int:
        ids = [int(t) for t in task_ids]
        removed = self.index.delete(self.scope(pid), ids)
        if self.settings.object_mining and ids:
            forget_tasks(self.index, self.object_scope(pid), ids)
        self.store.delete_tasks(pid, ids)
        return removed

    def known_tasks(self, pid: int) -> set[int]:
        """Every task the backend holds anything of (a record or keywords)."""
        return set(self.store.get_tasks(pid)) | {int(t) for t in self.index.arrays(self.scope(pid)).task_ids.tolist()}

    def forget_deleted(self, pid: int, existing: Iterable[int] | None = None,
                       known: set[int] | None = None) -> list[int]:
        """Forget the tasks Label Studio no longer has; returns their ids.

        TASKS_DELETED reaches the backend only while it is up; a task deleted meanwhile
        would stay in the index and make every bulk write of the project fail (Label
        Studio refuses the whole import for one unknown task). ``existing``: the ids
        Label Studio holds, when the caller has just read them; ``known``: what the
        backend held *before* that listing began (``known_tasks``), so a task imported
        and mined while the listing ran is not taken for a deleted one.
        """
        if known is None:
            known = self.known_tasks(pid)
        present = set(existing) if existing is not None else self.label_studio().task_ids(pid)
        candidates = known - present
        if candidates:
            # Label Studio lists by page number: a deletion during the listing shifts the
            # pages and one task is never listed. Only a task missing twice is gone.
            candidates -= self.label_studio().task_ids(pid)
        gone = sorted(candidates)
        if gone:
            self.delete_tasks(pid, gone)
            log.warning("project %s: %d tasks are no longer in Label Studio (no TASKS_DELETED reached the "
                        "backend); forgotten: %s%s", pid, len(gone), gone[:10], " ..." if len(gone) > 10 else "")
        return gone

    def forget_absent(self, pid: int, present: Iterable[int]) -> list[int]:
        """Forget every task not in ``present``, a complete listing (an offline source: the
        items that left it count in no document frequency); returns their ids."""
        gone = sorted(self.known_tasks(pid) - set(present))
        if gone:
            self.delete_tasks(pid, gone)
        return gone

    def indexed(self, pid: int, task_ids: Iterable[int]) -> set[int]:
        """Which of ``task_ids`` have keywords in the index (mined under the current settings)."""
        return self.index.contains(self.scope(pid), [int(t) for t in task_ids])

    def record_field_signals(self, pid: int, tasks: Sequence[dict], extra_fields: Sequence[str] = ()) -> int:
        """Record the field signals of ``tasks`` as their data holds them now; returns how many changed.

        Mining records them; a source whose signal values change while its texts and images
        do not (an offline file re-scored by another model) is not mined again, so the
        offline command records them here before it ranks.
        """
        fields = list(dict.fromkeys([*extra_fields, *signals.field_names(self.settings)]))
        if not fields:
            return 0
        records = self.store.get_tasks(pid, [int(t["id"]) for t in tasks])
        changed = []
        for task in tasks:
            rec = records.get(int(task["id"]))
            if rec is None:
                continue
            values = signals.field_signals(task, fields)
            if object_parts.OBJECT_UNCERTAINTY in rec.signals:  # recorded when mined, not a field
                values[object_parts.OBJECT_UNCERTAINTY] = rec.signals[object_parts.OBJECT_UNCERTAINTY]
            if values != rec.signals:
                rec.signals = values
                changed.append(rec)
        if changed:
            self.store.save_tasks(pid, changed)
        return len(changed)

    def changed(self, pid: int, tasks: Sequence[dict]) -> list[int]:
        """Known tasks whose data differs from the data they were mined from (edited in Label Studio)."""
        records = self.store.get_tasks(pid, [int(t["id"]) for t in tasks])
        # object mining: the boxes count too (Start Training re-reads the detector's predictions)
        boxes = self.settings.object_mining and self.mines_objects(self.store.get_project(pid))
        out = []
        for task in tasks:
            rec = records.get(int(task["id"]))
            if rec is None:
                continue
            if rec.data_digest and rec.data_digest != data_digest(task.get("data")):
                out.append(int(task["id"]))
            elif boxes and rec.status == "mined" and object_parts.changed_boxes(task, rec.objects,
                                                                               self.miner.object_source):
                out.append(int(task["id"]))
        return out

    def unknown(self, pid: int, task_ids: Iterable[int], retry_failed: bool = False) -> list[int]:
        """The tasks to mine: not in the index, and not failed under the current settings.

        A failure under other settings (or a label config mining another field) counts as
        unknown; ``retry_failed`` (a sync: start-up, Start Training) tries every failed
        task again, so a passing outage (the VLM endpoint, an image host) leaves no task
        at the end of the queue for good.
        """
        ids = [int(t) for t in task_ids]
        known = self.index.contains(self.scope(pid), ids)
        failed = set() if retry_failed else {
            t for t, r in self.store.get_tasks(pid, ids).items()
            if r.status == "failed" and r.mining_hash == self.mining_hash}
        return [t for t in ids if t not in known and t not in failed]

    # ---------------------------------------------------------------- ranking
    def ranking(self, pid: int, fresh_tasks: Sequence[dict] = (), refresh: bool = True,
                extra_fields: Sequence[str] = ()) -> tuple[list[int], Any]:
        """The project's order, label-first first, and the mining result behind it.

        The one ranking path: the server's re-ranks, /predict, the report and the offline
        commands all rank here, with the same signals, tie-breaks and settings.

        Args:
            pid: the project.
            fresh_tasks: tasks at hand with their predictions (a /predict request, the rows of
                an offline source): their prediction uncertainty is taken from them.
            refresh: False (the /predict path) reuses signals read from Label Studio recently.
            extra_fields: data fields ranked as signals beside the settings' (the offline
                command's ``--signal``); their values are recorded by :meth:`record_field_signals`.
        """
        arrays = self.index.arrays(self.scope(pid))
        if arrays.n_tasks == 0:
            return [], None
        ranked, object_arrays = self._signals(pid, arrays.task_ids, fresh_tasks, refresh, extra_fields)
        return self.rank_arrays(arrays, ranked, object_arrays)

    def rank_arrays(self, arrays: Any, ranked: Mapping[str, np.ndarray] | None = None,
                    object_arrays: Any = None) -> tuple[list[int], Any]:
        """The order (label-first first) and mining result of an index's arrays and signals, under
        these settings; :meth:`ranking` reads both from the project, simulations build them.
        ``object_arrays``: the object scope's arrays when the project mines objects."""
        novelty_from, head_keywords = None, None
        if object_arrays is not None and self.settings.object_with_scene:
            # the scene is one of the task's objects: its object novelty is the rarest thing
            # in it, the one novelty it ranks by, and the head covers every keyword it holds
            novelty_from = object_parts.OBJECT_NOVELTY
            if self.settings.head_diversity > 0:
                head_keywords = task_keywords(object_arrays, arrays.task_ids)
        result = mine_priorities(arrays, ranked, pooling=self.settings.pooling,
                                 transform=self.settings.novelty_transform,
                                 invert=self.settings.scores_ascending,
                                 head_diversity=self.settings.head_diversity,
                                 novelty_from=novelty_from, head_keywords=head_keywords)
        order = [int(t) for t in arrays.task_ids[np.argsort(result.position, kind="stable")]]
        return order, result

    def score_order(self, order: list[int]) -> list[int]:
        """Tasks from the highest score to the lowest: label-first first, or last when the scores
        run lowest-first (Settings.scores_ascending)."""
        return order[::-1] if self.settings.scores_ascending else order

    @property
    def end_score(self) -> float:
        """The score of a task that has no place in the order (it failed, or is not mined yet):
        the end of the queue, 0 (1 when the scores run lowest-first: LABEL_STREAM=uncertainty, the
        default, or INVERT_PRIORITY; the most common task shares it)."""
        return 1.0 if self.settings.scores_ascending else 0.0

    def _signals(self, pid: int, task_ids: np.ndarray, fresh_tasks: Sequence[dict], refresh: bool = True,
                 extra_fields: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], Any]:
        """Signal name -> values aligned with ``task_ids`` (NaN where missing), see ``engine.signals``;
        and the object scope's arrays when the ranking has an object novelty (else None)."""
        s = self.settings
        fields = signals.ranked_fields(s, extra_fields)
        out: dict[str, np.ndarray] = {}
        with_objects = s.object_mining and self.mines_objects(self.store.get_project(pid))
        if with_objects:
            fields[object_parts.OBJECT_UNCERTAINTY] = object_parts.OBJECT_UNCERTAINTY
        if fields:
            recorded = self.store.get_signals(pid)
            for name, ranked_as in fields.items():
                col = np.full(len(task_ids), np.nan)
                for i, t in enumerate(task_ids.tolist()):
                    values = recorded.get(t)
                    if values and name in values:
                        col[i] = values[name]
                out[ranked_as] = col
        if signals.uses_predictions(s):
            out[signals.UNCERTAINTY] = self._prediction_uncertainty(pid, task_ids, fresh_tasks, refresh)
        object_arrays = None
        if with_objects:
            if np.isnan(out[object_parts.OBJECT_UNCERTAINTY]).all():
                del out[object_parts.OBJECT_UNCERTAINTY]  # a detector without scores: nothing to rank by
            object_arrays = self.index.arrays(self.object_scope(pid))
            novelty = signals.task_object_novelty(
                object_arrays, task_ids, s.object_pooling, s.pooling, s.novelty_transform)
            if novelty is not None:
                out[object_parts.OBJECT_NOVELTY] = novelty
            else:
                object_arrays = None
        return out, object_arrays

    def _prediction_uncertainty(self, pid: int, task_ids: np.ndarray, fresh_tasks: Sequence[dict],
                                refresh: bool) -> np.ndarray:
        """Uncertainty from predictions of another model stored with each task in Label Studio.

        Reading every task from Label Studio costs seconds per 10,000 tasks, so a
        re-rank reads them (``refresh``) and /predict reuses what the last read
        found (at most UNCERTAINTY_MAX_AGE_S old), updated with the tasks in the
        request, which carry their predictions.
        """
        cached = self._uncertainty.get(pid)
        client = self.label_studio_or_none()
        values: dict[int, float]
        if client is not None and (refresh or cached is None
                                   or time.monotonic() - cached[0] > UNCERTAINTY_MAX_AGE_S):
            values = {int(t["id"]): signals.prediction_uncertainty(t, self.settings) for t in client.iter_tasks(pid)}
            self._uncertainty[pid] = (time.monotonic(), values)
        else:
            values = cached[1] if cached else {}
        for task in fresh_tasks:
            values[int(task["id"])] = signals.prediction_uncertainty(task, self.settings)
        return np.array([values.get(t, np.nan) for t in task_ids.tolist()], dtype=float)

    # ---------------------------------------------------------------- write-back
    def rerank(self, pid: int) -> dict[str, Any]:
        """Rank the project and bring Label Studio's scores in line; returns what was done.

        A write refused as a bad request (a bulk import naming a task that is gone) or a
        PATCH of a prediction that is gone makes it check which tasks Label Studio still
        has; when some are gone they are forgotten and the project is ranked and written
        once more (the failed write left the project marked dirty, so nothing is doubled).
        """
        with self.coord.project_lock(pid):
            state = self.store.get_project(pid)
            first = state is None or state.view_id is None  # the project's first write-back
            order, _ = self.ranking(pid)
            try:
                report = self.write_order(pid, order)
            except LabelStudioError as exc:
                if exc.status not in (400, 404) or not self.forget_deleted(pid):
                    raise
                order, _ = self.ranking(pid)
                report = self.write_order(pid, order)
            try:
                # prelabeling turned off, another model chosen, the sampling changed: put it back
                restored = self.stream.check(pid, first=first)
            except LabelStudioError as exc:
                log.warning("project %s: cannot check the labeling stream's settings: %s", pid, exc)
                restored = {}
            if restored.get("restored"):
                report["stream_restored"] = restored["restored"]
            return report

    def patch_budget(self, n_tasks: int) -> int:
        """The most PATCHes a re-rank of ``n_tasks`` tasks makes before it bumps to a new
        generation instead: PATCH_LIMIT, or BUMP_SHARE of the tasks when that is more. A
        PATCH costs about 45 ms against a real server, a bump about 1 ms per task to import
        and 4.5 ms per task to delete afterwards, so at a tenth of the tasks the two cost
        about the same; below that, an import that nudges many tasks is cheaper patched."""
        return max(self.settings.patch_limit, int(self.settings.bump_share * n_tasks))

    def write_plan(self, order: list[int], written: Mapping[int, tuple[float, int | None]],
                   patch_budget: int | None = None) -> writeback.WritePlan:
        """The writes that make Label Studio follow ``order`` (label-first first): the first
        EXACT_HEAD tasks exact, the rest within PLACE_TOLERANCE (see ``engine/writeback.py``)."""
        s = self.settings
        budget = self.patch_budget(len(order)) if patch_budget is None else patch_budget
        return writeback.plan(self.score_order(order), written, budget, exact_head=s.exact_head,
                              tolerance=s.place_tolerance, head_last=s.scores_ascending)

    def write_order(self, pid: int, order: list[int]) -> dict[str, Any]:
        """Make Label Studio's tab follow ``order`` (label-first first) with the fewest writes.

        Called with the project lock held (``rerank``); benchmarks call it with
        an order of their own.
        """
        client = self.label_studio()
        started = time.perf_counter()
        state = self.project(pid)
        if not order:
            return {"project": pid, "tasks": 0}
        tab_checked = state.view_id is None
        if tab_checked:
            # the tab first, so it is there when the first scores land
            self._ensure_tab(pid, state)
        version = state.live_version
        written = self.store.written(pid, version)
        recovering = state.dirty == version
        if recovering:
            written = self._reconcile(pid, version, written)
        held: dict[int, int] | None = None  # Label Studio's predictions of ``version``, once read
        if not recovering and any(p == PROVISIONAL for _, p in written.values()):
            held = self._held(pid, version)
            written = self._confirm_answers(pid, version, written, held)
        plan = self.write_plan(order, written)
        # Failed tasks holding a prediction (mined once, failing now) go to the end of the
        # queue; so many that PATCHes would cost more than a bump make it one: a bump writes
        # no prediction for them, and Label Studio sorts those last.
        ends = self._ended(pid, order, written)
        if ends and not plan.bump and len(plan.patches) + len(ends) > self.patch_budget(len(order)):
            plan = writeback.bump(self.score_order(order), self.settings.scores_ascending)
        if plan.bump:
            ends = {}
        # head first: while the PATCHes go out one by one, the tasks served next are right soonest
        place = {t: i for i, t in enumerate(plan.served)}
        patches = {**dict(sorted(plan.patches.items(), key=lambda item: place.get(item[0], len(place)))), **ends}
        old_version = None
        # The write that did not finish may have been a bump: Label Studio may still sort by
        # the generation before it, and nothing has scheduled that generation's deletion.
        leftover = ([self._generation_version(state, state.generation - 1)]
                    if recovering and state.generation > 0 else [])
        if plan.bump:
            old_version = version
            state.generation += 1
            version = state.live_version
            # recorded before the import: a crash must never reuse the old generation's records
            self.store.update_project(pid, generation=state.generation, dirty=version)
        elif plan.imports or patches:
            self.store.update_project(pid, dirty=version)
        config = self.config(state)
        imports = dict(plan.imports)
        if patches:
            ids = {t: p for t, (_, p) in written.items() if p is not None and p != PROVISIONAL}
            if any(t not in ids for t in patches):
                held = self._held(pid, version) if held is None else held
                ids = {**held, **ids}
            # A task believed written whose prediction Label Studio lacks (a /predict answer
            # it never stored, say) gets one imported instead of a PATCH of nothing.
            imports.update({t: s for t, s in patches.items() if t not in ids})
            patches = {t: s for t, s in patches.items() if t in ids}
        if imports:
            client.import_predictions(pid, self._predictions(pid, config, imports, version))
        if patches:
            client.update_prediction_scores({ids[t]: s for t, s in patches.items()})
        changes = {t: (s, None) for t, s in {**imports, **patches}.items()}
        self.store.set_written(pid, version, changes, replace=plan.bump)
        if plan.bump or imports or (recovering and written):
            # a bump switches the whole order at once; the old generation is deleted afterwards
            client.set_model_version(pid, version)
            if not written and not tab_checked:
                # the first write of a version (changed settings, perhaps the score direction):
                # the tab may hold the backend's own ordering of the other direction, or be gone
                self._ensure_tab(pid, state)
        if plan.bump or imports or patches or recovering:
            # only now: a write (or switch) that failed must be checked and finished by the next try
            self.store.update_project(pid, dirty=None)
        retired = [v for v in (state.retired or "").split(",") if v and v != version] + leftover
        if state.retired:
            self.store.update_project(pid, retired=None)  # their clean-up jobs are queued by the caller
        self.coord.incr("reranks")
        report = {"project": pid, "tasks": len(order), "version": version, "bump": plan.bump,
                  "imported": len(imports), "patched": len(patches), "ended": len(ends), "kept": plan.kept,
                  "old_version": old_version, "retired": retired,
                  "seconds": round(time.perf_counter() - started, 3)}
        log.info("re-rank %s", report)
        return report

    def retire_version(self, pid: int, version: str) -> dict[str, int]:
        """Delete an old version's (or generation's) predictions, then check the prediction counts
        Label Studio caches per task (the Data Manager's "Predictions" column and footer) and
        have it recount the tasks whose count is not what it holds.

        Deleting a version makes Label Studio take each deleted prediction off its task's count,
        so the counts are normally right; they have been seen stale after a generation switch
        (two predictions a task shown, one held), so the clean-up makes sure. Costs one listing
        of the tasks and one of the predictions, after a generation switch only.
        """
        client = self.label_studio()
        deleted = client.delete_model_version(pid, version)
        scratch = self.recount_version
        client.delete_model_version(pid, scratch)  # what a recount that did not finish left
        held: dict[int, int] = {}
        for p in client.list_predictions(pid):
            if p["task"] is not None:
                held[p["task"]] = held.get(p["task"], 0) + 1
        stale = sorted(t for t, n in client.cached_prediction_counts(pid).items() if n != held.get(t, 0))
        if stale:
            try:
                client.recount_predictions(pid, stale, scratch)
            except LabelStudioError as exc:
                if exc.status != 400:  # 400: a task deleted meanwhile; the next clean-up checks again
                    raise
                log.warning("project %s: cannot have Label Studio recount its prediction counts: %s", pid, exc)
            else:
                log.warning("project %s: Label Studio's cached prediction counts were wrong for %d tasks (the Data "
                            "Manager showed predictions that are gone); had them recounted", pid, len(stale))
                self.coord.incr("prediction_counts_refreshed")
        return {"deleted": deleted, "recounted": len(stale)}

    @property
    def recount_version(self) -> str:
        """The model version of the empty predictions a recount imports and deletes at once
        (``LabelStudioClient.recount_predictions``); it starts with the prefix, so it is never
        read as another model's predictions."""
        return f"{self.settings.model_version_prefix}-recount"

    def _ensure_tab(self, pid: int, state: ProjectState) -> None:
        """The "Long-tail first" tab: ordered to put the label-first task on top, showing only the
        tasks not labeled yet (stream.UNFINISHED_ONLY), the label config's data fields and the
        score, Label Studio's housekeeping columns hidden (set once: an admin's later choices are
        kept; see LabelStudioClient.ensure_view)."""
        client = self.label_studio()
        view_id = client.ensure_view(
            pid, self.settings.view_title, stream.tab_ordering(self.settings),
            hidden_columns=lambda: stream.hidden_columns(client.columns(pid),
                                                         stream.config_fields(state.label_config)),
            replace=stream.stale_orderings(self.settings), filters=stream.tab_filters())
        if view_id != state.view_id:
            state.view_id = view_id
            self.store.update_project(pid, view_id=view_id)

    def _ended(self, pid: int, order: list[int], written: dict[int, tuple[float, int | None]]) -> dict[int, float]:
        """Failed tasks whose prediction is not yet at the end of the queue -> the end score."""
        placed = set(order)
        out = {t for t, v in written.items() if t not in placed and v[0] != self.end_score}
        if not out:
            return {}
        records = self.store.get_tasks(pid, sorted(out))
        return {t: self.end_score for t in sorted(out) if t in records and records[t].status == "failed"}

    @staticmethod
    def _generation_version(state: ProjectState, generation: int) -> str | None:
        return generation_version(state.base_version, generation)

    def _reconcile(self, pid: int, version: str, written: dict[int, tuple[float, int | None]]
                   ) -> dict[int, tuple[float, int | None]]:
        """After a write that did not finish (a crash, a timeout), ask Label Studio what it holds.

        Every prediction of ``version`` that Label Studio has becomes known, so the
        next plan neither imports a second one for a task nor forgets to move it; a
        task holding two (a retried request that had in fact landed) keeps the first.
        """
        client = self.label_studio()
        found: dict[int, tuple[float, int | None]] = {}
        extra: list[int] = []
        for p in sorted(client.list_predictions(pid, version), key=lambda p: int(p["id"])):
            task = int(p["task"])
            if task in found:
                extra.append(int(p["id"]))
            else:
                found[task] = (float(p.get("score") or 0.0), int(p["id"]))
        if extra:
            client.delete_predictions(extra)
        log.warning("project %s: reconciled %d predictions of %s with Label Studio (%d duplicates removed)",
                    pid, len(found), version, len(extra))
        self.store.set_written(pid, version, found, replace=True)  # the caller clears ``dirty`` once done
        return found

    def _held(self, pid: int, version: str) -> dict[int, int]:
        """task -> the id of its prediction of ``version`` in Label Studio (the first listed)."""
        held: dict[int, int] = {}
        for p in self.label_studio().list_predictions(pid, version):
            held.setdefault(int(p["task"]), int(p["id"]))
        return held

    def _confirm_answers(self, pid: int, version: str, written: dict[int, tuple[float, int | None]],
                         held: dict[int, int]) -> dict[int, tuple[float, int | None]]:
        """Which /predict answers Label Studio stored (``held``: what it holds; it drops an
        answer whose request timed out, while the first images are mined, say). Stored ones get
        their prediction id; the others are planned as new, so they are imported instead of
        kept without a prediction."""
        answers = [t for t, (_, p) in written.items() if p == PROVISIONAL]
        stored = {t: (written[t][0], held[t]) for t in answers if t in held}
        if stored:
            self.store.set_written(pid, version, stored)
        lost = [t for t in answers if t not in held]
        if lost:
            log.warning("project %s: Label Studio holds no prediction for %d /predict answers (their request "
                        "timed out?); writing them now", pid, len(lost))
        return {**{t: v for t, v in written.items() if v[1] != PROVISIONAL}, **stored}

    def _predictions(self, pid: int, config: LabelConfig, scores: dict[int, float], version: str) -> list[dict]:
        results = self.explanations(pid, config, list(scores))
        return [{"task": t, "score": float(s), "model_version": version, "result": results.get(t, [])}
                for t, s in scores.items()]

    def explanations(self, pid: int, config: LabelConfig, task_ids: list[int]) -> dict[int, list[dict]]:
        """The results a task's prediction carries: a TextArea naming its rarest object (object
        mining), its rarest keywords and the image description, if configured; with
        OBJECT_HIGHLIGHT, the rarest object's box where a RectangleLabels on the image lists
        the detector's label."""
        s = self.settings
        names = config.textarea(s.textarea_name)
        source = config.source(s.description_field, s.image_field)
        with_objects = self.miner.mines_objects(source)
        highlighting = with_objects and s.object_highlight
        if names is None and not highlighting:
            return {}
        records = self.store.get_tasks(pid, task_ids) if source.kind == "image" else {}
        rarest = self.rarest_objects(pid, task_ids, records) if with_objects else {}
        keywords, df = self.rarest_keywords(pid, task_ids) if names else ({}, {})
        out: dict[int, list[dict]] = {}
        for t in task_ids:
            results: list[dict] = []
            rare = rarest.get(t)
            if names is not None:
                lines = []
                if rare is not None:
                    lines.append(object_parts.object_line(rare, s.rare_keywords_shown))
                kws = keywords.get(t, [])[: s.rare_keywords_shown]
                if kws:
                    lines.append(wording.keywords_line(kws, df))
                rec = records.get(t)
                if rec and rec.description:
                    lines.append(wording.description_line(rec.description))
                if lines:
                    results.append({"from_name": names[0], "to_name": names[1], "type": "textarea",
                                    "value": {"text": lines}})
            if highlighting and rare is not None and source.name:
                control = config.highlight_control(source.name, rare.item.get("label"))
                if control is not None:
                    results.append(object_parts.highlight(
                        rare, control, source.name, object_parts.object_line(rare, s.rare_keywords_shown)))
            if results:
                out[t] = results
        return out

    def rarest_objects(self, pid: int, task_ids: Sequence[int], records: dict[int, TaskRecord] | None = None
                       ) -> dict[int, "object_parts.RarestObject"]:
        """Each task's rarest detected object (object mining): label, score, box, its keywords
        rarest first with their object-scope frequencies. The one choice of "the rare object":
        the TextArea, the highlighted box and the offline output all show it. The whole image's
        own document (OBJECT_WITH_SCENE) is never the one named; tasks without a mined object
        are left out."""
        ids = [int(t) for t in task_ids]
        if records is None:
            records = self.store.get_tasks(pid, ids)
        return object_parts.rarest_objects(self.index, self.object_scope(pid), records, ids,
                                           self.settings.pooling, self.settings.novelty_transform)

    def object_errors(self, pid: int, task_ids: Sequence[int]) -> dict[int, list[str]]:
        """Why objects of these tasks were not mined (a broken box, a refused crop, a VLM
        failure), as recorded when they were mined; tasks without any are left out."""
        out = {}
        for t, rec in self.store.get_tasks(pid, [int(t) for t in task_ids]).items():
            errors = (rec.objects or {}).get("errors") or []
            if errors:
                out[t] = list(errors)
        return out

    def rarest_keywords(self, pid: int, task_ids: Sequence[int]) -> tuple[dict[int, list[str]], dict[str, int]]:
        """Each task's keywords, the one that lifts its novelty most first, and the document
        frequency of each (see ``keyword_order``).

        The one keyword order: the explanations written to Label Studio, the report and the
        offline output all show it.
        """
        scope = self.scope(pid)
        keywords = self.index.get_many(scope, list(task_ids))
        vocab = {k for kws in keywords.values() for k in kws}
        df = self.index.document_frequencies(scope, vocab) if vocab else {}
        return self.keyword_order(keywords, df, self.index.task_count(scope)), df

    def keyword_order(self, keywords: dict[int, list[str]], df: dict[str, int], n_tasks: int
                      ) -> dict[int, list[str]]:
        """Each task's keywords in the order an explanation shows them: by how much each lifts
        the task's novelty under the configured pooling (novelty.order_by_effect), so what it
        shows first is what made the task rank where it is. Under the confirmed pooling a word
        one task holds lifts little and comes after the confirmed rare words."""
        from ..mining.novelty import order_by_effect

        pooling = self.settings.pooling
        return {t: order_by_effect(kws, df, n_tasks, pooling) for t, kws in keywords.items()}

    # ---------------------------------------------------------------- /predict
    def predict(self, pid: int, tasks: Sequence[dict], label_config: str | None,
                mine_missing: bool = True) -> list[dict]:
        """One prediction per task, in order, under the live version.

        Unknown tasks are mined here first (``mine_missing``); with RQ workers the
        caller has them mined by the workers instead, and a task still unknown
        gets score 0 until the next re-rank moves it.
        """
        state = self.project(pid, label_config)
        config = self.config(state)
        ids = [int(t["id"]) for t in tasks]
        unknown = set(self.unknown(pid, ids)) if mine_missing else set()
        if unknown:
            self.mine_tasks(pid, [t for t in tasks if int(t["id"]) in unknown])
        with self.coord.project_lock(pid):
            order, _ = self.ranking(pid, fresh_tasks=tasks, refresh=False)
            version = self.project(pid).live_version  # read under the lock: a re-rank may have bumped
            written = self.store.written(pid, version)
            # Label Studio asks only for tasks without a live prediction: plan as if they had none.
            asked = set(ids)
            plan = self.write_plan(order, {t: v for t, v in written.items() if t not in asked},
                                   patch_budget=len(order) + 1)
            # a failed (or not yet mined) task: the end of the queue; the reason is in /metrics
            scores = {t: float(plan.scores.get(t, self.end_score)) for t in ids}
            # Label Studio stores what we answer (unless its request timed out meanwhile):
            # remember it, so no second prediction is imported; the next write-back confirms it
            self.store.set_written(pid, version, {t: (s, PROVISIONAL) for t, s in scores.items()})
        explanations = self.explanations(pid, config, ids)  # outside the lock: half the work
        return [{"result": explanations.get(t, []), "score": scores[t], "model_version": version} for t in ids]

    # ---------------------------------------------------------------- status
    def progress(self, pid: int) -> dict[str, Any]:
        counts = self.store.task_counts(pid)
        state = self.store.get_project(pid)
        total = state.total if state else None
        done = counts.get("mined", 0) + counts.get("failed", 0)
        return {"total": total, "mined": counts.get("mined", 0), "failed": counts.get("failed", 0),
                "pending": max(total - done, 0) if total is not None else None,
                "indexed": self.index.task_count(self.scope(pid)),
                # object mining: documents in the object scope (detected objects, and scenes)
                **({"objects_indexed": self.index.task_count(self.object_scope(pid))}
                   if self.settings.object_mining else {}),
                "version": self.live_version(pid),
                "label_stream": self.settings.label_stream,
                "stream_restored": self.stream.status(pid),
                "last_failures": [{"task": t, "error": e} for t, e in self.store.failures(pid, 5)]}

    # ---------------------------------------------------------------- for the server, jobs and report
    def projects(self) -> list[int]:
        """Every project this backend has seen."""
        return self.store.projects()

    def known_project(self, pid: int) -> ProjectState | None:
        """The project's state as stored, or None for a project never seen (nothing is created)."""
        return self.store.get_project(pid)

    def labeling_state(self, pid: int, task_ids: Iterable[int]) -> dict[int, tuple[bool, int]]:
        """Task id -> (labeled, annotations) as Label Studio counts them now, for the report's
        progress view: ``is_labeled`` (the task has as many annotations as the project's
        overlap asks) and ``total_annotations``. Tasks gone from Label Studio are left out.

        Asked in listings of LABELING_LOOKUP_CHUNK ids (the ids travel in the query string).
        Raises EngineError without a Label Studio connection, LabelStudioError when it fails.
        """
        client = self.label_studio()
        ids = sorted({int(t) for t in task_ids})
        out: dict[int, tuple[bool, int]] = {}
        for start in range(0, len(ids), LABELING_LOOKUP_CHUNK):
            rows = client.tasks_by_id(pid, ids[start:start + LABELING_LOOKUP_CHUNK],
                                      include="id,is_labeled,total_annotations", fields="task_only")
            for row in rows:
                if isinstance(row, dict) and isinstance(row.get("id"), int):
                    out[row["id"]] = (bool(row.get("is_labeled")), int(row.get("total_annotations") or 0))
        return out

    def mark_synced(self, pid: int) -> None:
        """Record that every task of the project was queued under the current settings."""
        self.store.update_project(pid, synced=self.project(pid).base_version)

    def unreachable(self) -> str | None:
        """Why the shared state cannot be reached (Redis down), or None when it can."""
        if self.redis is None:
            return None
        try:
            self.redis.ping()
        except Exception as exc:  # the URL may hold a password: name only the error type
            return f"Redis is unreachable ({type(exc).__name__})"
        return None

    def counters(self) -> dict[str, int]:
        return self.coord.counters()

    def errors(self) -> dict[str, str]:
        """The last error of each kind (a task, a job kind), for /metrics."""
        return self.coord.errors()

    def record_error(self, key: str, message: str) -> None:
        self.coord.set_error(key, message)

    def failures(self, pid: int, limit: int = 20) -> list[tuple[int, str]]:
        """The newest failed tasks of the project: (task id, reason)."""
        return self.store.failures(pid, limit)

    def task_records(self, pid: int, task_ids: Iterable[int]) -> dict[int, TaskRecord]:
        return self.store.get_tasks(pid, task_ids)

    def index_arrays(self, pid: int):
        """The project's keyword index as arrays (``mining.IndexArrays``): what the ranking reads."""
        return self.index.arrays(self.scope(pid))

    def keyword_names(self, pid: int, keyword_ids: list[int]) -> list[str]:
        return self.index.keyword_names(self.scope(pid), keyword_ids)

    def object_index_arrays(self, pid: int):
        """The project's object keyword index as arrays (one document per mined object): the
        report's object long tail."""
        return self.index.arrays(self.object_scope(pid))

    def object_keyword_names(self, pid: int, keyword_ids: list[int]) -> list[str]:
        return self.index.keyword_names(self.object_scope(pid), keyword_ids)

    def load_describer(self):
        """Load the VLM now (a worker's ``--preload``) and return it."""
        describer = self.miner.describer()
        describer.load()
        return describer
