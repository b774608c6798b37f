"""DNS rebinding on loopback, for the address guard's tests (``backend.netguard``).

No test may send a packet past loopback, so a "public" address is played by ``PUBLIC``
(127.0.0.2): :func:`public_stand_in` builds an address rule under which it passes while the
rest of loopback stays refused. Real HTTP(S) servers listen on one port on several loopback
addresses (:func:`serve_on`), each recording what reached it, so a test can tell which
address a fetch connected to. :class:`RebindingDNS` answers look-ups of its names from a
script that changes between look-ups, as a rebinding DNS server does. :func:`serve_proxy`
is a forward proxy (plain http and ``CONNECT``); :func:`make_certificates` a CA and a
server certificate for chosen host names.

``install_from_environment`` installs the same stand-ins in a child process
(``python -m backend ...``) from the JSON in ``REBINDING_DNS``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import urlsplit

from backend import netguard
from tests.support.routes import answer_from

#: the loopback address that stands for a public one
PUBLIC = "127.0.0.2"
#: loopback, refused by the default address rule: what an attacker's rebinding points at
INTERNAL = "127.0.0.1"
_REAL_GETADDRINFO = socket.getaddrinfo


def public_stand_in(*public: str) -> Callable[[str, bool], str | None]:
    """An address rule: ``public`` addresses (default ``PUBLIC``) pass, every other address
    is judged by ``netguard.check_address``, so the rest of loopback stays refused."""
    allowed = {ipaddress.ip_address(a) for a in (public or (PUBLIC,))}

    def rule(ip: str, allow_private: bool) -> str | None:
        if ipaddress.ip_address(ip.split("%", 1)[0]) in allowed:
            return None
        return netguard.check_address(ip, allow_private)

    return rule


class RebindingDNS:
    """Answers for ``names`` from a script: the n-th look-up of any of them gets
    ``answers[n]``, the last answer repeating. Look-ups through ``netguard.resolve`` are
    counted in ``guard_lookups``; any other look-up of the names (through
    ``socket.getaddrinfo``, as an HTTP library resolving the name itself would do) in
    ``other_lookups``, and gets the next answer of the same script."""

    def __init__(self, names: Sequence[str], answers: Sequence[Sequence[str]]):
        self.names = {n.lower() for n in names}
        self.answers = [list(a) for a in answers]
        self.guard_lookups: list[str] = []
        self.other_lookups: list[str] = []
        self._lock = threading.Lock()

    def _next(self, host: str, log: list[str]) -> list[str]:
        with self._lock:
            answer = self.answers[min(len(self.guard_lookups) + len(self.other_lookups), len(self.answers) - 1)]
            log.append(host)
        return list(answer)

    def resolve(self, host: str, port: int) -> list[str]:
        """The resolver for ``netguard.resolve``; other names go to the system resolver."""
        if host.lower().rstrip(".") in self.names:
            return self._next(host, self.guard_lookups)
        return netguard.system_resolver(host, port)

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's names
        """``socket.getaddrinfo`` with the script's answer for the names."""
        name = host.decode() if isinstance(host, bytes) else host
        if not isinstance(name, str) or name.lower().rstrip(".") not in self.names:
            return _REAL_GETADDRINFO(host, port, family, type, proto, flags)
        port_number = int(port or 0)
        out = []
        for address in self._next(name, self.other_lookups):
            if ":" in address:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port_number, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port_number)))
        return out

    @contextlib.contextmanager
    def installed(self, rule: Callable[[str, bool], str | None] | None = None) -> Iterator[RebindingDNS]:
        """In force while the block runs: this resolver in ``netguard.resolve`` and behind
        ``socket.getaddrinfo``, and ``rule`` (default :func:`public_stand_in`) as the
        guard's address rule."""
        saved = netguard.resolve, netguard.address_policy, socket.getaddrinfo
        netguard.resolve, netguard.address_policy = self.resolve, rule or public_stand_in()
        socket.getaddrinfo = self.getaddrinfo
        try:
            yield self
        finally:
            netguard.resolve, netguard.address_policy, socket.getaddrinfo = saved


def install_from_environment() -> None:
    """For a child process: install the stand-ins described by ``REBINDING_DNS``
    (``{"names": [...], "answers": [[...], ...], "public": [...]}``) for its whole life."""
    spec = json.loads(os.environ["REBINDING_DNS"])
    dns = RebindingDNS(spec["names"], spec["answers"])
    netguard.resolve = dns.resolve
    netguard.address_policy = public_stand_in(*spec.get("public", [PUBLIC]))
    socket.getaddrinfo = dns.getaddrinfo


# ------------------------------------------------------------------------------ servers
Routes = dict[str, tuple[int, dict[str, str], bytes]]


class _Recording(BaseHTTPRequestHandler):
    """Answers ``routes[path]`` (``(status, headers, body)``, 404 otherwise) and records every
    request: the address it reached, its path, its Host and Authorization headers, the TLS
    name it asked for."""

    routes: Routes = {}
    seen: list[dict] = []
    sni: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        address = self.server.server_address[0]
        self.seen.append({"address": address, "path": self.path, "host": self.headers.get("Host"),
                          "sni": self.sni.get(address), "authorization": self.headers.get("Authorization")})
        answer_from(self, self.routes)


def http_server(address: str, port: int, handler: type) -> ThreadingHTTPServer:
    """A threading HTTP server on ``address`` (IPv4 or IPv6) and ``port`` (0: a free one),
    not yet serving."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
    return server_class((address, port), handler)


@contextlib.contextmanager
def serve_on(routes_by_address: dict[str, Routes], tls: ssl.SSLContext | None = None,
             ) -> Iterator[tuple[int, list[dict]]]:
    """HTTP servers (HTTPS with ``tls``) on one free port, one per loopback address, each
    with its own routes; yields ``(port, seen)``, ``seen`` the requests all of them got."""
    seen: list[dict] = []
    sni: dict = {}
    servers: list[ThreadingHTTPServer] = []
    addresses = list(routes_by_address)
    for _ in range(50):  # a port free on every address
        try:
            port = 0
            for address in addresses:
                handler = type("Handler", (_Recording,), {"routes": routes_by_address[address], "seen": seen,
                                                          "sni": sni})
                servers.append(http_server(address, port, handler))
                port = servers[0].server_address[1]
            break
        except OSError:
            for server in servers:
                server.server_close()
            servers = []
    else:
        raise RuntimeError("no port free on every address")
    if tls is not None:
        def remember_sni(sock, name, _context):
            sni[sock.getsockname()[0]] = name
        tls.sni_callback = remember_sni
        for server in servers:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield port, seen
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def reached(seen: list[dict], address: str) -> list[dict]:
    """The requests that reached ``address``."""
    return [r for r in seen if ipaddress.ip_address(r["address"]) == ipaddress.ip_address(address)]


# ------------------------------------------------------------------------------- proxy
class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy: plain http by the absolute URL of the request line, https by
    ``CONNECT``. It records each request line and Host header, and resolves nothing
    itself when the target is an IP address (what the guard hands it)."""

    seen: list[dict] = []

    def log_message(self, *args):
        pass

    def do_CONNECT(self):  # noqa: N802
        self.seen.append({"method": "CONNECT", "target": self.path, "host": self.headers.get("Host")})
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 10)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()

    def do_GET(self):  # noqa: N802
        self.seen.append({"method": "GET", "target": self.path, "host": self.headers.get("Host")})
        parts = urlsplit(self.path)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=10) as upstream:
            upstream.sendall(f"GET {path} HTTP/1.0\r\nHost: {self.headers.get('Host')}\r\n"
                             "Connection: close\r\n\r\n".encode())
            while data := upstream.recv(65536):
                self.wfile.write(data)
        self.close_connection = True


@contextlib.contextmanager
def serve_proxy() -> Iterator[tuple[str, list[dict]]]:
    """A forward proxy on 127.0.0.1: ``(its URL, the requests it got)``."""
    seen: list[dict] = []
    server = http_server(INTERNAL, 0, type("Handler", (_Proxy,), {"seen": seen}))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://{INTERNAL}:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


# -------------------------------------------------------------------------- certificates
def make_certificates(folder: Path, names: Sequence[str]) -> tuple[Path, ssl.SSLContext]:
    """A CA (its certificate written to ``folder/ca.pem``) and a server certificate for the
    DNS ``names``, signed by it; returns the CA file and a server TLS context holding the
    certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "address guard test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context
