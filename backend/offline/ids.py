"""Stable ids and what each id was, so the offline commands resume.

A source gets a synthetic project id derived from what it is (:func:`project_id`); a
folder's and an S3 prefix's items get stable ids (:class:`ItemIds`): the first run numbers
them in sorted order, later runs keep each path's id and give new paths the next free ones,
so adding or removing files renumbers nothing and mines only what is new. The
:class:`Manifest` remembers each mined id's content signature, so an id whose item changed
is mined again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    from ..engine.engine import Engine
    from .sources import Dataset

PID_BASE = 1 << 50  # synthetic project ids sit far above Label Studio's


def project_id(identity: str) -> int:
    """A stable project id for a source: the same source resumes, another one does not collide."""
    return PID_BASE + int(hashlib.sha256(identity.encode()).hexdigest()[:12], 16)


def _read_pairs(path: Path, convert: Callable[[Any, Any], tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """The ``[a, b]`` lines of an append-only JSONL file, through ``convert``; none if it is missing."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    a, b = json.loads(line)
                    yield convert(a, b)
                except (ValueError, TypeError):
                    continue  # a line cut short by an interrupted run
    except FileNotFoundError:
        return


def _append_pairs(path: Path, pairs: Iterable[tuple[Any, Any]]) -> int:
    """Append ``[a, b]`` lines; returns how many."""
    lines = [json.dumps([a, b]) + "\n" for a, b in pairs]
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.writelines(lines)
    return len(lines)


class Manifest:
    """What each mined id was (path and size, S3 ETag, text digest): an append-only JSONL
    beside the store, so an id whose item changed is mined again on resume."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[int, str] = {}
        self._lines = 0
        for tid, sig in _read_pairs(path, lambda t, s: (int(t), s)):
            self.entries[tid] = sig
            self._lines += 1

    def compact(self, keep: set[int]) -> None:
        stale = set(self.entries) - keep
        if not stale and self._lines <= 2 * max(len(self.entries), 1000):
            return
        for tid in stale:
            del self.entries[tid]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps([t, s]) + "\n" for t, s in self.entries.items())
        os.replace(tmp, self.path)
        self._lines = len(self.entries)

    def add(self, pairs: Iterable[tuple[int, str]]) -> None:
        pairs = list(pairs)
        self.entries.update(pairs)
        self._lines += _append_pairs(self.path, pairs)


class ItemIds:
    """Stable ids by item name (a folder's relative path, an S3 key), in an append-only JSONL.

    A name keeps the id it got first; a new name gets the next free id (new names in
    sorted order), so the first run numbers a sorted listing 0..n-1 and later runs number
    nothing twice. Ids of names that left the source are never reused.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ids: dict[str, int] = dict(_read_pairs(path, lambda name, tid: (str(name), int(tid))))

    def assign(self, names: Sequence[str]) -> list[int]:
        new = sorted(set(names) - set(self.ids))
        if new:
            start = max(self.ids.values(), default=-1) + 1
            fresh = {name: start + k for k, name in enumerate(new)}
            _append_pairs(self.path, fresh.items())
            self.ids.update(fresh)
        return [self.ids[name] for name in names]


def ids_file(engine: "Engine", pid: int) -> Path:
    """Where a project's ItemIds live."""
    return engine.settings.data_dir / "cli" / f"{pid}-ids.jsonl"


def stabilise_ids(dataset: Dataset, path: Path) -> None:
    """Give named items (folder, S3) their stable ids from ``path`` (see ItemIds)."""
    named = [it for it in dataset.items if it.name is not None]
    if not named:
        return
    for item, tid in zip(named, ItemIds(path).assign([it.name for it in named])):
        item.id = tid
        item.task["id"] = tid
