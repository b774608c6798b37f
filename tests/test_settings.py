"""Settings: the settings reference (docs/settings.md), parsing from the environment, the model version, masking."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from backend.settings import SECRET_FIELDS, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {"LABEL_STUDIO_API_KEY", "BASIC_AUTH_PASS", "VLM_API_KEY", "KEYWORD_LLM_API_KEY", "WEBHOOK_SECRET"}


def _readme_settings() -> set[str]:
    """The variable names in the first column of the settings table in docs/settings.md."""
    text = (ROOT / "docs" / "settings.md").read_text()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


# ---------------------------------------------------------------------------- docs/settings.md
def test_every_setting_is_in_the_readme_table():
    documented = _readme_settings()
    missing = sorted(f.name.upper() for f in fields(Settings) if f.name.upper() not in documented)
    assert not missing, f"add to the table in docs/settings.md: {missing}"


def test_the_readme_links_the_settings_reference():
    assert "docs/settings.md" in (ROOT / "README.md").read_text()


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
    ({"HEAD_DIVERSITY": "1.5"}, "HEAD_DIVERSITY"),
    ({"HEAD_DIVERSITY": "-0.1"}, "HEAD_DIVERSITY"),
    ({"HEAD_DIVERSITY": "some"}, "HEAD_DIVERSITY"),
    ({"KEYWORD_MODE": "magic"}, "KEYWORD_MODE"),
    ({"UNCERTAINTY_SOURCE": "oracle"}, "UNCERTAINTY_SOURCE"),
    ({"UNCERTAINTY_SOURCE": "field"}, "UNCERTAINTY_FIELD"),
    ({"BATCH_SIZE": "0"}, "BATCH_SIZE"),
    ({"BASIC_AUTH_USER": "admin"}, "BASIC_AUTH_PASS"),
    ({"MODEL_VERSION_PREFIX": " vlmine"}, "MODEL_VERSION_PREFIX"),
    ({"MODEL_VERSION_PREFIX": "x" * 41}, "MODEL_VERSION_PREFIX"),
])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_a_bad_choice_lists_the_allowed_values():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"POOLING": "median"})
    assert "gmean" in str(info.value) and "median" in str(info.value)


def test_an_empty_model_version_prefix_is_refused():
    """An empty prefix would make every model's predictions the backend's own. From the
    environment an empty value means unset (the default); an override cannot be empty."""
    assert Settings.from_env({"MODEL_VERSION_PREFIX": ""}).model_version_prefix == "vlmine"
    with pytest.raises(SettingsError, match="MODEL_VERSION_PREFIX"):
        Settings.from_env({}, model_version_prefix="")


def test_a_custom_model_version_prefix_is_accepted():
    assert Settings.from_env({"MODEL_VERSION_PREFIX": "team-a_mining.v2"}).model_version_prefix == "team-a_mining.v2"


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


# ---------------------------------------------------------------------------- model version
def test_model_version_is_stable_across_builds():
    env = {"POOLING": "min", "KEYWORD_MODE": "direct", "SIGNAL_FIELDS": "size, age"}
    a, b = Settings.from_env(env), Settings.from_env(dict(env))
    assert a.model_version() == b.model_version()
    assert a.mining_hash() == b.mining_hash()


def test_model_version_reads_well():
    version = Settings.from_env({}, vlm_device="cuda").model_version()
    assert re.fullmatch(r"vlmine-llava-1\.5-7b-hf-llm-confirmed-novelty-[0-9a-f]{8}", version), version
    version = Settings.from_env({}, vlm_device="cpu").model_version()
    assert re.fullmatch(r"vlmine-SmolVLM-256M-Instruct-llm-confirmed-novelty-[0-9a-f]{8}", version), version
    text = Settings.from_env({}).model_version(kind="text")
    assert re.fullmatch(r"vlmine-text-rules-confirmed-novelty-[0-9a-f]{8}", text), text
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
    {"LABEL_STREAM": "tab"},
    {"VLM_PROMPT": "Describe."},
    {"VLM_API_URL": "http://vllm:8000/v1", "VLM_API_MODEL": "llava-hf/llava-1.5-7b-hf"},
])
def test_model_version_changes_with_a_setting(env):
    assert Settings.from_env(env).model_version() != Settings.from_env({}).model_version()


def test_the_score_direction_decides_the_version_not_the_setting_that_asks_for_it():
    # LABEL_STREAM=uncertainty writes the scores reversed, as INVERT_PRIORITY=true did: one direction, one version
    default = Settings.from_env({})
    assert default.scores_ascending
    assert Settings.from_env({"INVERT_PRIORITY": "true"}).model_version() == default.model_version()
    tab = Settings.from_env({"LABEL_STREAM": "tab"})
    assert not tab.scores_ascending
    inverted_tab = Settings.from_env({"LABEL_STREAM": "tab", "INVERT_PRIORITY": "true"})
    assert inverted_tab.scores_ascending and inverted_tab.model_version() == default.model_version()
    assert tab.model_version() != default.model_version()
    with pytest.raises(SettingsError, match="LABEL_STREAM"):
        Settings.from_env({"LABEL_STREAM": "random"})


@pytest.mark.parametrize("env", [{"KEYWORD_MODE": "direct"}, {"VLM_MODEL": "llava-hf/llava-1.5-13b-hf"}])
def test_mining_settings_change_the_mining_hash(env):
    assert Settings.from_env(env).mining_hash() != Settings.from_env({}).mining_hash()


def test_head_diversity_is_a_ranking_setting():
    """It changes the model version (new priorities), not the mining hash (no re-mine)."""
    base, off = Settings.from_env({}), Settings.from_env({"HEAD_DIVERSITY": "0"})
    assert base.head_diversity == 0.05 and off.head_diversity == 0.0
    assert base.mining_hash() == off.mining_hash() and base.model_version() != off.model_version()


def test_keyword_rules_are_part_of_the_mining_fingerprint():
    from backend.mining.keywords import RULES_VERSION

    assert Settings().mining_fingerprint()["keyword_rules"] == RULES_VERSION


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


@pytest.mark.parametrize("env", [
    {"REDIS_URL": "redis://:hunter2@redis-host:6379/0"},
    {"REDIS_URL": "rediss://worker:hunter2@redis-host:6380/1"},
    {"LABEL_STUDIO_URL": "http://admin:hunter2@ls.example:8080"},
    {"VLM_API_URL": "https://user:hunter2@gpu-box:8000/v1"},
    {"KEYWORD_LLM_URL": "http://u:hunter2@llm:9000/v1"},
    {"AWS_ENDPOINT_URL": "http://minio:hunter2@minio:9000"},
    {"REDIS_URL": "redis://redis-host:6379/0?password=hunter2"},
])
def test_public_masks_passwords_inside_urls(env):
    (name, raw), = env.items()
    settings = Settings.from_env(env)
    assert getattr(settings, name.lower()) == raw  # the backend itself still uses the password
    shown = settings.public()[name.lower()]
    assert "hunter2" not in shown and "hunter2" not in repr(Settings.from_env(env).public())
    assert "***" in shown and raw.split("://")[0] + "://" in shown
    host = raw.split("@")[-1].split("/")[0].split("?")[0] if "@" in raw else "redis-host:6379"
    assert host in shown  # still says where it points


def test_public_leaves_urls_without_credentials_as_they_are():
    shown = Settings.from_env({"REDIS_URL": "redis://r:6379/1", "VLM_API_URL": "http://gpu:8000/v1"}).public()
    assert shown["redis_url"] == "redis://r:6379/1" and shown["vlm_api_url"] == "http://gpu:8000/v1"


# ---------------------------------------------------------------------------- nonsense values
@pytest.mark.parametrize("name", ["RERANK_DELAY", "MAX_REQUEST_MB", "PREDICT_WAIT", "IMAGE_READ_TIMEOUT"])
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN", "Infinity", "1e999"])
def test_floats_must_be_finite(name, raw):
    with pytest.raises(SettingsError, match=f"{name}.*finite"):
        Settings.from_env({name: raw})


def test_non_finite_overrides_are_refused_too():
    with pytest.raises(SettingsError, match="RERANK_DELAY"):
        Settings.from_env({}, rerank_delay=float("nan"))


@pytest.mark.parametrize("env, name", [
    ({"LABEL_STUDIO_URL": "localhost:8080"}, "LABEL_STUDIO_URL"),
    ({"LABEL_STUDIO_URL": "ftp://ls.example"}, "LABEL_STUDIO_URL"),
    ({"LABEL_STUDIO_URL": "http://"}, "LABEL_STUDIO_URL"),
    ({"VLM_API_URL": "gpu-box:8000/v1"}, "VLM_API_URL"),
    ({"KEYWORD_LLM_URL": "file:///etc/passwd"}, "KEYWORD_LLM_URL"),
    ({"AWS_ENDPOINT_URL": "s3://bucket"}, "AWS_ENDPOINT_URL"),
    ({"AWS_ENDPOINT_URL": "http://minio:port"}, "AWS_ENDPOINT_URL"),
    ({"REDIS_URL": "http://redis:6379/0"}, "REDIS_URL"),
    ({"REDIS_URL": "redis-host:6379"}, "REDIS_URL"),
])
def test_urls_need_their_scheme(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_a_bad_url_error_shows_no_password():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"REDIS_URL": "http://:hunter2@redis:6379/0"})
    assert "hunter2" not in str(info.value) and "redis://" in str(info.value)


@pytest.mark.parametrize("env", [
    {"REDIS_URL": "redis://r:6379/0"}, {"REDIS_URL": "rediss://r:6380/0"}, {"REDIS_URL": "unix:///tmp/redis.sock"},
    {"LABEL_STUDIO_URL": "https://ls.example/sub/path"}, {"VLM_API_URL": "http://[::1]:8000/v1"},
    {"AWS_ENDPOINT_URL": "HTTP://MinIO:9000"},
])
def test_good_urls_are_accepted(env):
    (name, raw), = env.items()
    assert getattr(Settings.from_env(env), name.lower()) == raw


@pytest.mark.parametrize("raw, ok", [("DEBUG", True), ("info", True), ("Warning", True), ("ERROR", True),
                                     ("CRITICAL", True), ("verbose", False), ("10", False), ("INFO ", False)])
def test_log_level_must_be_a_standard_name(raw, ok):
    if ok:
        assert Settings.from_env({"LOG_LEVEL": raw}).log_level == raw
    else:
        with pytest.raises(SettingsError, match="LOG_LEVEL"):
            Settings.from_env({"LOG_LEVEL": raw})


def test_the_server_refuses_a_bad_setting_at_start_up_with_a_clear_error(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MODEL_DIR": str(tmp_path), "RERANK_DELAY": "nan"}
    proc = subprocess.run([sys.executable, "_wsgi.py", "--port", "1"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "configuration error: RERANK_DELAY" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_the_start_up_log_shows_no_password_of_a_url(tmp_path):
    from tests.support.backend_server import BackendServer
    from tests.support.ports import free_port

    env = {"MODEL_DIR": str(tmp_path / "model"), "LOG_LEVEL": "INFO",
           "LABEL_STUDIO_URL": f"http://admin:ls-url-pass-41@127.0.0.1:{free_port()}",
           "LABEL_STUDIO_API_KEY": "k" * 40, "SYNC_ON_START": "false",
           "VLM_API_URL": "http://u:vlm-url-pass-42@127.0.0.1:9/v1",
           "KEYWORD_LLM_URL": "http://u:llm-url-pass-43@127.0.0.1:9/v1"}
    server = BackendServer(env, tmp_path / "backend.log")
    try:
        log = server.log_text()
    finally:
        server.stop()
    assert "settings: " in log and "127.0.0.1:9/v1" in log  # the settings line is there
    for secret in ("ls-url-pass-41", "vlm-url-pass-42", "llm-url-pass-43"):
        assert secret not in log


# ---------------------------------------------------------------------------- object mining
def test_object_settings_leave_every_version_alone_while_object_mining_is_off():
    """Existing installs must not get a rewrite: OBJECT_* count only once OBJECT_MINING is on."""
    base = Settings.from_env({})
    tuned = Settings.from_env({"OBJECT_CROP_MARGIN": "0.3", "OBJECT_MIN_SIDE": "4", "OBJECT_POOLING": "mean",
                               "OBJECT_PROMPT": "What is it?", "OBJECT_SOURCE": "annotations"})
    assert tuned.mining_hash() == base.mining_hash() and tuned.model_version() == base.model_version()
    assert "objects" not in base.mining_fingerprint()


def test_object_mining_is_a_new_version_and_names_itself():
    on = Settings.from_env({"OBJECT_MINING": "true"})
    assert on.object_mining and on.mining_hash() != Settings.from_env({}).mining_hash()
    assert "-novelty+objects-" in on.model_version()


@pytest.mark.parametrize("env", [
    {"OBJECT_CROP_MARGIN": "0.3"}, {"OBJECT_MIN_SIDE": "4"}, {"OBJECT_MAX_PER_TASK": "3"},
    {"OBJECT_WITH_SCENE": "false"}, {"OBJECT_PROMPT": "What is it?"}, {"OBJECT_SOURCE": "annotations"},
    {"OBJECT_MODEL_VERSION": "yolo-v8"}, {"UNCERTAINTY_MODEL_VERSION": "yolo-v8"},
])
def test_what_decides_the_objects_changes_the_mining_hash(env):
    on = {"OBJECT_MINING": "true"}
    assert Settings.from_env({**on, **env}).mining_hash() != Settings.from_env(on).mining_hash()


@pytest.mark.parametrize("env", [{"OBJECT_POOLING": "mean"}, {"OBJECT_HIGHLIGHT": "false"}])
def test_pooling_and_highlight_do_not_re_mine(env):
    on = {"OBJECT_MINING": "true"}
    assert Settings.from_env({**on, **env}).mining_hash() == Settings.from_env(on).mining_hash()
    # a new ranking (or new results in the predictions): a new version rewrites them, nothing re-mined
    assert Settings.from_env({**on, **env}).model_version() != Settings.from_env(on).model_version()


@pytest.mark.parametrize("env, name", [
    ({"OBJECT_SOURCE": "detector"}, "OBJECT_SOURCE"),
    ({"OBJECT_POOLING": "median"}, "OBJECT_POOLING"),
    ({"OBJECT_CROP_MARGIN": "-0.1"}, "OBJECT_CROP_MARGIN"),
    ({"OBJECT_MIN_SIDE": "-1"}, "OBJECT_MIN_SIDE"),
    ({"OBJECT_MAX_PER_TASK": "0"}, "OBJECT_MAX_PER_TASK"),
    ({"OBJECT_MAX_PER_TASK": "256"}, "OBJECT_MAX_PER_TASK"),
    ({"OBJECT_MINING": "true", "SIGNAL_FIELDS": "object_novelty"}, "SIGNAL_FIELDS"),
])
def test_bad_object_settings_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)
