"""Per-CPU lists for order-0 pages: refill in batches, free to the list, high mark, drain.

On ``tiny`` (64 MiB, nothing reserved) DMA32 manages 12288 pages and DMA
4096, so by the kernel's zone_batchsize: DMA32 batch = 12288>>10 = 12, /4 = 3,
rounddown_pow_of_two(3 + 1) - 1 = 3, high = 6 * 3 = 18; DMA batch 1.
"""
from __future__ import annotations

import pytest

from pageext_core.mm import Machine, check_invariants, stats
from pageext_core.mm import gfp as G
from pageext_core.mm.buddy import K_ALLOC, K_PCP, zone_batchsize

KERNEL, MOVABLE = G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE
DMA32 = 1


@pytest.mark.parametrize("managed,batch", [
    (0, 1), (4096, 1), (12288, 3), (249857, 63), (1 << 20, 63), (1 << 28, 63),
    # 100000 >> 10 = 97, /4 = 24, 24 + 12 = 36 -> 32 - 1
    (100000, 31),
])
def test_zone_batchsize(managed, batch):
    assert zone_batchsize(managed) == batch


def test_batches_of_tiny(tiny: Machine):
    assert tiny.pcp_batch[:2] == [1, 3]
    assert tiny.pcp_high[:2] == [6, 18]


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


def test_high_mark_returns_a_batch_to_the_buddy(tiny: Machine):
    pfns = [tiny.alloc_pages(KERNEL, 0) for _ in range(20)]
    # refills at allocations 1, 4, ..., 19: 7 batches of 3 = 21 pages left the buddy
    assert tiny.zone_free[DMA32] == 12288 - 21
    assert tiny.nr_pcp_pages == 1
    for p in pfns:
        tiny.free_pages(p, 0)
        assert tiny.nr_pcp_pages <= 18
    # the 18th free took the list to 19 > high: 3 cold pages went back; 16 + 2 more = 18
    assert tiny.nr_pcp_pages == 18
    assert tiny.zone_free[DMA32] == 12288 - 21 + 3
    check_invariants(tiny)
    assert tiny.drain_all_pages() == 18
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
