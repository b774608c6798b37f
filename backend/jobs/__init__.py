"""Background work: the job kinds (``runner``), the embedded queue (``embedded``), RQ (``rq``)
and the GPU worker (``worker``).

Both queues keep the :class:`JobQueue` interface; :func:`open_queue` picks the one the
settings ask for (RQ with REDIS_URL, else embedded), as ``backend.state.open_state``
picks the state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence

if TYPE_CHECKING:
    from ..engine import Engine
    from ..state import State


class JobQueue(Protocol):
    """What the server, the model and the job functions ask of a queue."""

    #: True: /predict's unknown tasks are mined in the web process (embedded); False: the
    #: web process asks the workers to mine them first (:meth:`mine_and_wait`) and never
    #: loads the VLM itself (RQ)
    mines_in_process: bool

    def submit_tasks(self, pid: int, tasks: Sequence[dict], label_config: str | None = None) -> int: ...
    def submit_delete(self, pid: int, task_ids: Sequence[int]) -> None: ...
    def submit_sync(self, pid: int) -> None: ...
    def submit_rerank(self, pid: int, delay: float | None = None) -> None: ...
    def submit_cleanup(self, pid: int, version: str) -> None: ...
    def submit_annotation_sweep(self, pid: int) -> None: ...
    def counts(self) -> dict[str, int]: ...
    def failed_jobs(self, limit: int = 10) -> list[dict[str, Any]]: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class WaitingQueue(JobQueue, Protocol):
    """A queue whose workers mine elsewhere (``mines_in_process`` False)."""

    def mine_and_wait(self, pid: int, tasks: Sequence[dict], label_config: str | None, timeout: float) -> bool: ...


def open_queue(engine: "Engine", state: "State | None" = None) -> JobQueue:
    """The queue the engine's settings ask for: RQ with REDIS_URL, else the embedded one.

    ``state``: the engine's state when the caller opened it (its Redis client or SQLite
    job table are reused); else the queue opens its own from the settings.
    """
    if engine.settings.redis_url:
        from .rq import RQQueue

        return RQQueue(engine, state.redis if state is not None else None)
    from .embedded import EmbeddedQueue

    return EmbeddedQueue(engine, state.jobs if state is not None else None)
