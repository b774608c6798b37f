"""The keyword index in SQLite: a file in the data directory, for one machine.

The ``backend.mining.keyword_index.KeywordIndex`` interface; several threads and processes may
share the file (WAL mode, a connection per thread, ``BEGIN IMMEDIATE`` writes).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..mining.keyword_index import IndexArrays, KeywordIndex
from .keyword_blobs import BLOB_DTYPE, WRITE_CHUNK, build_arrays, chunked, prepare_batch, unique_ints

_SQL_CHUNK = 500  # host parameters per IN (...) query


def _blobs_for(
    batch: Sequence[tuple[int, list[str]]], cached: Mapping[str, int], fresh: Mapping[str, int]
) -> list[bytes]:
    """Each task's sorted keyword ids as int32 bytes, built for the whole batch at once."""
    lengths = np.fromiter((len(kws) for _, kws in batch), dtype=np.int64, count=len(batch))
    flat = np.fromiter(
        (fresh[n] if n in fresh else cached[n] for _, kws in batch for n in kws),
        dtype=np.int64,
        count=int(lengths.sum()),
    )
    rows = np.repeat(np.arange(len(batch), dtype=np.int64), lengths)
    flat = (np.sort((rows << 32) | flat) & 0xFFFFFFFF).astype(BLOB_DTYPE)  # sort within rows
    data = flat.tobytes()
    ends = (np.cumsum(lengths) * 4).tolist()
    starts = [0, *ends[:-1]]
    return [data[a:b] for a, b in zip(starts, ends)]


def _df_delta(new_blobs: Iterable[bytes], old_blobs: Iterable[bytes]) -> list[tuple[int, int]]:
    """(keyword id, change in df) for every id whose df changes."""
    new = np.frombuffer(b"".join(new_blobs), dtype=BLOB_DTYPE)
    old = np.frombuffer(b"".join(old_blobs), dtype=BLOB_DTYPE)
    top = max(int(new.max()) if new.size else -1, int(old.max()) if old.size else -1) + 1
    if 0 < top <= 16 * (new.size + old.size) + 65536:  # small id range: two bincounts
        delta = np.bincount(new, minlength=top) - np.bincount(old, minlength=top)
        changed = np.flatnonzero(delta)
        return list(zip(changed.tolist(), delta[changed].tolist()))
    ids = np.concatenate([new, old]).astype(np.int64)
    if not ids.size:
        return []
    signs = np.concatenate([np.ones(new.size, np.int64), -np.ones(old.size, np.int64)])
    uniq, inverse = np.unique(ids, return_inverse=True)
    delta = np.bincount(inverse, weights=signs, minlength=uniq.size).astype(np.int64)
    keep = delta != 0
    return list(zip(uniq[keep].tolist(), delta[keep].tolist()))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    n_tasks INTEGER NOT NULL DEFAULT 0,
    next_kw INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS keywords (
    scope INTEGER NOT NULL,
    id INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (scope, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS keywords_by_name ON keywords (scope, name);
-- df apart from the names: narrow rows make the many small updates ~30% cheaper.
CREATE TABLE IF NOT EXISTS df (
    scope INTEGER NOT NULL,
    id INTEGER NOT NULL,
    df INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    scope INTEGER NOT NULL,
    task INTEGER NOT NULL,
    kw BLOB NOT NULL,
    PRIMARY KEY (scope, task)
) WITHOUT ROWID;
"""


@dataclass
class _Vocab:
    """Interned names of one scope row. Ids never change once committed, so caching is
    safe; a dropped and re-created scope gets a new row id (AUTOINCREMENT)."""

    ids: dict[str, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)


class SQLiteIndex(KeywordIndex):
    """SQLite store: WAL mode, one connection per thread, ``BEGIN IMMEDIATE`` writes.

    Writers serialise on SQLite's write lock, which also covers other processes, so a
    task's blob and the df counts always change in one transaction.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = str(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._vocab: dict[int, _Vocab] = {}
        self._closed = False
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")

    # -- connections and transactions -----------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("index is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MB page cache per connection
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable except on power loss
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for several SELECTs (WAL readers never block writers)."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _scope_id(self, conn: sqlite3.Connection, scope: str, create: bool) -> int | None:
        row = conn.execute("SELECT id FROM scopes WHERE name = ?", (scope,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        return int(conn.execute("INSERT INTO scopes (name) VALUES (?)", (scope,)).lastrowid)

    def _cache(self, sid: int) -> _Vocab:
        vocab = self._vocab.get(sid)
        if vocab is None:
            with self._lock:
                vocab = self._vocab.setdefault(sid, _Vocab())
        return vocab

    def _remember(self, sid: int, pairs: Mapping[str, int]) -> None:
        """Add committed (name, id) pairs to the cache."""
        vocab = self._cache(sid)
        with self._lock:
            for name, kid in pairs.items():
                vocab.ids[name] = kid
                vocab.names[kid] = name

    # -- interning -----------------------------------------------------------------------

    def _intern(
        self, conn: sqlite3.Connection, sid: int, names: Sequence[str]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """(the cache, the batch's pairs not in it yet); inside a write transaction.

        Missing names are looked up (another process may have added them) or created.
        """
        cached = self._cache(sid).ids
        missing = [n for n in names if n not in cached]
        out: dict[str, int] = {}
        for chunk in chunked(missing, _SQL_CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT name, id FROM keywords WHERE scope = ? AND name IN ({marks})"
            out.update(conn.execute(sql, (sid, *chunk)))
        new = [n for n in missing if n not in out]
        if new:
            (next_id,) = conn.execute("SELECT next_kw FROM scopes WHERE id = ?", (sid,)).fetchone()
            assigned = {n: next_id + i for i, n in enumerate(new)}
            conn.executemany(
                "INSERT INTO keywords (scope, id, name) VALUES (?, ?, ?)",
                [(sid, kid, n) for n, kid in assigned.items()],
            )
            conn.executemany(
                "INSERT INTO df (scope, id, df) VALUES (?, ?, 0)",
                [(sid, kid) for kid in assigned.values()],
            )
            conn.execute(
                "UPDATE scopes SET next_kw = ? WHERE id = ?", (next_id + len(new), sid)
            )
            out.update(assigned)
        return cached, out

    def _blobs(self, conn: sqlite3.Connection, sid: int, task_ids: Sequence[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for chunk in chunked(task_ids, _SQL_CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT task, kw FROM tasks WHERE scope = ? AND task IN ({marks})"
            out.update(conn.execute(sql, (sid, *chunk)))
        return out

    def _names(self, conn: sqlite3.Connection, sid: int, ids: Iterable[int]) -> dict[int, str]:
        known = self._cache(sid).names
        wanted = {int(i) for i in ids}
        out = {i: known[i] for i in wanted if i in known}
        missing = sorted(wanted - out.keys())
        fetched: dict[str, int] = {}
        for chunk in chunked(missing, _SQL_CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT name, id FROM keywords WHERE scope = ? AND id IN ({marks})"
            fetched.update(conn.execute(sql, (sid, *chunk)))
        self._remember(sid, fetched)
        out.update((kid, name) for name, kid in fetched.items())
        return out

    # -- writes --------------------------------------------------------------------------

    def upsert_many(self, scope: str, items: Mapping[int, Iterable[str]]) -> None:
        batch = prepare_batch(items)
        for chunk in chunked(batch, WRITE_CHUNK):
            self._upsert_chunk(scope, chunk)

    def _upsert_chunk(self, scope: str, batch: Sequence[tuple[int, list[str]]]) -> None:
        names = sorted({n for _, kws in batch for n in kws})
        with self._write() as conn:
            sid = self._scope_id(conn, scope, create=True)
            cached, fresh = self._intern(conn, sid, names)
            old = self._blobs(conn, sid, [t for t, _ in batch])
            blobs = _blobs_for(batch, cached, fresh)
            self._apply_delta(conn, sid, _df_delta(blobs, old.values()))
            conn.executemany(
                "INSERT OR REPLACE INTO tasks (scope, task, kw) VALUES (?, ?, ?)",
                [(sid, tid, blob) for (tid, _), blob in zip(batch, blobs)],
            )
            added = len(batch) - len(old)
            if added:
                conn.execute("UPDATE scopes SET n_tasks = n_tasks + ? WHERE id = ?", (added, sid))
        self._remember(sid, fresh)  # only after COMMIT: a rolled-back id must not be cached

    @staticmethod
    def _apply_delta(conn: sqlite3.Connection, sid: int, delta: list[tuple[int, int]]) -> None:
        conn.executemany(
            "UPDATE df SET df = df + ? WHERE scope = ? AND id = ?",
            [(d, sid, kid) for kid, d in delta],
        )

    def delete(self, scope: str, task_ids: Iterable[int]) -> int:
        ids = unique_ints(task_ids)
        if not ids:
            return 0
        with self._write() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return 0
            old = self._blobs(conn, sid, ids)
            self._apply_delta(conn, sid, _df_delta((), old.values()))
            conn.executemany(
                "DELETE FROM tasks WHERE scope = ? AND task = ?", [(sid, t) for t in old]
            )
            conn.execute("UPDATE scopes SET n_tasks = n_tasks - ? WHERE id = ?", (len(old), sid))
        return len(old)

    def drop_scope(self, scope: str) -> None:
        with self._write() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return
            conn.execute("DELETE FROM tasks WHERE scope = ?", (sid,))
            conn.execute("DELETE FROM keywords WHERE scope = ?", (sid,))
            conn.execute("DELETE FROM df WHERE scope = ?", (sid,))
            conn.execute("DELETE FROM scopes WHERE id = ?", (sid,))
        with self._lock:
            self._vocab.pop(sid, None)

    # -- reads ---------------------------------------------------------------------------

    def get_many(self, scope: str, task_ids: Iterable[int]) -> dict[int, list[str]]:
        ids = unique_ints(task_ids)
        with self._read() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None or not ids:
                return {}
            blobs = self._blobs(conn, sid, ids)
            arrays = {t: np.frombuffer(b, BLOB_DTYPE) for t, b in blobs.items()}
            all_ids = set().union(*(a.tolist() for a in arrays.values())) if arrays else set()
            names = self._names(conn, sid, all_ids)
        return {t: sorted(names[int(k)] for k in a) for t, a in arrays.items()}

    def contains(self, scope: str, task_ids: Iterable[int]) -> set[int]:
        ids = unique_ints(task_ids)
        out: set[int] = set()
        with self._read() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return out
            for chunk in chunked(ids, _SQL_CHUNK):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT task FROM tasks WHERE scope = ? AND task IN ({marks})"
                out.update(r[0] for r in conn.execute(sql, (sid, *chunk)))
        return out

    def task_count(self, scope: str) -> int:
        row = self._conn().execute("SELECT n_tasks FROM scopes WHERE name = ?", (scope,)).fetchone()
        return int(row[0]) if row else 0

    def document_frequencies(
        self, scope: str, keywords: Iterable[str] | None = None
    ) -> dict[str, int]:
        wanted = None if keywords is None else sorted({str(k) for k in keywords})
        with self._read() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if wanted is None:
                if sid is None:
                    return {}
                sql = (
                    "SELECT k.name, d.df FROM df d JOIN keywords k"
                    " ON k.scope = d.scope AND k.id = d.id WHERE d.scope = ? AND d.df > 0"
                )
                return dict(conn.execute(sql, (sid,)))
            out = dict.fromkeys(wanted, 0)
            if sid is None:
                return out
            for chunk in chunked(wanted, _SQL_CHUNK):
                marks = ",".join("?" * len(chunk))
                sql = (
                    "SELECT k.name, d.df FROM keywords k JOIN df d ON d.scope = k.scope"
                    f" AND d.id = k.id WHERE k.scope = ? AND k.name IN ({marks})"
                )
                out.update(conn.execute(sql, (sid, *chunk)))
        return out

    def arrays(self, scope: str) -> IndexArrays:
        with self._read() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return IndexArrays.empty()
            (vocab,) = conn.execute("SELECT next_kw FROM scopes WHERE id = ?", (sid,)).fetchone()
            cur = conn.execute("SELECT task, kw FROM tasks WHERE scope = ? ORDER BY task", (sid,))
            rows = cur.fetchall()
        return build_arrays([r[0] for r in rows], [r[1] for r in rows], int(vocab))

    def keyword_names(self, scope: str, ids: Iterable[int]) -> list[str]:
        wanted = [int(i) for i in ids]
        with self._read() as conn:
            sid = self._scope_id(conn, scope, create=False)
            names = self._names(conn, sid, wanted) if sid is not None else {}
        missing = [i for i in wanted if i not in names]
        if missing:
            raise KeyError(f"unknown keyword ids in scope {scope!r}: {missing[:10]}")
        return [names[i] for i in wanted]

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
            self._closed = True
        for conn in conns:
            conn.close()
        self._local = threading.local()
