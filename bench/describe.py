"""Throughput of the local describer: images per second at several batch sizes.

    python bench/describe.py --model llava-hf/llava-1.5-7b-hf --batch-sizes 1,8,32 --images 128
    python bench/describe.py --random-weights llava-1.5-7b --batch-sizes 1,8,32,64 --images 256
    python bench/describe.py --random-weights tiny --batch-sizes 1,4 --images 8     # CPU smoke run
    bash bench/h200.sh      # the prepared GPU measurement: one device call, results under $OUT

Prints one JSON line. ``--random-weights llava-1.5-7b`` builds the real LLaVA-1.5-7B
architecture (CLIP ViT-L/14-336, 576 image tokens, LLaMA-7B) with random weights straight
on the device: the modules are created on the ``meta`` device (no memory, no init), then
materialised on the device with ``to_empty`` and initialised there, in bf16 on a GPU.
Nothing is downloaded. Its tokenizer is a word-level stand-in of about the same prompt
length; every run generates exactly ``--max-new-tokens`` tokens (EOS ignored), so the
figure is what a real checkpoint would do at that output length. The timed path is the
backend's own ``TransformersDescriber``, called as the mining pipeline calls it: all images
in one call, ``batch_size`` per generate, the next batch encoded while this one generates.
``--max-batches`` bounds the images timed per batch size (batch 1 is slow on a 7B model),
``--generation-kwargs`` passes extra ``generate()`` arguments (a static KV cache...),
``--keyword-pass`` also times KEYWORD_MODE=llm's second, text-only pass on the same model,
and the report gives the FLOPs of one description and the roofline at ``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.vlm.prompts import DEFAULT_DESCRIBE_PROMPT, render_keyword_prompt  # noqa: E402
from backend.vlm.transformers_vlm import TransformersDescriber  # noqa: E402

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'text') %}{{ c['text'] + ' ' }}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# (vision, text, image size, patch) per architecture. The 7B shape is llava-hf/llava-1.5-7b-hf's.
ARCHS = {
    "llava-1.5-7b": dict(
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu"),
        text=dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                  rms_norm_eps=1e-5),
    ),
    "tiny": dict(
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    image_size=32, patch_size=8, projection_dim=32, hidden_act="quick_gelu"),
        text=dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024),
    ),
}


def word_tokenizer(prompt: str):
    """A word-level tokenizer over the prompt's words: about LLaMA's token count for English."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    words = list(dict.fromkeys(["USER:", "ASSISTANT:"] + prompt.split()))
    vocab = {tok: i for i, tok in enumerate(specials + words + ["<image>"])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"}, padding_side="left",
    )


def random_llava(arch: str, device: str, dtype_name: str, prompt: str):
    """Model and processor of ``arch`` with random weights, created directly on ``device``."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    try:  # the Pillow processor: what AutoProcessor picks for the real checkpoint without torchvision
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover - other transformers versions
        from transformers import CLIPImageProcessor as ImageProcessor

    spec = ARCHS[arch]
    tokenizer = word_tokenizer(prompt)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    size, patch = spec["vision"]["image_size"], spec["vision"]["patch_size"]
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**spec["vision"]),
        text_config=LlamaConfig(**spec["text"], pad_token_id=tokenizer.pad_token_id,
                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        image_token_index=image_id,  # the stand-in tokenizer's id; 32000 in the real checkpoint
        image_seq_length=(size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )
    dtype = getattr(torch, dtype_name)
    with torch.device("meta"):  # shapes only: no memory, and transformers skips init on meta
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype)
    model.to_empty(device=device)  # allocate on the device, uninitialised
    torch.manual_seed(0)
    model.initialize_weights()  # weights, rotary inv_freq and CLIP position_ids, on the device
    model.eval()
    processor = LlavaProcessor(
        image_processor=ImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
    )
    return model, processor


def synthetic_images(n: int, width: int, height: int):
    """Distinct photo-sized images (random blocks of colour over noise)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for _ in range(n):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        base = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
        noise = rng.integers(-20, 21, size=(height, width, 3))
        images.append(Image.fromarray(np.clip(np.asarray(base, dtype=np.int16) + noise, 0, 255).astype(np.uint8)))
    return images


def flop_per_image(config, prompt_tokens: int, image_tokens: int, output_tokens: int) -> float:
    """Forward FLOPs of one description: 2 per weight per token, plus attention scores.

    The vision tower runs all its layers on image tokens + CLS (transformers computes every
    layer even when a middle one is selected); the projector maps the image tokens; the
    language model reads the prompt (image tokens included) once, then one token per output
    step, each attending to all before it (QK^T and AV: 4 * hidden FLOPs per layer per
    pair). The LM head runs only for generated tokens.
    """
    vision, text = config.vision_config, config.text_config

    def layer_weights(hidden: int, inter: int, gated: bool) -> int:
        return 4 * hidden * hidden + (3 if gated else 2) * hidden * inter

    v_tokens = image_tokens + 1
    vision_flop = vision.num_hidden_layers * (
        2 * v_tokens * layer_weights(vision.hidden_size, vision.intermediate_size, False)
        + 4 * vision.hidden_size * v_tokens * v_tokens)
    projector = 2 * image_tokens * (vision.hidden_size * text.hidden_size + text.hidden_size * text.hidden_size)
    per_token = 2 * text.num_hidden_layers * layer_weights(text.hidden_size, text.intermediate_size, True)
    lm_head = 2 * text.vocab_size * text.hidden_size * output_tokens
    attention = 4 * text.num_hidden_layers * text.hidden_size * (
        prompt_tokens * prompt_tokens / 2 + output_tokens * (prompt_tokens + output_tokens / 2))
    return float(vision_flop + projector + per_token * (prompt_tokens + output_tokens) + lm_head + attention)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="hub id or local directory (not with --random-weights)")
    parser.add_argument("--random-weights", choices=sorted(ARCHS), help="build this architecture with random weights")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--fixed-length", action="store_true",
                        help="always generate --max-new-tokens tokens (default with --random-weights)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, help="float16 | bfloat16 | float32")
    parser.add_argument("--attn-implementation", default=None)
    parser.add_argument("--image-size", default="640x480", help="WxH of the synthetic images")
    parser.add_argument("--max-batches", type=int, default=0,
                        help="time at most this many batches per batch size (0: all --images)")
    parser.add_argument("--generation-kwargs", default="{}",
                        help='extra generate() arguments as JSON, e.g. \'{"cache_implementation": "static"}\'')
    parser.add_argument("--keyword-pass", action="store_true",
                        help="also time KEYWORD_MODE=llm's second pass: the same model, text only, on the descriptions")
    parser.add_argument("--keyword-tokens", type=int, default=48,
                        help="output tokens of a keyword answer (fixed length with random weights; default 48)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense bf16 peak, for the roofline (default 790 on CUDA: an H200)")
    parser.add_argument("--prompt", default=DEFAULT_DESCRIBE_PROMPT)
    args = parser.parse_args(argv)
    if bool(args.model) == bool(args.random_weights):
        parser.error("give exactly one of --model and --random-weights")

    import torch
    import transformers

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    fixed = args.fixed_length or bool(args.random_weights)
    generation = {"min_new_tokens": args.max_new_tokens} if fixed else {}
    generation.update(json.loads(args.generation_kwargs))
    peak = args.peak_tflops or (790.0 if device.startswith("cuda") else None)

    started = time.perf_counter()
    if args.random_weights:
        model, processor = random_llava(args.random_weights, device, dtype, args.prompt)
        vlm = TransformersDescriber.from_loaded(
            model, processor, name=f"random:{args.random_weights}",
            max_new_tokens=args.max_new_tokens, generation_kwargs=generation,
        )
    else:
        vlm = TransformersDescriber(
            args.model, device=device, dtype=dtype, max_new_tokens=args.max_new_tokens,
            attn_implementation=args.attn_implementation, generation_kwargs=generation,
        )
        vlm.load()
    load_s = time.perf_counter() - started

    width, height = (int(v) for v in args.image_size.lower().split("x"))
    images = synthetic_images(args.images, width, height)
    sample = vlm.processor(images=images[:1], text=[vlm._chat_text(args.prompt, True)], return_tensors="pt")
    image_token_id = vlm.model.config.image_token_index
    prompt_tokens = int(sample["input_ids"].shape[1])
    image_tokens = int((sample["input_ids"] == image_token_id).sum())
    with torch.inference_mode():  # how many tokens one description really has
        sample = sample.to(vlm.device)
        sample["pixel_values"] = sample["pixel_values"].to(vlm.dtype)
        out = vlm.model.generate(**sample, do_sample=False, max_new_tokens=args.max_new_tokens, **generation)
    output_tokens = int(out.shape[1] - prompt_tokens)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    flop = flop_per_image(vlm.model.config, prompt_tokens, image_tokens, output_tokens)
    results = []
    for batch_size in batch_sizes:
        vlm.batch_size = batch_size
        vlm.oom_splits = 0
        timed = images if args.max_batches <= 0 else images[:max(batch_size * args.max_batches, 1)]
        vlm.describe(images[:batch_size], args.prompt)  # warm-up: kernels, allocator
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        sync()
        t0 = time.perf_counter()
        texts = vlm.describe(timed, args.prompt)
        sync()
        seconds = time.perf_counter() - t0
        row = {
            "batch_size": batch_size, "images": len(timed), "seconds": round(seconds, 3),
            "images_per_s": round(len(timed) / seconds, 3), "oom_splits": vlm.oom_splits,
            "descriptions": len(texts),
            "tflops": float(f"{flop * len(timed) / seconds / 1e12:.4g}"),
        }
        if args.keyword_pass:
            prompts = [render_keyword_prompt(text) for text in texts]
            kept = vlm.generation_kwargs
            vlm.generation_kwargs = {**kept, "min_new_tokens": args.keyword_tokens} if fixed else kept
            sync()
            t0 = time.perf_counter()
            vlm.complete(prompts, max_new_tokens=args.keyword_tokens)
            sync()
            keyword_s = time.perf_counter() - t0
            vlm.generation_kwargs = kept
            row["keyword_images_per_s"] = round(len(timed) / keyword_s, 3)
            # KEYWORD_MODE=llm on one GPU: both passes, one after the other
            row["llm_mode_images_per_s"] = round(len(timed) / (seconds + keyword_s), 3)
        if device.startswith("cuda"):
            row["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        results.append(row)

    report = {
        "bench": "describe",
        "model": args.model or f"random:{args.random_weights}",
        "device": device,
        "device_name": (torch.cuda.get_device_name() if device.startswith("cuda")
                        else platform.processor() or platform.machine()),
        "dtype": dtype,
        "images": len(images), "image_size": f"{width}x{height}",
        "max_new_tokens": args.max_new_tokens, "fixed_length": fixed,
        "prompt_tokens": prompt_tokens, "image_tokens": image_tokens, "output_tokens": output_tokens,
        "parameters_b": round(sum(p.numel() for p in vlm.model.parameters()) / 1e9, 3),
        "tflop_per_image": float(f"{flop / 1e12:.4g}"),
        "peak_tflops": peak,
        "roofline_images_per_s": round(peak * 1e12 / flop, 1) if peak else None,
        "generation_kwargs": generation,
        "load_s": round(load_s, 2),
        "images_per_s": {str(r["batch_size"]): r["images_per_s"] for r in results},
        "results": results,
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
