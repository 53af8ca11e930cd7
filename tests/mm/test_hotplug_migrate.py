"""Offlining with migration: the kernel's offline_pages, isolating the block and migrating movable pages out."""
from __future__ import annotations

import numpy as np
import pytest

from pageext_core.mm import Callout, Callouts, HotplugError, Machine, MachineConfig, MiB, PageKind, check_invariants
from pageext_core.mm import gfp as G
from pageext_core.mm.constants import MIGRATE_ISOLATE, MIGRATE_MOVABLE
from tests.mm.conftest import no_reserves

# 8 MiB sections and memory blocks: block i is pfns [2048 i, 2048 (i + 1)).
# DMA is blocks 0-1, DMA32 blocks 2-7; every page free at boot.
SMALL = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False, section_size_bits=23)
BLOCK = 2048


def block_of(m: Machine, pfn: int) -> int:
    return next(b.index for b in m.memory_blocks if b.start_pfn <= pfn < b.end_pfn)


def test_movable_pages_are_migrated_out_with_their_contents() -> None:
    m = Machine(SMALL)
    moves: list[tuple[int, int, int, str]] = []
    m.install(Callouts(migrate=(Callout("test", lambda old, new, order, reason: moves.append((old, new, order, reason))),)))
    # GFP_HIGHUSER_MOVABLE takes DMA32's lowest pfns first: block 2 (pfns 4096..6143).
    blocks = [(m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, o), o) for o in (0, 1, 2, 0, 3)]
    assert all(block_of(m, p) == 2 for p, _ in blocks)
    m.write(blocks[2][0], 0x123, b"survives")
    m.offline_memory_block(2, migrate=True)
    assert not m.memory_blocks[2].online
    assert sorted((old, order) for old, _, order, _ in moves) == sorted(blocks)
    assert {reason for *_, reason in moves} == {"memory_hotplug"}
    new = dict((old, new) for old, new, _, _ in moves)
    assert all(not 4096 <= n < 4096 + BLOCK for n in new.values())
    assert all(m.is_allocated(n) for n in new.values())
    assert m.read(new[blocks[2][0]], 0x123, 8) == b"survives"
    # Everything still allocated is the migrated copies: nothing leaked, nothing lost.
    heads, orders = m.allocated_blocks()
    assert sorted(zip(heads.tolist(), orders.tolist())) == sorted((new[p], o) for p, o in blocks)
    check_invariants(m)


def test_without_migration_the_same_block_is_busy(snapshot) -> None:
    m = Machine(SMALL)
    m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
    m.drain_all_pages()
    snap = snapshot(m)
    with pytest.raises(HotplugError, match=r"offline failed \(-EBUSY\): pfn 0x1000 is allocated \(order 0\); "
                                           r"free it, or offline with migration"):
        m.offline_memory_block(2)
    snap.assert_unchanged()


def test_unmovable_page_fails_it_with_nothing_changed(snapshot) -> None:
    m = Machine(SMALL)
    m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 1)      # movable, block 2
    kernel = m.alloc_pages(G.GFP_KERNEL, 0)        # unmovable, same zone, steals from block 2's free pages
    assert block_of(m, kernel) == 2
    m.drain_all_pages()
    snap = snapshot(m)
    with pytest.raises(HotplugError, match=rf"-EBUSY\): pfn {kernel:#x} is allocated .*it cannot be migrated"):
        m.offline_memory_block(2, migrate=True)
    snap.assert_unchanged()  # checked before isolating: no pageblock changed type, nothing moved
    check_invariants(m)


def test_nowhere_to_migrate_to_undoes_the_isolation() -> None:
    # A 16 MiB machine: blocks 0 and 1 (all DMA). Fill it with movable pages,
    # free three in block 1: block 0's pages cannot all leave.
    m = no_reserves(Machine(SMALL.with_(memory=16 * MiB)))
    pages = []
    while True:  # every page: no watermark floor, and what a refill left on a per-CPU list too
        while (p := m.alloc_pages(G.GFP_HIGHUSER_MOVABLE | G.__GFP_NOWARN, 0)) is not None:
            pages.append(p)
        if not m.drain_all_pages():
            break
    in_block1 = [p for p in pages if block_of(m, p) == 1][:3]
    for p in in_block1:
        m.free_pages(p, 0)
    m.drain_all_pages()
    types_before = m.pb_mt.copy()
    with pytest.raises(HotplugError, match=r"memory block 0: offline failed \(-ENOMEM\): nowhere outside the block"):
        m.offline_memory_block(0, migrate=True)
    assert m.memory_blocks[0].online
    assert np.array_equal(m.pb_mt, types_before)           # isolation undone
    assert MIGRATE_ISOLATE not in set(m.pb_mt[: BLOCK >> m.pageblock_order].tolist())
    assert m.nr_free_pages == 3                              # the three migrated pages' old homes, free again
    # Three pages did move (into block 1's three holes) and stay moved, as in the kernel.
    assert sum(1 for p in range(BLOCK, 2 * BLOCK) if m.is_allocated(p)) == BLOCK
    check_invariants(m)


def test_isolated_free_memory_is_never_handed_out() -> None:
    m = Machine(SMALL)
    saved = m.isolate_range(4096, 4096 + BLOCK)
    assert set(m.pb_mt[4096 >> 9 : (4096 + BLOCK) >> 9].tolist()) == {MIGRATE_ISOLATE}
    got = [m.alloc_pages(G.GFP_KERNEL, o) for o in (0, 3, 9, 10) for _ in range(3)]
    assert all(p is not None and not 4096 <= p < 4096 + BLOCK for p in got)
    check_invariants(m)
    m.unisolate_range(4096, 4096 + BLOCK, saved)
    assert set(m.pb_mt[4096 >> 9 : (4096 + BLOCK) >> 9].tolist()) == {MIGRATE_MOVABLE}
    check_invariants(m)


def test_offline_with_migration_then_online_again() -> None:
    m = Machine(SMALL)
    boot_free = m.nr_free_pages
    live = [m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0) for _ in range(40)]
    m.offline_memory_block(2, migrate=True)
    m.online_memory_block(2)
    check_invariants(m)
    heads, _ = m.allocated_blocks()
    for p in heads.tolist():
        m.free_pages(p, 0)
    m.drain_all_pages()
    assert m.nr_free_pages == boot_free and len(live) == 40
    check_invariants(m)


def test_take_free_range_splits_the_blocks_that_reach_outside() -> None:
    """The allocator's range removal: pages inside are taken, pieces outside stay free and listed."""
    m = Machine(SMALL)
    m.drain_all_pages()
    p = m.alloc_pages(G.GFP_KERNEL, 10)  # a whole free order-10 block, then give it back
    m.free_pages(p, 10)
    m.drain_all_pages()
    assert m.page_kind(p) == (PageKind.FREE, 10, p)
    free_before = m.nr_free_pages
    start, end = p + 3, p + 9  # straddles no block edge but splits the order-10 block
    assert m.take_free_range(start, end) == 6
    assert m.nr_free_pages == free_before - 6
    assert all(m.page_kind(q).kind is PageKind.NONE for q in range(start, end))
    # What is left around it is free, in maximal aligned blocks: [p, p+3) and [p+9, p+1024).
    assert m.page_kind(p) == (PageKind.FREE, 1, p) and m.page_kind(p + 2) == (PageKind.FREE, 0, p + 2)
    assert m.page_kind(p + 9) == (PageKind.FREE, 0, p + 9) and m.page_kind(p + 10) == (PageKind.FREE, 1, p + 10)
    assert m.page_kind(p + 512) == (PageKind.FREE, 9, p + 512)
    # Allocated pages inside a range are left alone and not counted.
    q = m.alloc_pages(G.GFP_KERNEL, 0)
    m.drain_all_pages()
    assert m.take_free_range(q, q + 1) == 0 and m.is_allocated(q)


def test_take_free_range_past_the_end_of_memory_takes_what_exists() -> None:
    m = Machine(SMALL)
    m.drain_all_pages()
    n = m.geometry.max_pfn
    free_before = m.nr_free_pages
    taken = m.take_free_range(n - 16, n + 4096)  # a range reaching past max_pfn, as a memory block may
    assert taken == 16 and m.nr_free_pages == free_before - 16


def test_isolated_free_pages_are_not_counted_free_while_offlining() -> None:
    """6.12's ``account_freepages`` skips MIGRATE_ISOLATE: when ``offline_pages`` isolates a block
    (``set_migratetype_isolate``), its free pages leave NR_FREE_PAGES at once (MemFree drops)."""
    from pageext_core.mm import stats
    from pageext_core.mm.hotplug import MEM_GOING_OFFLINE

    m = Machine(SMALL)
    p = m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
    m.drain_all_pages()
    assert block_of(m, p) == 2
    free_before = m.nr_free_pages
    in_block = int(m.free_pages_mask()[4096 : 4096 + BLOCK].sum())  # the block's free pages
    seen: list[tuple[int, int, str]] = []

    def notifier(event: int, start: int, nr: int) -> None:
        if event == MEM_GOING_OFFLINE:
            seen.append((m.nr_free_pages, m.nr_isolated_free_pages, stats.meminfo(m).splitlines()[1]))

    m.memory_notifiers.append(notifier)
    m.offline_memory_block(2, migrate=True)
    [(free, isolated, memfree)] = seen
    # the migrated page's target was allocated elsewhere (one page less free there)
    assert isolated == in_block + 1  # the migrated page came back to its (isolated) block
    assert free == free_before - in_block - 1
    assert memfree == f"MemFree:        {free * 4:8d} kB"
    assert m.nr_isolated_free_pages == 0 and m.nr_free_pages == free_before - in_block - 1
    check_invariants(m)


def test_offline_memory_block_migrate_watermark_leaves_out_isolated_free_pages_as_account_freepages() -> None:
    """6.12's ``account_freepages`` does not count free pages on MIGRATE_ISOLATE lists in NR_FREE_PAGES,
    and ``__zone_watermark_ok`` checks NR_FREE_PAGES: while ``offline_memory_block(..., migrate=True)``
    has the block isolated, its free pages cannot let a migration target pass the watermark.

    Memory is filled to the MIN watermark, then block 2 is freed but for one movable page.  Counted
    with the block's free pages, DMA32 is far above its marks; without them it is at MIN, so the
    migration target cannot be allocated (no reclaim is modelled) and the offline fails with -ENOMEM,
    the page staying where it was and the isolation undone.
    """
    m = Machine(SMALL)
    taken = []
    while (p := m.alloc_pages(G.GFP_HIGHUSER_MOVABLE | G.__GFP_NOWARN, 0)) is not None:
        taken.append(p)
    in_block = sorted(p for p in taken if block_of(m, p) == 2)
    assert len(in_block) == BLOCK
    keep = in_block[100]
    for p in in_block:
        if p != keep:
            m.free_pages(p, 0)
    m.drain_all_pages()
    z = m.zone_of(keep)
    wmin = m.zone_wmark[z][0]
    block_free = BLOCK - 1
    assert m.zone_free[z] > m.zone_wmark[z][2] + block_free // 2  # with the block's free pages: above HIGH
    assert m.zone_free[z] - block_free <= wmin + 1  # without them: at MIN
    before = m.nr_free_pages
    with pytest.raises(HotplugError, match=r"-ENOMEM"):
        m.offline_memory_block(2, migrate=True)
    assert m.memory_blocks[2].online and m.is_allocated(keep)
    assert m.nr_isolated_free_pages == 0 and m.nr_free_pages == before
    check_invariants(m)
