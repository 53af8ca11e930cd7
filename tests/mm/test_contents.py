"""Page contents: lazy 4 KiB backing, reads and writes across pages, unmapped pages fault, fill/zero."""
from __future__ import annotations

import pytest

from pageext_core.mm import InvalidPfn, Machine, PageFault, check_invariants
from pageext_core.mm import gfp as G

PAGE = 4096


def test_untouched_pages_have_no_backing(tiny: Machine):
    c = tiny.contents
    assert c.backed_pages == 0 and c.host_bytes == 0
    assert tiny.read(4096) == bytes(PAGE)
    assert tiny.read(0, 0, 10 * PAGE) == bytes(10 * PAGE)  # reading does not back pages
    assert c.backed_pages == 0 and c.host_bytes == 0


def test_first_write_backs_one_page(tiny: Machine):
    c = tiny.contents
    tiny.write(5000, 10, b"abc")
    assert c.backed_pages == 1
    assert c.host_bytes >= PAGE
    assert tiny.read(5000, 8, 7) == b"\0\0abc\0\0"
    tiny.write(5000, 4000, b"x" * 96)  # same page again: no new backing
    assert c.backed_pages == 1
    tiny.write(6000, 0, b"y")
    assert c.backed_pages == 2


def test_host_bytes_grow_with_written_pages_only(tiny: Machine):
    for p in range(100):
        tiny.write(4096 + p, 0, b"z")
    assert tiny.contents.backed_pages == 100
    assert 100 * PAGE <= tiny.contents.host_bytes < 300 * PAGE + 16384 * 8


def test_access_spanning_pages(tiny: Machine):
    data = bytes(range(256)) * 40  # 10240 bytes from offset 4000: 96 + 4096 + 4096 + 1952, four pages
    tiny.write(4096, 4000, data)
    assert tiny.contents.backed_pages == 4
    assert tiny.read(4096, 4000, len(data)) == data
    assert tiny.read(4097, 0, 10) == data[96:106]
    assert tiny.read(4096, 4096 + 96, 4) == data[192:196]  # an offset past the page runs on
    assert tiny.read(4096, 0, 4000) == bytes(4000)


def test_zero_length_access(tiny: Machine):
    assert tiny.read(4096, 0, 0) == b""
    tiny.write(4096, 0, b"")
    assert tiny.contents.backed_pages == 0
    with pytest.raises(ValueError):
        tiny.read(4096, 0, -1)


def test_unmapped_page_faults_with_pfn_and_offset(tiny: Machine):
    c = tiny.contents
    tiny.write(4097, 0, b"data")
    c.unmap(4097)
    assert not c.is_mapped(4097) and c.is_mapped(4096)
    with pytest.raises(PageFault) as ei:
        tiny.read(4097, 123, 4)
    err = ei.value
    assert (err.pfn, err.offset, err.write) == (4097, 123, False)
    assert "pfn 0x1001 offset 0x7b" in str(err)
    assert "#PF: supervisor read access in kernel mode" in str(err)
    with pytest.raises(PageFault) as ei:
        tiny.write(4097, 8, b"!")
    assert ei.value.write and "supervisor write access" in str(ei.value)
    assert "error_code(0x0002)" in str(ei.value)
    # a read that runs into the unmapped page faults at that page's offset 0
    with pytest.raises(PageFault) as ei:
        tiny.read(4096, 4000, 200)
    assert (ei.value.pfn, ei.value.offset) == (4097, 0)
    # nothing was written by the faulting write
    c.map(4097)
    assert tiny.read(4097, 0, 9) == b"data\0\0\0\0\0"
    assert c.nr_unmapped == 0


def test_fault_report_comes_from_handlers(tiny: Machine):
    tiny.contents.unmap(4200, 2)
    tiny.contents.fault_handlers.append(lambda pfn, off, write: f"pfn {pfn:#x} is a guard page")
    tiny.contents.fault_handlers.append(lambda pfn, off, write: None)
    with pytest.raises(PageFault) as ei:
        tiny.read(4201)
    assert ei.value.report == "pfn 0x1069 is a guard page"
    assert str(ei.value).endswith("\npfn 0x1069 is a guard page")
    assert tiny.contents.nr_unmapped == 2


def test_access_to_non_memory(tiny: Machine):
    with pytest.raises(InvalidPfn):
        tiny.read(16384)
    with pytest.raises(InvalidPfn):
        tiny.write(16383, 4090, b"0123456789")  # runs past the end of memory
    assert tiny.contents.backed_pages == 0
    with pytest.raises(InvalidPfn):
        tiny.read(4096, -1, 1)


def test_access_to_a_hole():
    from pageext_core.mm import MachineConfig, MiB

    m = Machine(MachineConfig(memory=64 * MiB))
    with pytest.raises(InvalidPfn, match="hole"):
        m.read(159, 4000, 200)  # runs into pfn 160


def test_fill_and_zero_drop_backing(tiny: Machine):
    c = tiny.contents
    tiny.write(4096, 0, b"q" * 100)
    tiny.write(4098, 0, b"q" * 100)
    c.fill(4096, 4, 0xAA)
    assert c.backed_pages == 0
    assert tiny.read(4096, 0, 4 * PAGE) == b"\xaa" * (4 * PAGE)
    assert tiny.read(4100, 0, 1) == b"\0"
    tiny.write(4097, 5, b"hi")  # a written page starts from its fill byte
    assert tiny.read(4097, 0, 8) == b"\xaa" * 5 + b"hi" + b"\xaa"
    c.zero(4096, 4)
    assert tiny.read(4096, 0, 4 * PAGE) == bytes(4 * PAGE)
    assert c.backed_pages == 0


def test_find_mismatch(tiny: Machine):
    c = tiny.contents
    c.fill(4096, 8, 0x6B)
    assert c.find_mismatch(4096, 8, 0x6B) == []
    tiny.write(4098, 100, b"\x00\x01")
    tiny.write(4098, 200, b"\x02")
    tiny.write(4101, 0, b"\x6b")  # backed but still all 0x6b
    assert c.find_mismatch(4096, 8, 0x6B) == [(4098, 100, 200, b"\x00\x01" + b"\x6b" * 98 + b"\x02")]
    # pages outside the filled range read as 0: every byte differs
    bad = c.find_mismatch(4103, 2, 0x6B)
    assert [(p, a, b) for p, a, b, _ in bad] == [(4104, 0, 4095)]
    assert bad[0][3] == bytes(PAGE)
    assert [p for p, *_ in c.find_mismatch(4096, 8, 0)] == list(range(4096, 4104))


def test_gfp_zero_zeroes_a_reused_page(tiny: Machine):
    p = tiny.alloc_pages(G.GFP_KERNEL, 0)
    tiny.write(p, 0, b"secret" * 100)
    tiny.free_pages(p, 0)
    q = tiny.alloc_pages(G.GFP_KERNEL, 0)
    assert q == p
    assert tiny.read(q, 0, 6) == b"secret"  # freeing does not clear
    tiny.free_pages(q, 0)
    r = tiny.alloc_pages(G.GFP_KERNEL | G.__GFP_ZERO, 0)
    assert r == p
    assert tiny.read(r) == bytes(PAGE)
    assert tiny.contents.backed_pages == 0


def test_gfp_zero_zeroes_the_whole_block(tiny: Machine):
    tiny.contents.fill(4096, 1024, 0xFF)
    tiny.write(4096 + 7, 0, b"\x01")
    p = tiny.alloc_pages(G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO, 3)
    assert p == 4096
    assert tiny.contents.find_mismatch(p, 8, 0) == []
    assert tiny.read(p + 8, 0, 1) == b"\xff"  # outside the block: untouched


def test_migration_keeps_bytes_and_fill(tiny: Machine):
    p = tiny.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 1)
    tiny.contents.fill(p, 2, 0x5A)
    tiny.write(p, 1, b"\x00")
    new = tiny.migrate_pages(p, 1)
    assert tiny.read(new, 0, 3) == b"\x5a\x00\x5a"
    assert tiny.read(new + 1, 0, PAGE) == b"\x5a" * PAGE
    check_invariants(tiny)


def test_default_fill(tiny: Machine):
    c = tiny.contents
    c.fill(4096, 1, 0x11)
    c.set_default_fill(0xAA)
    assert tiny.read(5000, 0, 2) == b"\xaa\xaa"
    assert tiny.read(4096, 0, 1) == b"\x11"
    tiny.write(6000, 0, b"\x01")
    assert tiny.read(6000, 0, 2) == b"\x01\xaa"
