"""A loopback HTTP server that serves images from memory, for tests and benchmarks."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ImageServer:
    """``GET <path>`` answers ``files[path]`` (query strings ignored), else 404.

    ``delay`` seconds pass before each answer (a storage round trip); ``max_in_flight`` is
    the most requests it has served at once; ``requests`` lists every path asked for, in
    order (a test asserts that a page loads no image).
    """

    def __init__(self, files: dict[str, bytes], delay: float = 0.0) -> None:
        served = files
        server = self
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without TCP_NODELAY a keep-alive client waits
            # for its delayed ACK (about 40 ms) before the body arrives
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                with server._lock:
                    server.requests.append(self.path)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if delay:
                        time.sleep(delay)
                    self._answer()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self) -> None:
                data = served.get(self.path.split("?", 1)[0])
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                # a browser (Label Studio's labeling view) loads the image cross-origin
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
