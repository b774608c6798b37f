"""A small base class in the shape of label-studio-ml's ``LabelStudioMLBase``.

label-studio-ml's only PyPI release (1.0.9, 2023) pins Flask 1.1.2, answers
``GET /versions`` with 405 and forks ``fit()`` on every webhook, which changes
the model version and makes Label Studio predict every task again. The
maintained 2.x framework is only installable from its git repository. So this
backend speaks the wire protocol itself (``backend.server.app``) and keeps the class
shape people who know that framework expect: a model is built per request
with the project and its label config, ``setup()`` runs first, ``predict()``
answers ``/predict`` and ``fit()`` receives webhook events.
"""

from __future__ import annotations

from typing import Any

from ..ids import MAX_ID, parse_project_id  # noqa: F401  (model.py imports parse_project_id from here)


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
