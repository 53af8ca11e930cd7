"""The kernel's external-fragmentation indices (``/sys/kernel/debug/extfrag/``), as pure functions.

Both indices are computed from one zone's free-block counts per order (the
lockless ``nr_free`` of every free area, all migratetypes together; per-CPU
pages are not on the free lists and do not count), with the kernel's integer
arithmetic, in thousandths:

- ``unusable_free_index``: the share of free memory that cannot serve an
  allocation of the order (0 = all of it can, 1000 = none of it; no free
  memory at all is 1000).
- ``fragmentation_index``: why an allocation of the order would fail: near
  0 for lack of memory, near 1000 for fragmentation; -1000 when a block of
  that order is free now (the index does not apply); 0 with no free blocks.

The text reports (``mm.stats.unusable_index``/``extfrag_index``) and the
samples taken during a session (``pictures.samples``) use these same
functions, so a plot and a report never disagree.
"""
from __future__ import annotations

import numpy as np

NOT_APPLICABLE = -1000  # fragmentation_index when the order can be allocated now


def contig_info(nr_free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per order: (free blocks in total, free pages, blocks suitable for that order), as int64 arrays.

    ``nr_free[o]`` is the number of free blocks of order ``o``; the kernel's
    ``fill_contig_page_info`` for every order at once.
    """
    nr = np.asarray(nr_free, dtype=np.int64)
    orders = np.arange(nr.size, dtype=np.int64)
    total = np.full(nr.size, int(nr.sum()), np.int64)
    free_pages = np.full(nr.size, int((nr << orders).sum()), np.int64)
    # suitable[k] = sum over o >= k of nr[o] << (o - k)
    shift = orders[None, :] - orders[:, None]  # [k, o]
    suitable = np.where(shift >= 0, nr[None, :] << np.maximum(shift, 0), 0).sum(axis=1)
    return total, free_pages, suitable


def unusable_free_index(nr_free: np.ndarray) -> np.ndarray:
    """The unusable free space index per order, in thousandths (0..1000)."""
    _, free_pages, suitable = contig_info(nr_free)
    orders = np.arange(free_pages.size, dtype=np.int64)
    safe = np.maximum(free_pages, 1)
    idx = (free_pages - (suitable << orders)) * 1000 // safe
    return np.where(free_pages == 0, 1000, idx).astype(np.int64)


def fragmentation_index(nr_free: np.ndarray) -> np.ndarray:
    """The fragmentation index per order, in thousandths (0..1000, or -1000 = not applicable)."""
    total, free_pages, suitable = contig_info(nr_free)
    orders = np.arange(total.size, dtype=np.int64)
    safe = np.maximum(total, 1)
    idx = 1000 - (1000 + (free_pages * 1000 >> orders)) // safe
    idx = np.where(suitable > 0, NOT_APPLICABLE, idx)
    return np.where(total == 0, 0, idx).astype(np.int64)


def _c_parts(value: int) -> tuple[int, int]:
    """(value / 1000, value % 1000) with C's truncating division, as the kernel prints them."""
    q = abs(value) // 1000 * (1 if value >= 0 else -1)
    return q, value - q * 1000


def format_unusable(values: np.ndarray) -> str:
    """One zone's values as ``unusable_show_print`` prints them (``%d.%03d `` each)."""
    return "".join("%d.%03d " % _c_parts(int(v)) for v in values)


def format_extfrag(values: np.ndarray) -> str:
    """One zone's values as ``extfrag_show_print`` prints them (``%2d.%03d `` each)."""
    out = []
    for v in values:
        q, r = _c_parts(int(v))
        out.append("%2d.%03d " % (q, abs(r)))
    return "".join(out)
