"""The interface every state backend keeps, and the records it stores.

Two backends keep it: :class:`backend.state.sqlite_store.SQLiteStore` (one file under MODEL_DIR,
for one process) and :class:`backend.state.redis_store.RedisStore` (shared by many workers).
``tests/test_store_contract.py`` runs one contract against both. The embedded queue's job
table is SQLite's alone (:class:`JobTable`): with Redis, the jobs live in RQ.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

from ..versions import generation_version

class StateLocation(Protocol):
    """Where state lives: the two settings :func:`backend.state.open_state` reads.

    ``backend.settings.Settings`` has both; declaring them here keeps this layer from
    importing the settings (which sit above it and import the rules below it).
    """

    #: REDIS_URL: many workers share Redis; None keeps state in SQLite files
    redis_url: str | None

    @property
    def data_dir(self) -> Path:
        """MODEL_DIR: where the SQLite files live."""
        ...


PROJECT_FIELDS = {"label_config", "base_version", "generation", "view_id", "synced", "total", "dirty", "retired"}


@dataclass
class ProjectState:
    pid: int
    label_config: str | None = None
    base_version: str | None = None
    generation: int = 0
    view_id: int | None = None
    synced: str | None = None  # the base version for which every task of the project was queued
    total: int | None = None  # tasks in the project, as Label Studio last said
    dirty: str | None = None  # a version whose write to Label Studio began and was not recorded as done
    retired: str | None = None  # comma-separated versions of earlier settings, to delete once replaced

    @property
    def live_version(self) -> str | None:
        """The version whose predictions Label Studio should sort by.

        A full re-write of every priority goes out under a new generation
        (``<base>-r<N>``) so that switching ``project.model_version`` changes
        the whole order in one request (see ``backend.engine.writeback``).
        """
        return generation_version(self.base_version, self.generation)


@dataclass
class TaskRecord:
    task_id: int
    mining_hash: str
    status: str  # "mined" or "failed"
    description: str | None = None
    error: str | None = None
    signals: dict[str, float] = field(default_factory=dict)
    data_digest: str | None = None  # of the task's data when mined: a sync re-mines a task whose data changed
    # object mining, as JSON text: {"digest": of the boxes read, "items": the mined objects by
    # slot (label, score, box, ...), "errors": [reasons]}; read through ``objects``. Kept as
    # text so that reading every record (a ranking's signals) never parses it
    objects_json: str | None = None

    @property
    def objects(self) -> dict[str, Any] | None:
        """The object mining record (see ``objects_json``), parsed; None when objects were not mined."""
        return json.loads(self.objects_json) if self.objects_json else None


@dataclass
class Job:
    id: int
    kind: str
    project: int | None
    payload: dict[str, Any]
    attempts: int


class Store(Protocol):
    """Project state, task records and the description cache."""

    def close(self) -> None: ...
    def get_project(self, pid: int) -> ProjectState | None: ...
    def save_project(self, state: ProjectState) -> None: ...
    def update_project(self, pid: int, **fields: Any) -> None: ...
    def projects(self) -> list[int]: ...
    def written(self, pid: int, version: str) -> dict[int, tuple[float, int | None]]: ...
    def set_written(self, pid: int, version: str, scores: Mapping[int, tuple[float, int | None]],
                    replace: bool = False) -> None: ...
    def save_tasks(self, pid: int, records: Iterable[TaskRecord]) -> None: ...
    def get_tasks(self, pid: int, task_ids: Iterable[int] | None = None) -> dict[int, TaskRecord]: ...
    def get_signals(self, pid: int) -> dict[int, dict[str, float]]: ...
    def delete_tasks(self, pid: int, task_ids: Iterable[int]) -> None: ...
    def task_counts(self, pid: int) -> dict[str, int]: ...
    def failures(self, pid: int, limit: int = 20) -> list[tuple[int, str]]: ...
    def cache_get(self, keys: Iterable[str]) -> dict[str, tuple[str | None, list[str]]]: ...
    def cache_put(self, items: Mapping[str, tuple[str | None, list[str]]]) -> None: ...
    # object mining: task -> (slot, JPEG) of its rarest object's thumbnail; forgotten by delete_tasks
    def put_thumbnails(self, pid: int, items: Mapping[int, tuple[int, bytes]]) -> None: ...
    def get_thumbnails(self, pid: int, task_ids: Iterable[int]) -> dict[int, tuple[int, bytes]]: ...
    # object mining: tasks mined again whose live prediction still holds the explanation of what
    # they held before; mining marks them, the next re-rank rewrites them in Label Studio and
    # clears exactly the ids it settled (one marked meanwhile stays); forgotten by delete_tasks
    def mark_explanations_stale(self, pid: int, task_ids: Iterable[int]) -> None: ...
    def stale_explanations(self, pid: int) -> list[int]: ...
    def clear_stale_explanations(self, pid: int, task_ids: Iterable[int]) -> None: ...


class JobTable(Protocol):
    """The embedded queue's persisted jobs (SQLite only)."""

    def enqueue_many(self, kind: str, project: int | None, payloads: list[dict[str, Any]]) -> int: ...
    def enqueue(self, kind: str, project: int | None, payload: dict[str, Any], delay: float = 0.0,
                unique: bool = False) -> int | None: ...
    def claim(self, kinds: Iterable[str]) -> Job | None: ...
    def finish(self, job_id: int) -> None: ...
    def fail(self, job_id: int, error: str, retry_in: float | None) -> None: ...
    def requeue_running(self) -> int: ...
    def job_counts(self) -> dict[str, int]: ...
    def failed_jobs(self, limit: int = 20) -> list[dict[str, Any]]: ...


class Coordination(Protocol):
    """Counters, last errors and per-project locks, in-process or shared through Redis."""

    def incr(self, name: str, amount: int = 1) -> None: ...
    def counters(self) -> dict[str, int]: ...
    def set_error(self, key: str, message: str) -> None: ...
    def errors(self) -> dict[str, str]: ...
    def project_lock(self, pid: int, timeout: float = 600.0) -> AbstractContextManager[None]: ...
