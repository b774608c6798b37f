"""A small base class in the shape of label-studio-ml's ``LabelStudioMLBase``.

label-studio-ml's only PyPI release (1.0.9, 2023) pins Flask 1.1.2, answers
``GET /versions`` with 405 and forks ``fit()`` on every webhook, which changes
the model version and makes Label Studio predict every task again. The
maintained 2.x framework is only installable from its git repository. So this
backend speaks the wire protocol itself (``backend.api``) and keeps the class
shape people who know that framework expect: a model is built per request
with the project and its label config, ``setup()`` runs first, ``predict()``
answers ``/predict`` and ``fit()`` receives webhook events.
"""

from __future__ import annotations

from typing import Any

#: the largest id accepted anywhere (a signed 64-bit integer, what SQLite and Label Studio store)
MAX_ID = 2**63 - 1


def parse_project_id(project: Any) -> int:
    """Label Studio sends ``"<id>.<timestamp>"`` in /setup and /predict, a plain id in webhooks."""
    if isinstance(project, bool):
        raise ValueError("project must be a project id")
    if isinstance(project, int):
        pid = project
    elif isinstance(project, dict) and "id" in project:
        return parse_project_id(project["id"])
    elif isinstance(project, str) and project.strip():
        head = project.strip().split(".", 1)[0]
        # ASCII digits only (str.isdigit also takes "²", which int() refuses), and no more than
        # an id can have: a 5,000-digit string would trip Python's int() limit
        if not (head.isascii() and head.isdigit()):
            raise ValueError(f"project must look like '<id>' or '<id>.<timestamp>', got {project[:40]!r}")
        digits = head.lstrip("0") or "0"
        if len(digits) > len(str(MAX_ID)):
            raise ValueError(f"project id must be at most {MAX_ID}")
        pid = int(digits)
    else:
        raise ValueError("project must be a project id")
    if pid <= 0:
        raise ValueError("project id must be positive")
    if pid > MAX_ID:
        raise ValueError(f"project id must be at most {MAX_ID}")
    return pid


class LabelStudioMLBase:
    """Override ``setup``, ``predict`` and ``fit``; the server does the rest."""

    def __init__(self, project_id: Any = None, label_config: str | None = None) -> None:
        self.project_id = project_id
        self.label_config = label_config
        self.model_version = "0.0.1"
        self.setup()

    @property
    def project(self) -> int:
        return parse_project_id(self.project_id)

    def setup(self) -> None:
        """Runs for every request before predict/fit; set ``self.model_version`` here."""

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs: Any) -> list[dict]:
        """One prediction dict per task, in order: {"result": [...], "score": float, "model_version": str}."""
        raise NotImplementedError

    def fit(self, event: str, data: dict, **kwargs: Any) -> Any:
        """A Label Studio webhook event (TASKS_CREATED, ANNOTATION_CREATED, ...)."""
        return None
