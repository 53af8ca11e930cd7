"""What the guard client says: the guard-hit report, the ``guard`` file, the summary figures.

Nothing here runs on the allocator's hot path.  Counts come from one
vectorised pass over page_ext (``view.scan()``): a guard block is a page
with the GUARD bit, which only head pages carry.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pageext_core.mm import KernelLog, PageKind
from pageext_core.mm.constants import PAGE_SIZE
from pageext_core.mm.errors import direct_map_address

if TYPE_CHECKING:
    from pageext_core import PageExtView
    from pageext_core.mm import Machine
    from pageext_core.reports import Finding

@dataclass(frozen=True)
class Neighbour:
    """A block near a guard block: just below it, just above it, or at the head of its buddy."""

    side: str  # "below", "above" or "buddy"
    pfn: int  # head of the block, or the probed pfn when there is none
    order: int
    kind: PageKind  # NONE for a hole or the edge of memory
    guard: bool  # a guard block of this client (held), not just any held block

    @property
    def allocated(self) -> bool:
        return self.kind.allocated

    def describe(self) -> str:
        if self.kind == PageKind.NONE:
            return f"no memory at pfn {self.pfn:#x}"
        what = "guard" if self.guard else {PageKind.PCP: "per-CPU free"}.get(self.kind, self.kind.label)
        return f"{what} order-{self.order} block at pfn {self.pfn:#x}"


def neighbour(m: Machine, probe: int, side: str, is_guard_head: Callable[[int, int], bool]) -> Neighbour:
    """The block covering ``probe``."""
    if probe < 0 or not m.pfn_valid(probe):
        return Neighbour(side, probe, 0, PageKind.NONE, False)
    kind, order, head = m.page_kind(probe)
    return Neighbour(side, head, order, kind, kind == PageKind.HELD and is_guard_head(head, order))


def pick_suspect(pfn: int, offset: int, guard_pfn: int, guard_order: int,
                 below: Neighbour, above: Neighbour, buddy: Neighbour) -> Neighbour | None:
    """The allocation the access most likely belongs to.

    An access in the lower half of the guard block is taken for an overrun
    of the block just below, one in the upper half for an underrun of the
    block just above; when that one is not allocated, the other side; when
    neither is (nested guards), the allocation at the head of the guard's
    buddy, the block this guard was split off for.
    """
    pos = (pfn - guard_pfn) * PAGE_SIZE + offset
    near, far = (below, above) if pos < (PAGE_SIZE << guard_order) // 2 else (above, below)
    for n in (near, far, buddy):
        if n.allocated:
            return n
    return None


def hit_text(pfn: int, offset: int, write: bool, guard_pfn: int, guard_order: int, minorder: int,
             below: Neighbour, above: Neighbour, buddy: Neighbour, suspect: Neighbour | None,
             owner_dump: str | None) -> str:
    """The lines a guard hit adds under the page-fault header.

    Worded after KASAN's "located N bytes to the right of ... region": an
    overrun lands right of the block below the guard (its buddy when the
    guard is the first one split off), an underrun left of the block above.
    The kernel prints none of these lines, so each starts ``pageext: ``; the
    owner dump after them is page_owner's ``dump_page_owner``.
    """
    addr = direct_map_address(pfn, offset)
    buddy_pfn = guard_pfn ^ (1 << guard_order)
    lines = [f"page is a guard page: page {pfn - guard_pfn} of the order-{guard_order} guard block at pfn "
             f"{guard_pfn:#x} (debug_guardpage_minorder={minorder}), {'write' if write else 'read'} access"]
    if suspect is None:
        lines.append(f"The buggy address {addr:016x} is not next to an allocated block")
    else:
        start = direct_map_address(suspect.pfn)
        size = PAGE_SIZE << suspect.order
        end = start + size
        where = f"{addr - end} bytes to the right of" if addr >= end else f"{start - addr} bytes to the left of"
        note = ", the guard's buddy" if suspect.pfn == buddy_pfn and suspect.order == guard_order else (
            f", at the head of the guard's buddy (order {guard_order} at pfn {buddy_pfn:#x})"
            if suspect.pfn == buddy.pfn else "")
        lines.append(f"The buggy address {addr:016x} is located {where}")
        lines.append(f" allocated {size}-byte region [{start:016x}, {end:016x}): "
                     f"order-{suspect.order} block at pfn {suspect.pfn:#x}{note}")
    lines.append(f"Guard block neighbours: below {below.describe()}, above {above.describe()}")
    lines = [f"pageext: {ln}" for ln in lines]
    if owner_dump:
        lines.append(owner_dump.rstrip("\n"))
    return "\n".join(lines)


# -- counts --------------------------------------------------------------------------------


@dataclass
class GuardCounts:
    """Guard blocks of the machine right now, from page_ext."""

    heads: np.ndarray  # head pfns, ascending
    orders: np.ndarray  # their orders

    @property
    def pages(self) -> int:
        return int(np.left_shift(1, self.orders.astype(np.int64)).sum())

    def by_zone(self, m: Machine, minorder: int) -> dict[int, np.ndarray]:
        """Zone index → guard blocks per order (0..minorder-1), for populated zones."""
        zones = m.zones_of(self.heads)
        out = {}
        for z in m.populated_zones():
            sel = zones == z.index
            out[z.index] = np.bincount(self.orders[sel].astype(np.int64), minlength=max(minorder, 1))[:max(minorder, 1)]
        return out


def count_guards(view: PageExtView, m: Machine) -> GuardCounts:
    """Guard heads from the GUARD bits; their orders from the machine (the held blocks' page private)."""
    heads = []
    for base, _, flags in view.scan():
        if flags is None:
            continue
        heads.append(base + np.flatnonzero(flags))
    if not heads:
        return GuardCounts(np.zeros(0, np.int64), np.zeros(0, np.uint8))
    h = np.concatenate(heads).astype(np.int64)
    held_heads, held_orders = m.blocks_of(PageKind.HELD)
    orders = held_orders[np.searchsorted(held_heads, h)] if len(h) else np.zeros(0, np.uint8)
    return GuardCounts(h, orders)


def guard_report(m: Machine, counts: GuardCounts, minorder: int, hits: Sequence[Finding],
                 created: int, released: int) -> str:
    """The ``guard`` file: blocks per order and zone (``buddyinfo``'s shape), memory held, hits."""
    kb = PAGE_SIZE // 1024
    orders = max(minorder, 1)
    out = [f"debug_guardpage_minorder: {minorder}\n",
           f"{'Guard blocks at order':<23s}" + "".join(f"{o:6d} " for o in range(orders)) + "\n"]
    for zi, per in counts.by_zone(m, minorder).items():
        z = m.geometry.zones[zi]
        out.append(f"Node {z.node}, zone {z.name:>8s} " + "".join(f"{int(n):6d} " for n in per) + "\n")
    pages = counts.pages
    allocated = m.nr_allocated_pages
    managed = m.nr_present_pages - m.nr_reserved_pages
    out.append(f"{'Guard blocks:':<16s}{counts.heads.size:8d}\n")
    out.append(f"{'Guard pages:':<16s}{pages:8d} ({pages * kb} kB)\n")
    out.append(f"{'Of allocated:':<16s}{_pct(pages, allocated):>8s} ({allocated} pages allocated)\n")
    out.append(f"{'Of managed:':<16s}{_pct(pages, managed):>8s} ({managed} pages managed)\n")
    out.append(f"{'Guards made:':<16s}{created:8d}\n")
    out.append(f"{'Guards cleared:':<16s}{released:8d}\n")
    out.append(f"{'Guard hits:':<16s}{len(hits):8d}\n")
    for f in hits:
        first = f.detail.get("headline", f.message.splitlines()[0])
        out.append(KernelLog.format_line(f.time_ns, first) + "\n")
    return "".join(out)


def summary(m: Machine, counts: GuardCounts, minorder: int, active: bool, hits: int,
            created: int, released: int) -> dict[str, Any]:
    """Plain-JSON figures for ``summary.json``."""
    pages = counts.pages
    allocated = m.nr_allocated_pages
    zones = {}
    for zi, per in counts.by_zone(m, minorder).items():
        z = m.geometry.zones[zi]
        zones[f"Node {z.node} {z.name}"] = [int(n) for n in per]
    return {
        "minorder": minorder,
        "active": active,
        "guard_blocks": int(counts.heads.size),
        "guard_pages": pages,
        "guard_bytes": pages * PAGE_SIZE,
        "guard_blocks_by_order": [int(n) for n in np.bincount(counts.orders.astype(np.int64), minlength=max(minorder, 1))],
        "guard_blocks_by_zone": zones,
        "fraction_of_allocated": pages / allocated if allocated else 0.0,
        "guards_created": created,
        "guards_released": released,
        "hits": hits,
    }


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.2f}%" if whole else "-"
