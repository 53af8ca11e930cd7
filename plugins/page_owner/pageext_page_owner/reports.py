"""page_owner's aggregate reports: per-stack pages, leaks, mixed pageblocks, summary figures.

Each is computed with numpy over the page_ext tables (see ``scan``); only
the lines printed are built in Python.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pageext_core.mm.constants import MIGRATE_TYPES, MIGRATETYPE_NAMES, PAGE_SIZE
from pageext_core.mm.gfp import gfp_migratetype
from pageext_page_owner.dump import Dumper
from pageext_page_owner.scan import allocated_columns, head_columns

if TYPE_CHECKING:
    from pageext_core import PageExtView
    from pageext_core.mm import Machine


def _threshold(value: Any) -> int:
    """``count_threshold`` as the kernel file takes it: a non-negative number (text accepted)."""
    try:
        n = int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ValueError(f"count_threshold: expected a non-negative integer, got {value!r}") from None
    if n < 0 or isinstance(value, bool):
        raise ValueError(f"count_threshold: expected a non-negative integer, got {value!r}")
    return n


def show_stacks(view: PageExtView, allocated: int, dumper: Dumper, count_threshold: Any = 0,
                early_handle: int = 0) -> str:
    """``page_owner_stacks/show_stacks``: each stack that owns pages, then ``nr_base_pages``.

    Order: depot order (the order in which stacks were first seen), which
    is deterministic; the kernel walks its own list, newest first.  The
    early stack is never listed: 6.12 keeps no count for it.
    """
    threshold = _threshold(count_threshold)
    handles = allocated_columns(view, allocated, ["handle"])["handle"]
    handles, counts = np.unique(handles[handles != early_handle] if early_handle else handles, return_counts=True)
    return "".join(
        f"{dumper.stack(h)}nr_base_pages: {n}\n\n"
        for h, n in zip(handles.tolist(), counts.tolist())
        if n >= threshold
    )


def leaks(view: PageExtView, allocated: int, dumper: Dumper, early_handle: int = 0) -> str:
    """What is still allocated, by allocation stack, most pages first.

    Ties: more records first, then depot order.  Meant for the end of a
    session, when everything that should have been freed has been.  Pages
    found in use at page_owner's init (the early stack: the boot's own
    allocations, such as the page_ext tables) are not leaks and not listed.
    """
    cols = head_columns(view, allocated, ["handle", "order", "ts_nsec"])
    if early_handle:
        keep = cols["handle"] != early_handle
        cols = {k: v[keep] for k, v in cols.items()}
    handles = cols["handle"]
    pages = np.left_shift(np.int64(1), cols["order"].astype(np.int64))
    uniq, inv = np.unique(handles, return_inverse=True)
    records = np.bincount(inv, minlength=len(uniq))
    grouped = np.bincount(inv, weights=pages, minlength=len(uniq)).astype(np.int64)
    oldest = np.full(len(uniq), np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(oldest, inv, cols["ts_nsec"])
    order = np.lexsort((uniq, -records, -grouped))
    total = int(pages.sum())
    out = [f"page_owner leaks: {len(handles)} records, {total} pages, {total * PAGE_SIZE} bytes "
           f"still allocated from {len(uniq)} stacks\n\n"]
    for i in order.tolist():
        n = int(grouped[i])
        out.append(f"{n} pages, {n * PAGE_SIZE} bytes, {int(records[i])} records, oldest ts {int(oldest[i])} ns\n"
                   f"{dumper.stack(int(uniq[i]))}\n")
    return "".join(out)


def mixed_block_counts(machine: Machine, view: PageExtView, allocated: int) -> np.ndarray:
    """Mixed pageblocks per [zone index, migratetype column].

    A pageblock counts once, in its own migratetype's column, when any
    allocated page in it was requested with another migratetype.
    """
    cols = allocated_columns(view, allocated, ["gfp_mask"])
    pfns = cols["pfn"]
    # gfp_migratetype is shifts and masks: given an int64 array it answers for every element at once.
    page_mt = gfp_migratetype(cols["gfp_mask"].astype(np.int64))  # type: ignore[arg-type]
    pbo = machine.pageblock_order
    # One pfn per mixed pageblock (its first), then each block's zone and type.
    mixed = np.unique(pfns[machine.pageblock_migratetypes(pfns) != page_mt] >> pbo) << pbo
    counts = np.zeros((machine.nr_zones, MIGRATE_TYPES), np.int64)
    # Our model has no CMA; were it there, CMA blocks would count as Movable.
    np.add.at(counts, (machine.zones_of(mixed), machine.pageblock_migratetypes(mixed)), 1)
    return counts


def mixed_blocks_section(machine: Machine, view: PageExtView, allocated: int, nid: int) -> str:
    """``/proc/pagetypeinfo``'s "Number of mixed blocks" for one node."""
    counts = mixed_block_counts(machine, view, allocated)
    out = [f"\n{'Number of mixed blocks ':<23s}" + "".join(f"{name:>12s} " for name in MIGRATETYPE_NAMES) + "\n"]
    for z in machine.populated_zones(nid):
        out.append(f"Node {nid}, zone {z.name:>8s} " + "".join(f"{int(c):12d} " for c in counts[z.index]) + "\n")
    return "".join(out)
