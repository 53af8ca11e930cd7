"""Unmapping: every access to a free page faults at once, with a report naming the page."""
from __future__ import annotations

import pytest
from debug_pagealloc_support import SMALL, boot_dpa, client, log_lines, never_allocated_free_pfn

from pageext_core.mm import MachineConfig, MiB, PageFault, check_invariants
from pageext_core.mm.errors import direct_map_address
from pageext_core.mm.gfp import GFP_KERNEL


def test_write_after_free_faults_with_use_after_free_report() -> None:
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.write(p, 0, b"in use")
    m.free_pages(p, 0)
    with pytest.raises(PageFault) as ei:
        m.write(p, 0x10, b"late")
    e = ei.value
    assert (e.pfn, e.offset, e.write) == (p, 0x10, True)
    addr = f"{direct_map_address(p, 0x10):016x}"
    assert e.report.split("\n")[0] == (
        f"pageext: pagealloc: use-after-free: write at {addr} (pfn {p:#x} offset 0x10): the page was freed and is still free")
    assert f"page: refcount:0 mapcount:0 mapping:0000000000000000 index:0x0 pfn:{p:#x}" in e.report
    assert "page dumped because: pagealloc: access to a free page" in e.report
    assert "page_owner tracks" not in e.report  # page_owner is off
    [f] = pe.findings()
    assert (f.kind, f.pfn, f.offset, f.detail["write"]) == ("use-after-free", p, 0x10, True)
    assert f.detail["on_pcp_list"] is True  # an order-0 free goes to the per-CPU list first
    assert log_lines(pe, "pageext: pagealloc: use-after-free: write at")


def test_read_after_free_faults_and_the_write_never_landed() -> None:
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 2)
    m.free_pages(p, 2)
    with pytest.raises(PageFault) as ei:
        m.read(p + 3, 0x800, 4)
    assert (ei.value.pfn, ei.value.offset, ei.value.write) == (p + 3, 0x800, False)
    assert "pageext: pagealloc: use-after-free: read at" in ei.value.report
    with pytest.raises(PageFault):
        m.write(p + 1, 0, b"x")
    assert [f.kind for f in pe.findings()] == ["use-after-free", "use-after-free"]
    assert [f.pfn for f in client(pe).findings] == [p + 3, p + 1]  # in the order they happened
    # The faulting write changed nothing: the page is still pure poison when handed out again.
    q = m.alloc_pages(GFP_KERNEL, 2)
    assert q == p
    assert m.read(p + 1, 0, 4096) == b"\xaa" * 4096
    assert len(pe.findings()) == 2


def test_access_running_on_into_a_free_page_faults_there() -> None:
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 1)
    m.split_page(p, 1)  # two order-0 pages, p and p + 1
    m.free_pages(p + 1, 0)
    with pytest.raises(PageFault) as ei:
        m.write(p, 4090, b"0123456789")  # 6 bytes in p, 4 in p + 1
    assert (ei.value.pfn, ei.value.offset) == (p + 1, 0)
    [f] = pe.findings()
    assert (f.kind, f.pfn) == ("use-after-free", p + 1)
    # Nothing of the write landed, not even its first 6 bytes: p still reads as the
    # poison it held when it was handed out (allocation does not clear poison).
    assert m.read(p, 4090, 6) == b"\xaa" * 6


def test_stray_access_to_never_allocated_memory() -> None:
    pe = boot_dpa()
    m = pe.machine
    pfn = never_allocated_free_pfn(pe)
    with pytest.raises(PageFault) as ei:
        m.write(pfn, 0x123, b"wild pointer")
    first = ei.value.report.split("\n")[0]
    assert first == (f"pageext: pagealloc: access to free memory: write at {direct_map_address(pfn, 0x123):016x} "
                     f"(pfn {pfn:#x} offset 0x123): the page is free and was never allocated since boot")
    # the last pfn is inside a free block, not its head: 6.12 gives only a buddy head a page type
    assert f"page: refcount:0 mapcount:0 mapping:0000000000000000 index:0x0 pfn:{pfn:#x}" in ei.value.report
    assert "page_type:" not in ei.value.report
    [f] = pe.findings()
    assert (f.kind, f.pfn, f.offset) == ("stray-access", pfn, 0x123)


def test_freed_page_reallocated_is_mapped_and_usable() -> None:
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    assert not m.contents.is_mapped(p)
    assert m.alloc_pages(GFP_KERNEL, 0) == p
    assert m.contents.is_mapped(p)
    m.write(p, 0, b"fine")
    assert m.read(p, 0, 4) == b"fine"
    assert pe.findings() == []


def test_unmapped_count_follows_free_pages() -> None:
    pe = boot_dpa()
    m = pe.machine
    held = [m.alloc_pages(GFP_KERNEL, o) for o in (0, 1, 3, 5, 0, 2)]
    assert m.contents.nr_unmapped == int(m.free_pages_mask().sum())
    for p, o in zip(held, (0, 1, 3, 5, 0, 2)):
        m.free_pages(p, o)
    assert m.contents.nr_unmapped == int(m.free_pages_mask().sum())
    assert client(pe).pageext_summary()["unmapped_pages"] == m.contents.nr_unmapped
    check_invariants(m)


def test_fault_on_an_allocated_page_is_not_ours_to_explain() -> None:
    """Another client (guard pages) unmaps pages that are not free: debug_pagealloc stays silent."""
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.contents.unmap(p, 1)
    with pytest.raises(PageFault) as ei:
        m.read(p, 0, 1)
    assert ei.value.report == ""
    assert client(pe).pageext_on_fault(p, 0, False) is None
    assert pe.findings() == []


def test_page_poison_alone_does_not_unmap() -> None:
    pe = boot_dpa("page_poison=on")
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    assert m.contents.nr_unmapped == 0 and m.contents.is_mapped(p)
    m.write(p, 0, b"lands")  # no fault: caught later, at allocation
    assert pe.findings() == []


def test_off_nothing_faults() -> None:
    pe = boot_dpa("")
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    m.write(p, 0, b"x")
    m.read(never_allocated_free_pfn(pe), 0, 16)
    assert pe.findings() == []


def test_hot_added_memory_is_unmapped_and_poisoned_like_boot_memory() -> None:
    cfg = SMALL.with_(hotplug=128 * MiB)
    pe = boot_dpa(config=cfg)
    m = pe.machine
    blk = next(b for b in m.memory_blocks if b.hotplug)
    m.online_memory_block(blk.index)
    pfn = blk.end_pfn - 1
    assert m.is_free(pfn) and not m.contents.is_mapped(pfn)
    assert m.contents.nr_unmapped == int(m.free_pages_mask().sum())
    assert client(pe).view.test_flag(pfn, client(pe).view.flag("POISON"))
    with pytest.raises(PageFault):
        m.read(pfn, 0, 1)
    assert pe.findings()[-1].kind == "stray-access"
    m.offline_memory_block(blk.index)
    assert m.contents.nr_unmapped == int(m.free_pages_mask().sum())
    check_invariants(m)


def test_flatmem_machine() -> None:
    cfg = MachineConfig(memory=64 * MiB, memory_model="FLATMEM", x86_holes=True)
    pe = boot_dpa(config=cfg)
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 3)
    m.free_pages(p, 3)
    with pytest.raises(PageFault):
        m.read(p + 7, 0, 1)
    assert pe.findings()[0].kind == "use-after-free"


@pytest.mark.parametrize("line", ["debug_pagealloc=on", "debug_pagealloc=on page_poison=on"])
def test_the_oops_header_says_debug_pagealloc(line: str) -> None:
    """6.12's ``__die_header``: `` DEBUG_PAGEALLOC`` when ``debug_pagealloc_enabled()``, between SMP and NOPTI,
    after the doubled ``Oops: Oops:`` of the page-fault path (the issue's header lacked the first ``Oops:``)."""
    pe = boot_dpa(line)
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    with pytest.raises(PageFault):
        m.read(p, 0, 8)
    assert m.log.grep("Oops: ") == ["Oops: Oops: 0000 [#1] PREEMPT SMP DEBUG_PAGEALLOC NOPTI"]


def test_page_poison_alone_adds_nothing_to_the_oops_header() -> None:
    pe = boot_dpa("page_poison=on")
    assert pe.machine.debug_pagealloc_enabled is False
