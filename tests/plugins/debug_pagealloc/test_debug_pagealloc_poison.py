"""Poisoning: free pages hold 0xaa; damage is found, classified and dumped at allocation."""
from __future__ import annotations

import pytest
from debug_pagealloc_support import boot_dpa, client, free_then_alloc, headlines, log_lines

from pageext_core.mm import check_invariants
from pageext_core.mm.errors import direct_map_address
from pageext_core.mm.gfp import __GFP_ZERO, GFP_KERNEL

STACK = ["alloc_pages_noprof+0x1a/0x40", "my_driver_probe+0x44/0x100", "do_one_initcall+0x5d/0x310"]


@pytest.mark.parametrize("line", ["debug_pagealloc=on page_poison=on", "page_poison=on"])
@pytest.mark.parametrize("byte, kind", [
    (0xAB, "single-bit-error"),  # 0xaa ^ 0x01
    (0x2A, "single-bit-error"),  # 0xaa ^ 0x80
    (0xA9, "memory-corruption"),  # 0xaa ^ 0x03: two bits of one byte
    (0x00, "memory-corruption"),
])
def test_one_bad_byte_is_classified(line: str, byte: int, kind: str) -> None:
    pe = boot_dpa(line)
    p = free_then_alloc(pe, {100: bytes([byte])})
    [f] = pe.findings()
    assert (f.kind, f.pfn, f.offset) == (kind, p, 100)
    assert f.detail == {"first_bad": 100, "last_bad": 100, "bad_bytes": 1, "printed": True}
    headline = "pagealloc: single bit error" if kind == "single-bit-error" else "pagealloc: memory corruption"
    assert headlines(pe) == [headline]
    assert f.message.split("\n")[0] == headline
    # The allocation succeeded and the bad byte is still there: the check reports, it does not repair.
    assert pe.machine.is_allocated(p)
    assert pe.machine.read(p, 99, 3) == bytes([0xAA, byte, 0xAA])


def test_two_single_bit_flips_are_memory_corruption() -> None:
    pe = boot_dpa()
    p = free_then_alloc(pe, {8: b"\xab", 9: b"\xab"})
    [f] = pe.findings()
    assert (f.kind, f.pfn, f.offset, f.detail["last_bad"], f.detail["bad_bytes"]) == (
        "memory-corruption", p, 8, 9, 2)


def test_writing_the_poison_value_is_no_corruption() -> None:
    pe = boot_dpa()
    free_then_alloc(pe, {0: b"\xaa" * 64})
    assert pe.findings() == []
    assert client(pe).pages_compared == 1  # it had backing, so it was compared, and found clean


def test_hex_dump_of_a_small_corruption_written_by_hand() -> None:
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    m.contents.write_phys(p, 0x10, b"AB\x00~")
    with m.context(stack=STACK):
        assert m.alloc_pages(GFP_KERNEL, 0) == p
    addr = direct_map_address(p, 0x10)
    expected = [
        "pagealloc: memory corruption",
        # 4 bytes: "41 42 00 7e" is 11 columns, padded to the ASCII column 49 with 38 spaces.
        f"{addr:016x}: 41 42 00 7e" + " " * 38 + "AB.~",
        "CPU: 0 UID: 0 PID: 0 Comm: swapper/0 Not tainted 6.12.0-pageext #1",
        "Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-2.fc40 04/01/2014",
        "Call Trace:",
        " <TASK>",
        " alloc_pages_noprof+0x1a/0x40",
        " my_driver_probe+0x44/0x100",
        " do_one_initcall+0x5d/0x310",
        " </TASK>",
        *m.describe_page(p).split("\n"),
        "page dumped because: pagealloc: corrupted page details",
    ]
    [f] = pe.findings()
    assert f.message.split("\n") == expected
    # ... and the kernel log has exactly those lines, in that order, at error level.
    tail = [(lvl, t) for _, lvl, t in m.log.lines[-len(expected):]]
    assert tail == [("err", t) for t in expected]
    assert expected[10].startswith(f"page: refcount:1 mapcount:0 mapping:0000000000000000 index:0x0 pfn:{p:#x}")


def test_hex_dump_spans_rows_from_first_to_last_bad_byte() -> None:
    pe = boot_dpa()
    p = free_then_alloc(pe, {0xFF: b"\x01", 0x112: b"\x02"})
    a = direct_map_address(p, 0xFF)
    [f] = pe.findings()
    lines = f.message.split("\n")
    # 0xff..0x112 is 20 bytes: a full row of 16 starting at 0xff (not at a 16-byte boundary), then 4.
    assert lines[1] == f"{a:016x}: 01" + " aa" * 15 + "  " + "." * 16
    assert lines[2] == f"{a + 16:016x}: aa aa aa 02" + " " * 38 + "...."
    assert lines[3].startswith("CPU: ")
    assert (f.offset, f.detail["last_bad"], f.detail["bad_bytes"]) == (0xFF, 0x112, 2)


def test_every_damaged_page_of_a_block_is_reported() -> None:
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 2)
    m.free_pages(p, 2)
    m.contents.write_phys(p + 1, 4095, b"\xa9")  # two bits off (0xaa ^ 0x03)
    m.contents.write_phys(p + 3, 0, b"\xae")  # one bit off (0xaa ^ 0x04)
    assert m.alloc_pages(GFP_KERNEL, 2) == p
    got = sorted((f.pfn, f.kind, f.offset) for f in pe.findings())
    assert got == [(p + 1, "memory-corruption", 4095), (p + 3, "single-bit-error", 0)]
    assert client(pe).pages_checked >= 4 + 1  # the block, and the page the first allocation took
    check_invariants(m)


def test_page_poison_catches_a_stray_write_at_allocation() -> None:
    pe = boot_dpa("page_poison=on")
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    m.write(p, 0x20, b"stray")  # lands: pages stay mapped in this mode
    assert pe.findings() == []
    assert m.alloc_pages(GFP_KERNEL, 0) == p
    [f] = pe.findings()
    assert (f.kind, f.pfn, f.offset) == ("memory-corruption", p, 0x20)
    assert f.message.split("\n")[1] == (
        f"{direct_map_address(p, 0x20):016x}: 73 74 72 61 79" + " " * 35 + "stray")


def test_data_written_while_allocated_is_poisoned_over_on_free() -> None:
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 1)
    m.write(p, 0, b"secret" * 1000)
    m.free_pages(p, 1)
    assert m.contents.backed_pages == 0  # the poison fill gave the rows back
    assert m.alloc_pages(GFP_KERNEL, 1) == p
    assert m.read(p, 0, 8192) == b"\xaa" * 8192
    assert pe.findings() == []


def test_zeroing_allocation_is_not_a_false_positive() -> None:
    """__GFP_ZERO: the block is checked, then zeroed; a clean page reports nothing and reads as zeros."""
    pe = boot_dpa()
    m = pe.machine
    checked = client(pe).pages_checked
    p = free_then_alloc(pe, {}, gfp=GFP_KERNEL | __GFP_ZERO)
    assert m.read(p, 0, 4096) == bytes(4096)
    assert pe.findings() == []
    assert client(pe).pages_checked == checked + 2  # both allocations of the page were checked
    q = m.alloc_pages(GFP_KERNEL | __GFP_ZERO, 3)
    assert m.read(q, 0, 8 * 4096) == bytes(8 * 4096)
    assert pe.findings() == []


def test_zeroing_allocation_is_checked_before_it_is_zeroed() -> None:
    """The kernel's order: post_alloc_hook checks poison, then zeroes; damage is still reported."""
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    m.contents.write_phys(p, 0x300, b"\xab")
    assert m.alloc_pages(GFP_KERNEL | __GFP_ZERO, 0) == p
    [f] = pe.findings()
    assert (f.kind, f.pfn, f.offset) == ("single-bit-error", p, 0x300)
    assert m.read(p, 0x300, 1) == b"\x00"


def test_off_reports_nothing() -> None:
    pe = boot_dpa("")
    free_then_alloc(pe, {100: b"\xab", 200: b"junk"})
    assert pe.findings() == []
    assert log_lines(pe, "pagealloc") == []


def test_migration_and_exact_allocations_stay_clean() -> None:
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 2)
    m.write(p, 0, b"payload")
    new = m.migrate_pages(p, 2, "compaction", GFP_KERNEL)
    assert new is not None and m.read(new, 0, 7) == b"payload"
    e = m.alloc_pages_exact(5)  # an order-3 block whose last 3 pages are freed at once
    assert e is not None
    m.free_pages_exact(e, 5)
    m.free_pages(new, 2)
    for _ in range(50):
        q = m.alloc_pages(GFP_KERNEL, 3)
        m.free_pages(q, 3)
    assert pe.findings() == []
    check_invariants(m)
