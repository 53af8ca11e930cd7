"""Where the split rule puts guard blocks, what they cost, and how merging clears them.

All allocations here come from the DMA zone of ``TINY`` (pfns [0, 4096),
four free order-10 blocks, per-CPU batch 1): the first request is served
from pfn 0 by splitting the order-10 block at 0, so ``expand`` splits off
the upper halves at 512 (order 9), 256 (8), ... down to the request's
order; those below N become guards.
"""
from __future__ import annotations

import pytest
from guardsupport import (
    DMA_ZONE,
    GFP_DMA,
    GFP_DMA_MOVABLE,
    STACKS,
    TINY,
    ParamOnlyDebugPagealloc,
    boot,
    check_guards_consistent,
    flagged_heads,
    free_blocks,
    guard_of,
    held_blocks,
)

import pageext_core as pc
from pageext_core.mm import PageFault, check_invariants
from pageext_core.mm.dump_page import page_private

DMA = (0, 4096)
UNTOUCHED = {1024: 10, 2048: 10, 3072: 10}  # the other order-10 blocks of DMA

# (N, order of the request) -> (guard blocks {pfn: order}, free blocks {pfn: order}) in [0, 1024),
# worked out by hand from the halves 512/9, 256/8, 128/7, 64/6, 32/5, 16/4, 8/3, 4/2, 2/1, 1/0.
CASES = {
    (1, 0): ({1: 0},
             {2: 1, 4: 2, 8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (2, 0): ({1: 0, 2: 1},
             {4: 2, 8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (3, 0): ({1: 0, 2: 1, 4: 2},
             {8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (3, 1): ({2: 1, 4: 2},
             {8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (3, 2): ({4: 2},
             {8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (3, 3): ({},
             {8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (4, 1): ({2: 1, 4: 2, 8: 3},
             {16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (5, 0): ({1: 0, 2: 1, 4: 2, 8: 3, 16: 4},
             {32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (5, 4): ({16: 4},
             {32: 5, 64: 6, 128: 7, 256: 8, 512: 9}),
    (5, 6): ({},
             {64: 6, 128: 7, 256: 8, 512: 9}),
}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("n,order", sorted(CASES))
def test_guards_where_the_split_rule_puts_them(stack: str, n: int, order: int) -> None:
    pe = boot(f"debug_pagealloc=on debug_guardpage_minorder={n}", stack)
    m = pe.machine
    assert m.pcp_batch[DMA_ZONE] == 1
    free_before = m.zone_free[DMA_ZONE]
    guards, free = CASES[(n, order)]
    pfn = m.alloc_pages(GFP_DMA, order)
    assert pfn == 0
    assert held_blocks(m, *DMA) == guards
    assert free_blocks(m, *DMA) == {**free, **UNTOUCHED}
    assert flagged_heads(pe) == guards
    guard_pages = sum(1 << o for o in guards.values())
    assert m.zone_held[DMA_ZONE] == guard_pages
    assert m.zone_free[DMA_ZONE] == free_before - (1 << order) - guard_pages
    assert guard_of(pe).nr_created == len(guards)
    for head, o in guards.items():
        assert all(not m.contents.is_mapped(p) for p in range(head, head + (1 << o)))
    check_invariants(m)


@pytest.mark.parametrize("cmdline", ["debug_pagealloc=on debug_guardpage_minorder=0",
                                     "debug_guardpage_minorder=3"])
def test_no_guards_when_off(cmdline: str) -> None:
    pe = boot(cmdline)
    m = pe.machine
    assert m.alloc_pages(GFP_DMA, 0) == 0
    assert held_blocks(m) == {}
    assert free_blocks(m, *DMA) == {1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9, **UNTOUCHED}


@pytest.mark.parametrize("stack", STACKS)
def test_later_requests_split_the_small_free_blocks(stack: str) -> None:
    # N=3, order-0 requests.  After the first (0), the smallest free block of the
    # (now unmovable) claimed block is 8/3: the request takes 8, guards 12/2, 10/1, 9/0.
    # The third takes the smallest left, 16/4: 24/3 is not below N so it is free;
    # guards 20/2, 18/1, 17/0.
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=3", stack)
    m = pe.machine
    assert [m.alloc_pages(GFP_DMA, 0) for _ in range(3)] == [0, 8, 16]
    assert held_blocks(m, *DMA) == {1: 0, 2: 1, 4: 2, 9: 0, 10: 1, 12: 2, 17: 0, 18: 1, 20: 2}
    assert free_blocks(m, *DMA) == {24: 3, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9, **UNTOUCHED}
    assert m.zone_held[DMA_ZONE] == 21
    check_invariants(m)
    check_guards_consistent(pe)


@pytest.mark.parametrize("stack", STACKS)
def test_guard_state_on_head_page_only(stack: str) -> None:
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=3", stack)
    m = pe.machine
    m.alloc_pages(GFP_DMA, 0)
    view = pe.client("guard").view
    g = guard_of(pe)
    bit = view.flag("GUARD")
    assert [int(x) for x in view.flags_of(0, 8)] == [0, bit, bit, 0, bit, 0, 0, 0]
    # the order is the page's private word (6.12: set_page_private), on the head only
    assert [page_private(m, p) for p in range(8)] == [0, 0, 1, 0, 2, 0, 0, 0]
    # dump_page of a guard head: page type guard (PGTY_guard 0xf3), its order in private
    desc = m.describe_page(4).split("\n")
    assert "page_type: f3(guard)" in desc
    raw2 = [ln for ln in desc if ln.startswith("raw: ")][1].split()
    assert raw2[2] == f"{2:016x}" and raw2[3] == "00000000f3000000"
    # Lookups by any pfn find the block through its aligned head.
    assert [g.guard_block(p) for p in range(9)] == [
        None, (1, 0), (2, 1), (2, 1), (4, 2), (4, 2), (4, 2), (4, 2), None]


@pytest.mark.parametrize("stack", STACKS)
def test_freeing_the_allocation_clears_its_guards(stack: str) -> None:
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=3", stack)
    m = pe.machine
    boot_free = m.nr_free_pages
    pfn = m.alloc_pages(GFP_DMA, 1)  # order 1, batch 1: a refill of one block
    assert held_blocks(m, *DMA) == {2: 1, 4: 2}
    m.free_pages(pfn, 1)  # onto the per-CPU list (orders 0-3 use it), then drained
    assert held_blocks(m, *DMA) == {2: 1, 4: 2}
    m.drain_all_pages()
    # 0/1 meets guard 2/1 -> 0/2 meets guard 4/2 -> 0/3 meets free 8/3 -> ... -> 0/10.
    assert held_blocks(m) == {} and flagged_heads(pe) == {}
    assert free_blocks(m, *DMA) == {0: 10, **UNTOUCHED}
    assert guard_of(pe).nr_released == 2
    assert m.nr_free_pages == boot_free
    # The released guard pages are free now: debug_pagealloc's rule is that free pages stay unmapped.
    assert not any(m.contents.is_mapped(p) for p in range(2, 8))
    check_invariants(m)


@pytest.mark.parametrize("stack", STACKS)
def test_order0_guards_wait_for_the_per_cpu_list(stack: str) -> None:
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=3", stack)
    m = pe.machine
    boot_free = m.nr_free_pages
    a, b = m.alloc_pages(GFP_DMA, 0), m.alloc_pages(GFP_DMA, 0)
    assert (a, b) == (0, 8)
    # b's refill took two pages (nr_pcp_alloc doubles the order-0 refill): 8 and 16, each split
    # off its own block with guards below N
    assert held_blocks(m, *DMA) == {1: 0, 2: 1, 4: 2, 9: 0, 10: 1, 12: 2, 17: 0, 18: 1, 20: 2}
    m.free_pages(b, 0)  # onto the per-CPU list: no merge yet
    assert held_blocks(m, *DMA) == {1: 0, 2: 1, 4: 2, 9: 0, 10: 1, 12: 2, 17: 0, 18: 1, 20: 2}
    m.drain_all_pages()
    # 8/0 merges with 9/0, 10/1, 12/2 up to 8/3, whose buddy 0/3 is not free (a is allocated);
    # 16/0 merges with 17/0, 18/1, 20/2 and the free 24/3 up to 16/4.
    assert held_blocks(m, *DMA) == {1: 0, 2: 1, 4: 2}
    assert free_blocks(m, *DMA) == {8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8, 512: 9, **UNTOUCHED}
    check_invariants(m)
    m.free_pages(a, 0)
    m.drain_all_pages()
    assert held_blocks(m) == {} and free_blocks(m, *DMA) == {0: 10, **UNTOUCHED}
    assert m.nr_free_pages == boot_free
    check_invariants(m)


def test_the_client_unmaps_guards_itself() -> None:
    # With a debug_pagealloc that unmaps nothing, free pages are mapped: the guard
    # client must unmap its blocks (orders 0, 1, 2 here) and leave the rest alone.
    pe = pc.boot(TINY, "debug_pagealloc=on debug_guardpage_minorder=3", blocked=["debug_pagealloc", "page_owner"],
                 plugins=[ParamOnlyDebugPagealloc()])
    m = pe.machine
    assert m.contents.nr_unmapped == 0
    assert m.alloc_pages(GFP_DMA, 0) == 0
    assert [m.contents.is_mapped(p) for p in range(9)] == [True] + [False] * 7 + [True]
    assert m.contents.nr_unmapped == 7
    with pytest.raises(PageFault, match="order-0 guard block at pfn 0x1"):
        m.write(0, 4096, b"x")


def test_movable_request_same_rule() -> None:
    # No fallback: the movable lists serve it, the halves stay movable.
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=2", "isolated")
    m = pe.machine
    assert m.alloc_pages(GFP_DMA_MOVABLE, 0) == 0
    assert held_blocks(m, *DMA) == {1: 0, 2: 1}
    check_invariants(m)


@pytest.mark.parametrize("stack", STACKS)
def test_hotplugged_memory_gets_guards_too(stack: str) -> None:
    # 256 MiB of hot-pluggable memory at 4 GiB (pfn 0x100000), zone Normal, offline at boot.
    # Once online, GFP_KERNEL prefers Normal: an order-4 request (above the per-CPU orders,
    # so one split) takes 0x100000 from the (untouched) new block; with N=5 its order-4
    # half 0x100010 is a guard.  Its page_ext table is new (allocated on going-online), so
    # this also checks the client's per-section cache.
    from pageext_core.mm import MiB, PageFault
    from pageext_core.mm.gfp import GFP_KERNEL

    pe = boot("debug_pagealloc=on debug_guardpage_minorder=5", stack, config=TINY.with_(hotplug=256 * MiB))
    m = pe.machine
    base = 0x100000
    for _rnd in range(2):  # online, use, offline, and again: tables are freed and made anew
        m.online_memory_block(32)  # the kernel's memory32: 4 GiB / 128 MiB
        pfn = m.alloc_pages(GFP_KERNEL, 4)
        assert pfn == base
        assert held_blocks(m, base, base + 32768) == {base + 16: 4}
        check_guards_consistent(pe)
        with pytest.raises(PageFault, match="pageext: page is a guard page: page 0 of the order-4 guard block at pfn 0x100010"):
            m.write(pfn, 16 * 4096, b"x")
        m.free_pages(pfn, 4)
        assert held_blocks(m) == {}
        check_invariants(m)
        m.offline_memory_block(32)
    assert len(guard_of(pe).hits) == 2


def test_flatmem_two_nodes() -> None:
    # FLATMEM, 256 MiB over two nodes: node 0 is pfns [0, 32768) (with DMA), node 1 is
    # [32768, 65536); one page_ext table per node, from memblock at the top of each node.
    # On CPU 1 (node 1) an order-4 GFP_KERNEL request (above the per-CPU orders) takes the
    # lowest block of node 1, 32768; with N=5 the only half below order 5 is 32784/4.
    from pageext_core.mm import MiB
    from pageext_core.mm.gfp import GFP_KERNEL

    cfg = TINY.with_(memory_model="FLATMEM", nodes=2, memory=256 * MiB)
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=5", "isolated", config=cfg)
    m = pe.machine
    assert len(pe.tables.tables) == 2
    assert m.alloc_pages(GFP_DMA, 0) == 0
    dma_guards = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4}
    with m.context(cpu=1):
        assert m.alloc_pages(GFP_KERNEL, 4) == 32768
    assert held_blocks(m) == {**dma_guards, 32784: 4}
    check_guards_consistent(pe)
    m.free_pages(32768, 4)
    assert held_blocks(m) == dma_guards
    check_guards_consistent(pe)
    check_invariants(m)
