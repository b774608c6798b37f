"""Street scenes with detector boxes, for the object-mining tests and benchmarks.

Every scene is the same gray street with three blue cars; a *rare* scene also holds a red
patch (the rare object, "a horse trailer"). The patch is small, so the whole image stays
mostly gray and a whole-image description is the same street for every scene: only a
description of each detector box on its own tells the rare scenes apart. The
OpenAI-compatible stand-in (``tests/support/fake_openai.py``) describes an image or a crop
by its dominant colour, with ``STREET_DESCRIPTIONS``.

The boxes are what a detector would have stored in Label Studio: ``rectanglelabels``
results in percent of the image, with ``original_width``/``original_height`` and a score
per region, as a prediction of ``DETECTOR_VERSION`` (another model than this backend).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

from tests.support.fake_openai import COLOURS

WIDTH, HEIGHT = 640, 480
DETECTOR_VERSION = "yolo-test"

#: a detection project: the detector's labels on the image, and this backend's explanation box
OBJECT_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="car"/><Label value="trailer"/>
  </RectangleLabels>
  <TextArea name="vlmine" toName="image" maxSubmissions="1"/>
</View>"""

#: what the stand-in VLM answers, by the dominant colour of what it is shown
STREET_DESCRIPTIONS = {
    "gray": "a street with parked cars",
    "blue": "a blue car",
    "red": "a horse trailer with a rusty hitch",
}

CAR_SIZE = (64, 32)      # pixels
PATCH_SIZE = (96, 72)    # the rare object, pixels
CAR_SCORE = 0.9
PATCH_SCORE = 0.9        # as sure as of the cars: only the description makes the patch rare


@dataclass
class Box:
    """A detector box in pixels, and what the detector said of it."""

    left: int
    top: int
    width: int
    height: int
    label: str
    score: float

    def percent(self) -> dict[str, float]:
        return {"x": 100.0 * self.left / WIDTH, "y": 100.0 * self.top / HEIGHT,
                "width": 100.0 * self.width / WIDTH, "height": 100.0 * self.height / HEIGHT}


@dataclass
class Scene:
    """One task's image (PNG bytes) and its detector boxes."""

    png: bytes
    boxes: list[Box] = field(default_factory=list)

    @property
    def patch(self) -> Box | None:
        return next((b for b in self.boxes if b.label == "trailer"), None)


def street_scene(seed: int, rare: bool) -> Scene:
    """A gray street, three blue cars along the bottom, and in a rare scene a red patch in
    the upper half. ``seed`` moves the cars and the patch, and makes the bytes unique."""
    rng = random.Random(seed)
    image = Image.new("RGB", (WIDTH, HEIGHT), COLOURS["gray"])
    draw = ImageDraw.Draw(image)
    boxes: list[Box] = []
    w, h = CAR_SIZE
    slots = rng.sample(range(6), 3)  # six places along the road, far enough apart for the crop margin
    for slot in sorted(slots):
        left = 20 + slot * 104 + rng.randrange(8)
        top = 330 + rng.randrange(60)
        draw.rectangle([left, top, left + w - 1, top + h - 1], fill=COLOURS["blue"])
        boxes.append(Box(left, top, w, h, "car", CAR_SCORE))
    if rare:
        w, h = PATCH_SIZE
        left = 40 + rng.randrange(WIDTH - w - 80)
        top = 60 + rng.randrange(120)
        draw.rectangle([left, top, left + w - 1, top + h - 1], fill=COLOURS["red"])
        boxes.append(Box(left, top, w, h, "trailer", PATCH_SCORE))
    image.putpixel((rng.randrange(WIDTH), rng.randrange(20)), (rng.randrange(256), 0, 0))  # unique bytes
    out = io.BytesIO()
    image.save(out, format="PNG")
    return Scene(out.getvalue(), boxes)


def region(box: Box, index: int, to_name: str = "image", from_name: str = "label") -> dict[str, Any]:
    """A ``rectanglelabels`` result as a detector's ML backend writes it."""
    return {"id": f"det{index}", "from_name": from_name, "to_name": to_name, "type": "rectanglelabels",
            "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
            "value": {**box.percent(), "rotation": 0, "rectanglelabels": [box.label]},
            "score": box.score}


def out_of_bounds_region(index: int) -> dict[str, Any]:
    """A region that starts past the image's right border: no object, a reason in /metrics."""
    return {"id": f"det{index}", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
            "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
            "value": {"x": 130.0, "y": 10.0, "width": 10.0, "height": 10.0, "rotation": 0,
                      "rectanglelabels": ["car"]},
            "score": CAR_SCORE}


def detector_prediction(scene: Scene, broken: bool = False,
                        model_version: str = DETECTOR_VERSION) -> dict[str, Any]:
    """The detector's prediction of a scene (``broken``: one more box out of bounds)."""
    result = [region(b, i) for i, b in enumerate(scene.boxes)]
    if broken:
        result.append(out_of_bounds_region(len(result)))
    return {"model_version": model_version, "score": min(b.score for b in scene.boxes), "result": result}
