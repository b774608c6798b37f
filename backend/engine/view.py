"""Read-only views of what the backend keeps: what the server, the report and the offline
output show, without a door to change it.

:meth:`Engine.view` gives a :class:`ProjectView` of one project, :meth:`Engine.overview` a
:class:`BackendView` of them all. Neither creates a project nor writes anything: a report of
a project the backend never saw must not make one appear.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..state import ProjectState, TaskRecord


class ProjectView:
    """One project as the backend holds it: its state, task records, keyword indexes and
    thumbnails, read under the mining settings now in force.

    Args:
        store: the project store (task records, failures, thumbnails).
        index: the keyword index.
        pid: the project.
        scope, object_scope: the project's image and object keyword scopes.
    """

    def __init__(self, store, index, pid: int, scope: str, object_scope: str) -> None:
        self._store = store
        self._index = index
        self.pid = pid
        self._scope = scope
        self._object_scope = object_scope

    def state(self) -> ProjectState | None:
        """The project's state as stored, or None for a project never seen (nothing is created)."""
        return self._store.get_project(self.pid)

    def failures(self, limit: int = 20) -> list[tuple[int, str]]:
        """The newest failed tasks of the project: (task id, reason)."""
        return self._store.failures(self.pid, limit)

    def task_records(self, task_ids: Iterable[int]) -> dict[int, TaskRecord]:
        return self._store.get_tasks(self.pid, task_ids)

    def thumbnails(self, task_ids: Iterable[int]) -> dict[int, tuple[int, bytes]]:
        """task -> (slot, JPEG) of the thumbnail stored for its rarest object when it was mined."""
        return self._store.get_thumbnails(self.pid, task_ids)

    def object_errors(self, task_ids: Sequence[int]) -> dict[int, list[str]]:
        """Why objects of these tasks were not mined (a broken box, a refused crop, a VLM
        failure), as recorded when they were mined; tasks without any are left out."""
        out = {}
        for t, rec in self._store.get_tasks(self.pid, [int(t) for t in task_ids]).items():
            errors = (rec.objects or {}).get("errors") or []
            if errors:
                out[t] = list(errors)
        return out

    def index_arrays(self):
        """The project's keyword index as arrays (``mining.IndexArrays``): what the ranking reads."""
        return self._index.arrays(self._scope)

    def keyword_names(self, keyword_ids: list[int]) -> list[str]:
        return self._index.keyword_names(self._scope, keyword_ids)

    def object_index_arrays(self):
        """The project's object keyword index as arrays (one document per mined object): the
        report's object long tail."""
        return self._index.arrays(self._object_scope)

    def object_keyword_names(self, keyword_ids: list[int]) -> list[str]:
        return self._index.keyword_names(self._object_scope, keyword_ids)


class BackendView:
    """Every project the backend has seen, and its counters and last errors (/metrics)."""

    def __init__(self, store, coordination) -> None:
        self._store = store
        self._coord = coordination

    def projects(self) -> list[int]:
        """Every project this backend has seen."""
        return self._store.projects()

    def counters(self) -> dict[str, int]:
        return self._coord.counters()

    def errors(self) -> dict[str, str]:
        """The last error of each kind (a task, a job kind), for /metrics."""
        return self._coord.errors()
