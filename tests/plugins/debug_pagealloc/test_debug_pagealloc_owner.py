"""page_owner's account of the page appears in reports only when page_owner is enabled."""
from __future__ import annotations

import pytest
from debug_pagealloc_support import boot_dpa, boot_installed, free_then_alloc

from pageext_core import BootParam, hookimpl
from pageext_core.mm import PageFault
from pageext_core.mm.gfp import GFP_KERNEL

ALLOC_STACK = ["alloc_pages_noprof+0x1a/0x40", "buggy_driver_rx+0x88/0x200"]
FREE_STACK = ["free_pages+0x12/0x30", "buggy_driver_done+0x10/0x80"]


class FakeOwner:
    """A stand-in for page_owner: enabled by its own boot parameter, answers ``pageext_dump_page``."""

    name = "fake_owner"

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("fake_owner", "bool", False, "test double of page_owner")]

    @hookimpl
    def pageext_need(self, boot) -> bool:
        return bool(boot["fake_owner"])

    @hookimpl
    def pageext_dump_page(self, pfn: int) -> str:
        return f"page_owner tracks the page as freed\npage last free pid 7 tgid 7 stack trace: (pfn {pfn:#x})\n"


def test_fake_owner_dump_follows_the_reason_line_in_corruption_reports() -> None:
    pe = boot_dpa("debug_pagealloc=on page_poison=on fake_owner=on", extra=[FakeOwner()])
    p = free_then_alloc(pe, {0: b"\x00"})
    [f] = pe.findings()
    lines = f.message.split("\n")
    i = lines.index("page dumped because: pagealloc: corrupted page details")
    assert lines[i + 1 :] == ["page_owner tracks the page as freed",
                              f"page last free pid 7 tgid 7 stack trace: (pfn {p:#x})"]


def test_fake_owner_dump_in_fault_reports() -> None:
    pe = boot_dpa("debug_pagealloc=on fake_owner=on", extra=[FakeOwner()])
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    with pytest.raises(PageFault) as ei:
        m.read(p, 0, 1)
    assert ei.value.report.endswith(f"page last free pid 7 tgid 7 stack trace: (pfn {p:#x})")


def test_no_owner_dump_when_the_owner_client_is_off() -> None:
    pe = boot_dpa("debug_pagealloc=on page_poison=on", extra=[FakeOwner()])
    free_then_alloc(pe, {0: b"\x00"})
    [f] = pe.findings()
    assert "page_owner tracks" not in f.message
    assert f.message.endswith("page dumped because: pagealloc: corrupted page details")


def _real_page_owner(line: str):
    pe = boot_installed(line)
    assert "pageext_dump_page" in pe.client("page_owner").hooks
    return pe


def test_real_page_owner_dump_appears_in_fault_reports() -> None:
    pe = _real_page_owner("debug_pagealloc=on page_owner=on")
    m = pe.machine
    with m.context(stack=ALLOC_STACK):
        p = m.alloc_pages(GFP_KERNEL, 0)
    with m.context(stack=FREE_STACK):
        m.free_pages(p, 0)
    with pytest.raises(PageFault) as ei:
        m.write(p, 8, b"late")
    dump = pe.dump_page(p)
    assert dump and dump.rstrip("\n") in ei.value.report
    assert "buggy_driver_rx" in ei.value.report and "buggy_driver_done" in ei.value.report


def test_real_page_owner_shows_the_previous_owner_in_corruption_reports() -> None:
    """debug_pagealloc checks before page_owner records the new allocation (tryfirst on alloc)."""
    pe = _real_page_owner("debug_pagealloc=on page_poison=on page_owner=on")
    m = pe.machine
    with m.context(stack=ALLOC_STACK):
        p = m.alloc_pages(GFP_KERNEL, 0)
    with m.context(stack=FREE_STACK):
        m.free_pages(p, 0)
    m.contents.write_phys(p, 0, b"\xab")
    with m.context(stack=["someone_else+0x1/0x2"]):
        assert m.alloc_pages(GFP_KERNEL, 0) == p
    [f] = pe.findings()
    assert "page_owner tracks the page as freed" in f.message
    assert "buggy_driver_rx" in f.message


def test_real_page_owner_off_means_no_owner_dump() -> None:
    pe = boot_installed("debug_pagealloc=on page_poison=on")
    assert pe.dump_page(0) is None
    p = free_then_alloc(pe, {0: b"\x00"})
    [f] = pe.findings()
    assert f.pfn == p and "page_owner tracks" not in f.message
