"""The commands a user types: ``bash scripts/serve.sh``, ``vlmine``/``python -m backend``, and
``pip install .`` from another directory. Real processes, real ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from backend.commands import main, serve_argv
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_usage_and_unknown_commands(capsys):
    assert main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_serve_runs_gunicorn_unless_the_development_server_is_asked_for():
    prod = serve_argv(["--host", "127.0.0.1", "--port", "9191"], python="py")
    assert prod[:3] == ["py", "-m", "gunicorn"] and prod[-1] == "_wsgi:app"
    assert "127.0.0.1:9191" in prod and prod[prod.index("--workers") + 1] == "1"
    assert serve_argv(["--dev", "--port", "9191"], python="py") == [
        "py", "-m", "_wsgi", "--host", "0.0.0.0", "--port", "9191"]


def _serve(tmp_path: Path, name: str, **env: str) -> tuple[dict, str]:
    """``bash scripts/serve.sh`` until /health answers; its /health body and its log."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    full = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "MODEL_DIR": str(tmp_path / name),
            "PYTHONUNBUFFERED": "1", **env}
    full.pop("REDIS_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "scripts/serve.sh"], cwd=ROOT, env=full, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if resp.status_code == 200:
                    return resp.json(), log.read_text(errors="replace")
            except requests.RequestException:
                pass
            time.sleep(0.3)
        pytest.fail(f"scripts/serve.sh did not answer /health:\n{log.read_text(errors='replace')[-3000:]}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_serve_sh_starts_gunicorn_and_the_development_server_only_when_asked(tmp_path):
    health, log = _serve(tmp_path, "prod")
    assert health["status"] == "UP" and health["model_version"].startswith("vlmine-")
    assert "Booting worker" in log and "development server" not in log
    health, log = _serve(tmp_path, "dev", DEV="1")
    assert health["status"] == "UP"
    assert "development server" in log and "Booting worker" not in log


def test_pip_install_then_vlmine_mine_from_another_directory(tmp_path):
    """The package installs (its dependencies are this environment's) and runs away from the repository."""
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                           "--no-build-isolation", "--target", str(site), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "rows.jsonl").write_text('{"id": "img_0001.jpg", "text": "a cat on a sofa"}\n'
                                          '{"id": "t0", "text": "a walrus on a tram"}\n')
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_DIR", "REDIS_URL", "SIGNAL_FIELDS")}
    env["PYTHONPATH"] = str(site)  # the installed copy, not the repository
    done = subprocess.run([str(site / "bin" / "vlmine"), "mine", "rows.jsonl", "--out", "out.jsonl", "-q"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (elsewhere / "out.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["img_0001.jpg", "t0"]
    assert (elsewhere / "data").is_dir()  # state under ./data of where it ran
    probe = subprocess.run([sys.executable, "-c", "import backend; print(backend.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True)
    assert probe.stdout.strip().startswith(str(site))
