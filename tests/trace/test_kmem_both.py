"""One pass, two views: ``KmemStat(both=True)`` prints what separate normal and --live accounts print."""
from __future__ import annotations

from pathlib import Path

from pageext_core.trace import KmemStat, kmem_report, read_trace
from pageext_core.trace.kmem import callsite_of

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "trace"


def test_both_views_equal_the_separate_reports():
    for name in ("ftrace_stacktrace.txt", "perf_script_callchain.txt"):
        r = read_trace(FIX / name)
        events = list(r)
        assert any(e.kind == 1 for e in events)
        k = KmemStat(r.stacks, both=True).feed(events)
        assert k.report(caller=True) == kmem_report(events, r.stacks, caller=True)
        assert k.live_report(caller=True) == kmem_report(events, r.stacks, live=True, caller=True)
        assert k.live_report() == kmem_report(events, r.stacks, live=True)


def test_callsite_skips_the_allocators_own_frames_and_offsets():
    frames = ("post_alloc_hook+0x1a2/0x1c0", "get_page_from_freelist+0x3b8/0x1530", "__alloc_pages_noprof+0x17c/0x360",
              "alloc_pages_mpol_noprof+0x8f/0x1c0", "my_driver_alloc+0x2e/0x90 [my_drv]", "kthread+0xe4/0x110")
    assert callsite_of(frames) == "my_driver_alloc"
    assert callsite_of(("__alloc_pages_noprof", "__get_free_pages", "pgd_alloc")) == "pgd_alloc"
    assert callsite_of(("post_alloc_hook+0x1/0x2",)) == "post_alloc_hook"
    assert callsite_of(()) == "0"
