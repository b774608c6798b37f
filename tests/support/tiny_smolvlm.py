"""A tiny random SmolVLM (an Idefics3 model), built fully offline, that loads through the
same ``from_pretrained`` calls as ``HuggingFaceTB/SmolVLM-256M-Instruct``, the default
describer on a machine without CUDA.

Why it looks like this:

* The real model is ``Idefics3ForConditionalGeneration`` with ``Idefics3Processor``: a
  SigLIP-like vision tower whose patch grid is folded by ``scale_factor`` (pixel shuffle)
  before the projector, so each image tile becomes ``(image_size / patch_size)**2 /
  scale_factor**2`` ``<image>`` tokens; the processor must say the same (``image_seq_len``).
  Here: (32 / 8)**2 / 2**2 = 4 tokens a tile.
* The image processor splits an image into tiles of ``max_image_size`` after resizing its
  longest edge to ``size``, and adds a global view: with 64 and 32 an image becomes up
  to 2 x 2 tiles plus the global one, as the real one does with 2048 and 512. The tile
  tags (``<row_1_col_1>``...), ``<fake_token_around_image>`` and ``<global-img>`` are
  special tokens, so the word-level tokenizer never sees them glued to a word.
* Transformers 5 without torchvision uses ``Idefics3ImageProcessorPil`` (Pillow and
  numpy only); it is imported directly.
* Words, suppressed structural tokens, left padding and the widened output head: as in
  ``tiny_llava`` and for the same reasons.
"""

from __future__ import annotations

import os
from pathlib import Path

from .tiny_llava import WORDS

SPECIALS = {"pad": "<pad>", "unk": "<unk>", "bos": "<|im_start|>", "eos": "<end_of_utterance>",
            "image": "<image>", "fake": "<fake_token_around_image>", "global": "<global-img>"}
ROLE_TOKENS = ["User:", "Assistant:", "System:"]
TILE_TAGS = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]

# SmolVLM-Instruct's chat template, in spirit: "<|im_start|>User:<image>prompt<end_of_utterance>\nAssistant:"
CHAT_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ line['text'] }}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

TILE = 32  # max_image_size: the vision tower's input side
LONGEST_EDGE = 64  # size: an image is resized to this, then cut into tiles
PATCH_SIZE = 8
SCALE_FACTOR = 2
IMAGE_SEQ_LEN = (TILE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2


def build_tokenizer():
    """A word-level fast tokenizer over ``WORDS`` with SmolVLM's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = list(dict.fromkeys(WORDS.split()))
    structural = [SPECIALS[k] for k in ("pad", "unk", "bos", "eos", "image", "fake", "global")] + TILE_TAGS
    vocab = {token: index for index, token in enumerate(structural + ROLE_TOKENS + words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIALS["unk"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=SPECIALS["bos"],
        eos_token=SPECIALS["eos"],
        unk_token=SPECIALS["unk"],
        pad_token=SPECIALS["pad"],
        padding_side="left",
        model_max_length=1024,
    )
    # added as special tokens: split out of the text before the whitespace split
    tokenizer.add_special_tokens({"additional_special_tokens": [SPECIALS["image"], SPECIALS["fake"],
                                                                SPECIALS["global"], *TILE_TAGS]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_smolvlm(path: str | os.PathLike, seed: int = 0) -> str:
    """Build and save a tiny random SmolVLM (model + processor) to ``path``; return it as str.

    Deterministic for a given ``seed``; well under a second, under 1 MB on disk.
    """
    import torch
    from transformers import (
        GenerationConfig,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
        Idefics3VisionConfig,
        LlamaConfig,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    vision = Idefics3VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  image_size=TILE, patch_size=PATCH_SIZE)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=SCALE_FACTOR,
                            image_token_id=tokenizer.convert_tokens_to_ids(SPECIALS["image"]),
                            pad_token_id=tokenizer.pad_token_id)

    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    with torch.no_grad():  # far-apart logits: batched and single runs cannot flip an argmax on float noise
        model.get_output_embeddings().weight.mul_(8.0)
    structural = [SPECIALS[k] for k in SPECIALS] + TILE_TAGS + ROLE_TOKENS
    model.generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=tokenizer.convert_tokens_to_ids(structural),
        no_repeat_ngram_size=1,
    )
    model.save_pretrained(out)

    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": LONGEST_EDGE},
                                                max_image_size={"longest_edge": TILE}, do_image_splitting=True)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=IMAGE_SEQ_LEN,
                                  chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out)
    return str(out)


if __name__ == "__main__":  # python tests/support/tiny_smolvlm.py OUT_DIR
    import sys

    print(build_tiny_smolvlm(sys.argv[1] if len(sys.argv) > 1 else "tiny-smolvlm"))
