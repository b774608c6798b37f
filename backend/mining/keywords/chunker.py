"""The chunker: a tiny lexicon-driven tagger that finds the names in a sentence.

Each token gets a coarse tag (noun, modifier, descriptive word, determiner...) from the
lexicon and its neighbours; maximal runs of noun-phrase material are chunks, and each chunk
gives its head noun and any two-word name inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .lexicon import is_junk, is_known_word, is_numeric, is_word, noun_lemma, parts_of_speech, zipf
from .word_lists import (
    ADVERBS,
    AGE_WORDS,
    AUXILIARIES,
    CAPTION_FILLER,
    CAPTION_VERBS,
    CLOSED_COMPOUND_ZIPF,
    CLOSED_DESCRIPTIVE_ZIPF,
    CLOSED_SPELLING_ZIPF,
    COLOUR_ALSO_NOUN,
    COLOURS,
    CONJUNCTIONS,
    DESCRIPTIVE,
    DETERMINERS,
    GERUND_MODIFIERS,
    NOUN_ING,
    NUMBER_WORDS,
    PARTICLES,
    PREPOSITIONS,
    PRONOUNS,
    QUANTITY_BEFORE_OF,
    SINGULAR_OPENERS,
    SIZES,
    VERB_BASE_FORMS,
    VERB_S_FORMS,
    word_set,
)

#: The coarse tags: a noun, a compound modifier, a descriptive word, a determiner or number,
#: a phrase boundary, a word in a noun's place that is never a keyword ("it", "image"), a
#: verb, an auxiliary, a preposition.
NOUN, MOD, DESC, DET, BOUNDARY, NOMINAL_STOP, VERB, AUX, PREP = range(9)
#: Words that open a verb's object ("sniffs the food", "swings his bat"); not "that",
#: "which", "one", which also start a relative clause or stand for the noun.
_OBJECT_START = word_set(
    """a an the his her its their my your our some several many both another him them
    me us"""
) | (NUMBER_WORDS - {"one", "once", "first", "second", "half"})
_NOUN_CONTEXT = {DET, MOD, DESC}  # after these an ambiguous word reads as a noun


@dataclass
class Token:
    """One token of a sentence and its coarse tag."""

    word: str
    tag: int


def _tag_sequence(words: list[str], english: bool = True) -> list[Token]:
    """Assign each token a coarse tag from the lexicon and its neighbours.

    Only the left neighbour's tag and the next word are used: enough to tell "a man
    riding a horse" (verb after a noun) from "a riding school" (noun after a determiner).
    """
    out: list[Token] = []
    prev = BOUNDARY
    opener = ""  # the determiner that opened the current noun phrase, if any
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        tag = _tag_one(w, prev, words[i - 1] if i else "", nxt, opener, english)
        out.append(Token(w, tag))
        if tag == DET:
            opener = w
        elif tag not in (NOUN, MOD, DESC):
            opener = ""
        prev = tag
    return out


def _tag_one(w: str, prev: int, prev_word: str, nxt: str, opener: str = "", english: bool = True) -> int:
    if not is_word(w):
        return BOUNDARY
    if is_numeric(w) or w in NUMBER_WORDS or w in DETERMINERS:
        return DET
    if w in AUXILIARIES:
        return AUX
    if w in PRONOUNS:
        return NOMINAL_STOP
    if w in PREPOSITIONS:
        return PREP
    if w in CONJUNCTIONS or w in ADVERBS:
        return BOUNDARY
    if w in CAPTION_VERBS:
        return VERB
    if w in CAPTION_FILLER or (w in QUANTITY_BEFORE_OF and nxt == "of"):
        return NOMINAL_STOP
    if w in DESCRIPTIVE:
        if w in COLOUR_ALSO_NOUN and prev in {DET} and not _looks_nominal(nxt):
            return NOUN
        return DESC
    if "-" in w:
        return _tag_hyphenated(w)
    return _tag_open_class(w, prev, prev_word, nxt, opener, english)


def _looks_nominal(word: str) -> bool:
    return bool(word) and is_word(word) and "NOUN" in parts_of_speech(word)


def _tag_hyphenated(w: str) -> int:
    last = w.rsplit("-", 1)[-1]
    if not last or last in DESCRIPTIVE or last in NUMBER_WORDS or is_numeric(last):
        return DESC if last in DESCRIPTIVE else BOUNDARY
    if last.endswith(("ed", "ing")) and "VERB" in parts_of_speech(last):
        return DESC  # "snow-covered", "long-haired", "good-looking"
    return NOUN


def _tag_open_class(w: str, prev: int, prev_word: str, nxt: str = "", opener: str = "",
                    english: bool = True) -> int:
    pos = parts_of_speech(w)
    if not pos:
        if not english:
            return DESC if w.endswith("ly") else NOUN  # out of the English lexicon: most likely a noun
        if not is_known_word(w):
            return BOUNDARY  # a typo or non-word ("biilboard", "suitecases"): never a keyword
        if w.endswith("ly"):
            return DESC
        if w.endswith(("ed", "ing")):
            return VERB  # a verb form the lexicon lacks, often misspelt ("donuts layed")
        return NOUN  # out of lexicon but a real word ("frisbee", "selfie"): most likely a noun
    verb_lemmas = pos.get("VERB", ())
    inflected_verb = bool(verb_lemmas) and w not in verb_lemmas
    if w.endswith("ing") and inflected_verb:
        return _tag_ing(w, prev, "NOUN" in pos, nxt)
    if prev_word == "to" and w in verb_lemmas and (nxt in _OBJECT_START or nxt in PARTICLES):
        return VERB  # an infinitive with its object or particle: "to serve the ball", "to blow out"
    if prev == AUX and "ADJ" in pos:
        return DESC  # predicate adjective: "the water is clear"
    if w in VERB_S_FORMS and prev not in _NOUN_CONTEXT:
        return VERB
    if w in VERB_BASE_FORMS and _plural_subject(prev, prev_word):
        return VERB
    if prev == NOUN and verb_lemmas and _verb_after_noun(w, verb_lemmas, prev_word, nxt, opener):
        return VERB
    if "NOUN" in pos or "PROPN" in pos:
        return MOD if (w.endswith("ed") and inflected_verb) else NOUN
    if "ADJ" in pos:
        return DESC
    if verb_lemmas:
        return VERB
    return BOUNDARY


def _verb_after_noun(w: str, verb_lemmas: tuple[str, ...], prev_word: str, nxt: str, opener: str) -> bool:
    """Whether a verb-capable word right after a noun is that noun's verb, by agreement.

    * a base form after a plural noun: "two bears fight", "zebras stay", "dogs chase a ball";
    * an -s form after a singular noun whose phrase opened with a singular determiner,
      where a plural head could not agree: "a woman points", "a dog sniffs food";
    * either form right before an object ("a man change a tire", "the player swings his bat").

    Anything else keeps its noun reading, so compounds stay ("the car keys", "a dog bed").
    """
    before_object = nxt in _OBJECT_START
    if w in verb_lemmas:
        return _plural_noun(prev_word) or before_object
    if not w.endswith("s") or _plural_noun(prev_word):
        return False
    return opener in SINGULAR_OPENERS or before_object


#: Plural nouns whose noun lemma is themselves.
ALWAYS_PLURAL = frozenset({"people", "cattle", "police"})


def _plural_noun(word: str) -> bool:
    """A plural noun: its noun lemma differs ("bears", "children", "men", "mice"; words of
    PLURAL_KEEP are their own lemma), or it is plural by itself ("people")."""
    return word in ALWAYS_PLURAL or noun_lemma(word) != word


def _tag_ing(w: str, prev: int, noun_capable: bool, nxt: str = "") -> int:
    """-ing forms: noun, compound modifier, participle adjective or verb by context. Right
    before a preposition an -ing form is a verb even after a determiner ("the other sitting
    on the runway"), unless it is a well-known noun ("a building on the corner")."""
    if w in NOUN_ING:
        return NOUN
    if nxt in PREPOSITIONS and nxt != "of" and w not in GERUND_MODIFIERS:
        return VERB
    if prev in _NOUN_CONTEXT or prev == PREP:
        if w in GERUND_MODIFIERS or noun_capable:
            return NOUN
        return DESC if prev != PREP else VERB
    return VERB


def _plural_subject(prev: int, prev_word: str) -> bool:
    """A plural noun or a pronoun right before a base verb form ("children play")."""
    if prev == NOMINAL_STOP:
        return prev_word in PRONOUNS
    if prev != NOUN:
        return False
    return _plural_noun(prev_word)


def noun_phrase_chunks(words: list[str], english: bool = True) -> list[list[Token]]:
    """Maximal runs of noun-phrase material (nouns, modifiers, descriptive words)."""
    chunks: list[list[Token]] = []
    current: list[Token] = []
    for tok in _tag_sequence(words, english):
        if tok.tag in (NOUN, MOD, DESC):
            current.append(tok)
            continue
        if current:
            chunks.append(current)
        current = []
    if current:
        chunks.append(current)
    return chunks


def chunk_names(chunk: list[Token]) -> list[str]:
    """The names in a chunk: its head noun, and any two-word name inside it.

    A noun phrase names one thing, so it gives one keyword for its head ("airport runway"
    -> runway; a compound and its head are never both counted). Two words are kept as one
    name when they are one in English: a gerund and a noun ("parking meter", "dining
    table"), or a pair whose closed form general English uses ("hot dog" as hotdog,
    "teddy bear", "hair dryer", "bus stop"; see ``_closed_compound``). A name before the
    head is kept beside it ("hot dog cart" -> hot dog, cart).
    """
    end = len(chunk)
    while end and chunk[end - 1].tag != NOUN:
        end -= 1  # trailing adjectives are not heads
    if not end:
        return []
    head = noun_lemma(chunk[end - 1].word)
    out: list[str] = []
    i = 0
    while i < end - 1:
        first, second = chunk[i], chunk[i + 1]
        last = i + 1 == end - 1
        second_word = head if last else noun_lemma(second.word)
        if second.tag == NOUN and _name_pair(first, second_word):
            closed = first.word + second_word
            out.append(closed if zipf(closed) >= CLOSED_SPELLING_ZIPF else f"{first.word} {second_word}")
            if last:
                return out
            i += 2
            continue
        i += 1
    out.append(head)
    return out


def _name_pair(first: Token, second: str) -> bool:
    if is_junk(first.word) or "-" in first.word or "-" in second:
        return False
    if first.tag == NOUN and first.word in GERUND_MODIFIERS:
        return True
    return _closed_compound(first.word, second, descriptive=first.tag == DESC)


@lru_cache(maxsize=65536)
def _closed_compound(first: str, second: str, descriptive: bool = False) -> bool:
    """Whether general English writes ``first second`` as one word often enough to be a name.

    An adjective needs a commoner closed form and may not be a colour, size or age, whose
    closed forms are mostly surnames or places ("oldman", "whitehouse").
    """
    if not descriptive:
        return zipf(first + noun_lemma(second)) >= CLOSED_COMPOUND_ZIPF
    if first in COLOURS or first in SIZES or first in AGE_WORDS:
        return False
    return zipf(first + noun_lemma(second)) >= CLOSED_DESCRIPTIVE_ZIPF
