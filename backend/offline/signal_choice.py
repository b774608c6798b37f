"""Which row fields the offline commands rank beside novelty: the ``--signal`` names, checked
against the output's own columns (a signal named like a column would overwrite it), and
``uncertainty`` when the rows have one and nothing was asked.

Kept apart from :mod:`.run` because it reads the output's columns (:mod:`.output`), and the
output reads the run's outcome: the run itself needs neither.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from ..errors import UsageError
from .output import OUTPUT_COLUMNS
from .sources import Dataset

if TYPE_CHECKING:
    from ..settings import Settings

DEFAULT_SIGNAL = "uncertainty"


def check_signal_names(names: Sequence[str]) -> None:
    """``--signal`` names that would clash with the output: a usage error."""
    for name in names:
        if name == "novelty":
            raise UsageError("--signal novelty: novelty is always ranked; name another field")
        if name in OUTPUT_COLUMNS:
            raise UsageError(f"--signal {name}: {name!r} is a column of the output ("
                             f"{', '.join(sorted(OUTPUT_COLUMNS))}); name another field")


def signal_fields(dataset: Dataset, asked: Sequence[str], settings: "Settings") -> list[str]:
    """The row fields ranked beside the settings' signals (SIGNAL_FIELDS, UNCERTAINTY_FIELD):
    each ``--signal``, else ``uncertainty`` when the rows have it. Every name is a path into
    the row (``meta.loss``), read as the server reads SIGNAL_FIELDS (``engine.ranking_signals``)."""
    from ..engine.ranking_signals import field_names
    from ..fields import field_number

    datas = [it.task["data"] for it in dataset.items]

    def has_numbers(name: str) -> bool:
        return any(not math.isnan(field_number(d, name)) for d in datas)

    check_signal_names(asked)
    fields = list(dict.fromkeys(asked))
    for name in fields:
        if not has_numbers(name):
            raise UsageError(f"--signal {name}: no row has a numeric field {name!r}")
    if not asked and has_numbers(DEFAULT_SIGNAL):
        fields.append(DEFAULT_SIGNAL)
    for name in field_names(settings):
        if name in OUTPUT_COLUMNS - {"novelty"}:
            raise UsageError(f"setting: SIGNAL_FIELDS / UNCERTAINTY_FIELD name {name!r}, a column of the "
                             "output; unset it for this command")
    return [name for name in fields if name not in field_names(settings)]
