"""A tiny JPEG of a crop, for the report's rarest objects (docs/objects.md, "Report").

The pipeline is the only place that holds a decoded image, so it keeps a thumbnail of
every crop it cuts; the engine stores one per task (its rarest object's) and the report
inlines it. 64 px on the longest side at quality 70 is about 1-2 KB: enough to see what
the object is, small enough to keep one per task in the state store and inline a dozen
into one HTML page without a second download of the image.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

#: the thumbnail's longest side, in pixels
THUMBNAIL_SIDE = 64
#: JPEG quality: the thumbnail is a reminder of the object, not a copy of it
THUMBNAIL_QUALITY = 70


def thumbnail_jpeg(image: "Image", side: int = THUMBNAIL_SIDE, quality: int = THUMBNAIL_QUALITY) -> bytes:
    """The JPEG bytes of ``image`` shrunk (never enlarged) to ``side`` pixels on its longest
    side, its aspect kept; any mode (palette, alpha, 16-bit) becomes RGB first, since JPEG
    holds none of them."""
    from PIL import Image as PILImage

    # Image.thumbnail works in place: never shrink the caller's crop (the VLM still wants it)
    small = image.copy() if image.mode == "RGB" else image.convert("RGB")
    small.thumbnail((side, side), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()
