"""The text project of the end-to-end tests: common captions with planted rare ones."""

from __future__ import annotations

import random

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="common"/><Choice value="rare"/></Choices>
  <TextArea name="vlmine" toName="text" maxSubmissions="1"/>
</View>"""

SUBJECTS = ["cat", "dog", "car", "bus", "man", "woman", "bicycle", "truck"]
PLACES = ["street", "park", "road", "sofa", "kitchen", "beach"]
PLANTED = [
    "a giraffe wearing a tuxedo",
    "a hovercraft beside a glacier",
    "an astronaut holding a trombone",
    "a flamingo inside a submarine",
    "a camel riding an escalator",
]


def corpus(n_common: int, seed: int = 7) -> tuple[list[str], set[int]]:
    rng = random.Random(seed)
    texts = [f"a {rng.choice(SUBJECTS)} on the {rng.choice(PLACES)}" for _ in range(n_common)]
    slots = sorted(rng.sample(range(n_common), len(PLANTED)))
    for offset, (slot, text) in enumerate(zip(slots, PLANTED)):
        texts.insert(slot + offset, text)
    planted = {i for i, t in enumerate(texts) if t in PLANTED}
    return texts, planted
