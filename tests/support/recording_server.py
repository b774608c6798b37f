"""Loopback HTTP servers that record every request that reaches them, for tests that must show
what the backend sent to a Label Studio (or sent nothing at all).

Each request is kept as ``(method, path, JSON body or None)``. :class:`RecordingServer` answers
by ``answer`` (by default 404 to everything, which is what a Label Studio that knows nothing of
a project says); :class:`RecordingProxy` passes every request on to a real Label Studio and
its answer back. :meth:`RecordingServer.stop` takes the server down so connections are refused,
and :meth:`RecordingServer.start` brings it back on the same port, for tests of what happens
while Label Studio is away.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import requests

from tests.support.ports import free_port

#: (method, path, body) -> (status, JSON-able reply)
Answer = Callable[[str, str, Any], tuple[int, Any]]


def not_found(method: str, path: str, body: Any) -> tuple[int, Any]:
    return 404, {"detail": "Not found."}


class RecordingServer:
    def __init__(self, answer: Answer = not_found) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str, Any]] = []
        self._answer = answer
        self._server: ThreadingHTTPServer | None = None

    def reply(self, method: str, path: str, headers: dict[str, str], raw: bytes,
              body: Any) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, content) of the answer to one request; ``body`` is ``raw`` as JSON."""
        status, reply = self._answer(method, path, body)
        return status, {"Content-Type": "application/json"}, json.dumps(reply).encode()

    def start(self) -> "RecordingServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                server.requests.append((self.command, self.path, body))
                status, headers, data = server.reply(self.command, self.path, dict(self.headers.items()), raw, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _record

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "RecordingServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def writes(self) -> list[tuple[str, str, Any]]:
        """The requests that would change something in Label Studio (anything but GET)."""
        return [r for r in self.requests if r[0] != "GET"]


class RecordingProxy(RecordingServer):
    """In front of ``upstream`` (a real Label Studio): the backend pointed at :attr:`url` talks to
    it as usual, and the test reads which requests it sent."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self._upstream = upstream

    def reply(self, method: str, path: str, headers: dict[str, str], raw: bytes,
              body: Any) -> tuple[int, dict[str, str], bytes]:
        sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        answer = requests.request(method, self._upstream + path, headers=sent, data=raw or None,
                                  allow_redirects=False, timeout=120)
        # answer.content is decoded: it goes on without Content-Encoding
        return answer.status_code, {k: answer.headers[k] for k in ("Content-Type", "Location")
                                    if k in answer.headers}, answer.content
