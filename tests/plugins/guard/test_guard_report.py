"""The ``guard`` report, the summary figures and the findings."""
from __future__ import annotations

import pytest
from guardsupport import GFP_DMA, boot

from pageext_core.mm import PageFault

N3 = "debug_pagealloc=on debug_guardpage_minorder=3"


def two_allocations_and_a_hit(pe):
    m = pe.machine
    # 0 and 8: guards 1/0 2/1 4/2 9/0 10/1 12/2; the second per-CPU refill takes two pages
    # (nr_pcp_alloc doubles it), so 16 is split off too, with guards 17/0 18/1 20/2
    a, b = m.alloc_pages(GFP_DMA, 0), m.alloc_pages(GFP_DMA, 0)
    m.advance(1_500_000)
    with pytest.raises(PageFault):
        m.write(a + 1, 0, b"x")
    return a, b


def test_report_text() -> None:
    # Isolated stack: record = the 8-byte flags word alone (guard keeps no field: the order is
    # page private); one 32768-page section -> 256 KiB of tables = 64 allocated pages (from
    # DMA32, before guards were switched on), plus our two pages.
    pe = boot(N3, "isolated")
    two_allocations_and_a_hit(pe)
    assert pe.record_size == 8 and pe.machine.nr_allocated_pages == 66
    assert pe.report("guard") == (
        "debug_guardpage_minorder: 3\n"
        "Guard blocks at order       0      1      2 \n"
        "Node 0, zone      DMA      3      3      3 \n"
        "Node 0, zone    DMA32      0      0      0 \n"
        "Guard blocks:          9\n"
        "Guard pages:          21 (84 kB)\n"
        "Of allocated:     31.82% (66 pages allocated)\n"
        "Of managed:        0.13% (16384 pages managed)\n"
        "Guards made:           9\n"
        "Guards cleared:        0\n"
        "Guard hits:            1\n"
        "[    0.001500] guard page hit: write at pfn 0x1 offset 0x0, order-0 guard block at pfn 0x1, "
        "next to the allocated order-0 block at pfn 0x0\n"
    )
    assert "guard" in pe.report_names() and pe.report_owner("guard") == "guard"


def test_summary_and_findings() -> None:
    pe = boot(N3, "isolated")
    a, b = two_allocations_and_a_hit(pe)
    s = pe.client_summaries()["guard"]
    assert s == {
        "minorder": 3, "active": True, "guard_blocks": 9, "guard_pages": 21, "guard_bytes": 21 * 4096,
        "guard_blocks_by_order": [3, 3, 3],
        "guard_blocks_by_zone": {"Node 0 DMA": [3, 3, 3], "Node 0 DMA32": [0, 0, 0]},
        "fraction_of_allocated": 21 / 66, "guards_created": 9, "guards_released": 0, "hits": 1,
    }
    [f] = pe.findings()
    assert (f.kind, f.client, f.pfn, f.offset, f.time_ns) == ("guard-hit", "guard", 1, 0, pe.machine.clock_ns)
    assert f.as_dict()["pfn_hex"] == "0x1"
    m = pe.machine
    m.free_pages(b, 0)
    m.free_pages(a, 0)
    m.drain_all_pages()
    s = pe.client_summaries()["guard"]
    assert (s["guard_blocks"], s["guard_pages"], s["guards_released"]) == (0, 0, 9)
    assert "Guard pages:           0 (0 kB)\n" in pe.report("guard")


def test_meminfo_counts_guard_pages_as_not_free() -> None:
    pe = boot(N3, "isolated")
    m = pe.machine
    free = m.nr_free_pages
    m.alloc_pages(GFP_DMA, 0)
    assert m.nr_free_pages == free - 8 and m.nr_held_pages == 7
    assert "GuardPages:           28 kB\n" in pe.report("pageext_meminfo")  # 6.12's meminfo has no such line
    assert f"MemFree:        {m.nr_free_pages * 4:8d} kB\n" in pe.report("meminfo")  # and they are not free


def test_conformance() -> None:
    pytest.importorskip("pageext_core.session.workload", reason="the core's session workload is not there yet")
    from guardsupport import StubDebugPagealloc

    from pageext_core.conformance import check_conformance
    from pageext_guard.plugin import Guard


    report = check_conformance(Guard, "debug_pagealloc=on debug_guardpage_minorder=3", boot_off="debug_pagealloc=on",
                               others=[StubDebugPagealloc()], raise_on_failure=False)
    assert report.ok, str(report)
    assert "boot parameter debug_guardpage_minorder=not-a-number rejected" in [c.name for c in report.checks]
