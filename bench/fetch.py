"""Cost of a guarded http image fetch: ``ImageFetcher.fetch_bytes`` against a loopback server.

    .venv/bin/python bench/fetch.py
    .venv/bin/python bench/fetch.py --fetches 2000 --threads 1,4 --kb 60

A ThreadingHTTPServer on 127.0.0.1 (HTTP/1.1, keep-alive) serves one JPEG-sized body; the
URL names ``localhost``, so every fetch resolves a name, checks its addresses and
connects (or reuses a kept-alive connection). Per thread count: fetches per second, the
median and 95th percentile milliseconds of one fetch, the process's CPU milliseconds per
fetch (client and server: steadier than the wall clock on a shared machine), and how many TCP connections the
server accepted (keep-alive working: one per thread, plus one for the warm-up in the main
thread). Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.pipeline.images import ImageFetcher  # noqa: E402


def serve(body: bytes) -> tuple[ThreadingHTTPServer, dict]:
    counts = {"connections": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            counts["connections"] += 1
            super().setup()
            # headers and body go out in two writes: without this, Nagle's algorithm and
            # the client's delayed ACK add 40 ms to every response on loopback
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, counts


def run(url: str, fetches: int, threads: int, size: int) -> dict:
    fetcher = ImageFetcher(allow_private=True)
    times: list[float] = []

    def one(_: int) -> None:
        start = time.perf_counter()
        assert len(fetcher.fetch_bytes(url)) == size
        times.append(time.perf_counter() - start)

    for _ in range(20 * threads):  # warm: connections and code paths
        one(0)
    times.clear()
    start, cpu_start = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(fetches)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    ordered = sorted(times)
    return {"threads": threads, "fetches_per_s": round(fetches / wall, 1),
            "cpu_ms_per_fetch": round(cpu / fetches * 1000, 3),
            "median_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetches", type=int, default=1000)
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--kb", type=int, default=60, help="body size in KiB")
    args = parser.parse_args()
    body = b"\xff" * (args.kb * 1024)
    results = []
    for threads in (int(t) for t in args.threads.split(",")):
        server, counts = serve(body)
        url = f"http://localhost:{server.server_address[1]}/img.jpg"
        row = run(url, args.fetches, threads, len(body))
        row["connections"] = counts["connections"]
        results.append(row)
        server.shutdown()
        server.server_close()
    print(json.dumps({"bench": "fetch", "fetches": args.fetches, "kb": args.kb, "results": results,
                      "python": platform.python_version(), "machine": platform.machine()}))


if __name__ == "__main__":
    main()
