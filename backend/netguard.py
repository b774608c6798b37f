"""The SSRF guard: which addresses a URL taken from a task (or a redirect) may reach.

A task names its image URL, so a plain http(s) fetch must not reach what the backend can
reach and the task's author cannot: every address a host name resolves to (and every
redirect hop) is checked here. Link-local and cloud metadata addresses are always
refused, loopback and private ranges unless ``allow_private``
(IMAGE_ALLOW_PRIVATE_NETWORKS). Addresses that embed an IPv4 address (IPv4-mapped, 6to4,
Teredo, NAT64) are judged by it. Left open: a host name whose DNS answer changes between
the check and the connection (DNS rebinding).

Used by the image fetcher (``backend.pipeline.images``) and by the Label Studio client's
downloads (``backend.labelstudio.client``), whose redirects to another origin are guarded
the same way. Refusals raise :class:`~backend.errors.ImageError` with a short reason.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

import requests

from .errors import ImageError
from .logs import redact

#: redirects followed by one fetch, by the image fetcher and the Label Studio client alike
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}
# cloud instance metadata and similar: refused even where private networks are allowed
_METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                                               "169.254.170.2", "192.0.0.192")}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the last 32 bits are the IPv4 address


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address leads to, or None for a plain IPv6 one:
    IPv4-mapped (``::ffff:a.b.c.d``), 6to4 (``2002::/16``), Teredo (``2001::/32``, its client)
    and NAT64 (``64:ff9b::/96``). IPv4-compatible ``::a.b.c.d`` stays as it is: reserved."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def check_address(ip: str, allow_private: bool) -> str | None:
    """Why a fetch must not go to ``ip``, or None when it may.

    An IPv6 address that embeds an IPv4 one (see :func:`_embedded_ipv4`) is judged by the
    IPv4 address, whatever Python's ``ipaddress`` thinks of the IPv6 prefix.
    """
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            addr = embedded
    if addr in _METADATA:
        return "a cloud metadata address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_multicast or addr.is_unspecified:
        return "a reserved address"
    if addr.is_loopback or addr.is_private:
        return None if allow_private else (
            "a private or loopback address (set IMAGE_ALLOW_PRIVATE_NETWORKS=true to allow it)")
    if addr.is_reserved or not addr.is_global:
        return "a reserved address"
    return None


def guard(url: str, allow_private: bool) -> None:
    """Raise ImageError unless every address ``url``'s host resolves to may be fetched."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ImageError("invalid URL: no host")
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise ImageError(f"cannot resolve host {host[:100]}") from None
    for info in infos:
        why = check_address(info[4][0], allow_private)
        if why:
            raise ImageError(f"refused: host {host[:100]} is {why}")




def split_url(url: str) -> SplitResult:
    """``urlsplit(url)`` with its port read once: a malformed URL (``http://[bad/``, a port
    out of range or not a number) is an ImageError, not the ValueError urllib raises."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed lazily; a bad one raises here
    except ValueError as exc:
        raise ImageError(f"invalid URL: {url_problem(exc)}") from None
    return parts


def url_problem(exc: ValueError) -> str:
    """What urllib's ValueError about a URL means, in a few words."""
    text = str(exc).lower()
    if "out of range" in text:
        return "port out of range 0-65535"
    if "port" in text:
        return "port is not a number"
    if "ipv6" in text:
        return "malformed host in brackets"
    return redact(str(exc))[:100]


def host_of(url: str) -> str:
    parts = split_url(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
    except ValueError:  # a malformed host
        return "", "", None
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        port = None
    return scheme, (parts.hostname or "").lower(), port


def redirect_target(url: str, location: str, where: str) -> str:
    """The absolute URL a redirect points to; one that is malformed or not http(s) is refused."""
    try:
        target = requests.compat.urljoin(url, location)
        parts = split_url(target)
    except ValueError as exc:
        raise ImageError(f"{where} redirected to an invalid URL: {url_problem(exc)}") from None
    except ImageError as exc:
        raise ImageError(f"{where} redirected to an {exc.reason}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ImageError(f"{where} redirected to an unsupported scheme")
    return target
