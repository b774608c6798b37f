"""Turn VLM/LLM text into canonical keywords.

Novelty counts in how many tasks a keyword occurs, so two spellings of one concept
("Buses", "bus", "double-deckers") must become one string or the concept looks rarer
than it is. Everything here is rule based and offline: lemmas come from lemminflect's
bundled lexicon (which also tells us which parts of speech a word can take, our stand-in
for a POS tagger); nothing is downloaded at run time.

Two entry points:

* ``KeywordNormaliser.from_list`` for a keyword list an LLM was asked to produce;
* ``KeywordNormaliser.from_text`` for free text (a VLM description, a task's own text):
  nouns and noun-noun / hyphenated compounds are picked out by a small rule-based chunker.

One module per concern, each importing only from those listed before it:

* ``word_lists``: the word lists and thresholds (documented in docs/mining.md);
* ``lexicon``: one word's parts of speech, noun lemma, frequency and spelling;
* ``tokens``: text into folded tokens, typos and split compounds mended;
* ``refusals``: sentences that describe nothing (a refusal, a "no image" note);
* ``llm_lists``: an LLM's answer into raw keyword items;
* ``chunker``: the tagger and the names each noun phrase gives;
* ``normaliser``: ``KeywordNormaliser``, which puts them together, and synonym files.
"""

from __future__ import annotations

from .llm_lists import parse_keyword_list
from .normaliser import KeywordNormaliser, read_synonyms
from .refusals import describes_nothing, says_nothing
from .word_lists import CAPTION_FILLER, COLOURS, GENERIC_ADJECTIVES, NUMBER_WORDS, SIZES, STOPWORDS

__all__ = [
    "RULES_VERSION",
    "KeywordNormaliser",
    "describes_nothing",
    "says_nothing",
    "parse_keyword_list",
    "read_synonyms",
    "STOPWORDS",
    "CAPTION_FILLER",
    "COLOURS",
    "SIZES",
    "GENERIC_ADJECTIVES",
    "NUMBER_WORDS",
]

#: The version of the extraction rules of this package. It is part of the mining fingerprint
#: (settings.mining_fingerprint): bump it with any change that alters keywords, so that a
#: scope is never a mix of keywords from old and new rules (the new fingerprint is a new
#: index scope, and every task is mined again; images from their cached descriptions).
RULES_VERSION = "2026-12-07.1"
