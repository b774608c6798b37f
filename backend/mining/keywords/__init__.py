"""Turn VLM/LLM text into canonical keywords (the rules are in ``chunker`` for now).

The package re-exports the public names, so imports from ``backend.mining.keywords`` keep
working while its modules are split by concern.
"""

from __future__ import annotations

from .chunker import (
    CAPTION_FILLER,
    COLOURS,
    GENERIC_ADJECTIVES,
    NUMBER_WORDS,
    RULES_VERSION,
    SIZES,
    STOPWORDS,
    KeywordNormaliser,
    describes_nothing,
    parse_keyword_list,
    read_synonyms,
    says_nothing,
)

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
