"""Per-CPU lists (6.12): orders 0-3 and THP, one ``high`` per CPU and zone, refill and bulk-free sizes.

On ``tiny`` (64 MiB, nothing reserved, 2 CPUs on one node) DMA32 manages
12288 pages and DMA 4096, so by the kernel's zone_batchsize: DMA32 batch =
12288>>10 = 12, /4 = 3, rounddown_pow_of_two(3 + 1) - 1 = 3; DMA batch 1.
min_free_kbytes = int_sqrt(65536 kB * 16) = 1024 kB = 256 pages, so DMA32's
MIN = 256 * 12288 / 16384 = 192 and LOW = 192 + 192/4 = 240; DMA's LOW = 80.
zone_highsize: high_min = LOW / 2 CPUs (at least 4 x batch), high_max =
managed / 8 / 2 CPUs: DMA32 (120, 768), DMA (40, 256).
"""
from __future__ import annotations

import pytest

from pageext_core.mm import Machine, check_invariants, stats
from pageext_core.mm import gfp as G
from pageext_core.mm.buddy import K_ALLOC, K_FREE, K_PCP, NR_PCP_LISTS, zone_batchsize

KERNEL, MOVABLE = G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE
DMA32 = 1


@pytest.mark.parametrize("managed,batch", [
    (0, 1), (4096, 1), (12288, 3), (249857, 63), (1 << 20, 63), (1 << 28, 63),
    # 100000 >> 10 = 97, /4 = 24, 24 + 12 = 36 -> 32 - 1
    (100000, 31),
])
def test_zone_batchsize(managed, batch):
    assert zone_batchsize(managed) == batch


def test_batches_and_high_limits_of_tiny(tiny: Machine):
    """``zone_set_pageset_high_and_batch``/``zone_highsize``: high_min from LOW, high_max from managed/8."""
    assert tiny.pcp_batch[:2] == [1, 3]
    assert tiny.zone_wmark[1][:3] == (192, 240, 288)
    assert tiny.pcp_high_limits[:2] == [(40, 256), (120, 768)]
    # A CPU's high starts at 0 (a boot pageset) and is clamped into [high_min, high_max] on first use.
    assert tiny.pcp_stats(0, DMA32) == (0, 0, 3)
    tiny.alloc_pages(KERNEL, 0)
    count, high, batch = tiny.pcp_stats(0, DMA32)
    assert (count, batch) == (2, 3) and 120 <= high <= 768
    assert tiny.pcp_stats(1, DMA32) == (0, 0, 3)


def test_runs_of_order0_allocations_double_the_refill():
    """``nr_pcp_alloc``: each refill of an order-0 list takes batch << alloc_factor pages, alloc_factor + 1 up to 5."""
    from tests.mm.conftest import TINY

    m = Machine(TINY)
    taken = []
    for _ in range(94):
        before = m.zone_free[DMA32]
        m.alloc_pages(KERNEL, 0)
        if m.zone_free[DMA32] != before:
            taken.append(before - m.zone_free[DMA32])
    # refills at allocations 1, 4, 10, 22, 46, 94: 3, 6, 12, 24, 48, then 96 (3 << 5, the cap)
    assert taken == [3, 6, 12, 24, 48, 96]
    assert m.pcp_snapshot(0, DMA32).alloc_factor == 5
    m.free_pages(4096, 0)
    assert m.pcp_snapshot(0, DMA32).alloc_factor == 2  # a free halves it (free_unref_page_commit)
    check_invariants(m)


def test_orders_1_to_3_and_thp_use_the_per_cpu_lists(tiny: Machine):
    """``pcp_allowed_order``/``order_to_pindex``: orders 0-3 and 9 on 14 lists (3 x order + type; THP 12/13)."""
    p = tiny.alloc_pages(KERNEL, 2)
    # the empty list 3*2 + Unmovable = 6 is refilled with max(batch >> 2, 2) = 2 order-2 blocks
    lists = tiny.pcp_snapshot(0, DMA32).lists
    assert len(lists) == NR_PCP_LISTS
    assert [len(pl) for pl in lists] == [0] * 6 + [1] + [0] * 7
    assert tiny.page_kind(lists[6][0]) == (K_PCP, 2, p + 4)
    assert tiny.nr_pcp_pages == 4
    q = tiny.alloc_pages(MOVABLE, 3)
    tiny.free_pages(q, 3)
    assert q in tiny.pcp_snapshot(0, DMA32).lists[3 * 3 + 1] and tiny.page_kind(q) == (K_PCP, 3, q)
    t = tiny.alloc_pages(MOVABLE | G.__GFP_COMP, 9)
    lists = tiny.pcp_snapshot(0, DMA32).lists
    assert len(lists[13]) == 1  # the THP order's Movable list: the refill took 2 blocks
    other = lists[13][0]
    tiny.free_pages(t, 9)
    # t goes to the list's head; 1036 pages are over high, and the bulk free starts with
    # this list's oldest block: the other refilled one goes back to the buddy.
    assert tiny.pcp_snapshot(0, DMA32).lists[13] == (t,) and tiny.page_kind(other)[0] == K_FREE
    pcp_pages = tiny.nr_pcp_pages
    r = tiny.alloc_pages(KERNEL, 4)  # order 4: never through the per-CPU lists
    assert tiny.nr_pcp_pages == pcp_pages and tiny.page_kind(r)[1] == 4
    tiny.free_pages(r, 4)
    assert tiny.nr_pcp_pages == pcp_pages and tiny.page_kind(r)[0] == K_FREE
    check_invariants(tiny)


def test_high_applies_to_the_whole_pcp_and_the_bulk_free_goes_round_robin(tiny: Machine):
    """``free_unref_page_commit``/``free_pcppages_bulk``: one ``high`` over all lists; the bulk free
    starts with the list just freed to and takes the oldest pages, then goes on to the next lists.
    """
    mv = [tiny.alloc_pages(MOVABLE, 0) for _ in range(100)]
    un = [tiny.alloc_pages(KERNEL, 0) for _ in range(60)]
    tiny.drain_all_pages()
    tiny.set_cpu(1)  # a fresh CPU: its high is clamped up to high_min = 120 on first use
    for p in mv:
        tiny.free_pages(p, 0)
    assert tiny.pcp_snapshot(1, DMA32).count == 100  # 100 pages on one list: no per-list limit
    for p in un[:19]:
        tiny.free_pages(p, 0)
    pcp = tiny.pcp_snapshot(1, DMA32)
    assert pcp.count == 119 and pcp.high == 120
    tiny.free_pages(un[19], 0)
    pcp = tiny.pcp_snapshot(1, DMA32)
    # count 120 >= high 120: nr_pcp_free = clamp(free_count, batch, high - batch) = clamp(96, 3, 117);
    # free_count stopped at batch << 5 = 96.  The 20 Unmovable pages (the list just freed to) go
    # first, then the 76 oldest Movable ones.
    assert pcp.free_count == 96
    assert pcp.count == 120 - 96
    assert all(tiny.page_kind(p)[0] == K_FREE for p in un[:20])
    assert all(tiny.page_kind(p)[0] == K_FREE for p in mv[:76])
    assert all(tiny.page_kind(p)[0] == K_PCP for p in mv[76:])
    check_invariants(tiny)


def test_order0_allocation_refills_a_batch(tiny: Machine):
    pfn = tiny.alloc_pages(KERNEL, 0)
    assert pfn == 4096
    assert tiny.nr_pcp_pages == 2
    assert tiny.zone_free[DMA32] == 12288 - 3
    assert tiny.page_kind(4097)[0] == K_PCP and tiny.page_kind(4098)[0] == K_PCP
    assert tiny.is_free(4097) and not tiny.is_allocated(4097)
    assert tiny.nr_allocated_pages == 1
    check_invariants(tiny)


def test_order0_free_goes_to_the_list_and_comes_back_hot(tiny: Machine):
    pfn = tiny.alloc_pages(KERNEL, 0)
    before = stats.buddyinfo(tiny)
    free_before = tiny.nr_free_pages
    tiny.free_pages(pfn, 0)
    assert tiny.page_kind(pfn)[0] == K_PCP
    assert stats.buddyinfo(tiny) == before  # not on the buddy lists
    assert tiny.nr_free_pages == free_before  # NR_FREE_PAGES leaves per-CPU pages out
    assert tiny.nr_pcp_pages == 3
    assert "PerCPULists:          12 kB" in stats.pageext_meminfo(tiny)  # pageext's own figure, not /proc/meminfo's
    assert tiny.alloc_pages(KERNEL, 0) == pfn  # last freed, first handed out
    check_invariants(tiny)


def test_drain_returns_every_cpu_and_zone(tiny: Machine):
    """``drain_all_pages``: every CPU's lists of every zone back to the buddy (in batch << 5 chunks)."""
    pfns = [tiny.alloc_pages(KERNEL, 0) for _ in range(20)]
    for p in pfns:
        tiny.free_pages(p, 0)
    pcp_pages = tiny.nr_pcp_pages
    assert pcp_pages > 0
    assert tiny.drain_all_pages() == pcp_pages
    assert tiny.nr_pcp_pages == 0
    assert tiny.zone_free[DMA32] == 12288
    check_invariants(tiny)


def test_lists_are_per_cpu(tiny: Machine):
    p = tiny.alloc_pages(KERNEL, 0)
    tiny.free_pages(p, 0)
    tiny.set_cpu(1)
    q = tiny.alloc_pages(KERNEL, 0)
    assert q != p and q == 4099  # CPU 1 refills its own batch: 4099, 4100, 4101
    assert tiny.page_kind(p)[0] == K_PCP  # still on CPU 0's list
    assert tiny.nr_pcp_pages == 3 + 2
    assert tiny.drain_all_pages() == 5  # every CPU's lists
    assert tiny.nr_pcp_pages == 0
    assert tiny.page_kind(q) == (K_ALLOC, 0, q)
    assert tiny.zone_free[DMA32] == 12288 - 1
    check_invariants(tiny)


def test_list_chosen_by_pageblock_migratetype(tiny: Machine):
    p = tiny.alloc_pages(MOVABLE, 0)
    assert p == 4096
    tiny.free_pages(p, 0)
    q = tiny.alloc_pages(KERNEL, 0)  # the Unmovable list is empty: the freed Movable page is not used
    assert q != p
    assert tiny.alloc_pages(MOVABLE, 0) == p


def test_drain_returns_everything_and_merges(tiny: Machine):
    boot = stats.buddyinfo(tiny)
    assert tiny.drain_all_pages() == 0
    pfns = []
    for cpu in (0, 1):
        tiny.set_cpu(cpu)
        pfns += [(cpu, tiny.alloc_pages(g, 0)) for g in (KERNEL, MOVABLE, KERNEL | G.__GFP_RECLAIMABLE, KERNEL | G.__GFP_DMA)]
    for cpu, p in pfns:
        tiny.set_cpu(1 - cpu)  # free from the other CPU
        tiny.free_pages(p, 0)
    assert tiny.nr_pcp_pages > 0
    tiny.drain_all_pages()
    assert tiny.nr_pcp_pages == 0
    assert tiny.nr_free_pages == 16384
    assert stats.buddyinfo(tiny) == boot
    check_invariants(tiny)


def test_dma_batch_of_one(tiny: Machine):
    p = tiny.alloc_pages(KERNEL | G.__GFP_DMA, 0)
    assert p == 0
    assert tiny.nr_pcp_pages == 0


def test_set_cpu_out_of_range(tiny: Machine):
    with pytest.raises(ValueError, match="CPUs 0..1"):
        tiny.set_cpu(2)
    assert tiny.cpu == 0
