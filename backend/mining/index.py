"""The keyword index: each task's keyword set and per-keyword document frequencies.

Novelty needs, per scope (one project and one mining configuration), every task's
keyword set and df(k) = the number of tasks whose set holds k. Both change together on
every upsert, so a task mined twice, or by two workers at once, must never be counted
twice. Keywords are interned to small integer ids per scope so that scoring works on a
CSR matrix (``IndexArrays``) with numpy instead of on strings.

Two stores share one interface: ``SQLiteIndex`` (a file in the data directory; one
machine, several threads and processes) and ``RedisIndex`` (many workers on many
machines). Each task's keyword ids are stored as one compact little-endian int32 blob,
so reading a million tasks back is one scan, not eight million rows.
"""

from __future__ import annotations

import abc
import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import redis

__all__ = [
    "IndexArrays",
    "KeywordIndex",
    "SQLiteIndex",
    "RedisIndex",
    "open_index",
]

_BLOB_DTYPE = np.dtype("<i4")
_SQL_CHUNK = 500  # host parameters per IN (...) query
_WRITE_CHUNK = 5000  # tasks per write transaction / Lua call


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


def _build_arrays(task_ids: Sequence[int], blobs: Sequence[bytes], vocab: int) -> IndexArrays:
    """CSR arrays from per-task blobs (already in ascending task order)."""
    n = len(task_ids)
    tids = np.fromiter(task_ids, dtype=np.int64, count=n)
    lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=n) // 4
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    kw = np.frombuffer(b"".join(blobs), dtype=_BLOB_DTYPE).astype(np.int32)
    vocab = max(vocab, int(kw.max()) + 1 if kw.size else 0)
    # df from the snapshot itself, so it matches the CSR exactly even mid-update.
    df = np.bincount(kw, minlength=vocab).astype(np.int64)
    return IndexArrays(task_ids=tids, indptr=indptr, keyword_ids=kw, df=df)


def _prepare(items: Mapping[int, Iterable[str]]) -> list[tuple[int, list[str]]]:
    """Validate a batch: int task ids, de-duplicated non-empty keyword strings.

    Two keys naming one task (``1`` and ``"1"``) leave the last one's keywords, as a
    second upsert would: each task is counted once in the document frequencies.
    """
    out: dict[int, list[str]] = {}
    for task_id, keywords in items.items():
        if isinstance(keywords, (str, bytes)):
            raise TypeError(f"task {task_id}: keywords must be an iterable of str, not a str")
        names = list(dict.fromkeys(keywords))
        if not all(type(n) is str and n for n in names):
            names = list(dict.fromkeys(str(n) for n in names if n is not None and n != ""))
        out[int(task_id)] = names
    return list(out.items())


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
    flat = (np.sort((rows << 32) | flat) & 0xFFFFFFFF).astype(_BLOB_DTYPE)  # sort within rows
    data = flat.tobytes()
    ends = (np.cumsum(lengths) * 4).tolist()
    starts = [0, *ends[:-1]]
    return [data[a:b] for a, b in zip(starts, ends)]


def _unique_ints(values: Iterable[int]) -> list[int]:
    return sorted({int(v) for v in values})


def _chunks(seq: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _df_delta(new_blobs: Iterable[bytes], old_blobs: Iterable[bytes]) -> list[tuple[int, int]]:
    """(keyword id, change in df) for every id whose df changes."""
    new = np.frombuffer(b"".join(new_blobs), dtype=_BLOB_DTYPE)
    old = np.frombuffer(b"".join(old_blobs), dtype=_BLOB_DTYPE)
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


# --------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------

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
        for chunk in _chunks(missing, _SQL_CHUNK):
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
        for chunk in _chunks(task_ids, _SQL_CHUNK):
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
        for chunk in _chunks(missing, _SQL_CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT name, id FROM keywords WHERE scope = ? AND id IN ({marks})"
            fetched.update(conn.execute(sql, (sid, *chunk)))
        self._remember(sid, fetched)
        out.update((kid, name) for name, kid in fetched.items())
        return out

    # -- writes --------------------------------------------------------------------------

    def upsert_many(self, scope: str, items: Mapping[int, Iterable[str]]) -> None:
        batch = _prepare(items)
        for chunk in _chunks(batch, _WRITE_CHUNK):
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
        ids = _unique_ints(task_ids)
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
        ids = _unique_ints(task_ids)
        with self._read() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None or not ids:
                return {}
            blobs = self._blobs(conn, sid, ids)
            arrays = {t: np.frombuffer(b, _BLOB_DTYPE) for t, b in blobs.items()}
            all_ids = set().union(*(a.tolist() for a in arrays.values())) if arrays else set()
            names = self._names(conn, sid, all_ids)
        return {t: sorted(names[int(k)] for k in a) for t, a in arrays.items()}

    def contains(self, scope: str, task_ids: Iterable[int]) -> set[int]:
        ids = _unique_ints(task_ids)
        out: set[int] = set()
        with self._read() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return out
            for chunk in _chunks(ids, _SQL_CHUNK):
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
            for chunk in _chunks(wanted, _SQL_CHUNK):
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
        return _build_arrays([r[0] for r in rows], [r[1] for r in rows], int(vocab))

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


# --------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------

# Shared Lua: apply a table of df changes, dropping fields that reach zero.
_LUA_APPLY_DELTA = """
local function apply_delta(dfkey, delta)
  for kid, d in pairs(delta) do
    if d ~= 0 then
      local v = redis.call('HINCRBY', dfkey, kid, d)
      if v == 0 then redis.call('HDEL', dfkey, kid) end
    end
  end
end
local function subtract_blob(delta, blob)
  for p = 1, #blob, 4 do
    local kid = struct.unpack('<i4', blob, p)
    delta[kid] = (delta[kid] or 0) - 1
  end
end
"""

# KEYS: tasks, df, kw (name -> id), names (id -> name), seq
# ARGV: n, then per task: task_id, k, name_1 .. name_k
_LUA_UPSERT = _LUA_APPLY_DELTA + """
local tkey, dfkey, kwkey, namekey, seqkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local delta, cache = {}, {}
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local tid, k = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local ids = {}
  for j = 1, k do
    local name = ARGV[i]
    i = i + 1
    local kid = cache[name]
    if kid == nil then
      kid = redis.call('HGET', kwkey, name)
      if kid then
        kid = tonumber(kid)
      else
        kid = redis.call('INCR', seqkey) - 1
        redis.call('HSET', kwkey, name, kid)
        redis.call('HSET', namekey, kid, name)
      end
      cache[name] = kid
    end
    ids[j] = kid
  end
  table.sort(ids)
  local old = redis.call('HGET', tkey, tid)
  if old then subtract_blob(delta, old) end
  local parts = {}
  for j = 1, k do
    parts[j] = struct.pack('<i4', ids[j])
    delta[ids[j]] = (delta[ids[j]] or 0) + 1
  end
  redis.call('HSET', tkey, tid, table.concat(parts))
end
apply_delta(dfkey, delta)
return 0
"""

# KEYS: tasks, df; ARGV: task ids. Returns how many existed.
_LUA_DELETE = _LUA_APPLY_DELTA + """
local delta, n = {}, 0
for i = 1, #ARGV do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old then
    subtract_blob(delta, old)
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
apply_delta(KEYS[2], delta)
return n
"""


class RedisIndex(KeywordIndex):
    """Redis store: one hash per scope for blobs, df, and the name <-> id maps.

    Every write is one Lua script call (atomic on the server), so two workers upserting
    the same scope, or the same task, at once cannot corrupt the counts. Keys share a
    ``{scope}`` hash tag, so a scope lives in one Redis Cluster slot.
    """

    def __init__(self, client: "redis.Redis", prefix: str = "vlmine", *, owns_client: bool = False) -> None:
        self._client, self._owns = _raw_client(client, owns_client)
        self._prefix = prefix
        self._upsert = self._client.register_script(_LUA_UPSERT)
        self._delete = self._client.register_script(_LUA_DELETE)

    def _keys(self, scope: str) -> tuple[str, str, str, str, str]:
        base = f"{self._prefix}:{{{scope}}}"
        return (f"{base}:tasks", f"{base}:df", f"{base}:kw", f"{base}:names", f"{base}:seq")

    # -- writes --------------------------------------------------------------------------

    def upsert_many(self, scope: str, items: Mapping[int, Iterable[str]]) -> None:
        keys = self._keys(scope)
        for chunk in _chunks(_prepare(items), _WRITE_CHUNK):
            args: list[str | int] = [len(chunk)]
            for tid, names in chunk:
                args.extend((tid, len(names), *names))
            self._upsert(keys=list(keys), args=args)

    def delete(self, scope: str, task_ids: Iterable[int]) -> int:
        tkey, dfkey = self._keys(scope)[:2]
        ids = _unique_ints(task_ids)
        return sum(int(self._delete(keys=[tkey, dfkey], args=c)) for c in _chunks(ids, _WRITE_CHUNK))

    def drop_scope(self, scope: str) -> None:
        self._client.unlink(*self._keys(scope))

    # -- reads ---------------------------------------------------------------------------

    def get_many(self, scope: str, task_ids: Iterable[int]) -> dict[int, list[str]]:
        tkey, _, _, namekey, _ = self._keys(scope)
        ids = _unique_ints(task_ids)
        if not ids:
            return {}
        blobs = self._client.hmget(tkey, ids)
        arrays = {t: np.frombuffer(b, _BLOB_DTYPE) for t, b in zip(ids, blobs) if b is not None}
        all_ids = sorted(set().union(*(a.tolist() for a in arrays.values()))) if arrays else []
        names = dict(zip(all_ids, self._client.hmget(namekey, all_ids))) if all_ids else {}
        return {t: sorted(names[int(k)].decode() for k in a) for t, a in arrays.items()}

    def contains(self, scope: str, task_ids: Iterable[int]) -> set[int]:
        tkey = self._keys(scope)[0]
        ids = _unique_ints(task_ids)
        pipe = self._client.pipeline(transaction=False)
        for t in ids:
            pipe.hexists(tkey, t)
        return {t for t, ok in zip(ids, pipe.execute()) if ok}

    def task_count(self, scope: str) -> int:
        return int(self._client.hlen(self._keys(scope)[0]))

    def document_frequencies(
        self, scope: str, keywords: Iterable[str] | None = None
    ) -> dict[str, int]:
        _, dfkey, kwkey, namekey, _ = self._keys(scope)
        if keywords is None:
            counts = {int(k): int(v) for k, v in self._client.hgetall(dfkey).items()}
            ids = sorted(counts)
            names = self._client.hmget(namekey, ids) if ids else []
            return {n.decode(): counts[i] for i, n in zip(ids, names) if counts[i] > 0}
        wanted = sorted({str(k) for k in keywords})
        if not wanted:
            return {}
        ids = self._client.hmget(kwkey, wanted)
        present = [(n, int(i)) for n, i in zip(wanted, ids) if i is not None]
        out = dict.fromkeys(wanted, 0)
        if present:
            values = self._client.hmget(dfkey, [i for _, i in present])
            out.update((n, int(v or 0)) for (n, _), v in zip(present, values))
        return out

    def arrays(self, scope: str) -> IndexArrays:
        """Scan the scope (HSCAN: never blocks Redis for long, even at millions of tasks).

        Tasks written during the scan show either their old or new set; df is counted
        from exactly the sets returned, so the arrays are always self-consistent.
        """
        tkey, _, _, _, seqkey = self._keys(scope)
        blobs: dict[int, bytes] = {}
        for tid, blob in self._client.hscan_iter(tkey, count=20000):
            blobs[int(tid)] = blob
        vocab = int(self._client.get(seqkey) or 0)
        order = sorted(blobs)
        return _build_arrays(order, [blobs[t] for t in order], vocab)

    def keyword_names(self, scope: str, ids: Iterable[int]) -> list[str]:
        wanted = [int(i) for i in ids]
        if not wanted:
            return []
        values = self._client.hmget(self._keys(scope)[3], wanted)
        missing = [i for i, v in zip(wanted, values) if v is None]
        if missing:
            raise KeyError(f"unknown keyword ids in scope {scope!r}: {missing[:10]}")
        return [v.decode() for v in values]

    def close(self) -> None:
        if self._owns:
            self._client.close()


def _raw_client(client: "redis.Redis", owns: bool) -> tuple["redis.Redis", bool]:
    """Blobs are binary: use a bytes-returning twin of a decode_responses client."""
    pool = client.connection_pool
    if not pool.connection_kwargs.get("decode_responses"):
        return client, owns
    import redis as redis_lib

    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    raw_pool = redis_lib.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    return redis_lib.Redis(connection_pool=raw_pool), True


def open_index(redis_url: str | None, data_dir: str | os.PathLike) -> KeywordIndex:
    """Redis when ``redis_url`` is set (shared by many workers), else SQLite on disk."""
    if redis_url:
        import redis as redis_lib

        return RedisIndex(redis_lib.Redis.from_url(redis_url), owns_client=True)
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return SQLiteIndex(directory / "index.sqlite3")
