"""Model-version strings are persisted state: a changed byte re-mines and rewrites every
project, so a failure here means a migration, not a test to update.

The pins were computed at commit 02bc74e, before the package re-layout (its keyword rules,
its pooling and the label stream's score direction had changed them on purpose); the
re-laid-out package gives the same bytes. The two ``confirmed`` pins changed on purpose
with the confirmed rule's prior weight (0.5 -> 1.0): the rule's constants are now in the
ranking fingerprint (``novelty.rule_fingerprint``); the ``min`` pin, a pooling without constants,
kept its bytes. All three changed on purpose with the keyword rules of 2026-12-07.1 (verbs
after "to" and before a preposition, closed compounds written open, "thru", "cds", "on a
shell": a new RULES_VERSION, hence a new mining hash) and the confirmed rule's small-project
confirmation count and length-scaled prior (CONFIRM_REFERENCE_TASKS, PRIOR_LENGTH_POWER); the
``min`` pin changed too, because the confirmation count weighs every pooling's head
re-order and is now in every pooling's fingerprint. All three changed again with the
ranking rule (dominance by a margin, nearly constant and duplicate signals left out, the
head's rare-first rule: the ``ranking_rule`` entry of the ranking fingerprint), which
re-mines nothing."""

from __future__ import annotations

import pytest

from backend.settings import Settings
from backend.versions import DEFAULT_PREFIX, base_version, generation_version, is_own_version

PINNED = [
    ({}, "vlmine-llava-1.5-7b-hf-llm-confirmed-novelty-d783db28", "8e82c1bc"),
    ({"uncertainty_source": "prediction_probs", "uncertainty_measure": "margin",
      "signal_fields": ["meta.loss", "clicks"], "pooling": "min", "keyword_mode": "direct",
      "model_version_prefix": "acme"},
     "acme-llava-1.5-7b-hf-direct-min-novelty+margin+meta.loss+clicks-8e41a07e", "8f785272"),
    ({"vlm_api_url": "http://gpu:8000/v1", "vlm_api_model": "qwen2-vl", "uncertainty_source": "field",
      "uncertainty_field": "loss", "text_keyword_mode": "llm", "invert_priority": True},
     "vlmine-endpoint-qwen2-vl-llm-confirmed-novelty+loss-19c7f6ad", "d14169df"),
]


@pytest.mark.parametrize("overrides, version, mining_hash", PINNED)
def test_version_strings_and_mining_hashes_are_unchanged(overrides, version, mining_hash):
    settings = Settings.from_env({}, **overrides)
    assert settings.model_version() == version
    assert base_version(settings) == version
    assert settings.mining_hash() == mining_hash


@pytest.mark.parametrize("overrides, version, mining_hash", PINNED)
def test_the_engine_names_its_predictions_with_the_pinned_version(overrides, version, mining_hash, tmp_path):
    from backend.engine.engine import Engine

    engine = Engine(Settings.from_env({}, model_dir=str(tmp_path), **overrides))
    assert engine.base_version == version
    assert engine.mining_hash == mining_hash


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
