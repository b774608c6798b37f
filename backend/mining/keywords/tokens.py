"""Text into tokens: folded, split, and with typos and split compounds mended.

Every entry point reads its text through ``read_tokens``, so a list item and a sentence
see the same tokens; the English-only mending is decided here, once per text.
"""

from __future__ import annotations

import re
import unicodedata

from .lexicon import corrected_spelling, parts_of_speech, zipf
from .word_lists import (
    CONTEXT_TYPOS,
    DESCRIPTIVE,
    DETERMINERS,
    FUNCTION_WORDS,
    INFORMAL_SPELLINGS,
    PREPOSITIONS,
    SPLIT_COMPOUND_ZIPF,
    STOPWORDS,
)

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*(?:-[^\W_]+(?:['’][^\W_]+)*)*|[^\w\s]|_")


def fold_text(text: str) -> str:
    """NFKC, lower case, accents off Latin letters ("Café" -> "cafe").

    Accents are dropped only where the base letter is ASCII, so other scripts (whose
    vowel signs are also combining marks) are left intact.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    if text.isascii():
        return text
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch) and out and out[-1].isascii():
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def split_tokens(text: str) -> list[str]:
    """Words and punctuation; a possessive "'s" becomes a separate boundary token."""
    out: list[str] = []
    for tok in _TOKEN.findall(fold_text(text)):
        tok = tok.replace("’", "'")
        if tok.endswith("'s"):
            out.extend((tok[:-2], "'s"))
        elif "'" in tok:
            out.append(tok.replace("'", ""))
        else:
            out.append(tok)
    return [t for t in out if t]


def read_tokens(text: str) -> tuple[list[str], bool]:
    """Tokens of ``text``, typos corrected when it is English, and whether it is.

    The English-only rules (spelling, non-words, closed compounds) need English text: a
    German or Russian description would otherwise lose every word wordfreq's English list
    lacks. A text is English when lemminflect's English lexicon knows at least half of its
    words; a text of one or two words, when it is ASCII (a keyword list item).
    """
    tokens = split_tokens(text)
    words = [t for t in tokens if t.isalpha()]
    if len(words) < 3:
        english = all(w.isascii() for w in words)
    else:
        english = 2 * sum(1 for w in words if w.isascii() and (parts_of_speech(w) or w in STOPWORDS)) >= len(words)
    if english:
        tokens = _join_split_compounds([_context_typo(tokens, i) for i in range(len(tokens))])
    return tokens, english


def _context_typo(tokens: list[str], i: int) -> str:
    """Token ``i`` with its spelling corrected: an informal spelling ("thru"), a real word
    written for a commoner one in a context that gives it away ("on a shell": shelf,
    ``CONTEXT_TYPOS``), or a rare word one edit from a common one (``corrected_spelling``)."""
    word = INFORMAL_SPELLINGS.get(tokens[i], tokens[i])
    if word in CONTEXT_TYPOS:
        before, meant = CONTEXT_TYPOS[word]
        j = i - 1
        if j >= 0 and tokens[j] in DETERMINERS | {"his", "her", "its", "their", "my", "your", "our"}:
            j -= 1
        if j >= 0 and tokens[j] in before:
            return meant
    return corrected_spelling(word)


def _join_split_compounds(tokens: list[str]) -> list[str]:
    """Closed compounds written as two words joined ("a lap top" -> laptop, "a white pick up
    truck" -> pickup truck): read apart, the second half is often filler or a particle
    ("top", "up") and the first a wrong keyword ("lap", "pick"). Only in a noun's place
    (first in the text, or after a determiner, an adjective or a preposition other than
    "to"; SPLIT_COMPOUND_ZIPF), and never across a function word ("a head" stays apart)."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        first, second = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        prev = out[-1] if out else ""
        if (second and first.isalpha() and second.isalpha() and first not in FUNCTION_WORDS
                and first not in PREPOSITIONS and first not in DESCRIPTIVE and second not in FUNCTION_WORDS
                and prev != "to" and (not prev or prev in DETERMINERS or prev in PREPOSITIONS or prev in DESCRIPTIVE)
                and "NOUN" in parts_of_speech(first + second) and zipf(first + second) >= SPLIT_COMPOUND_ZIPF):
            out.append(first + second)
            i += 2
            continue
        out.append(first)
        i += 1
    return out
