from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def pytest_configure(config):
    """A Redis named in the developer's environment is a server the tests did not start: drop
    both names, so that neither a test, nor a backend or worker process a test starts (they
    inherit the environment), can reach it. ``redis_server`` sets REDIS_TEST_URL again, to the
    server the test run starts."""
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("REDIS_TEST_URL", None)


def pytest_collection_modifyitems(config, items):
    """Every test that boots Label Studio is marked ``e2e``, so that ``-m "not e2e"`` (and the
    fast loop) never starts one: a test using the ``label_studio`` fixture without the marker
    stops the run at collection."""
    unmarked = [item.nodeid for item in items
                if "label_studio" in getattr(item, "fixturenames", ()) and item.get_closest_marker("e2e") is None]
    if unmarked:
        raise pytest.UsageError("these tests start Label Studio but are not marked e2e:\n  " + "\n  ".join(unmarked))


# ----------------------------------------------------------------------------------------
# Real Redis: one server per test run, started on first use on a free port with its own
# directory and no persistence, stopped at the end (tests/support/redis_server.py). Tests that
# keep to a unique key prefix share db PREFIX_DB (``redis_server.url()``); tests that need a
# whole database (RQ) take ``redis_db_url``. A missing redis-server is an error, never a skip.
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    from tests.support.redis_server import REDIS_TEST_URL, SHARED_SERVER_DATABASES, RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"), databases=SHARED_SERVER_DATABASES).start()
    os.environ[REDIS_TEST_URL] = server.url()
    try:
        yield server
    finally:
        os.environ.pop(REDIS_TEST_URL, None)
        server.stop()


@pytest.fixture()
def redis_db_url(redis_server):
    """The URL of a whole database of the test run's Redis, empty, for this test alone."""
    with redis_server.lend_database() as url:
        yield url
# ------------------------------------------------------------------------ end of Redis block


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
