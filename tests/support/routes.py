"""The answer of a loopback test server whose paths are a table: ``routes[path]`` is
``(status, headers, body)``; a path the table lacks gets 404. Shared by the image fetcher's
server (``loopback.py``), the rebinding servers (``rebinding.py``) and the download servers of
the Label Studio tests."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Mapping

Routes = Mapping[str, tuple[int, Mapping[str, str], bytes]]


def answer_from(handler: BaseHTTPRequestHandler, routes: Routes) -> None:
    """Send ``routes``' entry for the request's path (its query left out), or a 404."""
    status, headers, body = routes.get(handler.path.split("?", 1)[0], (404, {}, b"not found"))
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
