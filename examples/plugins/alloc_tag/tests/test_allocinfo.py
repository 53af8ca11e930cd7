"""The ``allocinfo`` report, byte for byte as the kernel's ``/proc/allocinfo`` version 1.0."""
from __future__ import annotations

import pytest
from pageext_alloc_tag import parse_allocinfo
from tagsupport import ANON, DRIVER, PIPE, SLAB

from pageext_core.mm.gfp import GFP_KERNEL


def test_empty_file_is_the_header(pe):
    assert pe.report("allocinfo") == "allocinfo - version: 1.0\n#     <size>  <calls> <tag info>\n"


def test_rows_by_hand(pe):
    m = pe.machine
    with m.context(stack=SLAB):
        m.alloc_pages(GFP_KERNEL, 0)
    with m.context(stack=ANON):
        m.alloc_pages(GFP_KERNEL, 3)
        m.alloc_pages(GFP_KERNEL, 2)
    with m.context(stack=DRIVER):
        m.alloc_pages(GFP_KERNEL, 10)
    with m.context(stack=PIPE):
        for _ in range(12):
            m.alloc_pages(GFP_KERNEL, 0)
    # %12lli bytes, a space, %8llu calls, a space, the tag, and the kernel's space before the newline.
    assert pe.report("allocinfo") == (
        "allocinfo - version: 1.0\n"
        "#     <size>  <calls> <tag info>\n"
        "        4096        1 mm/slub.c:0 func:allocate_slab \n"
        "       49152        2 mm/memory.c:0 func:do_anonymous_page \n"
        "     4194304        1 ?:0 [mydrv] func:mydrv_rx_refill \n"
        "       49152       12 fs/pipe.c:0 func:pipe_write \n"
    )


def test_freed_call_sites_stay_listed_at_zero(pe):
    m = pe.machine
    with m.context(stack=ANON):
        a = m.alloc_pages(GFP_KERNEL, 1)
    with m.context(stack=SLAB):
        b = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(a, 1)
    assert pe.report("allocinfo").splitlines()[2:] == [
        "           0        0 mm/memory.c:0 func:do_anonymous_page ",
        "        4096        1 mm/slub.c:0 func:allocate_slab ",
    ]
    m.free_pages(b, 0)
    assert [(r.bytes, r.calls) for r in parse_allocinfo(pe.report("allocinfo"))] == [(0, 0), (0, 0)]


def test_parse_reads_back_what_was_written(pe, tag):
    m = pe.machine
    with m.context(stack=DRIVER):
        m.alloc_pages(GFP_KERNEL, 4)
    assert parse_allocinfo(pe.report("allocinfo")) == tag.rows() == [(65536, 1, "?:0 [mydrv] func:mydrv_rx_refill")]


def test_parse_rejects_other_files():
    with pytest.raises(ValueError, match="not an allocinfo version 1.0 file"):
        parse_allocinfo("Node 0, zone DMA 1 2 3\n")


def test_summary(pe):
    m = pe.machine
    with m.context(stack=SLAB):
        m.alloc_pages(GFP_KERNEL, 2)
    with m.context(stack=ANON):
        x = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(x, 0)
    assert pe.client_summaries()["alloc_tag"] == {
        "setting": "1",
        "reference_bytes": 4,
        "tags": 2,
        "tags_in_use": 1,
        "live_bytes": 16384,
        "live_calls": 1,
        "live_pages": 4,
        "untracked_frees": 0,
        "unprofiled_allocations": 0,
    }
