"""The ML-backend wire protocol on Flask 3.

Routes: ``GET /`` and ``/health``, ``POST /setup``, ``POST /predict``,
``POST /webhook``, ``GET /versions``, ``GET /metrics``. Every answer is JSON;
a malformed request gets a 4xx naming the problem, never a traceback.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .engine import Engine, EngineError
from .jobs import EmbeddedQueue
from .labelconfig import LabelConfigError
from .mlbase import MAX_ID, parse_project_id
from .settings import Settings, mask_url

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class WebhookHeaders:
    """Gives Label Studio's webhook to this backend the header that gets it past the backend's auth.

    Label Studio creates the ML backend's webhook itself (``<model URL>/webhook``, every
    action, no headers) and sends each webhook with that webhook's own headers only, never
    the model connection's basic auth. ``/setup`` does come through the connection, so there
    the backend looks up the project's webhook that points to it (its host and port are the
    ``Host`` of the /setup request) and adds what is missing: ``X-VLMine-Secret`` when
    WEBHOOK_SECRET is set (enough on its own: it lets a webhook past basic auth too), else
    ``Authorization: Basic ...``. Other headers are kept. The look-up runs in a thread
    (/setup waits for it only briefly) and a failure only logs a warning. Header values are
    never logged.
    """

    RECHECK_S = 600.0  # a project looked at is looked at again after this, or after a refused webhook
    RETRY_S = 5.0  # no webhook yet: Label Studio creates it just after the /setup that validates a new connection
    WAIT_S = 1.5  # how long /setup waits for the look-up (Label Studio gives /setup 3 s)
    CALL_TIMEOUT_S = 10.0
    WARN_EVERY_S = 60.0

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._lock = threading.Lock()
        self._busy: set[int] = set()
        self._retrying: set[int] = set()
        self._checked: dict[int, float] = {}
        self._warned: dict[Any, float] = {}

    def wanted(self) -> dict[str, str]:
        """The header(s) the webhook needs; empty when the backend asks webhooks for nothing."""
        s = self.settings
        if s.webhook_secret:
            return {"X-VLMine-Secret": s.webhook_secret}
        if s.basic_auth_user:
            token = base64.b64encode(f"{s.basic_auth_user}:{s.basic_auth_pass or ''}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def how_to_fix(self) -> str:
        if self.settings.webhook_secret:
            header = "the header X-VLMine-Secret with the value of WEBHOOK_SECRET"
        else:
            header = "the header Authorization with the value 'Basic ' + base64(BASIC_AUTH_USER:BASIC_AUTH_PASS)"
        return (f"add {header} to the project's webhook to this backend's /webhook in Label Studio "
                "(project Settings > Webhooks); the backend adds it itself when Label Studio calls /setup "
                "(connecting the model, or opening its settings) and the backend can reach Label Studio")

    def at_setup(self, pid: int, host: str | None) -> None:
        """Called by /setup: look at the project's webhook unless that was done lately."""
        if not self.wanted():
            return
        with self._lock:
            last = self._checked.get(pid)
            if pid in self._busy or (last is not None and time.monotonic() - last < self.RECHECK_S):
                return
            self._busy.add(pid)
        done = threading.Event()
        threading.Thread(target=self._run, args=(pid, host or "", False, done), name=f"webhook-headers-{pid}",
                         daemon=True).start()
        done.wait(self.WAIT_S)

    def refused(self, pid: int | None, why: str) -> None:
        """A webhook was refused for want of auth: say what to add (once a minute per project);
        the next /setup looks at the project's webhook again."""
        if pid is not None:
            with self._lock:
                self._checked.pop(pid, None)
        basic = ", never the model connection's basic auth" if self.settings.basic_auth_user else ""
        self._warn(("refused", pid), f"project {pid if pid is not None else '?'}: refused a webhook from Label "
                   f"Studio: {why}. Label Studio sends a webhook with the webhook's own headers only{basic}: "
                   f"{self.how_to_fix()}")

    def _run(self, pid: int, host: str, last_try: bool, done: threading.Event) -> None:
        outcome = "failed"
        try:
            outcome = self._check(pid, host, last_try)
        except Exception as exc:  # never fails /setup: a warning says what went wrong
            self._warn(("setup", pid), f"project {pid}: cannot check Label Studio's webhook to this backend "
                       f"({self._scrub(f'{type(exc).__name__}: {exc}')}); {self.how_to_fix()}")
        finally:
            with self._lock:
                self._busy.discard(pid)
                if outcome != "retry":
                    self._checked[pid] = time.monotonic()
                retry = outcome == "retry" and pid not in self._retrying
                if retry:
                    self._retrying.add(pid)
            done.set()
        if retry:
            timer = threading.Timer(self.RETRY_S, self._retry, args=(pid, host))
            timer.daemon = True
            timer.start()

    def _retry(self, pid: int, host: str) -> None:
        with self._lock:
            self._retrying.discard(pid)
            last = self._checked.get(pid)
            if pid in self._busy or (last is not None and time.monotonic() - last < self.RECHECK_S):
                return  # a later /setup has seen to it
            self._busy.add(pid)
        self._run(pid, host, True, threading.Event())

    def _check(self, pid: int, host: str, last_try: bool) -> str:
        client = self.engine.label_studio_or_none()
        if client is None:
            self._warn(("setup", pid), f"project {pid}: cannot check Label Studio's webhook to this backend: no "
                       "Label Studio connection (LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or the address and "
                       f"token Label Studio sends in /setup); {self.how_to_fix()}")
            return "failed"
        hooks = [h for h in client.list_webhooks(pid, timeout=self.CALL_TIMEOUT_S)
                 if h.get("project") == pid and _points_to(h.get("url"), host)]
        if len(hooks) != 1:
            if not hooks and not last_try:
                return "retry"
            found = "no webhook" if not hooks else f"{len(hooks)} webhooks"
            self._warn(("setup", pid), f"project {pid}: Label Studio has {found} to http(s)://{host}/webhook for "
                       f"this project, so the backend left the webhooks alone; {self.how_to_fix()}")
            return "failed"
        hook = hooks[0]
        headers = dict(hook.get("headers") or {}) if isinstance(hook.get("headers"), dict) else {}
        added = []
        for name, value in self.wanted().items():
            same = [k for k in headers if k.lower() == name.lower()]
            if [headers[k] for k in same] == [value]:
                continue
            for k in same:
                del headers[k]
            headers[name] = value
            added.append(name)
        if added:
            client.set_webhook_headers(hook, headers, timeout=self.CALL_TIMEOUT_S)
            log.info("project %s: added the header %s to Label Studio's webhook %s (%s), which lets its events in",
                     pid, ", ".join(added), hook.get("id"), mask_url(str(hook.get("url"))))
        return "ok"

    def _scrub(self, text: str) -> str:
        for secret in (self.settings.webhook_secret, self.settings.basic_auth_pass,
                       self.settings.label_studio_api_key, *self.wanted().values()):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _warn(self, key: Any, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned.get(key, -self.WARN_EVERY_S) < self.WARN_EVERY_S:
                return
            if len(self._warned) > 1000:  # unauthenticated callers choose the project ids
                self._warned = {k: t for k, t in self._warned.items() if now - t < self.WARN_EVERY_S}
            self._warned[key] = now
        log.warning("%s", message)


def _points_to(url: Any, host: str) -> bool:
    """Whether a webhook URL is this backend's /webhook: same host and port as ``host`` (a Host header)."""
    if not isinstance(url, str) or not host:
        return False
    try:
        hook, here = urlsplit(url), urlsplit("//" + host)
        default = 443 if hook.scheme.lower() == "https" else 80
        return (hook.path.rstrip("/").endswith("/webhook")
                and (hook.hostname or "").lower() == (here.hostname or "").lower()
                and (hook.port or default) == (here.port or default))
    except ValueError:  # a port that is not a number
        return False


def create_app(settings: Settings | None = None, engine: Engine | None = None, queue: Any = None,
               start_workers: bool = True) -> Flask:
    """Build the app; ``start_workers=False`` leaves the embedded queue to the caller (tests)."""
    settings = settings or Settings.from_env()
    engine = engine or Engine(settings)
    if queue is None:
        if settings.redis_url:
            from .rq_queue import RQQueue

            queue = RQQueue(engine)
        else:
            queue = EmbeddedQueue(engine)
    from model import VLMineModel

    model_class = type("VLMineModel", (VLMineModel,), {"engine": engine, "queue": queue})
    app = Flask("vlmine")
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_request_mb * 2**20)
    app.extensions["vlmine"] = {"settings": settings, "engine": engine, "queue": queue, "model": model_class,
                                "started": time.time()}
    # Imported now, not on the first /setup: the SDK takes over a second to import and
    # Label Studio gives /setup 3 s.
    from . import labelstudio  # noqa: F401

    if start_workers and hasattr(queue, "start"):
        queue.start()
    if start_workers:
        from .jobs import catch_up

        for pid in engine.store.projects():  # what happened while we were down: read each project again
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

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
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
        if engine.redis is not None:
            try:
                engine.redis.ping()
            except Exception as exc:  # the URL may hold a password: name only the error type
                return jsonify(status="DOWN", reason=f"Redis is unreachable ({type(exc).__name__})",
                               model_class="VLMineModel"), 503
        return jsonify(status="UP", model_class="VLMineModel", model_version=engine.base_version,
                       queue=type(queue).__name__)

    @app.post("/setup")
    def setup():
        body = _json_object()
        pid = _project(body.get("project"))
        schema = body.get("schema")
        if schema is not None and not isinstance(schema, str):
            raise ApiError(400, "'schema' must be the label config as a string")
        if schema:
            _check_config(schema, settings)
        engine.remember_setup_connection(body.get("hostname"), body.get("access_token"))
        model = model_class(project_id=pid, label_config=schema or None)
        # /setup comes through the model connection: the moment to give the project's webhook what it needs
        hooks.at_setup(pid, request.headers.get("Host"))
        return jsonify(model_version=model.model_version)

    @app.post("/predict")
    def predict():
        body = _json_object()
        tasks = _tasks(body.get("tasks"), "'tasks' must be a list of tasks", data=True)
        pid = _project(body.get("project"), tasks)
        label_config = body.get("label_config")
        if label_config is not None and not isinstance(label_config, str):
            raise ApiError(400, "'label_config' must be a string")
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
            raise ApiError(401, "missing or wrong X-VLMine-Secret header")
        body = _json_object()
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise ApiError(400, "'action' must name the webhook event")
        project = body.get("project")
        if not isinstance(project, dict) or not _is_id(project.get("id")):
            raise ApiError(400, f"'project' must be an object with an integer 'id' from 1 to {MAX_ID}")
        total = project.get("task_number")
        if total is not None and not (_is_id(total) or (total == 0 and type(total) is int)):
            raise ApiError(400, f"project.task_number must be a whole number from 0 to {MAX_ID}")
        if action in ("TASKS_CREATED", "TASKS_DELETED"):
            _tasks(body.get("tasks"), f"{action} needs 'tasks' as a list")
        label_config = project.get("label_config")
        if label_config is not None and not isinstance(label_config, str):
            raise ApiError(400, "project.label_config must be a string")
        if label_config and action in ("TASKS_CREATED", "PROJECT_UPDATED"):
            _check_config(label_config, settings)
        # read before the model is built: its setup() already remembers the new label config
        previous = engine.store.get_project(int(project["id"]))
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
        return pid if _is_id(pid) else None

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
        live = sorted({engine.live_version(pid) for pid in engine.store.projects()} | {engine.base_version})
        return jsonify(versions=live, model_version=engine.base_version)

    @app.get("/metrics")
    def metrics():
        projects = {str(pid): engine.progress(pid) for pid in engine.store.projects()}
        return jsonify(
            model_version=engine.base_version,
            uptime_s=round(time.time() - app.extensions["vlmine"]["started"], 1),
            counters=engine.coord.counters(),
            jobs={"counts": queue.counts(), "failed": queue.failed_jobs(10)},
            last_error=engine.coord.errors(),
            projects=projects,
        )

    from .report import report_blueprint

    app.register_blueprint(report_blueprint(engine))
    return app


def _json_object() -> dict:
    if not request.data:
        raise ApiError(400, "the request body is empty; expected a JSON object")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "the request body is not valid JSON: nested too deeply") from None
    if body is None:
        raise ApiError(400, "the request body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
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
        raise ApiError(400, "the request body is nested too deeply")
    if isinstance(value, dict):
        return {_clean_text(k, depth + 1): _clean_text(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_text(v, depth + 1) for v in value]
    return value


def _tasks(value: Any, not_a_list: str, data: bool = False) -> list:
    """A list of task objects with integer ids (and, with ``data``, object data), else a 400."""
    if not isinstance(value, list):
        raise ApiError(400, not_a_list)
    for i, task in enumerate(value):
        if not isinstance(task, dict) or not _is_id(task.get("id")):
            raise ApiError(400, f"tasks[{i}] must be an object with an integer 'id' from 1 to {MAX_ID}")
        if data and "data" in task and not isinstance(task["data"], dict):
            raise ApiError(400, f"tasks[{i}].data must be an object")
        predictions = task.get("predictions") if data else None
        if predictions is not None and not (isinstance(predictions, list)
                                            and all(isinstance(p, dict) for p in predictions)):
            raise ApiError(400, f"tasks[{i}].predictions must be a list of prediction objects")
    return value


def _is_id(value: Any) -> bool:
    """A positive integer that fits a signed 64-bit column (what SQLite and Label Studio store)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _project(project: Any, tasks: list | None = None) -> int:
    if project is None and tasks:
        project = tasks[0].get("project")
    try:
        return parse_project_id(project)
    except ValueError as exc:
        raise ApiError(400, f"'project': {exc}") from None


def _check_config(xml: str, settings: Settings) -> None:
    """The config parses and names something to mine (else 422 with the reason)."""
    from .labelconfig import LabelConfig

    try:
        LabelConfig.parse(xml).source(settings.description_field, settings.image_field)
    except LabelConfigError as exc:
        raise ApiError(422, str(exc)) from None


__all__ = ["create_app", "ApiError", "EngineError"]
