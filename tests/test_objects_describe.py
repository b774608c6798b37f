"""Crops cut from decoded images and described through the real describers: the
OpenAI-compatible stand-in server on loopback and the tiny random LLaVA."""

from __future__ import annotations

import hashlib

import pytest
from PIL import Image, ImageDraw

from backend.objects import (
    Box,
    CropRules,
    MemoryCropCache,
    PixelBox,
    crop_cache_key,
    crop_keys,
    cut_crops,
    mined_objects,
    describe_crops,
    objects_from_results,
)
from backend.mining import KeywordNormaliser
from backend.vlm import DEFAULT_OBJECT_PROMPT, OpenAIDescriber, TransformersDescriber
from support.fake_openai import FakeOpenAI
from support.tiny_llava import WORDS, build_tiny_llava

DESCRIPTIONS = {"gray": "a parked car on a street", "red": "a horse trailer with a rusty hitch",
                "blue": "a blue car", "green": "a bush"}


def scene(rare: bool) -> Image.Image:
    """A gray street (800 x 400) with a blue car; the rare scenes also hold a red trailer."""
    image = Image.new("RGB", (800, 400), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.rectangle((80, 200, 239, 299), fill=(30, 30, 220))  # car: x 10%, y 50%, 20% x 25%
    if rare:
        draw.rectangle((480, 120, 639, 279), fill=(220, 30, 30))  # trailer: x 60%, y 30%, 20% x 40%
    return image


def region(rid, x, y, w, h, label, score):
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": 800, "original_height": 400, "score": score,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


REGIONS = [region("car", 10, 50, 20, 25, "car", 0.9), region("trailer", 60, 30, 20, 40, "trailer", 0.4),
           region("speck", 1, 1, 0.5, 0.5, "car", 0.95), region("gone", 140, 10, 10, 10, "car", 0.99)]


def task_crops(task_id: int, rare: bool, rules: CropRules = CropRules(margin=0.1, min_side=16)):
    image = scene(rare)
    objects, failures = objects_from_results(REGIONS if rare else REGIONS[:1])
    digest = hashlib.sha256(image.tobytes()).hexdigest()
    crops, refused = cut_crops(task_id, image, digest, objects, rules)
    return crops, failures + refused


def test_crops_are_cut_from_the_decoded_image_by_score_and_refusals_keep_their_reason():
    crops, failures = task_crops(1, rare=True)
    # "gone" (outside) failed while parsing; the speck (4 x 2 px) is refused; the most
    # confident objects get the first slots
    assert [(c.slot, c.object.region_id) for c in crops] == [(1, "car"), (2, "trailer")]
    reasons = {f.region_id: f.reason for f in failures}
    assert "outside the image" in reasons["gone"] and "too small" in reasons["speck"]
    trailer = crops[1]
    assert trailer.rect == PixelBox(464, 104, 656, 296)  # 10% context around 160 x 160 px
    r, g, b = trailer.image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert r > 150 and g < 110  # mostly the red trailer, with some street around it


def test_endpoint_describes_each_crop_by_its_content_and_caches_it():
    crops = [c for t in range(1, 5) for c in task_crops(t, rare=t in (2, 3))[0]]
    cache = MemoryCropCache()
    kn = KeywordNormaliser()
    with FakeOpenAI(by_colour=DESCRIPTIONS) as server:
        describer = OpenAIDescriber(server.base_url, "fake-vlm", concurrency=4, max_retries=0)
        out = describe_crops(describer, crops, DEFAULT_OBJECT_PROMPT, keywords=kn.from_text, cache=cache)
        assert server.calls == len(crops) == 6
        assert all(DEFAULT_OBJECT_PROMPT in str(r["body"]["messages"][0]["content"]) for r in server.requests)
        again = describe_crops(describer, crops, DEFAULT_OBJECT_PROMPT, keywords=kn.from_text, cache=cache)
        assert server.calls == 6  # every crop came from the cache
        describer.close()
    by_object = {(d.crop.task_id, d.crop.object.region_id): d for d in out}
    assert by_object[(2, "trailer")].description == DESCRIPTIONS["red"]
    assert by_object[(1, "car")].description == DESCRIPTIONS["blue"]
    assert "trailer" in " ".join(by_object[(2, "trailer")].keywords)
    assert [d.keywords for d in again] == [d.keywords for d in out] and all(d.cached for d in again)


def test_a_crop_the_endpoint_refuses_fails_only_its_object():
    crops = [c for t in (1, 2) for c in task_crops(t, rare=True)[0]]
    with FakeOpenAI(by_colour=DESCRIPTIONS, refuse_colours={"red"}) as server:
        describer = OpenAIDescriber(server.base_url, "fake-vlm", max_retries=0)
        out = describe_crops(describer, crops, DEFAULT_OBJECT_PROMPT, cache=MemoryCropCache())
        describer.close()
    failed = [(d.crop.task_id, d.crop.object.region_id) for d in out if not d.ok]
    assert failed == [(1, "trailer"), (2, "trailer")]
    assert all("HTTP 400" in d.error for d in out if not d.ok)
    assert all(d.description == DESCRIPTIONS["blue"] for d in out if d.ok)


def test_cache_key_follows_image_box_margin_model_and_prompts():
    box = Box(0.1, 0.2, 0.3, 0.4)
    base = crop_cache_key("h", box, 0.15, "m", ["p"])
    assert base == crop_cache_key("h", Box(0.1 + 1e-9, 0.2, 0.3, 0.4), 0.15, "m", ["p"])  # float noise
    variants = [
        crop_cache_key("h2", box, 0.15, "m", ["p"]),
        crop_cache_key("h", Box(0.1, 0.2, 0.31, 0.4), 0.15, "m", ["p"]),
        crop_cache_key("h", box, 0.2, "m", ["p"]),
        crop_cache_key("h", box, 0.15, "m2", ["p"]),
        crop_cache_key("h", box, 0.15, "m", ["p", "keyword prompt"]),
    ]
    assert len({base, *variants}) == 6


def test_crop_keys_are_known_before_decoding_and_match_the_described_crops():
    rules = CropRules(margin=0.1, min_side=16)
    objects, _ = objects_from_results(REGIONS)
    digest = hashlib.sha256(scene(True).tobytes()).hexdigest()
    keys = crop_keys(digest, objects, rules, "endpoint:fake-vlm", [DEFAULT_OBJECT_PROMPT])
    assert [o.region_id for o in mined_objects(objects, rules)] == ["speck", "car", "trailer"]
    crops, _ = task_crops(1, rare=True, rules=rules)
    cache = MemoryCropCache()
    with FakeOpenAI(by_colour=DESCRIPTIONS) as server:
        describer = OpenAIDescriber(server.base_url, "fake-vlm", max_retries=0)
        out = describe_crops(describer, crops, DEFAULT_OBJECT_PROMPT, keywords=str.split, cache=cache)
        describer.close()
    assert [d.cache_key for d in out] == [keys[c.slot] for c in crops]
    assert set(cache.items) == {keys[1], keys[2]}  # the refused speck (slot 0) was never described


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.mark.slow
def test_local_model_describes_a_jobs_crops_in_as_few_batches_as_the_batch_size_allows(tiny_dir):
    describer = TransformersDescriber(tiny_dir, device="cpu", dtype="float32", batch_size=4, max_new_tokens=6)
    describer.load()
    generate = describer._model.generate
    batches: list[int] = []

    def counting_generate(**kwargs):
        batches.append(int(kwargs["input_ids"].shape[0]))
        return generate(**kwargs)

    describer._model.generate = counting_generate
    crops = [c for t in range(1, 7) for c in task_crops(t, rare=t % 2 == 0)[0]]  # 9 crops, 6 tasks
    out = describe_crops(describer, crops, DEFAULT_OBJECT_PROMPT)
    assert batches == [4, 4, 1]
    vocab = set(WORDS.split())
    assert all(d.ok and d.description and set(d.description.split()) <= vocab for d in out)
    # a crop described in a batch reads as the same crop described alone (left padding)
    alone = describe_crops(describer, crops[-1:], DEFAULT_OBJECT_PROMPT)
    assert alone[0].description == out[-1].description


def test_a_model_that_will_not_load_fails_every_crop_with_its_reason(tmp_path):
    crops, _ = task_crops(1, rare=True)
    missing = TransformersDescriber(str(tmp_path / "no-model-here"), device="cpu")
    out = describe_crops(missing, crops, DEFAULT_OBJECT_PROMPT, cache=MemoryCropCache())
    assert len(out) == 2 and not any(d.ok for d in out)
    assert all(d.error.startswith("vlm: cannot load model") for d in out)
