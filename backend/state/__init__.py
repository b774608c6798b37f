"""What survives a restart: project state, task records, the description cache, the keyword
index and the coordination (counters, errors, locks).

:func:`open_state` is the one place that picks the backend: Redis when ``REDIS_URL`` is
set (many workers share it), else SQLite files under ``MODEL_DIR`` and in-process
coordination (one process). The interfaces are declared in :mod:`backend.state.base`
(the keyword index's in :mod:`backend.mining.keyword_index`, which mining reads); the stores are
``sqlite_store``/``redis_store`` (project and task state), ``sqlite_index``/``redis_index`` (the keyword
index) and ``coordination``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import Coordination, JobTable, ProjectState, StateLocation, Store, TaskRecord

if TYPE_CHECKING:
    from ..mining.keyword_index import KeywordIndex

#: the SQLite file of the embedded mode, under MODEL_DIR: projects, tasks, cache and jobs
STATE_FILE = "state.sqlite3"
#: the SQLite file of the embedded mode's keyword index, under MODEL_DIR
INDEX_FILE = "index.sqlite3"

__all__ = ["Coordination", "INDEX_FILE", "JobTable", "ProjectState", "STATE_FILE", "State", "StateLocation",
           "Store", "TaskRecord", "open_job_table", "open_state"]


@dataclass
class State:
    """The parts one engine persists to, opened together from the settings."""

    store: Store
    index: "KeywordIndex"
    coordination: Coordination
    #: the Redis client when REDIS_URL is set (RQ's connection too), else None
    redis: Any = None
    #: the embedded queue's job table (the SQLite store), None with Redis (jobs live in RQ)
    jobs: JobTable | None = None

    def close(self) -> None:
        self.store.close()
        self.index.close()


def open_state(settings: StateLocation, *, store: Store | None = None, index: "KeywordIndex | None" = None,
               coordination: Coordination | None = None, redis_client: Any = None) -> State:
    """The state ``settings`` ask for; parts given are used as they are (tests, benchmarks).

    Args:
        settings: REDIS_URL picks Redis, else SQLite under MODEL_DIR.
        store, index, coordination, redis_client: ready-made parts to use instead of opening them.
    """
    if redis_client is None and settings.redis_url and (store is None or index is None):
        import redis

        redis_client = redis.Redis.from_url(settings.redis_url)
    if store is None:
        if redis_client is not None:
            from .redis_store import RedisStore

            store = RedisStore(redis_client)
        else:
            from .sqlite_store import SQLiteStore

            store = SQLiteStore(settings.data_dir / STATE_FILE)
    if index is None:
        if redis_client is not None:
            from .redis_index import RedisIndex

            index = RedisIndex(redis_client)
        else:
            from .sqlite_index import SQLiteIndex

            settings.data_dir.mkdir(parents=True, exist_ok=True)
            index = SQLiteIndex(settings.data_dir / INDEX_FILE)
    if coordination is None:
        from .coordination import LocalCoordination, RedisCoordination

        coordination = RedisCoordination(redis_client) if redis_client is not None else LocalCoordination()
    jobs = store if redis_client is None and hasattr(store, "claim") else None
    return State(store, index, coordination, redis_client, jobs)  # type: ignore[arg-type]


def open_job_table(settings: StateLocation) -> JobTable:
    """The embedded queue's job table: the ``jobs`` table of the SQLite state file."""
    from .sqlite_store import SQLiteStore

    return SQLiteStore(settings.data_dir / STATE_FILE)
