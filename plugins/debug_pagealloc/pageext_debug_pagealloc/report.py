"""The texts debug_pagealloc prints, in the kernel's words and order.

A corruption report follows mainline's poison check: the headline
(``pagealloc: single bit error`` or ``pagealloc: memory corruption``), the
hex dump of the bad range, the stack (``dump_stack``), then ``dump_page``:
the page description, ``page dumped because: ...`` and, when page_owner is
on, its account of the page (``dump_page`` prints the reason line before
page_owner's lines).  A fault report has the same shape, with a headline
saying what was accessed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pageext_core.mm.errors import direct_map_address
from pageext_debug_pagealloc.hexdump import hex_dump

if TYPE_CHECKING:
    from pageext_core import PageExt
    from pageext_core.mm import Machine

PAGE_POISON = 0xAA

SINGLE_BIT = "single-bit-error"
CORRUPTION = "memory-corruption"
USE_AFTER_FREE = "use-after-free"
STRAY_ACCESS = "stray-access"

HEADLINES = {
    SINGLE_BIT: "pagealloc: single bit error",
    CORRUPTION: "pagealloc: memory corruption",
}
CORRUPTED_REASON = "pagealloc: corrupted page details"
FREE_PAGE_REASON = "pagealloc: access to a free page"


def classify(first: int, last: int, data: bytes) -> str:
    """One bad byte one bit away from the poison is a single bit error; anything else corruption."""
    if first == last and bin(data[0] ^ PAGE_POISON).count("1") == 1:
        return SINGLE_BIT
    return CORRUPTION


def stack_lines(machine: Machine) -> list[str]:
    """``dump_stack``: who is running (with the kernel's taint), the hardware name, then the current stack."""
    return machine.dump_stack_lines()


def dump_page_lines(machine: Machine, page_ext: PageExt, pfn: int, reason: str) -> list[str]:
    """``dump_page``: description, reason, then what the enabled clients add (page_owner's account)."""
    lines = machine.describe_page(pfn).split("\n")
    lines.append(f"page dumped because: {reason}")
    extra = page_ext.dump_page(pfn)
    if extra:
        lines.extend(extra.rstrip("\n").split("\n"))
    return lines


def corruption_report(machine: Machine, page_ext: PageExt, pfn: int, first: int, last: int,
                      data: bytes, kind: str) -> str:
    """The whole report for one page whose poison is damaged at bytes ``first..last``."""
    lines = [HEADLINES[kind]]
    lines.extend(hex_dump(data, direct_map_address(pfn, first)))
    lines.extend(stack_lines(machine))
    lines.extend(dump_page_lines(machine, page_ext, pfn, CORRUPTED_REASON))
    return "\n".join(lines)


def fault_report(machine: Machine, page_ext: PageExt, pfn: int, offset: int, write: bool, kind: str) -> str:
    """What debug_pagealloc adds to the page fault oops of an access to a free page."""
    access = "write" if write else "read"
    where = f"{access} at {direct_map_address(pfn, offset):016x} (pfn {pfn:#x} offset {offset:#x})"
    # pageext's own headline (the kernel's oops says nothing more), so prefixed
    if kind == USE_AFTER_FREE:
        head = f"pageext: pagealloc: use-after-free: {where}: the page was freed and is still free"
    else:
        head = (f"pageext: pagealloc: access to free memory: {where}: "
                "the page is free and was never allocated since boot")
    # The core's oops already shows the CPU line and the Call Trace of the access.
    lines = [head]
    lines.extend(dump_page_lines(machine, page_ext, pfn, FREE_PAGE_REASON))
    return "\n".join(lines)
