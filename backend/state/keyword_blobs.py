"""What both keyword-index stores share: a task's keyword ids as one blob, and batches.

Each task's keyword ids are stored as one compact little-endian int32 blob, so reading a
million tasks back is one scan, not eight million rows; ``build_arrays`` turns the blobs of
a scope into the ``IndexArrays`` mining reads. A batch is validated and chunked the same
way by both stores, so they count the same tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..mining.keyword_index import IndexArrays

BLOB_DTYPE = np.dtype("<i4")
WRITE_CHUNK = 5000  # tasks per write transaction / Lua call


def build_arrays(task_ids: Sequence[int], blobs: Sequence[bytes], vocab: int) -> IndexArrays:
    """CSR arrays from per-task blobs (already in ascending task order)."""
    n = len(task_ids)
    tids = np.fromiter(task_ids, dtype=np.int64, count=n)
    lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=n) // 4
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    kw = np.frombuffer(b"".join(blobs), dtype=BLOB_DTYPE).astype(np.int32)
    vocab = max(vocab, int(kw.max()) + 1 if kw.size else 0)
    # df from the snapshot itself, so it matches the CSR exactly even mid-update.
    df = np.bincount(kw, minlength=vocab).astype(np.int64)
    return IndexArrays(task_ids=tids, indptr=indptr, keyword_ids=kw, df=df)


def prepare_batch(items: Mapping[int, Iterable[str]]) -> list[tuple[int, list[str]]]:
    """Validate a batch: int task ids, de-duplicated non-empty keyword strings.

    Two keys naming one task (``1`` and ``"1"``) leave the last one's keywords, as a
    second upsert would: each task is counted once in the document frequencies.
    """
    out: dict[int, list[str]] = {}
    for task_id, keywords in items.items():
        if isinstance(keywords, (str, bytes)):
            raise TypeError(f"task {task_id}: keywords must be an iterable of str, not a str")
        names = list(dict.fromkeys(keywords))
        if not all(type(n) is str and n for n in names):
            names = list(dict.fromkeys(str(n) for n in names if n is not None and n != ""))
        out[int(task_id)] = names
    return list(out.items())


def unique_ints(values: Iterable[int]) -> list[int]:
    return sorted({int(v) for v in values})


def chunked(seq: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
