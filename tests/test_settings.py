"""Settings: README coverage, parsing from the environment, the model version, masking."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from backend.settings import SECRET_FIELDS, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {"LABEL_STUDIO_API_KEY", "BASIC_AUTH_PASS", "VLM_API_KEY", "KEYWORD_LLM_API_KEY", "WEBHOOK_SECRET"}


def _readme_settings() -> set[str]:
    """The variable names in the first column of README.md's settings table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


# ---------------------------------------------------------------------------- README
def test_every_setting_is_in_the_readme_table():
    documented = _readme_settings()
    missing = sorted(f.name.upper() for f in fields(Settings) if f.name.upper() not in documented)
    assert not missing, f"add to README.md's settings table: {missing}"


def test_the_readme_table_names_only_settings():
    names = {f.name.upper() for f in fields(Settings)}
    assert not _readme_settings() - names, sorted(_readme_settings() - names)


# ---------------------------------------------------------------------------- parsing
def test_defaults_without_environment():
    s = Settings.from_env({})
    assert s == Settings()
    assert s.redis_url is None and s.signal_fields == [] and s.invert_priority is False


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), ("Yes", True), (" ON ", True),
                                           ("0", False), ("false", False), ("no", False), ("off", False)])
def test_bools(raw, expected):
    assert Settings.from_env({"INVERT_PRIORITY": raw}).invert_priority is expected


def test_ints_floats_and_lists():
    s = Settings.from_env({"BATCH_SIZE": "7", "RERANK_DELAY": "0.5", "MAX_REQUEST_MB": "3",
                           "SIGNAL_FIELDS": "a, b,,  c ", "IMAGE_READ_TIMEOUT": "12.5"})
    assert s.batch_size == 7 and isinstance(s.batch_size, int)
    assert s.rerank_delay == 0.5 and isinstance(s.rerank_delay, float)
    assert s.max_request_mb == 3.0 and isinstance(s.max_request_mb, float)
    assert s.image_read_timeout == 12.5
    assert s.signal_fields == ["a", "b", "c"]


def test_strings_are_kept_as_given():
    s = Settings.from_env({"VLM_MODEL": "/models/llava", "REDIS_URL": "redis://r:6379/1"})
    assert s.vlm_model == "/models/llava" and s.redis_url == "redis://r:6379/1"


def test_empty_strings_are_ignored():
    s = Settings.from_env({"BATCH_SIZE": "", "POOLING": "  ", "REDIS_URL": "", "INVERT_PRIORITY": "",
                           "SIGNAL_FIELDS": ""})
    assert s == Settings()


def test_overrides_win():
    assert Settings.from_env({"BATCH_SIZE": "7"}, batch_size=9).batch_size == 9


@pytest.mark.parametrize("env, name", [
    ({"BATCH_SIZE": "many"}, "BATCH_SIZE"),
    ({"JOB_TIMEOUT": "1.5"}, "JOB_TIMEOUT"),
    ({"RERANK_DELAY": "soon"}, "RERANK_DELAY"),
    ({"INVERT_PRIORITY": "maybe"}, "INVERT_PRIORITY"),
    ({"POOLING": "median"}, "POOLING"),
    ({"KEYWORD_MODE": "magic"}, "KEYWORD_MODE"),
    ({"UNCERTAINTY_SOURCE": "oracle"}, "UNCERTAINTY_SOURCE"),
    ({"UNCERTAINTY_SOURCE": "field"}, "UNCERTAINTY_FIELD"),
    ({"BATCH_SIZE": "0"}, "BATCH_SIZE"),
    ({"BASIC_AUTH_USER": "admin"}, "BASIC_AUTH_PASS"),
])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_a_bad_choice_lists_the_allowed_values():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"POOLING": "median"})
    assert "gmean" in str(info.value) and "median" in str(info.value)


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


# ---------------------------------------------------------------------------- model version
def test_model_version_is_stable_across_builds():
    env = {"POOLING": "min", "KEYWORD_MODE": "direct", "SIGNAL_FIELDS": "size, age"}
    a, b = Settings.from_env(env), Settings.from_env(dict(env))
    assert a.model_version() == b.model_version()
    assert a.mining_hash() == b.mining_hash()


def test_model_version_reads_well():
    version = Settings.from_env({}).model_version()
    assert re.fullmatch(r"vlmine-llava-1\.5-7b-hf-llm-gmean-novelty-[0-9a-f]{8}", version), version
    with_probs = Settings.from_env({"UNCERTAINTY_SOURCE": "prediction_probs"}).model_version()
    assert "novelty+entropy" in with_probs


@pytest.mark.parametrize("env", [
    {"POOLING": "min"},
    {"POOLING": "mean"},
    {"KEYWORD_MODE": "direct"},
    {"KEYWORD_MODE": "rules"},
    {"VLM_MODEL": "llava-hf/llava-1.5-13b-hf"},
    {"NOVELTY_TRANSFORM": "inverse"},
    {"UNCERTAINTY_SOURCE": "prediction_score"},
    {"SIGNAL_FIELDS": "size"},
    {"INVERT_PRIORITY": "true"},
    {"VLM_PROMPT": "Describe."},
    {"VLM_API_URL": "http://vllm:8000/v1", "VLM_API_MODEL": "llava-hf/llava-1.5-7b-hf"},
])
def test_model_version_changes_with_a_setting(env):
    assert Settings.from_env(env).model_version() != Settings.from_env({}).model_version()


@pytest.mark.parametrize("env", [{"KEYWORD_MODE": "direct"}, {"VLM_MODEL": "llava-hf/llava-1.5-13b-hf"}])
def test_mining_settings_change_the_mining_hash(env):
    assert Settings.from_env(env).mining_hash() != Settings.from_env({}).mining_hash()


def test_ranking_settings_leave_the_mining_hash():
    """A new pooling re-ranks, but the keywords already mined stay valid."""
    assert Settings.from_env({"POOLING": "min"}).mining_hash() == Settings.from_env({}).mining_hash()


def test_settings_outside_mining_and_ranking_leave_the_version():
    env = {"BATCH_SIZE": "4", "LOG_LEVEL": "DEBUG", "LABEL_STUDIO_URL": "http://ls:8080", "PATCH_LIMIT": "5"}
    assert Settings.from_env(env).model_version() == Settings.from_env({}).model_version()


def test_synonyms_file_content_is_part_of_the_version(tmp_path):
    path = tmp_path / "synonyms.json"
    path.write_text('{"automobile": "car"}')
    first = Settings.from_env({"SYNONYMS_FILE": str(path)}).model_version()
    assert first == Settings.from_env({"SYNONYMS_FILE": str(path)}).model_version()
    path.write_text('{"automobile": "vehicle"}')
    assert Settings.from_env({"SYNONYMS_FILE": str(path)}).model_version() != first


def test_unreadable_synonyms_file_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="SYNONYMS_FILE"):
        Settings.from_env({"SYNONYMS_FILE": str(tmp_path / "missing.json")}).model_version()


# ---------------------------------------------------------------------------- secrets
def test_secret_fields_are_the_known_secrets():
    assert {name.upper() for name in SECRET_FIELDS} == SECRETS


def test_public_masks_every_secret():
    env = {name: f"secret-{name.lower()}" for name in SECRETS}
    env["BASIC_AUTH_USER"] = "admin"
    shown = Settings.from_env(env).public()
    for name in SECRETS:
        assert shown[name.lower()] == "***"
    blob = repr(shown)
    assert "secret-" not in blob
    assert shown["basic_auth_user"] == "admin"  # a user name is not a secret


def test_public_leaves_unset_secrets_unset_and_the_rest_alone():
    shown = Settings.from_env({"BATCH_SIZE": "5"}).public()
    assert all(shown[name.lower()] is None for name in SECRETS)
    assert shown["batch_size"] == 5
    assert set(shown) == {f.name for f in fields(Settings)}
