"""The backend state store in Redis, for many workers sharing one Redis.

The :class:`backend.state.base.Store` interface, like :class:`backend.state.sqlite_store.SQLiteStore`
minus the job table (with Redis the jobs live in RQ). Keys, with ``P = {prefix}:store``
and ``{pid}`` a Redis Cluster hash tag so that a project's keys share a slot:

- ``P:projects``           set of project ids;
- ``P:{pid}:project``      hash: label_config, base_version, generation, view_id,
                           synced, updated (a ``None`` field is absent);
- ``P:{pid}:written``      hash task_id -> ``"score|prediction_id|version"``
                           (prediction id empty when unknown; the version comes
                           last so it may itself contain ``|``);
- ``P:{pid}:tasks``        hash task_id -> JSON ``[status, mining_hash,
                           description, error, signals or null]``;
- ``P:{pid}:counts``       hash status -> number of tasks with that status;
- ``P:{pid}:failures``     sorted set task_id scored by the time it was saved as
                           failed (only tasks whose status is ``failed``);
- ``P:{pid}:thumbs``       hash task_id -> ``"slot|base64 JPEG"`` (object mining: the
                           thumbnail of the task's rarest object; text, so a client with
                           ``decode_responses`` reads it too);
- ``P:{pid}:stale_explanations`` set of task ids (object mining: tasks mined again whose
                           prediction still holds their old explanation, until a re-rank
                           rewrites it);
- ``P:cache``              hash cache key -> JSON ``[description, keywords]``.

Every write that SQLite does in a transaction is a Lua script, or several in one
MULTI/EXEC when the input is chunked, so the counters and the failure set never
drift from the task records, even with many writers. The client may have been
made with ``decode_responses`` either way. The store does not own the client:
``close()`` leaves it open.

Reads: ``written`` is one HGETALL (a consistent snapshot; the values are small);
``get_tasks(pid)`` with no ids walks the hash with HSCAN so that a huge project
never blocks Redis, which means a task saved during the walk may show either its
old or its new record (each record is itself whole).
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, TypeVar

from .base import PROJECT_FIELDS, ProjectState, TaskRecord

if TYPE_CHECKING:  # pragma: no cover
    import redis

__all__ = ["RedisStore"]

_CHUNK = 1000  # records per script call / HMGET
_SCAN_COUNT = 2000

# KEYS: tasks, counts, failures. ARGV: now, then per record: task_id, status, value.
_LUA_SAVE_TASKS = """
local tasks, counts, failures = KEYS[1], KEYS[2], KEYS[3]
local now = ARGV[1]
for i = 2, #ARGV, 3 do
  local tid, status, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HGET', tasks, tid)
  local prev = nil
  if old then prev = cjson.decode(old)[1] end
  if prev ~= status then
    if prev then
      if redis.call('HINCRBY', counts, prev, -1) <= 0 then redis.call('HDEL', counts, prev) end
    end
    redis.call('HINCRBY', counts, status, 1)
  end
  redis.call('HSET', tasks, tid, value)
  if status == 'failed' then
    redis.call('ZADD', failures, now, tid)
  elseif prev == 'failed' then
    redis.call('ZREM', failures, tid)
  end
end
return 0
"""

# KEYS: tasks, counts, failures, written, thumbs, stale_explanations. ARGV: task ids.
# Returns how many tasks existed.
_LUA_DELETE_TASKS = """
local tasks, counts, failures, written, thumbs, stale = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local n = 0
for i = 1, #ARGV do
  local tid = ARGV[i]
  local old = redis.call('HGET', tasks, tid)
  if old then
    local prev = cjson.decode(old)[1]
    if redis.call('HINCRBY', counts, prev, -1) <= 0 then redis.call('HDEL', counts, prev) end
    redis.call('HDEL', tasks, tid)
    redis.call('ZREM', failures, tid)
    n = n + 1
  end
  redis.call('HDEL', written, tid)
  redis.call('HDEL', thumbs, tid)
  redis.call('SREM', stale, tid)
end
return n
"""

# KEYS: written. ARGV: version, then per task: task_id, score, prediction id ('' = unknown).
# An unknown prediction id keeps the one already recorded, but only under the same version
# (SQLite: prediction_id = COALESCE(new, CASE WHEN old.version = new.version THEN old.id END)).
_LUA_SET_WRITTEN = """
local written, version = KEYS[1], ARGV[1]
for i = 2, #ARGV, 3 do
  local tid, score, pred = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if pred == '' then
    local old = redis.call('HGET', written, tid)
    if old then
      local a = string.find(old, '|', 1, true)
      local b = a and string.find(old, '|', a + 1, true)
      if b and string.sub(old, b + 1) == version then pred = string.sub(old, a + 1, b - 1) end
    end
  end
  redis.call('HSET', written, tid, score .. '|' .. pred .. '|' .. version)
end
return 0
"""

# KEYS: failures, tasks. ARGV: stop index for ZREVRANGE. Returns task_id, record, task_id, record, ...
_LUA_FAILURES = """
local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]))
local out = {}
for _, tid in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[2], tid)
  if rec then
    out[#out + 1] = tid
    out[#out + 1] = rec
  end
end
return out
"""

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], n: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _str(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _pack_written(score: float, pred: int | None, version: str) -> str:
    return f"{float(score)!r}|{'' if pred is None else int(pred)}|{version}"


def _unpack_written(value: bytes | str) -> tuple[float, int | None, str]:
    score, pred, version = _str(value).split("|", 2)
    return float(score), (int(pred) if pred else None), version


def _pack_task(r: TaskRecord) -> str:
    packed = [r.status, r.mining_hash, r.description, r.error, r.signals or None, r.data_digest]
    if r.objects_json is not None:  # only object mining writes it: other records keep their bytes
        packed.append(r.objects_json)
    return json.dumps(packed)


def _unpack_task(task_id: int, value: bytes | str) -> TaskRecord:
    fields = json.loads(value)
    status, mining_hash, description, error, signals = fields[:5]
    digest = fields[5] if len(fields) > 5 else None  # records written before the digest existed
    objects = fields[6] if len(fields) > 6 else None
    return TaskRecord(task_id, mining_hash, status, description, error, signals or {}, digest, objects)


class RedisStore:
    """Projects, written predictions, task records and the description cache in Redis."""

    def __init__(self, client: "redis.Redis", prefix: str = "vlmine") -> None:
        self._client = client
        self._prefix = prefix
        self._base = f"{prefix}:store"
        self._save_tasks = client.register_script(_LUA_SAVE_TASKS)
        self._delete_tasks = client.register_script(_LUA_DELETE_TASKS)
        self._set_written = client.register_script(_LUA_SET_WRITTEN)
        self._failures = client.register_script(_LUA_FAILURES)

    # ------------------------------------------------------------ plumbing
    def _key(self, pid: int, what: str) -> str:
        return f"{self._base}:{{{int(pid)}}}:{what}"

    def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""

    # ------------------------------------------------------------ projects
    def get_project(self, pid: int) -> ProjectState | None:
        raw = self._client.hgetall(self._key(pid, "project"))
        if not raw:
            return None
        h = {_str(k): _str(v) for k, v in raw.items()}
        view_id = h.get("view_id")
        return ProjectState(
            pid=int(pid),
            label_config=h.get("label_config"),
            base_version=h.get("base_version"),
            generation=int(h.get("generation", 0)),
            view_id=int(view_id) if view_id is not None else None,
            synced=h.get("synced"),
            total=int(h["total"]) if h.get("total") is not None else None,
            dirty=h.get("dirty"),
            retired=h.get("retired"),
        )

    def save_project(self, state: ProjectState) -> None:
        fields: dict[str, Any] = {
            "label_config": state.label_config,
            "base_version": state.base_version,
            "generation": int(state.generation),
            "view_id": None if state.view_id is None else int(state.view_id),
            "synced": state.synced,
            "total": None if state.total is None else int(state.total),
            "dirty": state.dirty,
            "retired": state.retired,
            "updated": repr(time.time()),
        }
        key = self._key(state.pid, "project")
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={k: v for k, v in fields.items() if v is not None})
        pipe.sadd(f"{self._base}:projects", int(state.pid))
        pipe.execute()

    def update_project(self, pid: int, **fields: Any) -> None:
        unknown = set(fields) - PROJECT_FIELDS
        if unknown:
            raise ValueError(f"unknown project fields: {sorted(unknown)}")
        if not fields:
            return
        key = self._key(pid, "project")
        pipe = self._client.pipeline(transaction=True)
        present = {k: (int(v) if isinstance(v, bool) else v) for k, v in fields.items() if v is not None}
        present["updated"] = repr(time.time())
        pipe.hset(key, mapping=present)
        gone = [k for k, v in fields.items() if v is None]
        if gone:
            pipe.hdel(key, *gone)
        pipe.execute()

    def projects(self) -> list[int]:
        return sorted(int(p) for p in self._client.smembers(f"{self._base}:projects"))

    # ------------------------------------------------------------ written predictions
    def written(self, pid: int, version: str) -> dict[int, tuple[float, int | None]]:
        """task id -> (score, prediction id or None) of the live-version prediction in Label Studio."""
        out: dict[int, tuple[float, int | None]] = {}
        if version is None:
            return out
        for tid, value in self._client.hgetall(self._key(pid, "written")).items():
            score, pred, v = _unpack_written(value)
            if v == version:
                out[int(tid)] = (score, pred)
        return out

    def set_written(self, pid: int, version: str, scores: Mapping[int, tuple[float, int | None]],
                    replace: bool = False) -> None:
        """Record predictions that now exist in Label Studio; ``replace`` forgets all others first."""
        if version is None:
            raise ValueError("set_written needs a version")
        key = self._key(pid, "written")
        items = list(scores.items())
        pipe = self._client.pipeline(transaction=True)
        if replace:
            # Everything was forgotten first, so nothing is there to COALESCE with.
            pipe.delete(key)
            for chunk in _chunks(items):
                pipe.hset(key, mapping={int(t): _pack_written(s, p, version) for t, (s, p) in chunk})
        else:
            for chunk in _chunks(items):
                args: list[Any] = [version]
                for t, (s, p) in chunk:
                    args.extend((int(t), repr(float(s)), "" if p is None else int(p)))
                self._set_written(keys=[key], args=args, client=pipe)
        if len(pipe):
            pipe.execute()

    # ------------------------------------------------------------ tasks
    def save_tasks(self, pid: int, records: Iterable[TaskRecord]) -> None:
        rows = [(int(r.task_id), r.status, _pack_task(r)) for r in records]
        if not rows:
            return
        keys = [self._key(pid, "tasks"), self._key(pid, "counts"), self._key(pid, "failures")]
        now = repr(time.time())
        pipe = self._client.pipeline(transaction=True)
        for chunk in _chunks(rows):
            args: list[Any] = [now]
            for row in chunk:
                args.extend(row)
            self._save_tasks(keys=keys, args=args, client=pipe)
        pipe.execute()

    def get_tasks(self, pid: int, task_ids: Iterable[int] | None = None) -> dict[int, TaskRecord]:
        key = self._key(pid, "tasks")
        if task_ids is None:
            out: dict[int, TaskRecord] = {}
            for tid, value in self._client.hscan_iter(key, count=_SCAN_COUNT):
                t = int(tid)
                out[t] = _unpack_task(t, value)
            return out
        ids = list(dict.fromkeys(int(t) for t in task_ids))
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for chunk in _chunks(ids):
            pipe.hmget(key, list(chunk))
        values = [v for part in pipe.execute() for v in part]
        return {t: _unpack_task(t, v) for t, v in zip(ids, values) if v is not None}

    def get_signals(self, pid: int) -> dict[int, dict[str, float]]:
        """task -> its recorded signals, for the tasks that have any (a ranking's read)."""
        return {t: r.signals for t, r in self.get_tasks(pid).items() if r.signals}

    def delete_tasks(self, pid: int, task_ids: Iterable[int]) -> None:
        ids = list(dict.fromkeys(int(t) for t in task_ids))
        if not ids:
            return
        keys = [self._key(pid, "tasks"), self._key(pid, "counts"), self._key(pid, "failures"),
                self._key(pid, "written"), self._key(pid, "thumbs"), self._key(pid, "stale_explanations")]
        pipe = self._client.pipeline(transaction=True)
        for chunk in _chunks(ids):
            self._delete_tasks(keys=keys, args=list(chunk), client=pipe)
        pipe.execute()

    def task_counts(self, pid: int) -> dict[str, int]:
        raw = self._client.hgetall(self._key(pid, "counts"))
        return {_str(s): int(n) for s, n in raw.items() if int(n) > 0}

    def failures(self, pid: int, limit: int = 20) -> list[tuple[int, str]]:
        limit = int(limit)
        if limit == 0:
            return []
        stop = -1 if limit < 0 else limit - 1  # SQLite: a negative LIMIT means no limit
        flat = self._failures(keys=[self._key(pid, "failures"), self._key(pid, "tasks")], args=[stop])
        out: list[tuple[int, str]] = []
        for i in range(0, len(flat), 2):
            t = int(flat[i])
            rec = _unpack_task(t, flat[i + 1])
            out.append((t, rec.error))
        return out

    # ------------------------------------------------------------ description cache
    # ------------------------------------------------------------ thumbnails (object mining)
    def put_thumbnails(self, pid: int, items: Mapping[int, tuple[int, bytes]]) -> None:
        """Set (replace) each task's thumbnail: its rarest object's slot and JPEG bytes."""
        if not items:
            return
        packed = [(int(t), f"{int(slot)}|{base64.b64encode(bytes(jpeg)).decode('ascii')}")
                  for t, (slot, jpeg) in items.items()]
        pipe = self._client.pipeline(transaction=True)
        for chunk in _chunks(packed):
            pipe.hset(self._key(pid, "thumbs"), mapping=dict(chunk))
        pipe.execute()

    def get_thumbnails(self, pid: int, task_ids: Iterable[int]) -> dict[int, tuple[int, bytes]]:
        ids = list(dict.fromkeys(int(t) for t in task_ids))
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for chunk in _chunks(ids):
            pipe.hmget(self._key(pid, "thumbs"), list(chunk))
        values = [v for part in pipe.execute() for v in part]
        out: dict[int, tuple[int, bytes]] = {}
        for t, v in zip(ids, values):
            if v is not None:
                slot, _, data = _str(v).partition("|")
                out[t] = (int(slot), base64.b64decode(data))
        return out

    # ------------------------------------------------------------ stale explanations (object mining)
    def mark_explanations_stale(self, pid: int, task_ids: Iterable[int]) -> None:
        """Remember that these tasks' predictions hold an explanation older than their mining."""
        self._change_stale(pid, task_ids, "sadd")

    def stale_explanations(self, pid: int) -> list[int]:
        """The project's tasks whose prediction awaits its new explanation, in id order."""
        return sorted(int(t) for t in self._client.smembers(self._key(pid, "stale_explanations")))

    def clear_stale_explanations(self, pid: int, task_ids: Iterable[int]) -> None:
        """Forget the marks of these tasks only (their explanation was rewritten, or needs none)."""
        self._change_stale(pid, task_ids, "srem")

    def _change_stale(self, pid: int, task_ids: Iterable[int], command: str) -> None:
        """Add (``sadd``) or remove (``srem``) task ids in the project's set, in one transaction."""
        ids = list(dict.fromkeys(int(t) for t in task_ids))
        if not ids:
            return
        pipe = self._client.pipeline(transaction=True)
        for chunk in _chunks(ids):
            getattr(pipe, command)(self._key(pid, "stale_explanations"), *chunk)
        pipe.execute()

    def cache_get(self, keys: Iterable[str]) -> dict[str, tuple[str | None, list[str]]]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        hkey = f"{self._base}:cache"
        pipe = self._client.pipeline(transaction=False)
        for chunk in _chunks(keys):
            pipe.hmget(hkey, list(chunk))
        values = [v for part in pipe.execute() for v in part]
        out: dict[str, tuple[str | None, list[str]]] = {}
        for k, v in zip(keys, values):
            if v is not None:
                d, kw = json.loads(v)
                out[k] = (d, kw)
        return out

    def cache_put(self, items: Mapping[str, tuple[str | None, list[str]]]) -> None:
        rows = [(k, json.dumps([d, list(kw)])) for k, (d, kw) in items.items()]
        if not rows:
            return
        hkey = f"{self._base}:cache"
        pipe = self._client.pipeline(transaction=False)
        for chunk in _chunks(rows):
            pipe.hset(hkey, mapping=dict(chunk))
        pipe.execute()
