from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


# ----------------------------------------------------------------------------------------
# Real Label Studio for end-to-end tests (tests/support/label_studio.py).
# One server per test session, started on first use (installs .venv-ls when missing;
# VLMINE_LS_VENV overrides its path), stopped at the end. Startup failure is an error,
# never a skip. Attributes: base_url, token (legacy), email, password, pat(), log_path,
# data_dir, api(method, path, ...), stop(). Helpers: create_project, import_tasks.
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def label_studio():
    from tests.support.label_studio import start_label_studio

    server = start_label_studio()
    try:
        yield server
    finally:
        server.stop()
# ------------------------------------------------------------- end of Label Studio block


@pytest.fixture(scope="module")
def http_url():
    """A loopback HTTP server with a route per kind of image trouble (tests/support/loopback.py)."""
    from tests.support.loopback import serve_http

    yield from serve_http()


@pytest.fixture(scope="module")
def s3():
    """A loopback S3 endpoint (moto) holding the bucket ``pics``; a test module may define its own."""
    from tests.support.loopback import serve_s3

    yield from serve_s3()
