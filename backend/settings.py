"""Every setting of the backend, read from the environment in one place, and the names the
settings give: the fingerprints that decide when tasks are re-mined or re-ranked, and the
model version a project's predictions carry (:func:`base_version`; the version-string rules
that need no settings are :mod:`backend.versions`'s).

Each field's name in upper case is its environment variable. When you add a
field, add a row to the table in ``docs/settings.md`` too: ``tests/test_settings.py``
checks that every field appears there.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from . import versions
from .errors import SettingsError
from .logs import configure_logging, mask_url

__all__ = ["Settings", "SettingsError", "base_version", "configure_logging", "mask_url", "read_synonyms_file"]


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


#: what MODEL_VERSION_PREFIX may be (see Settings.validate)
_VERSION_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


@dataclass
class Settings:
    # --- where state lives -------------------------------------------------
    model_dir: str = "./data"
    redis_url: str | None = None

    # --- Label Studio --------------------------------------------------------
    label_studio_url: str | None = None
    label_studio_api_key: str | None = None
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = None
    webhook_secret: str | None = None

    # --- what gets described -------------------------------------------------
    description_field: str | None = None
    image_field: str | None = None
    text_keyword_mode: str = "rules"

    # --- the VLM ---------------------------------------------------------------
    vlm_model: str | None = None  # None: backend.vlm.defaults chooses for the machine (describer_model)
    vlm_device: str | None = None
    vlm_dtype: str | None = None
    vlm_max_new_tokens: int = 96
    vlm_batch_size: int = 8
    vlm_prompt: str | None = None
    vlm_api_url: str | None = None
    vlm_api_model: str | None = None
    vlm_api_key: str | None = None
    vlm_api_concurrency: int = 8

    # --- keywords --------------------------------------------------------------
    keyword_mode: str = "llm"
    keyword_prompt: str | None = None
    keyword_llm_url: str | None = None
    keyword_llm_model: str | None = None
    keyword_llm_api_key: str | None = None
    synonyms_file: str | None = None

    # --- ranking ---------------------------------------------------------------
    pooling: str = "confirmed"
    novelty_transform: str = "neglog"
    head_diversity: float = 0.05
    uncertainty_source: str = "none"
    uncertainty_model_version: str | None = None
    uncertainty_measure: str = "entropy"
    uncertainty_field: str | None = None
    signal_fields: list[str] = field(default_factory=list)
    invert_priority: bool = False
    label_stream: str = "uncertainty"

    # --- objects (detection projects; docs/objects.md) ------------------------------
    object_mining: bool = False
    object_source: str = "predictions"
    object_model_version: str | None = None
    object_crop_margin: float = 0.15
    object_min_side: int = 16
    object_max_per_task: int = 16
    object_with_scene: bool = True
    object_pooling: str = "max"
    object_prompt: str | None = None
    object_highlight: bool = True

    # --- write-back ------------------------------------------------------------
    model_version_prefix: str = versions.DEFAULT_PREFIX
    view_title: str = "Long-tail first"
    textarea_name: str = "vlmine"
    rare_keywords_shown: int = 5
    keep_explanations: bool = False
    patch_limit: int = 200
    bump_share: float = 0.1
    exact_head: int = 500
    place_tolerance: float = 0.1
    rerank_delay: float = 2.0

    # --- jobs ------------------------------------------------------------------
    batch_size: int = 32
    predict_wait: float = 60.0
    sync_on_start: bool = True
    job_timeout: int = 3600
    job_retries: int = 3

    # --- images ----------------------------------------------------------------
    image_max_bytes: int = 50 * 2**20
    image_max_pixels: int = 89_478_485
    image_max_aspect_ratio: float = 20.0
    image_connect_timeout: float = 5.0
    image_read_timeout: float = 30.0
    image_fetch_concurrency: int = 8
    image_decode_min_side: int = 1024
    image_allow_private_networks: bool = False
    local_files_document_root: str | None = None
    aws_endpoint_url: str | None = None

    # --- server ----------------------------------------------------------------
    log_level: str = "INFO"
    max_request_mb: float = 64.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from ``env`` (default ``os.environ``); overrides win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or raw.strip() == "":
                continue
            try:
                values[f.name] = _convert(f.type, raw)
            except ValueError as exc:
                raise SettingsError(f"{f.name.upper()}: {exc}") from None
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        choices = {
            "keyword_mode": {"llm", "direct", "rules"},
            "text_keyword_mode": {"llm", "rules"},
            "pooling": {"confirmed", "gmean", "mean", "min"},
            "novelty_transform": {"neglog", "inverse"},
            "uncertainty_source": {"none", "prediction_score", "prediction_probs", "predictions_vote", "field"},
            "uncertainty_measure": {"entropy", "margin", "least_confidence"},
            "label_stream": {"uncertainty", "tab"},
            "object_source": {"predictions", "annotations"},
            "object_pooling": {"max", "mean"},
        }
        if self.vlm_dtype is not None:
            choices["vlm_dtype"] = {"float32", "fp32", "float", "float16", "fp16", "half", "bfloat16", "bf16"}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise SettingsError(f"{name.upper()} must be one of {sorted(allowed)}, got {value!r}")
        for f in fields(self):  # overrides skip _convert: nan and inf are caught here too
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"{f.name.upper()}: expected a finite number, got {value!r}")
        for name, schemes in URL_SCHEMES.items():
            value = getattr(self, name)
            if value:
                _check_url(name, value, schemes)
        if str(self.log_level).upper() not in logging.getLevelNamesMapping():
            raise SettingsError(f"LOG_LEVEL must be one of {sorted(logging.getLevelNamesMapping())}, "
                                f"got {str(self.log_level)[:40]!r}")
        if self.uncertainty_source == "field" and not self.uncertainty_field:
            raise SettingsError("UNCERTAINTY_SOURCE=field needs UNCERTAINTY_FIELD")
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            raise SettingsError("BASIC_AUTH_USER and BASIC_AUTH_PASS must be set together")
        for name in ("batch_size", "vlm_batch_size", "vlm_max_new_tokens", "vlm_api_concurrency", "job_timeout",
                     "image_max_bytes", "image_max_pixels", "image_connect_timeout", "image_read_timeout",
                     "image_fetch_concurrency", "max_request_mb", "rare_keywords_shown", "predict_wait"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name.upper()} must be positive")
        for name in ("patch_limit", "job_retries", "rerank_delay", "image_decode_min_side", "exact_head"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name.upper()} must not be negative")
        if not _VERSION_PREFIX.fullmatch(str(self.model_version_prefix)):
            # every prediction whose model version starts with the prefix counts as the
            # backend's own (rewritten, retired, never read as another model's signal), so
            # an empty prefix would claim every other model's predictions
            raise SettingsError("MODEL_VERSION_PREFIX must be 1-40 letters, digits, '.', '_' or '-', "
                                f"starting with a letter or digit; got {str(self.model_version_prefix)[:40]!r}")
        if not 0 <= self.head_diversity <= 1:
            raise SettingsError("HEAD_DIVERSITY must be between 0 (off) and 1")
        for name in ("bump_share", "place_tolerance"):
            if not 0 <= getattr(self, name) <= 1:
                raise SettingsError(f"{name.upper()} must be between 0 and 1 (a share)")
        if not (self.image_max_aspect_ratio == 0 or self.image_max_aspect_ratio >= 1):
            raise SettingsError("IMAGE_MAX_ASPECT_RATIO must be 0 (no limit) or at least 1")
        self._validate_objects()

    def _validate_objects(self) -> None:
        """The OBJECT_* limits, checked even with OBJECT_MINING off (a typo shows at once,
        not on the day it is turned on)."""
        from .objects.crops import MAX_OBJECTS

        if not 0 <= self.object_crop_margin <= 10:
            raise SettingsError("OBJECT_CROP_MARGIN must be between 0 and 10 (a share of the box's side)")
        if self.object_min_side < 0:
            raise SettingsError("OBJECT_MIN_SIDE must not be negative")
        if not 1 <= self.object_max_per_task <= MAX_OBJECTS:
            raise SettingsError(f"OBJECT_MAX_PER_TASK must be between 1 and {MAX_OBJECTS}")
        if self.object_mining:
            taken = {"novelty", *OBJECT_SIGNALS} & {*self.signal_fields, self.uncertainty_field or ""}
            if taken:
                raise SettingsError(f"SIGNAL_FIELDS/UNCERTAINTY_FIELD may not use the name(s) {sorted(taken)}: "
                                    "object mining ranks its own signals under them")

    # ------------------------------------------------------------------ derived
    @property
    def data_dir(self) -> Path:
        return Path(self.model_dir)

    @property
    def scores_ascending(self) -> bool:
        """Whether the label-first task gets the LOWEST score.

        Label Studio's "Uncertainty sampling" (LABEL_STREAM=uncertainty) serves the task
        with the lowest score first, so that stream needs the scores reversed; with
        LABEL_STREAM=tab they are reversed only when INVERT_PRIORITY asks for it.
        """
        return self.label_stream == "uncertainty" or self.invert_priority

    @property
    def vlm_backend(self) -> str:
        """``openai`` when an endpoint is configured, else local transformers."""
        return "openai" if self.vlm_api_url else "transformers"

    @property
    def describer_model(self) -> str:
        """The local model that describes images: VLM_MODEL, else the default for VLM_DEVICE or
        for this machine (LLaVA-1.5-7B with CUDA, SmolVLM-256M-Instruct without; see
        ``backend.vlm.defaults``). Not used when VLM_API_URL names an endpoint."""
        if self.vlm_model:
            return self.vlm_model
        from .vlm.defaults import default_model

        return default_model(self.vlm_device)

    @property
    def describer_processor_kwargs(self) -> dict[str, Any]:
        """Arguments for the describer's processor: the CPU default's one view per image when
        the backend chose that model itself (``vlm.defaults.CPU_DEFAULT_PROCESSOR``); none for
        a model VLM_MODEL names, which runs as its checkpoint says."""
        from .vlm.defaults import CPU_DEFAULT_MODEL, CPU_DEFAULT_PROCESSOR

        if self.vlm_model or self.vlm_api_url or self.describer_model != CPU_DEFAULT_MODEL:
            return {}
        return dict(CPU_DEFAULT_PROCESSOR)

    @property
    def vlm_name(self) -> str:
        """The describer as a model version names it: the model's last path part, or
        ``endpoint:<model>``."""
        if self.vlm_api_url:
            return f"endpoint:{self.vlm_api_model or 'default'}"
        return self.describer_model.rstrip("/").split("/")[-1]

    @property
    def keyword_llm_name(self) -> str:
        """The model that turns text into keywords in ``llm`` mode, as a model version names it:
        KEYWORD_LLM_URL's model, else the describer itself (Miner.keyword_llm)."""
        if self.keyword_llm_url:
            return f"endpoint:{self.keyword_llm_model or 'default'}"
        return self.vlm_name

    def mining_fingerprint(self, synonyms: bytes | None = None) -> dict[str, Any]:
        """The settings that decide a task's keywords: change one and tasks are re-mined.

        ``synonyms``: the SYNONYMS_FILE's bytes as already read (by the keyword normaliser);
        by default the file is read here.
        """
        return {
            "description_field": self.description_field,
            "image_field": self.image_field,
            "text_keyword_mode": self.text_keyword_mode,
            # the full hub id or directory: two models that share a last path part are different models
            "vlm": self.describer_model if not self.vlm_api_url else f"{self.vlm_api_url}|{self.vlm_api_model}",
            # only when not empty: the fingerprints of models loaded as their checkpoint says stay as they were
            **({"vlm_processor": self.describer_processor_kwargs} if self.describer_processor_kwargs else {}),
            "vlm_prompt": self.vlm_prompt,
            "vlm_max_new_tokens": self.vlm_max_new_tokens,
            "keyword_mode": self.keyword_mode,
            "keyword_prompt": self.keyword_prompt,
            "keyword_llm": [self.keyword_llm_url, self.keyword_llm_model],
            "synonyms": _file_digest(self.synonyms_file, synonyms),
            # the rule extraction's own version: new rules re-mine every task (see Miner.cache_key)
            "keyword_rules": _keyword_rules_version(),
            # only while on: the fingerprint of every existing install stays as it was
            **({"objects": self.object_fingerprint()} if self.object_mining else {}),
        }

    def object_fingerprint(self) -> dict[str, Any]:
        """The OBJECT_* settings that decide which objects are mined and their keywords
        (OBJECT_POOLING and OBJECT_HIGHLIGHT only rank and show: they are left out)."""
        return {
            "source": [self.object_source, self.object_model_version,
                       # the detector's default is UNCERTAINTY_MODEL_VERSION (see object_source_rule)
                       None if self.object_model_version else self.uncertainty_model_version],
            "crop": [self.object_crop_margin, self.object_min_side, self.object_max_per_task],
            "with_scene": self.object_with_scene,
            "prompt": self.object_prompt,
        }

    def object_source_rule(self):
        """Whose boxes are a task's objects (``objects.ObjectSource``): OBJECT_SOURCE, and for
        predictions OBJECT_MODEL_VERSION, else UNCERTAINTY_MODEL_VERSION, else any model
        version not written by this backend (MODEL_VERSION_PREFIX)."""
        from .objects import ObjectSource

        version = None if self.object_source == "annotations" else (
            self.object_model_version or self.uncertainty_model_version)
        return ObjectSource(self.object_source, version, own_prefix=self.model_version_prefix)

    def object_crop_rules(self):
        """How objects become crops (``objects.CropRules``)."""
        from .objects import CropRules

        return CropRules(self.object_crop_margin, self.object_min_side, self.object_max_per_task)

    def ranking_fingerprint(self) -> dict[str, Any]:
        """The settings that turn keywords and signals into priorities."""
        return {
            "pooling": self.pooling,
            "transform": self.novelty_transform,
            "head_diversity": self.head_diversity,
            "uncertainty": [self.uncertainty_source, self.uncertainty_model_version,
                            self.uncertainty_measure, self.uncertainty_field],
            "signal_fields": list(self.signal_fields),
            # OBJECT_HIGHLIGHT too: the predictions' results change, so a new version rewrites them
            **({"object_pooling": self.object_pooling, "object_highlight": self.object_highlight}
               if self.object_mining else {}),
            # the direction the scores are written in (a new direction rewrites every score)
            "invert": self.scores_ascending,
            # the novelty rule's constants (novelty.rule_fingerprint: the confirmation count,
            # which also weighs the head re-order, and the confirmed pooling's prior): a new
            # value re-ranks every project
            **_novelty_rule(self.pooling),
            # how signals become an order: dominance by a margin, which signals count, the head
            "ranking_rule": _ranking_rule(),
        }

    def mining_hash(self, fingerprint: dict[str, Any] | None = None) -> str:
        """``fingerprint``: :meth:`mining_fingerprint` as already computed (the miner's)."""
        return versions.digest(fingerprint if fingerprint is not None else self.mining_fingerprint())

    def model_version(self, fingerprint: dict[str, Any] | None = None, kind: str = "image") -> str:
        """The base model version of these settings for a project of ``kind`` ("image" or
        "text"; see :func:`base_version`).

        Example: ``vlmine-llava-1.5-7b-hf-llm-confirmed-novelty+entropy-3f2a9c1d``.
        ``fingerprint``: :meth:`mining_fingerprint` as already computed (the miner's).
        """
        return base_version(self, fingerprint, kind=kind)

    def public(self) -> dict[str, Any]:
        """Settings as shown to users: secrets masked, and so are passwords inside URLs."""
        shown = asdict(self)
        for key in SECRET_FIELDS:
            if shown.get(key):
                shown[key] = "***"
        for key in URL_SCHEMES:
            if shown.get(key):
                shown[key] = mask_url(shown[key])
        return shown


#: the signals object mining ranks (backend.engine.ranking_signals): names no data field may take
OBJECT_SIGNALS = ("object_novelty", "object_uncertainty")

SECRET_FIELDS = ("label_studio_api_key", "basic_auth_pass", "vlm_api_key", "keyword_llm_api_key", "webhook_secret")

#: the settings that are URLs, and the schemes each accepts
URL_SCHEMES = {
    "redis_url": ("redis", "rediss", "unix"),
    "label_studio_url": ("http", "https"),
    "vlm_api_url": ("http", "https"),
    "keyword_llm_url": ("http", "https"),
    "aws_endpoint_url": ("http", "https"),
}
def base_version(settings: Settings, mining_fingerprint: dict[str, Any] | None = None,
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
    if kind not in versions.KINDS:
        raise ValueError(f"kind must be one of {versions.KINDS}, got {kind!r}")
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
    hashed = versions.digest({"mining": mining, "ranking": s.ranking_fingerprint()})
    if kind == "text":
        mode = s.text_keyword_mode
        made_by = ["text", mode, s.keyword_llm_name if mode == "llm" else ""]
    else:
        made_by = [s.vlm_name, s.keyword_mode]
    parts = [s.model_version_prefix, *made_by, s.pooling, "+".join(signals), hashed]
    return "-".join(_version_part(p) for p in parts if p)


def _version_part(text: str) -> str:
    """``text`` as one dash-separated part of a version string: letters, digits, '.', '+', '_'."""
    out = "".join(ch if ch.isalnum() or ch in ".+_" else "-" for ch in text)
    return out.strip("-") or "x"


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise SettingsError(f"{name.upper()} is not a valid URL: {mask_url(value)[:80]!r}") from None
    if parts.scheme.lower() not in schemes:
        shown = "://, ".join(schemes) + "://"
        raise SettingsError(f"{name.upper()} must start with {shown}, got {mask_url(value)[:80]!r}")
    if parts.scheme.lower() != "unix" and not parts.hostname:
        raise SettingsError(f"{name.upper()} names no host: {mask_url(value)[:80]!r}")


def _convert(type_name: Any, raw: str) -> Any:
    text = str(type_name)
    if text.startswith("list"):
        return _list(raw)
    if text.startswith("bool"):
        return _bool(raw)
    if text.startswith("int"):
        return int(raw)
    if text.startswith("float"):
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {raw.strip()[:40]!r}")
        return value
    return raw


def _novelty_rule(pooling: str) -> dict[str, Any]:
    from .mining.novelty import rule_fingerprint

    rule = rule_fingerprint(pooling)
    return {"novelty_rule": rule} if rule else {}


def _ranking_rule() -> dict[str, Any]:
    from .mining.diversity import RULE_VERSION
    from .mining.pareto import rule_fingerprint

    return {**rule_fingerprint(), "head": RULE_VERSION}


def _keyword_rules_version() -> str:
    from .mining.keywords import RULES_VERSION

    return RULES_VERSION


def _file_digest(path: str | None, data: bytes | None = None) -> str | None:
    if not path:
        return None
    if data is None:
        data = read_synonyms_file(path)
    return hashlib.sha256(data).hexdigest()[:12]


def read_synonyms_file(path: str) -> bytes:
    """SYNONYMS_FILE's bytes, or a SettingsError saying why they cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(f"SYNONYMS_FILE cannot be read: {exc.strerror}") from None
