"""Trace writer: lines exactly as the tools print them, and write -> read round trips in all three formats."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from pageext_core.trace import (
    ALLOC,
    EXTFRAG,
    FREE,
    FREE_BATCHED,
    PCPU_DRAIN,
    StackTable,
    TraceWriter,
    make_event,
    read_trace,
    write_trace,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "trace"


def written(fmt: str, events, stacks=None, **kw) -> str:
    buf = io.StringIO()
    TraceWriter(buf, fmt, stacks, **kw).write_all(events)
    return buf.getvalue()


def test_ftrace_line_matches_the_kernel_sample_column_for_column():
    ev = make_event(ALLOC, 412_103_551_000, 1, 118, -1, "kworker/u4:2", 0x10A40, 0, 0, 0xDC0)
    line = written("ftrace", [ev]).splitlines()[0]
    sample = (FIXTURES / "ftrace_stacktrace.txt").read_text().splitlines()[12]
    hide = re.compile(r"page=[0-9a-f]+")  # the hashed pointer is not carried
    assert hide.sub("page=P", line) == hide.sub("page=P", sample)


def test_ftrace_stack_block_matches_the_sample():
    stacks = StackTable()
    sid = stacks.intern(("free_unref_page", "rcu_do_batch", "rcu_core", "handle_softirqs", "irq_exit_rcu",
                         "sysvec_apic_timer_interrupt"))
    ev = make_event(FREE, 412_105_124_000, 1, 0, -1, "<idle>", 0x10A40, 0, stack=sid)
    lines = written("ftrace", [ev], stacks).splitlines()
    sample = (FIXTURES / "ftrace_stacktrace.txt").read_text().splitlines()
    at = sample.index("          <idle>-0       [001] ..s1.   412.105124: <stack trace>")
    assert lines[1].replace(".....", "..s1.") == sample[at]
    assert lines[2:] == sample[at + 1:at + 7]


def test_ftrace_record_tgid_column():
    ev = make_event(FREE, 5_000_001_000, 0, 1234, 1200, "bash", 0x100, 0)
    idle = make_event(FREE, 5_000_002_000, 1, 0, -1, "<idle>", 0x101, 0)
    out = written("ftrace", [ev, idle], record_tgid=True).splitlines()
    assert out[0].startswith("            bash-1234    (   1200) [000] ..... ")
    assert out[1].startswith("          <idle>-0       (-------) [001] ..... ")


def test_trace_cmd_line_matches_the_reference_example():
    ev = make_event(ALLOC, 2319_000_857_000, 4, 1681, -1, "make", 0x13479F, 0, 1, 0x100DCA)
    out = written("trace-cmd", [ev], cpus=8).splitlines()
    assert out[:2] == ["version = 7", "cpus=8"]
    expected = ("            make-1681  [004] d..1.  2319.000857: mm_page_alloc:        page=0xffffea000013479f "
                "pfn=0x13479f order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO")
    assert out[2] == expected.replace("d..1.", ".....")


def test_trace_cmd_stack_block():
    stacks = StackTable()
    sid = stacks.intern(("__alloc_pages_noprof", "ffffffffc0a01234"))
    ev = make_event(ALLOC, 1_000_000, 0, 1, -1, "a", 0x10, 0, 0, 0xCC0, sid)
    out = written("trace-cmd", [ev], stacks).splitlines()
    assert out[3].endswith(" 0.001000: kernel_stack:         <stack trace >")
    assert re.fullmatch(r"=> __alloc_pages_noprof \(ffffffff8[0-9a-f]{7}\)", out[4])
    assert out[5] == "=> ffffffffc0a01234"


def test_perf_script_record_shape():
    stacks = StackTable()
    sid = stacks.intern(("__alloc_pages_noprof", "do_anonymous_page"))
    ev = make_event(ALLOC, 1893_240_127_000, 1, 4411, -1, "stress-ng-vm", 0x2F3A1, 0, 1, 0x100CCA, sid)
    free = make_event(FREE, 1893_251_007_000, 0, 0, -1, "swapper", 0x2F3A1, 0)
    out = written("perf", [ev, free], stacks).split("\n")
    assert out[0] == ("stress-ng-vm    4411 [001]  1893.240127: kmem:mm_page_alloc: page=0xffffea000002f3a1 "
                      "pfn=0x2f3a1 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE")
    assert re.fullmatch(r"\tffffffff8[0-9a-f]{7} __alloc_pages_noprof\+0x0 \(\[kernel\.kallsyms\]\)", out[1])
    assert out[3] == ""
    assert out[4] == "swapper       0 [000]  1893.251007:  kmem:mm_page_free: page=0xffffea000002f3a1 pfn=0x2f3a1 order=0"
    assert out[5] == ""


def _sample_events(stacks: StackTable):
    s1 = stacks.intern(("__alloc_pages_noprof", "alloc_pages_mpol_noprof", "pte_alloc_one", "ffffffffc0a01234"))
    s2 = stacks.intern(("free_unref_page", "rcu_do_batch"))
    return [
        make_event(ALLOC, 412_103_551_123, 1, 118, 118, "kworker/u4:2", 0x10A40, 0, 0, 0xDC0, s1),
        make_event(ALLOC, 412_104_002_000, 0, 3301, 3300, "Web Content", 0x2B800, 2, 1, 0x140CCA, s1),
        make_event(ALLOC, 412_106_733_000, 0, 3301, 3300, "Web Content", -1, 9, 1, 0x1C0CCA, -1),  # failure
        make_event(FREE, 412_105_120_999, 1, 0, -1, "<idle>", 0x10A40, 0, stack=s2),
        make_event(FREE, 412_107_911_000, 0, 301, 301, "jbd2/sda1-8", 0x3C100, 3),
        make_event(FREE_BATCHED, 412_108_520_000, 0, 3301, 3300, "Web Content", 0x2B800, 0),
        make_event(PCPU_DRAIN, 412_108_600_000, 1, 7, 7, "kworker/1:1-mm", 0x2B800, 2, 1),
        make_event(EXTFRAG, 412_108_700_000, 1, 7, 7, "kworker/1:1-mm", 0x40000, 0, 0,
                   extra=(0, 9, 9, 0, 1, 0, 1)),
        make_event(ALLOC, 412_108_800_000, 1, 7, 7, "x", 0x50000, 0, 0, 0),  # gfp 0 prints "none"
    ]


def _expected(ev, fmt: str, **kw):
    ts = ev.ts_ns // 1000 * 1000  # microseconds only
    tgid = -1
    if fmt == "ftrace" and kw.get("record_tgid") and ev.tgid > 0:
        tgid = ev.tgid
    if fmt == "perf" and kw.get("pid_tid"):
        tgid = ev.tgid
    extra = ev.extra
    mt = ev.migratetype if ev.kind in (ALLOC, PCPU_DRAIN, EXTFRAG) else -1
    gfp = ev.gfp if ev.kind == ALLOC else -1
    order = 0 if ev.kind == FREE_BATCHED else ev.order
    return ev._replace(ts_ns=ts, tgid=tgid, migratetype=mt, gfp=gfp, order=order, extra=extra)


@pytest.mark.parametrize("fmt,kw", [
    ("ftrace", {}), ("ftrace", {"record_tgid": True}), ("trace-cmd", {"cpus": 2}),
    ("perf", {}), ("perf", {"pid_tid": True}),
])
def test_round_trip(tmp_path, fmt, kw):
    stacks = StackTable()
    events = _sample_events(stacks)
    path = tmp_path / "t.txt"
    assert write_trace(path, events, fmt, stacks, **kw) == len(events)
    r = read_trace(path)
    got = list(r)
    assert r.format == fmt
    assert r.stats.malformed == 0, r.stats.malformed_examples
    want = [_expected(e, fmt, **kw) for e in events]
    # stacks come back as the same frames (ids are the reader's own)
    assert [r.stacks.frames(g.stack) for g in got] == [stacks.frames(e.stack) for e in events]
    assert [g._replace(stack=0) for g in got] == [w._replace(stack=0) for w in want]


@pytest.mark.parametrize("name", ["t.txt.gz", "t.txt.xz", "t.txt.bz2"])
def test_compressed_write_reads_back(tmp_path, name):
    stacks = StackTable()
    events = _sample_events(stacks)
    write_trace(tmp_path / name, events, "ftrace", stacks)
    assert len(list(read_trace(tmp_path / name))) == len(events)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_fixture_round_trips_through_every_format(tmp_path):
    r = read_trace(FIXTURES / "ftrace_stacktrace.txt")
    events = list(r)
    for fmt in ("ftrace", "trace-cmd", "perf"):
        write_trace(tmp_path / fmt, events, fmt, r.stacks)
        back = read_trace(tmp_path / fmt)
        got = list(back)
        assert [(g.kind, g.pfn, g.order, g.comm, g.pid, g.ts_ns) for g in got] == \
               [(e.kind, e.pfn, e.order, e.comm, e.pid, e.ts_ns) for e in events]
        assert [back.stacks.frames(g.stack) for g in got] == [r.stacks.frames(e.stack) for e in events]
