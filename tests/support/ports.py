"""Free loopback ports for the servers the tests start.

Every server a test starts listens on a port the kernel reports free at that moment, never on a
fixed one: a fixed port may already belong to a developer's own server, or to a second test run
on the same machine.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
