"""The structure of docker-compose.yml and the Dockerfile (no Docker engine runs here).

What a typo in these files would only show on a GPU host: a service or volume that is
missing, a worker option the worker does not accept, an environment variable the
backend never reads, a setting that the web server and the workers see differently
(they would compute different model versions and index into different scopes), a
module the image does not contain.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from redis.connection import Connection

from backend.jobs.worker import build_parser
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]

SETTING_NAMES = {f.name.upper() for f in fields(Settings)}
EXTRA_ENV = {"HF_HOME", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "PYTHONUNBUFFERED"}
# interpolated by Compose itself, never seen by a container
COMPOSE_KNOBS = {"WORKERS", "GPUS_PER_WORKER"}
# settings a worker may have alone: they change how fast it mines, never what
WORKER_ONLY = {"VLM_BATCH_SIZE", "VLM_DEVICE", "VLM_DTYPE", "VLM_API_CONCURRENCY", "HF_HOME",
               "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _command(service: str) -> list[str]:
    cmd = SERVICES[service]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _interpolate(value: str, host: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$$``, for the tests."""
    def one(match: re.Match) -> str:
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if op == ":-":
            return host.get(name) or default
        if op == "-":
            return host.get(name, default)
        return host.get(name, "")
    return _VAR.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def _resolved(service: str, host: dict[str, str] | None = None) -> dict[str, str]:
    return {k: _interpolate(v, host or {}) for k, v in _environment(service).items()}


# ---------------------------------------------------------------------------- services
def test_the_services_exist():
    assert {"redis", "backend", "worker", "vllm"} <= set(SERVICES)


def test_vllm_starts_only_with_its_profile():
    assert SERVICES["vllm"].get("profiles") == ["vllm"]
    assert "vllm/vllm-openai" in SERVICES["vllm"]["image"]
    assert "llava-hf/llava-1.5-7b-hf" in _command("vllm")
    for name in ("redis", "backend", "worker"):
        assert not SERVICES[name].get("profiles"), f"{name} must start with a plain `docker compose up`"
    # nothing that always starts may wait for a service that only starts with a profile
    for name in ("redis", "backend", "worker"):
        assert "vllm" not in (SERVICES[name].get("depends_on") or {})


def _gpu_devices(service: str) -> list[dict]:
    deploy = SERVICES[service].get("deploy") or {}
    return ((deploy.get("resources") or {}).get("reservations") or {}).get("devices") or []


@pytest.mark.parametrize("service", ["worker", "vllm"])
def test_gpu_reservation(service):
    devices = _gpu_devices(service)
    assert devices, f"{service} reserves no GPU"
    gpu = devices[0]
    assert gpu["driver"] == "nvidia"
    assert "gpu" in gpu["capabilities"]
    assert "count" in gpu or "device_ids" in gpu
    count = _interpolate(str(gpu.get("count", "1")), {})
    assert count == "all" or int(count) >= 1


def test_the_web_server_and_redis_reserve_no_gpu():
    assert not _gpu_devices("backend")
    assert not _gpu_devices("redis")


def test_redis_persists_and_reports_health():
    redis = SERVICES["redis"]
    assert redis["image"].startswith("redis:7")
    cmd = _command("redis")
    assert "--appendonly" in cmd and cmd[cmd.index("--appendonly") + 1] == "yes"
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]


def test_backend_runs_gunicorn_on_the_published_port():
    cmd = _command("backend")
    assert cmd[0] == "gunicorn"
    assert cmd[-1] == "_wsgi:app"
    bind = cmd[cmd.index("--bind") + 1]
    assert bind == "0.0.0.0:9090"
    assert cmd[cmd.index("--workers") + 1] == "1"  # one process: the app holds the engine and its locks
    assert int(cmd[cmd.index("--threads") + 1]) >= 2
    assert int(cmd[cmd.index("--timeout") + 1]) >= 60
    assert "9090:9090" in [str(p) for p in SERVICES["backend"]["ports"]]
    health = " ".join(SERVICES["backend"]["healthcheck"]["test"])
    assert "127.0.0.1:9090/health" in health


def test_backend_healthcheck_is_valid_python():
    test = SERVICES["backend"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "healthcheck", "exec")
    assert "BASIC_AUTH_USER" in test[3]  # /health is behind basic auth when it is set


def test_worker_command_is_accepted_by_the_worker():
    cmd = _command("worker")
    assert cmd[:3] == ["python", "-m", "backend.worker"]
    args = cmd[3:]
    parser = build_parser()
    known = {opt for action in parser._actions for opt in action.option_strings}
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=", 1)[0] in known, f"python -m backend.worker has no option {arg}"
    parsed = parser.parse_args(args)  # SystemExit on an unknown option or a bad value
    assert parsed.preload


def test_every_service_depending_on_redis_waits_for_its_health():
    for name in ("backend", "worker"):
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_backend_and_worker_run_the_same_image():
    assert SERVICES["backend"].get("build") and SERVICES["worker"].get("build")
    assert SERVICES["backend"].get("image") == SERVICES["worker"].get("image")


# ---------------------------------------------------------------------------- environment
def test_environment_names_are_settings():
    allowed = SETTING_NAMES | EXTRA_ENV
    for name, service in SERVICES.items():
        unknown = set(_environment(name)) - allowed
        assert not unknown, f"{name}: {sorted(unknown)} are not settings"


def test_every_variable_mentioned_is_a_setting():
    """``${NAME}`` anywhere and ``NAME=value`` in the comments: settings, the extras, or Compose's knobs."""
    allowed = SETTING_NAMES | EXTRA_ENV | COMPOSE_KNOBS
    mentioned = {m.group(1) for m in _VAR.finditer(COMPOSE_TEXT)}
    mentioned |= set(re.findall(r"(?<![A-Za-z0-9_])([A-Z][A-Z0-9_]{2,})=", COMPOSE_TEXT))
    assert not mentioned - allowed, sorted(mentioned - allowed)


def test_passthrough_variables_keep_their_name():
    """``FOO: ${BAR:-}`` would read the host's BAR into the container's FOO: a typo."""
    for name in SERVICES:
        for key, value in _environment(name).items():
            for match in _VAR.finditer(value):
                assert match.group(1) == key, f"{name}: {key} reads ${{{match.group(1)}}}"


@pytest.mark.parametrize("service", ["backend", "worker"])
def test_the_defaults_are_valid_settings(service):
    settings = Settings.from_env(_resolved(service))
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.model_dir == "/data"
    assert settings.vlm_model == "llava-hf/llava-1.5-7b-hf"


def test_redis_url_points_at_the_redis_service():
    for name in ("backend", "worker"):
        url = urlparse(_resolved(name)["REDIS_URL"])
        assert url.scheme == "redis"
        assert url.hostname in SERVICES and SERVICES[url.hostname]["image"].startswith("redis")
        # the service runs the image's redis-server without --port: Redis's default, redis-py's too
        assert "--port" not in SERVICES[url.hostname].get("command", [])
        assert url.port in (None, Connection().port)


def test_web_server_and_workers_see_the_same_mining_settings():
    backend, worker = _environment("backend"), _environment("worker")
    differ = {k for k in set(backend) | set(worker) if backend.get(k) != worker.get(k)}
    assert differ <= WORKER_ONLY, f"set differently on backend and worker: {sorted(differ - WORKER_ONLY)}"
    # and with the host's settings filled in, both compute the same version and index scope
    host = {"VLM_MODEL": "org/other-vlm", "KEYWORD_MODE": "direct", "VLM_BATCH_SIZE": "2"}
    b, w = Settings.from_env(_resolved("backend", host)), Settings.from_env(_resolved("worker", host))
    assert b.model_version() == w.model_version()
    assert b.mining_hash() == w.mining_hash()


def test_worker_only_settings_do_not_change_the_model_version():
    # with VLM_MODEL set, as the compose file sets it (unset, VLM_DEVICE picks the default model)
    base = Settings(vlm_model="llava-hf/llava-1.5-7b-hf")
    changed = Settings(vlm_model="llava-hf/llava-1.5-7b-hf", vlm_batch_size=3, vlm_device="cpu",
                       vlm_dtype="float16", vlm_api_concurrency=2)
    assert changed.model_version() == base.model_version()
    assert changed.mining_hash() == base.mining_hash()


def test_worker_has_hf_cache_and_vlm_settings():
    env = _environment("worker")
    assert env["HF_HOME"] == "/hf-cache"
    assert {"VLM_MODEL", "KEYWORD_MODE", "VLM_BATCH_SIZE", "VLM_API_URL"} <= set(env)
    mounts = {str(v).split(":")[1] for v in SERVICES["worker"]["volumes"]}
    assert {"/data", "/hf-cache"} <= mounts


# ---------------------------------------------------------------------------- volumes
def test_named_volumes_are_declared():
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith((".", "/", "~", "$")):
                continue  # a bind mount
            assert source in declared, f"{name} mounts the undeclared volume {source}"


def test_data_volume_is_shared_by_backend_and_worker():
    def source(service: str, target: str) -> str | None:
        for volume in SERVICES[service].get("volumes") or []:
            parts = str(volume).split(":")
            if parts[1] == target:
                return parts[0]
        return None
    assert source("backend", "/data") is not None
    assert source("backend", "/data") == source("worker", "/data")


# ---------------------------------------------------------------------------- Dockerfile
def _copied() -> set[str]:
    sources: set[str] = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() not in {"COPY", "ADD"}:
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        sources.update(a.rstrip("/") for a in args[:-1])
    return sources


def _covered(path: str, copied: set[str]) -> bool:
    return any(path == c or path.startswith(c + "/") or c == "." for c in copied)


def test_dockerfile_copies_the_code():
    copied = _copied()
    for path in ("backend", "backend/worker.py", "model.py", "_wsgi.py", "requirements.txt"):
        assert _covered(path, copied), f"the image lacks {path}"


def test_dockerfile_copies_every_top_level_module_the_code_imports():
    """``backend/api.py`` imports ``model``: a module at the top that the image must hold."""
    top_level = {p.stem for p in ROOT.glob("*.py")} | {p.name for p in ROOT.iterdir()
                                                       if (p / "__init__.py").exists()}
    needed: set[str] = set()
    for path in [ROOT / "_wsgi.py", ROOT / "model.py", *sorted((ROOT / "backend").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            needed.update(n.split(".")[0] for n in names if n.split(".")[0] in top_level)
    copied = _copied()
    for module in needed:
        target = module if (ROOT / module).is_dir() else f"{module}.py"
        assert _covered(target, copied), f"the code imports {module}, the image lacks {target}"
