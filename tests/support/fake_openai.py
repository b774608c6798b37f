"""A small OpenAI-compatible chat server on loopback for tests.

It answers ``POST /v1/chat/completions``:

* a message with an ``image_url`` part gets the description mapped to that image, looked
  up by the sha256 of the decoded data-URL bytes (``by_hash``) or else by the image's
  dominant colour, the nearest entry of ``by_colour`` (colour name -> description);
* a text-only message gets ``complete_fn(prompt)``, by default a JSON list of the words of
  the known description found in the prompt (or of the prompt's last line).

It can fail the first ``fail_first`` calls with ``fail_status`` (and a ``Retry-After``),
sleep ``delay`` seconds per call, demand an API key, and it records every request
(headers and JSON body) and the most requests it ever had in flight at once.

    with FakeOpenAI(by_colour={"red": "a red bus"}) as server:
        OpenAIDescriber(server.base_url, "fake-vlm").describe([image], "Describe.")
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

COLOURS = {
    "red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220),
    "yellow": (230, 220, 30), "white": (250, 250, 250), "black": (5, 5, 5),
    "orange": (240, 140, 20), "purple": (130, 30, 160), "gray": (128, 128, 128),
}

_STOP = {"a", "an", "the", "of", "on", "in", "with", "and", "at", "near", "is", "are", "to"}


def dominant_colour(data: bytes, names: list[str]) -> str:
    """The name in ``names`` whose RGB is nearest to the image's mean colour."""
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(data)) as image:
        mean = ImageStat.Stat(image.convert("RGB")).mean
    return min(names, key=lambda name: sum((a - b) ** 2 for a, b in zip(mean, COLOURS[name])))


def keywords_of(text: str) -> list[str]:
    words = re.findall(r"[a-z][a-z-]*", text.lower())
    return list(dict.fromkeys(w for w in words if w not in _STOP))


class FakeOpenAI:
    def __init__(
        self,
        by_colour: dict[str, str] | None = None,
        by_hash: dict[str, str] | None = None,
        complete_fn: Callable[[str], str] | None = None,
        api_key: str | None = None,
        fail_first: int = 0,
        fail_status: int = 429,
        retry_after: str | None = "0",
        delay: float = 0.0,
        refuse_colours: set[str] | frozenset[str] = frozenset(),
        describe_fn: Callable[[bytes], str | None] | None = None,
    ) -> None:
        self.by_colour = dict(by_colour or {})
        # asked first about every image (its bytes as sent); None: by_hash, then by_colour answer
        self.describe_fn = describe_fn
        self.refuse_colours = set(refuse_colours)  # images mostly of these colours get a 400
        self.by_hash = dict(by_hash or {})
        self.complete_fn = complete_fn or self._default_complete
        self.api_key = api_key
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.calls = 0
        self.in_flight = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- answers
    def _default_complete(self, prompt: str) -> str:
        for description in list(self.by_colour.values()) + list(self.by_hash.values()):
            if description in prompt:
                return json.dumps(keywords_of(description))
        return json.dumps(keywords_of(prompt.strip().splitlines()[-1] if prompt.strip() else ""))

    def _answer(self, body: dict[str, Any]) -> str:
        message = body["messages"][-1]
        content = message["content"]
        if isinstance(content, str):
            return self.complete_fn(content)
        images = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        text = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
        if not images:
            return self.complete_fn(text)
        data = base64.b64decode(images[0].split(",", 1)[1])
        if self.describe_fn is not None:
            described = self.describe_fn(data)
            if described is not None:
                return described
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.by_hash:
            return self.by_hash[digest]
        if self.by_colour:
            return self.by_colour[dominant_colour(data, list(self.by_colour))]
        return "an image"

    def refused(self, body: dict[str, Any]) -> bool:
        content = body["messages"][-1]["content"]
        if not self.refuse_colours or isinstance(content, str):
            return False
        urls = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        palette = sorted(set(self.by_colour) | self.refuse_colours)
        return any(dominant_colour(base64.b64decode(u.split(",", 1)[1]), palette) in self.refuse_colours
                   for u in urls)

    # ------------------------------------------------------------------ server
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body in two writes: no delayed-ACK stall
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with fake._lock:
                    fake.calls += 1
                    call = fake.calls
                    fake.in_flight += 1
                    fake.max_concurrent = max(fake.max_concurrent, fake.in_flight)
                try:
                    body = json.loads(raw or b"{}")
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    if fake.delay:
                        time.sleep(fake.delay)
                    if not self.path.endswith("/chat/completions"):
                        return self._reply(404, {"error": {"message": f"no route {self.path}"}})
                    auth = self.headers.get("Authorization", "")
                    if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
                        # Echo the header back, as some proxies do: the client must not leak it.
                        return self._reply(401, {"error": {"message": f"bad credentials: {auth}"}})
                    if call <= fake.fail_first:
                        headers = {"Retry-After": fake.retry_after} if fake.retry_after is not None else {}
                        return self._reply(fake.fail_status, {"error": {"message": "try later"}}, headers)
                    if fake.refused(body):
                        return self._reply(400, {"error": {"message": "this image is refused"}})
                    text = fake._answer(body)
                    return self._reply(200, {
                        "id": f"chatcmpl-{call}", "object": "chat.completion", "model": body.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                    })
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        return Handler

    def start(self) -> "FakeOpenAI":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
