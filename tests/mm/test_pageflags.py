"""Page flags: per-pfn storage and %pGp formatting."""
from __future__ import annotations

import pytest

from pageext_core.mm import BadPageState, Machine, MachineConfig, MiB, flags_mask, format_pageflags
from pageext_core.mm import gfp as G
from pageext_core.mm import pageflags as PF

# 6.12 x86_64 (include/linux/page-flags.h ``enum pageflags``, mmflags.h's name table,
# lib/vsprintf.c ``format_page_flags``), distro layout: node bits 54..63, zone 51..53,
# lastcpupid 30..50 (all ones: never touched by NUMA balancing).
ZONE_BITS = 51
NODE_BITS = 54
CPUPID = 0x1FFFFF << 30


def test_bit_numbers_are_6_12s():
    """6.12's ``enum pageflags`` (include/linux/page-flags.h), x86_64 with the distro options."""
    # locked=0, writeback=1, referenced=2, uptodate=3, dirty=4, lru=5, head=6
    assert [PF.PG_locked, PF.PG_writeback, PF.PG_referenced, PF.PG_uptodate, PF.PG_dirty, PF.PG_lru, PF.PG_head] == list(range(7))
    # PG_error gone, PG_slab gone (page type), owner_2 new at 11; the rest moved down
    assert (PF.PG_owner_priv_1, PF.PG_owner_2, PF.PG_reserved, PF.PG_reclaim) == (10, 11, 13, 16)
    assert (PF.PG_mlocked, PF.PG_hwpoison, PF.PG_young, PF.PG_idle, PF.PG_arch_2) == (19, 20, 21, 22, 23)
    assert PF.NR_PAGEFLAGS == 24
    assert not hasattr(PF, "PG_error") and not hasattr(PF, "PG_slab")


def test_flags_gone_in_6_12_are_refused():
    """No PG_error (removed) and no PG_slab (a page type since 6.10) in 6.12."""
    for name in ("error", "slab"):
        with pytest.raises(ValueError, match="6.12 has no such page flag"):
            flags_mask(name)
    # aliases are input only: mappedtodisk is owner_2, readahead is reclaim
    assert flags_mask("mappedtodisk") == flags_mask("owner_2") == 1 << 11
    assert flags_mask("readahead") == 1 << PF.PG_reclaim


def test_format_empty():
    assert format_pageflags(0, 0, 0) == "0x7ffffc0000000(node=0|zone=0|lastcpupid=0x1fffff)"


def test_format_node_zone_and_lastcpupid_fields():
    """lib/vsprintf.c ``format_page_flags``: node and zone in decimal, lastcpupid in hex (distro layout)."""
    lru_active = (1 << 5) | (1 << 8)
    # the string of countless real 6.x reports
    assert format_pageflags(0, 0, 2) == "0x17ffffc0000000(node=0|zone=2|lastcpupid=0x1fffff)"
    assert format_pageflags(lru_active, 0, 2) == "0x17ffffc0000120(lru|active|node=0|zone=2|lastcpupid=0x1fffff)"
    assert format_pageflags(0, 1, 1) == f"{(1 << NODE_BITS) | (1 << ZONE_BITS) | CPUPID:#x}(node=1|zone=1|lastcpupid=0x1fffff)"
    assert format_pageflags(0, 3, 3, last_cpupid=0x2a) == f"{(3 << NODE_BITS) | (3 << ZONE_BITS) | (0x2a << 30):#x}(node=3|zone=3|lastcpupid=0x2a)"


def test_format_names_in_pGp_table_order_not_bit_order():
    """``__def_pageflag_names`` order (mm/debug.c ``pageflag_names``), idle before young."""
    # writeback is bit 1 but printed after private_2; head (bit 6) after writeback
    flags = (1 << PF.PG_head) | (1 << PF.PG_writeback) | (1 << PF.PG_locked) | (1 << PF.PG_reserved) | (1 << PF.PG_waiters)
    text = format_pageflags(flags, 0, 0)
    assert text == f"{flags | CPUPID:#x}(locked|waiters|reserved|writeback|head|node=0|zone=0|lastcpupid=0x1fffff)"
    # idle before young in the table, although young has the lower bit
    both = flags_mask("young|idle|owner_2")
    assert format_pageflags(both, 0, 2).split("(")[1].startswith("owner_2|idle|young|node=0")


def test_format_ignores_bits_above_the_flags_field():
    assert format_pageflags((1 << 40) | (1 << PF.PG_dirty), 0, 1) == format_pageflags(1 << PF.PG_dirty, 0, 1)


def test_flags_mask():
    assert flags_mask("lru|active") == (1 << 5) | (1 << 8)
    assert flags_mask(["PG_lru", " Active "]) == (1 << 5) | (1 << 8)
    assert flags_mask("compound") == 1 << PF.PG_head
    assert flags_mask("swapcache") == 1 << PF.PG_owner_priv_1
    assert flags_mask("") == 0
    with pytest.raises(ValueError, match="did you mean 'dirty'"):
        flags_mask("dirtty")


def test_flags_stored_per_pfn(tiny: Machine):
    pfn = tiny.alloc_pages(G.GFP_KERNEL, 2)
    tiny.set_page_flags(pfn, flags_mask("lru|active"))
    tiny.set_page_flags(pfn + 1, flags_mask("dirty"), nr=2)
    assert tiny.page_flags(pfn) == flags_mask("lru|active")
    assert tiny.page_flags(pfn + 1) == tiny.page_flags(pfn + 2) == flags_mask("dirty")
    assert tiny.page_flags(pfn + 3) == 0
    tiny.clear_page_flags(pfn, flags_mask("active"))
    assert tiny.page_flags(pfn) == flags_mask("lru")
    # pfn is in DMA32 (4096..16383) on node 0: zone=1
    assert 4096 <= pfn < 16384
    assert tiny.format_page_flags(pfn) == f"{(1 << ZONE_BITS) | CPUPID | (1 << 5):#x}(lru|node=0|zone=1|lastcpupid=0x1fffff)"


def test_flags_cleared_when_the_page_is_freed(tiny: Machine):
    pfn = tiny.alloc_pages(G.GFP_KERNEL, 0)
    tiny.set_page_flags(pfn, flags_mask("uptodate|dirty"))
    tiny.free_pages(pfn, 0)
    again = tiny.alloc_pages(G.GFP_KERNEL, 0)
    assert again == pfn  # per-CPU list hands back the page just freed
    assert tiny.page_flags(pfn) == 0


def test_compound_allocation_sets_head(tiny: Machine):
    pfn = tiny.alloc_pages(G.GFP_KERNEL | G.__GFP_COMP, 3)
    assert tiny.page_flags(pfn) == 1 << PF.PG_head
    assert "head" in tiny.format_page_flags(pfn)
    plain = tiny.alloc_pages(G.GFP_KERNEL, 3)
    assert tiny.page_flags(plain) == 0
    # order 0 has no compound head even with __GFP_COMP
    single = tiny.alloc_pages(G.GFP_KERNEL | G.__GFP_COMP, 0)
    assert tiny.page_flags(single) == 0


def test_free_pages_report_no_flags_although_the_word_holds_list_bookkeeping():
    m = Machine(MachineConfig(memory=1 << 30, x86_holes=False, kernel_image=0, reserve_memmap=False))
    # DMA32 is 252 order-10 free blocks of one list: its heads store list indexes 0..251
    heads = [p for p in range(4096, 1 << 18, 1024)]
    assert any(int(m.pflags[p]) != 0 for p in heads)
    assert all(m.page_flags(p) == 0 for p in heads)
    assert m.format_page_flags(heads[-1]) == f"{(1 << ZONE_BITS) | CPUPID:#x}(node=0|zone=1|lastcpupid=0x1fffff)"


def test_reserved_pages_carry_PG_reserved():
    m = Machine(MachineConfig(memory=64 * MiB))  # x86: pfn 0 is the reserved BIOS page
    assert m.page_flags(0) == 1 << PF.PG_reserved
    assert m.format_page_flags(0) == "0x7ffffc0002000(reserved|node=0|zone=0|lastcpupid=0x1fffff)"
    # the kernel image is reserved from 16 MiB: pfn 4096, in DMA32
    assert m.format_page_flags(4096) == f"{(1 << ZONE_BITS) | CPUPID | 0x2000:#x}(reserved|node=0|zone=1|lastcpupid=0x1fffff)"


def test_setting_flags_on_a_free_page_is_refused(tiny: Machine, snapshot):
    snap = snapshot(tiny)
    with pytest.raises(BadPageState) as ei:
        tiny.set_page_flags(4096, flags_mask("lru"))
    assert "pfn:01000" in str(ei.value)
    snap.assert_unchanged()


def test_setting_flags_past_the_end_of_a_block_is_refused(tiny: Machine, snapshot):
    pfn = tiny.alloc_pages(G.GFP_KERNEL, 1)
    snap = snapshot(tiny)
    with pytest.raises(BadPageState):
        tiny.set_page_flags(pfn, flags_mask("lru"), nr=3)
    snap.assert_unchanged()


def test_node_field_on_second_node():
    m = Machine(MachineConfig(memory=128 * MiB, nodes=2, x86_holes=False, kernel_image=0,
                              reserve_memmap=False, section_size_bits=23, cpus=2))
    m.set_cpu(1)  # CPU 1 sits on node 1
    pfn = m.alloc_pages(G.GFP_KERNEL | G.__GFP_THISNODE, 0)
    assert pfn >= 16384
    assert m.format_page_flags(pfn) == f"{(1 << NODE_BITS) | (1 << ZONE_BITS) | CPUPID:#x}(node=1|zone=1|lastcpupid=0x1fffff)"
