"""ImageFetcher against real servers on loopback: HTTP (http.server) and S3 (moto)."""

from __future__ import annotations

import base64
import functools
import io

import boto3
import pytest
from PIL import Image

from backend.pipeline.images import ImageError, content_hash, image_ref_from_task
from backend.pipeline.images import ImageFetcher as GuardedFetcher
from tests.support.loopback import RED_PNG, TRICKLE, Handler, png

# the test servers are on loopback, which the fetching guard refuses by default
ImageFetcher = functools.partial(GuardedFetcher, allow_private=True)


class FakeLabelStudio:
    """Duck-typed LabelStudioClient: records what the fetcher asks of it."""

    def __init__(self, base_url: str, body: bytes = RED_PNG, error: Exception | None = None, presigned: str = ""):
        self.base_url, self.body, self.error, self.presigned = base_url, body, error, presigned
        self.downloads: list[tuple] = []
        self.private_allowed: list[bool] = []
        self.presigns: list[tuple] = []

    def download(self, url_or_path, max_bytes, timeout, allow_private=False):
        self.downloads.append((url_or_path, max_bytes, timeout))
        self.private_allowed.append(allow_private)
        if self.error:
            raise self.error
        return self.body

    def presign(self, task_id, uri):
        self.presigns.append((task_id, uri))
        return self.presigned


def reason(fetcher: ImageFetcher, ref: str, task_id=None) -> str:
    with pytest.raises(ImageError) as info:
        fetcher.load(ref, task_id)
    assert str(info.value) == info.value.reason
    return info.value.reason


# ------------------------------------------------------------------------ http
def test_http_image_decodes_to_rgb(http_url):
    image = ImageFetcher().load(f"{http_url}/red.png")
    assert image.mode == "RGB" and image.size == (40, 30) and image.getpixel((3, 3)) == (200, 30, 30)
    assert ImageFetcher().load(f"{http_url}/redirect").size == (40, 30)
    assert ImageFetcher().fetch_bytes(f"{http_url}/red.png") == RED_PNG


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("path, expected", [
    ("/missing.png", "HTTP 404 from host 127.0.0.1"),
    ("/text", "not an image"),
    ("/corrupt.png", ""),
    ("/truncated.png", "truncated or corrupt PNG"),
    ("/truncated.jpg", "truncated or corrupt JPEG"),
    ("/bomb.png", "decompression bomb"),
    ("/bomb-warn.png", "decompression bomb: 10000x10000 pixels > 89478485"),
    ("/empty", "empty file"),
])
def test_http_failures_have_clear_reasons(http_url, path, expected):
    text = reason(ImageFetcher(), f"{http_url}{path}?X-Amz-Signature=SECRET")
    assert expected in text
    assert "SECRET" not in text
    if path == "/corrupt.png":
        assert "corrupt" in text or "not an image" in text


def test_byte_cap_with_and_without_content_length(http_url):
    fetcher = ImageFetcher(max_bytes=1000)
    assert reason(fetcher, f"{http_url}/big.bin").startswith("too large: ")
    assert reason(fetcher, f"{http_url}/streamed").startswith("too large: more than")


def test_read_timeout(http_url):
    assert "timeout" in reason(ImageFetcher(read_timeout=0.2), f"{http_url}/slow")


@pytest.mark.timeout(60)  # without the deadline between socket reads, this fetch would hang for 55 hours
def test_the_total_timeout_holds_against_a_server_that_trickles_a_declared_body(http_url):
    """Content-Length 10 MB, then a byte every 20 ms: no read times out, the transfer deadline must end it."""
    host = http_url.split("://", 1)[1]
    text = reason(ImageFetcher(read_timeout=5, total_timeout=0.3), f"{http_url}/trickle")
    assert text == f"timeout: transfer from host {host} took over 0.3 s"
    assert TRICKLE["left"].wait(30)  # the connection was dropped: the server stopped sending
    assert TRICKLE["sent"] < 10**7


@pytest.mark.parametrize("ref, expected", [
    ("http://[bad/a.jpg", "invalid URL: malformed host in brackets"),
    ("https://[bad/a.jpg", "invalid URL: malformed host in brackets"),
    ("http://example.com:99999/a.jpg", "invalid URL: port out of range 0-65535"),
    ("http://example.com:abc/a.jpg", "invalid URL: port is not a number"),
])
def test_malformed_urls_fail_with_a_reason(ref, expected):
    assert reason(GuardedFetcher(), ref) == expected
    presigned = FakeLabelStudio("http://ls.invalid:8080", presigned=ref)
    assert reason(GuardedFetcher(label_studio=presigned), "gs://bucket/a.png", task_id=3) == expected


def test_a_redirect_to_a_malformed_url_fails_with_a_reason(http_url):
    host = http_url.split("://", 1)[1]
    assert reason(ImageFetcher(), f"{http_url}/to-bad-port") == (
        f"host {host} redirected to an invalid URL: port out of range 0-65535")
    assert reason(ImageFetcher(), f"{http_url}/to-bad-host") == (
        f"host {host} redirected to an invalid URL: malformed host in brackets")


def test_thin_images_are_refused_before_decoding():
    def refused(fetcher, size):
        with pytest.raises(ImageError) as info:
            fetcher.decode(png(size))
        return info.value.reason

    fetcher = ImageFetcher()  # at most 20:1
    assert refused(fetcher, (4000, 1)) == "image is 4000x1 pixels: aspect ratio over 20:1"
    assert refused(fetcher, (3, 400)) == "image is 3x400 pixels: aspect ratio over 20:1"
    assert fetcher.decode(png((40, 2))).size == (40, 2)  # 20:1 itself is fine
    assert refused(ImageFetcher(max_aspect_ratio=2.5), (40, 15)) == "image is 40x15 pixels: aspect ratio over 2.5:1"
    assert ImageFetcher(max_aspect_ratio=0).decode(png((4000, 1))).size == (4000, 1)


def test_max_pixels_is_checked_before_decoding(http_url):
    assert reason(ImageFetcher(max_pixels=100), f"{http_url}/red.png") == "decompression bomb: 40x30 pixels > 100"


def _photo(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    """A smooth photo-like image: a gradient, which shrinks well at reduced DCT scales."""
    w, h = size
    image = Image.linear_gradient("L").resize((w, h)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=90) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_big_jpegs_decode_at_a_reduced_scale():
    fetcher = ImageFetcher()  # decode_min_side 1024
    big = fetcher.decode(_photo("JPEG", (4200, 2800)))
    assert big.size == (2100, 1400) and big.mode == "RGB"  # 1/2: 1/4 would make the short side 700
    assert ImageFetcher(decode_min_side=600).decode(_photo("JPEG", (4200, 2800))).size == (1050, 700)
    assert ImageFetcher(decode_min_side=0).decode(_photo("JPEG", (4200, 2800))).size == (4200, 2800)
    assert fetcher.decode(_photo("JPEG", (2000, 1500))).size == (2000, 1500)  # short side under 2 x 1024
    grey = fetcher.decode(_photo("JPEG", (3000, 2400), mode="L"))
    assert grey.size == (1500, 1200) and grey.mode == "RGB"
    # the reduced image is the same picture: its mean brightness per column band is kept
    full = ImageFetcher(decode_min_side=0).decode(_photo("JPEG", (4200, 2800))).resize((2100, 1400))
    diff = [abs(a - b) for a, b in zip(big.convert("L").resize((21, 14)).getdata(),
                                       full.convert("L").resize((21, 14)).getdata())]
    assert max(diff) <= 4


def test_other_big_images_are_reduced_right_after_decoding():
    fetcher = ImageFetcher()  # decode_min_side 1024
    png = fetcher.decode(_photo("PNG", (4200, 2800)))
    assert png.size == (2100, 1400) and png.mode == "RGB"
    assert fetcher.decode(_photo("PNG", (5000, 3100))).size == (1667, 1034)  # 1/3: short side still >= 1024
    assert fetcher.decode(_photo("PNG", (3000, 2000))).size == (3000, 2000)  # short side under 2 x 1024
    assert ImageFetcher(decode_min_side=0).decode(_photo("PNG", (4200, 2800))).size == (4200, 2800)
    grey = fetcher.decode(_photo("PNG", (4200, 2800), mode="L"))
    assert grey.size == (2100, 1400) and grey.mode == "RGB"
    full = ImageFetcher(decode_min_side=0).decode(_photo("PNG", (4200, 2800))).resize((2100, 1400))
    diff = [abs(a - b) for a, b in zip(png.convert("L").resize((21, 14)).getdata(),
                                       full.convert("L").resize((21, 14)).getdata())]
    assert max(diff) <= 4


def test_refused_schemes():
    fetcher = ImageFetcher()
    assert reason(fetcher, "file:///etc/passwd") == "unsupported scheme file://"
    assert reason(fetcher, "ftp://host/x.png") == "unsupported scheme ftp://"
    assert "LABEL_STUDIO_URL is not set" in reason(fetcher, "/data/upload/1/x.png")
    assert reason(fetcher, "   ") == "empty image reference"


# ---------------------------------------------------------------- Label Studio
def test_label_studio_urls_go_through_the_client(http_url):
    port = http_url.rsplit(":", 1)[1]
    ls = FakeLabelStudio(f"http://127.0.0.1:{port}/")
    fetcher = ImageFetcher(label_studio=ls, connect_timeout=2, read_timeout=3)
    assert fetcher.load(f"{http_url}/data/upload/1/abc.png").size == (40, 30)
    assert fetcher.load("/data/upload/1/abc.png").size == (40, 30)
    assert fetcher.load("data/upload/2/abc.png").size == (40, 30)
    assert fetcher.load("/data/local-files/?d=pics/a.png").size == (40, 30)  # no local root: through LS
    assert [d[0] for d in ls.downloads] == [
        f"{http_url}/data/upload/1/abc.png", "/data/upload/1/abc.png", "data/upload/2/abc.png",
        "/data/local-files/?d=pics/a.png",
    ]
    assert ls.downloads[0][1:] == (fetcher.max_bytes, (2, 3))


def test_other_hosts_get_no_credentials(http_url):
    port = int(http_url.rsplit(":", 1)[1])
    for base in (f"http://localhost:{port}", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}"):
        ls = FakeLabelStudio(base)
        Handler.seen.clear()
        assert ImageFetcher(label_studio=ls).load(f"{http_url}/red.png").size == (40, 30)
        assert ls.downloads == []
        assert len(Handler.seen) == 1 and "Authorization" not in Handler.seen[0]


def test_default_ports_match_label_studio():
    ls = FakeLabelStudio("https://ls.example.com")
    fetcher = ImageFetcher(label_studio=ls)
    fetcher.fetch_bytes("https://LS.example.com:443/data/upload/3/x.png")
    assert len(ls.downloads) == 1


def test_label_studio_errors_are_readable_and_redacted():
    class HTTPError(Exception):
        def __init__(self, status):
            super().__init__(f"{status} for url http://ls/data/upload/x.png?token=abc Token SECRET")
            self.response = type("R", (), {"status_code": status})()

    fetcher = ImageFetcher(label_studio=FakeLabelStudio("http://ls:8080", error=HTTPError(404)))
    assert reason(fetcher, "/data/upload/x.png") == "HTTP 404 from Label Studio"
    fetcher = ImageFetcher(label_studio=FakeLabelStudio("http://ls:8080", error=RuntimeError("boom Token SECRET")))
    text = reason(fetcher, "/data/upload/x.png")
    assert "SECRET" not in text and "boom" in text
    fetcher = ImageFetcher(max_bytes=10, label_studio=FakeLabelStudio("http://ls:8080"))
    assert reason(fetcher, "/data/upload/x.png").startswith("too large")


def test_cloud_uris_are_presigned_by_label_studio(http_url):
    ls = FakeLabelStudio("http://ls.invalid:8080", presigned=f"{http_url}/red.png?X-Goog-Signature=SECRET")
    fetcher = ImageFetcher(label_studio=ls)
    assert fetcher.load("gs://bucket/a.png", task_id=7).size == (40, 30)
    assert fetcher.load("azure-blob://container/a.png", task_id=8).size == (40, 30)
    assert ls.presigns == [(7, "gs://bucket/a.png"), (8, "azure-blob://container/a.png")]
    assert "task id" in reason(fetcher, "gs://bucket/a.png")
    assert "LABEL_STUDIO_URL" in reason(ImageFetcher(), "gs://bucket/a.png", task_id=1)
    proxied = FakeLabelStudio("http://ls.invalid:8080", presigned="/tasks/9/presign/?fileuri=Z3M6Ly9i")
    assert ImageFetcher(label_studio=proxied).load("gs://b/c.png", task_id=9).size == (40, 30)
    assert proxied.downloads[0][0] == "/tasks/9/presign/?fileuri=Z3M6Ly9i"


# ----------------------------------------------------------------- local files
def test_local_files_root(tmp_path):
    (tmp_path / "root" / "sub dir").mkdir(parents=True)
    (tmp_path / "root" / "sub dir" / "a.png").write_bytes(RED_PNG)
    (tmp_path / "secret.png").write_bytes(RED_PNG)
    ls = FakeLabelStudio("http://ls:8080")
    fetcher = ImageFetcher(local_files_root=str(tmp_path / "root"), label_studio=ls)
    assert fetcher.load("/data/local-files/?d=sub%20dir/a.png").size == (40, 30)
    assert fetcher.load("http://ls:8080/data/local-files/?d=sub%20dir/a.png").size == (40, 30)
    assert ls.downloads == []  # read from disk, not through Label Studio
    assert "escapes" in reason(fetcher, "/data/local-files/?d=../secret.png")
    assert "escapes" in reason(fetcher, "/data/local-files/?d=sub%20dir/../../secret.png")
    assert "not found" in reason(fetcher, "/data/local-files/?d=/etc/passwd")
    assert "not found" in reason(fetcher, "/data/local-files/?d=nope.png")
    assert "?d=" in reason(fetcher, "/data/local-files/")
    assert "directory" in reason(fetcher, "/data/local-files/?d=sub%20dir")
    assert reason(ImageFetcher(local_files_root=str(tmp_path / "root"), max_bytes=10),
                  "/data/local-files/?d=sub%20dir/a.png").startswith("too large")


def test_local_files_refuse_nul_bytes_and_climbing_but_follow_links(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (elsewhere / "photo.png").write_bytes(RED_PNG)
    (tmp_path / "secret.png").write_bytes(RED_PNG)
    (root / "linked.png").symlink_to(elsewhere / "photo.png")  # as `python -m backend mine` lists them
    (root / "linkdir").symlink_to(elsewhere, target_is_directory=True)
    fetcher = ImageFetcher(local_files_root=str(root))
    assert reason(fetcher, "/data/local-files/?d=a%00.jpg") == "local file path contains a NUL byte"
    assert fetcher.load("/data/local-files/?d=linked.png").size == (40, 30)
    assert fetcher.load("/data/local-files/?d=linkdir/photo.png").size == (40, 30)
    for climbing in ("../secret.png", "linkdir/../../secret.png", "%2E%2E/secret.png",
                     "linkdir/../../root/../secret.png"):
        assert reason(fetcher, f"/data/local-files/?d={climbing}") == (
            "local file path escapes LOCAL_FILES_DOCUMENT_ROOT")


# ----------------------------------------------------------------------- data:
def test_data_uris():
    encoded = base64.b64encode(RED_PNG).decode()
    fetcher = ImageFetcher()
    assert fetcher.load(f"data:image/png;base64,{encoded}").getpixel((0, 0)) == (200, 30, 30)
    assert "not an image" in reason(fetcher, f"data:text/plain;base64,{encoded}")
    assert "not valid base64" in reason(fetcher, "data:image/png;base64,@@@")
    assert "malformed" in reason(fetcher, "data:image/png;base64")
    assert reason(ImageFetcher(max_bytes=100), f"data:image/png;base64,{encoded}").startswith("too large")


# -------------------------------------------------------------------------- s3
def test_s3_objects(s3):
    fetcher = ImageFetcher(s3_endpoint_url=s3)
    assert fetcher.load("s3://pics/cats/red cat?.png").size == (40, 30)  # '?' is part of the key
    assert reason(fetcher, "s3://pics/cats/none.png") == "S3 NoSuchKey: s3://pics/cats/none.png"
    assert reason(fetcher, "s3://nobucket/a.png") == "S3 NoSuchBucket: nobucket"
    assert "bucket and a key" in reason(fetcher, "s3://pics")
    assert reason(ImageFetcher(s3_endpoint_url=s3, max_bytes=1000), "s3://pics/big.bin").startswith("too large")


def test_s3_access_denied():
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    fetcher = ImageFetcher()
    fetcher._s3 = client
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        assert reason(fetcher, "s3://pics/a.png") == "S3 access denied (AccessDenied): s3://pics/a.png"


# ---------------------------------------------------------------------- decode
def test_decoding_modes():
    fetcher = ImageFetcher()
    rgba = fetcher.decode(png(mode="RGBA", colour=(0, 0, 255, 0)))
    assert rgba.mode == "RGB" and rgba.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert fetcher.decode(png(mode="L", colour=128)).getpixel((0, 0)) == (128, 128, 128)
    assert fetcher.decode(png(mode="I;16", colour=65535)).getpixel((0, 0)) == (255, 255, 255)
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), "red").save(rotated, format="JPEG", exif=exif)
    assert fetcher.decode(rotated.getvalue()).size == (20, 40)


def test_task_helpers():
    assert image_ref_from_task({"id": 1, "data": {"image": " /data/upload/a.png "}}, "image") == "/data/upload/a.png"
    with pytest.raises(ImageError, match="no data field 'img'"):
        image_ref_from_task({"data": {"image": "x"}}, "img")
    with pytest.raises(ImageError, match="not an image reference"):
        image_ref_from_task({"data": {"image": 3}}, "image")
    with pytest.raises(ImageError):
        image_ref_from_task({}, "image")
    assert content_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ------------------------------------------------------------------ fetching guard
@pytest.mark.parametrize("ip,refused", [
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"), ("169.254.1.2", "link-local"),
    ("fe80::1", "link-local"), ("127.0.0.1", "private or loopback"), ("10.1.2.3", "private or loopback"),
    ("192.168.0.7", "private or loopback"), ("172.16.5.5", "private or loopback"), ("::1", "private or loopback"),
    ("::ffff:127.0.0.1", "private or loopback"), ("0.0.0.0", "reserved"), ("224.0.0.1", "reserved"),
])
def test_guard_refuses_internal_addresses(ip, refused):
    from backend.pipeline.images import check_address

    assert refused in check_address(ip, allow_private=False)


def test_guard_allows_public_addresses_and_private_ones_only_when_told():
    from backend.pipeline.images import check_address

    assert check_address("93.184.216.34", allow_private=False) is None
    assert check_address("10.1.2.3", allow_private=True) is None
    assert "metadata" in check_address("169.254.169.254", allow_private=True)


# IPv6 transition addresses that lead to an IPv4 address: 6to4 (2002:AABB:CCDD::), Teredo
# (2001:0:SERVER:FLAGS:PORT:CLIENT, the client's bits inverted), NAT64 (64:ff9b::a.b.c.d)
@pytest.mark.parametrize("ip,refused", [
    ("2002:a9fe:a9fe::", "metadata"), ("2002:a9fe:a9fe:1::5", "metadata"), ("2002:a9fe:102::", "link-local"),
    ("2002:7f00:1::", "private or loopback"), ("2002:a00:1::", "private or loopback"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "metadata"), ("2001:0:4136:e378:8000:63bf:5601:fefd", "link-local"),
    ("2001:0:4136:e378::80ff:fffe", "private or loopback"), ("2001:0:4136:e378::3f57:fefe", "private or loopback"),
    ("64:ff9b::a9fe:a9fe", "metadata"), ("64:ff9b::169.254.1.2", "link-local"),
    ("64:ff9b::127.0.0.1", "private or loopback"), ("64:ff9b::192.168.0.7", "private or loopback"),
    ("2002:0:0::", "reserved"), ("64:ff9b::e000:1", "reserved"),
])
def test_guard_judges_ipv6_transition_addresses_by_the_ipv4_address_they_embed(ip, refused):
    from backend.pipeline.images import check_address

    assert refused in check_address(ip, allow_private=False)
    if refused == "private or loopback":
        assert check_address(ip, allow_private=True) is None
    else:
        assert refused in check_address(ip, allow_private=True)


@pytest.mark.parametrize("ip", ["2002:5db8:d822::", "2002:5db8:d822:1::1", "2001:0:4136:e378::a247:27dd",
                                "64:ff9b::93.184.216.34"])
def test_guard_allows_transition_addresses_of_public_ipv4_hosts(ip):
    from backend.pipeline.images import check_address

    assert check_address(ip, allow_private=False) is None


@pytest.mark.parametrize("ip", ["::169.254.169.254", "::127.0.0.1", "::10.1.2.3", "::93.184.216.34"])
def test_guard_refuses_ipv4_compatible_addresses_always(ip):
    from backend.pipeline.images import check_address

    assert check_address(ip, allow_private=True) == "a reserved address"


def test_loopback_image_urls_are_refused_by_default(http_url):
    text = reason(GuardedFetcher(), f"{http_url}/red.png")
    assert text.startswith("refused: host 127.0.0.1 is a private or loopback address")


def test_a_redirect_to_an_internal_address_is_refused(http_url):
    # allowed to reach the (loopback) test server, which redirects to the metadata address
    text = reason(ImageFetcher(), f"{http_url}/to-metadata")
    assert text == "refused: host 169.254.169.254 is a cloud metadata address"


def test_label_studio_host_is_allowed_even_on_loopback(http_url):
    ls = FakeLabelStudio(http_url, body=RED_PNG)
    assert GuardedFetcher(label_studio=ls).fetch_bytes(f"{http_url}/data/upload/1/x.png") == RED_PNG


@pytest.mark.parametrize("allow", [False, True])
def test_label_studio_downloads_are_told_whether_private_networks_are_allowed(http_url, allow):
    # Label Studio follows redirects off its origin under the same guard
    ls = FakeLabelStudio(http_url, body=RED_PNG)
    GuardedFetcher(label_studio=ls, allow_private=allow).fetch_bytes("/data/upload/1/x.png")
    assert ls.private_allowed == [allow]
