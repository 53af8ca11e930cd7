"""The allocator's invariants, checked over the whole machine with numpy.

Used by the property tests after every step and offered to plugin authors:
a client bug must never be able to break these.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pageext_core.mm import buddy as _b
from pageext_core.mm.constants import MIGRATE_TYPES

if TYPE_CHECKING:
    from pageext_core.mm.machine import Machine


class InvariantError(AssertionError):
    """The allocator's state is inconsistent; the message lists every violation found."""


def check_invariants(m: Machine, *, allow_held_buddies: bool = False) -> None:
    """Raise ``InvariantError`` unless the allocator is consistent.

    Checks: blocks cover every present page exactly once and nothing else;
    every block is aligned to its order; no free block has a free buddy of
    the same order (fully merged; per-CPU pages excepted) nor a held one;
    free-list contents and counts agree with page state; per-zone free,
    per-CPU and held counters agree with the blocks; present = free + pcp +
    allocated + reserved + held; pageblock migratetypes are valid.
    """
    errors: list[str] = []
    st = m.state
    n = len(st)
    kinds = (st >> 4).astype(np.int64)
    orders = (st & 15).astype(np.int64)
    heads = np.flatnonzero(kinds != _b.K_NONE)
    hk, ho = kinds[heads], orders[heads]
    sizes = np.left_shift(1, ho)

    bad_kind = heads[(hk > _b.K_ALLOC_MOVABLE)]
    if bad_kind.size:
        errors.append(f"unknown block kind at pfns {_few(bad_kind)}")
    misaligned = heads[(heads & (sizes - 1)) != 0]
    if misaligned.size:
        errors.append(f"blocks not aligned to their order at pfns {_few(misaligned)}")
    if (ho > m.max_order).any():
        errors.append(f"order above max_order at pfns {_few(heads[ho > m.max_order])}")

    cover = np.zeros(n + 1, np.int64)
    np.add.at(cover, heads, 1)
    np.add.at(cover, np.minimum(heads + sizes, n), -1)
    cover = np.cumsum(cover[:n])
    present = np.zeros(n, np.bool_)
    for s, e in m.present_ranges:
        present[s:e] = True
    overlap = np.flatnonzero(cover > 1)
    if overlap.size:
        errors.append(f"overlapping blocks at pfns {_few(overlap)}")
    uncovered = np.flatnonzero(present & (cover == 0))
    if uncovered.size:
        errors.append(f"present pages in no block at pfns {_few(uncovered)}")
    stray = np.flatnonzero(~present & (cover > 0))
    if stray.size:
        errors.append(f"blocks over non-present pages at pfns {_few(stray)}")

    free_heads = heads[hk == _b.K_FREE]
    free_orders = ho[hk == _b.K_FREE]
    if free_heads.size:
        can_merge = free_orders < m.max_order
        fh, fo = free_heads[can_merge], free_orders[can_merge]
        buddies = fh ^ np.left_shift(1, fo)
        inside = buddies < n
        fh, fo, buddies = fh[inside], fo[inside], buddies[inside]
        bst = st[buddies].astype(np.int64)
        mergeable = bst == ((_b.K_FREE << 4) | fo)
        if not allow_held_buddies:
            mergeable |= bst == ((_b.K_HELD << 4) | fo)
        # Above pageblock order, blocks of unmergeable types (isolate) may sit side by side.
        if mergeable.any():
            pbo = m.pageblock_order
            mt_a = m.pb_mt[fh >> pbo]
            mt_b = m.pb_mt[buddies >> pbo]
            blocked = (fo >= pbo) & (mt_a != mt_b) & ((mt_a >= 3) | (mt_b >= 3))
            mergeable &= ~blocked
        if mergeable.any():
            errors.append(f"free blocks with a free or held buddy of the same order (not merged) at pfns {_few(fh[mergeable])}")

    # Free lists against page state.
    zones_of_free = m.pb_zone[free_heads >> m.pageblock_order].astype(np.int64)
    mts_of_free = m.pb_mt[free_heads >> m.pageblock_order].astype(np.int64)
    listed = 0
    b = m.buddy  # the free lists' own layout: stacks with back-pointers in pflags
    for li, count in enumerate(b._fl_n):
        if not count:
            continue
        zm, order = divmod(li, m.nr_orders)
        zone, mt = divmod(zm, MIGRATE_TYPES)
        entries = b._fl_arr[li][:count].astype(np.int64)
        listed += count
        wrong = entries[(st[entries] != ((_b.K_FREE << 4) | order))]
        if wrong.size:
            errors.append(f"free list zone {zone} order {order} mt {mt} holds non-free or wrong-order pfns {_few(wrong)}")
            continue
        pos = m.pflags[entries].astype(np.int64)
        if not np.array_equal(pos, np.arange(count)):
            errors.append(f"free list zone {zone} order {order} mt {mt}: back-pointers out of step")
        sel = (zones_of_free == zone) & (mts_of_free == mt) & (free_orders == order)
        if int(sel.sum()) != count:
            errors.append(f"free list zone {zone} order {order} mt {mt} has {count} entries, page state says {int(sel.sum())}")
        if bool(b._nonempty[zm] >> order & 1) != bool(count):
            errors.append(f"non-empty bitmap wrong for zone {zone} mt {mt} order {order}")
    if listed != free_heads.size:
        errors.append(f"{free_heads.size} free blocks in page state but {listed} on free lists")

    nz = m.nr_zones
    zone_of_head = m.pb_zone[heads >> m.pageblock_order].astype(np.int64)
    for kind, counter, label in ((_b.K_FREE, m.zone_free, "free"), (_b.K_PCP, m.zone_pcp, "per-CPU"),
                                 (_b.K_HELD, m.zone_held, "held"), (_b.K_RESERVED, m.zone_reserved, "reserved")):
        per_zone = np.bincount(zone_of_head[hk == kind], weights=sizes[hk == kind], minlength=nz)[:nz]
        for z in range(nz):
            if int(per_zone[z]) != counter[z]:
                errors.append(f"zone {z} {label} counter {counter[z]} but blocks hold {int(per_zone[z])} pages")
    pcp_listed = sum(len(pl) for lists in b._pcp for pl in lists)
    if pcp_listed != int((hk == _b.K_PCP).sum()):
        errors.append(f"{pcp_listed} pages on per-CPU lists but {int((hk == _b.K_PCP).sum())} in pcp state")
    present_pages = int(present.sum())
    if present_pages != m.nr_present_pages:
        errors.append(f"present pages {present_pages} but zone counters say {m.nr_present_pages}")
    allocated = int(sizes[(hk == _b.K_ALLOC) | (hk == _b.K_ALLOC_MOVABLE)].sum())
    listed = sum(m.zone_free)  # every free list, MIGRATE_ISOLATE's too (NR_FREE_PAGES leaves those out)
    total = listed + m.nr_pcp_pages + allocated + m.nr_reserved_pages + m.nr_held_pages
    if total != m.nr_present_pages:
        errors.append(f"present {m.nr_present_pages} != free {listed} + pcp {m.nr_pcp_pages} + "
                      f"allocated {allocated} + reserved {m.nr_reserved_pages} + held {m.nr_held_pages}")
    if (m.pb_mt >= MIGRATE_TYPES).any():
        errors.append("pageblock with an invalid migratetype")
    if errors:
        raise InvariantError("allocator invariants violated:\n  " + "\n  ".join(errors))


def _few(a: np.ndarray, k: int = 5) -> str:
    items = ", ".join(hex(int(x)) for x in a[:k])
    return items + (f" (+{a.size - k} more)" if a.size > k else "")
