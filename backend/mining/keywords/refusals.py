"""Text that describes nothing: a refusal, a "no image" note or a shrug instead of a description.

Such sentences are left out before keywords are taken, so they give no keywords and no
novelty (the pipeline also uses ``says_nothing`` to fail a task whose description is one).
"""

from __future__ import annotations

import re

from .tokens import fold_text

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
    return bool(_NOTHING.search(fold_text(text).replace("’", "'")))


def says_nothing(text: str) -> bool:
    """Whether every sentence of ``text`` describes nothing (an empty text included)."""
    return not described_sentences(text)


def described_sentences(text: str) -> list[str]:
    """``text`` without its sentences that describe nothing."""
    return [s for s in _SENTENCE_END.split(text) if s.strip() and not describes_nothing(s)]
