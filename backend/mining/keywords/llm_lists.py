"""Parsing an LLM's keyword list into raw items (not yet normalised)."""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*(.*?)```", re.S)
#: what is left of a fence that never closes (the answer was cut off): the backticks, and
#: a language tag when it ends its line ("```json"), so the tag never becomes a keyword
_OPEN_FENCE = re.compile(r"```(?:[a-zA-Z0-9_-]*[ \t]*(?=\r?\n|\Z))?")
_JSON_OPENERS = "\"[{"
_BULLET = re.compile(r"^\s*(?:[-*•·–—>]+|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)](?=\s))\s*")
_QUOTES = "\"'`“”‘’«»"
_TRAIL = ".,;:!?\"'`“”‘’«»)]}"
_LIST_KEYS = ("keywords", "keyword", "tags", "labels", "objects", "concepts", "items")
_ITEM_KEYS = ("keyword", "name", "term", "text", "label", "tag", "value")


def parse_keyword_list(raw: str) -> list[str]:
    """Split an LLM's answer into raw keyword items (not yet normalised).

    LLMs asked for "a JSON list of keywords" answer in many shapes: bare JSON, JSON in
    a fenced code block, JSON with a sentence around it, an object with a ``keywords``
    list, or a plain comma/line/bullet list. All of them end up here.
    """
    if not raw or not raw.strip():
        return []
    # a list cut off first: the candidates would take its first complete {...} item for the answer
    items = _unclosed_json_list(_unfence(raw))
    if items is None:
        items = next((found for found in map(_items_from_json, _json_candidates(raw)) if found is not None), None)
    if items is None:
        items = _split_plain(raw)
    return [c for c in (_clean_item(i) for i in items) if c]


def _unfence(raw: str) -> str:
    """``raw`` with code fences replaced by their content, an unclosed one included."""
    return _OPEN_FENCE.sub("", _FENCE.sub(lambda m: m.group(1), raw))


def _unclosed_json_list(text: str) -> list[str] | None:
    """The complete items of a JSON list that never closes, or None when there is no such list.

    An answer cut off by the token limit ends inside its list, often inside an item
    (``["red bus", "dog", "fire hyd``): the items before the cut are kept, the partial
    one is dropped. Text that only looks like a list (``[red bus, dog``) is None too.
    """
    start = text.find("[")
    if start < 0 or "]" in text[start:]:
        return None
    decoder = json.JSONDecoder()
    values: list = []
    pos = start + 1
    while True:
        pos = _skip_space(text, pos)
        if pos == len(text):
            break  # cut right after a comma
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            if text[pos] not in _JSON_OPENERS:
                return None  # not JSON: a plain list
            break  # the partial last item
        values.append(value)
        pos = _skip_space(text, pos)
        if pos == len(text):
            break  # cut right after an item
        if text[pos] != ",":
            return None
        pos += 1
    return _flatten(values)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _json_candidates(raw: str) -> list[str]:
    """Substrings worth trying as JSON, most specific first."""
    out = [m.group(1) for m in _FENCE.finditer(raw)]
    out.append(raw.strip())
    for open_, close in ("[]", "{}"):
        start, end = raw.find(open_), raw.rfind(close)
        if 0 <= start < end:
            out.append(raw[start : end + 1])
    return out


def _items_from_json(text: str) -> list[str] | None:
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return None
    if isinstance(value, dict):
        # {"keywords": [...]} or similar; else the first list inside; else nothing.
        lists = [value[k] for k in _LIST_KEYS if isinstance(value.get(k), list)]
        lists += [v for v in value.values() if isinstance(v, list)]
        value = lists[0] if lists else []
    if not isinstance(value, list):
        return None
    return _flatten(value)


def _flatten(values: list) -> list[str]:
    out: list[str] = []
    for v in values:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(str(v))
        elif isinstance(v, list):
            out.extend(_flatten(v))
        elif isinstance(v, dict):
            out.extend(str(v[k]) for k in _ITEM_KEYS if isinstance(v.get(k), str))
    return out


def _split_plain(raw: str) -> list[str]:
    """Comma / semicolon / newline / bullet separated text."""
    raw = _unfence(raw)
    items: list[str] = []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.endswith(":"):
            continue  # empty or a header such as "Here are the keywords:"
        line = _BULLET.sub("", line)
        head, sep, tail = line.partition(":")
        if sep and tail.strip() and len(head.split()) <= 4:
            line = tail  # "Keywords: bus, road"
        for part in re.split(r"[,;|]", line):
            items.append(re.sub(r"^\s*(?:and|or)\s+", "", part))
    return items


def _clean_item(item: str) -> str:
    item = item.strip().strip(_QUOTES).strip()
    item = item.rstrip(_TRAIL).lstrip(_QUOTES + "([{").strip()
    return item
