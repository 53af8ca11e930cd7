"""Vectorised scans of page_owner's records: which pages are allocated, which are heads.

Reports never walk pages in Python.  Each page_ext table is filtered with
numpy (flag bits, order alignment), and only the pages a report prints are
turned into ``OwnerRecord`` values.

No scan drains the per-CPU lists, though the kernel's dump reader and
pagetypeinfo's mixed-block count call ``drain_all_pages()`` first: what they
print does not depend on it.  A page on a per-CPU list has been freed, so
its ``OWNER_ALLOCATED`` bit is already clear and nothing here counts it.
Returning it to the buddy lists only merges free blocks; a merge re-types
pageblocks only when a free block of pageblock order or more joins its
buddy, so no pageblock holding an allocated page changes type, and the page
flags of allocated pages are untouched.  The figures read from the current
state are therefore the ones the kernel prints after its drain, and reading
leaves the machine exactly as it was (tests/session/test_report_consistency.py).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pageext_page_owner.record import FIELDS, OwnerRecord

if TYPE_CHECKING:
    from pageext_core import PageExtView


def _head_mask(base: int, records: np.ndarray, flags: np.ndarray, allocated: int) -> np.ndarray:
    """Pages the dump prints: allocated, aligned to their recorded order, with a stack.

    Alignment is how the kernel tells a block's head from its tails (every
    page of the block carries the order), so after ``split_page`` each page
    is a head of its own.
    """
    pfns = np.arange(base, base + len(records), dtype=np.int64)
    size_mask = np.left_shift(np.int64(1), records["order"].astype(np.int64)) - 1
    heads: np.ndarray = ((flags & np.uint64(allocated)) != 0) & ((pfns & size_mask) == 0) & (records["handle"] != 0)
    return heads


def iter_heads(view: PageExtView, allocated: int, start: int = 0) -> Iterator[OwnerRecord]:
    """Head records of allocated blocks at or after pfn ``start``, in pfn order.

    Lazy per table, so reading one record only scans up to the table it is in.
    """
    for base, records, flags in view.scan():
        assert flags is not None  # page_owner owns flag bits, so every table has them
        if base + len(records) <= start:
            continue
        skip = max(start - base, 0)
        recs = records[skip:]
        idx = np.flatnonzero(_head_mask(base + skip, recs, flags[skip:], allocated))
        if not idx.size:
            continue
        pfns = (idx + base + skip).tolist()
        for pfn, values in zip(pfns, recs[idx].tolist()):
            yield OwnerRecord(pfn, *values)


def head_columns(view: PageExtView, allocated: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Chosen fields (and ``pfn``) of every head of an allocated block, as arrays."""
    return _columns(view, allocated, fields, heads=True)


def allocated_columns(view: PageExtView, allocated: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Chosen fields (and ``pfn``) of every allocated page, heads and tails, as arrays."""
    return _columns(view, allocated, fields, heads=False)


def _columns(view: PageExtView, allocated: int, fields: Sequence[str], heads: bool) -> dict[str, np.ndarray]:
    for f in fields:
        if f not in FIELDS:
            raise KeyError(f"page_owner has no field {f!r}; fields: {', '.join(FIELDS)}")
    parts: dict[str, list[np.ndarray]] = {f: [] for f in ("pfn", *fields)}
    for base, records, flags in view.scan():
        assert flags is not None  # page_owner owns flag bits
        if heads:
            mask = _head_mask(base, records, flags, allocated)
        else:
            mask = (flags & np.uint64(allocated)) != 0
        idx = np.flatnonzero(mask)
        if not idx.size:
            continue
        parts["pfn"].append(idx.astype(np.int64) + base)
        for f in fields:
            parts[f].append(records[f][idx])
    out: dict[str, np.ndarray] = {}
    for f, chunks in parts.items():
        if chunks:
            out[f] = np.concatenate(chunks)
        else:
            out[f] = np.zeros(0, np.int64 if f == "pfn" else np.dtype(FIELDS[f]))
    return out


def count_flagged(view: PageExtView, mask: int) -> int:
    """Pages with any of these flag bits set."""
    return sum(int(np.count_nonzero(flags & np.uint64(mask))) for _, _, flags in view.scan())
