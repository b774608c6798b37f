"""Files Label Studio serves for its tasks: authenticated downloads and presigned storage URLs.

:class:`MediaTransfers` is the part of :class:`~backend.labelstudio.client.LabelStudioClient`
that reads task media (``/data/upload/...``, ``/tasks/N/presign/...``). It is kept apart
because its rules are about where credentials may travel, not about Label Studio's API: the
token goes only to Label Studio's own origin, a redirect that leaves it is followed without
credentials through the address guard (``backend.netguard``), and every body is capped.

It relies on the client it is part of for the base URL, the SDK's HTTP client, the auth
headers, the token refresh and the scrubbed errors (``_url``, ``_path_of``, ``_same_origin``,
``_http``, ``_auth_headers``, ``_forget_access_token``, ``_error``, ``_transport_error``,
``timeout``).
"""

from __future__ import annotations

import base64
from typing import Iterable
from urllib.parse import urlsplit

import httpx
import requests
import urllib3

from ..errors import ImageError, LabelStudioError
from ..netguard import MAX_REDIRECTS, host_of, pinned_session, redirect_target


def _transfer_problem(exc: BaseException) -> str:
    """What went wrong fetching a redirect target, in words that quote no URL: requests'
    own messages quote the path with its query string, a signed URL's signature included."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failed: certificate not trusted or not for this host"
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, (requests.ConnectionError, ConnectionError)):
        return "cannot connect"
    return f"{type(exc).__name__} while reading the response"



class MediaTransfers:
    """Downloads and presigning for :class:`~backend.labelstudio.client.LabelStudioClient`."""

    def download(self, url_or_path: str, max_bytes: int, timeout: float | tuple[float, float], *,
                 allow_private: bool = False) -> bytes:
        """GET a file served by Label Studio (``/data/upload/...``, ``/tasks/N/presign/...``) with auth.

        Relative paths are joined to the base URL; absolute URLs must be on Label Studio's
        own origin (the token is never sent elsewhere). Streams and raises past ``max_bytes``.

        Redirects are followed here, at most ``MAX_REDIRECTS``: a hop that stays on Label
        Studio's origin keeps the auth header; once a hop leaves it, the rest of the chain
        goes without credentials or Label Studio's cookies, through the address guard's
        pinned session (:meth:`_download_elsewhere`).
        """
        url = self._url(url_or_path)
        path = self._path_of(url)
        if not self._same_origin(url):
            host = urlsplit(url).netloc.rsplit("@", 1)[-1]
            raise LabelStudioError(f"refusing to send Label Studio credentials to another host: {host}",
                                   method="GET", path=path, retryable=False)
        if isinstance(timeout, (tuple, list)):
            connect, read = float(timeout[0]), float(timeout[1])
        else:
            connect = read = float(timeout)
        tmo = httpx.Timeout(read, connect=connect)
        retried, hops = False, 0
        while True:  # hops on Label Studio's origin, with the auth header
            try:
                with self._http.httpx_client.stream("GET", url, headers=self._auth_headers(), timeout=tmo,
                                                    follow_redirects=False) as resp:
                    if resp.status_code == 401 and not retried and self._forget_access_token():
                        retried = True
                        continue
                    if resp.is_redirect:
                        hops += 1
                        if hops > MAX_REDIRECTS:
                            raise self._too_many_redirects(path)
                        url = self._redirect_target(resp, path)
                        if self._same_origin(url):
                            continue
                        break
                    if resp.status_code >= 400:
                        resp.read()
                        raise self._error("GET", path, resp.status_code, resp.text)
                    return self._capped_body(resp.headers.get("content-length"), resp.iter_bytes(), path, max_bytes)
            except httpx.HTTPError as exc:
                raise self._transport_error("GET", path, exc) from None
        return self._download_elsewhere(url, path, hops, allow_private, max_bytes, (connect, read))

    def _download_elsewhere(self, url: str, path: str, hops: int, allow_private: bool, max_bytes: int,
                            timeout: tuple[float, float]) -> bytes:
        """The rest of a download whose redirect left Label Studio's origin (a presigned
        storage URL, say): no token, none of Label Studio's cookies, and every hop through
        ``netguard.pinned_session``, which connects only to an address it checked in the
        same step (link-local and cloud metadata addresses always refused, loopback and
        private ranges unless ``allow_private``, which the image fetcher takes from
        IMAGE_ALLOW_PRIVATE_NETWORKS). A hop back to Label Studio is treated the same way.
        """
        with pinned_session(allow_private) as session:
            while True:
                where = f"host {host_of(url)}"
                try:
                    with session.get(url, stream=True, timeout=timeout, allow_redirects=False) as resp:
                        if resp.is_redirect:
                            hops += 1
                            if hops > MAX_REDIRECTS:
                                raise self._too_many_redirects(path)
                            url = redirect_target(url, resp.headers.get("Location", ""), where)
                            continue
                        if resp.status_code >= 400:  # no body: it may quote the signed URL
                            raise LabelStudioError(
                                f"Label Studio GET {path}: HTTP {resp.status_code} from redirect target "
                                f"{host_of(url)}", method="GET", path=path, status=resp.status_code,
                                retryable=True)  # a signed URL's 403 heals with a new signature
                        return self._capped_body(resp.headers.get("Content-Length"),
                                                 resp.iter_content(64 * 1024), path, max_bytes)
                except ImageError as exc:  # refused by the guard, or a malformed redirect
                    raise LabelStudioError(f"Label Studio GET {path}: redirect {exc.reason}",
                                           method="GET", path=path) from None
                except ValueError:  # a redirect target urllib3 cannot parse though urllib could
                    raise LabelStudioError(f"Label Studio GET {path}: redirected to an invalid URL",
                                           method="GET", path=path) from None
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise self._error("GET", path, None,
                                      f"redirect target {host_of(url)}: {_transfer_problem(exc)}") from None

    def _capped_body(self, declared: str | None, chunks: Iterable[bytes], path: str, max_bytes: int) -> bytes:
        """The body from ``chunks``, refused past ``max_bytes`` (by its Content-Length first)."""
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise self._too_large(path, int(declared), max_bytes)
        pieces, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise self._too_large(path, size, max_bytes)
            pieces.append(chunk)
        return b"".join(pieces)

    @staticmethod
    def _too_many_redirects(path: str) -> LabelStudioError:
        return LabelStudioError(f"Label Studio GET {path}: more than {MAX_REDIRECTS} redirects",
                                method="GET", path=path)

    def _redirect_target(self, resp: httpx.Response, path: str) -> str:
        """The absolute http(s) URL a redirect points to; anything else is a LabelStudioError."""
        try:
            target = resp.url.join(resp.headers["location"])
        except (httpx.InvalidURL, ValueError, KeyError):  # KeyError: a redirect without a Location
            raise LabelStudioError(f"Label Studio GET {path}: redirected to an invalid URL",
                                   method="GET", path=path) from None
        if target.scheme not in ("http", "https") or not target.host:
            raise LabelStudioError(f"Label Studio GET {path}: redirected to an unsupported URL",
                                   method="GET", path=path)
        return str(target)

    @staticmethod
    def _too_large(path: str, size: int, max_bytes: int) -> LabelStudioError:
        return LabelStudioError(f"Label Studio GET {path}: larger than {max_bytes} bytes (at least {size})",
                                method="GET", path=path, retryable=False)

    def presign(self, task_id: int, uri: str) -> str:
        """A URL to read a cloud-storage URI (``s3://``, ``gs://``, ``azure-blob://``) of a task.

        Asks ``GET /tasks/{id}/presign/?fileuri=<base64url>``. When the project's storage
        presigns, Label Studio answers 303 and the presigned URL (another host, no
        credentials needed) is returned. When the storage proxies (presign off), the
        answer is the file itself: the Label Studio path is returned, to be read with
        :meth:`download`.
        """
        encoded = base64.urlsafe_b64encode(uri.encode()).decode()
        rel = f"/tasks/{int(task_id)}/presign/?fileuri={encoded}"
        path = f"/tasks/{int(task_id)}/presign/"
        client = self._http.httpx_client
        # ask for one byte only: a proxying storage then streams next to nothing
        headers = {**self._auth_headers(), "Range": "bytes=0-0"}
        for attempt in (0, 1):
            try:
                with client.stream("GET", self._url(rel), headers=headers, timeout=self.timeout,
                                   follow_redirects=False) as resp:
                    if resp.status_code == 401 and attempt == 0 and self._forget_access_token():
                        headers = {**self._auth_headers(), "Range": "bytes=0-0"}
                        continue
                    if resp.is_redirect:
                        location = resp.headers.get("location", "")
                        if not location:
                            raise self._error("GET", path, resp.status_code, "redirect without Location")
                        return str(resp.url.join(location))
                    if resp.status_code >= 400:
                        resp.read()
                        raise self._error("GET", path, resp.status_code,
                                          resp.text or f"no storage of this project serves {uri.split('://')[0]}://")
                    return rel
            except httpx.HTTPError as exc:
                raise self._transport_error("GET", path, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover
