"""A local vision-language model through Hugging Face transformers (LLaVA-1.5 by default).

The model is loaded with ``AutoProcessor`` / ``AutoModelForImageTextToText.from_pretrained``
whatever ``model`` is (hub id or local directory), once per process, on first use, so
that importing this module or building a describer never touches CUDA: RQ forks job
processes, and CUDA cannot be initialised again in a child forked after the parent used
it (even ``torch.cuda.is_available()`` counts).
"""

from __future__ import annotations

import inspect
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .base import Describer, DescriberError

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

_DTYPES = {
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}

# LLaVA-1.5's own format, for a processor saved without a chat template.
_FALLBACK_TEMPLATE = "USER: {image}{prompt} ASSISTANT:"


def _dtype_name(dtype: str | None) -> str | None:
    if dtype is None or dtype == "":
        return None
    try:
        return _DTYPES[dtype.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use float16, bfloat16 or float32") from None


class TransformersDescriber(Describer):
    """Greedy, batched, left-padded generation with a local image-text-to-text model."""

    def __init__(
        self,
        model: str = "llava-hf/llava-1.5-7b-hf",
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int = 96,
        batch_size: int = 8,
        attn_implementation: str | None = None,
        generation_kwargs: Mapping[str, Any] | None = None,
        processor_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        """``processor_kwargs``: passed to ``AutoProcessor.from_pretrained`` (e.g. the CPU
        default's ``do_image_splitting=False``, see ``backend.vlm.defaults``)."""
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be positive")
        self.name = model
        self.model_id = model
        self.requested_device = device or None
        self.requested_dtype = _dtype_name(dtype)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.attn_implementation = attn_implementation or None
        self.generation_kwargs = dict(generation_kwargs or {})
        self.processor_kwargs = dict(processor_kwargs or {})
        self.oom_splits = 0  # batches halved after running out of GPU memory (benchmarks report it)
        self._model: Any = None
        self._processor: Any = None
        self.device: str | None = None
        self.dtype: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_loaded(cls, model: Any, processor: Any, name: str, **kwargs: Any) -> "TransformersDescriber":
        """Wrap an already built model and processor (benchmarks with random weights)."""
        describer = cls(model=name, **kwargs)
        describer._setup(model, processor)
        return describer

    def _setup(self, model: Any, processor: Any) -> None:
        tokenizer = getattr(processor, "tokenizer", processor)
        tokenizer.padding_side = "left"  # right padding changes batched output
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._processor = processor
        self.device = str(model.device)
        self.dtype = model.dtype
        self._model = model.eval()  # last: load()'s fast path takes a set _model as fully loaded

    def load(self) -> None:
        """Load the model now (otherwise the first describe/complete does). Idempotent."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor

            device = self.requested_device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype_name = self.requested_dtype or ("bfloat16" if device.startswith("cuda") else "float32")
            kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype_name)}
            if self.attn_implementation:
                kwargs["attn_implementation"] = self.attn_implementation
            if device != "cpu":
                kwargs["device_map"] = device  # straight to the accelerator, no CPU copy of 14 GB
            options = "".join(f", {k}={v!r}" for k, v in sorted(self.processor_kwargs.items()))
            log.info("loading %s on %s as %s%s", self.model_id, device, dtype_name, options)
            try:
                processor = AutoProcessor.from_pretrained(self.model_id, **self.processor_kwargs)
                model = AutoModelForImageTextToText.from_pretrained(self.model_id, **kwargs)
            except Exception as exc:
                raise DescriberError(f"cannot load model {self.model_id!r}: {type(exc).__name__}: {exc}") from exc
            if device == "cpu":
                model = model.to(device)
            self._setup(model, processor)

    @property
    def processor(self) -> Any:
        self.load()
        return self._processor

    @property
    def model(self) -> Any:
        self.load()
        return self._model

    # ---------------------------------------------------------------- prompting
    def _chat_text(self, prompt: str, with_image: bool) -> str:
        processor = self._processor
        content: list[dict[str, str]] = [{"type": "image"}] if with_image else []
        content.append({"type": "text", "text": prompt})
        if getattr(processor, "chat_template", None):
            return processor.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True
            )
        image = f"{getattr(processor, 'image_token', '<image>')}\n" if with_image else ""
        return _FALLBACK_TEMPLATE.format(image=image, prompt=prompt)

    def _tokenizer(self) -> Any:
        return getattr(self._processor, "tokenizer", self._processor)

    def _add_special_tokens(self, text: str) -> bool:
        # A template that writes BOS itself must not get a second one from the tokenizer.
        bos = self._tokenizer().bos_token
        return not (bos and text.startswith(bos))

    # --------------------------------------------------------------- generation
    def _generate(self, inputs: Any, max_new_tokens: int | None) -> list[str]:
        import torch

        kwargs = {"do_sample": False, "num_beams": 1, "max_new_tokens": max_new_tokens or self.max_new_tokens}
        kwargs.update(self.generation_kwargs)
        tokenizer = self._tokenizer()
        if getattr(self._model.generation_config, "pad_token_id", None) is None:
            kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
        with torch.inference_mode():
            output = self._model.generate(**inputs, **kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]  # left padding: one prompt length for all
        return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def _run(self, encode, items: Sequence[Any], max_new_tokens: int | None,
             keep_errors: bool = False, isolate: bool = False) -> list[Any]:
        """Run ``items`` in chunks of ``batch_size``; halve a chunk that runs out of GPU memory.

        ``encode`` (the processor: resizing, normalising, tokenising; CPU work) runs one chunk
        ahead in a background thread, so the next batch is ready when generation of this one
        ends. Only the transfer to the device happens on the calling thread. With
        ``keep_errors`` a chunk that fails gets its DescriberError in place of each text
        and the next chunk goes on; otherwise the first failure is raised. With ``isolate``
        as well, a failed chunk of several items is halved and run again, down to the item
        that fails, so only that one gets the error.
        """
        import torch

        oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
        texts: list[Any] = []
        pending = [list(items[i:i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
        with self._run_lock, ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlm-encode") as pool:
            ahead: tuple[list[Any], Future] | None = None  # the next chunk, being encoded
            while pending:
                chunk = pending.pop(0)
                try:
                    if ahead is not None and ahead[0] is chunk:
                        inputs = ahead[1].result()
                    else:
                        inputs = encode(chunk)
                    ahead = (pending[0], pool.submit(encode, pending[0])) if pending else None
                    texts.extend(self._generate(inputs.to(self.device), max_new_tokens))
                except oom as exc:
                    if len(chunk) == 1:
                        error = DescriberError(f"out of memory on {self.device} with a single input")
                        if not keep_errors:
                            raise error from exc
                        texts.append(error)
                        continue
                    log.warning("out of memory at batch %d on %s; halving", len(chunk), self.device)
                    self.oom_splits += 1
                    torch.cuda.empty_cache()
                    half = len(chunk) // 2
                    pending[:0] = [chunk[:half], chunk[half:]]
                except Exception as exc:
                    if keep_errors and isolate and len(chunk) > 1:
                        log.warning("batch of %d failed on %s (%s); running its halves", len(chunk),
                                    self.device, type(exc).__name__)
                        half = len(chunk) // 2
                        pending[:0] = [chunk[:half], chunk[half:]]
                        continue
                    error = exc
                    if not isinstance(exc, DescriberError):
                        error = DescriberError(f"{self.name}: generation failed: {type(exc).__name__}: {exc}")
                        error.__cause__ = exc
                    if not keep_errors:
                        raise error
                    texts.extend([error] * len(chunk))
        return texts

    def describe(
        self, images: Sequence["Image"], prompt: str, *, max_new_tokens: int | None = None
    ) -> list[str]:
        """One description per image, same order, ``batch_size`` images per forward pass."""
        if not images:
            return []
        return self._run(self._image_encoder(prompt), list(images), max_new_tokens)

    def describe_each(self, images: Sequence["Image"], prompt: str) -> list[str | DescriberError]:
        """As :meth:`describe`; a batch that fails is halved until the image that fails is
        found, which alone gets the DescriberError; the others are described."""
        if not images:
            return []
        return self._run(self._image_encoder(prompt), list(images), None, keep_errors=True, isolate=True)

    def _image_encoder(self, prompt: str):
        self.load()
        text = self._chat_text(prompt, with_image=True)
        add_special = self._add_special_tokens(text)

        def encode(chunk: list["Image"]) -> Any:
            rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in chunk]
            inputs = self._processor(
                images=rgb, text=[text] * len(rgb), padding=True,
                return_tensors="pt", add_special_tokens=add_special,
            )
            if "pixel_values" in inputs:  # cast on the CPU: bf16 halves the copy to the GPU
                inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            return inputs

        return encode

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int | None = None) -> list[str]:
        """Text-only generation through the same model and chat template."""
        if not prompts:
            return []
        return self._run(*self._text_encoder(prompts), max_new_tokens)

    def complete_each(self, prompts: Sequence[str], *, max_new_tokens: int | None = None
                      ) -> list[str | DescriberError]:
        """As :meth:`complete`; a batch that fails is halved until the prompt that fails is
        found, which alone gets the DescriberError."""
        if not prompts:
            return []
        return self._run(*self._text_encoder(prompts), max_new_tokens, keep_errors=True, isolate=True)

    def _text_encoder(self, prompts: Sequence[str]) -> tuple[Any, list[str]]:
        self.load()
        texts = [self._chat_text(p, with_image=False) for p in prompts]
        add_special = self._add_special_tokens(texts[0])

        def encode(chunk: list[str]) -> Any:
            return self._tokenizer()(chunk, padding=True, return_tensors="pt", add_special_tokens=add_special)

        return encode, texts


_CACHE: dict[tuple, TransformersDescriber] = {}
_CACHE_LOCK = threading.Lock()
_SIGNATURE = inspect.signature(TransformersDescriber.__init__)


def _cache_key(kwargs: Mapping[str, Any]) -> tuple:
    bound = _SIGNATURE.bind(None, **kwargs)
    bound.apply_defaults()
    items = []
    for key, value in bound.arguments.items():
        if key == "self":
            continue
        if key == "dtype":
            value = _dtype_name(value)
        if isinstance(value, Mapping):
            value = repr(sorted(value.items()))  # values may be lists: unhashable
        items.append((key, value))
    return tuple(items)


def get_transformers_describer(**kwargs: Any) -> TransformersDescriber:
    """The process-wide describer for these arguments: a worker loads each model once.

    Arguments equal after defaults are filled in (``dtype="bf16"`` == ``"bfloat16"``) share one.
    """
    key = _cache_key(kwargs)
    with _CACHE_LOCK:
        describer = _CACHE.get(key)
        if describer is None:
            describer = _CACHE[key] = TransformersDescriber(**kwargs)
        return describer
