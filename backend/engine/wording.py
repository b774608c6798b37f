"""How the explanations shown to annotators word their numbers.

An explanation is read by an annotator in the middle of labeling, with no manual at hand,
so every number in it says what it counts: ``microwave: 2 tasks`` rather than
``microwave (2)``. The keyword line of a task and the keyword list of its rarest object
are both worded here; *which* keywords they list is decided elsewhere (the engine's
keyword order and the object scope).
"""

from __future__ import annotations

from typing import Mapping, Sequence

KEYWORDS_PREFIX = "Rarest keywords: "
OBJECT_PREFIX = "Rarest object: "
DESCRIPTION_PREFIX = "Description: "
#: Every line the backend writes into its TextArea starts with one of these, so a line that
#: starts with none of them is an annotator's (the clean-up of annotations skips it unread).
LINE_PREFIXES = (KEYWORDS_PREFIX, OBJECT_PREFIX, DESCRIPTION_PREFIX)


def description_line(description: str) -> str:
    """``Description: a tram on a bridge``: what the VLM said about the image."""
    return DESCRIPTION_PREFIX + description


def may_be_written(line: str) -> bool:
    """Whether a TextArea line could be one the backend wrote (it starts like one)."""
    return line.strip().startswith(tuple(p.strip() for p in LINE_PREFIXES))


def counted(n: int, unit: str) -> str:
    """``1 task``, ``2 tasks``: a count with its unit, singular for one."""
    return f"{n:,} {unit}" if n == 1 else f"{n:,} {unit}s"


def keywords_line(keywords: Sequence[str], df: Mapping[str, int]) -> str:
    """``Rarest keywords: microwave: 2 tasks, bicycle: 4 tasks`` (``df``: how many tasks
    hold each keyword)."""
    return KEYWORDS_PREFIX + ", ".join(f"{k}: {counted(int(df.get(k, 0)), 'task')}" for k in keywords)


def object_keywords(words: Sequence[tuple[str, int]], objects: int, scenes: int) -> str:
    """An object's keywords with how many documents of the object scope hold each:
    ``hitch: 4 of 124 objects, trailer: 9 of them``; when whole images are counted beside the
    objects (OBJECT_WITH_SCENE), ``hitch: 4 of 124 objects and 40 scenes``. The first entry
    names the whole it is counted in, the others refer back to it."""
    among = counted(objects, "object") + (f" and {counted(scenes, 'scene')}" if scenes else "")
    return ", ".join(f"{k}: {n:,} of {among}" if i == 0 else f"{k}: {n:,} of them"
                     for i, (k, n) in enumerate(words))
