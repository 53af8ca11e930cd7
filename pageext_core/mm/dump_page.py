"""``dump_page`` as 6.12 prints it (``__dump_folio``, mm/debug.c), the lines before ``page dumped because``.

1. ``page: refcount:%d mapcount:%d mapping:%p index:%#lx pfn:%#lx``;
2. for a large folio (a ``__GFP_COMP`` block of order > 0) ``head: order:%u
   mapcount:%d entire_mapcount:%d nr_pages_mapped:%d pincount:%d``;
3. ``flags: %pGp`` of the folio (the head page's flags);
4. for a page with a page type, ``page_type: %x(%s)``: the type's top byte
   in hex and its name (``f0(buddy)``, ``f3(guard)``);
5. ``raw:`` the 64-byte ``struct page`` as two lines of four 16-digit words
   (flags, lru.next, lru.prev, mapping / index, private, mapcount|refcount,
   memcg_data), and for a large folio ``head:`` lines of the folio's first
   two struct pages.

What the model has no address for is chosen and documented (docs/machine.md,
"Formats and messages (6.12)"): a page on no list prints the kernel's list
poison in ``lru`` (``LIST_POISON1``/``2``, what ``list_del`` leaves), a page
on a free or per-CPU list prints its own ``lru`` address for both pointers
(a list of one); ``mapping`` and ``index`` are 0 (no page cache).  The
buddy order and the guard order are in ``private``, as the kernel keeps them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pageext_core.mm.buddy import PageKind
from pageext_core.mm.pageflags import PG_head, page_flags_word

if TYPE_CHECKING:
    from pageext_core.mm.machine import Machine

VMEMMAP_START = 0xFFFFEA0000000000  # x86_64 4-level paging, no KASLR: struct page array
STRUCT_PAGE_SIZE = 64
LIST_POISON1 = 0xDEAD000000000100  # POISON_POINTER_DELTA 0xdead000000000000 on x86_64
LIST_POISON2 = 0xDEAD000000000122
TAIL_MAPPING = 0xDEAD000000000400  # prep_compound_tail's mapping of a tail page
# Page types (PGTY_*, 6.12): the top byte of page_type; the low 24 bits are 0 for these types.
PGTY_BUDDY = 0xF0
PGTY_GUARD = 0xF3
PAGE_TYPE_NAMES = {PGTY_BUDDY: "buddy", 0xF1: "offline", 0xF2: "table", PGTY_GUARD: "guard",
                   0xF4: "hugetlb", 0xF5: "slab", 0xF6: "zsmalloc", 0xF7: "unaccepted"}
MAPCOUNT_NONE = 0xFFFFFFFF  # _mapcount -1: a page mapped nowhere (and with no type)


def struct_page_address(pfn: int) -> int:
    """Where ``pfn``'s struct page sits in the vmemmap."""
    return VMEMMAP_START + pfn * STRUCT_PAGE_SIZE


def page_type(m: Machine, pfn: int) -> int | None:
    """The page's type byte (buddy head, guard head), or None for a page with no type."""
    kind, _, head = m.page_kind(pfn)
    if head != pfn:
        return None
    if kind == PageKind.FREE:
        return PGTY_BUDDY
    if kind == PageKind.HELD:
        return PGTY_GUARD
    return None


def page_private(m: Machine, pfn: int) -> int:
    """``page_private``: the order of a buddy or guard head (``set_buddy_order``/``set_page_private``), else 0."""
    kind, order, head = m.page_kind(pfn)
    return order if head == pfn and kind in (PageKind.FREE, PageKind.HELD) else 0


def refcount(m: Machine, pfn: int) -> int:
    """``page_ref_count``: 1 for the head of an allocated block and for reserved pages, else 0.

    ``post_alloc_hook`` sets the count of the first page only; the other
    pages of a block (compound or not) stay at 0.
    """
    kind, _, head = m.page_kind(pfn)
    if kind == PageKind.RESERVED:
        return 1
    return 1 if kind.allocated and head == pfn else 0


def raw_words(m: Machine, pfn: int) -> list[int]:
    """The eight 8-byte words of ``pfn``'s struct page, as ``print_hex_dump`` reads them."""
    kind, order, head = m.page_kind(pfn)
    node, zone = m.node_zone(pfn)
    if head != pfn and kind.allocated and order and m.page_flags(head) & (1 << PG_head):
        if pfn == head + 1:
            return folio_second_page_words(m, head, order)
        # a tail page: compound_head (the head's address | 1) where lru.next is
        return [page_flags_word(0, node, zone), struct_page_address(head) | 1, 0, TAIL_MAPPING,
                0, 0, MAPCOUNT_NONE, 0]
    flags = m.page_flags(pfn) if kind.allocated or kind == PageKind.RESERVED else 0
    ptype = page_type(m, pfn)
    if (kind in (PageKind.FREE, PageKind.HELD) and head == pfn) or kind == PageKind.PCP:
        lru = struct_page_address(pfn) + 8
        nxt = prv = lru
    else:
        nxt, prv = LIST_POISON1, LIST_POISON2
    low = (ptype << 24) if ptype is not None else MAPCOUNT_NONE
    return [page_flags_word(flags, node, zone), nxt, prv, 0,
            0, page_private(m, pfn), (refcount(m, pfn) << 32) | low, 0]


def folio_second_page_words(m: Machine, head: int, order: int) -> list[int]:
    """Page 1 of a large folio: ``_flags_1`` (order in its low byte), ``_head_1``, the mapcounts, ``_folio_nr_pages``."""
    node, zone = m.node_zone(head + 1)
    return [page_flags_word(order, node, zone), struct_page_address(head) | 1,
            0xFFFFFFFFFFFFFFFF,  # _large_mapcount and _entire_mapcount: -1
            0,  # _nr_pages_mapped and _pincount
            1 << order,  # _folio_nr_pages
            0, MAPCOUNT_NONE, 0]


def hex_lines(prefix: str, words: list[int]) -> list[str]:
    """``print_hex_dump(..., 32, sizeof(long), ..., false)``: four words per line."""
    return [prefix + " ".join(f"{w:016x}" for w in words[i:i + 4]) for i in range(0, len(words), 4)]


def describe_page(m: Machine, pfn: int) -> str:
    """``__dump_folio``'s lines for ``pfn``."""
    kind, order, head = m.page_kind(pfn)
    large = bool(kind.allocated and order and m.page_flags(head) & (1 << PG_head))
    folio = head if large else pfn
    lines = [f"page: refcount:{refcount(m, pfn)} mapcount:0 mapping:0000000000000000 index:0x0 pfn:{pfn:#x}"]
    if large:
        lines.append(f"head: order:{order} mapcount:0 entire_mapcount:0 nr_pages_mapped:0 pincount:0")
    lines.append(f"flags: {m.format_page_flags(folio)}")
    ptype = page_type(m, pfn)
    if ptype is not None:
        lines.append(f"page_type: {ptype:x}({PAGE_TYPE_NAMES[ptype]})")
    lines.extend(hex_lines("raw: ", raw_words(m, pfn)))
    if large:
        lines.extend(hex_lines("head: ", raw_words(m, head) + folio_second_page_words(m, head, order)))
    return "\n".join(lines)
