"""Task -> description -> keywords: the mining half of VLMine.

Text tasks (or a configured caption field) use their own text as the
description. Image tasks are fetched, described by the VLM in batches and
turned into keywords by the configured keyword mode. Whatever fails, fails
for its own task only, with a reason an admin can read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Callable, Sequence

from ..labelstudio.config import Source, field_value
from ..mining import KeywordNormaliser
from ..mining.keywords import says_nothing
from ..objects import (DescribedCrop, DetectedObject, crop_keys, cut_crops, describe_crops, mined_objects,
                       objects_digest, objects_of_task, thumbnail_jpeg)
from ..settings import Settings, read_synonyms_file
from ..state.base import Store

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 10 * MAX_TEXT_CHARS  # HyperText markup read, before its tags go


@dataclass
class MinedTask:
    task_id: int
    keywords: list[str] | None  # None when the task failed
    description: str | None = None
    error: str | None = None
    signals: dict[str, float] = field(default_factory=dict)  # filled by the engine (engine.ranking_signals)
    # object mining (docs/objects.md); left empty when it is off or the config has no boxes
    objects: list[DetectedObject] = field(default_factory=list)  # the mined ones, by slot
    object_keywords: list[list[str] | None] = field(default_factory=list)  # by slot; None: that object failed
    object_errors: list[str] = field(default_factory=list)  # a broken box, a refused crop, a VLM failure
    objects_digest: str | None = None  # of the boxes read (objects.objects_digest); None: objects not mined
    # slot -> a tiny JPEG of its crop (objects.thumbnail_jpeg), for every crop cut this time; empty
    # when the image was not decoded (all its crops cached): the engine then keeps the stored one
    thumbnails: dict[int, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.keywords is not None


class Miner:
    """Describes tasks and extracts their keywords under one set of settings."""

    def __init__(self, settings: Settings, store: Store,
                 label_studio_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.store = store
        # SYNONYMS_FILE is read once: the normaliser and the fingerprint of the cache keys
        # come from the same bytes, so an edit while running (picked up at the next start)
        # never files keywords of the old mapping under the new key, and a file that is
        # briefly unreadable fails no batch
        synonyms = read_synonyms_file(settings.synonyms_file) if settings.synonyms_file else None
        self.normaliser = KeywordNormaliser.from_file(settings.synonyms_file, data=synonyms)
        self.fingerprint = settings.mining_fingerprint(synonyms=synonyms)
        # the description cache is keyed without the keyword rules' version: new rules
        # re-derive keywords from a cached description instead of describing the image again
        # (and keys written before the version was in the fingerprint stay valid)
        # nor with the object settings: turning object mining on describes no image again
        described_by = {k: v for k, v in self.fingerprint.items() if k not in ("keyword_rules", "objects")}
        self._fingerprint_blob = json.dumps(described_by, sort_keys=True, default=str)
        self.object_source = settings.object_source_rule()
        self.crop_rules = settings.object_crop_rules()
        self._label_studio_factory = label_studio_factory
        self._describer = None
        self._keyword_llm = None
        self._fetcher = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- entry
    def describe(self, tasks: Sequence[dict], source: Source) -> list[MinedTask]:
        """Describe a batch and turn each description into keywords (objects too, when they are
        mined); one entry per task, in order. Indexing and ranking them is the engine's
        (``engine.tasks.mine``)."""
        if source.kind == "image":
            return self._describe_images(tasks, source)
        return self._describe_texts(tasks, source)

    def mines_objects(self, source: Source | None) -> bool:
        """Whether tasks of ``source`` get their objects mined: OBJECT_MINING is on and the
        label config draws boxes on the mined Image."""
        return bool(self.settings.object_mining and source is not None and source.kind == "image" and source.boxes)

    def objects_digest(self, task: dict) -> str:
        """The digest of the boxes a task's objects come from (see ``objects.objects_digest``)."""
        return objects_digest(task, self.object_source)

    # ---------------------------------------------------------------- text
    def _describe_texts(self, tasks: Sequence[dict], source: Source) -> list[MinedTask]:
        out: list[MinedTask] = []
        pending: list[tuple[int, str]] = []
        for i, task in enumerate(tasks):
            tid = _task_id(task)
            text, reason = text_from_task(task, source)
            if text is None:
                out.append(MinedTask(tid, None, error=reason))
                continue
            out.append(MinedTask(tid, [], description=text))
            pending.append((i, text))
        if self.settings.text_keyword_mode == "rules":
            # a paragraph (or an HTML block) is a text of its own: no phrase runs across two
            by_line = source.tag in ("Paragraphs", "HyperText")
            for i, text in pending:
                lines = text.split("\n") if by_line else [text]
                out[i].keywords = list(dict.fromkeys(k for line in lines for k in self.normaliser.from_text(line)))
        else:
            self._llm_keywords([out[i] for i, _ in pending])
        return out

    # ---------------------------------------------------------------- images
    def _describe_images(self, tasks: Sequence[dict], source: Source) -> list[MinedTask]:
        from .images import ImageError, content_hash, failure_reason, image_ref_from_task

        fetcher = self.fetcher()
        key = source.key
        with_objects = self.mines_objects(source)

        def fetch(task: dict) -> tuple[MinedTask, str | None, bytes | None]:
            tid = _task_id(task)
            try:
                data = fetcher.fetch_bytes(image_ref_from_task(task, key), task_id=tid)
            except Exception as exc:  # an ImageError, or a surprise: either fails this task only
                # no traceback: it could show a signed URL; the reason is redacted
                reason = failure_reason(exc)
                log.log(logging.WARNING if isinstance(exc, ImageError) else logging.ERROR,
                        "task %s: image failed: %s", tid, reason)
                return MinedTask(tid, None, error=f"image: {reason}"), None, None
            return MinedTask(tid, None), content_hash(data), data

        def decode(data: bytes) -> Any:
            try:
                return fetcher.decode(data)
            except ImageError as exc:
                return exc
            except Exception as exc:  # a surprise from the decoder: this image fails alone
                return ImageError(failure_reason(exc))

        with ThreadPoolExecutor(max_workers=self.settings.image_fetch_concurrency,
                                thread_name_prefix="image-fetch") as pool:
            # storage round trips (and Pillow's decoding, which releases the GIL) overlap;
            # the order of the tasks is kept
            fetched = list(pool.map(fetch, tasks))
            out = [mined for mined, _, _ in fetched]
            if with_objects:
                for task, mined in zip(tasks, out):
                    self._read_objects(task, mined, source)
            # (row, image cache key, content hash, bytes) of every image fetched
            to_describe = [(i, self.cache_key(h), h, data) for i, (_, h, data) in enumerate(fetched) if h is not None]
            if not to_describe:
                return out
            # every slot's crop key is known before decoding: a task whose image and crops
            # are all cached is never decoded
            slot_keys = {i: self._crop_keys(h, out[i]) for i, _, h, _ in to_describe} if with_objects else {}
            cached = self.store.cache_get({c for _, c, _, _ in to_describe}
                                          | {k for keys in slot_keys.values() for k in keys})
            for i, ckey, _, _ in to_describe:
                if ckey in cached:
                    out[i].description = cached[ckey][0]
                    out[i].keywords = self._keywords_again(*cached[ckey])
                for slot, k in enumerate(slot_keys.get(i, ())):
                    if k in cached:
                        out[i].object_keywords[slot] = self._keywords_again(*cached[k])
            new = [(i, ckey, h, data) for i, ckey, h, data in to_describe
                   if ckey not in cached or any(k not in cached for k in slot_keys.get(i, ()))]
            fresh: list[tuple[int, str, Any]] = []
            crops = []
            for (i, ckey, h, _), image in zip(new, pool.map(decode, [data for _, _, _, data in new])):
                if isinstance(image, ImageError):
                    log.warning("task %s: image failed: %s", out[i].task_id, image.reason)
                    if ckey in cached:  # described before: only its objects wait for this image
                        out[i].object_errors.append(f"image: {image.reason}")
                    else:
                        out[i].error = f"image: {image.reason}"
                    continue
                if ckey not in cached:
                    fresh.append((i, ckey, image))
                if with_objects and any(k not in cached for k in slot_keys[i]):
                    cut, refused = cut_crops(out[i].task_id, image, h, out[i].objects, self.crop_rules)
                    out[i].object_errors.extend(f.reason for f in refused)
                    out[i].thumbnails = _thumbnails(out[i].task_id, cut)
                    crops.extend(c for c in cut if slot_keys[i][c.slot] not in cached)
            del fetched, to_describe, new  # the files' bytes: only the decoded images (and crops) wait
        if fresh or crops:
            self._describe(out, fresh, crops)
        return out

    def _read_objects(self, task: dict, mined: MinedTask, source: Source) -> None:
        """The task's objects (its boxes, the mined ones in slot order) and the regions that
        are no objects, each with its reason."""
        found, failures = objects_of_task(task, self.object_source, to_name=source.name)
        mined.objects = mined_objects(found, self.crop_rules)
        mined.object_keywords = [None] * len(mined.objects)
        mined.object_errors = [f.reason for f in failures]
        mined.objects_digest = self.objects_digest(task)

    def _crop_prompts(self) -> list[str]:
        """The crop prompt, then what else shapes a crop's description (the decode scale and
        model settings of the image cache key): the prompts part of every crop's cache key."""
        from ..vlm.prompts import DEFAULT_OBJECT_DIRECT_PROMPT, DEFAULT_OBJECT_PROMPT

        direct = self.settings.keyword_mode == "direct"
        prompt = self.settings.object_prompt or (DEFAULT_OBJECT_DIRECT_PROMPT if direct else DEFAULT_OBJECT_PROMPT)
        return [prompt, self._fingerprint_blob]

    def _crop_keys(self, image_hash: str, mined: MinedTask) -> list[str]:
        return crop_keys(image_hash, mined.objects, self.crop_rules, self.describer().name, self._crop_prompts())

    def _describe(self, out: list[MinedTask], fresh: list[tuple[int, str, Any]], crops: Sequence[Any] = ()) -> None:
        """Describe the job's new images (one call) and its new crops (one call), then give
        both their keywords in one keyword pass, and cache them."""
        from ..vlm.prompts import DEFAULT_DESCRIBE_PROMPT, DEFAULT_DIRECT_PROMPT

        mode = self.settings.keyword_mode
        prompt = self.settings.vlm_prompt or (DEFAULT_DIRECT_PROMPT if mode == "direct" else DEFAULT_DESCRIBE_PROMPT)
        images = [img for _, _, img in fresh]
        results: list[Any] = []
        if images:
            try:
                # one call: a local model keeps its batches back to back (the next one is encoded
                # while this one generates), an endpoint keeps its requests in flight; a failure
                # fails only its own image
                results = self.describer().describe_each(images, prompt)
            except Exception as exc:  # a describer that cannot run at all (a model that will not load)
                results = [exc] * len(images)
        failures: Counter[str] = Counter()
        for (i, _, _), result in zip(fresh, results):
            if isinstance(result, BaseException):
                reason = _short(result)
                out[i].error = f"vlm: {reason}"
                failures[reason] += 1
            else:
                out[i].description = result
        for reason, count in failures.items():
            log.error("VLM failed on %d images: %s", count, reason)
        described = [(i, c) for i, c, _ in fresh if out[i].error is None]
        # the crops: every crop of the job in one call (a GPU keeps its batches full); no
        # cache here, the keyword pass below is shared with the images and caches both
        crop_prompt, *context = self._crop_prompts()
        pieces = describe_crops(self.describer(), crops, crop_prompt, keywords=None, cache=None,
                                context=context) if crops else []
        self._keywords([out[i] for i, _ in described] + [d for d in pieces if d.ok])
        self.store.cache_put({**{c: (out[i].description, out[i].keywords)
                                 for i, c in described if out[i].keywords is not None},
                              **{d.cache_key: (d.description, d.keywords)
                                 for d in pieces if d.error is None and d.keywords is not None}})
        self._place_crops(out, pieces)

    @staticmethod
    def _place_crops(out: list[MinedTask], pieces: Sequence[DescribedCrop]) -> None:
        """Each described crop's keywords into its task's slot; a failed one into its errors."""
        row = {m.task_id: m for m in out}
        failed: Counter[str] = Counter()
        for d in pieces:
            mined = row[d.crop.task_id]
            if d.error is None and d.keywords is not None:
                mined.object_keywords[d.crop.slot] = d.keywords
            else:
                reason = d.error or "no description"
                mined.object_errors.append(f"object {d.crop.slot} ({d.crop.object.label or 'no label'}): {reason}")
                failed[reason] += 1
        for reason, count in failed.items():
            log.error("object mining failed on %d crops: %s", count, reason)

    def _keywords(self, items: Sequence[Any]) -> None:
        """The keyword mode's rule, the one for whole images and crops alike: each item (a
        MinedTask or a DescribedCrop: ``description`` in, ``keywords`` or ``error`` out)."""
        mode = self.settings.keyword_mode
        if mode == "direct":
            for item in items:
                item.keywords = self.normaliser.from_list(item.description or "")
        elif mode == "rules":
            for item in items:
                item.keywords = self.normaliser.from_text(item.description or "")
        else:
            self._llm_keywords(list(items))

    def _keywords_again(self, description: str | None, keywords: Sequence[str]) -> list[str]:
        """A cached image's keywords under today's rules, without describing it again.

        The cache may hold keywords of older extraction rules. Rules and direct mode
        derive them again from the cached description (cheap); llm mode has no cached LLM
        answer, so its cached keyword items go through the current normaliser again
        (colours, stop words, typos and descriptions of nothing apply; a compound the
        LLM gave stays one keyword, as it would from a fresh answer).
        """
        mode = self.settings.keyword_mode
        if mode == "rules":
            return self.normaliser.from_text(description or "")
        if mode == "direct":
            return self.normaliser.from_list(description or "")
        return self.normaliser.from_list(list(keywords))

    # ---------------------------------------------------------------- keyword LLM
    def _llm_keywords(self, items: list[Any]) -> None:
        from ..vlm.prompts import DEFAULT_KEYWORD_PROMPT, render_keyword_prompt

        asked = []
        for item in items:
            if says_nothing(item.description or ""):
                item.keywords = []  # a refusal or "no image": nothing to ask the LLM about, no novelty
            else:
                asked.append(item)
        items = asked
        if not items:
            return
        template = self.settings.keyword_prompt or DEFAULT_KEYWORD_PROMPT
        prompts = [render_keyword_prompt(item.description or "", template) for item in items]
        try:
            # a request (or a local batch) that fails fails only its own tasks: one huge
            # text or one refused prompt leaves the rest of the batch its keywords
            answers: list[Any] = self.keyword_llm().complete_each(prompts)
        except Exception as exc:  # a keyword LLM that cannot run at all
            answers = [exc] * len(items)
        failures: Counter[str] = Counter()
        for item, answer in zip(items, answers):
            if isinstance(answer, BaseException):
                reason = _short(answer)
                item.keywords, item.error = None, f"keyword llm: {reason}"
                failures[reason] += 1
            else:
                item.keywords = self.normaliser.from_list(answer)
        for reason, count in failures.items():
            log.error("keyword LLM failed on %d tasks: %s", count, reason)

    # ---------------------------------------------------------------- parts, built lazily
    def cache_key(self, image_hash: str) -> str:
        return hashlib.sha256(f"{self._fingerprint_blob}|{image_hash}".encode()).hexdigest()

    def fetcher(self):
        """The image fetcher, rebuilt when the Label Studio connection changes (e.g. a later /setup)."""
        client = self._label_studio_factory() if self._label_studio_factory else None
        with self._lock:
            if self._fetcher is None or self._fetcher.label_studio is not client:
                from .images import ImageFetcher

                s = self.settings
                self._fetcher = ImageFetcher(
                    max_bytes=s.image_max_bytes, max_pixels=s.image_max_pixels,
                    connect_timeout=s.image_connect_timeout, read_timeout=s.image_read_timeout,
                    local_files_root=s.local_files_document_root, label_studio=client,
                    s3_endpoint_url=s.aws_endpoint_url, allow_private=s.image_allow_private_networks,
                    decode_min_side=s.image_decode_min_side, max_aspect_ratio=s.image_max_aspect_ratio,
                )
            return self._fetcher

    def describer(self):
        with self._lock:
            if self._describer is None:
                self._describer = build_describer(self.settings)
            return self._describer

    def keyword_llm(self):
        s = self.settings
        if s.keyword_llm_url:
            with self._lock:
                if self._keyword_llm is None:
                    from ..vlm.openai_vlm import OpenAIDescriber

                    self._keyword_llm = OpenAIDescriber(
                        base_url=s.keyword_llm_url, model=s.keyword_llm_model or "default",
                        api_key=s.keyword_llm_api_key, concurrency=s.vlm_api_concurrency)
                return self._keyword_llm
        return self.describer()


def build_describer(settings: Settings):
    """The VLM the settings ask for: an OpenAI-compatible endpoint or local transformers."""
    if settings.vlm_api_url:
        from ..vlm.openai_vlm import OpenAIDescriber

        return OpenAIDescriber(base_url=settings.vlm_api_url, model=settings.vlm_api_model or "default",
                               api_key=settings.vlm_api_key, max_tokens=settings.vlm_max_new_tokens,
                               concurrency=settings.vlm_api_concurrency)
    from ..vlm.transformers_vlm import get_transformers_describer

    return get_transformers_describer(model=settings.describer_model, device=settings.vlm_device,
                                      dtype=settings.vlm_dtype, max_new_tokens=settings.vlm_max_new_tokens,
                                      batch_size=settings.vlm_batch_size,
                                      processor_kwargs=settings.describer_processor_kwargs or None)


def _thumbnails(task_id: int, crops: Sequence[Any]) -> dict[int, bytes]:
    """slot -> the thumbnail of each crop; a crop Pillow cannot encode goes without one (a
    thumbnail is for the report: its object is still described and ranked)."""
    out: dict[int, bytes] = {}
    for crop in crops:
        try:
            out[crop.slot] = thumbnail_jpeg(crop.image)
        except Exception as exc:  # an odd image mode or a truncated file: this thumbnail only
            log.warning("task %s: object %s: no thumbnail: %s: %s", task_id, crop.slot, type(exc).__name__, exc)
    return out


def _task_id(task: dict) -> int:
    return int(task["id"])


def text_from_task(task: dict, source: Source) -> tuple[str | None, str | None]:
    """(the text to mine, None) of a task, or (None, why not).

    Text and a caption field are taken as they are; HyperText loses its markup (tags
    dropped, entities decoded, a line per block), so that ``div`` or ``href`` never
    become keywords; Paragraphs, a list of ``{author, text}`` objects, gives the ``text``
    (``textKey``) of each item, one per line. ``valueType="url"`` (a link to the text)
    is refused.
    """
    key = source.key
    if source.value_type == "url":
        return None, (f"{source.tag or 'Text'} with valueType=url is not supported; put the text itself "
                      "in the task data (or name a field holding it with DESCRIPTION_FIELD)")
    missing = object()
    value = field_value(task.get("data"), key, missing)
    if value is missing:
        return None, f"task data has no text field '{key}'"
    if value is None:
        return None, f"task data field '{key}' is null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if source.tag == "Paragraphs" and isinstance(value, list):
        lines = [item[source.text_key] for item in value
                 if isinstance(item, dict) and isinstance(item.get(source.text_key), str)]
        if value and not lines:
            return None, f"task data field '{key}' has no paragraph with a '{source.text_key}' text"
        text = _joined(lines)
    elif not isinstance(value, str):
        return None, f"task data field '{key}' is not text"
    elif source.tag == "HyperText":
        text = html_text(value[:MAX_HTML_CHARS])
    else:
        text = value
    return text[:MAX_TEXT_CHARS], None


def _joined(lines: Sequence[str]) -> str:
    """The lines joined by newlines, stopping once MAX_TEXT_CHARS is reached."""
    kept, size = [], 0
    for line in lines:
        if size >= MAX_TEXT_CHARS:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


class _TextOfHTML(HTMLParser):
    """The text of an HTML fragment: block tags end a line, other tags become spaces,
    entities are decoded, scripts and styles dropped."""

    SKIPPED = frozenset({"script", "style", "template", "head", "title"})
    BLOCKS = frozenset({"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
                        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
                        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td", "th",
                        "tr", "ul"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        self.parts.append("\n" if tag in self.BLOCKS else " ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1
        self.parts.append("\n" if tag in self.BLOCKS else " ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The readable text of HyperText data: a line per block, whitespace collapsed."""
    parser = _TextOfHTML()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
