"""What general English says about one word: its parts of speech, lemma, frequency, spelling.

Lemmas and parts of speech come from lemminflect's bundled lexicon (our stand-in for a
part-of-speech tagger), frequencies from wordfreq's bundled English list: nothing is
downloaded at run time. Each look-up is cached, since captions repeat the same words.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import lemminflect
import wordfreq

from .word_lists import (
    CLOSED_SPELLING_ZIPF,
    LEMMA_OVERRIDES,
    NON_WORD_ZIPF,
    PLURAL_KEEP,
    STOPWORDS,
    TYPO_MAX_ZIPF,
    TYPO_ZIPF_GAP,
)

_NUMERIC = re.compile(r"^\d+(?:st|nd|rd|th|s)?$")


def is_word(tok: str) -> bool:
    return tok[0].isalnum()


def is_numeric(tok: str) -> bool:
    return bool(_NUMERIC.match(tok)) or tok.replace("-", "").isdigit()


@lru_cache(maxsize=65536)
def parts_of_speech(word: str) -> dict[str, tuple[str, ...]]:
    return lemminflect.getAllLemmas(word)


@lru_cache(maxsize=1)
def english_frequencies() -> dict[str, float]:
    """wordfreq's English word frequencies (bundled in its wheel: no download), loaded once."""
    return wordfreq.get_frequency_dict("en")


def zipf(word: str) -> float:
    """How common ``word`` is in general English: log10 of its count per 10^9 words (0 = never seen)."""
    freq = english_frequencies().get(word)
    return math.log10(freq) + 9.0 if freq else 0.0


def is_known_word(word: str) -> bool:
    """A word the lemma lexicon lists or general English uses at least once per 10^8 words
    (``NON_WORD_ZIPF``); anything else is a typo or a non-word ("ooking", "biilboard")."""
    return bool(parts_of_speech(word)) or zipf(word) >= NON_WORD_ZIPF


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=65536)
def corrected_spelling(word: str) -> str:
    """``word``, or the word it misspells: one edit away and ``TYPO_ZIPF_GAP`` commoner.

    One deleted, inserted, replaced or swapped letter (Norvig's edit distance 1) turns
    "suitecases" into "suitcases", "biilboard" into "billboard", "sandwhich" into
    "sandwich". Only rare words (below ``TYPO_MAX_ZIPF``) of five letters or more are
    looked at, and only a neighbour a hundred times commoner replaces them, so a rare
    real word ("biplane", "parasail") is left alone.
    """
    if len(word) < 5 or not word.isalpha() or not word.isascii():
        return word
    own = zipf(word)
    if own >= TYPO_MAX_ZIPF:
        return word
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    candidates = {a + b[1:] for a, b in splits if b}
    candidates |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    candidates |= {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    candidates |= {a + c + b for a, b in splits for c in _LETTERS}
    candidates.discard(word)
    freq = english_frequencies()
    best = max(candidates, key=lambda c: (freq.get(c, 0.0), c))
    return best if zipf(best) >= own + TYPO_ZIPF_GAP else word


@lru_cache(maxsize=65536)
def noun_lemma(word: str) -> str:
    """Noun lemma of one word; hyphenated words change only their last part."""
    if "-" in word:
        head, _, last = word.rpartition("-")
        return f"{head}-{noun_lemma(last)}" if last else word
    if word in PLURAL_KEEP:
        return word
    if word in LEMMA_OVERRIDES:
        return LEMMA_OVERRIDES[word]
    lemmas = parts_of_speech(word).get("NOUN") or parts_of_speech(word).get("PROPN")
    if lemmas:
        return word if word in lemmas else lemmas[0]
    if parts_of_speech(word):
        return word  # known, but not as a noun ("surfing"): keep the surface form
    if len(word) == 3 and word.endswith("s") and zipf(word[:-1]) >= CLOSED_SPELLING_ZIPF:
        return word[:-1]  # the plural of an abbreviation: "cds", "tvs", "pcs"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        oov = lemminflect.getLemma(word, upos="NOUN", lemmatize_oov=True)
        if oov and is_known_word(oov[0]):  # a guessed singular nobody writes is no lemma ("suitecasis")
            return oov[0]
    return word


def is_junk(word: str) -> bool:
    """Never a keyword on its own: stop word, number, single letter."""
    return len(word) < 2 or word in STOPWORDS or is_numeric(word)
