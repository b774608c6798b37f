"""Model-version strings are persisted state: a changed byte re-mines and rewrites every
project, so a failure here means a migration, not a test to update.

Every pin here changed on purpose, and each change rewrote every project's priorities once:
- the confirmed pooling's prior weight (0.5 -> 1.0) put the rule's constants in the ranking
  fingerprint (``novelty.rule_fingerprint``);
- the keyword rules of 2026-12-07.1 (verbs after "to" and before a preposition, closed
  compounds written open, "thru", "cds", "on a shell": a new RULES_VERSION, hence a new mining
  hash) and the confirmed rule's small-project confirmation count and length-scaled prior
  (CONFIRM_REFERENCE_TASKS, PRIOR_LENGTH_POWER; the count weighs every pooling's head re-order,
  so every pooling's fingerprint holds it);
- the ranking rule (dominance by a margin, nearly constant and duplicate signals left out, the
  head's rare-first rule: the ``ranking_rule`` entry of the ranking fingerprint), which
  re-mines nothing;
- versions name what mines the project's kind of data: a text project names no VLM, and an
  LLM only when one gives its keywords (the text pins). ``VLM_DEVICE=cuda`` stands for a
  machine with a GPU, where the describer is LLaVA; without CUDA the default describer is
  SmolVLM-256M-Instruct loaded with one view per image, a describer of its own, hence its own
  version and mining hash."""

from __future__ import annotations

import pytest

from backend.settings import Settings, base_version
from backend.versions import DEFAULT_PREFIX, generation_version, is_own_version
from backend.vlm import defaults

TEXT_CONFIG = '<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/></View>'
IMAGE_CONFIG = '<View><Image name="image" value="$image"/><TextArea name="vlmine" toName="image"/></View>'

#: (settings, image project's version, text project's version, mining hash)
PINNED = [
    ({"vlm_device": "cuda"}, "vlmine-llava-1.5-7b-hf-llm-confirmed-novelty-d783db28",
     "vlmine-text-rules-confirmed-novelty-d783db28", "8e82c1bc"),
    ({"vlm_device": "cpu"}, "vlmine-SmolVLM-256M-Instruct-llm-confirmed-novelty-7248e538",
     "vlmine-text-rules-confirmed-novelty-7248e538", "0f0779cd"),
    # the same model named by VLM_MODEL runs as its checkpoint says (its own tiles): another describer
    ({"vlm_device": "cpu", "vlm_model": "HuggingFaceTB/SmolVLM-256M-Instruct"},
     "vlmine-SmolVLM-256M-Instruct-llm-confirmed-novelty-756ef484",
     "vlmine-text-rules-confirmed-novelty-756ef484", "5664ff7f"),
    ({"uncertainty_source": "prediction_probs", "uncertainty_measure": "margin",
      "signal_fields": ["meta.loss", "clicks"], "pooling": "min", "keyword_mode": "direct",
      "model_version_prefix": "acme", "vlm_model": "llava-hf/llava-1.5-7b-hf"},
     "acme-llava-1.5-7b-hf-direct-min-novelty+margin+meta.loss+clicks-8e41a07e",
     "acme-text-rules-min-novelty+margin+meta.loss+clicks-8e41a07e", "8f785272"),
    ({"vlm_api_url": "http://gpu:8000/v1", "vlm_api_model": "qwen2-vl", "uncertainty_source": "field",
      "uncertainty_field": "loss", "text_keyword_mode": "llm", "invert_priority": True},
     "vlmine-endpoint-qwen2-vl-llm-confirmed-novelty+loss-19c7f6ad",
     "vlmine-text-llm-endpoint-qwen2-vl-confirmed-novelty+loss-19c7f6ad", "d14169df"),
    ({"text_keyword_mode": "llm", "keyword_llm_url": "http://llm:8000/v1", "keyword_llm_model": "qwen2.5-7b",
      "vlm_device": "cpu"},
     "vlmine-SmolVLM-256M-Instruct-llm-confirmed-novelty-4ea763d1",
     "vlmine-text-llm-endpoint-qwen2.5-7b-confirmed-novelty-4ea763d1", "3924b170"),
]


@pytest.mark.parametrize("overrides, version, text_version, mining_hash", PINNED)
def test_version_strings_and_mining_hashes_are_unchanged(overrides, version, text_version, mining_hash):
    settings = Settings.from_env({}, **overrides)
    assert settings.model_version() == version
    assert base_version(settings) == version == base_version(settings, kind="image")
    assert settings.model_version(kind="text") == text_version == base_version(settings, kind="text")
    assert settings.mining_hash() == mining_hash


@pytest.mark.parametrize("overrides, version, text_version, mining_hash", PINNED)
def test_the_engine_names_each_project_after_what_mines_its_data(overrides, version, text_version, mining_hash,
                                                                  tmp_path):
    from backend.engine.engine import Engine

    engine = Engine(Settings.from_env({}, model_dir=str(tmp_path), **overrides))
    assert engine.base_version == version
    assert engine.mining_hash == mining_hash
    assert engine.project(1, IMAGE_CONFIG).live_version == version
    assert engine.project(2, TEXT_CONFIG).live_version == text_version
    # a restart reads the same versions back, and changes nothing
    again = Engine(Settings.from_env({}, model_dir=str(tmp_path), **overrides))
    assert (again.project(1).live_version, again.project(2).live_version) == (version, text_version)
    assert again.project(2).retired is None


def test_a_text_project_names_no_vlm_and_no_llm_when_rules_mine_it(tmp_path):
    from backend.engine.engine import Engine

    for overrides in ({}, {"vlm_model": "llava-hf/llava-1.5-13b-hf"}, {"vlm_api_url": "http://gpu:8000/v1"}):
        engine = Engine(Settings.from_env({}, model_dir=str(tmp_path / str(len(overrides))), **overrides))
        version = engine.project(3, TEXT_CONFIG).live_version
        assert version.startswith("vlmine-text-rules-confirmed-novelty-"), version
        assert not any(word in version.lower() for word in ("llava", "smolvlm", "endpoint", "llm"))


def test_a_config_that_changes_kind_starts_a_new_version_line(tmp_path):
    from backend.engine.engine import Engine

    engine = Engine(Settings.from_env({}, model_dir=str(tmp_path), vlm_device="cuda"))
    image = engine.project(4, IMAGE_CONFIG).live_version
    text = engine.project(4, TEXT_CONFIG).live_version
    assert image.startswith("vlmine-llava-1.5-7b-hf-") and text.startswith("vlmine-text-rules-")
    assert engine.project(4).retired == image  # deleted from Label Studio once the new line is written
    # a project first seen without a config has written nothing: nothing to retire
    assert engine.project(5).live_version == image
    assert engine.project(5, TEXT_CONFIG).live_version == text and engine.project(5).retired is None


def test_a_setting_that_changes_the_priorities_changes_a_text_projects_version(tmp_path):
    from backend.engine.engine import Engine

    def text_version(**overrides):
        engine = Engine(Settings.from_env({}, model_dir=str(tmp_path / "x"), vlm_device="cpu", **overrides))
        return engine.versions_by_kind["text"]

    plain = text_version()
    assert plain == text_version()  # stable
    for overrides in ({"pooling": "min"}, {"head_diversity": 0.1}, {"uncertainty_source": "prediction_score"},
                      {"text_keyword_mode": "llm"}, {"label_stream": "tab"}):
        assert text_version(**overrides) != plain, overrides


def test_the_default_describer_follows_the_machine_and_an_explicit_model_wins(monkeypatch):
    # a machine with a GPU cannot be had here: only its device count is stood in for
    assert Settings.from_env({}, vlm_device="cpu").describer_model == defaults.CPU_DEFAULT_MODEL
    assert Settings.from_env({}, vlm_device="cuda:1").describer_model == defaults.GPU_DEFAULT_MODEL
    found_here = defaults.cuda_device_count()
    expected = defaults.GPU_DEFAULT_MODEL if found_here else defaults.CPU_DEFAULT_MODEL
    assert Settings.from_env({}).describer_model == expected
    monkeypatch.setattr(defaults, "cuda_device_count", lambda: 2)
    assert Settings.from_env({}).describer_model == defaults.GPU_DEFAULT_MODEL
    monkeypatch.setattr(defaults, "cuda_device_count", lambda: 0)
    assert Settings.from_env({}).describer_model == defaults.CPU_DEFAULT_MODEL
    assert Settings.from_env({"VLM_MODEL": "org/my-vlm"}).describer_model == "org/my-vlm"
    assert Settings.from_env({"VLM_MODEL": "org/my-vlm"}).vlm_name == "my-vlm"
    assert Settings.from_env({}, vlm_model="llava-hf/llava-1.5-7b-hf", vlm_device="cpu").vlm_name == "llava-1.5-7b-hf"
    # the CPU default describes one view per image; a model VLM_MODEL names runs as its checkpoint says
    assert Settings.from_env({}, vlm_device="cpu").describer_processor_kwargs == {"do_image_splitting": False}
    assert Settings.from_env({}, vlm_device="cpu", vlm_model=defaults.CPU_DEFAULT_MODEL).describer_processor_kwargs == {}
    assert Settings.from_env({}, vlm_device="cuda").describer_processor_kwargs == {}


def test_the_default_describer_is_said_once_in_the_log(caplog):
    defaults._say_once.cache_clear()
    with caplog.at_level("INFO", logger="backend.vlm.defaults"):
        for _ in range(3):
            Settings.from_env({}, vlm_device="cpu").model_version()
    said = [r.getMessage() for r in caplog.records if r.name == "backend.vlm.defaults"]
    assert len(said) == 1, said
    assert "SmolVLM-256M-Instruct on the CPU" in said[0] and "VLM_DEVICE=cpu" in said[0]


def test_generations_append_r_and_a_number():
    assert generation_version("vlmine-x-1", 0) == "vlmine-x-1"
    assert generation_version("vlmine-x-1", 3) == "vlmine-x-1-r3"
    assert generation_version(None, 2) is None


def test_own_versions_follow_the_configured_prefix():
    assert is_own_version("vlmine-llava-abc", DEFAULT_PREFIX)
    assert not is_own_version("yolo-v8", DEFAULT_PREFIX)
    assert not is_own_version(None, DEFAULT_PREFIX)
    assert is_own_version("acme-llava-abc", "acme")
    assert not is_own_version("vlmine-llava-abc", "acme")  # another prefix: another backend's predictions
