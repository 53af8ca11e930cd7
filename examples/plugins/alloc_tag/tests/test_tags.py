"""Which call site an allocation is charged to: kernel-style stacks and Python callers."""
from __future__ import annotations

import sys

import pytest
from tagsupport import ANON, ANON_TAG, DRIVER, DRIVER_TAG, SLAB, SLAB_TAG, kstack

from pageext_core.mm.gfp import GFP_KERNEL
from pageext_core.session import BUILTIN_SITES

# Worked out by hand from pageext_core/session/callsites.py: skip post_alloc_hook,
# get_page_from_freelist, __alloc_pages*/alloc_pages*/folio_alloc*/vma_alloc_folio*
# and every *_noprof frame; the next frame is the call site.
BUILTIN_TAGS = {
    "slab": "mm/slub.c:0 func:allocate_slab",
    "anon": "mm/memory.c:0 func:do_anonymous_page",
    "pagecache": "mm/readahead.c:0 func:page_cache_ra_unbounded",  # filemap_alloc_folio_noprof skipped
    "thp": "mm/huge_memory.c:0 func:do_huge_pmd_anonymous_page",
    "vmalloc": "mm/vmalloc.c:0 func:__vmalloc_area_node",
    "pgtable": "arch/x86/mm/pgtable.c:0 func:pte_alloc_one",
    "skb": "mm/page_frag_cache.c:0 func:__page_frag_alloc_align",
    "dentry": "mm/slub.c:0 func:allocate_slab",
    "pcpu": "mm/percpu-vm.c:0 func:pcpu_populate_chunk",
    "dma32": "kernel/dma/direct.c:0 func:dma_direct_alloc",
    "pipe": "fs/pipe.c:0 func:pipe_write",
}


def test_every_builtin_site_is_in_the_table():
    assert sorted(BUILTIN_TAGS) == sorted(s.name for s in BUILTIN_SITES)


@pytest.mark.parametrize("site", BUILTIN_SITES, ids=lambda s: s.name)
def test_builtin_call_sites(pe, tag, site):
    m = pe.machine
    for variant in range(len(site.callers)):  # the outer callers do not matter
        with m.context(stack=site.stack(variant)):
            pfn = m.alloc_pages(GFP_KERNEL, 0)
        assert tag.tag_of(pfn) == BUILTIN_TAGS[site.name]
    assert tag.rows() == [(4096 * len(site.callers), len(site.callers), BUILTIN_TAGS[site.name])]


@pytest.mark.parametrize("frames,expected", [
    (DRIVER, DRIVER_TAG),  # a symbol the table does not know, in a module
    (kstack("lookup_open.isra.0+0x1d7/0x640", "path_openat+0x2ad/0x1200"), "?:0 func:lookup_open"),
    (kstack("pte_alloc_one.constprop.0.cold+0x2c/0x130"), "arch/x86/mm/pgtable.c:0 func:pte_alloc_one"),
    (kstack("__get_free_pages+0x10/0x40", "pgd_alloc+0x2b/0x1a0"), "arch/x86/mm/pgtable.c:0 func:pgd_alloc"),
    (kstack("folio_alloc_mpol_noprof+0x10/0x40", "__filemap_get_folio+0x14c/0x300"),
     "mm/filemap.c:0 func:__filemap_get_folio"),
    (("post_alloc_hook+0x1a2/0x1c0", "__alloc_pages_noprof+0x17c/0x360"), "?:0 func:__alloc_pages_noprof"),
    (("my_func",), "?:0 func:my_func"),  # a bare symbol
])
def test_first_frame_outside_the_allocator(pe, tag, frames, expected):
    m = pe.machine
    with m.context(stack=list(frames)):
        pfn = m.alloc_pages(GFP_KERNEL, 0)
    assert tag.tag_of(pfn) == expected


def test_offsets_inside_one_function_are_one_call_site(pe, tag):
    m = pe.machine
    a = kstack("alloc_pages_noprof+0x53/0x90", "do_anonymous_page+0x327/0x8a0")
    b = kstack("alloc_pages_noprof+0x53/0x90", "do_anonymous_page+0x68e/0x8a0", "other_caller+0x1/0x2")
    for stack in (a, b, ANON):
        with m.context(stack=stack):
            m.alloc_pages(GFP_KERNEL, 1)
    assert tag.rows() == [(3 * 8192, 3, ANON_TAG)]


def test_order_is_charged_in_bytes_and_once_in_calls(pe, tag):
    m = pe.machine
    with m.context(stack=SLAB):
        for order in (0, 3, 9):
            m.alloc_pages(GFP_KERNEL, order)
    assert tag.rows() == [(4096 + 32768 + 2097152, 3, SLAB_TAG)]


def test_every_page_of_a_block_maps_to_its_tag_but_only_the_head_stores_it(pe, tag):
    m = pe.machine
    view = pe.client("alloc_tag").view
    with m.context(stack=SLAB):
        pfn = m.alloc_pages(GFP_KERNEL, 3)
    assert [tag.tag_of(p) for p in range(pfn, pfn + 8)] == [SLAB_TAG] * 8
    assert view.block(pfn, 3)["tag"].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert tag.tag_of(pfn + 8) is None  # not part of it (free)


# -- Python callers (no explicit stack) ------------------------------------------------------------


def allocate_here(m, order=0):
    line = sys._getframe().f_lineno + 1
    return m.alloc_pages(GFP_KERNEL, order), line


def test_python_caller_is_the_call_site_with_its_real_line(pe, tag):
    m = pe.machine
    pfn, line = allocate_here(m)
    assert tag.tag_of(pfn) == f"test_tags.py:{line} func:allocate_here"
    pfn2, _ = allocate_here(m, 2)
    assert tag.rows() == [(4096 + 16384, 2, f"test_tags.py:{line} func:allocate_here")]


def test_machine_helpers_are_part_of_the_allocator(pe, tag):
    m = pe.machine
    line = sys._getframe().f_lineno + 1
    pfn = m.alloc_pages_exact(3, GFP_KERNEL)  # Machine.alloc_pages_exact -> alloc_pages: both skipped
    where = f"test_tags.py:{line} func:test_machine_helpers_are_part_of_the_allocator"
    assert tag.tag_of(pfn) == where
    # An order-2 block split into 4 pages (4 calls), the 4th freed again: 3 pages, 3 calls.
    assert tag.rows() == [(3 * 4096, 3, where)]


def test_python_callers_in_a_class_use_the_qualified_name(pe, tag):
    class Driver:
        def refill(self, m):
            return m.alloc_pages(GFP_KERNEL, 0), sys._getframe().f_lineno

    pfn, line = Driver().refill(pe.machine)
    # Code objects know their qualified name since Python 3.11; 3.10 gives the bare function name.
    name = ("test_python_callers_in_a_class_use_the_qualified_name.<locals>.Driver.refill"
            if sys.version_info >= (3, 11) else "refill")
    assert tag.tag_of(pfn) == f"test_tags.py:{line} func:{name}"


def test_explicit_stack_wins_over_the_python_caller(pe, tag):
    m = pe.machine
    with m.context(stack=DRIVER):
        pfn, _ = allocate_here(m)
    assert tag.tag_of(pfn) == DRIVER_TAG


def test_no_stack_is_recorded_for_python_callers(pe, tag):
    m = pe.machine
    stored = (len(m.depot), m.depot.saves)
    for order in range(4):
        allocate_here(m, order)
    assert (len(m.depot), m.depot.saves) == stored  # page_owner would have saved four stacks
    assert [r.calls for r in tag.rows()] == [4]
