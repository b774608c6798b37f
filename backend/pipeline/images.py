"""From a task's image reference to a decoded RGB image, safely.

References Label Studio puts into task data, and where they are read from:

=================================  ==============================================
``http(s)://`` on another host     plain GET, no credentials
``http(s)://`` on Label Studio     ``label_studio.download`` (adds the auth header)
``/data/upload/...`` or any        ``label_studio.download``
relative path
``/data/local-files/?d=PATH``      ``local_files_root``/PATH when set (no escaping
                                   the root), else ``label_studio.download``
``s3://bucket/key``                boto3, standard credential chain,
                                   ``s3_endpoint_url`` for MinIO and friends
``gs://``, ``azure-blob://``       ``label_studio.presign(task_id, uri)``, then GET
``data:image/...;base64,...``      decoded in place
=================================  ==============================================

Every read stops past ``max_bytes``; decoding refuses images above ``max_pixels`` and
images whose long side is more than ``max_aspect_ratio`` times the short side before it
decodes a pixel, and truncated files fail. Failures raise :class:`ImageError`, whose
``reason`` is short, readable by an admin, and free of tokens and signed query strings.

A task names the URL, so plain http(s) fetches go through ``backend.netguard``'s pinned
session: each request (every redirect hop is one, followed here) resolves the host once,
checks the addresses and connects only to a checked one, the host name kept for the Host
header and TLS. Label Studio's own host, the S3 endpoint and the VLM
endpoint are configured by the admin and not subject to the guard; a redirect from Label
Studio's downloads to another origin is (``LabelStudioClient.download``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import parse_qs, unquote, unquote_to_bytes, urlsplit

import requests
import urllib3

from ..errors import ImageError
from ..labelstudio.config import field_value
from ..logs import redact
from ..netguard import (  # noqa: F401
    DEFAULT_PORTS,
    MAX_REDIRECTS,
    check_address,
    host_of,
    origin,
    pinned_session,
    redirect_target,
    split_url,
    url_problem,
)

if TYPE_CHECKING:
    from PIL.Image import Image

_CHUNK = 256 * 1024
_PRESIGNED = {"gs", "azure-blob"}
_S3_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
def content_hash(data: bytes) -> str:
    """sha256 of the bytes, hex: the cache key of an image's description."""
    return hashlib.sha256(data).hexdigest()


def image_ref_from_task(task: dict, key: str) -> str:
    """``field_value(task["data"], key)`` (a nested path too), which must be a non-empty string."""
    missing = object()
    ref = field_value(task.get("data") if isinstance(task, dict) else None, key, missing)
    if ref is missing:
        raise ImageError(f"task has no data field {key!r}")
    if ref is None:
        raise ImageError(f"data field {key!r} is null")
    if not isinstance(ref, str) or not ref.strip():
        raise ImageError(f"data field {key!r} is not an image reference (got {type(ref).__name__})")
    return ref.strip()


def _mb(n: int) -> str:
    return f"{n / 2**20:.3g} MB"


def failure_reason(exc: BaseException) -> str:
    """Why fetching or decoding an image failed: an ImageError's reason, or, for anything
    else (a bug, a library's surprise), the exception's type and message, redacted."""
    if isinstance(exc, ImageError):
        return exc.reason
    return redact(f"unexpected {type(exc).__name__}: {exc}")


def _exc_reason(exc: BaseException, where: str) -> str:
    """A short reason for an exception raised by a Label Studio client or requests."""
    if isinstance(exc, ImageError):
        return exc.reason
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "status_code", None)
    if isinstance(status, int):
        return f"HTTP {status} from {where}"
    if isinstance(exc, (requests.Timeout, TimeoutError)):
        return f"timeout reading from {where}"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS with {where} failed: certificate not trusted or not for this host"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect to {where}"
    return redact(f"{where}: {type(exc).__name__}: {exc}")


@dataclass
class ImageFetcher:
    """Fetches image bytes from any reference Label Studio uses, and decodes them."""

    max_bytes: int = 50 * 2**20
    max_pixels: int = 89_478_485
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    local_files_root: str | None = None
    label_studio: Any | None = None
    s3_endpoint_url: str | None = None
    total_timeout: float = 300.0  # a whole HTTP transfer, against servers that drip bytes
    allow_private: bool = False  # loopback and private ranges for plain http(s) fetches
    decode_min_side: int = 1024  # big JPEGs are decoded at a reduced scale down to this short side; 0: never
    max_aspect_ratio: float = 20.0  # the long side over the short side; 0: any shape

    _s3: Any = field(default=None, init=False, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _local: Any = field(default_factory=threading.local, init=False, repr=False, compare=False)

    # ------------------------------------------------------------------- bytes
    def fetch_bytes(self, ref: str, task_id: int | None = None) -> bytes:
        """The raw bytes behind ``ref``, at most ``max_bytes`` of them."""
        if not isinstance(ref, str) or not ref.strip():
            raise ImageError("empty image reference")
        ref = ref.strip()
        if ref[:5].lower() == "data:":
            return self._data_uri(ref)
        scheme = split_url(ref).scheme.lower() if "://" in ref else ""
        if scheme in ("http", "https"):
            if self._is_label_studio(ref):
                return self._from_label_studio_url(ref)
            return self._http_get(ref)
        if scheme == "s3":
            return self._s3_get(ref)
        if scheme in _PRESIGNED:
            return self._presigned(ref, task_id)
        if scheme:
            raise ImageError(f"unsupported scheme {scheme}://")
        return self._label_studio_path(ref)

    def _is_label_studio(self, url: str) -> bool:
        base = getattr(self.label_studio, "base_url", None)
        if not base:
            return False
        return origin(url) == origin(str(base))

    def _from_label_studio_url(self, url: str) -> bytes:
        parts = urlsplit(url)
        if self.local_files_root and parts.path.rstrip("/").endswith("/data/local-files"):
            return self._local_file(parts.query)
        return self._ls_download(url)

    def _label_studio_path(self, ref: str) -> bytes:
        path, _, query = ref.partition("?")
        if self.local_files_root and path.rstrip("/").endswith("data/local-files"):
            return self._local_file(query)
        return self._ls_download(ref)

    def _ls_download(self, url_or_path: str) -> bytes:
        if self.label_studio is None:
            raise ImageError(
                f"{redact(url_or_path)[:120]} is served by Label Studio, but LABEL_STUDIO_URL is not set"
                + (" (nor LOCAL_FILES_DOCUMENT_ROOT)" if "local-files" in url_or_path else "")
            )
        timeout = (self.connect_timeout, self.read_timeout)
        try:
            data = self.label_studio.download(url_or_path, max_bytes=self.max_bytes, timeout=timeout,
                                              allow_private=self.allow_private)  # for redirects elsewhere
        except Exception as exc:
            raise ImageError(_exc_reason(exc, "Label Studio")) from None
        return self._capped(bytes(data))

    def _capped(self, data: bytes) -> bytes:
        if len(data) > self.max_bytes:
            raise ImageError(f"too large: {_mb(len(data))} > {_mb(self.max_bytes)}")
        return data

    # ------------------------------------------------------------ data: URIs
    def _data_uri(self, ref: str) -> bytes:
        header, sep, payload = ref.partition(",")
        if not sep:
            raise ImageError("malformed data: URI")
        params = header[5:].split(";")
        mime = params[0].strip().lower()
        if mime and not mime.startswith("image/"):
            raise ImageError(f"data: URI is {mime}, not an image")
        if len(payload) * 3 // 4 > self.max_bytes + 3:
            raise ImageError(f"too large: {_mb(len(payload) * 3 // 4)} > {_mb(self.max_bytes)}")
        if "base64" in (p.strip().lower() for p in params[1:]):
            try:
                data = base64.b64decode(re.sub(r"\s+", "", unquote(payload)), validate=True)
            except (binascii.Error, ValueError):
                raise ImageError("data: URI is not valid base64") from None
        else:
            data = unquote_to_bytes(payload)
        return self._capped(data)

    # ----------------------------------------------------------- local files
    def _local_file(self, query: str) -> bytes:
        values = parse_qs(query).get("d")
        if not values or not values[0]:
            raise ImageError("local-files URL without ?d=")
        if "\0" in values[0]:
            raise ImageError("local file path contains a NUL byte")
        # '..' is resolved by the name alone, before the file system sees the path: a path
        # that climbs out of the root is refused, while symbolic links inside the root are
        # followed wherever they point (as Label Studio serves them; the CLI lists them)
        root = Path(self.local_files_root).resolve()  # type: ignore[arg-type]
        target = Path(os.path.normpath(root / values[0].lstrip("/")))
        if target != root and root not in target.parents:
            raise ImageError("local file path escapes LOCAL_FILES_DOCUMENT_ROOT")
        try:
            size = target.stat().st_size
            if size > self.max_bytes:
                raise ImageError(f"too large: {_mb(size)} > {_mb(self.max_bytes)}")
            with open(target, "rb") as handle:
                return self._capped(handle.read(self.max_bytes + 1))
        except FileNotFoundError:
            raise ImageError(f"local file not found: {values[0][:200]}") from None
        except PermissionError:
            raise ImageError(f"access denied to local file {values[0][:200]}") from None
        except IsADirectoryError:
            raise ImageError(f"local path is a directory: {values[0][:200]}") from None
        except OSError as exc:
            raise ImageError(f"cannot read local file: {exc.strerror or type(exc).__name__}") from None

    # ------------------------------------------------------------------ http
    def _session(self) -> requests.Session:
        """This thread's session (requests sessions are not thread-safe), pinned to checked
        addresses under this fetcher's ``allow_private``."""
        session = getattr(self._local, "session", None)
        if session is None or session.get_adapter("http://").allow_private != self.allow_private:
            session = self._local.session = pinned_session(self.allow_private)
        return session

    def _http_get(self, url: str) -> bytes:
        start = time.monotonic()
        for _ in range(MAX_REDIRECTS + 1):
            where = f"host {host_of(url)}"
            try:  # the session's adapter resolves, checks and connects in one step, per hop
                with self._session().get(
                    url, stream=True, timeout=(self.connect_timeout, self.read_timeout), allow_redirects=False,
                ) as response:
                    if response.is_redirect:
                        url = redirect_target(url, response.headers.get("Location", ""), where)
                        continue
                    return self._read_body(response, where, start)
            except ImageError:
                raise
            except requests.exceptions.InvalidURL:
                raise ImageError("invalid URL") from None
            except ValueError as exc:  # a URL urllib3 cannot parse though urllib could
                raise ImageError(f"invalid URL: {url_problem(exc)}") from None
            except (requests.RequestException, OSError) as exc:
                raise ImageError(_exc_reason(exc, where)) from None
        raise ImageError(f"more than {MAX_REDIRECTS} redirects")

    def _read_body(self, response: requests.Response, where: str, start: float) -> bytes:
        if response.status_code != 200:
            raise ImageError(f"HTTP {response.status_code} from {where}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ImageError(f"too large: {_mb(int(declared))} > {_mb(self.max_bytes)}")
        buffer = bytearray()
        for chunk in _arriving(response, where):
            buffer += chunk
            if len(buffer) > self.max_bytes:
                raise ImageError(f"too large: more than {_mb(self.max_bytes)}")
            if time.monotonic() - start > self.total_timeout:
                raise ImageError(f"timeout: transfer from {where} took over {self.total_timeout:g} s")
        return bytes(buffer)

    def _presigned(self, uri: str, task_id: int | None) -> bytes:
        scheme = uri.split("://", 1)[0].lower()
        if self.label_studio is None:
            raise ImageError(f"{scheme}:// needs Label Studio to presign it, but LABEL_STUDIO_URL is not set")
        if task_id is None:
            raise ImageError(f"{scheme}:// needs the task id to presign it")
        try:
            url = self.label_studio.presign(task_id, uri)
        except Exception as exc:
            raise ImageError(_exc_reason(exc, "Label Studio presign")) from None
        if not isinstance(url, str) or split_url(url).scheme.lower() not in ("http", "https", ""):
            raise ImageError(f"Label Studio did not presign {scheme}:// to an http URL")
        if not urlsplit(url).scheme or self._is_label_studio(url):  # proxied through Label Studio
            return self._ls_download(url)
        return self._http_get(url)

    # -------------------------------------------------------------------- s3
    def _s3_client(self) -> Any:
        with self._lock:  # boto3 clients are thread-safe, creating one is not
            if self._s3 is None:
                import boto3
                from botocore.config import Config

                config = Config(
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    retries={"max_attempts": 3, "mode": "standard"},
                )
                self._s3 = boto3.session.Session().client(
                    "s3", endpoint_url=self.s3_endpoint_url or None, config=config
                )
            return self._s3

    def _s3_get(self, uri: str) -> bytes:
        # Not urlsplit: keys may hold '?' and '#', which are not a query or fragment here.
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        if not bucket or not key:
            raise ImageError("s3:// URI needs a bucket and a key")
        shown = f"s3://{bucket}/{key}"[:200]
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            obj = self._s3_client().get_object(Bucket=bucket, Key=key)
            size = obj.get("ContentLength")
            if isinstance(size, int) and size > self.max_bytes:
                obj["Body"].close()
                raise ImageError(f"too large: {_mb(size)} > {_mb(self.max_bytes)}")
            body, buffer = obj["Body"], bytearray()
            try:
                while chunk := body.read(_CHUNK):
                    buffer += chunk
                    if len(buffer) > self.max_bytes:
                        raise ImageError(f"too large: more than {_mb(self.max_bytes)}")
            finally:
                body.close()
            return bytes(buffer)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ImageError(f"S3 NoSuchKey: {shown}") from None
            if code == "NoSuchBucket":
                raise ImageError(f"S3 NoSuchBucket: {bucket}") from None
            if code in _S3_DENIED or status == 403:
                raise ImageError(f"S3 access denied ({code or 403}): {shown}") from None
            raise ImageError(f"S3 error {code or status}: {shown}") from None
        except NoCredentialsError:
            raise ImageError("S3 credentials not found (AWS_ACCESS_KEY_ID / AWS_PROFILE / role)") from None
        except BotoCoreError as exc:
            name = type(exc).__name__
            if "Timeout" in name:
                raise ImageError(f"timeout reading {shown}") from None
            if "Connect" in name:
                raise ImageError("cannot connect to the S3 endpoint") from None
            raise ImageError(redact(f"S3 {name}: {exc}")) from None

    # ---------------------------------------------------------------- decode
    def decode(self, data: bytes) -> "Image":
        """Decode bytes to an upright RGB image, fully loaded, or raise ImageError."""
        from PIL import Image, ImageOps, UnidentifiedImageError

        if not data:
            raise ImageError("empty file")
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only
        except UnidentifiedImageError:
            raise ImageError("not an image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError("decompression bomb: too many pixels") from None
        except Exception as exc:  # a header Pillow recognises but cannot parse
            raise ImageError(f"corrupt image header ({type(exc).__name__})") from None
        width, height = image.size
        if width * height > self.max_pixels:
            raise ImageError(f"decompression bomb: {width}x{height} pixels > {self.max_pixels}")
        if width <= 0 or height <= 0:
            raise ImageError("image has no pixels")
        if self.max_aspect_ratio and max(width, height) > self.max_aspect_ratio * min(width, height):
            # a few hundred bytes of PNG, but LLaVA's processor scales the short side up to
            # 336 pixels, and the long side with it: gigabytes for a 4000x1 strip
            raise ImageError(f"image is {width}x{height} pixels: aspect ratio over {self.max_aspect_ratio:g}:1")
        self._draft(image)
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError("decompression bomb: too many pixels") from None
        except Exception as exc:  # OSError "image file is truncated", SyntaxError, EOFError, ...
            raise ImageError(f"truncated or corrupt {image.format or 'image'} ({redact(str(exc))[:80]})") from None
        try:
            image = ImageOps.exif_transpose(image) or image  # the model should see it upright
        except Exception:
            pass  # broken EXIF is not worth refusing the image for
        return self._reduce(_to_rgb(image))

    def _reduce(self, image: "Image") -> "Image":
        """Any other big image: the same reduction right after decoding (a box filter), so a
        mining job holds reduced images only while the VLM describes them (32 decoded
        80-megapixel PNGs would take 8 GB)."""
        short = min(image.size)
        if not self.decode_min_side or short < 2 * self.decode_min_side:
            return image
        return image.reduce(short // self.decode_min_side)

    def _draft(self, image: "Image") -> None:
        """Let a big JPEG decode at 1/2, 1/4 or 1/8 scale (the DCT does the shrinking).

        The scale is the smallest that keeps the short side at least ``decode_min_side``:
        describers look at far fewer pixels (LLaVA-1.5 at 336, endpoints at most 2048 on
        the long side), and a 24-megapixel photo then costs a quarter of the decoding time
        and memory. Other formats decode in full.
        """
        width, height = image.size
        short = min(width, height)
        if image.format != "JPEG" or not self.decode_min_side or short < 2 * self.decode_min_side:
            return
        scale = self.decode_min_side / short
        image.draft(image.mode, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))

    def load(self, ref: str, task_id: int | None = None) -> "Image":
        """Fetch and decode ``ref``: an RGB ``PIL.Image``, fully decoded."""
        return self.decode(self.fetch_bytes(ref, task_id))


def _to_rgb(image: "Image") -> "Image":
    """RGB; transparent areas become white rather than whatever colour hides under them."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale: scale to 8 bits
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    return image.convert("RGB")


def _arriving(response: requests.Response, where: str) -> Iterator[bytes]:
    """The body of ``response`` as it arrives, each piece from one read of the socket.

    ``iter_content`` waits until a whole chunk has come (with Content-Length it reads on
    until the chunk is full), so a server that drips a byte now and then, each within the
    read timeout, would hold the fetch past any deadline. Here the caller checks its
    deadline after every socket read. urllib3 before 2.3 has no ``read1``: whole chunks.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:
        yield from response.iter_content(_CHUNK)
        return
    try:
        while chunk := read1(_CHUNK, decode_content=True):
            yield chunk
    except urllib3.exceptions.ReadTimeoutError:
        raise ImageError(f"timeout reading from {where}") from None
    except urllib3.exceptions.HTTPError as exc:  # a broken or short body, a bad encoding
        raise ImageError(_exc_reason(exc, where)) from None
