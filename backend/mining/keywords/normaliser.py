"""The public normaliser: canonical keywords from an LLM's list or from free text."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .chunker import NOUN, Token, chunk_names, noun_phrase_chunks
from .lexicon import is_junk, is_word, noun_lemma
from .llm_lists import parse_keyword_list
from .refusals import described_sentences, describes_nothing
from .tokens import fold_text, read_tokens
from .word_lists import COLOUR_ALSO_NOUN, DESCRIPTIVE


class KeywordNormaliser:
    """Canonical keywords from LLM lists or free text; deterministic and offline."""

    def __init__(
        self, synonyms: Mapping[str, str] | None = None, extra_stopwords: Iterable[str] = ()
    ) -> None:
        self._extra_stop = frozenset(fold_text(w).strip() for w in extra_stopwords if w.strip())
        self._extra_stop |= frozenset(noun_lemma(w) for w in self._extra_stop)
        self._synonyms: dict[str, str] = {}
        if synonyms:
            plain = KeywordNormaliser(extra_stopwords=self._extra_stop)
            for variant, canonical in synonyms.items():
                key = plain._base(variant, strip_descriptive=False) or fold_text(variant).strip()
                value = plain._base(canonical, strip_descriptive=False) if canonical else ""
                self._synonyms[key] = value or ""

    @classmethod
    def from_file(cls, path: str | os.PathLike | None, data: bytes | None = None) -> "KeywordNormaliser":
        """Load synonyms: JSON ``{variant: canonical}`` or lines ``variant,canonical`` /
        ``variant => canonical`` / ``variant<TAB>canonical``; ``#`` starts a comment.
        ``data``: the file's bytes when the caller has read them already."""
        if path is None:
            return cls()
        return cls(synonyms=read_synonyms(path, data))

    # -- single phrases ----------------------------------------------------------------

    def normalise(self, phrase: str) -> str | None:
        """One keyword phrase -> canonical form, or None when nothing worth keeping.

        The phrase is taken as one noun phrase: stop words, numbers and descriptive
        adjectives (colour, size, generic) go, the last word is lemmatised as a noun,
        then synonyms apply to the whole phrase and to single words.
        """
        full = self._base(phrase, strip_descriptive=False)
        if full is not None and full in self._synonyms:
            return self._synonyms[full] or None
        base = self._base(phrase, strip_descriptive=True)
        return None if base is None else self._apply_synonyms(base)

    def _base(self, phrase: str, strip_descriptive: bool) -> str | None:
        words = [w for w in read_tokens(phrase)[0] if is_word(w) and not self._dropped(w)]
        if strip_descriptive:
            keep_last = bool(words) and words[-1] in COLOUR_ALSO_NOUN
            words = [
                w
                for i, w in enumerate(words)
                if not _is_descriptive(w) or (keep_last and i == len(words) - 1)
            ]
        if not words:
            return None
        words[-1] = noun_lemma(words[-1])
        if self._dropped(words[-1]):
            return None
        return " ".join(words)

    def _dropped(self, word: str) -> bool:
        return is_junk(word) or word in self._extra_stop

    def _apply_synonyms(self, phrase: str) -> str | None:
        if phrase in self._synonyms:
            return self._synonyms[phrase] or None
        if not self._synonyms:
            return phrase
        words = [self._synonyms.get(w, w) for w in phrase.split(" ")]
        joined = " ".join(w for w in words if w)
        return self._synonyms.get(joined, joined) or None

    # -- lists and text ------------------------------------------------------------------

    def from_list(self, raw: str | Sequence[str]) -> list[str]:
        """An LLM keyword list -> normalised, de-duplicated, first-appearance order.

        An item that holds more than one noun phrase ("man riding a horse") is read as
        text, so sentence-like items still give clean keywords.
        """
        items = parse_keyword_list(raw) if isinstance(raw, str) else list(raw)
        out: dict[str, None] = {}
        for item in items:
            if not isinstance(item, str) or describes_nothing(item):
                continue
            chunks = [c for c in noun_phrase_chunks(*read_tokens(item)) if any(t.tag == NOUN for t in c)]
            found = self._from_chunks(chunks) if len(chunks) > 1 else [self.normalise(item)]
            out.update((k, None) for k in found if k)
        return list(out)

    def from_text(self, text: str) -> list[str]:
        """Free text -> the things it names, normalised, first-appearance order.

        Sentences that describe nothing (``describes_nothing``) are left out, so a refusal
        or a "no image" note gives no keywords at all, and no novelty.
        """
        if not text:
            return []
        out: list[str] = []
        for sentence in described_sentences(text):
            out.extend(self._from_chunks(noun_phrase_chunks(*read_tokens(sentence))))
        return list(dict.fromkeys(out))

    def _from_chunks(self, chunks: list[list[Token]]) -> list[str]:
        out: list[str] = []
        for chunk in chunks:
            for phrase in chunk_names(chunk):
                words = phrase.split(" ")
                if self._dropped(words[-1]) or any(w in self._extra_stop for w in words):
                    continue
                mapped = self._apply_synonyms(phrase)
                if mapped:
                    out.append(mapped)
        return out


def _is_descriptive(word: str) -> bool:
    if word in DESCRIPTIVE:
        return True
    last = word.rsplit("-", 1)[-1]
    return "-" in word and last in DESCRIPTIVE


def read_synonyms(path: str | os.PathLike, data: bytes | None = None) -> dict[str, str]:
    """Parse a synonyms file (see ``KeywordNormaliser.from_file``), or ``data``, its bytes."""
    text = Path(path).read_text(encoding="utf-8") if data is None else data.decode("utf-8")
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a JSON synonyms file must hold one object")
        return {str(k): str(v) for k, v in data.items()}
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for sep in ("=>", "->", "\t", ","):
            if sep in line:
                variant, canonical = (p.strip() for p in line.split(sep, 1))
                break
        else:
            raise ValueError(f"{path}:{number}: expected 'variant => canonical'")
        if variant:
            out[variant] = canonical
    return out
