"""Ids as Label Studio and the users write them: one reader per kind, one limit.

Label Studio's project and task ids are positive integers stored in signed 64-bit
columns; SQLite stores the same.
"""

from __future__ import annotations

from typing import Any

#: the largest id accepted anywhere (a signed 64-bit integer, what SQLite and Label Studio store)
MAX_ID = 2**63 - 1


def is_id(value: Any) -> bool:
    """A positive integer that fits a signed 64-bit column (what SQLite and Label Studio store)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def whole_number(text: str, max_digits: int) -> int | None:
    """``text`` as a whole number of at most ``max_digits`` digits (leading zeros aside), else None.

    ASCII digits only: ``str.isdigit`` also takes "²", which ``int()`` refuses; and the
    length is checked before ``int()``, which refuses strings of thousands of digits.
    """
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > max_digits:
        return None
    return int(digits)


def parse_project_id(project: Any) -> int:
    """Label Studio sends ``"<id>.<timestamp>"`` in /setup and /predict, a plain id in webhooks."""
    if isinstance(project, bool):
        raise ValueError("project must be a project id")
    if isinstance(project, int):
        pid = project
    elif isinstance(project, dict) and "id" in project:
        return parse_project_id(project["id"])
    elif isinstance(project, str) and project.strip():
        head = project.strip().split(".", 1)[0]
        if not (head.isascii() and head.isdigit()):
            raise ValueError(f"project must look like '<id>' or '<id>.<timestamp>', got {project[:40]!r}")
        parsed = whole_number(head, len(str(MAX_ID)))
        if parsed is None:
            raise ValueError(f"project id must be at most {MAX_ID}")
        pid = parsed
    else:
        raise ValueError("project must be a project id")
    if pid <= 0:
        raise ValueError("project id must be positive")
    if pid > MAX_ID:
        raise ValueError(f"project id must be at most {MAX_ID}")
    return pid


def integer_cell(raw: Any) -> int | None:
    """A table cell as an exact integer (an int, a whole float up to 2**53, a string of digits), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() and abs(raw) <= 2**53 else None
    return whole_number(str(raw), len(str(MAX_ID)))
