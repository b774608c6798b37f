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

The word lists below are part of the behaviour and are documented in docs/mining.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import lemminflect
import wordfreq

__all__ = [
    "RULES_VERSION",
    "KeywordNormaliser",
    "describes_nothing",
    "parse_keyword_list",
    "STOPWORDS",
    "CAPTION_FILLER",
    "COLOURS",
    "SIZES",
    "GENERIC_ADJECTIVES",
    "NUMBER_WORDS",
]

#: The version of the extraction rules below. It is part of the mining fingerprint
#: (settings.mining_fingerprint): bump it with any change that alters keywords, so that a
#: scope is never a mix of keywords from old and new rules (the new fingerprint is a new
#: index scope, and every task is mined again; images from their cached descriptions).
RULES_VERSION = "2026-12-07.1"

# --------------------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DETERMINERS = _words(
    """a an the this that these those some any each every either neither no another
    other others such what which whose whatever all both several many much more most
    few fewer less least own same various certain enough my your his her its our their"""
)
PRONOUNS = _words(
    """i me mine myself you yours yourself yourselves he him himself she hers herself it
    itself we us ours ourselves they them theirs themselves someone somebody something
    anyone anybody anything everyone everybody everything nobody nothing none who whom
    whoever one ones"""
)
PREPOSITIONS = _words(
    """about above across after against along alongside amid amidst among amongst around
    as at atop before behind below beneath beside besides between beyond by despite down
    during except for from in inside into like near nearby next of off on onto opposite out
    outside over past per through throughout to toward towards under underneath unlike
    until up upon via with within without"""
)
CONJUNCTIONS = _words(
    """and or but nor so yet if then than because although though whereas whether since
    unless when where while why how once also too etc"""
)
AUXILIARIES = _words(
    """is are was were be been being am has have had having do does did doing done can
    could will would shall should may might must get gets got getting seem seems seemed
    seeming appear appears appeared appearing look looks looked looking s re ve ll d t m
    dont doesnt didnt isnt arent wasnt werent cant cannot wont wouldnt couldnt shouldnt"""
)
#: Verbs VLMs use to talk about the picture itself; never keywords.
CAPTION_VERBS = _words(
    """show shows showing shown showcase showcases showcasing depict depicts depicting
    depicted display displays displaying displayed feature features featuring featured
    capture captures capturing captured contain contains containing contained include
    includes including included provide provides providing create creates creating
    created add adds adding added make makes making made give gives giving take takes
    taking taken suggest suggests suggesting indicate indicates indicating see seen
    seeing let lets highlight highlights highlighting emphasize emphasizes emphasizing
    visible"""
)
#: Third-person verb forms common in captions that are also plural nouns in the lexicon
#: ("the image shows", "a man rides a horse"): read as verbs unless a determiner,
#: number or adjective comes right before them.
VERB_S_FORMS = _words(
    """stands sits holds rides walks lies hangs rests leans waits carries wears plays eats
    drinks drives flies crosses jumps reads smiles poses swims grazes travels moves sails
    runs looks overlooks surrounds fills watches talks works sleeps stares appears seems"""
)
#: Base forms of the same verbs: read as verbs right after a noun or pronoun
#: ("children play", "they stand"), as nouns elsewhere ("a play", "a fruit stand").
VERB_BASE_FORMS = _words(
    """stand sit hold ride walk lie hang rest lean wait carry wear play eat drink drive
    fly cross jump read smile pose swim graze travel move sail run overlook surround fill
    watch talk work sleep stare gather line"""
)
ADVERBS = _words(
    """not very quite rather really just only even still already almost nearly always
    never often sometimes usually together away again else however instead perhaps
    possibly probably likely maybe apparently clearly slightly partially partly mostly
    mainly especially overall well now currently there here thus therefore yes
    approximately roughly somewhat seemingly"""
)
#: Generic words of image descriptions ("The image shows ... In the background ...").
CAPTION_FILLER = _words(
    """image images picture pictures photo photos photograph photographs pic pics
    snapshot shot frame view views scene scenes scenery setting settings background
    backgrounds foreground side sides area areas part parts portion section middle center
    centre left right top bottom front back rear edge distance surroundings
    surrounding environment atmosphere ambiance ambience vibe mood feel sense appearance
    composition depiction element elements detail details moment focus angle perspective
    close-up closeup thing things object objects item items stuff kind kinds type types
    sort way plenty presence overview arrangement example instance style time day"""
)
#: Collective/quantity nouns dropped only right before "of" ("a pair of shoes" -> shoe,
#: but "a parking lot" keeps "lot" and "a couple" as a subject stays).
QUANTITY_BEFORE_OF = _words(
    """lot lots number variety group groups amount pair couple bunch set series collection assortment array range selection piece
    pieces handful row rows line lines stack stacks pile piles cluster bundle dozen
    dozens hundreds thousands millions crowd"""
)
NUMBER_WORDS = _words(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty
    seventy eighty ninety hundred hundreds thousand thousands million millions billion
    dozen dozens first second third fourth fifth sixth seventh eighth ninth tenth once
    twice half multiple"""
)
COLOURS = _words(
    """red orange yellow green blue purple violet pink brown black white gray grey beige
    tan maroon navy teal turquoise cyan magenta crimson scarlet khaki dark pale bright
    vivid pastel reddish bluish greenish yellowish brownish grayish greyish pinkish
    colorful colourful multicolored multicoloured multi-colored multi-coloured colored
    coloured blond blonde black-and-white monochrome silver gold golden bronze metallic"""
)
#: Colour words that are also things; kept when they head a noun phrase ("an orange").
COLOUR_ALSO_NOUN = _words("orange")
SIZES = _words(
    """big small large little tiny huge giant tall short long wide narrow thin thick
    massive enormous miniature medium high low deep shallow vast compact oversized slim
    skinny fat heavy"""
)
#: Descriptive adjectives that the lexicon also lists as nouns; not keywords on their
#: own and not kept as compound modifiers.
GENERIC_ADJECTIVES = _words(
    """old young new modern beautiful pretty nice lovely good great fine cute adorable
    happy sad busy quiet calm empty full open closed clean dirty wet dry hot cold warm
    cool sunny cloudy clear shiny different similar main single double whole entire
    additional possible close far upper lower central outdoor outdoors indoor indoors
    natural typical traditional casual formal simple various other extra real fresh
    average common rare usual unusual interesting vibrant lush serene peaceful"""
)
#: -ing words whose noun reading dominates even right after another noun.
NOUN_ING = _words(
    """building buildings painting paintings ceiling clothing railing railings awning
    wedding evening morning bedding sibling pudding icing frosting topping toppings
    dumpling stuffing lighting drawing drawings carving earring earrings housing living"""
)
#: Gerunds that make compounds ("dining table", "parking lot"). Other verb-only -ing
#: words after a determiner are read as participle adjectives ("a bustling street").
GERUND_MODIFIERS = _words(
    """dining parking swimming fishing sailing cutting washing walking running sleeping
    shopping baking frying changing ironing skating diving boxing riding climbing
    bowling landing waiting dressing drinking hiking camping skiing surfing racing
    training reading writing cooking mixing serving sewing vending rocking folding
    measuring chopping boarding snowboarding skateboarding cycling jogging sporting
    rolling"""
)
#: Plural-only nouns and plurals whose singular means something else.
PLURAL_KEEP = _words(
    """glasses sunglasses eyeglasses jeans pants trousers shorts scissors clothes goggles
    binoculars pliers tongs overalls pajamas pyjamas tights leggings news species series
    physics mathematics electronics athletics gymnastics headquarters stairs arms sports
    data people police cattle"""
)
#: Singular determiners: a noun phrase they open has a singular head, so an -s word
#: after its noun is a verb ("a woman points", "a dog sniffs"), not a plural head.
SINGULAR_OPENERS = _words("a an one each every another this that")
#: A closed-form compound at least this frequent in general English (wordfreq's Zipf
#: scale: 1 is once per 10^8 words) names one thing: "hot dog" (hotdog), "teddy bear",
#: "hair dryer", "bus stop". Other noun-noun compounds are read as their head noun.
CLOSED_COMPOUND_ZIPF = 1.0
#: A closed form this common is the usual spelling, so the pair is written closed:
#: "air plane" -> airplane, "cell phone" -> cellphone (one keyword for both spellings).
CLOSED_SPELLING_ZIPF = 3.0
#: Below this (once per 10^8 words) a word no lexicon lists is a non-word.
NON_WORD_ZIPF = 1.0
#: Spelling correction: words rarer than TYPO_MAX_ZIPF, replaced by a neighbour at least
#: TYPO_ZIPF_GAP commoner (2 = a hundred times).
TYPO_MAX_ZIPF = 2.5
TYPO_ZIPF_GAP = 2.0
#: An adjective's closed form must be commoner ("hotdog" 2.8), its adjective no age word.
CLOSED_DESCRIPTIVE_ZIPF = 2.5
AGE_WORDS = _words("old young new elderly aged")
LEMMA_OVERRIDES = {"leaves": "leaf"}
#: Informal spellings of function words that captions use ("flying thru the air"): read as
#: the word they stand for, which is then a stop word like it.
INFORMAL_SPELLINGS = {"thru": "through", "tho": "though", "altho": "although", "w": "with", "n": "and"}
#: Real words that captions write for a commoner word one letter away, recognisable by the
#: preposition before them: things stand "on a shelf"; "on a shell" is nearly always that
#: typo (a shell one stands on is rare in photos). word -> (prepositions, the word meant).
CONTEXT_TYPOS = {"shell": (frozenset({"on", "of"}), "shelf"), "shells": (frozenset({"on"}), "shelves")}
#: A closed compound written open ("lap top", "pick up truck", "side walk") is read closed
#: when the closed form is a noun this common in general English and the pair follows a
#: determiner, an adjective or a preposition other than "to" (a noun's place; "to pick up"
#: stays a verb and its particle).
SPLIT_COMPOUND_ZIPF = 3.0
#: Particles after a verb ("blow out", "pick up"): a word between "to" and one of them is a verb.
PARTICLES = _words("up out off down away back")

#: Everything that ends a noun phrase and is never a keyword.
STOPWORDS = (
    DETERMINERS
    | PRONOUNS
    | PREPOSITIONS
    | CONJUNCTIONS
    | AUXILIARIES
    | CAPTION_VERBS
    | ADVERBS
    | CAPTION_FILLER
    | NUMBER_WORDS
)
DESCRIPTIVE = COLOURS | SIZES | GENERIC_ADJECTIVES
#: Words a split compound never starts or ends with ("a head", "in side", "some one").
_FUNCTION_WORDS = DETERMINERS | PRONOUNS | CONJUNCTIONS | AUXILIARIES | ADVERBS | NUMBER_WORDS

# --------------------------------------------------------------------------------------
# Text that describes nothing
# --------------------------------------------------------------------------------------

#: Sentences about the description itself rather than about the picture: a refusal, a
#: missing or unreadable image, a shrug. Their words ("caption", "guess") name nothing in
#: the picture and, being rare, would make the task look novel.
_NOTHING = re.compile(
    r"""\b(?:
        (?:there\s+is|there's|here\s+is|is)\s+no\s+(?:image|picture|photo|photograph)
      | no\s+(?:image|picture|photo)\s+(?:here|to|was|is|available|provided|attached)
      | (?:image|picture|photo)\s+(?:is|was)\s+(?:not\s+(?:available|visible|loaded|shown|clear)|missing|blank|unavailable|too\s+(?:dark|blurry))
      | i\s*(?:am|'m)?\s*(?:sorry|unable|not\s+able|afraid)
      | i\s+(?:can\s*not|can't|cant|cannot|could\s*not|couldn't|do\s+not|don't|dont)\s+(?:see|tell|identify|describe|determine|make\s+out|provide|help|view|access|know)
      | (?:unable|not\s+possible|impossible|hard|difficult)\s+to\s+(?:see|tell|say|identify|describe|determine|make\s+out|caption)
      | (?:not\s+sure|unsure|no\s+idea|unclear)\s+(?:what|if|whether|how)
      | guess\s+is\s+as\s+good\s+as
      | as\s+an\s+ai | language\s+model | apologi[sz]e
    )""",
    re.X | re.I,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def describes_nothing(text: str) -> bool:
    """Whether a sentence is a refusal, a "no image" note or a shrug instead of a description."""
    return bool(_NOTHING.search(_fold(text).replace("’", "'")))


def says_nothing(text: str) -> bool:
    """Whether every sentence of ``text`` describes nothing (an empty text included)."""
    return not _described_sentences(text)


def _described_sentences(text: str) -> list[str]:
    """``text`` without its sentences that describe nothing."""
    return [s for s in _SENTENCE_END.split(text) if s.strip() and not describes_nothing(s)]


# --------------------------------------------------------------------------------------
# Parsing an LLM's keyword list
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Tokens and lemmas
# --------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*(?:-[^\W_]+(?:['’][^\W_]+)*)*|[^\w\s]|_")
_NUMERIC = re.compile(r"^\d+(?:st|nd|rd|th|s)?$")


def _fold(text: str) -> str:
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


def _tokens(text: str) -> list[str]:
    """Words and punctuation; a possessive "'s" becomes a separate boundary token."""
    out: list[str] = []
    for tok in _TOKEN.findall(_fold(text)):
        tok = tok.replace("’", "'")
        if tok.endswith("'s"):
            out.extend((tok[:-2], "'s"))
        elif "'" in tok:
            out.append(tok.replace("'", ""))
        else:
            out.append(tok)
    return [t for t in out if t]


def _read(text: str) -> tuple[list[str], bool]:
    """Tokens of ``text``, typos corrected when it is English, and whether it is.

    The English-only rules (spelling, non-words, closed compounds) need English text: a
    German or Russian description would otherwise lose every word wordfreq's English list
    lacks. A text is English when lemminflect's English lexicon knows at least half of its
    words; a text of one or two words, when it is ASCII (a keyword list item).
    """
    tokens = _tokens(text)
    words = [t for t in tokens if t.isalpha()]
    if len(words) < 3:
        english = all(w.isascii() for w in words)
    else:
        english = 2 * sum(1 for w in words if w.isascii() and (_pos(w) or w in STOPWORDS)) >= len(words)
    if english:
        tokens = _join_split_compounds([_context_typo(tokens, i) for i in range(len(tokens))])
    return tokens, english


def _context_typo(tokens: list[str], i: int) -> str:
    """Token ``i`` with its spelling corrected: an informal spelling ("thru"), a real word
    written for a commoner one in a context that gives it away ("on a shell": shelf,
    ``CONTEXT_TYPOS``), or a rare word one edit from a common one (``_spelling``)."""
    word = INFORMAL_SPELLINGS.get(tokens[i], tokens[i])
    if word in CONTEXT_TYPOS:
        before, meant = CONTEXT_TYPOS[word]
        j = i - 1
        if j >= 0 and tokens[j] in DETERMINERS | {"his", "her", "its", "their", "my", "your", "our"}:
            j -= 1
        if j >= 0 and tokens[j] in before:
            return meant
    return _spelling(word)


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
        if (second and first.isalpha() and second.isalpha() and first not in _FUNCTION_WORDS
                and first not in PREPOSITIONS and first not in DESCRIPTIVE and second not in _FUNCTION_WORDS
                and prev != "to" and (not prev or prev in DETERMINERS or prev in PREPOSITIONS or prev in DESCRIPTIVE)
                and "NOUN" in _pos(first + second) and _zipf(first + second) >= SPLIT_COMPOUND_ZIPF):
            out.append(first + second)
            i += 2
            continue
        out.append(first)
        i += 1
    return out


def _is_word(tok: str) -> bool:
    return tok[0].isalnum()


def _is_numeric(tok: str) -> bool:
    return bool(_NUMERIC.match(tok)) or tok.replace("-", "").isdigit()


@lru_cache(maxsize=65536)
def _pos(word: str) -> dict[str, tuple[str, ...]]:
    return lemminflect.getAllLemmas(word)


@lru_cache(maxsize=1)
def _english() -> dict[str, float]:
    """wordfreq's English word frequencies (bundled in its wheel: no download), loaded once."""
    return wordfreq.get_frequency_dict("en")


def _zipf(word: str) -> float:
    """How common ``word`` is in general English: log10 of its count per 10^9 words (0 = never seen)."""
    freq = _english().get(word)
    return math.log10(freq) + 9.0 if freq else 0.0


def _known(word: str) -> bool:
    """A word the lemma lexicon lists or general English uses at least once per 10^8 words
    (``NON_WORD_ZIPF``); anything else is a typo or a non-word ("ooking", "biilboard")."""
    return bool(_pos(word)) or _zipf(word) >= NON_WORD_ZIPF


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=65536)
def _spelling(word: str) -> str:
    """``word``, or the word it misspells: one edit away and ``TYPO_ZIPF_GAP`` commoner.

    One deleted, inserted, replaced or swapped letter (Norvig's edit distance 1) turns
    "suitecases" into "suitcases", "biilboard" into "billboard", "sandwhich" into
    "sandwich". Only rare words (below ``TYPO_MAX_ZIPF``) of five letters or more are
    looked at, and only a neighbour a hundred times commoner replaces them, so a rare
    real word ("biplane", "parasail") is left alone.
    """
    if len(word) < 5 or not word.isalpha() or not word.isascii():
        return word
    own = _zipf(word)
    if own >= TYPO_MAX_ZIPF:
        return word
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    candidates = {a + b[1:] for a, b in splits if b}
    candidates |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    candidates |= {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    candidates |= {a + c + b for a, b in splits for c in _LETTERS}
    candidates.discard(word)
    freq = _english()
    best = max(candidates, key=lambda c: (freq.get(c, 0.0), c))
    return best if _zipf(best) >= own + TYPO_ZIPF_GAP else word


@lru_cache(maxsize=65536)
def _noun_lemma(word: str) -> str:
    """Noun lemma of one word; hyphenated words change only their last part."""
    if "-" in word:
        head, _, last = word.rpartition("-")
        return f"{head}-{_noun_lemma(last)}" if last else word
    if word in PLURAL_KEEP:
        return word
    if word in LEMMA_OVERRIDES:
        return LEMMA_OVERRIDES[word]
    lemmas = _pos(word).get("NOUN") or _pos(word).get("PROPN")
    if lemmas:
        return word if word in lemmas else lemmas[0]
    if _pos(word):
        return word  # known, but not as a noun ("surfing"): keep the surface form
    if len(word) == 3 and word.endswith("s") and _zipf(word[:-1]) >= CLOSED_SPELLING_ZIPF:
        return word[:-1]  # the plural of an abbreviation: "cds", "tvs", "pcs"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        oov = lemminflect.getLemma(word, upos="NOUN", lemmatize_oov=True)
        if oov and _known(oov[0]):  # a guessed singular nobody writes is no lemma ("suitecasis")
            return oov[0]
    return word


def _junk(word: str) -> bool:
    """Never a keyword on its own: stop word, number, single letter."""
    return len(word) < 2 or word in STOPWORDS or _is_numeric(word)


# --------------------------------------------------------------------------------------
# The chunker: a tiny lexicon-driven tagger
# --------------------------------------------------------------------------------------

NOUN, MOD, DESC, DET, BOUNDARY, NOMINAL_STOP, VERB, AUX, PREP = range(9)
#: Words that open a verb's object ("sniffs the food", "swings his bat"); not "that",
#: "which", "one", which also start a relative clause or stand for the noun.
_OBJECT_START = _words(
    """a an the his her its their my your our some several many both another him them
    me us"""
) | (NUMBER_WORDS - {"one", "once", "first", "second", "half"})
_NOUN_CONTEXT = {DET, MOD, DESC}  # after these an ambiguous word reads as a noun


@dataclass
class _Tok:
    word: str
    tag: int


def _tag_sequence(words: list[str], english: bool = True) -> list[_Tok]:
    """Assign each token a coarse tag from the lexicon and its neighbours.

    Only the left neighbour's tag and the next word are used: enough to tell "a man
    riding a horse" (verb after a noun) from "a riding school" (noun after a determiner).
    """
    out: list[_Tok] = []
    prev = BOUNDARY
    opener = ""  # the determiner that opened the current noun phrase, if any
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        tag = _tag_one(w, prev, words[i - 1] if i else "", nxt, opener, english)
        out.append(_Tok(w, tag))
        if tag == DET:
            opener = w
        elif tag not in (NOUN, MOD, DESC):
            opener = ""
        prev = tag
    return out


def _tag_one(w: str, prev: int, prev_word: str, nxt: str, opener: str = "", english: bool = True) -> int:
    if not _is_word(w):
        return BOUNDARY
    if _is_numeric(w) or w in NUMBER_WORDS or w in DETERMINERS:
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
    return bool(word) and _is_word(word) and "NOUN" in _pos(word)


def _tag_hyphenated(w: str) -> int:
    last = w.rsplit("-", 1)[-1]
    if not last or last in DESCRIPTIVE or last in NUMBER_WORDS or _is_numeric(last):
        return DESC if last in DESCRIPTIVE else BOUNDARY
    if last.endswith(("ed", "ing")) and "VERB" in _pos(last):
        return DESC  # "snow-covered", "long-haired", "good-looking"
    return NOUN


def _tag_open_class(w: str, prev: int, prev_word: str, nxt: str = "", opener: str = "",
                    english: bool = True) -> int:
    pos = _pos(w)
    if not pos:
        if not english:
            return DESC if w.endswith("ly") else NOUN  # out of the English lexicon: most likely a noun
        if not _known(w):
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
    return word in ALWAYS_PLURAL or _noun_lemma(word) != word


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


def _chunks(words: list[str], english: bool = True) -> list[list[_Tok]]:
    """Maximal runs of noun-phrase material (nouns, modifiers, descriptive words)."""
    chunks: list[list[_Tok]] = []
    current: list[_Tok] = []
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


def _phrases(chunk: list[_Tok]) -> list[str]:
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
    head = _noun_lemma(chunk[end - 1].word)
    out: list[str] = []
    i = 0
    while i < end - 1:
        first, second = chunk[i], chunk[i + 1]
        last = i + 1 == end - 1
        second_word = head if last else _noun_lemma(second.word)
        if second.tag == NOUN and _name_pair(first, second_word):
            closed = first.word + second_word
            out.append(closed if _zipf(closed) >= CLOSED_SPELLING_ZIPF else f"{first.word} {second_word}")
            if last:
                return out
            i += 2
            continue
        i += 1
    out.append(head)
    return out


def _name_pair(first: _Tok, second: str) -> bool:
    if _junk(first.word) or "-" in first.word or "-" in second:
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
        return _zipf(first + _noun_lemma(second)) >= CLOSED_COMPOUND_ZIPF
    if first in COLOURS or first in SIZES or first in AGE_WORDS:
        return False
    return _zipf(first + _noun_lemma(second)) >= CLOSED_DESCRIPTIVE_ZIPF


# --------------------------------------------------------------------------------------
# The public normaliser
# --------------------------------------------------------------------------------------


class KeywordNormaliser:
    """Canonical keywords from LLM lists or free text; deterministic and offline."""

    def __init__(
        self, synonyms: Mapping[str, str] | None = None, extra_stopwords: Iterable[str] = ()
    ) -> None:
        self._extra_stop = frozenset(_fold(w).strip() for w in extra_stopwords if w.strip())
        self._extra_stop |= frozenset(_noun_lemma(w) for w in self._extra_stop)
        self._synonyms: dict[str, str] = {}
        if synonyms:
            plain = KeywordNormaliser(extra_stopwords=self._extra_stop)
            for variant, canonical in synonyms.items():
                key = plain._base(variant, strip_descriptive=False) or _fold(variant).strip()
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
        words = [w for w in _read(phrase)[0] if _is_word(w) and not self._dropped(w)]
        if strip_descriptive:
            keep_last = bool(words) and words[-1] in COLOUR_ALSO_NOUN
            words = [
                w
                for i, w in enumerate(words)
                if not _is_descriptive(w) or (keep_last and i == len(words) - 1)
            ]
        if not words:
            return None
        words[-1] = _noun_lemma(words[-1])
        if self._dropped(words[-1]):
            return None
        return " ".join(words)

    def _dropped(self, word: str) -> bool:
        return _junk(word) or word in self._extra_stop

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
            chunks = [c for c in _chunks(*_read(item)) if any(t.tag == NOUN for t in c)]
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
        for sentence in _described_sentences(text):
            out.extend(self._from_chunks(_chunks(*_read(sentence))))
        return list(dict.fromkeys(out))

    def _from_chunks(self, chunks: list[list[_Tok]]) -> list[str]:
        out: list[str] = []
        for chunk in chunks:
            for phrase in _phrases(chunk):
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
