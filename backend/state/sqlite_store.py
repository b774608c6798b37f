"""Backend state that must survive a restart, beside the keyword index.

- projects: the label config, the live model version and its generation, the tab id;
- written: the score of the live-version prediction each task has in Label Studio
  (and its prediction id when known), so a re-rank writes only what changed;
- tasks: per task the description, the failure reason, and numeric signals taken
  from the task's data;
- cache: descriptions and keywords by image content hash and mining settings;
- thumbnails: per task (object mining) a tiny JPEG of its rarest object and that object's slot;
- stale_explanations: tasks mined again (object mining) whose prediction in Label Studio still
  holds their old explanation, until a re-rank rewrites it;
- jobs: the embedded queue's table (see ``backend.jobs.embedded``).

This module is the embedded SQLite implementation (one file under MODEL_DIR,
WAL mode, a connection per thread so Flask threads and the worker thread can
share it). ``backend.state.redis_store`` holds the Redis one for many workers; ``backend.state.base`` declares
the interface both keep.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from .base import PROJECT_FIELDS, Job, ProjectState, TaskRecord  # noqa: F401  (their home before)

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    pid INTEGER PRIMARY KEY,
    label_config TEXT,
    base_version TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    view_id INTEGER,
    synced TEXT,
    total INTEGER,
    dirty TEXT,
    retired TEXT,
    updated REAL
);
CREATE TABLE IF NOT EXISTS written (
    pid INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    version TEXT NOT NULL,
    score REAL NOT NULL,
    prediction_id INTEGER,
    PRIMARY KEY (pid, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    pid INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    mining_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    description TEXT,
    error TEXT,
    signals TEXT,
    updated REAL,
    data_digest TEXT,
    objects TEXT,
    PRIMARY KEY (pid, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (pid, status);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    description TEXT,
    keywords TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thumbnails (
    pid INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    jpeg BLOB NOT NULL,
    PRIMARY KEY (pid, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stale_explanations (
    pid INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    PRIMARY KEY (pid, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    project INTEGER,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, not_before);
"""


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(projects)")}
            for name, kind in (("synced", "TEXT"), ("total", "INTEGER"), ("dirty", "TEXT"), ("retired", "TEXT")):  # stores made by earlier versions
                if name not in columns:
                    conn.execute(f"ALTER TABLE projects ADD COLUMN {name} {kind}")
            task_columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
            for name in ("data_digest", "objects"):
                if name not in task_columns:
                    conn.execute(f"ALTER TABLE tasks ADD COLUMN {name} TEXT")

    # ------------------------------------------------------------ plumbing
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return _Tx(conn)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------ projects
    def get_project(self, pid: int) -> ProjectState | None:
        with self._conn() as c:
            row = c.execute(
                "SELECT pid, label_config, base_version, generation, view_id, synced, total, dirty, retired "
                "FROM projects WHERE pid=?", (pid,)
            ).fetchone()
        return ProjectState(*row) if row else None

    def save_project(self, state: ProjectState) -> None:
        with self._conn() as c:
            c.execute(
                "INSERT INTO projects (pid, label_config, base_version, generation, view_id, synced, total, dirty, "
                "retired, updated) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(pid) DO UPDATE SET "
                "label_config=excluded.label_config, base_version=excluded.base_version, "
                "generation=excluded.generation, view_id=excluded.view_id, synced=excluded.synced, "
                "total=excluded.total, dirty=excluded.dirty, retired=excluded.retired, updated=excluded.updated",
                (state.pid, state.label_config, state.base_version, state.generation, state.view_id,
                 state.synced, state.total, state.dirty, state.retired, time.time()),
            )

    def update_project(self, pid: int, **fields: Any) -> None:
        """Change only the named fields, so two writers of different fields never undo each other.

        (A whole-record save from a stale copy could, for example, put back an old
        generation while a re-rank bumps it.) The project must exist.
        """
        unknown = set(fields) - PROJECT_FIELDS
        if unknown:
            raise ValueError(f"unknown project fields: {sorted(unknown)}")
        if not fields:
            return
        names = list(fields)
        with self._conn() as c:
            c.execute(
                f"UPDATE projects SET {', '.join(f'{n}=?' for n in names)}, updated=? WHERE pid=?",
                (*[fields[n] for n in names], time.time(), pid),
            )

    def projects(self) -> list[int]:
        with self._conn() as c:
            return [r[0] for r in c.execute("SELECT pid FROM projects ORDER BY pid")]

    # ------------------------------------------------------------ written predictions
    def written(self, pid: int, version: str) -> dict[int, tuple[float, int | None]]:
        """task id -> (score, prediction id or None) of the live-version prediction in Label Studio."""
        with self._conn() as c:
            rows = c.execute(
                "SELECT task_id, score, prediction_id FROM written WHERE pid=? AND version=?", (pid, version)
            ).fetchall()
        return {t: (s, p) for t, s, p in rows}

    def set_written(self, pid: int, version: str, scores: Mapping[int, tuple[float, int | None]],
                    replace: bool = False) -> None:
        """Record predictions that now exist in Label Studio; ``replace`` forgets all others first."""
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            if replace:
                c.execute("DELETE FROM written WHERE pid=?", (pid,))
            c.executemany(
                "INSERT INTO written (pid, task_id, version, score, prediction_id) VALUES (?,?,?,?,?) "
                "ON CONFLICT(pid, task_id) DO UPDATE SET version=excluded.version, score=excluded.score, "
                "prediction_id=COALESCE(excluded.prediction_id, CASE WHEN written.version=excluded.version "
                "THEN written.prediction_id END)",
                [(pid, t, version, float(s), p) for t, (s, p) in scores.items()],
            )
            c.execute("COMMIT")

    # ------------------------------------------------------------ tasks
    def save_tasks(self, pid: int, records: Iterable[TaskRecord]) -> None:
        now = time.time()
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            c.executemany(
                "INSERT OR REPLACE INTO tasks (pid, task_id, mining_hash, status, description, error, signals, updated, "
                "data_digest, objects) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(pid, r.task_id, r.mining_hash, r.status, r.description, r.error,
                  json.dumps(r.signals) if r.signals else None, now, r.data_digest,
                  r.objects_json) for r in records],
            )
            c.execute("COMMIT")

    def get_tasks(self, pid: int, task_ids: Iterable[int] | None = None) -> dict[int, TaskRecord]:
        sql = ("SELECT task_id, mining_hash, status, description, error, signals, data_digest, objects "
               "FROM tasks WHERE pid=?")
        with self._conn() as c:
            if task_ids is None:
                rows = c.execute(sql, (pid,)).fetchall()
            else:
                rows = []
                ids = list(task_ids)
                for i in range(0, len(ids), 500):
                    chunk = ids[i:i + 500]
                    rows += c.execute(sql + f" AND task_id IN ({','.join('?' * len(chunk))})",
                                      (pid, *chunk)).fetchall()
        return {r[0]: TaskRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]) if r[5] else {}, r[6], r[7])
                for r in rows}

    def get_signals(self, pid: int) -> dict[int, dict[str, float]]:
        """task -> its recorded signals, for the tasks that have any: what a ranking reads of
        every record (descriptions and objects stay on disk)."""
        with self._conn() as c:
            rows = c.execute("SELECT task_id, signals FROM tasks WHERE pid=? AND signals IS NOT NULL", (pid,)).fetchall()
        return {t: json.loads(raw) for t, raw in rows}

    def delete_tasks(self, pid: int, task_ids: Iterable[int]) -> None:
        ids = [(pid, t) for t in task_ids]
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            c.executemany("DELETE FROM tasks WHERE pid=? AND task_id=?", ids)
            c.executemany("DELETE FROM written WHERE pid=? AND task_id=?", ids)
            c.executemany("DELETE FROM thumbnails WHERE pid=? AND task_id=?", ids)
            c.executemany("DELETE FROM stale_explanations WHERE pid=? AND task_id=?", ids)
            c.execute("COMMIT")

    def task_counts(self, pid: int) -> dict[str, int]:
        with self._conn() as c:
            rows = c.execute("SELECT status, COUNT(*) FROM tasks WHERE pid=? GROUP BY status", (pid,)).fetchall()
        return {status: n for status, n in rows}

    def failures(self, pid: int, limit: int = 20) -> list[tuple[int, str]]:
        with self._conn() as c:
            rows = c.execute(
                "SELECT task_id, error FROM tasks WHERE pid=? AND status='failed' ORDER BY updated DESC LIMIT ?",
                (pid, limit),
            ).fetchall()
        return [(t, e) for t, e in rows]

    # ------------------------------------------------------------ thumbnails (object mining)
    def put_thumbnails(self, pid: int, items: Mapping[int, tuple[int, bytes]]) -> None:
        """Set (replace) each task's thumbnail: its rarest object's slot and JPEG bytes."""
        if not items:
            return
        with self._conn() as c:
            c.executemany(
                "INSERT INTO thumbnails (pid, task_id, slot, jpeg) VALUES (?,?,?,?) "
                "ON CONFLICT(pid, task_id) DO UPDATE SET slot=excluded.slot, jpeg=excluded.jpeg",
                [(pid, int(t), int(slot), bytes(jpeg)) for t, (slot, jpeg) in items.items()])

    def get_thumbnails(self, pid: int, task_ids: Iterable[int]) -> dict[int, tuple[int, bytes]]:
        ids = list(dict.fromkeys(int(t) for t in task_ids))
        out: dict[int, tuple[int, bytes]] = {}
        with self._conn() as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for t, slot, jpeg in c.execute(
                        f"SELECT task_id, slot, jpeg FROM thumbnails WHERE pid=? AND task_id IN ({marks})",
                        (pid, *chunk)):
                    out[int(t)] = (int(slot), bytes(jpeg))
        return out

    # ------------------------------------------------------------ stale explanations (object mining)
    def mark_explanations_stale(self, pid: int, task_ids: Iterable[int]) -> None:
        """Remember that these tasks' predictions hold an explanation older than their mining."""
        rows = [(pid, int(t)) for t in dict.fromkeys(task_ids)]
        if rows:
            with self._conn() as c:  # one transaction: a batch of a sync marks hundreds
                c.execute("BEGIN IMMEDIATE")
                c.executemany("INSERT OR IGNORE INTO stale_explanations (pid, task_id) VALUES (?,?)", rows)
                c.execute("COMMIT")

    def stale_explanations(self, pid: int) -> list[int]:
        """The project's tasks whose prediction awaits its new explanation, in id order."""
        with self._conn() as c:
            return [r[0] for r in c.execute(
                "SELECT task_id FROM stale_explanations WHERE pid=? ORDER BY task_id", (pid,))]

    def clear_stale_explanations(self, pid: int, task_ids: Iterable[int]) -> None:
        """Forget the marks of these tasks only (their explanation was rewritten, or needs none)."""
        rows = [(pid, int(t)) for t in dict.fromkeys(task_ids)]
        if rows:
            with self._conn() as c:
                c.execute("BEGIN IMMEDIATE")
                c.executemany("DELETE FROM stale_explanations WHERE pid=? AND task_id=?", rows)
                c.execute("COMMIT")

    # ------------------------------------------------------------ description cache
    def cache_get(self, keys: Iterable[str]) -> dict[str, tuple[str | None, list[str]]]:
        keys = list(keys)
        out: dict[str, tuple[str | None, list[str]]] = {}
        with self._conn() as c:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                for k, d, kw in c.execute(
                    f"SELECT key, description, keywords FROM cache WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ):
                    out[k] = (d, json.loads(kw))
        return out

    def cache_put(self, items: Mapping[str, tuple[str | None, list[str]]]) -> None:
        with self._conn() as c:
            c.executemany(
                "INSERT OR REPLACE INTO cache (key, description, keywords) VALUES (?,?,?)",
                [(k, d, json.dumps(kw)) for k, (d, kw) in items.items()],
            )

    # ------------------------------------------------------------ jobs
    def enqueue_many(self, kind: str, project: int | None, payloads: list[dict[str, Any]]) -> int:
        """Queue several jobs in one transaction (a big import answers its webhook fast)."""
        now = time.time()
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            c.executemany(
                "INSERT INTO jobs (kind, project, payload, created, updated) VALUES (?,?,?,?,?)",
                [(kind, project, json.dumps(p), now, now) for p in payloads],
            )
            c.execute("COMMIT")
        return len(payloads)

    def enqueue(self, kind: str, project: int | None, payload: dict[str, Any], delay: float = 0.0,
                unique: bool = False) -> int | None:
        """Queue a job; with ``unique``, only when no job of this kind and project is waiting.

        Returns the job id, or None when a waiting job made this one unnecessary
        (how re-ranks are debounced: one pending per project).
        """
        now = time.time()
        with self._conn() as c:
            if unique:
                cur = c.execute(
                    "INSERT INTO jobs (kind, project, payload, not_before, created, updated) "
                    "SELECT ?,?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE kind=? AND project IS ? "
                    "AND status='queued')",
                    (kind, project, json.dumps(payload), now + delay, now, now, kind, project),
                )
                return int(cur.lastrowid) if cur.rowcount else None
            cur = c.execute(
                "INSERT INTO jobs (kind, project, payload, not_before, created, updated) VALUES (?,?,?,?,?,?)",
                (kind, project, json.dumps(payload), now + delay, now, now),
            )
            return int(cur.lastrowid)

    def claim(self, kinds: Iterable[str]) -> Job | None:
        """Take the oldest runnable job of these kinds; atomic across threads and processes."""
        kinds = list(kinds)
        now = time.time()
        with self._conn() as c:
            row = c.execute(
                "UPDATE jobs SET status='running', attempts=attempts+1, updated=? WHERE id = ("
                f"SELECT id FROM jobs WHERE status='queued' AND not_before<=? AND kind IN ({','.join('?' * len(kinds))}) "
                "ORDER BY id LIMIT 1) RETURNING id, kind, project, payload, attempts",
                (now, now, *kinds),
            ).fetchone()
        if row is None:
            return None
        return Job(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def finish(self, job_id: int) -> None:
        with self._conn() as c:
            c.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def fail(self, job_id: int, error: str, retry_in: float | None) -> None:
        """Record a failure; requeue after ``retry_in`` seconds, or keep it as failed when None."""
        with self._conn() as c:
            if retry_in is None:
                c.execute("UPDATE jobs SET status='failed', error=?, updated=? WHERE id=?",
                          (error, time.time(), job_id))
            else:
                c.execute("UPDATE jobs SET status='queued', error=?, not_before=?, updated=? WHERE id=?",
                          (error, time.time() + retry_in, time.time(), job_id))

    def requeue_running(self) -> int:
        """Jobs left 'running' by a process that died are queued again (called at start-up)."""
        with self._conn() as c:
            return c.execute("UPDATE jobs SET status='queued' WHERE status='running'").rowcount

    def job_counts(self) -> dict[str, int]:
        with self._conn() as c:
            return {s: n for s, n in c.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")}

    def failed_jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._conn() as c:
            rows = c.execute(
                "SELECT id, kind, project, attempts, error FROM jobs WHERE status='failed' ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(id=r[0], kind=r[1], project=r[2], attempts=r[3], error=r[4]) for r in rows]


class _Tx:
    """``with store._conn() as c`` yields the thread's connection (autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
