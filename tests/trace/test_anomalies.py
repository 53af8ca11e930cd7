"""Live set: each real-trace anomaly is counted, shown by example, and handled by its documented rule."""
from __future__ import annotations

from pageext_core.trace import (
    FREE_BEFORE_TRACE,
    LOST_FREE,
    ORDER_MISMATCH,
    LiveSet,
    read_trace,
)
from pageext_core.trace.anomalies import aligned_blocks

HEAD = "               a-1       [000] .....     1.{us:06d}: "


def trace(*bodies: str) -> list[str]:
    return [HEAD.format(us=i) + b + "\n" for i, b in enumerate(bodies)]


def alloc(pfn: int, order: int, mt: int = 0) -> str:
    return f"mm_page_alloc: page=0000000012345678 pfn={pfn:#x} order={order} migratetype={mt} gfp_flags=GFP_KERNEL"


def free(pfn: int, order: int) -> str:
    return f"mm_page_free: page=0000000012345678 pfn={pfn:#x} order={order}"


def live_after(*bodies: str) -> LiveSet:
    ls = LiveSet()
    ls.feed(read_trace(trace(*bodies)))
    return ls


def test_clean_pairs_leave_nothing_and_count_nothing():
    ls = live_after(alloc(0x100, 0), alloc(0x200, 2), free(0x100, 0), free(0x200, 2))
    assert len(ls) == 0
    assert ls.counts == {FREE_BEFORE_TRACE: 0, LOST_FREE: 0, ORDER_MISMATCH: 0}


def test_free_of_a_page_allocated_before_tracing():
    ls = live_after(alloc(0x100, 0), free(0x500, 1))
    assert ls.counts[FREE_BEFORE_TRACE] == 1
    assert "0x500" in ls.examples[FREE_BEFORE_TRACE][0] and "before tracing" in ls.examples[FREE_BEFORE_TRACE][0]
    assert ls.examples[FREE_BEFORE_TRACE][0].startswith("at 1.000001: ")
    assert set(ls.live) == {0x100}  # nothing removed


def test_second_allocation_of_a_live_pfn_means_a_lost_free():
    ls = live_after(alloc(0x100, 1, mt=0), alloc(0x100, 0, mt=1))
    assert ls.counts[LOST_FREE] == 1
    assert ls.get(0x100)[:2] == (0, 1)  # the new allocation replaced the old one
    assert len(ls) == 1


def test_smaller_free_splits_the_block_and_the_rest_stays_live():
    ls = live_after(alloc(0x100, 2), free(0x100, 0))
    assert ls.counts[ORDER_MISMATCH] == 1
    assert {p: ls.get(p)[0] for p in ls.live} == {0x101: 0, 0x102: 1}
    assert ls.live_pages() == 3


def test_split_page_freed_page_by_page_in_any_order_ends_empty():
    # alloc order 2, split_page, then four order-0 frees starting from the tail
    ls = live_after(alloc(0x100, 2), free(0x103, 0), free(0x101, 0), free(0x100, 0), free(0x102, 0))
    assert len(ls) == 0
    assert ls.counts[FREE_BEFORE_TRACE] == 0
    assert ls.counts[ORDER_MISMATCH] >= 1


def test_larger_free_releases_every_block_it_covers():
    ls = live_after(alloc(0x100, 0), alloc(0x101, 0), alloc(0x103, 0), free(0x100, 2))
    assert ls.counts[ORDER_MISMATCH] == 1
    assert len(ls) == 0


def test_failed_allocations_and_batched_frees_do_not_touch_the_live_set():
    ls = live_after(alloc(0x100, 0), "mm_page_alloc: page=0000000000000000 pfn=0x0 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
                    "mm_page_free_batched: page=0000000012345678 pfn=0x100 order=0")
    assert set(ls.live) == {0x100}
    ls2 = LiveSet()
    ls2.feed(read_trace(trace(alloc(0x100, 0), "mm_page_free_batched: page=0000000012345678 pfn=0x100 order=0")),
             batched_frees=True)
    assert len(ls2) == 0


def test_examples_are_capped():
    ls = LiveSet(max_examples=3)
    ls.feed(read_trace(trace(*[free(0x1000 + i, 0) for i in range(10)])))
    assert ls.counts[FREE_BEFORE_TRACE] == 10 and len(ls.examples[FREE_BEFORE_TRACE]) == 3


def test_entries_keep_order_migratetype_gfp_and_stack():
    ls = LiveSet()
    ls.alloc(0x42, 3, 2, 0x100CCA, 7)
    assert ls.get(0x42) == (3, 2, 0x100CCA, 7)
    ls.alloc(0x43, 0, -1, 0, -1)
    assert ls.get(0x43) == (0, -1, 0, -1)


def test_aligned_blocks_cover_exactly():
    assert aligned_blocks(0x101, 0x104) == [(0x101, 0), (0x102, 1)]
    assert aligned_blocks(0, 1024) == [(0, 10)]
    assert aligned_blocks(5, 5) == []
