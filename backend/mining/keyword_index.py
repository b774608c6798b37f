"""The keyword index: each task's keyword set and per-keyword document frequencies.

Novelty needs, per scope (one project and one mining configuration), every task's
keyword set and df(k) = the number of tasks whose set holds k. Both change together on
every upsert, so a task mined twice, or by two workers at once, must never be counted
twice. Keywords are interned to small integer ids per scope so that scoring works on a
CSR matrix (``IndexArrays``) with numpy instead of on strings.

This module holds what mining reads: the arrays and the interface. The stores that keep
an index live with the rest of the persisted state: ``backend.state.sqlite_index``
(a file in the data directory; one machine, several threads and processes) and
``backend.state.redis_index`` (many workers on many machines), picked by
``backend.state.open_state``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "IndexArrays",
    "KeywordIndex",
]


@dataclass(frozen=True)
class IndexArrays:
    """A scope's keyword sets as CSR arrays, plus document frequencies.

    Row i (task ``task_ids[i]``) holds ``keyword_ids[indptr[i]:indptr[i+1]]``; a row may
    be empty (a known task with no keywords). ``df`` is indexed by keyword id.
    """

    task_ids: np.ndarray
    indptr: np.ndarray
    keyword_ids: np.ndarray
    df: np.ndarray

    @property
    def n_tasks(self) -> int:
        return int(self.task_ids.shape[0])

    @property
    def vocab_size(self) -> int:
        return int(self.df.shape[0])

    @classmethod
    def empty(cls) -> "IndexArrays":
        return cls(
            task_ids=np.zeros(0, np.int64),
            indptr=np.zeros(1, np.int64),
            keyword_ids=np.zeros(0, np.int32),
            df=np.zeros(0, np.int64),
        )

    def validate(self) -> None:
        """Raise ValueError when the arrays are inconsistent (O(nnz); for tests/tools)."""
        n = self.n_tasks
        if self.indptr.shape != (n + 1,) or self.indptr[0] != 0:
            raise ValueError("indptr must have n_tasks + 1 entries starting at 0")
        if np.any(np.diff(self.indptr) < 0) or self.indptr[-1] != self.keyword_ids.size:
            raise ValueError("indptr must be non-decreasing and end at nnz")
        if n > 1 and np.any(np.diff(self.task_ids) <= 0):
            raise ValueError("task_ids must be strictly ascending")
        if self.keyword_ids.size and (
            self.keyword_ids.min() < 0 or self.keyword_ids.max() >= self.vocab_size
        ):
            raise ValueError("keyword id out of range")

    def row(self, i: int) -> np.ndarray:
        return self.keyword_ids[self.indptr[i] : self.indptr[i + 1]]


class KeywordIndex(abc.ABC):
    """Per-scope keyword sets and document frequencies; see the module docstring."""

    def upsert(self, scope: str, task_id: int, keywords: Iterable[str]) -> None:
        """Replace one task's keyword set (mining a task twice never double-counts)."""
        self.upsert_many(scope, {task_id: keywords})

    @abc.abstractmethod
    def upsert_many(self, scope: str, items: Mapping[int, Iterable[str]]) -> None:
        """Replace many tasks' keyword sets; each task's change is atomic."""

    @abc.abstractmethod
    def delete(self, scope: str, task_ids: Iterable[int]) -> int:
        """Forget tasks; returns how many of them existed."""

    def get(self, scope: str, task_id: int) -> list[str] | None:
        """A task's keywords, sorted; None when the task is unknown."""
        return self.get_many(scope, [task_id]).get(int(task_id))

    @abc.abstractmethod
    def get_many(self, scope: str, task_ids: Iterable[int]) -> dict[int, list[str]]:
        """Sorted keywords of the known tasks among ``task_ids``."""

    @abc.abstractmethod
    def contains(self, scope: str, task_ids: Iterable[int]) -> set[int]:
        """The known tasks among ``task_ids`` (an empty keyword set counts as known)."""

    @abc.abstractmethod
    def task_count(self, scope: str) -> int:
        """N: the number of known tasks in the scope."""

    @abc.abstractmethod
    def document_frequencies(
        self, scope: str, keywords: Iterable[str] | None = None
    ) -> dict[str, int]:
        """df of the given keywords (0 when absent), or of every keyword with df > 0."""

    @abc.abstractmethod
    def arrays(self, scope: str) -> IndexArrays:
        """A consistent snapshot of the scope as CSR arrays, tasks ascending."""

    @abc.abstractmethod
    def keyword_names(self, scope: str, ids: Iterable[int]) -> list[str]:
        """Keyword strings for interned ids (KeyError for an unknown id)."""

    @abc.abstractmethod
    def drop_scope(self, scope: str) -> None:
        """Remove everything stored for the scope."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> "KeywordIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
