"""The ML-backend wire protocol on Flask 3.

Routes: ``GET /`` and ``/health``, ``POST /setup``, ``POST /predict``,
``POST /webhook``, ``GET /versions``, ``GET /metrics``. Every answer is JSON;
a malformed request gets a 4xx naming the problem, never a traceback.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..engine.engine import Engine
from ..errors import HTTPError, LabelConfigError, NoConnection
from ..ids import MAX_ID, is_id, parse_project_id
from ..jobs import JobQueue, open_queue
from ..settings import Settings
from ..state import open_state
from .mlbase import LabelStudioMLBase
from .webhook_headers import WebhookHeaders

log = logging.getLogger(__name__)


def create_app(settings: Settings, model_class: type[LabelStudioMLBase], engine: Engine | None = None,
               queue: JobQueue | None = None, start_workers: bool = True) -> Flask:
    """Build the app.

    Args:
        settings: the backend's settings (``Settings.from_env()``).
        model_class: the Label Studio-facing model (the root ``model.VLMineModel``); a model
            is built from it per request. It is handed in, as label-studio-ml's
            ``init_app(model_class)`` is, so this package never imports the root script.
        engine: the engine to serve; built from ``settings`` when None.
        queue: the job queue; the one ``settings`` ask for (RQ with REDIS_URL, else embedded)
            when None.
        start_workers: False leaves the embedded queue's threads and the start-up catch-up
            to the caller (tests).
    """
    state = None
    if engine is None:
        state = open_state(settings)
        engine = Engine(settings, state)
    if queue is None:
        queue = open_queue(engine, state)
    model_class = type(model_class.__name__, (model_class,), {"engine": engine, "queue": queue})
    app = Flask("vlmine")
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_request_mb * 2**20)
    app.extensions["vlmine"] = {"settings": settings, "engine": engine, "queue": queue, "model": model_class,
                                "started": time.time()}
    # Imported now, not on the first /setup: the SDK takes over a second to import and
    # Label Studio gives /setup 3 s.
    from ..labelstudio import client as labelstudio  # noqa: F401

    if start_workers:
        queue.start()
    if start_workers:
        from ..jobs.runner import catch_up

        for pid in engine.overview().projects():  # what happened while we were down: read each project again
            try:
                why = catch_up(engine, queue, pid)
                if why:
                    log.info("project %s: %s; syncing", pid, why)
            except Exception as exc:  # a broken project must not stop the server
                log.error("project %s: cannot queue a sync: %s", pid, exc)

    hooks = WebhookHeaders(settings, engine)
    app.extensions["vlmine"]["webhook_headers"] = hooks

    @app.before_request
    def _auth() -> Response | None:
        g.started = time.perf_counter()
        if not settings.basic_auth_user:
            return None
        if request.path == "/webhook" and _webhook_secret_ok():
            # Label Studio sends webhooks with their own headers, never the connection's basic auth
            return None
        auth = request.authorization
        user_ok = auth is not None and auth.type == "basic" and hmac.compare_digest(
            (auth.username or "").encode(), settings.basic_auth_user.encode())
        pass_ok = auth is not None and hmac.compare_digest(
            (auth.password or "").encode(), (settings.basic_auth_pass or "").encode())
        if not (user_ok and pass_ok):
            if request.path == "/webhook":
                hooks.refused(_webhook_project(), "it carries no basic auth" if auth is None
                              else "it carries the wrong basic auth")
            resp = jsonify(error="authentication required")
            resp.status_code = 401
            resp.headers["WWW-Authenticate"] = 'Basic realm="vlmine"'
            return resp
        return None

    @app.errorhandler(HTTPError)
    def _api_error(exc: HTTPError):
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(LabelConfigError)
    def _config_error(exc: LabelConfigError):
        return jsonify(error=str(exc)), 422

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return jsonify(error=exc.description or exc.name), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error=f"internal error: {type(exc).__name__}"), 500

    @app.get("/")
    @app.get("/health")
    def health():
        down = engine.unreachable()
        if down:
            return jsonify(status="DOWN", reason=down, model_class="VLMineModel"), 503
        return jsonify(status="UP", model_class="VLMineModel", model_version=engine.base_version,
                       queue=type(queue).__name__)

    @app.post("/setup")
    def setup():
        body = _json_object()
        pid = _project(body.get("project"))
        schema = body.get("schema")
        if schema is not None and not isinstance(schema, str):
            raise HTTPError(400, "'schema' must be the label config as a string")
        if schema:
            _check_config(schema, settings)
        engine.remember_setup_connection(body.get("hostname"), body.get("access_token"))
        model = model_class(project_id=pid, label_config=schema or None)
        # /setup comes through the model connection: the moment to give the project's webhook what it needs
        hooks.at_setup(pid, request.headers.get("Host"))
        engine.stream.check_soon(pid, at_setup=True)  # the stream's sampling and model version
        return jsonify(model_version=model.model_version)

    @app.post("/predict")
    def predict():
        body = _json_object()
        tasks = _tasks(body.get("tasks"), "'tasks' must be a list of tasks", data=True)
        pid = _project(body.get("project"), tasks)
        label_config = body.get("label_config")
        if label_config is not None and not isinstance(label_config, str):
            raise HTTPError(400, "'label_config' must be a string")
        if label_config:
            _check_config(label_config, settings)
        model = model_class(project_id=pid, label_config=label_config or None)
        if not tasks:
            return jsonify(results=[], model_version=model.model_version)
        results = model.predict(tasks, context=body.get("context"), params=body.get("params"))
        return jsonify(results=results, model_version=model.model_version)

    @app.post("/webhook")
    def webhook():
        if settings.webhook_secret and not _webhook_secret_ok() and not _start_training_with_basic_auth():
            hooks.refused(_webhook_project(), "it carries no X-VLMine-Secret header"
                          if "X-VLMine-Secret" not in request.headers else "its X-VLMine-Secret is wrong")
            raise HTTPError(401, "missing or wrong X-VLMine-Secret header")
        body = _json_object()
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise HTTPError(400, "'action' must name the webhook event")
        project = body.get("project")
        if not isinstance(project, dict) or not is_id(project.get("id")):
            raise HTTPError(400, f"'project' must be an object with an integer 'id' from 1 to {MAX_ID}")
        total = project.get("task_number")
        if total is not None and not (is_id(total) or (total == 0 and type(total) is int)):
            raise HTTPError(400, f"project.task_number must be a whole number from 0 to {MAX_ID}")
        if action in ("TASKS_CREATED", "TASKS_DELETED"):
            _tasks(body.get("tasks"), f"{action} needs 'tasks' as a list")
        label_config = project.get("label_config")
        if label_config is not None and not isinstance(label_config, str):
            raise HTTPError(400, "project.label_config must be a string")
        if label_config and action in ("TASKS_CREATED", "PROJECT_UPDATED"):
            _check_config(label_config, settings)
        # read before the model is built: its setup() already remembers the new label config
        previous = engine.view(int(project["id"])).state()
        model = model_class(project_id=int(project["id"]), label_config=label_config or None)
        result = model.fit(action, body, previous_label_config=previous.label_config if previous else None)
        return jsonify(result)

    def _webhook_secret_ok() -> bool:
        if not settings.webhook_secret:
            return False
        given = request.headers.get("X-VLMine-Secret", "")
        return hmac.compare_digest(given.encode(), settings.webhook_secret.encode())

    def _webhook_project() -> int | None:
        """The project id a (refused) webhook names, for the warning; None when it names none."""
        try:
            body = request.get_json(silent=True)
        except (HTTPException, RecursionError):
            return None
        project = body.get("project") if isinstance(body, dict) else None
        pid = project.get("id") if isinstance(project, dict) else None
        return pid if is_id(pid) else None

    def _start_training_with_basic_auth() -> bool:
        """START_TRAINING comes from Label Studio's ML connection, which sends no custom
        header; with basic auth on (checked before every route) it is authenticated already."""
        if not settings.basic_auth_user:
            return False
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            return False
        return isinstance(body, dict) and body.get("action") == "START_TRAINING"

    @app.get("/versions")
    def versions():
        live = sorted({engine.live_version(pid) for pid in engine.overview().projects()} | {engine.base_version})
        return jsonify(versions=live, model_version=engine.base_version)

    @app.get("/metrics")
    def metrics():
        projects = {str(pid): engine.progress(pid) for pid in engine.overview().projects()}
        return jsonify(
            model_version=engine.base_version,
            uptime_s=round(time.time() - app.extensions["vlmine"]["started"], 1),
            counters=engine.overview().counters(),
            jobs={"counts": queue.counts(), "failed": queue.failed_jobs(10)},
            last_error=engine.overview().errors(),
            projects=projects,
        )

    from .report import report_blueprint

    app.register_blueprint(report_blueprint(engine))
    return app


def _json_object() -> dict:
    if not request.data:
        raise HTTPError(400, "the request body is empty; expected a JSON object")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise HTTPError(400, "the request body is not valid JSON: nested too deeply") from None
    if body is None:
        raise HTTPError(400, "the request body is not valid JSON")
    if not isinstance(body, dict):
        raise HTTPError(400, "the request body must be a JSON object")
    # a lone surrogate can only arrive as a \\uD800-\\uDFFF escape: walk the body only then
    return _clean_text(body) if _SURROGATE_ESCAPE.search(request.data) else body


_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def _clean_text(value: Any, depth: int = 0) -> Any:
    """Lone surrogates (valid JSON, invalid UTF-8) become U+FFFD, so no store chokes on them."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if depth > 64:
        raise HTTPError(400, "the request body is nested too deeply")
    if isinstance(value, dict):
        return {_clean_text(k, depth + 1): _clean_text(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_text(v, depth + 1) for v in value]
    return value


def _tasks(value: Any, not_a_list: str, data: bool = False) -> list:
    """A list of task objects with integer ids (and, with ``data``, object data), else a 400."""
    if not isinstance(value, list):
        raise HTTPError(400, not_a_list)
    for i, task in enumerate(value):
        if not isinstance(task, dict) or not is_id(task.get("id")):
            raise HTTPError(400, f"tasks[{i}] must be an object with an integer 'id' from 1 to {MAX_ID}")
        if data and "data" in task and not isinstance(task["data"], dict):
            raise HTTPError(400, f"tasks[{i}].data must be an object")
        predictions = task.get("predictions") if data else None
        if predictions is not None and not (isinstance(predictions, list)
                                            and all(isinstance(p, dict) for p in predictions)):
            raise HTTPError(400, f"tasks[{i}].predictions must be a list of prediction objects")
    return value


def _project(project: Any, tasks: list | None = None) -> int:
    if project is None and tasks:
        project = tasks[0].get("project")
    try:
        return parse_project_id(project)
    except ValueError as exc:
        raise HTTPError(400, f"'project': {exc}") from None


def _check_config(xml: str, settings: Settings) -> None:
    """The config parses and names something to mine (else 422 with the reason)."""
    from ..labelstudio.config import LabelConfig

    try:
        LabelConfig.parse(xml).source(settings.description_field, settings.image_field)
    except LabelConfigError as exc:
        raise HTTPError(422, str(exc)) from None


__all__ = ["create_app", "HTTPError", "NoConnection"]
