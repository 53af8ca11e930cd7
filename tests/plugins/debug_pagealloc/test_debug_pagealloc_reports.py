"""The debug_pagealloc report, the summary and the findings as other tools read them."""
from __future__ import annotations

import json

import pytest
from debug_pagealloc_support import boot_dpa, free_then_alloc

from pageext_core.mm import PageFault
from pageext_core.mm.gfp import GFP_KERNEL


def busy_session():
    pe = boot_dpa()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    with pytest.raises(PageFault):
        m.write(p, 0, b"x")
    free_then_alloc(pe, {5: b"\xab"})
    free_then_alloc(pe, {5: b"\x00\x00"})
    return pe


def test_report_header_and_findings_in_order() -> None:
    pe = busy_session()
    text = pe.report("debug_pagealloc")
    lines = text.split("\n")
    assert lines[0] == "mode: debug_pagealloc=on page_poison=on: poison and unmap freed pages"
    assert lines[1] == "findings: 3 (memory-corruption 1, single-bit-error 1, use-after-free 1)"
    assert lines[2] == "corruption reports: 2 printed, 0 suppressed by rate limiting"
    assert lines[3].startswith("pages poisoned: ")
    assert lines[4] == f"pages unmapped now: {pe.machine.contents.nr_unmapped}"
    heads = [ln.removeprefix("pageext: ") for ln in lines if ln.startswith(("pagealloc: ", "pageext: pagealloc: "))]
    assert [h.split(":")[1].strip().split(" ")[0] for h in heads] == ["use-after-free", "single", "memory"]
    assert text.endswith("page dumped because: pagealloc: corrupted page details\n")


def test_report_in_page_poison_mode_names_the_mode() -> None:
    pe = boot_dpa("page_poison=on")
    assert pe.report("debug_pagealloc").startswith("mode: page_poison=on: poison freed pages, no unmapping\n")


def test_summary_is_plain_json_with_counts() -> None:
    pe = busy_session()
    s = pe.client_summaries()["debug_pagealloc"]
    json.dumps(s)
    assert s["mode"] == "debug_pagealloc+page_poison" and s["unmap"] is True and s["poison"] is True
    assert s["findings"] == {"memory-corruption": 1, "single-bit-error": 1, "use-after-free": 1}
    assert s["reports_printed"] == 2 and s["reports_suppressed"] == 0
    assert s["pages_compared"] == 2
    assert s["unmapped_pages"] == pe.machine.contents.nr_unmapped
    assert s["poisoned_at_init"] == s["unmapped_at_init"] > 0
    assert s["pages_poisoned"] >= s["poisoned_at_init"] + 3


def test_findings_are_attributed_and_serialisable() -> None:
    pe = busy_session()
    found = pe.findings()
    assert [f.kind for f in found] == ["use-after-free", "single-bit-error", "memory-corruption"]
    assert all(f.client == "debug_pagealloc" for f in found)
    json.dumps([f.as_dict() for f in found])
