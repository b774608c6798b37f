"""Seconds per image of the default describer on a machine without CUDA, on this CPU.

    python bench/describe_cpu.py --images 4 --batch-sizes 1,4 --max-new-tokens 60
    python bench/describe_cpu.py --no-image-splitting ...     # one 512-pixel view per image

Prints one JSON line. Builds the architecture of HuggingFaceTB/SmolVLM-256M-Instruct
(Idefics3: a SigLIP-like vision tower, 768 wide, 12 layers, 512-pixel tiles of 16-pixel
patches folded 4 x 4 into 64 image tokens; a LLaMA-shaped language model 576 wide, 30
layers, 9 heads, 3 key-value heads, 49,280 tokens of vocabulary) with random weights, in
float32 as the backend loads it on a CPU, and an Idefics3 processor with the checkpoint's
image settings (longest edge resized to 2048, cut into 512 tiles plus a global view).
Nothing is downloaded. The tokenizer is a word-level stand-in over the prompt's words;
every run generates exactly ``--max-new-tokens`` tokens (EOS ignored), so the figure is
what the real checkpoint does at that output length. The timed path is the backend's own
``TransformersDescriber``, called as the mining pipeline calls it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.vlm.prompts import DEFAULT_DESCRIBE_PROMPT  # noqa: E402
from backend.vlm.transformers_vlm import TransformersDescriber  # noqa: E402

VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              image_size=512, patch_size=16)
TEXT = dict(vocab_size=49280, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5)
SCALE_FACTOR = 4
LONGEST_EDGE, TILE = 2048, 512
IMAGE_SEQ_LEN = (TILE // 16) ** 2 // SCALE_FACTOR**2  # 64
SPECIALS = ["<unk>", "<|im_start|>", "<end_of_utterance>", "<pad>"]
MARKERS = ["<image>", "<fake_token_around_image>", "<global-img>"] + [
    f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def stand_in_tokenizer(prompt: str):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = list(dict.fromkeys(["User:", "Assistant:"] + prompt.split()))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + MARKERS + words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<|im_start|>",
                                        eos_token="<end_of_utterance>", pad_token="<pad>", padding_side="left")
    tokenizer.add_special_tokens({"additional_special_tokens": MARKERS})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def random_smolvlm(prompt: str, splitting: bool):
    import torch
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor,
                              Idefics3VisionConfig, LlamaConfig)
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tokenizer = stand_in_tokenizer(prompt)
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(**VISION),
        text_config=LlamaConfig(**TEXT, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True),
        scale_factor=SCALE_FACTOR, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).eval()
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(size={"longest_edge": LONGEST_EDGE},
                                                  max_image_size={"longest_edge": TILE},
                                                  do_image_splitting=splitting),
        tokenizer=tokenizer, image_seq_len=IMAGE_SEQ_LEN, chat_template=CHAT_TEMPLATE)
    return model, processor


def synthetic_images(n: int, width: int, height: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)) for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--batch-sizes", default="1,4")
    p.add_argument("--max-new-tokens", type=int, default=60)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--no-image-splitting", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model, processor = random_smolvlm(DEFAULT_DESCRIBE_PROMPT, not args.no_image_splitting)
    build_s = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    images = synthetic_images(args.images, args.width, args.height)
    forced = {"min_new_tokens": args.max_new_tokens}  # EOS ignored: every run has the same length
    runs = []
    for batch in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
        describer = TransformersDescriber.from_loaded(model, processor, "smolvlm-256m-random", batch_size=batch,
                                                      max_new_tokens=args.max_new_tokens, generation_kwargs=forced)
        text = describer._chat_text(DEFAULT_DESCRIBE_PROMPT, with_image=True)
        prompt_tokens = int(processor(images=images[:1], text=[text], return_tensors="pt")["input_ids"].shape[1])
        describer.describe(images[:1], DEFAULT_DESCRIBE_PROMPT, max_new_tokens=2)  # warm-up
        t0 = time.perf_counter()
        out = describer.describe(images, DEFAULT_DESCRIBE_PROMPT)
        seconds = time.perf_counter() - t0
        runs.append({"batch_size": batch, "images": len(out), "seconds": round(seconds, 2),
                     "s_per_image": round(seconds / len(out), 2), "prompt_tokens_per_image": prompt_tokens})
    print(json.dumps({
        "bench": "describe_cpu", "arch": "SmolVLM-256M-Instruct (random weights)", "params": params,
        "dtype": "float32", "image_splitting": not args.no_image_splitting,
        "image": f"{args.width}x{args.height}", "max_new_tokens": args.max_new_tokens,
        "torch_threads": torch.get_num_threads(), "build_s": round(build_s, 1), "runs": runs,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
