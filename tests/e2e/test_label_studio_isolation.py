"""Label Studio, as the tests start it, holds no connection to a Redis.

Its community edition connects at start to the Redis of its RQ queues, hard-wired to
localhost's default port, and keeps the connection open: on a developer's machine that is
their own Redis. tests/support/label_studio.py starts it with settings that point those queues
at a socket file that does not exist; this checks the running server's own sockets (read from
/proc) and the settings module it runs with.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from redis.connection import Connection

from tests.support.label_studio import NO_REDIS_SETTINGS_MODULE

pytestmark = pytest.mark.e2e

DEFAULT_REDIS_PORT = Connection().port
ESTABLISHED = "01"


def process_group(pgid: int) -> list[int]:
    """Every live process of the group (Label Studio runs in a group of its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def peer_ports(pids: list[int]) -> set[int]:
    """The remote ports of the established TCP connections these processes hold."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)]
        except OSError:
            continue
        inodes.update(link[8:-1] for link in links if link.startswith("socket:["))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == ESTABLISHED and cols[9] in inodes:
                ports.add(int(cols[2].rsplit(":", 1)[1], 16))
    return ports


def test_label_studio_runs_without_any_redis(label_studio):
    label_studio.api("GET", "/api/projects/")  # a request served: its modules are loaded by now
    pids = process_group(label_studio.process.pid)
    assert label_studio.process.pid in pids
    assert DEFAULT_REDIS_PORT not in peer_ports(pids)
    environ = Path(f"/proc/{label_studio.process.pid}/environ").read_bytes().split(b"\0")
    assert f"DJANGO_SETTINGS_MODULE={NO_REDIS_SETTINGS_MODULE}".encode() in environ
