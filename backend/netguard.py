"""The SSRF guard: which addresses a URL taken from a task (or a redirect) may reach, and
the only way such a URL is connected to.

A task names its image URL, so a plain http(s) fetch must not reach what the backend can
reach and the task's author cannot. Link-local and cloud metadata addresses are always
refused, loopback and private ranges unless ``allow_private``
(IMAGE_ALLOW_PRIVATE_NETWORKS). Addresses that embed an IPv4 address (IPv4-mapped, 6to4,
Teredo, NAT64) are judged by it.

What the guard promises: a fetch connects only to an address that passed the check in the
same step. :class:`PinnedAdapter` (through :func:`pinned_session`) resolves the host once,
checks every address of the answer (one refused address refuses the URL), and connects to
a checked address by its IP, keeping the host name for the Host header, TLS SNI and the
certificate check; nothing resolves the name a second time, so a DNS server that answers a
public address to the check and an internal one to the connection (DNS rebinding) reaches
nothing. Redirects are not followed by the library: the caller follows each hop as a new
request, resolved, checked and connected the same way. Proxies from the environment keep
working and are asked for the checked address, never the name (see :class:`PinnedAdapter`).

Used by the image fetcher (``backend.pipeline.images``) and by the Label Studio client's
downloads once a redirect leaves Label Studio's origin (``backend.labelstudio.client``).
Refusals raise :class:`~backend.errors.ImageError` with a short reason. The resolver
(:data:`resolve`) and the address rule (:data:`address_policy`) are module attributes, so
that a test can stand in for a rebinding DNS server without leaving the machine.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import SplitResult, urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3

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


#: How a host name becomes addresses: ``(host, port) -> addresses``.
Resolver = Callable[[str, int], Sequence[str]]
#: Why a fetch must not reach an address, or None: ``(address, allow_private) -> reason``.
AddressPolicy = Callable[[str, bool], "str | None"]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves ``host`` to (``getaddrinfo``), in its order."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


#: The resolver every guarded fetch asks, once per request (each redirect hop is one). The
#: system resolver; a test puts a stand-in for a DNS server here (one whose answer changes
#: between look-ups).
resolve: Resolver = system_resolver
#: The rule every resolved address must pass: :func:`check_address`. A test may swap it to
#: let one loopback address stand for a public one, so that no test leaves the machine.
address_policy: AddressPolicy = check_address


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def checked_addresses(url: str, allow_private: bool) -> list[str]:
    """Every address ``url``'s host resolves to, each allowed by :data:`address_policy`.

    One look-up (a host that is an IP address is its own answer); one refused address
    refuses the URL, so a DNS answer that mixes a public address with an internal one gains
    nothing. Raises ImageError: the host cannot be resolved, or the reason it is refused.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ImageError("invalid URL: no host")
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
        addresses = [host] if _is_ip_literal(host) else list(dict.fromkeys(resolve(host, port)))
    except (OSError, UnicodeError, ValueError):
        raise ImageError(f"cannot resolve host {host[:100]}") from None
    if not addresses:
        raise ImageError(f"cannot resolve host {host[:100]}")
    for address in addresses:
        why = address_policy(address, allow_private)
        if why:
            raise ImageError(f"refused: host {host[:100]} is {why}")
    return addresses


def pinned_url(url: str, address: str) -> tuple[str, str]:
    """``url`` with its host replaced by ``address``, and the Host header that names the
    original host (its port only when the URL gives one other than the scheme's default).
    User info is dropped: credentials in a task's URL are never sent."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    bracketed = f"[{host}]" if ":" in host else host
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    host_header = bracketed if port in (None, default) else f"{bracketed}:{port}"
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if port is None else f"{literal}:{port}"
    return urlunsplit(parts._replace(netloc=netloc)), host_header


def _not_connected(exc: requests.ConnectionError) -> bool:
    """Whether ``exc`` says that no connection was made (refused, unreachable, timed out),
    so that the next checked address may be tried; not a proxy's failure."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


#: the attribute of a PreparedRequest where PinnedAdapter.send leaves the host name for TLS,
#: read back when requests builds the connection pool's key
_TLS_NAME = "pinned_tls_name"


class PinnedAdapter(requests.adapters.HTTPAdapter):
    """A requests transport that connects only to an address it checked in the same step.

    For each request: the host is resolved once (:data:`resolve`), every address is checked
    (:data:`address_policy` via :func:`checked_addresses`), and the request goes to the
    first address by its IP (the next one only when no connection could be made), with
    the host name kept where it matters: the Host header, TLS SNI and the certificate's
    host name check (urllib3's ``server_hostname`` and ``assert_hostname``). Nothing
    resolves the name again, so a DNS answer that changes after the check (DNS rebinding)
    changes nothing.

    Proxies from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``) are chosen
    by the host name, as without this adapter, and are asked for the checked address: a
    ``CONNECT address:port`` tunnel for https (TLS still checks the host name), the
    absolute URL ``http://address:port/...`` for plain http. The proxy itself is the
    admin's and is not checked.
    """

    def __init__(self, allow_private: bool, **kwargs: Any) -> None:
        self.allow_private = allow_private
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Mapping[str, str] | None = None,
             ) -> requests.Response:
        url = str(request.url)
        addresses = checked_addresses(url, self.allow_private)
        scheme, host = urlsplit(url).scheme.lower(), urlsplit(url).hostname or ""
        proxy = requests.utils.select_proxy(url, dict(proxies or {}))  # by name: NO_PROXY means names
        tls_name = None if _is_ip_literal(host) else host
        try:
            for n, address in enumerate(addresses):
                request.url, request.headers["Host"] = pinned_url(url, address)
                setattr(request, _TLS_NAME, tls_name)
                try:
                    response = super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                            proxies={scheme: proxy} if proxy else {})
                except requests.ConnectionError as exc:
                    if n + 1 < len(addresses) and _not_connected(exc):
                        continue
                    raise
                response.url = url
                return response
        finally:
            request.url = url
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """requests' pool key, plus the host name TLS must present (SNI) and verify: the
        URL names an IP address, the certificate names the host."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        tls_name = getattr(request, _TLS_NAME, None)
        if tls_name and host_params.get("scheme") == "https":
            pool_kwargs["server_hostname"] = tls_name
            pool_kwargs["assert_hostname"] = tls_name
        return host_params, pool_kwargs


class _NoAuth(requests.auth.AuthBase):
    """Send nothing: stops requests from adding ``~/.netrc`` credentials to foreign hosts."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class _CallerFollowsRedirects(requests.Session):
    """A session that never follows a redirect: its caller does, each hop a request of its
    own through the adapter. Also spares reading a redirect's body: requests reads all of
    it into memory (no size limit) to prepare the next hop, even with
    ``allow_redirects=False``."""

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())


def pinned_session(allow_private: bool) -> requests.Session:
    """A requests session for URLs a task names: every http(s) request goes through
    :class:`PinnedAdapter`, and no ``~/.netrc`` credentials are added. A redirect comes
    back as the response (``response.is_redirect``); the caller follows it, or not."""
    session = _CallerFollowsRedirects()
    adapter = PinnedAdapter(allow_private)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.auth = _NoAuth()
    return session


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
