"""The HTTP face of the ML-backend protocol: routes, request checks, webhook headers, the report page.

``create_app(settings, model_class=...)`` builds the Flask app; the root ``_wsgi.py`` hands
it ``model.VLMineModel``, as label-studio-ml's ``init_app(model_class)`` is handed the model.
"""

from .app import create_app

__all__ = ["create_app"]
