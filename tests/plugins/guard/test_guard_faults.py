"""Touching a guard page: the fault, the report, the finding; nothing when the feature is off."""
from __future__ import annotations

import pytest
from guardsupport import GFP_DMA, STACKS, FakeOwner, boot, guard_of

from pageext_core.mm import PageFault

N3 = "debug_pagealloc=on debug_guardpage_minorder=3"


def guard_hits(pe) -> list:
    return [f for f in pe.findings() if f.kind == "guard-hit"]


@pytest.mark.parametrize("stack", STACKS)
def test_overrun_past_the_end_hits_the_buddy_guard(stack: str) -> None:
    pe = boot(N3, stack)
    m = pe.machine
    a = m.alloc_pages(GFP_DMA, 0)  # 0, guards 1/0, 2/1, 4/2
    m.write(a, 4090, b"123456")  # the last bytes of the page are fine
    with pytest.raises(PageFault) as exc:
        m.write(a, 4095, b"xy")  # one byte too many
    e = exc.value
    assert (e.pfn, e.offset, e.write) == (1, 0, True)
    assert e.report.splitlines()[:4] == [
        "pageext: page is a guard page: page 0 of the order-0 guard block at pfn 0x1 (debug_guardpage_minorder=3), write access",
        "pageext: The buggy address ffff888000001000 is located 0 bytes to the right of",
        "pageext:  allocated 4096-byte region [ffff888000000000, ffff888000001000): order-0 block at pfn 0x0, the guard's buddy",
        "pageext: Guard block neighbours: below allocated order-0 block at pfn 0x0, above guard order-1 block at pfn 0x2",
    ]
    [hit] = guard_hits(pe)
    assert (hit.pfn, hit.offset, hit.client) == (1, 0, "guard")
    assert hit.detail["block_pfn"] == 0 and hit.detail["block_order"] == 0 and hit.detail["side"] == "right"
    assert hit.detail["guard_pfn"] == 1 and hit.detail["guard_order"] == 0
    assert hit.message.startswith("BUG: unable to handle page fault for address: ffff888000001000\n")
    assert e.report in hit.message
    assert "pageext: page is a guard page: page 0 of the order-0 guard block at pfn 0x1" in "\n".join(m.log.grep("guard"))


@pytest.mark.parametrize("stack", STACKS)
def test_underrun_before_the_start_hits_the_guard_below(stack: str) -> None:
    pe = boot(N3, stack)
    m = pe.machine
    a, b = m.alloc_pages(GFP_DMA, 0), m.alloc_pages(GFP_DMA, 0)  # 0 and 8; guard 4/2 covers 4..7
    assert (a, b) == (0, 8)
    with pytest.raises(PageFault) as exc:
        m.write(b - 1, 4095, b"x")  # the byte just before b
    e = exc.value
    assert (e.pfn, e.offset) == (7, 0xFFF)
    lines = e.report.splitlines()
    assert lines[0] == ("pageext: page is a guard page: page 3 of the order-2 guard block at pfn 0x4 "
                        "(debug_guardpage_minorder=3), write access")
    assert lines[1] == "pageext: The buggy address ffff888000007fff is located 1 bytes to the left of"
    assert lines[2] == "pageext:  allocated 4096-byte region [ffff888000008000, ffff888000009000): order-0 block at pfn 0x8"
    assert lines[3] == ("pageext: Guard block neighbours: below guard order-1 block at pfn 0x2, "
                        "above allocated order-0 block at pfn 0x8")
    [hit] = guard_hits(pe)
    assert hit.detail["block_pfn"] == 8 and hit.detail["side"] == "left"


@pytest.mark.parametrize("stack", STACKS)
def test_larger_block_overrun_and_read_access(stack: str) -> None:
    # Order-2 request with N=5: guards 4/2, 8/3, 16/4.  Reading 16 KiB + 1 byte from 0 runs into 4.
    pe = boot("debug_pagealloc=on debug_guardpage_minorder=5", stack)
    m = pe.machine
    assert m.alloc_pages(GFP_DMA, 2) == 0
    assert len(m.read(0, 0, 4 * 4096)) == 4 * 4096
    with pytest.raises(PageFault) as exc:
        m.read(0, 0, 4 * 4096 + 1)
    e = exc.value
    assert (e.pfn, e.offset, e.write) == (4, 0, False)
    assert e.report.splitlines()[0].endswith("read access")
    assert "pageext:  allocated 16384-byte region [ffff888000000000, ffff888000004000): order-2 block at pfn 0x0, " \
           "the guard's buddy" in e.report
    # Deep inside 16/4: the upper half is nearer the block above (32/5, free), the page below
    # (15) is guard 8/3, so the report names the allocation at the head of the buddy (0/4): 0/2.
    with pytest.raises(PageFault) as exc:
        m.write(30, 8, b"x")
    assert exc.value.report.splitlines()[1:4] == [
        "pageext: The buggy address ffff88800001e008 is located 106504 bytes to the right of",
        "pageext:  allocated 16384-byte region [ffff888000000000, ffff888000004000): order-2 block at pfn 0x0, "
        "at the head of the guard's buddy (order 4 at pfn 0x0)",
        "pageext: Guard block neighbours: below guard order-3 block at pfn 0x8, above free order-5 block at pfn 0x20",
    ]
    assert len(guard_hits(pe)) == 2


@pytest.mark.parametrize("stack", STACKS)
def test_owner_dump_only_with_page_owner(stack: str) -> None:
    pe = boot(N3, stack)
    m = pe.machine
    m.alloc_pages(GFP_DMA, 0)
    with pytest.raises(PageFault) as exc:
        m.write(1, 0, b"x")
    assert "page_owner" not in exc.value.report and "OWNER" not in exc.value.report
    assert guard_of(pe).hits[0].detail["owner_dump"] is False

    pe = boot(N3, stack, plugins=[FakeOwner()])
    m = pe.machine
    m.alloc_pages(GFP_DMA, 0)
    with pytest.raises(PageFault) as exc:
        m.write(1, 0, b"x")
    assert exc.value.report.splitlines()[4:] == [
        "page_owner tracks the page as allocated", "FAKE OWNER DUMP pfn 0x0"]
    assert guard_of(pe).hits[0].detail["owner_dump"] is True


def test_owner_dump_from_the_real_page_owner() -> None:
    pe = boot(N3 + " page_owner=on")
    assert "page_owner" in pe.enabled and "pageext_dump_page" in pe.client("page_owner").hooks
    m = pe.machine
    a = m.alloc_pages(GFP_DMA, 0)
    expected = pe.dump_page(a)
    assert expected
    with pytest.raises(PageFault) as exc:
        m.write(a + 1, 0, b"x")
    assert expected.rstrip("\n") in exc.value.report


@pytest.mark.parametrize("stack", STACKS)
def test_non_guard_pages_are_not_ours(stack: str) -> None:
    pe = boot(N3, stack)
    m = pe.machine
    m.alloc_pages(GFP_DMA, 0)
    g = guard_of(pe)
    assert g.pageext_on_fault(8, 0, True) is None  # free (8/3)
    assert g.pageext_on_fault(0, 0, True) is None  # allocated
    try:
        m.write(8, 0, b"x")  # a free page: debug_pagealloc's business
    except PageFault as exc:
        assert "guard page" not in exc.report
    assert guard_hits(pe) == []


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("cmdline", ["debug_pagealloc=on debug_guardpage_minorder=0",
                                     "debug_guardpage_minorder=3"])
def test_no_guard_reports_when_off(stack: str, cmdline: str) -> None:
    pe = boot(cmdline, stack)
    m = pe.machine
    a = m.alloc_pages(GFP_DMA, 0)
    for pfn, off in ((a + 1, 0), (a + 4, 0)):
        try:
            m.write(pfn, off, b"x")
        except PageFault as exc:  # a free page under debug_pagealloc
            assert "guard page" not in exc.report
    assert "guard" not in pe.enabled
    assert [f for f in pe.findings() if f.kind == "guard-hit"] == []
