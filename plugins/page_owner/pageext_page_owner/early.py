"""Pages in use before page_owner was initialised: 6.12's ``init_pages_in_zone``.

At boot the page_ext tables themselves (SPARSEMEM) and anything else
allocated before the clients' ``init`` went through the allocator with no
call-out, so those pages have no record.  6.12 walks every zone at init and
gives each page that is in use (not in the buddy, not reserved, without a
record yet) its own order-0 record: the "early" stack (registered at init),
gfp mask 0, no migrate reason, the init task and the clock.  That includes
pages on per-CPU lists and guard pages (neither is PageBuddy).  The count is
logged per zone.  The early stack is never counted in ``show_stacks``
(6.12 increments no stack count for it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pageext_core.mm import PageKind

if TYPE_CHECKING:
    from pageext_core import PageExtView
    from pageext_core.mm import KernelLog, Machine

# The call chain ``register_early_stack`` saves (create_dummy_stack's own stack
# at page_owner's init); synthetic offsets, as the depot keeps symbols.
EARLY_STACK = (
    "register_early_stack+0x2a/0x80",
    "init_page_owner+0x3c/0x420",
    "page_ext_init+0x1a7/0x1e0",
    "kernel_init_freeable+0x1d4/0x2f0",
    "kernel_init+0x1a/0x1c0",
    "ret_from_fork+0x34/0x50",
    "ret_from_fork_asm+0x1a/0x30",
)


IN_USE = (PageKind.ALLOCATED, PageKind.ALLOCATED_MOVABLE, PageKind.PCP, PageKind.HELD)


def in_use_mask(machine: Machine) -> np.ndarray:
    """Boolean per pfn: the page is in use, as ``init_pages_in_zone`` sees it.

    Not in the buddy (free-list blocks are skipped whole), not reserved;
    allocated blocks, pages on per-CPU lists and held (guard) blocks count.
    """
    heads, orders = machine.blocks_of(*IN_USE)
    return machine.block_mask(heads, orders)


def _mask_in(heads: np.ndarray, orders: np.ndarray, base: int, n: int) -> np.ndarray:
    """``in_use_mask`` over ``[base, base + n)`` only (blocks never straddle a page_ext table)."""
    lo, hi = np.searchsorted(heads, base), np.searchsorted(heads, base + n)
    h = heads[lo:hi] - base
    ends = np.minimum(h + np.left_shift(np.int64(1), orders[lo:hi].astype(np.int64)), n)
    cover = np.zeros(n + 1, np.int32)
    np.add.at(cover, h, 1)
    np.add.at(cover, ends, -1)
    return np.cumsum(cover[:n]) > 0


def init_early_records(machine: Machine, view: PageExtView, owner_bits: int, early_handle: int) -> np.ndarray:
    """Give every in-use page without a record an order-0 early record; pages per zone index.

    Vectorised per page_ext table (memory bounded by one table, also on a
    1 TiB machine): field columns by fancy index, flag words through a
    strided view of the table's words.
    """
    heads, orders = machine.blocks_of(*IN_USE)
    heads = heads.astype(np.int64)
    owner_bit = np.uint64(view.flag("OWNER"))
    stride = view.record_size // 8
    task = machine.current
    values = {"ts_nsec": machine.clock_ns, "order": 0, "last_migrate_reason": -1, "gfp_mask": 0,
              "handle": early_handle, "pid": task.pid, "tgid": task.tgid, "comm": task.comm.encode()[:15]}
    per_zone = np.zeros(machine.nr_zones, np.int64)
    for base, records, flags in view.scan():
        assert flags is not None  # page_owner has flag bits
        n = min(len(records), machine.geometry.max_pfn - base)
        if n <= 0:
            continue
        todo = np.flatnonzero(_mask_in(heads, orders, base, n) & ((flags[:n] & owner_bit) == 0))
        if not todo.size:
            continue
        for field, value in values.items():
            records[field][todo] = value
        _, _, words, first = view.locate(base)
        assert words is not None
        words_np = np.asarray(words)[first : first + n * stride : stride]
        words_np[todo] |= np.uint64(owner_bits)
        np.add.at(per_zone, machine.zones_of(base + todo), 1)
    return per_zone


def log_early_allocated(machine: Machine, log: KernelLog, per_zone: np.ndarray) -> None:
    """One line per populated zone, as 6.12 prints at page_owner init (``init_pages_in_zone``)."""
    for z in machine.populated_zones():
        log.info(f"Node {z.node}, zone {z.name:>8s}: page owner found early allocated {int(per_zone[z.index])} pages")
