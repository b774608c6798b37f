"""Model-version strings: how the backend names its predictions, and how it knows its own.

Label Studio keeps the predictions of every model version; the project's tab sorts by the
version the project names. A version string is therefore persisted state: a changed byte
makes every project re-mine and rewrite all its predictions. ``tests/test_versions.py``
pins today's strings for a fixed set of settings.

- :func:`base_version`: ``<prefix>-<describer>-<keyword mode>-<pooling>-<signals>-<hash>``
  for an image project, ``<prefix>-text-<keyword mode>[-<llm>]-<pooling>-<signals>-<hash>``
  for a text project (its own text is the description: no VLM runs), the hash covering
  every mining and ranking setting;
- :func:`generation_version`: ``<base>-r<N>``, a full rewrite of a project's priorities
  under a new generation (see ``backend.engine.writeback``);
- :func:`is_own_version`: the one rule for "is this prediction ours" (its version starts
  with ``MODEL_VERSION_PREFIX``), so other models' predictions give the uncertainty and
  ours never do.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings

#: MODEL_VERSION_PREFIX's default
DEFAULT_PREFIX = "vlmine"


def digest(obj: Any, length: int = 8) -> str:
    """``length`` hex digits of sha256 over ``obj`` as sorted JSON (8: the hash in a version string)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() or ch in ".+_" else "-" for ch in text)
    return out.strip("-") or "x"


#: the kinds of project a version names (``labelstudio.config.Source.kind``)
KINDS = ("image", "text")


def base_version(settings: "Settings", mining_fingerprint: dict[str, Any] | None = None,
                 kind: str = "image") -> str:
    """A readable name of everything that produces a project's predictions.

    Examples: ``vlmine-llava-1.5-7b-hf-llm-gmean-novelty+entropy-3f2a9c1d`` (an image project:
    the describer, then the keyword mode), ``vlmine-text-rules-confirmed-novelty-3f2a9c1d`` (a
    text project mined by rules: no model runs, none is named), ``vlmine-text-llm-endpoint-
    qwen2-...`` (a text project whose keywords an LLM gives: that LLM is named). The hash
    covers every mining and ranking setting, so a changed setting gives a new version (and
    a re-mine), and the same settings give the same version after a restart.

    Args:
        settings: the backend's settings.
        mining_fingerprint: ``settings.mining_fingerprint()`` as already computed (the
            miner's, which read SYNONYMS_FILE once); computed here when None.
        kind: "image" or "text", what the project's label config mines
            (``labelstudio.config.Source.kind``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    s = settings
    signals = ["novelty"]
    if s.uncertainty_source == "prediction_probs":
        signals.append(s.uncertainty_measure)
    elif s.uncertainty_source == "field":
        signals.append(s.uncertainty_field or "field")
    elif s.uncertainty_source != "none":
        signals.append(s.uncertainty_source.replace("_", ""))
    if s.object_mining:
        signals.append("objects")
    signals.extend(s.signal_fields)
    mining = mining_fingerprint if mining_fingerprint is not None else s.mining_fingerprint()
    hashed = digest({"mining": mining, "ranking": s.ranking_fingerprint()})
    if kind == "text":
        mode = s.text_keyword_mode
        made_by = ["text", mode, s.keyword_llm_name if mode == "llm" else ""]
    else:
        made_by = [s.vlm_name, s.keyword_mode]
    parts = [s.model_version_prefix, *made_by, s.pooling, "+".join(signals), hashed]
    return "-".join(_slug(p) for p in parts if p)


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
