"""A vision-language model served behind an OpenAI-compatible chat API (vLLM, SGLang,
TGI, llama.cpp server, OpenAI itself), called with plain ``requests``.

Each image is one ``POST {base_url}/chat/completions`` with the image as a base64 data
URL; up to ``concurrency`` requests run at once (the server batches them). Requests that
fail with 429, 5xx, a timeout or a dropped connection are retried with exponential
backoff, honouring ``Retry-After``. No message this module produces contains the API key.
"""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import requests

from .base import Describer, DescriberError

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429}


class _GiveUp(Exception):
    """A failure that retrying will not fix (4xx other than 408/409/425/429, bad JSON)."""


def _safe_url(url: str) -> str:
    """``url`` without user:password and query string, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def encode_image(image: "Image", fmt: str = "JPEG", max_side: int | None = None, quality: int = 90) -> str:
    """``image`` as a ``data:image/...;base64,`` URL, shrunk to ``max_side`` if larger."""
    fmt = fmt.upper()
    if fmt not in {"JPEG", "PNG"}:
        raise ValueError(f"image format must be JPEG or PNG, got {fmt!r}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG")
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


class OpenAIDescriber(Describer):
    """Describe images through ``/v1/chat/completions`` of an OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_tokens: int = 256,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        *,
        max_backoff: float = 60.0,
        temperature: float = 0.0,
        image_format: str = "JPEG",
        max_image_side: int | None = 2048,
        json_mode: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"endpoint:{model}"
        self._api_key = api_key or None
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.temperature = temperature
        self.image_format = image_format.upper()
        self.max_image_side = max_image_side
        self.json_mode = json_mode  # response_format json_object on complete(); not every server has it
        self._url = f"{self.base_url}/chat/completions"
        self._where = _safe_url(self._url)
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"OpenAIDescriber(url={self._where!r}, model={self.model!r})"

    # ------------------------------------------------------------------ public
    def describe(self, images: Sequence["Image"], prompt: str) -> list[str]:
        """One description per image, in order, ``concurrency`` requests at a time."""
        return self._map([self._image_body_later(image, prompt) for image in images])

    def describe_each(self, images: Sequence["Image"], prompt: str) -> list[str | DescriberError]:
        """As :meth:`describe`; a request that fails (or an image that cannot be encoded)
        fails its own image only."""
        return self._map([self._image_body_later(image, prompt) for image in images], keep_errors=True)

    def _image_body_later(self, image: "Image", prompt: str) -> Callable[[], dict[str, Any]]:
        """The request body of ``image``, built by the thread that sends it: a call's images
        are shrunk and encoded in parallel, each while other requests are in flight, and
        only ``concurrency`` encoded bodies exist at a time."""
        def build() -> dict[str, Any]:
            try:
                return self._image_body(image, prompt)
            except Exception as exc:  # an image the encoder cannot write
                raise DescriberError(f"cannot encode the image: {type(exc).__name__}: {exc}") from None
        return build

    def _image_body(self, image: "Image", prompt: str) -> dict[str, Any]:
        url = encode_image(image, self.image_format, self.max_image_side)
        content = [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": prompt},
        ]
        return self._body(content, json_mode=False)

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """One text-only answer per prompt (with ``response_format`` json_object if ``json_mode``)."""
        return self._map([self._body(prompt, json_mode=self.json_mode) for prompt in prompts])

    def complete_each(self, prompts: Sequence[str]) -> list[str | DescriberError]:
        """As :meth:`complete`; a request that fails (a 400 for a prompt too long for the
        model, retries used up) fails its own prompt only."""
        return self._map([self._body(prompt, json_mode=self.json_mode) for prompt in prompts], keep_errors=True)

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    # ---------------------------------------------------------------- internals
    def _body(self, content: Any, json_mode: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def _executor(self) -> ThreadPoolExecutor:
        # One pool per describer, created on first use (after any fork): it bounds the
        # requests in flight across every caller of this describer, not per call.
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="vlm-endpoint")
            return self._pool

    def _map(self, bodies: list[Any], keep_errors: bool = False) -> list[Any]:
        """Every request, ``concurrency`` in flight. With ``keep_errors`` a failed one gives its
        DescriberError in place of its text (a body may already be one), else it is raised."""
        if not bodies:
            return []
        if not keep_errors and len(bodies) == 1:
            return [self._send(bodies[0])]
        futures = [body if isinstance(body, DescriberError) else self._executor().submit(self._send, body)
                   for body in bodies]
        out: list[Any] = []
        try:
            for future in futures:
                if isinstance(future, DescriberError):
                    out.append(future)
                    continue
                try:
                    out.append(future.result())
                except DescriberError as exc:
                    if not keep_errors:
                        raise
                    out.append(exc)
            return out
        except BaseException:
            for future in futures:
                if not isinstance(future, DescriberError):
                    future.cancel()
            raise

    def _send(self, body: dict[str, Any] | Callable[[], dict[str, Any]]) -> str:
        return self._call(body() if callable(body) else body)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Content-Type"] = "application/json"
            if self._api_key:
                session.headers["Authorization"] = f"Bearer {self._api_key}"
        return session

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = retry_after if retry_after is not None else self.backoff * (2 ** attempt)
        delay = min(delay, self.max_backoff)
        return delay + random.uniform(0, 0.1 * delay)  # jitter: many workers, one server

    def _call(self, body: dict[str, Any]) -> str:
        last = "no attempt made"
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            retry_after = None
            try:
                response = self._session().post(
                    self._url, json=body, timeout=(min(10.0, self.timeout), self.timeout)
                )
            except requests.Timeout:
                last = f"timeout after {self.timeout:g} s"
            except requests.ConnectionError as exc:
                last = f"connection error ({type(exc).__name__})"
            except requests.RequestException as exc:
                raise DescriberError(self._redact(f"{self._where}: {type(exc).__name__}: {exc}")) from None
            else:
                if response.status_code == 200:
                    try:
                        return self._text(response)
                    except _GiveUp as exc:
                        raise DescriberError(self._redact(f"{self._where}: {exc}")) from None
                last = f"HTTP {response.status_code}: {response.text[:300].strip()}"
                if response.status_code not in _RETRY_STATUS and response.status_code < 500:
                    raise DescriberError(self._redact(f"{self._where}: {last}"))
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt + 1 < attempts:
                delay = self._delay(attempt, retry_after)
                log.warning("%s: %s; retry %d/%d in %.1f s", self._where, self._redact(last),
                            attempt + 1, self.max_retries, delay)
                time.sleep(delay)
        raise DescriberError(self._redact(f"{self._where}: gave up after {attempts} attempts: {last}"))

    @staticmethod
    def _text(response: requests.Response) -> str:
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _GiveUp(f"unexpected reply: {response.text[:200]!r}") from None
        if content is None:
            return ""
        if isinstance(content, list):  # some servers answer in content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content).strip()
