"""Watermarks, lowmem_reserve, ALLOC_NOFRAGMENT, 6.12's fallback and /proc/zoneinfo (issue 13).

Every expected figure is worked out here from the kernel's formulas, not
read back from the model.
"""
from __future__ import annotations

import math

import pytest

from pageext_core.mm import GiB, Machine, MachineConfig, MiB, check_invariants, stats
from pageext_core.mm import gfp as G
from pageext_core.mm.buddy import K_ALLOC, K_FREE, K_PCP
from pageext_core.mm.constants import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from pageext_core.mm.zoneinfo import zoneinfo
from tests.mm.conftest import TINY

DMA, DMA32, NORMAL = 0, 1, 2
NOWARN = G.__GFP_NOWARN


# -- item 4: the figures ----------------------------------------------------------------------------


def test_min_free_kbytes_watermarks_and_protection_of_a_1gib_machine() -> None:
    """``calculate_min_free_kbytes``, ``__setup_per_zone_wmarks``, ``setup_per_zone_lowmem_reserve``."""
    m = Machine(MachineConfig(memory=1 * GiB))
    dma, dma32 = m.zone_present[DMA] - m.zone_reserved[DMA], m.zone_present[DMA32] - m.zone_reserved[DMA32]
    lowmem = dma + dma32
    assert m.min_free_kbytes == math.isqrt(lowmem * 4 * 16)
    pages_min = m.min_free_kbytes // 4
    for zone, managed in ((DMA, dma), (DMA32, dma32)):
        tmp = pages_min * managed // lowmem
        step = max(tmp // 4, managed * 10 // 10000)
        assert m.zone_wmark[zone] == (tmp, tmp + step, tmp + 2 * step, tmp + 3 * step)
    assert m.zone_wmark[3] == (32, 32, 32, 32)  # Movable: clamp(managed / 1024, 32, 128), even when empty
    # DMA protects itself from DMA32 and higher requests with DMA32's managed pages / 256
    assert m.zone_protection[DMA] == [0, dma32 // 256, dma32 // 256, dma32 // 256]
    assert m.zone_protection[DMA32] == [0, 0, 0, 0]  # Normal is empty


def test_sysctl_writes_recompute_the_marks(tiny: Machine) -> None:
    """``min_free_kbytes_sysctl_handler`` and ``lowmem_reserve_ratio_sysctl_handler``."""
    tiny.set_min_free_kbytes(4096)  # 1024 pages: DMA32 gets 1024 * 12288 / 16384 = 768
    assert tiny.zone_wmark[DMA32][:2] == (768, 768 + 192)
    assert tiny.pcp_high_limits[DMA32][0] == 960 // 2  # high_min follows LOW
    tiny.set_lowmem_reserve_ratio([32, 256, 32, 0])
    assert tiny.zone_protection[DMA] == [0, 12288 // 32, 12288 // 32, 12288 // 32]
    with pytest.raises(ValueError, match="vm.min_free_kbytes"):
        tiny.set_min_free_kbytes(-1)
    with pytest.raises(ValueError, match="vm.lowmem_reserve_ratio"):
        tiny.set_lowmem_reserve_ratio([1, 2])


# -- item 4: the check on every allocation -------------------------------------------------------------


def _until_fail(m: Machine, gfp: int) -> int:
    n = 0
    while m.alloc_pages(gfp | NOWARN, 0) is not None:
        n += 1
    return n


def test_gfp_kernel_stops_at_min_and_gfp_atomic_goes_to_three_eighths(tiny: Machine) -> None:
    """``__zone_watermark_ok``: free must stay above MIN + lowmem_reserve; ``ALLOC_MIN_RESERVE``
    (__GFP_HIGH) halves MIN and ``ALLOC_NON_BLOCK`` (no direct reclaim) takes a quarter more off.

    tiny: MIN DMA32 192, DMA 64; a GFP_KERNEL request's highest zone is Normal, so
    DMA also keeps its protection of 12288 / 256 = 48.
    """
    assert _until_fail(tiny, G.GFP_KERNEL) > 0
    assert tiny.nr_pcp_pages == 0  # the failing request drained the lists before giving up
    assert tiny.zone_free[DMA32] <= 192 and tiny.zone_free[DMA] <= 64 + 48
    assert tiny.alloc_pages(G.GFP_NOWAIT, 0) is None  # no __GFP_HIGH: the same MIN
    n = _until_fail(tiny, G.GFP_ATOMIC)
    assert n > 0
    # (GFP_ATOMIC may not reclaim, so nothing drained the per-CPU lists: the buddy's free count is checked)
    assert tiny.zone_free[DMA32] <= 192 * 3 // 8 and tiny.zone_free[DMA] <= 64 * 3 // 8 + 48
    # (a per-CPU refill that passed the check may take the buddy lower: rmqueue_bulk checks no mark)
    check_invariants(tiny)


def test_a_failure_at_the_watermark_is_reported_like_warn_alloc(tiny: Machine) -> None:
    """``warn_alloc`` when ``__alloc_pages_slowpath`` gives up (no reclaim, compaction or OOM killer)."""
    _until_fail(tiny, G.GFP_KERNEL)
    assert tiny.nr_free_pages > 0  # memory is left, below the marks
    assert tiny.alloc_pages(G.GFP_KERNEL, 0) is None
    assert tiny.log.grep("page allocation failure: order:0, mode:0xcc0(GFP_KERNEL)")


def test_memalloc_ignores_the_marks(tiny: Machine) -> None:
    """``__gfp_pfmemalloc_flags``: __GFP_MEMALLOC allocates with ``ALLOC_NO_WATERMARKS``."""
    _until_fail(tiny, G.GFP_ATOMIC)
    assert tiny.alloc_pages(G.GFP_ATOMIC | NOWARN, 0) is None
    assert tiny.alloc_pages(G.GFP_ATOMIC | G.__GFP_MEMALLOC, 0) is not None


def test_zone_below_high_is_set_by_an_allocation_and_cleared_by_a_free(tiny: Machine) -> None:
    """``get_page_from_freelist`` sets ZONE_BELOW_HIGH when a zone fails HIGH; ``free_unref_page_commit``
    clears it after a bulk free once the zone is above HIGH again."""
    pfns = []
    while tiny.zone_free[DMA32] > 288 + 20:
        pfns.append(tiny.alloc_pages(G.GFP_KERNEL, 0))
    assert not tiny.zone_below_high[DMA32]
    while not tiny.zone_below_high[DMA32]:
        pfns.append(tiny.alloc_pages(G.GFP_KERNEL, 0))
    assert tiny.zone_free[DMA32] <= 288
    for p in pfns:
        tiny.free_pages(p, 0)
    tiny.free_pages(tiny.alloc_pages(G.GFP_KERNEL, 0), 0)
    assert tiny.zone_free[DMA32] > 288 and not tiny.zone_below_high[DMA32]


# -- item 3: ALLOC_NOFRAGMENT ------------------------------------------------------------------------


def test_nofragment_sends_unmovable_to_dma32_before_mixing_a_normal_pageblock() -> None:
    """``alloc_flags_nofragment``: preferred zone Normal, so ``__rmqueue_fallback`` may only take whole
    pageblocks there; ``get_page_from_freelist`` drops the flag only after every zone failed.

    DMA [0, 4096), DMA32 [4096, 8192), Normal [8192, 16384).  Every Normal pageblock
    gets its lower half allocated Movable: its free memory is order-8 Movable blocks
    only, no free block of a pageblock or more.
    """
    m = Machine(TINY.with_(dma32_limit=32 * MiB))
    for pb in range(16, 32):
        assert m.alloc_pages_at(pb << 9, 8, G.GFP_HIGHUSER_MOVABLE) == pb << 9
    types = m.pb_mt[16:32].copy()
    p = m.alloc_pages(G.GFP_KERNEL, 0)
    assert 4096 <= p < 8192  # DMA32: a whole Movable block claimed there instead
    assert (m.pb_mt[16:32] == types).all() and (types == MIGRATE_MOVABLE).all()
    # A DMA32 request (preferred zone DMA32) never gets the flag: with the same state
    # it would not matter, so show the retry instead: use up DMA32 and DMA for
    # unmovable requests, and the next GFP_KERNEL request drops the flag.
    while m.alloc_pages(G.GFP_KERNEL | G.__GFP_DMA32 | NOWARN, 0) is not None:
        pass
    q = m.alloc_pages(G.GFP_KERNEL, 0)
    assert q is not None and q >= 8192
    assert m.pb_mt[q >> 9] == MIGRATE_UNMOVABLE  # now a Normal pageblock was claimed (256 free >= 256)
    check_invariants(m)


def test_no_nofragment_when_the_preferred_zone_is_not_normal(tiny: Machine) -> None:
    """``alloc_flags_nofragment`` returns no NOFRAGMENT unless the preferred zone is ZONE_NORMAL."""
    assert tiny.buddy.alloc_flags(G.GFP_KERNEL)[0][0] & 0x100 == 0  # tiny has no Normal zone
    m = Machine(TINY.with_(dma32_limit=32 * MiB))
    assert m.buddy.alloc_flags(G.GFP_KERNEL)[0][0] & 0x100
    assert m.buddy.alloc_flags(G.GFP_KERNEL | G.__GFP_DMA32)[0][0] & 0x100 == 0
    assert m.buddy.alloc_flags(G.GFP_KERNEL)[1] & 0x100 == 0  # the slow path never sets it


# -- item 10: 6.12's __rmqueue_fallback --------------------------------------------------------------


def test_fallback_takes_the_largest_block_and_splits_it_when_it_cannot_claim(roomy: Machine) -> None:
    """``__rmqueue_fallback`` (6.12): largest order first; ``steal_suitable_fallback`` cannot claim
    (128 free + 0 alike < 256), so the order-7 block itself is split, its remainders staying Movable.
    6.15's ``__rmqueue_steal`` would take the free order-0 page instead.
    """
    m = roomy
    while m.alloc_pages(G.GFP_HIGHUSER_MOVABLE | NOWARN, 9) is not None:  # everything, Movable
        pass
    m.drain_all_pages()
    while m.alloc_pages(G.GFP_HIGHUSER_MOVABLE | NOWARN, 9) is not None:
        pass
    assert m.nr_free_pages == 0 and m.nr_pcp_pages == 0
    m.free_pages(4096, 9)
    m.drain_all_pages()
    assert [m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 7) for _ in range(3)] == [4096, 4224, 4352]  # 4480/7 free
    m.split_page(4608, 9)
    m.free_pages(4700, 0)
    m.drain_all_pages()  # 4700/0: a free Movable page in the next pageblock
    p = m.alloc_pages(G.GFP_KERNEL, 0)
    assert p == 4480
    assert m.page_kind(4700)[0] == K_FREE  # not touched
    assert m.pb_mt[8] == m.pb_mt[9] == MIGRATE_MOVABLE  # nothing claimed
    assert m.page_kind(p)[0] == K_ALLOC
    check_invariants(m)


def test_claim_moves_the_pageblock_then_takes_the_smallest_block_of_the_type(roomy: Machine) -> None:
    """``steal_suitable_fallback``: free + alike >= half a pageblock: ``__move_freepages_block``, then
    ``__rmqueue_smallest`` of the request's type."""
    m = roomy
    while m.alloc_pages(G.GFP_HIGHUSER_MOVABLE | NOWARN, 9) is not None:
        pass
    m.drain_all_pages()
    while m.alloc_pages(G.GFP_HIGHUSER_MOVABLE | NOWARN, 9) is not None:
        pass
    m.free_pages(4096, 9)
    m.drain_all_pages()
    assert m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 8) == 4096  # 4352/8 free: 256 >= 256
    p = m.alloc_pages(G.GFP_KERNEL, 0)
    assert m.pb_mt[8] == MIGRATE_UNMOVABLE and p == 4352
    check_invariants(m)


# -- /proc/zoneinfo ------------------------------------------------------------------------------------


def test_zoneinfo_of_a_fresh_machine(tiny: Machine) -> None:
    """``zoneinfo_show_print`` (6.12): the kernel's lines, 3-line pagesets, unpopulated zones cut short.

    tiny: min_free_kbytes = isqrt(65536 * 16) = 1024 kB = 256 pages; DMA MIN 256 * 4096 / 16384 = 64,
    step max(64 / 4, 4096 * 10 / 10000) = 16; DMA32 MIN 192, step 48.  vm stats threshold:
    2 * fls(2 CPUs) * (1 + fls(managed >> 15 = 0)) = 4.
    """
    def pagesets(batch: int) -> str:
        return "".join(f"\n    cpu: {c}\n              count: 0\n              high:  0\n              batch: {batch}"
                       "\n  vm stats threshold: 4" for c in (0, 1))

    want = (
        "Node 0, zone      DMA"
        "\n  pages free     4096\n        boost    0\n        min      64\n        low      80"
        "\n        high     96\n        promo    112\n        spanned  4096\n        present  4096"
        "\n        managed  4096\n        cma      0\n        protection: (0, 48, 48, 48)"
        "\n      nr_free_pages 4096\n  pagesets" + pagesets(1)
        + "\n  node_unreclaimable:  0\n  start_pfn:           0\n"
        "Node 0, zone    DMA32"
        "\n  pages free     12288\n        boost    0\n        min      192\n        low      240"
        "\n        high     288\n        promo    336\n        spanned  12288\n        present  12288"
        "\n        managed  12288\n        cma      0\n        protection: (0, 0, 0, 0)"
        "\n      nr_free_pages 12288\n  pagesets" + pagesets(3)
        + "\n  node_unreclaimable:  0\n  start_pfn:           4096\n"
        "Node 0, zone   Normal"
        "\n  pages free     0\n        boost    0\n        min      0\n        low      0"
        "\n        high     0\n        promo    0\n        spanned  0\n        present  0"
        "\n        managed  0\n        cma      0\n        protection: (0, 0, 0, 0)\n"
        "Node 0, zone  Movable"
        "\n  pages free     0\n        boost    0\n        min      32\n        low      32"
        "\n        high     32\n        promo    32\n        spanned  0\n        present  0"
        "\n        managed  0\n        cma      0\n        protection: (0, 0, 0, 0)\n"
    )
    assert zoneinfo(tiny) == want


def test_zoneinfo_shows_the_live_pagesets_and_reads_only(tiny: Machine, snapshot) -> None:
    """``high:`` is ``pcp->high`` as it is now; reading the report changes nothing."""
    tiny.alloc_pages(G.GFP_KERNEL, 0)  # CPU 0 refills 3: count 2, high 120 + 3 (nr_pcp_alloc)
    tiny.set_cpu(1)
    tiny.free_pages(tiny.alloc_pages(G.GFP_KERNEL, 2), 2)
    snap = snapshot(tiny)
    text = zoneinfo(tiny)
    snap.assert_unchanged()
    dma32 = text.split("zone    DMA32")[1].split("Node 0")[0]
    assert "    cpu: 0\n              count: 2\n              high:  123\n              batch: 3\n" in dma32
    count1 = tiny.pcp_snapshot(1, DMA32).count
    assert count1 == 8 and f"    cpu: 1\n              count: {count1}\n" in dma32
    assert f"  pages free     {tiny.zone_free[DMA32]}\n" in dma32
    assert tiny.page_kind(tiny.pcp_snapshot(1, DMA32).lists[6][-1])[0] == K_PCP


# -- item 9: free_high, and the marks after hotplug -----------------------------------------------------


def test_a_run_of_high_order_frees_empties_the_pcp(tiny: Machine) -> None:
    """``free_unref_page_commit``: for orders 1-3, free_count >= batch after a previous high-order free
    sets ``free_high``; ``nr_pcp_high`` then returns 0 and ``nr_pcp_free`` min(count, batch << 5)."""
    blocks = [tiny.alloc_pages(G.GFP_KERNEL, 1) for _ in range(3)]
    tiny.drain_all_pages()
    tiny.set_cpu(1)
    tiny.free_pages(blocks[0], 1)
    tiny.free_pages(blocks[1], 1)
    pcp = tiny.pcp_snapshot(1, DMA32)
    assert (pcp.count, pcp.free_count) == (4, 4)  # free_count 2 < batch 3 at the second free: kept
    tiny.free_pages(blocks[2], 1)
    pcp = tiny.pcp_snapshot(1, DMA32)
    assert pcp.count == 0  # free_high: all six pages went back
    assert pcp.high == 120  # max(high - (batch << 5), high_min)
    check_invariants(tiny)


def test_memory_hotplug_recomputes_min_free_kbytes_from_managed_minus_high() -> None:
    """``init_per_zone_wmark_min`` on memory online: ``nr_free_buffer_pages`` subtracts the HIGH marks
    in force, then the marks, protection and pcp limits follow the new zone sizes."""
    from tests.mm.test_hotplug import CFG

    m = Machine(CFG)
    managed_before = [m.zone_managed(z) for z in range(4)]
    high_before = [w[2] for w in m.zone_wmark]
    m.online_memory_block(8)
    managed = [m.zone_managed(z) for z in range(4)]
    assert managed[NORMAL] == managed_before[NORMAL] + 2048
    lowmem = sum(max(managed[z] - high_before[z], 0) for z in (DMA, DMA32, NORMAL))
    assert m.min_free_kbytes == math.isqrt(lowmem * 4 * 16)
    pages_min = m.min_free_kbytes // 4
    total = sum(managed[:3])
    assert m.zone_wmark[NORMAL][0] == pages_min * managed[NORMAL] // total
    assert m.zone_protection[DMA][NORMAL] == (managed[DMA32] + managed[NORMAL]) // 256
    low = m.zone_wmark[NORMAL][1]
    assert m.pcp_high_limits[NORMAL] == (max(low // 2, 4 * m.pcp_batch[NORMAL]),
                                         max(managed[NORMAL] // 8 // 2, 4 * m.pcp_batch[NORMAL]))


def test_memavailable_holds_back_each_zones_high_mark_and_largest_protection() -> None:
    """``calculate_totalreserve_pages`` (mm/page_alloc.c) and ``si_mem_available``: per zone, its largest
    lowmem_reserve plus its HIGH mark, at most its managed pages; MemAvailable is MemFree less that.
    Worked out here from what /proc/zoneinfo prints, not from the allocator's own tables."""
    m = Machine(MachineConfig(memory=1 * GiB))
    reserve = 0
    for block in zoneinfo(m).split("Node ")[1:]:
        fields = {ln.split()[0]: ln.split()[1:] for ln in block.splitlines()[1:] if ln.strip()}
        prot = [int(v.strip("(),")) for v in fields["protection:"]]
        reserve += min(max(prot) + int(fields["high"][0]), int(fields["managed"][0]))
    assert reserve == 976 + 21 + 1489  # DMA: protection 976 + high 21; DMA32: high 1489; the rest empty
    assert m.totalreserve_pages == reserve
    info = {ln.split(":")[0]: int(ln.split()[1]) for ln in stats.meminfo(m).splitlines()}
    assert info["MemAvailable"] == info["MemFree"] - reserve * 4
