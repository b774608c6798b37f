"""Counters, last errors and per-project locks: in-process, or shared through Redis.

With one process (the embedded mode) plain dicts and thread locks do; with RQ
workers on many machines the web process must see the workers' counters and
two workers must not re-rank one project at once, so both live in Redis.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)


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
    def project_lock(self, pid: int, timeout: float = 600.0, lease: float = 60.0) -> Iterator[None]:
        """Hold the project's lock for as long as the block runs, however long that is.

        The lock is a lease of ``lease`` seconds that a background thread renews while the
        block runs: a re-rank of a big project may take longer than any fixed expiry,
        and a killed holder still frees the project within ``lease`` seconds.
        ``timeout``: how long to wait for the lock.
        """
        # thread_local=False: the renewing thread must see the token the acquiring thread got
        lock = self.client.lock(self._key("lock", pid), timeout=lease, blocking_timeout=timeout,
                                thread_local=False)
        if not lock.acquire():
            raise TimeoutError(f"project {pid} is busy (lock held for over {timeout:.0f}s)")
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(lock, lease, done, pid),
                                   name=f"vlmine-lock-{pid}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()
            try:
                lock.release()
            except Exception:  # lost meanwhile (Redis was unreachable past the lease): nothing to release
                pass

    @staticmethod
    def _renew(lock, lease: float, done: threading.Event, pid: int) -> None:
        while not done.wait(lease / 3):
            try:
                lock.reacquire()
            except Exception as exc:  # Redis unreachable for a moment: try again at the next tick
                log.warning("project %s: renewing the project lock failed (%s)", pid, type(exc).__name__)

def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
