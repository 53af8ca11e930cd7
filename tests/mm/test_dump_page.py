"""``dump_page`` follows 6.12's ``__dump_folio`` (mm/debug.c): the ``page:`` line, ``head:`` for a
large folio, ``flags: %pGp``, ``page_type: f0(buddy)`` (the type's top byte and name, 6.12's
form, not 6.8-6.11's ``0xffffff7f(buddy)``) and the struct page as two ``raw:`` lines of four
words (flags, lru, lru, mapping / index, private, mapcount|refcount, memcg_data)."""
from __future__ import annotations

from pageext_core.mm import Machine
from pageext_core.mm import gfp as G
from pageext_core.mm.dump_page import struct_page_address


def test_a_free_buddy_head_prints_its_type_and_its_order_in_private(tiny: Machine) -> None:
    kind, order, head = tiny.page_kind(8192)
    assert kind.label == "free" and head == 8192
    lines = tiny.describe_page(8192).split("\n")
    assert lines[0] == "page: refcount:0 mapcount:0 mapping:0000000000000000 index:0x0 pfn:0x2000"
    assert lines[1] == "flags: 0xfffffc0000000(node=0|zone=1|lastcpupid=0x1fffff)"
    assert lines[2] == "page_type: f0(buddy)"
    lru = f"{struct_page_address(8192) + 8:016x}"
    assert lines[3] == f"raw: 000fffffc0000000 {lru} {lru} 0000000000000000"
    # word 6 = private = the buddy order; word 7 = refcount 0 | page_type 0xf0000000
    assert lines[4] == f"raw: 0000000000000000 {order:016x} 00000000f0000000 0000000000000000"
    assert len(lines) == 5


def test_an_allocated_page_is_off_every_list_and_counted_once(tiny: Machine) -> None:
    p = tiny.alloc_pages(G.GFP_KERNEL, 0)
    assert tiny.describe_page(p).split("\n") == [
        f"page: refcount:1 mapcount:0 mapping:0000000000000000 index:0x0 pfn:{p:#x}",
        "flags: 0xfffffc0000000(node=0|zone=1|lastcpupid=0x1fffff)",
        # list_del's poison in lru; refcount 1, _mapcount -1 (no page type)
        "raw: 000fffffc0000000 dead000000000100 dead000000000122 0000000000000000",
        "raw: 0000000000000000 0000000000000000 00000001ffffffff 0000000000000000",
    ]


def test_a_large_folio_has_a_head_line_and_head_raw_lines(tiny: Machine) -> None:
    p = tiny.alloc_pages(G.GFP_KERNEL | G.__GFP_COMP, 2)
    lines = tiny.describe_page(p + 1).split("\n")
    assert lines[0].startswith("page: refcount:0 mapcount:0 ")  # only the head is counted
    assert lines[1] == "head: order:2 mapcount:0 entire_mapcount:0 nr_pages_mapped:0 pincount:0"
    assert lines[2] == "flags: 0xfffffc0000040(head|node=0|zone=1|lastcpupid=0x1fffff)"
    assert [ln.split(":")[0] for ln in lines[3:]] == ["raw"] * 2 + ["head"] * 4
    # the second struct page of the folio: its order in _flags_1, compound_head = head | 1, nr_pages 4
    assert lines[7].split()[1:3] == ["000fffffc0000002", f"{struct_page_address(p) | 1:016x}"]
    assert lines[8].split()[1] == "0000000000000004"
    # a non-compound block has no head line, and its other pages are not counted either
    q = tiny.alloc_pages(G.GFP_KERNEL, 2)
    assert not any(ln.startswith("head:") for ln in tiny.describe_page(q).split("\n"))
    assert tiny.describe_page(q + 1).startswith("page: refcount:0 ")
