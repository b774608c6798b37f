"""Street scenes with detector boxes, for the object-mining tests and benchmarks.

Every scene is the same gray street with three blue cars; a *rare* scene also holds a red
patch (the rare object, "a horse trailer"). The patch is small, so the whole image stays
mostly gray and a whole-image description is the same street for every scene: only a
description of each detector box on its own tells the rare scenes apart. The
OpenAI-compatible stand-in (``tests/support/fake_openai.py``) describes an image or a crop
by its dominant colour, with ``STREET_DESCRIPTIONS``.

Scenes can also differ (``kind``, ``extra``): a band of colour along the top of the image
marks the kind of street (a park road, a desert road, snow, night) and a square in its
right corner one more thing in view (a tree, a sign, a person), so that whole-image
descriptions differ from kind to kind and a little from image to image, as real ones do.
:func:`describe_scene` reads both from a whole image (the stand-in asks it first) and
leaves crops, which never reach the band, to the colour rule.

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

from tests.support.fake_openai import COLOURS, dominant_colour

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

#: kinds of scene: the colour of the band along the top, and how the whole image is described
SCENE_KINDS = {
    "street": (None, "a street with parked cars"),
    "park": ("green", "a road beside a park with parked cars"),
    "desert": ("yellow", "a road through a desert with parked cars"),
    "snow": ("white", "a street with parked cars in the snow"),
    "night": ("black", "a street at night with parked cars"),
}
#: one more thing in view: the colour of the square in the band's right corner, and its words
SCENE_EXTRAS = {"tree": ("orange", "and a tree"), "sign": ("purple", "and a sign"),
                "person": ("red", "and a person")}
BAND_HEIGHT = 40  # pixels; detector boxes and their crops stay below it
MARK_SIZE = 24

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


def street_scene(seed: int, rare: bool, kind: str = "street", extra: str | None = None) -> Scene:
    """A gray street, three blue cars along the bottom, and in a rare scene a red patch in
    the upper half. ``seed`` moves the cars and the patch, and makes the bytes unique.
    ``kind`` (SCENE_KINDS) other than "street" draws its band along the top; ``extra``
    (SCENE_EXTRAS) its square in the band's right corner."""
    rng = random.Random(seed)
    image = Image.new("RGB", (WIDTH, HEIGHT), COLOURS["gray"])
    draw = ImageDraw.Draw(image)
    band = SCENE_KINDS[kind][0]
    if band is not None:
        draw.rectangle([0, 0, WIDTH - 1, BAND_HEIGHT - 1], fill=COLOURS[band])
    if extra is not None:
        top = (BAND_HEIGHT - MARK_SIZE) // 2
        draw.rectangle([WIDTH - 8 - MARK_SIZE, top, WIDTH - 9, top + MARK_SIZE - 1], fill=COLOURS[SCENE_EXTRAS[extra][0]])
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


def _nearest(rgb: tuple[int, ...], names: list[str]) -> str:
    return min(names, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, COLOURS[name])))


def describe_scene(data: bytes) -> str | None:
    """The description of a whole street scene by its band and corner square (None for a
    crop, mostly car or trailer: the colour rule describes those).

    Read from the middle of the band and of the square, in fractions of the image's size,
    so an image the backend sent reduced reads the same."""
    if dominant_colour(data, ["gray", "blue", "red"]) != "gray":
        return None
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    band_y = int(h * (BAND_HEIGHT / 2) / HEIGHT)
    band = _nearest(image.getpixel((int(w * 0.4), band_y)), ["gray"] + [c for c, _ in SCENE_KINDS.values() if c])
    kind = next((text for colour, text in SCENE_KINDS.values() if colour == band), SCENE_KINDS["street"][1])
    mark_x = int(w * (WIDTH - 8 - MARK_SIZE / 2) / WIDTH)
    mark = _nearest(image.getpixel((mark_x, band_y)), [band] + [c for c, _ in SCENE_EXTRAS.values()])
    extra = next((text for colour, text in SCENE_EXTRAS.values() if colour == mark), None)
    return f"{kind} {extra}" if extra else kind


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
