"""Where an object is: Label Studio's percent boxes as image fractions and crop pixels.

Label Studio stores a region in percent of the image it was drawn on
(``original_width`` x ``original_height``): ``x``, ``y`` is the top-left corner,
``width``/``height`` its sides, ``rotation`` degrees clockwise about that corner. A
polygon stores ``points`` in the same percent units. Every box here becomes a
:class:`Box` in fractions of the image (0..1), which holds at any resolution: the
pipeline may decode a big JPEG at a reduced scale, and the fractions still land on
the same pixels. A rotated box is covered by the bounding box of its corners,
computed in original pixels (percent units of x and y differ in length on a
non-square image, so rotating percents would skew the box).

Pure functions, no I/O; every refusal is a :class:`BoxError` whose message is the
reason an admin reads in ``/metrics``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from ..errors import VLMineError

__all__ = [
    "Box",
    "BoxError",
    "PixelBox",
    "crop_rect",
    "most_confident",
    "polygon_box",
    "rect_box",
]

#: How far past the image border (as a fraction of the image side) a region may
#: reach before it counts as broken rather than clipped: detectors and hand-drawn
#: boxes often overshoot by a pixel or two; a box mostly outside is a wrong box.
OUTSIDE_TOLERANCE = 0.5


class BoxError(VLMineError, ValueError):
    """A region that cannot become a crop; ``str(error)`` is the reason. Not retryable: the
    same box fails the same way on every try (and, a ``ValueError`` as before, it is caught
    as one)."""

    retryable = False


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in fractions of the image: 0 <= left < right <= 1 once clipped."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def clipped(self) -> "Box":
        """The part inside the image; BoxError when nothing (or too little) is inside."""
        tol = OUTSIDE_TOLERANCE
        if self.right <= 0 or self.bottom <= 0 or self.left >= 1 or self.top >= 1:
            raise BoxError(f"box outside the image ({self.describe()})")
        if self.left < -tol or self.top < -tol or self.right > 1 + tol or self.bottom > 1 + tol:
            raise BoxError(f"box reaches far outside the image ({self.describe()})")
        return Box(max(0.0, self.left), max(0.0, self.top), min(1.0, self.right), min(1.0, self.bottom))

    def with_margin(self, margin: float) -> "Box":
        """Grown by ``margin`` of its own width/height on every side (context around the object)."""
        if margin < 0 or not math.isfinite(margin):
            raise ValueError("margin must be a finite number >= 0")
        dx, dy = self.width * margin, self.height * margin
        return Box(self.left - dx, self.top - dy, self.right + dx, self.bottom + dy)

    def to_pixels(self, width: int, height: int) -> "PixelBox":
        """The smallest pixel rectangle covering the box, inside a ``width`` x ``height`` image."""
        left = min(max(0, math.floor(self.left * width + 1e-9)), width)
        top = min(max(0, math.floor(self.top * height + 1e-9)), height)
        right = min(max(0, math.ceil(self.right * width - 1e-9)), width)
        bottom = min(max(0, math.ceil(self.bottom * height - 1e-9)), height)
        return PixelBox(left, top, right, bottom)

    def describe(self) -> str:
        """Percent, as Label Studio shows it: where the object is, for explanations and errors."""
        return (f"x {self.left * 100:.1f}%, y {self.top * 100:.1f}%, "
                f"w {self.width * 100:.1f}%, h {self.height * 100:.1f}%")


@dataclass(frozen=True)
class PixelBox:
    """Integer pixel rectangle, right and bottom exclusive (Pillow's ``crop`` box)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BoxError(f"{name} is not a number ({value!r})")
    try:
        out = float(value)
    except ValueError:
        raise BoxError(f"{name} is not a number ({value!r})") from None
    if not math.isfinite(out):
        raise BoxError(f"{name} is not finite ({value!r})")
    return out


def _size(value: Any, name: str) -> float | None:
    if value is None:
        return None
    out = _number(value, name)
    if out <= 0:
        raise BoxError(f"{name} must be positive ({value!r})")
    return out


def rect_box(x: Any, y: Any, width: Any, height: Any, rotation: Any = 0.0,
             original_width: Any = None, original_height: Any = None) -> Box:
    """A Label Studio rectangle (percent) as a Box (fractions), not yet clipped.

    A rotated rectangle (``rotation`` degrees clockwise about its top-left corner) gives
    the bounding box of its four corners, computed in original pixels; without the
    original size a square image is assumed for the rotation only.
    """
    x, y = _number(x, "x"), _number(y, "y")
    w, h = _number(width, "width"), _number(height, "height")
    if w <= 0 or h <= 0:
        raise BoxError(f"box has no area (width {w:g}%, height {h:g}%)")
    angle = _number(rotation if rotation is not None else 0.0, "rotation") % 360.0
    if angle == 0.0:
        return Box(x / 100, y / 100, (x + w) / 100, (y + h) / 100)
    ow = _size(original_width, "original_width") or 100.0
    oh = _size(original_height, "original_height") or ow
    # in original pixels: x axis right, y axis down, so a positive angle turns clockwise on screen
    px, py, pw, ph = x / 100 * ow, y / 100 * oh, w / 100 * ow, h / 100 * oh
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    xs, ys = [], []
    for dx, dy in ((0.0, 0.0), (pw, 0.0), (pw, ph), (0.0, ph)):
        xs.append(px + dx * c - dy * s)
        ys.append(py + dx * s + dy * c)
    return Box(min(xs) / ow, min(ys) / oh, max(xs) / ow, max(ys) / oh)


def polygon_box(points: Any) -> Box:
    """The bounding box of a Label Studio polygon (``[[x%, y%], ...]``), not yet clipped."""
    if not isinstance(points, (list, tuple)) or len(points) < 3:
        raise BoxError("polygon needs at least 3 points")
    xs, ys = [], []
    for i, point in enumerate(points):
        if not isinstance(point, (list, tuple)) or len(point) < 2:
            raise BoxError(f"polygon point {i} is not [x, y]")
        xs.append(_number(point[0], f"point {i} x"))
        ys.append(_number(point[1], f"point {i} y"))
    if max(xs) <= min(xs) or max(ys) <= min(ys):
        raise BoxError("polygon has no area")
    return Box(min(xs) / 100, min(ys) / 100, max(xs) / 100, max(ys) / 100)


def crop_rect(box: Box, image_size: tuple[int, int], margin: float = 0.0, min_side: int = 0,
              original_size: tuple[float, float] | None = None) -> PixelBox:
    """The pixels of ``image_size`` to cut for ``box``: margin added, clipped at the borders.

    ``min_side`` (pixels) refuses objects whose shorter side is smaller: a VLM cannot say
    anything true about a 6-pixel box, and its guess would be a rare keyword. It is
    measured on the object itself (clipped, before the margin) in the pixels of
    ``original_size`` when known (what the detector and the annotator saw; a reduced
    decode does not change the rule), else of ``image_size``.
    """
    width, height = image_size
    if width <= 0 or height <= 0:
        raise BoxError("image has no pixels")
    inside = box.clipped()
    ow, oh = original_size if original_size else (width, height)
    side_w, side_h = inside.width * ow, inside.height * oh
    if min(side_w, side_h) < min_side:
        raise BoxError(f"box too small: {side_w:.0f}x{side_h:.0f} px, the smallest is {min_side} px")
    rect = inside.with_margin(margin).clipped().to_pixels(width, height)
    if rect.width < 1 or rect.height < 1:
        raise BoxError(f"box covers no pixel of the {width}x{height} image")
    return rect


T = TypeVar("T")


def most_confident(items: Sequence[T], limit: int | None, score: Callable[[T], float | None]) -> list[T]:
    """The items, highest detector score first (no score: after every scored one; ties in
    their given order), at most ``limit`` of them (``None`` or 0: all)."""
    order = sorted(range(len(items)), key=lambda i: (score(items[i]) is None, -(score(items[i]) or 0.0), i))
    if limit:
        order = order[:limit]
    return [items[i] for i in order]
