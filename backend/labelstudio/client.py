"""Write-back client for Label Studio, built on label-studio-sdk 2.x.

What goes through the SDK's typed methods: projects (get, update, import_predictions),
predictions (update, delete), Data Manager views (list, create, update). What the SDK
has no method for, or where its pydantic models cost too much on 10k+ rows, goes through
the SDK's own HTTP layer (same base URL, auth headers, timeouts and token refresh) and
returns plain JSON: listing predictions and tasks, deleting a model version, the
labeling stream (the "Label All Tasks" request), presigning and downloading (those two
in ``backend.labelstudio.media``, whose :class:`MediaTransfers` the client is built on).

Auth: ``api_key`` is either a legacy token (``Authorization: Token ...``) or a personal
access token, which is a JWT refresh token. The SDK tells them apart by decoding the
JWT, trades a refresh token for an access token at ``POST /api/token/refresh/`` and
refreshes it shortly before it expires. On top of that this client drops the cached
access token and retries once when the server still answers 401 (a revoked or
rotated access token, clock skew).

Every failure is a :class:`LabelStudioError` naming the method, path and status with
a short excerpt of the body; the key and the access token are scrubbed from it.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar
from urllib.parse import urlsplit

import httpx

from ..errors import LabelStudioError
from ..logs import mask_url, scrub
from .media import MediaTransfers

try:
    from label_studio_sdk.client import LabelStudio
    from label_studio_sdk.core.api_error import ApiError
except ImportError as exc:  # pragma: no cover - import guard with a readable message
    raise ImportError("backend.labelstudio needs label-studio-sdk>=2.0 (pip install -r requirements.txt)") from exc

__all__ = ["LabelStudioError", "LabelStudioClient", "PREDICTION_SCORE_DESC", "TASK_FIELDS"]

T = TypeVar("T")

#: Data Manager ordering that puts the highest prediction score first.
PREDICTION_SCORE_DESC = ["-tasks:predictions_score"]

_EXCERPT = 300

#: what :meth:`LabelStudioClient.iter_tasks` asks for by default (``include=`` of ``GET /api/tasks``)
TASK_FIELDS = "id,data,meta,is_labeled,predictions,annotations"


def _strip_scheme(key: str) -> str:
    key = (key or "").strip()
    for prefix in ("Token ", "Bearer ", "token ", "bearer "):
        if key.startswith(prefix):
            return key[len(prefix):].strip()
    return key


def looks_like_jwt(key: str) -> bool:
    """Three dot-separated base64url parts, the first decoding to a JSON header."""
    parts = key.split(".")
    if len(parts) != 3 or not all(parts):
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


class LabelStudioClient(MediaTransfers):
    """The calls VLMine needs to write priorities back and read tasks."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0, *, bulk_timeout: float | None = None) -> None:
        if not url or not urlsplit(url).scheme:
            raise LabelStudioError(f"Label Studio URL must be absolute, got {mask_url(url or '')!r}", retryable=False)
        key = _strip_scheme(api_key)
        if not key:
            raise LabelStudioError("Label Studio API key is empty", retryable=False)
        self.base_url = url.rstrip("/")
        self.timeout = float(timeout)
        #: for calls whose time grows with the project: bulk import, listings, deleting a version
        self.bulk_timeout = float(bulk_timeout) if bulk_timeout is not None else max(self.timeout, 600.0)
        self.is_pat = looks_like_jwt(key)
        self._key = key
        self._refresh_lock = threading.Lock()
        self._wrapper: Any = None
        try:
            # trailing slash: the SDK's token refresh uses urljoin, which would drop a sub-path
            self._sdk = LabelStudio(base_url=self.base_url + "/", api_key=key, timeout=self.timeout)
        except ApiError as exc:  # an expired or malformed personal access token
            raise self._error("POST", "api/token/refresh/", exc.status_code, exc.body) from None
        wrapper = getattr(self._sdk, "_client_wrapper", None)
        if wrapper is None or not hasattr(wrapper, "httpx_client"):  # pragma: no cover - SDK layout changed
            raise LabelStudioError("unsupported label-studio-sdk: no _client_wrapper.httpx_client", retryable=False)
        self._wrapper = wrapper
        self._http = wrapper.httpx_client  # the SDK's HttpClient: base URL, auth headers, retries

    # ================================================================== plumbing
    @property
    def sdk(self) -> LabelStudio:
        """The underlying ``label_studio_sdk`` client, for calls this class does not wrap."""
        return self._sdk

    def _secrets(self) -> list[str]:
        out = [self._key]
        tokens = getattr(self._wrapper, "_tokens_client", None)
        access = getattr(tokens, "_access_token", None)
        if access:
            out.append(access)
        return out

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets())

    def _error(self, method: str, path: str, status: int | None, body: Any) -> LabelStudioError:
        if isinstance(body, (bytes, bytearray)):
            body = body.decode("utf-8", "replace")
        if not isinstance(body, str):
            try:
                body = json.dumps(body, default=str)
            except (TypeError, ValueError):
                body = repr(body)
        excerpt = " ".join(self._scrub(body).split())
        if len(excerpt) > _EXCERPT:
            excerpt = excerpt[:_EXCERPT] + "..."
        where = f"{method} /{path.lstrip('/')}"
        status_txt = f"HTTP {status}" if status is not None else "no response"
        return LabelStudioError(
            self._scrub(f"Label Studio {where} failed: {status_txt}" + (f": {excerpt}" if excerpt else "")),
            method=method, path="/" + path.lstrip("/"), status=status,
        )

    def _transport_error(self, method: str, path: str, exc: Exception) -> LabelStudioError:
        return self._error(method, path, None, f"{type(exc).__name__}: {exc}")

    def _forget_access_token(self) -> bool:
        """Drop the SDK's cached access token so that the next request refreshes it."""
        if not self.is_pat:
            return False
        tokens = getattr(self._wrapper, "_tokens_client", None)
        if tokens is None or getattr(tokens, "_use_legacy_token", True):
            return False
        with self._refresh_lock:
            tokens._access_token = None
            tokens._access_token_expiration = None
        return True

    def _call(self, method: str, path: str, fn: Callable[[], T]) -> T:
        """Run an SDK call; map its errors; on 401 with a PAT refresh once and retry."""
        for attempt in (0, 1):
            try:
                return fn()
            except ApiError as exc:
                if exc.status_code == 401 and attempt == 0 and self._forget_access_token():
                    continue
                raise self._error(method, path, exc.status_code, exc.body) from None
            except httpx.HTTPError as exc:
                raise self._transport_error(method, path, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _raw(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
        retries: int | None = None,
        ok: Iterable[int] = (),
    ) -> httpx.Response:
        """A request through the SDK's HTTP layer; returns the response or raises LabelStudioError.

        Statuses in ``ok`` are returned to the caller instead of raising.
        """
        options: dict[str, Any] = {"timeout": timeout or self.timeout}
        if retries is not None:
            options["max_retries"] = retries
        for attempt in (0, 1):
            try:
                resp = self._http.request(
                    path.lstrip("/"), method=method, params=dict(params or {}), json=json_body,
                    request_options=options,
                )
            except ApiError as exc:  # token refresh failed inside the SDK
                raise self._error(method, path, exc.status_code, exc.body) from None
            except httpx.HTTPError as exc:
                raise self._transport_error(method, path, exc) from None
            if resp.status_code == 401 and attempt == 0 and self._forget_access_token():
                continue
            if resp.status_code < 400 or resp.status_code in ok:
                return resp
            raise self._error(method, path, resp.status_code, resp.text)
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise self._error(method, path, resp.status_code, "response is not JSON: " + resp.text[:200]) from None

    def _auth_headers(self) -> dict[str, str]:
        try:
            headers = self._wrapper.get_headers()
        except ApiError as exc:
            raise self._error("POST", "api/token/refresh/", exc.status_code, exc.body) from None
        return {k: v for k, v in headers.items() if k.lower() == "authorization"}

    def _url(self, url_or_path: str) -> str:
        if "://" in url_or_path:
            return url_or_path
        return self.base_url + "/" + url_or_path.lstrip("/")

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base_url)
        port_a = a.port or (443 if a.scheme == "https" else 80)
        port_b = b.port or (443 if b.scheme == "https" else 80)
        return (a.scheme, (a.hostname or "").lower(), port_a) == (b.scheme, (b.hostname or "").lower(), port_b)

    @staticmethod
    def _path_of(url: str) -> str:
        parts = urlsplit(url)
        return parts.path or "/"

    # ================================================================== projects
    def get_project(self, project_id: int) -> dict:
        """The project as a dict (id, title, label_config, model_version, counters, ...)."""
        path = f"api/projects/{int(project_id)}/"
        project = self._call("GET", path, lambda: self._sdk.projects.get(id=int(project_id)))
        data = project.model_dump(mode="json") if hasattr(project, "model_dump") else dict(project)
        return data

    def set_model_version(self, project_id: int, version: str) -> None:
        """Point the project at ``version``; Label Studio refuses (400) until a prediction of it exists.

        ``predictions_score`` in the Data Manager averages only predictions of this version.
        """
        path = f"api/projects/{int(project_id)}/"
        self._call("PATCH", path, lambda: self._sdk.projects.update(id=int(project_id), model_version=str(version)))

    # =============================================================== predictions
    def import_predictions(self, project_id: int, predictions: list[dict], chunk_size: int = 5000) -> int:
        """Bulk-create predictions (``{task, score, model_version, result}``); returns how many.

        One POST per ``chunk_size`` predictions; no automatic retry (a retried POST would
        duplicate a chunk that did land).
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        path = f"api/projects/{int(project_id)}/import/predictions"
        created = 0
        for start in range(0, len(predictions), chunk_size):
            chunk = [self._prediction_body(p) for p in predictions[start:start + chunk_size]]
            options = {"timeout": self.bulk_timeout, "max_retries": 0}
            resp = self._call(
                "POST", path,
                lambda: self._sdk.projects.import_predictions(id=int(project_id), request=chunk, request_options=options),
            )
            got = getattr(resp, "created", None)
            created += int(got) if got is not None else len(chunk)
        return created

    @staticmethod
    def _prediction_body(p: Mapping[str, Any]) -> dict:
        body = {"task": int(p["task"]), "result": list(p.get("result") or [])}
        if p.get("score") is not None:
            body["score"] = float(p["score"])
        if p.get("model_version") is not None:
            body["model_version"] = str(p["model_version"])
        return body

    def list_predictions(self, project_id: int, model_version: str | None = None) -> list[dict]:
        """``[{id, task, model_version, score}]`` for every prediction of the project.

        ``GET /api/predictions/?project=ID`` answers the whole list in one unpaginated
        response (the server filters by project, task or task__project only; the version
        is filtered here). Parsed as plain JSON: the SDK's pydantic models cost seconds
        at 10k predictions.
        """
        path = "api/predictions/"
        resp = self._raw("GET", path, params={"project": int(project_id)}, timeout=self.bulk_timeout)
        rows = self._json("GET", path, resp)
        if isinstance(rows, dict):  # a paginated answer, should a later version add it
            rows = rows.get("results", [])
        out = []
        for p in rows:
            if model_version is not None and p.get("model_version") != model_version:
                continue
            task = p.get("task")
            out.append({"id": int(p["id"]), "task": int(task) if task is not None else None,
                        "model_version": p.get("model_version"), "score": p.get("score")})
        return out

    def prediction_results(self, *, project_id: int | None = None, task_id: int | None = None) -> list[dict]:
        """``[{task, model_version, result}]`` for every prediction of one project or one task
        (``GET /api/predictions/?project=ID`` or ``?task=ID``, unpaginated, plain JSON): what
        the predictions hold, not only their scores."""
        if (project_id is None) == (task_id is None):
            raise ValueError("prediction_results needs exactly one of project_id and task_id")
        path = "api/predictions/"
        params = {"project": int(project_id)} if project_id is not None else {"task": int(task_id)}  # type: ignore[arg-type]
        resp = self._raw("GET", path, params=params, timeout=self.bulk_timeout)
        rows = self._json("GET", path, resp)
        if isinstance(rows, dict):
            rows = rows.get("results", [])
        return [{"task": p.get("task"), "model_version": p.get("model_version"),
                 "result": p.get("result") if isinstance(p.get("result"), list) else []}
                for p in rows if isinstance(p, dict)]

    def update_prediction_scores(self, updates: Mapping[int, float]) -> None:
        """PATCH each prediction's score (one request per prediction, ~45 ms each)."""
        for prediction_id, score in updates.items():
            pid = int(prediction_id)
            self._call(
                "PATCH", f"api/predictions/{pid}/",
                lambda pid=pid, score=score: self._sdk.predictions.update(id=pid, score=float(score)),
            )

    def update_prediction_results(self, updates: Mapping[int, list[dict]]) -> None:
        """PATCH each prediction's ``result`` (a task mined again: its explanation changed); the
        score is left to the re-rank. A prediction already gone (404) is passed over."""
        for prediction_id, result in updates.items():
            path = f"api/predictions/{int(prediction_id)}/"
            self._raw("PATCH", path, json_body={"result": list(result)}, ok=(404,))

    def delete_predictions(self, prediction_ids: Iterable[int]) -> None:
        """DELETE each prediction; one already gone (404) is not an error."""
        for prediction_id in prediction_ids:
            pid = int(prediction_id)
            try:
                self._call("DELETE", f"api/predictions/{pid}/", lambda pid=pid: self._sdk.predictions.delete(id=pid))
            except LabelStudioError as exc:
                if exc.status != 404:
                    raise

    def delete_model_version(self, project_id: int, version: str) -> int:
        """Delete every prediction of ``version`` in the project; returns how many.

        Answer is ``{"deleted_predictions": N}``. Deleting the project's current
        ``model_version`` also resets it (to null) on the Label Studio side.
        """
        path = f"api/projects/{int(project_id)}/model-versions/"
        resp = self._raw("DELETE", path, json_body={"model_version": str(version)}, timeout=self.bulk_timeout)
        data = self._json("DELETE", path, resp) if resp.content else 0
        if isinstance(data, dict):
            data = data.get("deleted_predictions", data.get("deleted", 0))
        try:
            return int(data)
        except (TypeError, ValueError):
            return 0

    def cached_prediction_counts(self, project_id: int) -> dict[int, int]:
        """task -> its prediction count as Label Studio caches it (``Task.total_predictions``: the
        Data Manager's "Predictions" column, and the footer's sum of them)."""
        return {int(t["id"]): int(t.get("total_predictions") or 0)
                for t in self.iter_tasks(project_id, fields="all", include="id,total_predictions")}

    def recount_predictions(self, project_id: int, task_ids: Iterable[int], scratch_version: str) -> None:
        """Make Label Studio count the predictions of these tasks again.

        Label Studio 1.23.2 refreshes ``Task.total_predictions`` in three places only: the bulk
        prediction import recounts every task it names from scratch
        (``tasks.functions.update_tasks_counters``), saving one prediction recounts its task,
        and deleting one sets its task's count to the others' (``tasks.models``, the
        ``pre_delete`` and ``post_save`` receivers of Prediction). So: import one empty
        prediction per task under ``scratch_version`` (its recount includes it), then delete
        that version (each deletion takes its own one off again). Two bulk requests, about
        5 ms a task, where saving each prediction again would cost a PATCH (45 ms) each.
        """
        ids = sorted({int(t) for t in task_ids})
        if not ids:
            return
        self.import_predictions(project_id, [{"task": t, "result": [], "model_version": scratch_version} for t in ids])
        self.delete_model_version(project_id, scratch_version)

    # ===================================================================== views
    def ensure_view(self, project_id: int, title: str, ordering: list[str],
                    hidden_columns: Mapping[str, list[str]] | Callable[[], Mapping[str, list[str]]] | None = None,
                    replace: Iterable[list[str]] = (), filters: Mapping[str, Any] | None = None) -> int:
        """The id of the Data Manager tab called ``title``, created once with ``ordering``.

        ``hidden_columns``: the tab's ``hiddenColumns`` (``{"explore": [...], "labeling": [...]}``,
        column ids such as ``tasks:inner_id`` or ``tasks:data.text``), or a function giving them;
        set when the tab is created, and on a tab that has none (never edited in the Data
        Manager, which writes the key as soon as someone shows or hides a column).
        ``filters``: the tab's ``filters`` (``{"conjunction": "and", "items": [...]}``), set when
        the tab is created, and on a tab that has none (the Data Manager writes the key once
        someone edits the tab's filters: an admin who removed them keeps the tab unfiltered).
        An existing tab's ordering is changed only when it is empty or one of ``replace`` (an
        ordering the backend itself set earlier, under another score direction): whatever an
        admin chose later (another ordering, filters, columns) is left as it is.
        """
        pid = int(project_id)
        views = self._call("GET", "api/dm/views/", lambda: self._sdk.views.list(project=pid))
        mine = sorted((v for v in views if isinstance(v.data, dict) and v.data.get("title") == title),
                      key=lambda v: v.id or 0)
        hidden = hidden_columns() if callable(hidden_columns) else hidden_columns
        if not mine:
            data: dict[str, Any] = {"title": title, "ordering": list(ordering)}
            if hidden is not None:
                data["hiddenColumns"] = {k: list(v) for k, v in hidden.items()}
            if filters is not None:
                data["filters"] = json.loads(json.dumps(filters))
            view = self._call("POST", "api/dm/views/", lambda: self._sdk.views.create(project=pid, data=data))
            return int(view.id)
        view = mine[0]
        current = list(view.data.get("ordering") or [])
        data = dict(view.data)
        if current != list(ordering) and (not current or current in [list(r) for r in replace]):
            data["ordering"] = list(ordering)
        if hidden is not None and "hiddenColumns" not in view.data:
            data["hiddenColumns"] = {k: list(v) for k, v in hidden.items()}
        if filters is not None and "filters" not in view.data:
            data["filters"] = json.loads(json.dumps(filters))
        if data != view.data:
            path = f"api/dm/views/{view.id}/"
            self._call("PATCH", path, lambda: self._sdk.views.update(id=str(view.id), project=pid, data=data))
        return int(view.id)

    def columns(self, project_id: int) -> list[dict]:
        """The Data Manager's columns of the project (``GET /api/dm/columns``), as plain JSON.

        Each has ``id``, ``parent`` (``"data"`` for task data fields) and ``visibility_defaults``
        (``{"explore": bool, "labeling": bool}``): what Label Studio's own Default tab shows.
        """
        path = "api/dm/columns/"
        body = self._json("GET", path, self._raw("GET", path, params={"project": int(project_id)}))
        rows = body.get("columns", []) if isinstance(body, dict) else body
        return [c for c in rows if isinstance(c, dict)]

    # ============================================================ the label stream
    def set_sampling(self, project_id: int, sampling: str) -> None:
        """The project's task sampling: ``"Sequential sampling"``, ``"Uniform sampling"`` or
        ``"Uncertainty sampling"`` (the community edition accepts all three through the API)."""
        path = f"api/projects/{int(project_id)}/"
        self._raw("PATCH", path, json_body={"sampling": str(sampling)})

    def update_annotation_result(self, annotation_id: int, result: list[dict]) -> None:
        """Replace an annotation's ``result`` (``PATCH /api/annotations/{id}``)."""
        path = f"api/annotations/{int(annotation_id)}/"
        self._raw("PATCH", path, json_body={"result": list(result)}, retries=0)

    def annotated_tasks(self, project_id: int) -> list[dict]:
        """Every task that has an annotation, with its annotations in full (``id``, ``result``).

        One ``GET /api/projects/{id}/export?exportType=JSON`` (finished tasks only): the task
        listing's ``annotations`` carry only ids.
        """
        path = f"api/projects/{int(project_id)}/export"
        resp = self._raw("GET", path, params={"exportType": "JSON", "download_all_tasks": "false"},
                         timeout=self.bulk_timeout)
        rows = self._json("GET", path, resp)
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    def get_annotation(self, annotation_id: int) -> dict:
        path = f"api/annotations/{int(annotation_id)}/"
        return self._json("GET", path, self._raw("GET", path))

    def label_all_tasks(self, project_id: int, tab_id: int) -> dict | None:
        """The task the Data Manager's "Label All Tasks" button opens for this user, or None.

        Sends exactly what the button sends in its default mode (captured in Chromium,
        Label Studio 1.23.2): ``POST /api/dm/actions?id=next_task&tabID=T&project=P`` with
        the body ``{"project": "P"}``. The tab's ordering is not sent: the project's sampling
        decides. Like every stream request it locks the task for this user.
        """
        path = "api/dm/actions/"
        pid = int(project_id)
        resp = self._raw("POST", path, params={"id": "next_task", "tabID": int(tab_id), "project": pid},
                         json_body={"project": str(pid)}, ok=(404,))
        if resp.status_code == 404:
            return None
        body = self._json("POST", path, resp)
        return body if isinstance(body, dict) and body.get("id") is not None else None

    # ================================================================== webhooks
    def list_webhooks(self, project_id: int, timeout: float | None = None) -> list[dict]:
        """The project's webhooks as plain JSON: ``[{id, url, headers, actions, ...}]``."""
        path = "api/webhooks/"
        resp = self._raw("GET", path, params={"project": int(project_id)}, timeout=timeout)
        rows = self._json("GET", path, resp)
        if isinstance(rows, dict):  # a paginated answer, should a later version add it
            rows = rows.get("results", [])
        return [row for row in rows if isinstance(row, dict)]

    def set_webhook_headers(self, webhook: Mapping[str, Any], headers: Mapping[str, str],
                            timeout: float | None = None) -> None:
        """Replace the extra headers Label Studio sends with ``webhook`` (a row of :meth:`list_webhooks`).

        The webhook's actions are sent along: Label Studio 1.23's partial update otherwise
        clears them (its serializer defaults a missing ``actions`` to ``[]``).
        """
        path = f"api/webhooks/{int(webhook['id'])}/"
        body = {"headers": dict(headers), "actions": list(webhook.get("actions") or [])}
        self._raw("PATCH", path, json_body=body, timeout=timeout, retries=0)

    # ===================================================================== tasks
    def _task_pages(self, params: dict[str, Any], page_size: int, limit: int | None) -> Iterator[dict]:
        path = "api/tasks/"
        page, seen = 1, 0
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - seen))
            resp = self._raw("GET", path, params={**params, "page": page, "page_size": size},
                             timeout=self.bulk_timeout, ok=(404,) if page > 1 else ())
            if resp.status_code == 404:  # past the last page (the total changed meanwhile)
                return
            body = self._json("GET", path, resp)
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            for task in tasks:
                yield task
                seen += 1
                if limit is not None and seen >= limit:
                    return
            total = body.get("total") if isinstance(body, dict) else None
            if len(tasks) < size or (total is not None and seen >= int(total)):
                return
            page += 1

    def get_task(self, task_id: int) -> dict | None:
        """One task with its data, predictions and annotations; None when it is gone (404)."""
        path = f"api/tasks/{int(task_id)}/"
        resp = self._raw("GET", path, ok=(404,))
        if resp.status_code == 404:
            return None
        body = self._json("GET", path, resp)
        return body if isinstance(body, dict) else None

    def tasks_by_id(self, project_id: int, task_ids: Iterable[int], include: str | None = TASK_FIELDS,
                    fields: str = "all") -> list[dict]:
        """The project's tasks of ``task_ids`` (those that still exist), with their predictions,
        in one listing: the Data Manager's ``selectedItems`` query. ``fields="task_only"``
        skips the annotations and predictions (the task's own columns only)."""
        ids = [int(t) for t in task_ids]
        if not ids:
            return []
        query = json.dumps({"selectedItems": {"all": False, "included": ids}})
        params: dict[str, Any] = {"project": int(project_id), "fields": fields, "query": query}
        if include:
            params["include"] = include
        return list(self._task_pages(params, 1000, None))

    def iter_tasks(self, project_id: int, page_size: int = 1000, fields: str = "all",
                   include: str | None = TASK_FIELDS) -> Iterator[dict]:
        """Every task of the project, in id order, with ``data`` and (``fields="all"``) predictions.

        ``include`` trims each row to those keys on the server (``None``: Label Studio's full
        Data Manager row, about three times slower: 10k tasks take tens of seconds).
        """
        params: dict[str, Any] = {"project": int(project_id), "fields": fields}
        if include:
            params["include"] = include
        yield from self._task_pages(params, page_size, None)

    def task_ids(self, project_id: int) -> set[int]:
        """The ids of every task the project has now (one small page per 1,000 tasks)."""
        return {int(t["id"]) for t in self.iter_tasks(project_id, fields="task_only", include="id")}

    def tasks_in_view(self, view_id: int, limit: int | None = None, include: str | None = None) -> list[dict]:
        """Tasks in the tab's order (its filters and ordering applied by Label Studio), full rows.

        Rows carry ``predictions_score``, the average score of the predictions whose
        version is the project's ``model_version``.
        """
        params: dict[str, Any] = {"view": int(view_id), "fields": "all"}
        if include:
            params["include"] = include
        return list(self._task_pages(params, 1000, limit))

    def close(self) -> None:
        try:
            self._http.httpx_client.close()
        except Exception:  # pragma: no cover
            pass

    def __repr__(self) -> str:
        return f"LabelStudioClient({mask_url(self.base_url)!r}, auth={'pat' if self.is_pat else 'legacy'})"
