"""TransformersDescriber on a tiny random LLaVA, loaded through the same from_pretrained
calls as llava-hf/llava-1.5-7b-hf."""

from __future__ import annotations

import importlib.util
import threading
from types import SimpleNamespace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from backend.vlm import (
    DEFAULT_DESCRIBE_PROMPT,
    DEFAULT_DIRECT_PROMPT,
    DescriberError,
    TransformersDescriber,
    get_transformers_describer,
)
from support.tiny_llava import WORDS, build_tiny_llava

VOCAB = set(WORDS.split())


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def vlm(tiny_dir) -> TransformersDescriber:
    return TransformersDescriber(model=tiny_dir, batch_size=3, max_new_tokens=8)


def images() -> list[Image.Image]:
    made = []
    for i, (colour, size) in enumerate([("red", (64, 48)), ("navy", (40, 80)), ("gold", (32, 32)),
                                         ("white", (120, 90)), ("teal", (50, 50))]):
        image = Image.new("RGB", size, colour)
        draw = ImageDraw.Draw(image)
        draw.ellipse((4 * i, 4, size[0] - 4, size[1] - 4 * i), fill=(255 - 40 * i, 40 * i, 120))
        made.append(image)
    made.append(made[1].convert("L"))  # not RGB: the describer converts
    return made


@pytest.mark.slow
def test_describes_each_image_with_words(vlm):
    texts = vlm.describe(images(), DEFAULT_DESCRIBE_PROMPT)
    assert len(texts) == 6
    for text in texts:
        words = text.split()
        assert len(words) == 8  # EOS and specials are suppressed in the tiny model
        assert set(words) <= VOCAB, text
    assert len(set(texts[:5])) > 1  # different images, different texts
    assert vlm.device == "cpu" and str(vlm.dtype) == "torch.float32"


@pytest.mark.slow
def test_batched_equals_one_at_a_time(vlm, tiny_dir):
    batched = vlm.describe(images(), DEFAULT_DESCRIBE_PROMPT)  # batches of 3 (left padding)
    single = TransformersDescriber(model=tiny_dir, batch_size=1, max_new_tokens=8)
    single._setup(vlm.model, vlm.processor)  # same weights, no second load
    assert [single.describe([im], DEFAULT_DESCRIBE_PROMPT)[0] for im in images()] == batched
    assert vlm.describe(images(), DEFAULT_DESCRIBE_PROMPT) == batched  # deterministic


@pytest.mark.slow
def test_prompts_of_different_lengths_batch_with_left_padding(vlm):
    prompts = ["red bus", DEFAULT_DIRECT_PROMPT, "a dog on a beach near a tall tower"]
    together = vlm.complete(prompts)
    assert together == [vlm.complete([p])[0] for p in prompts]
    assert all(t and set(t.split()) <= VOCAB for t in together)
    assert len(vlm.complete(prompts, max_new_tokens=3)[0].split()) == 3


def test_empty_input(vlm):
    assert vlm.describe([], "p") == [] and vlm.complete([]) == []


def test_get_transformers_describer_loads_once(tiny_dir, monkeypatch):
    import transformers

    calls = []
    real = transformers.AutoModelForImageTextToText.from_pretrained

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", counting)
    first = get_transformers_describer(model=tiny_dir, dtype="fp32", max_new_tokens=4)
    second = get_transformers_describer(model=tiny_dir, dtype="float32", max_new_tokens=4, batch_size=8)
    assert first is second
    assert get_transformers_describer(model=tiny_dir, max_new_tokens=5) is not first

    threads = [threading.Thread(target=first.load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    model = first.model
    first.describe(images()[:2], "what is here")
    assert first.model is model
    assert len(calls) == 1 and calls[0][0] == tiny_dir


def test_missing_model_is_a_describer_error(tmp_path):
    vlm = TransformersDescriber(model=str(tmp_path / "nowhere"))
    with pytest.raises(DescriberError, match="cannot load model"):
        vlm.describe([Image.new("RGB", (8, 8))], "p")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown dtype"):
        TransformersDescriber(dtype="int4")
    with pytest.raises(ValueError):
        TransformersDescriber(batch_size=0)


@pytest.mark.slow
def test_next_batch_is_encoded_while_this_one_generates(vlm, tiny_dir):
    """The processor runs one chunk ahead in a background thread; the output is unchanged."""
    reference = vlm.describe(images(), DEFAULT_DESCRIBE_PROMPT)
    ahead = TransformersDescriber(model=tiny_dir, batch_size=2, max_new_tokens=8)
    ahead._setup(vlm.model, vlm.processor)
    threads: list[str] = []
    real = vlm.processor

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    ahead._processor = recording
    recording.tokenizer = real.tokenizer
    recording.chat_template = real.chat_template
    recording.apply_chat_template = real.apply_chat_template
    assert ahead.describe(images(), DEFAULT_DESCRIBE_PROMPT) == reference
    assert len(threads) == 3  # 6 images in chunks of 2, each encoded once
    assert threads[0] == threading.current_thread().name
    assert all(name.startswith("vlm-encode") for name in threads[1:])


@pytest.mark.slow
def test_a_chunk_that_cannot_be_encoded_is_a_describer_error(vlm):
    bad = images()[:3] + [Image.new("RGB", (0, 0))]  # the second chunk of 3 holds an empty image
    with pytest.raises(DescriberError, match="generation failed"):
        vlm.describe(bad, DEFAULT_DESCRIBE_PROMPT)
    assert vlm.describe(images()[:2], DEFAULT_DESCRIBE_PROMPT)  # the describer still works


@pytest.mark.slow
def test_describe_each_fails_only_the_image_that_failed(vlm):
    """A batch that fails is halved and run again down to the image that fails: the
    broken image fails its own task, not the other images of its batch."""
    good = images()
    mixed = good[:3] + [Image.new("RGB", (0, 0))] + good[3:]  # batches of 3: the second holds the bad one
    results = vlm.describe_each(mixed, DEFAULT_DESCRIBE_PROMPT)
    assert len(results) == 7
    assert isinstance(results[3], DescriberError) and "generation failed" in str(results[3])
    # batches are independent (left padding): the others get the texts they get alone
    others = [r for i, r in enumerate(results) if i != 3]
    assert others == [vlm.describe([image], DEFAULT_DESCRIBE_PROMPT)[0] for image in good]


def _bench_module():
    path = Path(__file__).resolve().parent.parent / "bench" / "describe.py"
    spec = importlib.util.spec_from_file_location("bench_describe", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.slow
def test_bench_random_weights_tiny(capsys):
    """bench/describe.py builds on meta, materialises, and times the describer."""
    bench = _bench_module()
    report = bench.main(["--random-weights", "tiny", "--batch-sizes", "1,3", "--images", "6", "--max-batches", "1",
                         "--max-new-tokens", "5", "--image-size", "64x48",
                         "--generation-kwargs", '{"cache_implementation": "static"}', "--peak-tflops", "1",
                         "--keyword-pass", "--keyword-tokens", "4"])
    assert set(report["images_per_s"]) == {"1", "3"}
    assert [r["images"] for r in report["results"]] == [1, 3]  # --max-batches 1
    for row in report["results"]:  # the keyword pass is timed too, and both passes take longer than one
        assert 0 < row["llm_mode_images_per_s"] < min(row["images_per_s"], row["keyword_images_per_s"])
    assert report["image_tokens"] == 16 and report["output_tokens"] == 5
    assert report["device"] == "cpu" and report["dtype"] == "float32"
    assert report["generation_kwargs"] == {"min_new_tokens": 5, "cache_implementation": "static"}
    assert report["roofline_images_per_s"] == pytest.approx(1e12 / (report["tflop_per_image"] * 1e12), rel=0.01)
    assert capsys.readouterr().out.count("\n") == 1


def test_bench_flop_count_of_llava_7b():
    """The roofline's FLOPs for the real 7B shape: about 9.8 TFLOP an image with this prompt
    (the count behind the 7B roofline in docs/benchmarks.md)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    bench = _bench_module()
    arch = bench.ARCHS["llava-1.5-7b"]
    config = LlavaConfig(vision_config=CLIPVisionConfig(**arch["vision"]), text_config=LlamaConfig(**arch["text"]))
    flop = bench.flop_per_image(config, prompt_tokens=576 + 60, image_tokens=576, output_tokens=60)
    assert 9.0e12 < flop < 10.5e12
    longer = bench.flop_per_image(config, prompt_tokens=576 + 60, image_tokens=576, output_tokens=120)
    assert longer - flop == pytest.approx(60 * 2 * 6.7e9, rel=0.05)  # each output token: ~2 FLOPs per LM weight


class PickyTokenizer:
    """The tiny model's tokenizer, but a batch holding the word ``volcano`` cannot be tokenised."""

    def __init__(self, real) -> None:
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __call__(self, texts, **kwargs):
        if any("volcano" in text for text in texts):
            raise ValueError("cannot tokenise a volcano")
        return self._real(texts, **kwargs)


@pytest.mark.slow
def test_complete_each_fails_only_the_prompt_that_failed(vlm, tiny_dir):
    picky = TransformersDescriber(model=tiny_dir, batch_size=3, max_new_tokens=4)
    picky._setup(vlm.model, vlm.processor)
    real = vlm.processor
    picky._processor = SimpleNamespace(tokenizer=PickyTokenizer(real.tokenizer), chat_template=real.chat_template,
                                       apply_chat_template=real.apply_chat_template)
    prompts = ["red bus", "a volcano at night", "dog on a beach", "cat", "tall tower", "boat"]
    results = picky.complete_each(prompts)
    assert len(results) == 6
    assert isinstance(results[1], DescriberError) and "cannot tokenise a volcano" in str(results[1])
    good = [i for i in range(6) if i != 1]
    assert [results[i] for i in good] == [picky.complete([prompts[i]])[0] for i in good]
    assert all(results[i] and set(results[i].split()) <= VOCAB for i in good)
    with pytest.raises(DescriberError, match="cannot tokenise a volcano"):
        picky.complete(prompts)  # complete raises the first failure


def test_a_loaded_model_is_never_seen_without_its_device(vlm, tiny_dir):
    """load()'s fast path reads ``_model`` without the lock: by then device and dtype must be set."""
    seen = []

    class Watching(TransformersDescriber):
        def __setattr__(self, name, value):
            if name == "_model" and value is not None:
                seen.append((self.device, self.dtype, self._processor is not None))
            super().__setattr__(name, value)

    vlm.load()  # the dtype to expect; another test may have loaded it already, or not (-m "not slow")
    watched = Watching(model=tiny_dir, max_new_tokens=4)
    watched.load()
    assert vlm.dtype is not None and seen == [("cpu", vlm.dtype, True)]
