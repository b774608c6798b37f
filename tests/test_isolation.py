"""The tests touch no server they did not start.

A developer's Redis on the default port may hold real data, and the tests empty whole Redis
databases (RQ keeps its keys at fixed names). So the tests start their own redis-server
(tests/support/redis_server.py, one per test run plus the ones a restart test owns). This module
checks the test sources for the ways a test could reach someone else's Redis (its default port
on this machine, a loopback Redis address or database written out, REDIS_URL or REDIS_TEST_URL
read from the environment, a database emptied or a redis-server started outside the one module
that owns them), and checks at run time that REDIS_TEST_URL names the very server the test run
started. It also checks that Label Studio starts only through the ``label_studio`` fixture, whose
users must be marked ``e2e``: the fast loop starts none.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from redis.connection import Connection

from tests.support.redis_server import PREFIX_DB, REDIS_TEST_URL

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "tests" / "support" / "redis_server.py"  # the one module that starts and empties
THIS = Path(__file__).resolve()
DEFAULT_REDIS_PORT = Connection().port  # Redis's default, written nowhere in the tests
SCANNED_SUFFIXES = {".py", ".md", ".ini", ".sh", ".json", ".txt", ".yml", ".yaml", ".toml", ".cfg"}

# the port of a named host (a settings value such as redis://redis-host:PORT/0, never connected to)
NAMED_HOST = re.compile(r"(?<![\w.-])(?!localhost:)[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z][A-Za-z0-9-]*)*:$")
LOOPBACK_REDIS_ADDRESS = re.compile(
    r"rediss?://(?:[^@/\s'\"]*@)?(?:127(?:\.\d{1,3}){3}|localhost|\[::1\]|0\.0\.0\.0)(?::\d+|(?=[/'\"\s]|$))",
    re.IGNORECASE)
ENV_REDIS_READ = re.compile(r"""(?:getenv\(|environ\.get\(|environ\[)\s*["']REDIS_(?:TEST_)?URL["']""")
EMPTIES_A_DATABASE = re.compile(r"flush_?(?:db|all)", re.IGNORECASE)
STARTS_A_REDIS_SERVER = re.compile(r"""["']redis-server["']""")


def scanned_files() -> list[Path]:
    """Every text file of tests/ (sources, docs, fixtures, pytest.ini) and the test command."""
    files = [p for p in (ROOT / "tests").rglob("*")
             if p.is_file() and p.suffix in SCANNED_SUFFIXES and "__pycache__" not in p.parts]
    return sorted(files + [ROOT / "pytest.ini", ROOT / "scripts" / "test.sh"])


def violations(path: Path, text: str) -> list[str]:
    """What in ``text`` could point a test at a Redis the tests did not start."""
    found = []

    def where(index: int) -> str:
        line = text.count("\n", 0, index) + 1
        return f"{path.relative_to(ROOT)}:{line}"

    for match in re.finditer(rf"(?<!\d){DEFAULT_REDIS_PORT}(?!\d)", text):
        if not NAMED_HOST.search(text[max(0, match.start() - 80):match.start()]):
            found.append(f"{where(match.start())}: names the default Redis port")
    for match in LOOPBACK_REDIS_ADDRESS.finditer(text):
        found.append(f"{where(match.start())}: a fixed loopback Redis address {match.group(0)!r}")
    for match in ENV_REDIS_READ.finditer(text):
        found.append(f"{where(match.start())}: reads a Redis address from the environment")
    if path.resolve() != OWNER and path.suffix == ".py":
        for pattern, what in ((EMPTIES_A_DATABASE, "empties a Redis database"),
                              (STARTS_A_REDIS_SERVER, "starts a redis-server")):
            for match in pattern.finditer(text):
                found.append(f"{where(match.start())}: {what} outside tests/support/redis_server.py")
    return found


def test_no_test_source_points_at_a_redis_the_tests_did_not_start():
    found = [v for path in scanned_files() if path.resolve() != THIS
             for v in violations(path, path.read_text(errors="replace"))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("line", [
    'url = "redis://127.0.0.1:%d/13"' % DEFAULT_REDIS_PORT,
    'client = redis.Redis(port=%d)' % DEFAULT_REDIS_PORT,
    'url = "redis://localhost/0"',
    'url = "redis://127.0.0.1:6393/0"',
    'url = "redis://:secret@[::1]:7000/2"',
    'url = os.environ.get("REDIS_TEST_URL", "")',
    'url = os.getenv("REDIS_URL")',
    'client.flushdb()',
    'client.execute_command("FLUSHALL")',
    'cmd = ["redis-server", "--port", str(port)]',
])
def test_the_check_finds_each_way_to_reach_a_foreign_redis(line):
    """The static check above is only as good as its patterns: each of these lines is caught."""
    assert violations(ROOT / "tests" / "test_example.py", line + "\n")


@pytest.mark.parametrize("line", [
    'Settings.from_env({"REDIS_URL": "redis://redis-host:%d/0"})' % DEFAULT_REDIS_PORT,
    'url = f"redis://127.0.0.1:{self.port}/{db}"',
    'env.pop("REDIS_URL", None)',
    'hook("http://127.0.0.1:9/webhook")',
])
def test_the_check_leaves_settings_values_and_started_servers_alone(line):
    assert not violations(ROOT / "tests" / "test_example.py", line + "\n")


def test_label_studio_starts_only_through_the_e2e_fixture():
    """conftest stops the run when a test takes the ``label_studio`` fixture without the ``e2e``
    marker; that covers every test only if no test starts Label Studio another way."""
    starts = re.compile(r"\b(?:start_label_studio|running_label_studio)\(")
    conftest = ROOT / "tests" / "conftest.py"
    found = [f"{path.relative_to(ROOT)}" for path in (ROOT / "tests").rglob("test_*.py")
             if starts.search(path.read_text())]
    assert not found, f"start Label Studio outside the label_studio fixture: {found}"
    assert starts.search(conftest.read_text())  # the fixture itself still starts it


def test_redis_test_url_names_the_server_this_test_run_started(redis_server):
    url = os.environ[REDIS_TEST_URL]
    assert url == redis_server.url(PREFIX_DB)
    parsed = urlparse(url)
    assert parsed.hostname == "127.0.0.1" and parsed.port == redis_server.port != DEFAULT_REDIS_PORT
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        info = client.info("server")
        assert info["process_id"] == redis_server.proc.pid  # the process the test run started, no other
        assert info["tcp_port"] == redis_server.port
        config = client.config_get("*")
        assert Path(config["dir"]).resolve() == redis_server.data_dir.resolve()  # its own directory
        assert config["save"] == "" and config["appendonly"] == "no"  # nothing written to disk
    finally:
        client.close()


def test_no_redis_address_from_the_developers_environment_reaches_a_test(redis_server):
    assert "REDIS_URL" not in os.environ  # a worker or backend a test starts inherits os.environ


def test_a_lent_database_is_empty_is_nobody_elses_and_is_emptied_again(redis_server):
    with redis_server.lend_database() as first:
        client = redis.Redis.from_url(first)
        assert client.dbsize() == 0
        client.set("left-behind", 1)
        with redis_server.lend_database() as second:
            assert second != first and PREFIX_DB not in (int(urlparse(u).path[1:]) for u in (first, second))
            assert redis.Redis.from_url(second).dbsize() == 0
    assert client.dbsize() == 0
    client.close()
