"""Default prompts. Each can be replaced through a setting; keep the keyword ones asking
for JSON, because the keyword code parses a JSON list first and only then falls back to
splitting plain text."""

from __future__ import annotations

# Asks for coverage (every object) and for the long tail (anything unusual): a rare
# object that the model leaves out of its description can never become a rare keyword.
DEFAULT_DESCRIBE_PROMPT = (
    "Describe this image in detail. List every object you can see, each with its "
    "attributes (colour, material, size, state, position), and mention anything "
    "unusual, rare, damaged or out of place. Be concrete and factual."
)

# Text-only pass over a description. ``{description}`` is the only placeholder; the
# template holds no other braces, so str.format works, but prefer render_keyword_prompt,
# which also copes with user templates that contain JSON examples in braces.
DEFAULT_KEYWORD_PROMPT = (
    "Here is a description of an image:\n"
    "{description}\n\n"
    "Turn it into keywords: a JSON list of short lowercase noun phrases (one to three "
    "words each) naming the objects, scenes and unusual things described, for example "
    '["red bus", "dog", "flooded street"]. Leave out words like image, picture and '
    "background. Answer with the JSON list only."
)

# One pass: the VLM looks at the image and answers with keywords directly (KEYWORD_MODE=direct).
DEFAULT_DIRECT_PROMPT = (
    "List every object, scene element and anything unusual in this image as a JSON list "
    "of short lowercase noun phrases (one to three words each), for example "
    '["red bus", "dog", "flooded street"]. Answer with the JSON list only.'
)

DESCRIPTION_PLACEHOLDER = "{description}"


def render_keyword_prompt(description: str, template: str = DEFAULT_KEYWORD_PROMPT) -> str:
    """Put ``description`` into ``template`` at ``{description}`` (appended if absent).

    Plain replacement, not ``str.format``: user templates may contain JSON examples whose
    braces ``format`` would choke on.
    """
    if DESCRIPTION_PLACEHOLDER in template:
        return template.replace(DESCRIPTION_PLACEHOLDER, description)
    return f"{template}\n\n{description}"

# Object mining (backend/objects): the image is a crop around one detected object. The
# detector's label is left out on purpose: one prompt for every crop keeps a job's crops
# in one batched call, and the VLM names what it sees rather than echoing the detector.
DEFAULT_OBJECT_PROMPT = (
    "This image is a crop around one object. Say what the object is, describe its "
    "attributes (colour, material, size, state, what it carries or is attached to) and "
    "mention anything unusual, rare, damaged or out of place about it. Be concrete and factual."
)

# The same, answered as keywords directly (KEYWORD_MODE=direct).
DEFAULT_OBJECT_DIRECT_PROMPT = (
    "This image is a crop around one object. Name the object, its attributes and anything "
    "unusual about it as a JSON list of short lowercase noun phrases (one to three words "
    'each), for example ["horse trailer", "rusty hitch"]. Answer with the JSON list only.'
)
