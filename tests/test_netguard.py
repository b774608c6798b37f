"""The address guard against DNS rebinding: a fetch connects only to the address it checked.

Everything stays on loopback (tests/support/rebinding.py): 127.0.0.2 plays a public address
under the tests' address rule, 127.0.0.1 (and ::1) the internal one an attacker's DNS
answer turns to; real servers listen on both, on one port, and record what reached them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from backend import netguard
from backend.errors import ImageError, LabelStudioError
from backend.labelstudio.client import LabelStudioClient
from backend.pipeline.images import ImageFetcher
from tests.support.commands import PYTHON, REPO, clean_env, read_jsonl
from tests.support.fake_openai import FakeOpenAI
from tests.support.loopback import png
from tests.support.rebinding import (
    INTERNAL,
    PUBLIC,
    RebindingDNS,
    http_server,
    make_certificates,
    public_stand_in,
    reached,
    serve_on,
    serve_proxy,
)

NAME = "rebind.test"
PUBLIC_PNG = png(colour=(30, 30, 220))  # what the public server serves: blue
SECRET_PNG = png(colour=(220, 30, 30))  # what the internal one would give away: red


def _image(body: bytes) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "image/png"}, body


def _redirect(location: str) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": location}, b""


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    """A developer's proxy settings must not route these requests."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture()
def both():
    """The same routes on the public stand-in and on the internal address, one port."""
    routes_public = {"/img.png": _image(PUBLIC_PNG)}
    routes_internal = {"/img.png": _image(SECRET_PNG), "/secret.png": _image(SECRET_PNG)}
    with serve_on({PUBLIC: routes_public, INTERNAL: routes_internal}) as (port, seen):
        yield port, seen, routes_public


def _fetch(url: str, allow_private: bool = False) -> bytes:
    return ImageFetcher(allow_private=allow_private).fetch_bytes(url)


def _refusal(url: str, allow_private: bool = False) -> str:
    with pytest.raises(ImageError) as err:
        _fetch(url, allow_private)
    return err.value.reason


# -------------------------------------------------------------------- pinned URLs
@pytest.mark.parametrize("url, address, pinned, host_header", [
    ("http://images.test/a.png?x=1", "192.0.2.7", "http://192.0.2.7/a.png?x=1", "images.test"),
    ("https://images.test:8443/a", "2001:db8::7", "https://[2001:db8::7]:8443/a", "images.test:8443"),
    ("http://user:secret@images.test:80/a", "192.0.2.7", "http://192.0.2.7:80/a", "images.test"),
    ("http://[::1]:8080/a", "::1", "http://[::1]:8080/a", "[::1]:8080"),
])
def test_a_pinned_url_names_the_address_and_its_host_header_the_host(url, address, pinned, host_header):
    assert netguard.pinned_url(url, address) == (pinned, host_header)


# ------------------------------------------------------------------- the stand-ins work
def test_the_rebinding_stand_in_leads_a_check_then_fetch_to_the_internal_server(both):
    """The reported attack, the old way (check the name, then let requests resolve it again):
    the stand-ins reproduce it, so the tests below could fail."""
    port, seen, _ = both
    url = f"http://{NAME}:{port}/img.png"
    with RebindingDNS([NAME], [[PUBLIC], [INTERNAL]]).installed():
        assert netguard.checked_addresses(url, allow_private=False) == [PUBLIC]
        assert requests.get(url, timeout=5).content == SECRET_PNG
    assert [r["address"] for r in seen] == [INTERNAL]


# ------------------------------------------------------------------------- rebinding
def test_public_then_loopback_answers_reach_only_the_checked_public_address(both):
    port, seen, _ = both
    with RebindingDNS([NAME], [[PUBLIC], [INTERNAL]]).installed() as dns:
        assert _fetch(f"http://{NAME}:{port}/img.png") == PUBLIC_PNG
    assert reached(seen, INTERNAL) == []
    assert dns.other_lookups == []  # nothing but the guard resolved the name
    assert [r["host"] for r in reached(seen, PUBLIC)] == [f"{NAME}:{port}"]


def test_each_fetch_resolves_once_and_a_later_internal_answer_is_refused(both):
    port, seen, _ = both
    url = f"http://{NAME}:{port}/img.png"
    with RebindingDNS([NAME], [[PUBLIC], [INTERNAL]]).installed() as dns:
        fetcher = ImageFetcher()
        assert fetcher.fetch_bytes(url) == PUBLIC_PNG
        with pytest.raises(ImageError, match=f"refused: host {NAME} is a private or loopback address"):
            fetcher.fetch_bytes(url)  # a kept-alive connection to the public server changes nothing
    assert dns.guard_lookups == [NAME, NAME] and dns.other_lookups == []
    assert reached(seen, INTERNAL) == [] and len(reached(seen, PUBLIC)) == 1


def test_loopback_then_public_answers_are_refused_at_once(both):
    port, seen, _ = both
    with RebindingDNS([NAME], [[INTERNAL], [PUBLIC]]).installed() as dns:
        reason = _refusal(f"http://{NAME}:{port}/img.png")
    assert reason == (f"refused: host {NAME} is a private or loopback address "
                      "(set IMAGE_ALLOW_PRIVATE_NETWORKS=true to allow it)")
    assert seen == [] and dns.guard_lookups == [NAME]


def test_an_answer_mixing_public_and_internal_addresses_is_refused(both):
    port, seen, _ = both
    with RebindingDNS([NAME], [[PUBLIC, INTERNAL]]).installed():
        assert "private or loopback" in _refusal(f"http://{NAME}:{port}/img.png")
    assert seen == []


def test_a_public_address_that_does_not_answer_gives_way_to_the_next_checked_one(both):
    port, seen, _ = both
    with RebindingDNS([NAME], [["127.0.0.3", PUBLIC]]).installed(public_stand_in("127.0.0.3", PUBLIC)):
        assert _fetch(f"http://{NAME}:{port}/img.png") == PUBLIC_PNG  # nothing listens on 127.0.0.3
    assert [r["address"] for r in seen] == [PUBLIC]


# ------------------------------------------------------------------------- redirects
def test_a_redirect_back_to_the_same_name_is_resolved_and_checked_again(both):
    port, seen, routes_public = both
    routes_public["/hop"] = _redirect(f"http://{NAME}:{port}/secret.png")
    with RebindingDNS([NAME], [[PUBLIC], [INTERNAL]]).installed() as dns:
        assert "private or loopback" in _refusal(f"http://{NAME}:{port}/hop")
    assert [r["path"] for r in seen] == ["/hop"] and reached(seen, INTERNAL) == []
    assert dns.guard_lookups == [NAME, NAME] and dns.other_lookups == []


def test_a_redirect_hop_connects_to_the_address_checked_for_that_hop(both):
    port, seen, routes_public = both
    routes_public["/hop"] = _redirect(f"http://other.{NAME}:{port}/img.png")
    # first hop public; the second hop's name checks public, then would turn internal
    with RebindingDNS([NAME, f"other.{NAME}"], [[PUBLIC], [PUBLIC], [INTERNAL]]).installed() as dns:
        assert _fetch(f"http://{NAME}:{port}/hop") == PUBLIC_PNG
    assert [(r["address"], r["path"], r["host"]) for r in seen] == [
        (PUBLIC, "/hop", f"{NAME}:{port}"), (PUBLIC, "/img.png", f"other.{NAME}:{port}")]
    assert dns.other_lookups == []


def test_label_studio_download_redirects_off_its_origin_are_pinned_hop_by_hop(both):
    port, seen, routes_public = both
    routes_public["/hop"] = _redirect(f"http://{NAME}:{port}/secret.png")
    stand_in_routes = {"/data/upload/1/a.png": _redirect(f"http://{NAME}:{port}/img.png"),
                       "/data/upload/1/b.png": _redirect(f"http://{NAME}:{port}/hop")}
    with serve_on({INTERNAL: stand_in_routes}) as (ls_port, ls_seen):
        client = LabelStudioClient(f"http://{INTERNAL}:{ls_port}", "stand-in-token")
        with RebindingDNS([NAME], [[PUBLIC], [INTERNAL], [PUBLIC], [INTERNAL]]).installed() as dns:
            assert client.download("/data/upload/1/a.png", max_bytes=10**6, timeout=5.0) == PUBLIC_PNG
            with pytest.raises(LabelStudioError) as err:  # the second look-up rebinds: refused
                client.download("/data/upload/1/a.png", max_bytes=10**6, timeout=5.0)
            assert str(err.value) == (f"Label Studio GET /data/upload/1/a.png: redirect refused: host {NAME} is a "
                                      "private or loopback address (set IMAGE_ALLOW_PRIVATE_NETWORKS=true to allow it)")
            with pytest.raises(LabelStudioError, match="redirect refused"):  # public, then a hop that rebinds
                client.download("/data/upload/1/b.png", max_bytes=10**6, timeout=5.0)
    assert len(ls_seen) == 3
    assert [(r["address"], r["path"]) for r in seen] == [(PUBLIC, "/img.png"), (PUBLIC, "/hop")]
    assert [r["authorization"] for r in seen] == [None, None]
    assert dns.other_lookups == []


def test_a_redirect_target_that_cannot_be_reached_fails_without_quoting_its_signed_url():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind((PUBLIC, 0))
        closed = probe.getsockname()[1]
    signed = f"http://{NAME}:{closed}/img.png?X-Amz-Signature=SECRET-SIGNATURE"
    with serve_on({INTERNAL: {"/data/upload/1/a.png": _redirect(signed)}}) as (ls_port, _):
        client = LabelStudioClient(f"http://{INTERNAL}:{ls_port}", "stand-in-token")
        with RebindingDNS([NAME], [[PUBLIC]]).installed():
            with pytest.raises(LabelStudioError) as err:
                client.download("/data/upload/1/a.png", max_bytes=10**6, timeout=5.0)
            image_reason = _refusal(signed)
    assert str(err.value) == (f"Label Studio GET /data/upload/1/a.png failed: no response: redirect target "
                              f"{NAME}:{closed}: cannot connect")
    assert image_reason == f"cannot connect to host {NAME}:{closed}"
    assert "SECRET" not in str(err.value) + image_reason  # requests' own message quotes the query


# ------------------------------------------------------------------------------ IPv6
@pytest.mark.parametrize("internal", ["::1", "::ffff:127.0.0.1"])
def test_ipv6_and_ipv4_mapped_internal_answers_are_refused(both, internal):
    port, seen, _ = both
    with RebindingDNS([NAME], [[internal]]).installed():
        assert "private or loopback" in _refusal(f"http://{NAME}:{port}/img.png")
    with RebindingDNS([NAME], [[PUBLIC], [internal]]).installed() as dns:
        assert _fetch(f"http://{NAME}:{port}/img.png") == PUBLIC_PNG
    assert [r["address"] for r in seen] == [PUBLIC] and dns.other_lookups == []


def test_an_ipv6_answer_is_connected_to_by_its_address_with_the_name_in_the_host_header():
    routes = {"::1": {"/img.png": _image(PUBLIC_PNG)}, INTERNAL: {"/img.png": _image(SECRET_PNG)}}
    with serve_on(routes) as (port, seen):
        with RebindingDNS([NAME], [["::1"], [INTERNAL]]).installed(public_stand_in("::1")):
            assert _fetch(f"http://{NAME}:{port}/img.png") == PUBLIC_PNG
    assert [(r["address"], r["host"]) for r in seen] == [("::1", f"{NAME}:{port}")]


def test_an_ipv4_mapped_answer_connects_where_private_networks_are_allowed(both):
    port, seen, _ = both
    with RebindingDNS([NAME], [["::ffff:127.0.0.1"]]).installed(netguard.check_address):
        assert _fetch(f"http://{NAME}:{port}/img.png", allow_private=True) == SECRET_PNG
    assert [(r["address"], r["host"]) for r in seen] == [(INTERNAL, f"{NAME}:{port}")]


# ----------------------------------------------------------------------------- HTTPS
@pytest.fixture()
def https(tmp_path):
    """An HTTPS server on 127.0.0.1 whose certificate (from a CA of its own) names
    ``images.test`` only; ``(port, seen, CA file)``."""
    ca_file, context = make_certificates(tmp_path, ["images.test"])
    with serve_on({INTERNAL: {"/img.png": _image(PUBLIC_PNG)}}, tls=context) as (port, seen):
        yield port, seen, ca_file


def test_https_verifies_the_certificate_for_the_host_name_while_connecting_to_its_address(https, monkeypatch):
    port, seen, ca_file = https
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))  # a CA bundle from the environment still applies
    with RebindingDNS(["images.test"], [[INTERNAL]]).installed(netguard.check_address) as dns:
        assert _fetch(f"https://images.test:{port}/img.png", allow_private=True) == PUBLIC_PNG
    assert [(r["sni"], r["host"]) for r in seen] == [("images.test", f"images.test:{port}")]
    assert dns.other_lookups == []


def test_https_refuses_a_certificate_for_another_name_or_from_an_unknown_ca(https, monkeypatch):
    port, seen, ca_file = https
    with RebindingDNS(["images.test", "wrong.test"], [[INTERNAL]]).installed(netguard.check_address):
        unknown_ca = _refusal(f"https://images.test:{port}/img.png", allow_private=True)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
        wrong_name = _refusal(f"https://wrong.test:{port}/img.png", allow_private=True)
    assert unknown_ca == f"TLS with host images.test:{port} failed: certificate not trusted or not for this host"
    assert wrong_name == f"TLS with host wrong.test:{port} failed: certificate not trusted or not for this host"
    assert seen == []


def test_https_through_a_proxy_tunnels_to_the_checked_address(https, monkeypatch):
    port, seen, ca_file = https
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    with serve_proxy() as (proxy, proxy_seen):
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        with RebindingDNS(["images.test"], [[INTERNAL], [PUBLIC]]).installed(netguard.check_address):
            assert _fetch(f"https://images.test:{port}/img.png", allow_private=True) == PUBLIC_PNG
    assert [(r["method"], r["target"]) for r in proxy_seen] == [("CONNECT", f"{INTERNAL}:{port}")]
    assert [(r["sni"], r["host"]) for r in seen] == [("images.test", f"images.test:{port}")]


# ----------------------------------------------------------------------------- proxies
def test_plain_http_through_a_proxy_asks_it_for_the_checked_address(both, monkeypatch):
    port, seen, _ = both
    with serve_proxy() as (proxy, proxy_seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        with RebindingDNS([NAME], [[PUBLIC], [INTERNAL]]).installed() as dns:
            assert _fetch(f"http://{NAME}:{port}/img.png") == PUBLIC_PNG
        monkeypatch.setenv("NO_PROXY", NAME)  # NO_PROXY still names hosts: this one goes direct
        with RebindingDNS([NAME], [[PUBLIC], [INTERNAL]]).installed() as direct:
            assert _fetch(f"http://{NAME}:{port}/img.png") == PUBLIC_PNG
    assert [(r["method"], r["target"], r["host"]) for r in proxy_seen] == [
        ("GET", f"http://{PUBLIC}:{port}/img.png", f"{NAME}:{port}")]
    assert [(r["address"], r["host"]) for r in seen] == [(PUBLIC, f"{NAME}:{port}")] * 2
    assert dns.other_lookups == [] and direct.other_lookups == []


# --------------------------------------------------------------------- the whole command
def test_mine_on_a_row_with_a_rebinding_host_reaches_nothing_on_loopback(both, tmp_path):
    """``python -m backend mine`` with the default settings, in a child process that has the
    same stand-ins: the row is mined from the checked (public) address, the internal
    server sees nothing."""
    port, seen, routes_public = both
    routes_public["/secret.png"] = _image(PUBLIC_PNG)  # the same name on the public server: a blue image
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": 1, "image": f"http://{NAME}:{port}/secret.png"}) + "\n")
    spec = {"names": [NAME], "answers": [[PUBLIC], [INTERNAL]], "public": [PUBLIC]}
    bootstrap = ("import runpy, sys\n"
                 "from tests.support.rebinding import install_from_environment\n"
                 "install_from_environment()\n"
                 "sys.argv = ['backend', *sys.argv[1:]]\n"
                 "runpy.run_module('backend', run_name='__main__', alter_sys=True)\n")
    with FakeOpenAI(by_colour={"blue": "a blue car on a street", "red": "a red bus"}) as vlm:
        env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"),
                        REBINDING_DNS=json.dumps(spec))
        done = subprocess.run([PYTHON, "-c", bootstrap, "mine", str(rows), "--out", str(tmp_path / "out.jsonl"),
                               "-q"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    [row] = read_jsonl(tmp_path / "out.jsonl")
    assert row["error"] is None and row["description"] == "a blue car on a street"
    assert reached(seen, INTERNAL) == []
    assert [(r["path"], r["host"]) for r in reached(seen, PUBLIC)] == [("/secret.png", f"{NAME}:{port}")]


def test_a_redirect_body_is_never_read(monkeypatch):
    """requests reads a whole redirect body into memory to prepare the next hop, even when
    not following it; the guarded session leaves it unread, so an endless 302 costs nothing."""
    sent = {"bytes": 0}
    done = threading.Event()

    class Endless(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            if self.path != "/endless":
                self.send_response(200)
                self.send_header("Content-Length", str(len(PUBLIC_PNG)))
                self.end_headers()
                self.wfile.write(PUBLIC_PNG)
                return
            self.send_response(302)
            self.send_header("Location", "/img.png")
            self.send_header("Content-Length", str(64 * 2**20))
            self.end_headers()
            try:
                while sent["bytes"] < 64 * 2**20:
                    self.wfile.write(b"z" * 65536)
                    sent["bytes"] += 65536
            except OSError:  # the client closed the connection
                pass
            done.set()

    server = http_server(PUBLIC, 0, Endless)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with RebindingDNS([NAME], [[PUBLIC]]).installed():
            assert _fetch(f"http://{NAME}:{server.server_address[1]}/endless") == PUBLIC_PNG
        assert done.wait(10)
    finally:
        server.shutdown()
        server.server_close()
    assert sent["bytes"] < 16 * 2**20  # what the socket buffers took before the client hung up
