"""Model-version strings: how the backend names its predictions, and how it knows its own.

Label Studio keeps the predictions of every model version; the project's tab sorts by the
version the project names. A version string is therefore persisted state: a changed byte
makes every project re-mine and rewrite all its predictions. ``tests/test_versions.py``
pins today's strings for a fixed set of settings.

- :func:`digest`: the hash a version string ends with, over the settings that made it (the
  string itself is composed from the settings by :func:`backend.settings.base_version`,
  which owns those settings; this module knows nothing of them and imports nothing of the
  package);
- :func:`generation_version`: ``<base>-r<N>``, a full rewrite of a project's priorities
  under a new generation (see ``backend.engine.writeback``);
- :func:`is_own_version`: the one rule for "is this prediction ours" (its version starts
  with ``MODEL_VERSION_PREFIX``), so other models' predictions give the uncertainty and
  ours never do.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: MODEL_VERSION_PREFIX's default
DEFAULT_PREFIX = "vlmine"


def digest(obj: Any, length: int = 8) -> str:
    """``length`` hex digits of sha256 over ``obj`` as sorted JSON (8: the hash in a version string)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


#: the kinds of project a version names (``labelstudio.config.Source.kind``)
KINDS = ("image", "text")


def generation_version(base: str | None, generation: int) -> str | None:
    """The version of a project's ``generation``-th full rewrite: the base, then ``<base>-r<N>``."""
    if not base:
        return None
    return base if generation == 0 else f"{base}-r{generation}"


def is_own_version(model_version: Any, prefix: str = DEFAULT_PREFIX) -> bool:
    """Whether a prediction of ``model_version`` was written by this backend (``prefix``:
    MODEL_VERSION_PREFIX). The one owner of this rule: the server, the offline commands and
    the uncertainty signals all ask here."""
    return str(model_version or "").startswith(prefix)
