"""Counters, last errors and per-project locks: in-process, or shared through Redis.

With one process (the embedded mode) plain dicts and thread locks do; with RQ
workers on many machines the web process must see the workers' counters and
two workers must not re-rank one project at once, so both live in Redis.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator


class LocalCoordination:
    def __init__(self) -> None:
        self._counters: dict[str, int] = defaultdict(int)
        self._errors: dict[str, str] = {}
        self._locks: dict[int, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def incr(self, name: str, amount: int = 1) -> None:
        with self._guard:
            self._counters[name] += amount

    def counters(self) -> dict[str, int]:
        with self._guard:
            return dict(self._counters)

    def set_error(self, key: str, message: str) -> None:
        with self._guard:
            self._errors[key] = message

    def errors(self) -> dict[str, str]:
        with self._guard:
            return dict(self._errors)

    @contextmanager
    def project_lock(self, pid: int, timeout: float = 600.0) -> Iterator[None]:
        with self._guard:
            lock = self._locks[pid]
        if not lock.acquire(timeout=timeout):
            raise TimeoutError(f"project {pid} is busy (lock held for over {timeout:.0f}s)")
        try:
            yield
        finally:
            lock.release()


class RedisCoordination:
    def __init__(self, client, prefix: str = "vlmine") -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    def incr(self, name: str, amount: int = 1) -> None:
        self.client.hincrby(self._key("counters"), name, amount)

    def counters(self) -> dict[str, int]:
        raw = self.client.hgetall(self._key("counters"))
        return {_s(k): int(v) for k, v in raw.items()}

    def set_error(self, key: str, message: str) -> None:
        self.client.hset(self._key("errors"), key, message)

    def errors(self) -> dict[str, str]:
        return {_s(k): _s(v) for k, v in self.client.hgetall(self._key("errors")).items()}

    @contextmanager
    def project_lock(self, pid: int, timeout: float = 600.0) -> Iterator[None]:
        # the lock expires on its own if its holder dies (a killed worker never blocks a project)
        lock = self.client.lock(self._key("lock", pid), timeout=timeout, blocking_timeout=timeout)
        if not lock.acquire():
            raise TimeoutError(f"project {pid} is busy (lock held for over {timeout:.0f}s)")
        try:
            yield
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile: nothing to release
                pass


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
