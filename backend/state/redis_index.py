"""The keyword index in Redis, for many workers on many machines sharing one Redis.

The ``backend.mining.keyword_index.KeywordIndex`` interface; every write is one Lua script call,
atomic on the server, so two workers writing at once cannot corrupt the counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..mining.keyword_index import IndexArrays, KeywordIndex
from .keyword_blobs import BLOB_DTYPE, WRITE_CHUNK, build_arrays, chunked, prepare_batch, unique_ints

if TYPE_CHECKING:  # pragma: no cover
    import redis


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
        for chunk in chunked(prepare_batch(items), WRITE_CHUNK):
            args: list[str | int] = [len(chunk)]
            for tid, names in chunk:
                args.extend((tid, len(names), *names))
            self._upsert(keys=list(keys), args=args)

    def delete(self, scope: str, task_ids: Iterable[int]) -> int:
        tkey, dfkey = self._keys(scope)[:2]
        ids = unique_ints(task_ids)
        return sum(int(self._delete(keys=[tkey, dfkey], args=c)) for c in chunked(ids, WRITE_CHUNK))

    def drop_scope(self, scope: str) -> None:
        self._client.unlink(*self._keys(scope))

    # -- reads ---------------------------------------------------------------------------

    def get_many(self, scope: str, task_ids: Iterable[int]) -> dict[int, list[str]]:
        tkey, _, _, namekey, _ = self._keys(scope)
        ids = unique_ints(task_ids)
        if not ids:
            return {}
        blobs = self._client.hmget(tkey, ids)
        arrays = {t: np.frombuffer(b, BLOB_DTYPE) for t, b in zip(ids, blobs) if b is not None}
        all_ids = sorted(set().union(*(a.tolist() for a in arrays.values()))) if arrays else []
        names = dict(zip(all_ids, self._client.hmget(namekey, all_ids))) if all_ids else {}
        return {t: sorted(names[int(k)].decode() for k in a) for t, a in arrays.items()}

    def contains(self, scope: str, task_ids: Iterable[int]) -> set[int]:
        tkey = self._keys(scope)[0]
        ids = unique_ints(task_ids)
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
        return build_arrays(order, [blobs[t] for t in order], vocab)

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
