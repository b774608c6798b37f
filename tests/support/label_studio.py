"""Start a real Label Studio (pinned version) for tests and benchmarks.

Usage::

    from tests.support.label_studio import start_label_studio, create_project

    server = start_label_studio()          # installs into .venv-ls when missing
    try:
        project_id, task_ids = create_project(
            server, "demo", '<View><Text name="text" value="$text"/></View>',
            [{"text": "a"}, {"text": "b"}],
        )
        token = server.token               # legacy token ("Authorization: Token ...")
        pat = server.pat()                 # personal access token (JWT refresh token)
    finally:
        server.stop()

Label Studio runs in its own virtual environment (it pins Django and its own
label-studio-sdk), by default ``<repo>/.venv-ls``; ``VLMINE_LS_VENV`` overrides
the path. Every server gets a fresh data directory and a free loopback port.
Startup failures raise ``LabelStudioStartError`` with the tail of the server log:
tests that need the server fail, they are never skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import requests

from tests.support.ports import free_port

LS_VERSION = "1.23.2"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-ls"
ADMIN_EMAIL = "admin@example.com"

# First start on a fresh data dir runs all migrations (45-80 s measured on 2 cores);
# leave room for a loaded machine.
DEFAULT_START_TIMEOUT = 300.0
INSTALL_TIMEOUT = 1800.0


class LabelStudioStartError(RuntimeError):
    """Label Studio could not be installed or started."""


def ls_venv_path() -> Path:
    override = os.environ.get("VLMINE_LS_VENV")
    return Path(override).expanduser().resolve() if override else DEFAULT_VENV


def _installed_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists() or not (venv / "bin" / "label-studio").exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_label_studio(venv: Path | None = None) -> Path:
    """Return the ``label-studio`` executable, installing the pinned version if needed.

    A lock file beside the venv keeps parallel test processes from installing twice.
    """
    venv = Path(venv) if venv is not None else ls_venv_path()
    exe = venv / "bin" / "label-studio"
    if _installed_version(venv) == LS_VERSION:
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f".{venv.name}.install.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(venv) == LS_VERSION:
            return exe
        print(f"[label-studio harness] installing label-studio=={LS_VERSION} into {venv}", file=sys.stderr)
        python3 = shutil.which("python3") or sys.executable
        steps = []
        if not (venv / "bin" / "python").exists():
            steps.append([python3, "-m", "venv", str(venv)])
        steps.append([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={LS_VERSION}"])
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            if proc.returncode != 0:
                raise LabelStudioStartError(
                    f"installing Label Studio failed: {' '.join(cmd)} exited {proc.returncode}\n"
                    f"{_tail(proc.stdout + proc.stderr)}"
                )
        version = _installed_version(venv)
        if version != LS_VERSION:
            raise LabelStudioStartError(f"after install {venv} reports label-studio {version!r}, want {LS_VERSION}")
    return exe


NO_REDIS_SETTINGS_MODULE = "settings_without_redis"


def settings_without_redis(data_dir: Path) -> dict[str, str]:
    """The environment that runs Label Studio with no Redis at all.

    The community edition connects at start to the Redis of its RQ queues, hard-wired to db 0
    on localhost's default port, and keeps that connection open: on a developer's machine that
    is their own Redis, which the tests must never touch. A settings module written into ``data_dir`` keeps Label Studio's own settings and
    points every queue at a socket file that does not exist, so Label Studio runs as it does
    where no Redis is installed.
    """
    module_dir = Path(data_dir) / "python"
    module_dir.mkdir(parents=True, exist_ok=True)
    missing_socket = Path(data_dir) / "no-redis.sock"
    (module_dir / f"{NO_REDIS_SETTINGS_MODULE}.py").write_text(
        # base first: importing Label Studio's module reads these settings back from this one
        "from core.settings.base import *  # noqa: F401,F403\n"
        "from core.settings.label_studio import *  # noqa: F401,F403\n"
        "from core.settings.label_studio import RQ_QUEUES as _QUEUES\n\n"
        f"RQ_QUEUES = {{name: {{'UNIX_SOCKET_PATH': {str(missing_socket)!r}, 'DB': 0,\n"
        "                     'DEFAULT_TIMEOUT': queue.get('DEFAULT_TIMEOUT', 180)}\n"
        "             for name, queue in _QUEUES.items()}\n")
    return {"PYTHONPATH": str(module_dir), "DJANGO_SETTINGS_MODULE": NO_REDIS_SETTINGS_MODULE}


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class LabelStudioServer:
    """A running Label Studio. ``token`` is the admin's legacy API token."""

    base_url: str
    token: str
    email: str
    password: str
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)
    _owns_dir: Path | None = field(default=None, repr=False)
    _pat: str | None = field(default=None, repr=False)
    _log_file: Any = field(default=None, repr=False)

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Authenticated request with the legacy token; raises on HTTP errors."""
        kwargs.setdefault("timeout", 120)
        headers = {**self.headers, **kwargs.pop("headers", {})}
        resp = requests.request(method, self.base_url + path, headers=headers, **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp

    def log_tail(self, lines: int = 60) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except OSError as exc:  # pragma: no cover - diagnostics only
            return f"<cannot read {self.log_path}: {exc}>"

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pat(self) -> str:
        """A personal access token (JWT refresh token) for the admin, created once.

        Label Studio allows one live PAT per user, so the value is cached here.
        """
        if self._pat is None:
            resp = self.api("POST", "/api/token/")
            self._pat = resp.json()["token"]
        return self._pat

    def add_user(self, email: str) -> str:
        """Another member of the admin's organization (an annotator); returns its legacy API token.

        The community edition has no API to create a user with a token, so this runs Label
        Studio's own Django shell on the server's database (SQLite takes the second writer).
        """
        venv = ls_venv_path()
        python = venv / "bin" / "python"
        found = subprocess.run([str(python), "-c", "import label_studio, os; print(os.path.dirname(label_studio.__file__))"],
                               capture_output=True, text=True, timeout=120)
        package = Path(found.stdout.strip())
        code = (
            "from users.models import User\n"
            "from organizations.models import Organization\n"
            "from rest_framework.authtoken.models import Token\n"
            f"user = User.objects.create_user(email={email!r}, password={secrets.token_urlsafe(12)!r})\n"
            "org = Organization.objects.first()\n"
            "org.add_user(user)\n"
            "user.active_organization = org\n"
            "user.save(update_fields=['active_organization'])\n"
            "print('TOKEN=' + Token.objects.get_or_create(user=user)[0].key)\n"
        )
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir), "DJANGO_DB": "sqlite",
               "LABEL_STUDIO_DATABASE_NAME": str(self.data_dir / "ls.sqlite3"), "HOME": str(self.data_dir / "home"),
               "LABEL_STUDIO_COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "LABEL_STUDIO_SENTRY_DSN": ""}
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        env.update(settings_without_redis(self.data_dir))
        done = subprocess.run([str(python), str(package / "manage.py"), "shell", "-c", code], cwd=str(package),
                              env=env, capture_output=True, text=True, timeout=300)
        tokens = [line[6:] for line in done.stdout.splitlines() if line.startswith("TOKEN=")]
        if done.returncode != 0 or not tokens:
            raise RuntimeError(f"creating user {email} failed ({done.returncode}):\n{_tail(done.stdout + done.stderr)}")
        return tokens[0]

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (its whole process group) and remove a data dir we created."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._owns_dir is not None and os.environ.get("VLMINE_LS_KEEP_DATA") != "1":
            shutil.rmtree(self._owns_dir, ignore_errors=True)
            self._owns_dir = None

    def __enter__(self) -> "LabelStudioServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_label_studio(
    *,
    data_dir: Path | str | None = None,
    port: int | None = None,
    venv: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    extra_env: dict[str, str] | None = None,
) -> LabelStudioServer:
    """Install if needed, start headless Label Studio, wait for ``/health``; raise on failure."""
    exe = ensure_label_studio(venv)
    owns_dir: Path | None = None
    if data_dir is None:
        owns_dir = Path(tempfile.mkdtemp(prefix="vlmine-ls-"))
        data_dir = owns_dir
    data_dir = Path(data_dir)
    (data_dir / "home").mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    token = secrets.token_hex(16)
    password = secrets.token_urlsafe(12)
    log_path = data_dir / "label-studio.log"

    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_DATABASE_NAME": str(data_dir / "ls.sqlite3"),
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_SENTRY_DSN": "",
        "SENTRY_DSN": "",
        "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
        "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
        "HOME": str(data_dir / "home"),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    # Keep the backend's virtualenv out of Label Studio's interpreter.
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    env.update(settings_without_redis(data_dir))
    cmd = [
        str(exe), "start",
        "--no-browser",
        "--internal-host", "127.0.0.1",
        "--port", str(port),
        "--data-dir", str(data_dir),
        "--username", ADMIN_EMAIL,
        "--password", password,
        "--user-token", token,
        "--enable-legacy-api-token",
    ]
    log_file = open(log_path, "ab")
    proc = subprocess.Popen(
        cmd,
        cwd=str(data_dir),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: stop() ends exactly this tree
    )
    server = LabelStudioServer(
        base_url=f"http://127.0.0.1:{port}",
        token=token,
        email=ADMIN_EMAIL,
        password=password,
        port=port,
        data_dir=data_dir,
        log_path=log_path,
        process=proc,
        _owns_dir=owns_dir,
        _log_file=log_file,
    )
    try:
        _wait_until_up(server, timeout)
    except BaseException as exc:
        tail = server.log_tail()
        keep = server._owns_dir
        server._owns_dir = None  # keep the log for post-mortem
        server.stop()
        print(f"[label-studio harness] startup failed; log {log_path}:\n{tail}", file=sys.stderr)
        if isinstance(exc, LabelStudioStartError):
            raise
        raise LabelStudioStartError(f"Label Studio did not start ({exc}); data dir {keep or data_dir}") from exc
    return server


def _wait_until_up(server: LabelStudioServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not server.is_running():
            raise LabelStudioStartError(
                f"Label Studio exited with code {server.process.returncode if server.process else '?'} "
                f"before /health answered; log {server.log_path}:\n{server.log_tail()}"
            )
        try:
            resp = requests.get(server.base_url + "/health", timeout=5)
            if resp.status_code == 200 and resp.json().get("status") == "UP":
                break
            last = f"/health -> {resp.status_code} {resp.text[:200]}"
        except (requests.RequestException, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(1.0)
    else:
        raise LabelStudioStartError(
            f"Label Studio not up after {timeout:.0f}s ({last}); log {server.log_path}:\n{server.log_tail()}"
        )
    # /health answers before the admin user/token is guaranteed to work: check the token.
    while time.monotonic() < deadline:
        resp = requests.get(server.base_url + "/api/current-user/whoami", headers=server.headers, timeout=10)
        if resp.status_code == 200:
            return
        last = f"whoami -> {resp.status_code} {resp.text[:200]}"
        time.sleep(1.0)
    raise LabelStudioStartError(f"legacy token not accepted: {last}; log {server.log_path}:\n{server.log_tail()}")


# -- fixtures' helpers -----------------------------------------------------------------------

def create_project(
    server: LabelStudioServer,
    title: str,
    label_config: str,
    tasks: Iterable[dict[str, Any]] = (),
    **project_fields: Any,
) -> tuple[int, list[int]]:
    """Create a project and import ``tasks`` (each a ``data`` dict or a full task dict).

    Returns ``(project_id, task_ids)`` with the task ids in import order.
    """
    body = {"title": title, "label_config": label_config, **project_fields}
    project_id = int(server.api("POST", "/api/projects/", json=body).json()["id"])
    task_ids = import_tasks(server, project_id, tasks)
    return project_id, task_ids


def import_tasks(
    server: LabelStudioServer, project_id: int, tasks: Iterable[dict[str, Any]], batch: int = 5000
) -> list[int]:
    payload = [t if "data" in t else {"data": t} for t in tasks]
    ids: list[int] = []
    for start in range(0, len(payload), batch):
        chunk = payload[start:start + batch]
        resp = server.api(
            "POST",
            f"/api/projects/{project_id}/import",
            params={"return_task_ids": "true"},
            data=json.dumps(chunk),
            headers={"Content-Type": "application/json"},
            timeout=600,
        )
        got = resp.json().get("task_ids")
        if got is None or len(got) != len(chunk):
            raise RuntimeError(f"import returned {resp.json()!r}")
        ids.extend(int(i) for i in got)
    return ids


@contextlib.contextmanager
def running_label_studio(**kwargs: Any) -> Iterator[LabelStudioServer]:
    server = start_label_studio(**kwargs)
    try:
        yield server
    finally:
        server.stop()
