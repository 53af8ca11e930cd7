"""Rate limiting: 10 reports per 5 s of simulated time, as the kernel's default ratelimit."""
from __future__ import annotations

from debug_pagealloc_support import boot_dpa, client, headlines, log_lines

from pageext_core.mm.gfp import GFP_KERNEL

SECOND = 1_000_000_000


def plant_block(pe, order: int, pages: list[int], byte: bytes = b"\x00") -> int:
    """Free a block, damage the listed pages of it, allocate the same block again."""
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, order)
    m.free_pages(p, order)
    for i in pages:
        m.contents.write_phys(p + i, 7 * i, byte)
    assert m.alloc_pages(GFP_KERNEL, order) == p
    return p


def test_fifteen_corruptions_print_ten_and_count_all() -> None:
    pe = boot_dpa()
    p = plant_block(pe, 4, list(range(15)))
    found = pe.findings()
    assert len(found) == 15
    assert sorted(f.pfn for f in found) == [p + i for i in range(15)]
    assert all(f.kind == "memory-corruption" for f in found)
    assert len(headlines(pe)) == 10
    assert [f.detail["printed"] for f in client(pe).findings] == [True] * 10 + [False] * 5
    s = client(pe).pageext_summary()
    assert (s["reports_printed"], s["reports_suppressed"]) == (10, 5)
    assert s["findings"] == {"memory-corruption": 15}
    assert pe.machine.log.suppressed() == {"check_poison_mem": 5}
    text = pe.report("debug_pagealloc")
    assert "corruption reports: 10 printed, 5 suppressed by rate limiting" in text
    assert text.count("(not printed: rate limited)") == 5


def test_a_new_window_opens_after_five_seconds_and_says_what_was_dropped() -> None:
    pe = boot_dpa()
    plant_block(pe, 4, list(range(12)))
    assert len(headlines(pe)) == 10
    pe.machine.advance(4 * SECOND)
    plant_block(pe, 0, [0])  # still inside the first window
    assert len(headlines(pe)) == 10
    pe.machine.advance(1 * SECOND)
    plant_block(pe, 0, [0])
    assert log_lines(pe, "check_poison_mem: 3 callbacks suppressed")
    assert len(headlines(pe)) == 11
    assert len(pe.findings()) == 14
    assert client(pe).reports_suppressed == 3


def test_page_faults_are_not_rate_limited() -> None:
    """An oops is printed every time; each one is its own finding."""
    import pytest

    from pageext_core.mm import PageFault

    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    for i in range(15):
        with pytest.raises(PageFault):
            m.read(p, i, 1)
    assert len(headlines(pe)) == 15
    assert len(pe.findings()) == 15
