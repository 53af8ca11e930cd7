"""The buddy allocator: split, merge, migratetype fallback and claiming, zone fallback, failures.

Most tests use ``tiny`` (conftest): 64 MiB without holes or reservations, so
DMA is four free order-10 blocks at pfns 0, 1024, 2048, 3072 and DMA32 twelve
at 4096 + 1024*i, all on the Movable lists, lowest pfn handed out first.
"""
from __future__ import annotations

import pytest

from pageext_core.mm import (
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    BadPageState,
    DoubleFree,
    GiB,
    Machine,
    MachineConfig,
    MiB,
    OrderMismatch,
    Task,
    check_invariants,
    stats,
)
from pageext_core.mm import gfp as G
from pageext_core.mm.buddy import K_ALLOC, K_ALLOC_MOVABLE, K_FREE, K_PCP
from pageext_core.mm.callouts import Callout, Callouts
from pageext_core.mm.pageflags import PG_head, PG_lru
from tests.mm.conftest import no_reserves

# the ``tiny`` fixture's machine (conftest.py)
TINY = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)

NOWARN = G.__GFP_NOWARN
KERNEL, MOVABLE, RECLAIMABLE = G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_KERNEL | G.__GFP_RECLAIMABLE


def buddy_line(m: Machine, zone: str) -> list[int]:
    for line in stats.buddyinfo(m).splitlines():
        if line.split(",")[1].split()[1] == zone:
            return [int(x) for x in line.split()[4:]]
    raise AssertionError(f"no {zone} line")


def test_allocation_splits_the_lowest_block(tiny: Machine):
    pfn = tiny.alloc_pages(MOVABLE, 3)
    assert pfn == 4096
    assert tiny.page_kind(4096) == (K_ALLOC_MOVABLE, 3, 4096)
    # Order 3 goes through the per-CPU list (pcp_allowed_order): the refill took
    # max(batch >> 3, 2) = 2 order-3 blocks, 4096 and its split-off half 4104.
    assert tiny.page_kind(4104) == (K_PCP, 3, 4104)
    # the other upper halves of the split 4096..5119 stay free: 4112 (o4) ... 4608 (o9)
    for order in range(4, 10):
        half = 4096 + (1 << order)
        assert tiny.page_kind(half) == (K_FREE, order, half)
    assert buddy_line(tiny, "DMA32") == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 11]
    assert buddy_line(tiny, "DMA") == [0] * 10 + [4]
    assert tiny.nr_free_pages == 16384 - 16
    assert tiny.nr_pcp_pages == 8
    assert tiny.nr_allocated_pages == 8
    check_invariants(tiny)


def test_free_merges_with_free_buddies(tiny: Machine):
    a = tiny.alloc_pages(MOVABLE, 1)
    b = tiny.alloc_pages(MOVABLE, 1)
    assert (a, b) == (4096, 4098)  # b is a's buddy: both came in a's per-CPU refill of 2 order-1 blocks
    tiny.free_pages(a, 1)
    assert tiny.page_kind(a) == (K_PCP, 1, a)  # order 1 is freed to the per-CPU list first
    tiny.drain_all_pages()
    assert tiny.page_kind(a) == (K_FREE, 1, a)  # buddy still allocated: no merge
    assert buddy_line(tiny, "DMA32") == [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 11]
    check_invariants(tiny)
    tiny.free_pages(b, 1)
    tiny.drain_all_pages()
    assert tiny.page_kind(b) == (K_FREE, 10, 4096)  # merged all the way up
    assert buddy_line(tiny, "DMA32") == [0] * 10 + [12]
    assert (tiny.nr_allocs, tiny.nr_frees) == (2, 2)
    check_invariants(tiny)


def test_every_order_is_aligned_and_covers_its_pages(tiny: Machine):
    got = []
    for order in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 0, 7]:
        pfn = tiny.alloc_pages(KERNEL, order)
        assert pfn % (1 << order) == 0
        for p in (pfn, pfn + (1 << order) - 1):
            kind, o, head = tiny.page_kind(p)
            assert (kind, o, head) == (K_ALLOC, order, pfn)
        got.append((pfn, order))
    spans = sorted((p, p + (1 << o)) for p, o in got)
    assert all(e <= s2 for (_, e), (s2, _) in zip(spans, spans[1:]))
    check_invariants(tiny)


def test_exhaustion_fails_counts_and_logs(tiny: Machine):
    got = [tiny.alloc_pages(MOVABLE | NOWARN, 10) for _ in range(14)]
    # DMA32 first, ascending, then DMA: never upward from DMA.  The last block of
    # each zone stays: an order-10 request needs free - 1023 > MIN (+ lowmem_reserve
    # for DMA): DMA32 1024 - 1023 <= 192, DMA 1024 - 1023 <= 64 + 48.
    assert got == [4096 + 1024 * i for i in range(11)] + [0, 1024, 2048]
    assert tiny.zone_free[:2] == [1024, 1024]
    with tiny.context(task=Task(42, 40, "kworker/0:1")):
        assert tiny.alloc_pages(MOVABLE, 10) is None
    assert tiny.nr_alloc_failures == 1
    assert tiny.alloc_failures_by_order[10] == 1
    assert tiny.log.grep("page allocation failure") == [
        "kworker/0:1: page allocation failure: order:10, mode:0x100cca(GFP_HIGHUSER_MOVABLE), nodemask=(null),cpuset=/,mems_allowed=0"
    ]
    assert tiny.log.lines[-1][1] == "warn"
    check_invariants(tiny)


def test_nowarn_failure_is_counted_but_silent(tiny: Machine):
    for _ in range(14):
        tiny.alloc_pages(KERNEL, 10)
    while tiny.alloc_pages(KERNEL | NOWARN, 0) is not None:  # down to the watermarks
        pass
    n = len(tiny.log.lines)
    fails = tiny.nr_alloc_failures
    assert tiny.alloc_pages(KERNEL | NOWARN, 3) is None
    assert tiny.alloc_pages(KERNEL | NOWARN, 0) is None
    assert tiny.nr_alloc_failures == fails + 2
    assert tiny.alloc_failures_by_order[3] == 1
    assert len(tiny.log.lines) == n


def test_failure_warnings_are_rate_limited(tiny: Machine):
    """warn_alloc's ``nopage_rs`` (mm/page_alloc.c): one message per 10 s, the count of dropped ones on the next."""
    for _ in range(14):
        tiny.alloc_pages(KERNEL, 10)
    assert tiny.alloc_pages(KERNEL | G.__GFP_ZERO, 10) is None
    tiny.advance(1 * 10**9)
    assert tiny.alloc_pages(KERNEL | G.__GFP_ZERO, 10) is None  # 1 s later: suppressed (burst 1)
    text = "swapper/0: page allocation failure: order:10, mode:0xdc0(GFP_KERNEL|__GFP_ZERO), nodemask=(null),cpuset=/,mems_allowed=0"
    assert tiny.log.grep("page allocation failure") == [text]
    # __GFP_NOWARN is tested before the rate limit: it neither spends it nor counts as missed
    assert tiny.alloc_pages(KERNEL | NOWARN, 10) is None
    tiny.advance(5 * 10**9)
    assert tiny.alloc_pages(KERNEL | G.__GFP_ZERO, 10) is None  # 6 s after the first: still closed
    assert tiny.log.grep("suppressed") == []
    tiny.advance(5 * 10**9)  # 11 s after the first: the window has closed
    assert tiny.alloc_pages(KERNEL | G.__GFP_ZERO, 10) is None
    lines = [t for _, _, t in tiny.log.lines]
    i = lines.index("warn_alloc: 2 callbacks suppressed")
    # As warn_alloc prints it: the headline, then dump_stack (CPU line, hardware name, stack).
    assert lines[i + 1] == text
    assert lines[i + 2] == "CPU: 0 UID: 0 PID: 0 Comm: swapper/0 Not tainted 6.12.0-pageext #1"
    assert lines[i + 3].startswith("Hardware name: ")
    assert lines[i + 4 : i + 6] == ["Call Trace:", " <TASK>"] and lines[-1] == " </TASK>"
    assert tiny.log.grep("page allocation failure") == [text] * 2
    assert tiny.log.suppressed() == {"warn_alloc": 2}
    assert tiny.nr_alloc_failures == 5


def test_rate_limit_window_counts_simulated_time_only(tiny: Machine):
    for _ in range(14):
        tiny.alloc_pages(KERNEL, 10)
    for _ in range(3):
        tiny.alloc_pages(KERNEL, 10)
    tiny.advance(9 * 10**9)  # 9 s later the window is still open
    tiny.alloc_pages(KERNEL, 10)
    assert len(tiny.log.grep("page allocation failure")) == 1
    assert tiny.log.grep("suppressed") == []


# -- migratetypes: fallback, claiming, mixed pageblocks ---------------------------------------------


def test_first_unmovable_allocation_claims_a_whole_max_order_block(tiny: Machine):
    pfn = tiny.alloc_pages(KERNEL, 0)
    assert pfn == 4096
    # the order-10 block 4096..5119 is two pageblocks (8 and 9): both become Unmovable
    assert tiny.pb_mt[8] == tiny.pb_mt[9] == MIGRATE_UNMOVABLE
    assert all(int(x) == MIGRATE_MOVABLE for i, x in enumerate(tiny.pb_mt) if i not in (8, 9))
    assert tiny.nr_pageblock_claims == 2
    assert tiny.nr_fallbacks == 1
    assert tiny.page_kind(pfn)[0] == K_ALLOC
    check_invariants(tiny)


def test_reclaimable_prefers_claiming_the_largest_block(tiny: Machine):
    tiny.alloc_pages(KERNEL, 0)
    pfn = tiny.alloc_pages(RECLAIMABLE, 0)
    # the Unmovable block has only pieces up to order 9; a whole order-10 Movable block is claimed
    assert pfn == 5120
    assert tiny.pb_mt[10] == tiny.pb_mt[11] == MIGRATE_RECLAIMABLE
    assert tiny.nr_pageblock_claims == 4
    check_invariants(tiny)


def _fill_movable_order9(m: Machine) -> None:
    got = [m.alloc_pages(MOVABLE, 9) for _ in range(31)]
    # The THP order goes through the per-CPU lists, refilled two blocks at a time: the
    # 23rd allocation's refill took DMA32's last two blocks, and with no free page left
    # in DMA32's buddy lists the watermark check skips the zone (pcp pages are not
    # NR_FREE_PAGES): 15872 stays on the list until drained.
    assert got == [4096 + 512 * i for i in range(23)] + [512 * i for i in range(8)]
    m.drain_all_pages()
    assert m.alloc_pages(MOVABLE, 9) == 15872
    assert m.nr_pageblock_claims == 0 and m.nr_fallbacks == 0


def test_unmovable_claims_a_pageblock_that_is_half_free(roomy: Machine):
    tiny = roomy
    _fill_movable_order9(tiny)
    tiny.free_pages(4096, 9)
    tiny.drain_all_pages()  # the THP order is freed to the per-CPU list first
    assert tiny.alloc_pages(MOVABLE, 8) == 4096  # 4352..4607 (256 pages, half the block) stays free
    pfn = tiny.alloc_pages(KERNEL, 0)
    # free (256) + compatible (0) >= 512/2: the pageblock is claimed for Unmovable
    assert pfn == 4352
    assert tiny.pb_mt[8] == MIGRATE_UNMOVABLE
    assert tiny.nr_pageblock_claims == 1
    check_invariants(tiny)


def test_unmovable_steals_without_claiming_a_mostly_used_pageblock(roomy: Machine):
    """``steal_suitable_fallback``: too few free/alike pages to claim, so the found block is split."""
    tiny = roomy
    _fill_movable_order9(tiny)
    tiny.free_pages(4096, 9)
    tiny.drain_all_pages()
    assert [tiny.alloc_pages(MOVABLE, 7) for _ in range(3)] == [4096, 4224, 4352]
    # only 4480..4607 (128 pages) free: 128 < 256, so no claim; pages are stolen
    pfn = tiny.alloc_pages(KERNEL, 0)
    assert pfn == 4480
    assert tiny.pb_mt[8] == MIGRATE_MOVABLE  # a mixed block: Unmovable page in a Movable block
    assert tiny.page_kind(pfn)[0] == K_ALLOC
    assert tiny.nr_pageblock_claims == 0
    assert tiny.nr_fallbacks == 3  # the per-CPU refill stole three pages
    # __rmqueue_fallback takes the largest block each time: 4480 (o7), then its
    # remainders 4544 (o6) and 4576 (o5), the remainders staying Movable.
    assert sorted(tiny.pcp_snapshot(0, 1).lists[0]) == [4544, 4576]
    assert tiny.nr_pcp_pages == 2
    check_invariants(tiny)


def _fill_unmovable_order(m: Machine, order: int) -> int:
    """Allocate Unmovable blocks of ``order`` until none is left, draining the per-CPU leftovers."""
    n = 0
    while True:
        while m.alloc_pages(KERNEL | NOWARN, order) is not None:
            n += 1
        if not m.drain_all_pages():
            return n


def _fill_unmovable_order3(m: Machine) -> None:
    assert _fill_unmovable_order(m, 3) == 2048
    assert all(int(x) == MIGRATE_UNMOVABLE for x in m.pb_mt[:32])


def test_small_movable_allocation_steals_from_an_unmovable_block(roomy: Machine):
    tiny = roomy
    _fill_unmovable_order3(tiny)
    claims = tiny.nr_pageblock_claims
    fallbacks = tiny.nr_fallbacks
    tiny.free_pages(4096, 3)  # an order-3 hole in Unmovable pageblock 8
    tiny.drain_all_pages()
    pfn = tiny.alloc_pages(MOVABLE, 0)
    # order 3 < pageblock_order/2: Movable may not claim, it steals: a mixed pageblock
    assert pfn == 4096
    assert tiny.page_kind(pfn)[0] == K_ALLOC_MOVABLE
    assert tiny.pb_mt[8] == MIGRATE_UNMOVABLE
    assert tiny.nr_pageblock_claims == claims
    assert tiny.nr_fallbacks == fallbacks + 3
    check_invariants(tiny)


def test_movable_claims_when_the_free_block_is_large(roomy: Machine):
    tiny = roomy
    n = _fill_unmovable_order(tiny, 9)
    assert n == 32 and all(int(x) == MIGRATE_UNMOVABLE for x in tiny.pb_mt[:32])
    claims = tiny.nr_pageblock_claims
    tiny.free_pages(4096, 9)
    tiny.drain_all_pages()
    # the free block is order 9 >= pageblock_order/2: even an order-0 Movable request claims it
    pfn = tiny.alloc_pages(MOVABLE, 0)
    assert pfn == 4096
    assert tiny.pb_mt[8] == MIGRATE_MOVABLE
    assert tiny.nr_pageblock_claims == claims + 1
    check_invariants(tiny)


def test_unmovable_and_movable_end_up_in_different_pageblocks(tiny: Machine):
    k = [tiny.alloc_pages(KERNEL, 2) for _ in range(20)]
    mv = [tiny.alloc_pages(MOVABLE, 2) for _ in range(20)]
    kblocks = {p >> 9 for p in k}
    mblocks = {p >> 9 for p in mv}
    assert not kblocks & mblocks
    assert all(tiny.pb_mt[b] == MIGRATE_UNMOVABLE for b in kblocks)
    assert all(tiny.pb_mt[b] == MIGRATE_MOVABLE for b in mblocks)


# -- zones ----------------------------------------------------------------------------------------


def test_dma_requests_only_get_dma_pages(roomy: Machine):
    tiny = roomy
    got = []
    while (p := tiny.alloc_pages(KERNEL | G.__GFP_DMA | NOWARN, 10)) is not None:
        got.append(p)
    assert got == [0, 1024, 2048, 3072]
    assert tiny.zone_free[1] == 12288  # DMA32 untouched
    assert tiny.alloc_pages(KERNEL | G.__GFP_DMA | NOWARN, 0) is None


def test_zone_fallback_is_downward_only():
    # dma32_limit 32 MiB gives the tiny machine all three zones:
    # DMA [0, 4096), DMA32 [4096, 8192), Normal [8192, 16384)
    cfg = TINY.with_(dma32_limit=32 * MiB)
    m = no_reserves(Machine(cfg))
    got = []
    while (p := m.alloc_pages(KERNEL | NOWARN, 10)) is not None:
        got.append(p)
    # The fast path walks the zones at their LOW marks (managed * 10 / 10000 here:
    # 8, 4, 4): each zone's last block fails it (1024 - 1023 <= LOW) and the walk goes
    # on down; the slow path (MIN, 0 here) then takes the last blocks, again top down.
    assert got == [8192 + 1024 * i for i in range(7)] + [4096, 5120, 6144] + [0, 1024, 2048] + [15360, 7168, 3072]

    m = no_reserves(Machine(cfg))
    got = []
    while (p := m.alloc_pages(KERNEL | G.__GFP_DMA32 | NOWARN, 10)) is not None:
        got.append(p)
    assert got == [4096, 5120, 6144, 0, 1024, 2048, 7168, 3072]
    assert m.zone_free[2] == 8192  # Normal never used for a DMA32 request


def test_big_machine_kernel_allocations_use_normal_then_dma32():
    m = no_reserves(Machine(MachineConfig(memory=8 * GiB)))
    # Normal's free RAM is [4 GiB, 9 GiB - memmap) = [1048576, 2326529):
    # 1248 whole order-10 blocks from pfn 1048576, then one page
    got = [m.alloc_pages(KERNEL, 10) for _ in range(1246)]
    assert got == [(1 << 20) + 1024 * i for i in range(1246)]
    # 2049 pages left: an order-10 request fails Normal's LOW mark (2049 - 1023 <= 1277),
    # so the fast path goes on to DMA32's lowest free block, above the kernel image.
    assert m.zone_wmark[2][1] == 1277
    assert m.alloc_pages(KERNEL, 10) == 8192
    # An order-0 request passes Normal's LOW mark: Normal still comes first, and a whole
    # Movable order-10 block is claimed (what ALLOC_NOFRAGMENT allows).
    assert m.alloc_pages(KERNEL, 0) == 2324480
    check_invariants(m)


def _exhaust(m: Machine, gfp: int) -> list[int]:
    got = []
    for order in range(10, -1, -1):
        while (p := m.alloc_pages(gfp | NOWARN, order)) is not None:
            got.append(p)
    return got


def test_movable_zone_only_for_movable_highmem_requests():
    m = no_reserves(Machine(MachineConfig(memory=8 * GiB, movablecore=1 * GiB)))
    mstart = (8 * GiB) // 4096  # Movable is [8 GiB, 9 GiB)
    movable_zone = [z.index for z in m.geometry.zones if z.name == "Movable"][0]
    movable_free = m.zone_free[movable_zone]
    assert movable_free == (GiB // 4096) - 32767  # the memmap sits at the top of the node
    kernel = _exhaust(m, KERNEL)
    assert kernel and all(p < mstart for p in kernel)
    assert m.zone_free[movable_zone] == movable_free
    assert m.nr_free_pages == movable_free
    assert m.alloc_pages(G.GFP_USER | G.__GFP_MOVABLE | NOWARN, 0) is None  # no HIGHMEM: Normal and below
    assert m.alloc_pages(MOVABLE, 10) >= mstart
    check_invariants(m)


def test_two_nodes_local_node_first_and_thisnode():
    cfg = MachineConfig(memory=128 * MiB, nodes=2, x86_holes=False, kernel_image=0,
                        reserve_memmap=False, section_size_bits=23, cpus=2)
    m = no_reserves(Machine(cfg))
    m.set_cpu(1)  # node 1: DMA32 [16384, 32768)
    got = []
    while (p := m.alloc_pages(KERNEL | NOWARN, 10)) is not None:
        got.append(p)
    # Each zone's last block fails the fast path's LOW mark, so the walk goes on (local node
    # first, then node 0 top down); the slow path (MIN, 0 here) takes the last blocks in the same order.
    assert got == ([16384 + 1024 * i for i in range(15)] + [4096 + 1024 * i for i in range(11)] + [0, 1024, 2048]
                   + [31744, 15360, 3072])

    m = no_reserves(Machine(cfg))
    m.set_cpu(1)
    local = []
    while (p := m.alloc_pages(KERNEL | G.__GFP_THISNODE | NOWARN, 10)) is not None:
        local.append(p)
    assert local == [16384 + 1024 * i for i in range(16)]
    m.set_cpu(0)
    assert m.alloc_pages(KERNEL, 10) == 4096


# -- split_page, alloc_pages_exact, migrate_pages -----------------------------------------------------


def test_split_page(tiny: Machine):
    boot = stats.buddyinfo(tiny)
    pfn = tiny.alloc_pages(KERNEL, 2)
    tiny.split_page(pfn, 2)
    for i in range(4):
        assert tiny.page_kind(pfn + i) == (K_ALLOC, 0, pfn + i)
    assert tiny.nr_allocated_pages == 4
    check_invariants(tiny)
    with pytest.raises(OrderMismatch):
        tiny.free_pages(pfn, 2)
    for i in range(4):
        tiny.free_pages(pfn + i, 0)
    tiny.drain_all_pages()
    assert stats.buddyinfo(tiny) == boot
    check_invariants(tiny)


def test_split_page_refuses_compound_and_free_blocks(tiny: Machine, snapshot):
    pfn = tiny.alloc_pages(KERNEL | G.__GFP_COMP, 2)
    snap = snapshot(tiny)
    with pytest.raises(BadPageState, match="compound"):
        tiny.split_page(pfn, 2)
    with pytest.raises(OrderMismatch):
        tiny.split_page(pfn, 1)
    with pytest.raises(DoubleFree):
        tiny.split_page(pfn + 4, 2)  # the free buddy split off by the allocation
    snap.assert_unchanged()


def test_alloc_pages_exact_frees_the_tail(tiny: Machine):
    """6.12's ``make_alloc_exact``: each tail page is freed alone with ``__free_pages_ok(page, 0,
    FPI_TO_TAIL)``: straight to the buddy, not through the per-CPU lists (the issue's "through the
    pcp path" is not 6.12), to the tail of its free list, one free per page."""
    boot = stats.buddyinfo(tiny)
    frees = tiny.nr_frees
    seen: list[tuple[int, int]] = []
    tiny.install(Callouts(free=(Callout("t", lambda p, o: seen.append((p, o))),)))
    pfn = tiny.alloc_pages_exact(5)
    assert pfn == 4096  # an order-3 block
    for i in range(5):
        assert tiny.page_kind(pfn + i) == (K_ALLOC, 0, pfn + i)
    assert tiny.page_kind(pfn + 5) == (K_FREE, 0, pfn + 5)  # in the buddy, not on a per-CPU list
    assert tiny.page_kind(pfn + 6) == (K_FREE, 1, pfn + 6)
    assert seen == [(pfn + 5, 0), (pfn + 6, 0), (pfn + 7, 0)] and tiny.nr_frees == frees + 3
    # at the tail of their lists: the last to be handed out
    zone, mt = tiny.zone_of(pfn), tiny.pageblock_migratetype(pfn)
    assert tiny.free_list(zone, 0, mt)[-1] == pfn + 5 and tiny.free_list(zone, 1, mt)[-1] == pfn + 6
    tiny.install(Callouts())
    assert tiny.nr_allocated_pages == 5
    check_invariants(tiny)
    tiny.free_pages_exact(pfn, 5)
    tiny.drain_all_pages()
    assert tiny.nr_allocated_pages == 0
    assert stats.buddyinfo(tiny) == boot
    check_invariants(tiny)


def test_alloc_pages_exact_ignores_comp(tiny: Machine):
    # the kernel strips __GFP_COMP in alloc_pages_exact: the result must be plain order-0 pages
    pfn = tiny.alloc_pages_exact(3, KERNEL | G.__GFP_COMP)
    assert pfn is not None
    assert tiny.nr_allocated_pages == 3
    for i in range(3):
        assert tiny.page_kind(pfn + i) == (K_ALLOC, 0, pfn + i)
        assert tiny.page_flags(pfn + i) & (1 << PG_head) == 0
    check_invariants(tiny)


def test_alloc_pages_exact_limits(tiny: Machine):
    with pytest.raises(ValueError):
        tiny.alloc_pages_exact(0)
    with pytest.raises(ValueError):
        tiny.alloc_pages_exact(1025)
    assert tiny.alloc_pages_exact(1024) == 4096
    assert tiny.page_kind(4096 + 1023) == (K_ALLOC, 0, 4096 + 1023)
    assert tiny.alloc_pages_exact(1, KERNEL | G.__GFP_DMA) == 0


def test_migrate_pages_copies_contents_and_frees_the_old_block(tiny: Machine):
    pfn = tiny.alloc_pages(MOVABLE, 2)
    tiny.write(pfn, 100, b"first page")
    tiny.write(pfn + 3, 4090, b"end!!!")
    tiny.set_page_flags(pfn, 1 << PG_lru)
    new = tiny.migrate_pages(pfn, 2, "compaction")
    assert new == pfn + 4  # the free buddy split off by the first allocation
    assert tiny.read(new, 100, 10) == b"first page"
    assert tiny.read(new + 3, 4090, 6) == b"end!!!"
    assert tiny.read(new + 1) == bytes(4096)
    assert tiny.page_flags(new) == 1 << PG_lru
    assert tiny.page_kind(new) == (K_ALLOC_MOVABLE, 2, new)
    assert tiny.is_free(pfn)
    assert tiny.nr_allocated_pages == 4
    check_invariants(tiny)


def test_migrate_pages_errors_leave_everything(tiny: Machine, snapshot):
    pfn = tiny.alloc_pages(MOVABLE, 2)
    snap = snapshot(tiny)
    with pytest.raises(ValueError, match="migrate reason"):
        tiny.migrate_pages(pfn, 2, "because")
    with pytest.raises(OrderMismatch):
        tiny.migrate_pages(pfn, 1)
    with pytest.raises(DoubleFree):
        tiny.migrate_pages(pfn + 4, 2)
    snap.assert_unchanged()


def test_migrate_pages_without_a_target_changes_nothing_but_the_failure_count(roomy: Machine):
    tiny = roomy
    blocks = [tiny.alloc_pages(MOVABLE, 10) for _ in range(16)]
    tiny.write(blocks[0], 0, b"keep me")
    assert tiny.migrate_pages(blocks[0], 10) is None
    assert tiny.page_kind(blocks[0]) == (K_ALLOC_MOVABLE, 10, blocks[0])
    assert tiny.read(blocks[0], 0, 7) == b"keep me"
    assert tiny.nr_allocated_pages == 16384
    assert tiny.log.grep("page allocation failure") == []  # migration asks with NOWARN
    check_invariants(tiny)
