"""Redis servers the tests start themselves, and the databases they hand out.

The tests never use a Redis they did not start. A developer's Redis on the default port may
hold real data, and what the RQ tests leave behind (queues, registries, worker keys at fixed
names) cannot be confined to a key prefix, so it is cleared with FLUSHDB: that is safe only on
a server of our own. Each test run therefore starts one ``redis-server`` on first use (a
free loopback port, a temporary directory, no persistence) and stops it at the end
(``redis_server`` in ``tests/conftest.py``); a test that restarts Redis, or needs its
append-only file, starts another ``RedisServer`` of its own.

On that shared server:

- db ``PREFIX_DB`` is shared by the tests that keep to a unique key prefix (keyword index,
  state stores, locks); each deletes its own prefix afterwards;
- every other db is lent whole to one test at a time (``RedisServer.lend_database``), emptied
  before and after: the tests that run RQ.

``REDIS_TEST_URL`` is set to that shared server (by the fixture) and never read to find one.
This module is the one place that starts a ``redis-server`` or empties a database
(tests/test_isolation.py checks both).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import redis

from tests.support.ports import free_port

REDIS_TEST_URL = "REDIS_TEST_URL"  # the shared server's PREFIX_DB, for child processes and readers
PREFIX_DB = 0
SHARED_SERVER_DATABASES = 32  # PREFIX_DB plus 31 to lend; lending cycles, so this is no limit on tests
START_TIMEOUT = 15.0


class RedisStartError(RuntimeError):
    """redis-server is missing or did not come up: the tests that need it fail, never skip."""


class RedisServer:
    """One ``redis-server`` process on a free loopback port, its files in ``data_dir``.

    ``append_only`` keeps an fsync'd append-only file, so that a ``stop()`` then ``start()``
    (same port, same files) restarts Redis with its data, as a real deployment would.
    """

    def __init__(self, data_dir: Path | str, *, append_only: bool = False, databases: int = 16) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "redis.log"
        self.append_only = append_only
        self.databases = databases
        self.port: int | None = None  # chosen by the first start, kept by restarts
        self.proc: subprocess.Popen | None = None
        self._lendable = itertools.cycle(range(PREFIX_DB + 1, databases))

    # -------------------------------------------------------------- process
    def start(self) -> RedisServer:
        """Start, or restart on the same port and files; return once this process answers PING."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RedisStartError("redis-server is not installed (bash scripts/test.sh installs it: "
                                  "apt-get install redis-server)")
        # a free port can be taken between the probe and the bind: a fresh start tries another
        for _ in range(1 if self.port else 3):
            port = self.port or free_port()
            self.proc = subprocess.Popen(self._command(exe, port), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._answers(port):
                self.port = port
                return self
            self._end_process()
        raise RedisStartError(f"redis-server did not start in {self.data_dir}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (Redis shuts down cleanly: the append-only file is complete), then wait."""
        self._end_process()

    def _command(self, exe: str, port: int) -> list[str]:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.append_only
                       else ["--appendonly", "no"])
        return [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--logfile", str(self.log_path), "--save", "", "--databases", str(self.databases),
                *persistence]

    def _answers(self, port: int) -> bool:
        """True once the server on ``port`` answers and is this very process (not a stranger)."""
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False  # e.g. the port was taken after all
                try:
                    if client.info("server")["process_id"] == self.proc.pid:
                        return True
                    return False  # someone else's server holds the port
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def _end_process(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -------------------------------------------------------------- clients
    def url(self, db: int = PREFIX_DB) -> str:
        if self.port is None:
            raise RuntimeError("the Redis server was never started")
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = PREFIX_DB, **kwargs) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), **kwargs)

    @contextlib.contextmanager
    def lend_database(self) -> Iterator[str]:
        """A whole database of this server, empty, for one test; emptied again when it is done.

        The databases other than ``PREFIX_DB`` are lent in turn, and each is emptied both when
        lent and when given back, so what one test leaves never reaches the next.
        """
        db = next(self._lendable)
        client = self.client(db)
        try:
            client.flushdb()
            yield self.url(db)
        finally:
            try:
                client.flushdb()
            finally:
                client.close()
