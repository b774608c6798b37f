"""Reading a value out of a task's data by a Label Studio field reference.

The bottom of the package (nothing of the backend imported), so that the label config,
the pipeline, the engine's signals and the mining core's uncertainty sources all read
task data by one rule: a field reference is a key, else a path (``meta.url``,
``images[0].url``), as Label Studio's editor reads ``$meta.url``.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["field_value", "field_number", "finite_number"]

_PATH = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[[0-9]+\])*")
_STEP = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


def field_value(data: Any, key: str, default: Any = None) -> Any:
    """``data[key]``, where ``key`` is a Label Studio field reference without its ``$``.

    The key is first looked up as it is (a data key may itself hold a dot); else it is
    a path as Label Studio's editor reads it: ``meta.url`` is ``data["meta"]["url"]``,
    ``images[0].url`` (or ``images.0.url``) is ``data["images"][0]["url"]``. Anything
    missing on the way gives ``default``.
    """
    if not isinstance(data, dict) or not isinstance(key, str):
        return default
    if key in data:
        return data[key]
    if not _PATH.fullmatch(key):
        return default
    value: Any = data
    for name, index in _STEP.findall(key):
        step = name or index
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return default
    return value


def finite_number(value: Any) -> float:
    """A finite number, or NaN (missing) for anything else: a JSON true/false (Python would
    read ``True`` as 1.0), ``inf`` and ``"Infinity"`` (which would outrank every task or turn
    a filled-in mean into NaN), objects and lists."""
    if value is None or isinstance(value, (bool, dict, list)):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def field_number(data: Any, key: str) -> float:
    """The finite number at ``key`` (see :func:`field_value`) in a task's data; NaN when it
    is missing or not a finite number (see :func:`finite_number`)."""
    return finite_number(field_value(data, key))
