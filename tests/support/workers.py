"""RQ workers as real processes for the tests that run them (on a Redis the tests started:
the ``redis_db_url`` fixture, or a ``tests.support.redis_server.RedisServer`` of their own)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    # a session of its own: killing the group takes RQ's scheduler child along, as a dying machine would
    return subprocess.Popen([sys.executable, "-m", "backend.worker", *args], cwd=ROOT, env=full,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(20)


def wait_until(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def recount(engine, scope: str) -> Counter:
    """Every keyword's count over the scope's tasks, straight from the index."""
    kws = engine.index.get_many(scope, range(1, 10_000))
    return Counter(k for v in kws.values() for k in v)
