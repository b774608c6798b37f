"""backend.vlm.defaults: the describer a machine without CUDA gets when VLM_MODEL is unset.

The real SmolVLM-256M-Instruct cannot be downloaded here, so a tiny random model of the same
architecture (Idefics3, tests/support/tiny_smolvlm.py) is put into a Hugging Face cache under
the real model's id: with ``HF_HUB_OFFLINE=1`` ``from_pretrained("HuggingFaceTB/SmolVLM-256M-
Instruct")`` then loads it exactly as it would load the downloaded weights. ``CUDA_VISIBLE_DEVICES``
set empty makes any machine a machine without CUDA for the command under test.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from backend.vlm import TransformersDescriber, defaults
from tests.support.commands import clean_env, read_jsonl, run
from tests.support.tiny_llava import WORDS
from tests.support.tiny_smolvlm import IMAGE_SEQ_LEN, build_tiny_smolvlm

VOCABULARY = set(WORDS.split())


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return build_tiny_smolvlm(tmp_path_factory.mktemp("tiny-smolvlm"))


def hub_cache(root: Path, repo_id: str, model_dir: str) -> Path:
    """A Hugging Face hub cache holding ``model_dir``'s files as ``repo_id`` at one revision."""
    revision = "0" * 40
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for path in Path(model_dir).iterdir():
        shutil.copy(path, snapshot / path.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return root


def picture(colour: str, size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill="white")
    return image


def test_the_tiny_model_is_what_the_real_one_is(tiny_dir):
    """Same classes through the Auto* loaders as SmolVLM-256M-Instruct, and no torchvision needed."""
    import transformers.utils.import_utils as import_utils

    describer = TransformersDescriber(model=tiny_dir, max_new_tokens=6, batch_size=3)
    describer.load()
    assert type(describer.model).__name__ == "Idefics3ForConditionalGeneration"
    assert type(describer.processor).__name__ == "Idefics3Processor"
    assert type(describer.processor.image_processor).__name__ == "Idefics3ImageProcessorPil"
    assert not import_utils.is_torchvision_available()  # the Pillow processor is the one that must work
    # a wide image is cut into tiles plus the global view, each tile IMAGE_SEQ_LEN image tokens
    text = describer._chat_text("Describe the image.", with_image=True)
    inputs = describer.processor(images=[picture("red", (200, 100))], text=[text], return_tensors="pt")
    image_id = describer.processor.image_token_id
    tiles = int(inputs["pixel_values"].shape[1])
    assert tiles > 1 and int((inputs["input_ids"] == image_id).sum()) == tiles * IMAGE_SEQ_LEN


def test_one_view_per_image_as_the_cpu_default_is_loaded(tiny_dir):
    describer = TransformersDescriber(model=tiny_dir, max_new_tokens=6, processor_kwargs=defaults.CPU_DEFAULT_PROCESSOR)
    describer.load()
    text = describer._chat_text("Describe the image.", with_image=True)
    inputs = describer.processor(images=[picture("red", (200, 100))], text=[text], return_tensors="pt")
    assert int(inputs["pixel_values"].shape[1]) == 1  # the global view alone
    assert int((inputs["input_ids"] == describer.processor.image_token_id).sum()) == IMAGE_SEQ_LEN
    words = describer.describe([picture("red", (200, 100))], "Describe the image.")[0].split()
    assert len(words) == 6 and set(words) <= VOCABULARY


def test_describes_batches_as_it_describes_single_images(tiny_dir):
    describer = TransformersDescriber(model=tiny_dir, max_new_tokens=6, batch_size=4)
    images = [picture("red", (200, 100)), picture("blue", (40, 40)), picture("green", (30, 500)),
              Image.new("L", (300, 400), 128)]
    together = describer.describe(images, "Describe the image.")
    alone = [describer.describe([image], "Describe the image.")[0] for image in images]
    assert together == alone
    for text in together:
        words = text.split()
        assert len(words) == 6 and set(words) <= VOCABULARY, text


def test_without_cuda_the_default_describer_loads_and_describes_from_the_cache(tiny_dir, tmp_path):
    """No VLM_MODEL, no VLM_DEVICE, no CUDA: the command line mines a folder with the CPU default,
    loaded by its hub id, and says so once in the log."""
    cache = hub_cache(tmp_path / "hub", defaults.CPU_DEFAULT_MODEL, tiny_dir)
    root = tmp_path / "photos"
    root.mkdir()
    for i, (colour, size) in enumerate([("red", (120, 80)), ("red", (120, 80)), ("blue", (64, 64)),
                                        ("yellow", (90, 300))]):
        buf = io.BytesIO()
        picture(colour, size).save(buf, "PNG")
        (root / f"{i}.png").write_bytes(buf.getvalue())
    env = clean_env(MODEL_DIR=str(tmp_path / "model"), KEYWORD_MODE="rules", VLM_MAX_NEW_TOKENS="8",
                    HF_HUB_CACHE=str(cache), CUDA_VISIBLE_DEVICES="")
    env.pop("HF_HOME", None)
    done = run("mine", root, "--out", tmp_path / "out.jsonl", "-v", env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if "VLM_MODEL is not set" in line]
    assert len(said) == 1, done.stderr[-3000:]
    assert "no CUDA device found" in said[0] and "HuggingFaceTB/SmolVLM-256M-Instruct on the CPU" in said[0]
    assert f"loading {defaults.CPU_DEFAULT_MODEL} on cpu as float32, do_image_splitting=False" in done.stderr
    assert "4 images from" in done.stderr and "described by SmolVLM-256M-Instruct" in done.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    for row in rows:
        assert set(row["description"].split()) <= VOCABULARY and row["keywords"], row
    by_name = {r["path"]: r["description"] for r in rows}
    assert by_name["0.png"] == by_name["1.png"]  # the same picture, the same words

