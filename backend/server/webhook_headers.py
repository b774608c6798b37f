"""Getting Label Studio's webhooks past the backend's own auth.

Label Studio creates the ML backend's webhook itself (``<model URL>/webhook``, every
action, no headers) and sends each webhook with that webhook's headers only, never the
model connection's basic auth. With BASIC_AUTH_* or WEBHOOK_SECRET set, the backend
therefore gives that webhook the header it needs when Label Studio calls ``/setup``.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from ..engine.engine import Engine
from ..logs import mask_url, scrub
from ..settings import Settings

log = logging.getLogger(__name__)


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
        return scrub(text, (self.settings.webhook_secret, self.settings.basic_auth_pass,
                            self.settings.label_studio_api_key, *self.wanted().values()))

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
