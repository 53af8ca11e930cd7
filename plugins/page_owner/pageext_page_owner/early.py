"""Pages allocated before page_owner was initialised: counted per zone, logged once.

At boot the page_ext tables themselves (SPARSEMEM) and anything else
allocated before the clients' ``init`` went through the allocator with no
call-out, so those pages have no record.  The kernel counts them per zone
and says so; reserved pages are not allocations and are not counted
(the kernel skips PageReserved).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pageext_core.mm.machine import Machine
    from pageext_core.mm.printk import KernelLog


def early_allocated_pages(machine: Machine) -> np.ndarray:
    """Allocated pages per zone index right now (all of them are record-less at init)."""
    heads, orders = machine.allocated_blocks()
    zones = machine.zones_of(heads)
    pages = np.left_shift(np.int64(1), orders.astype(np.int64))
    return np.bincount(zones, weights=pages, minlength=machine.nr_zones).astype(np.int64)[: machine.nr_zones]


def log_early_allocated(machine: Machine, log: KernelLog, per_zone: np.ndarray) -> None:
    """One line per populated zone, as mainline prints at page_owner init."""
    for z in machine.populated_zones():
        log.info(f"Node {z.node}, zone {z.name:>8s}: page owner found early allocated {int(per_zone[z.index])} pages")
