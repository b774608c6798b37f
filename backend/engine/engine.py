"""The VLMine engine: what happens to a project, independent of HTTP and queues.

The server (``backend.server``), the job runners (``backend.jobs``) and the command line
hold an :class:`Engine`. It owns the project state (label config, versions, the Label Studio
connection) and the two entry points that touch both sides, :meth:`Engine.rerank` and
:meth:`Engine.predict`; the rest is in parts it builds, each with one concern:

- ``engine.tasks`` (:mod:`.tasks`): mining tasks, and keeping the set in step with Label Studio;
- ``engine.ranker`` (:mod:`.ranking`): the order, the one ranking path;
- ``engine.explainer`` (:mod:`.explain`): what a prediction says about its task;
- ``engine.writer`` (:mod:`.scores_writer`): every write to Label Studio's predictions;
- ``engine.view(pid)``, ``engine.overview()`` (:mod:`.view`): read-only views for the report
  and /metrics.

Each public method is safe to run twice with the same input: mining a task again replaces
its keywords, a re-rank writes only what changed.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable, Sequence

from ..errors import LabelConfigError, LabelStudioError, NoConnection
from ..labelstudio.config import LabelConfig, Source
from ..logs import mask_url
from ..pipeline.miner import Miner
from ..settings import Settings
from ..state import Coordination, ProjectState, State, Store, open_state
from ..versions import KINDS
from ..objects import object_scope
from . import stream
from .explain import Explainer
from .ranking import Ranking
from .scores_writer import PROVISIONAL, ScoresWriter
from .tasks import ProjectTasks
from .view import BackendView, ProjectView

log = logging.getLogger(__name__)

#: task ids per Label Studio listing in labeling_state: about 2 KB of query string, well inside
#: what web servers in front of Label Studio accept in a request line
LABELING_LOOKUP_CHUNK = 200
#: label configs whose kind version_of remembers (one per project and config edit is plenty)
KINDS_REMEMBERED = 1024


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
        self._ls_lock = threading.Lock()
        self.miner = Miner(settings, self.store, label_studio_factory=self.label_studio_or_none)
        # from the miner's fingerprint: SYNONYMS_FILE is read once, by the miner
        #: a project's base version by what it mines: an image project names its describer, a
        #: text project names no VLM (see backend.settings.base_version)
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
        #: the project's order (reads the index, the signals and Label Studio's tasks)
        self.ranker = Ranking(self)
        #: what a task's prediction says about it (reads the index and the task records)
        self.explainer = Explainer(self)
        #: every write to Label Studio's predictions, with the record of what it holds
        self.writer = ScoresWriter(self)
        #: mining tasks, and keeping the backend's set of them in step with Label Studio's
        self.tasks = ProjectTasks(self)

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
            raise NoConnection("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are needed to write priorities back "
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

    # ---------------------------------------------------------------- project totals
    def set_total(self, pid: int, total: object) -> None:
        """Remember how many tasks Label Studio says the project has (for progress)."""
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            state = self.project(pid)
            if state.total != total:
                self.store.update_project(pid, total=total)

    # ---------------------------------------------------------------- re-rank (ranker, then writer)
    def rerank(self, pid: int) -> dict[str, Any]:
        """Rank the project and bring Label Studio's scores in line; returns what was done.

        A write refused as a bad request (a bulk import naming a task that is gone) or a
        PATCH of a prediction that is gone makes it check which tasks Label Studio still
        has; when some are gone they are forgotten and the project is ranked and written
        once more (the failed write left the project marked dirty, so nothing is doubled).

        The write also gives the tasks mined again since the last one (object mining marks
        them, never writing to Label Studio itself) their new explanation, under the same
        lock: ``report["explanations_rewritten"]``, see ``ScoresWriter.rewrite_stale_explanations``.
        """
        with self.coord.project_lock(pid):
            state = self.store.get_project(pid)
            first = state is None or state.view_id is None  # the project's first write-back
            order, _ = self.ranker.rank(pid)
            try:
                report = self.writer.write_order(pid, order)
            except LabelStudioError as exc:
                if exc.status not in (400, 404) or not self.tasks.forget_deleted(pid):
                    raise
                order, _ = self.ranker.rank(pid)
                report = self.writer.write_order(pid, order)
            try:
                # prelabeling turned off, another model chosen, the sampling changed: put it back
                restored = self.stream.check(pid, first=first)
            except LabelStudioError as exc:
                log.warning("project %s: cannot check the labeling stream's settings: %s", pid, exc)
                restored = {}
            if restored.get("restored"):
                report["stream_restored"] = restored["restored"]
            return report

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
        unknown = set(self.tasks.unknown(pid, ids)) if mine_missing else set()
        if unknown:
            self.tasks.mine(pid, [t for t in tasks if int(t["id"]) in unknown])
        with self.coord.project_lock(pid):
            order, _ = self.ranker.rank(pid, fresh_tasks=tasks, refresh=False)
            version = self.project(pid).live_version  # read under the lock: a re-rank may have bumped
            written = self.store.written(pid, version)
            # Label Studio asks only for tasks without a live prediction: plan as if they had none.
            asked = set(ids)
            plan = self.writer.write_plan(order, {t: v for t, v in written.items() if t not in asked},
                                          patch_budget=len(order) + 1)
            # a failed (or not yet mined) task: the end of the queue; the reason is in /metrics
            scores = {t: float(plan.scores.get(t, self.ranker.end_score)) for t in ids}
            # Label Studio stores what we answer (unless its request timed out meanwhile):
            # remember it, so no second prediction is imported; the next write-back confirms it
            self.store.set_written(pid, version, {t: (s, PROVISIONAL) for t, s in scores.items()})
        explanations = self.explainer.explanations(pid, config, ids)  # outside the lock: half the work
        if unknown:
            # mined just now, and the answer carries what they hold: no rewrite to wait for
            self.store.clear_stale_explanations(pid, unknown)
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
    def labeling_state(self, pid: int, task_ids: Iterable[int]) -> dict[int, tuple[bool, int]]:
        """Task id -> (labeled, annotations) as Label Studio counts them now, for the report's
        progress view: ``is_labeled`` (the task has as many annotations as the project's
        overlap asks) and ``total_annotations``. Tasks gone from Label Studio are left out.

        Asked in listings of LABELING_LOOKUP_CHUNK ids (the ids travel in the query string).
        Raises NoConnection without a Label Studio connection, LabelStudioError when it fails.
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

    def record_error(self, key: str, message: str) -> None:
        """Remember ``message`` as the last error of its kind (``key``), for /metrics."""
        self.coord.set_error(key, message)

    def view(self, pid: int) -> ProjectView:
        """A read-only view of the project (nothing is created for a project never seen)."""
        return ProjectView(self.store, self.index, pid, self.scope(pid), self.object_scope(pid))

    def overview(self) -> BackendView:
        """A read-only view of every project seen, the counters and the last errors."""
        return BackendView(self.store, self.coord)

    def load_describer(self):
        """Load the VLM now (a worker's ``--preload``) and return it."""
        describer = self.miner.describer()
        describer.load()
        return describer
