"""Loopback servers for the image fetcher's tests: an HTTP server with a route per kind of
trouble (redirects, trickles, bombs, truncated files) and an S3 bucket (moto).

The fixtures ``http_url`` and ``s3`` are registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from PIL import Image

from tests.support.routes import answer_from
from tests.support.s3 import moto_s3


def png(size=(40, 30), colour=(200, 30, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def noise(fmt: str, size=(96, 96)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(buffer, format=fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (valid CRC)."""
    data = bytearray(png((4, 4)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


RED_PNG = png()
ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/red.png": (200, {"Content-Type": "image/png"}, RED_PNG),
    "/text": (200, {"Content-Type": "text/plain"}, b"hello, not an image"),
    "/big.bin": (200, {}, b"x" * 5000),
    "/truncated.png": (200, {}, noise("PNG")[:-600]),
    "/truncated.jpg": (200, {}, noise("JPEG")[:-800]),
    "/corrupt.png": (200, {}, b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20),
    "/bomb.png": (200, {}, png_claiming(100_000, 100_000)),  # Pillow's own error (> 2x its limit)
    "/bomb-warn.png": (200, {}, png_claiming(10_000, 10_000)),  # only a Pillow warning: our check
    "/empty": (200, {}, b""),
}


REDIRECTS = {
    "/redirect": "/red.png",
    "/to-metadata": "http://169.254.169.254/latest/meta-data/",
    "/to-bad-port": "http://127.0.0.1:99999/red.png",
    "/to-bad-host": "http://[bad/red.png",
}


TRICKLE = {"sent": 0, "left": threading.Event()}


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        Handler.seen.append({"path": self.path, **dict(self.headers)})
        path = self.path.split("?", 1)[0]
        if path == "/slow":
            time.sleep(1.0)
        if path == "/streamed":  # no Content-Length: the cap must hold while reading
            self.send_response(200)
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"y" * 1000)
            return
        if path == "/trickle":  # 10 MB announced, then a byte every 20 ms (55 hours): never a read timeout
            self.send_response(200)
            self.send_header("Content-Length", str(10**7))
            self.end_headers()
            try:
                for _ in range(10**7):
                    self.wfile.write(b"t")
                    self.wfile.flush()
                    TRICKLE["sent"] += 1
                    time.sleep(0.02)
            except OSError:  # the client gave up
                TRICKLE["left"].set()
            return
        if path in REDIRECTS:
            self.send_response(302)
            target = REDIRECTS[path]
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer_from(self, ROUTES)


def serve_http() -> Iterator[str]:
    """The loopback HTTP server's base URL while the generator runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def serve_s3() -> Iterator[str]:
    """A moto S3 endpoint holding the bucket ``pics``."""
    objects = {"pics": {"cats/red cat?.png": RED_PNG, "big.bin": b"z" * 5000}}
    with moto_s3(objects) as (endpoint, _):
        yield endpoint
