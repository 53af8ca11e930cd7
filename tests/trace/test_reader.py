"""Trace readers: every parsing rule on a small hand-written trace, the fixture samples, detection, compression."""
from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest

from pageext_core.trace import (
    ALLOC,
    EXTFRAG,
    FREE,
    FREE_BATCHED,
    PCPU_DRAIN,
    TraceError,
    detect_format,
    read_trace,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "trace"
GFP_KERNEL, ZERO, HUM, COMP = 0xCC0, 0x100, 0x100CCA, 0x40000


def read(text: str, fmt: str = "auto", strict: bool = False):
    r = read_trace(text.splitlines(keepends=True), format=fmt, strict=strict)
    return list(r), r


# -- the fixture samples ----------------------------------------------------

def test_ftrace_fixture_parses_with_stacks_failure_and_ignored_event():
    r = read_trace(FIXTURES / "ftrace_stacktrace.txt")
    evs = list(r)
    assert r.format == "ftrace"
    assert [e.kind for e in evs] == [ALLOC, ALLOC, FREE, ALLOC, FREE, FREE_BATCHED]
    first = evs[0]
    assert (first.comm, first.pid, first.cpu, first.pfn, first.order, first.migratetype, first.gfp) == (
        "kworker/u4:2", 118, 1, 0x10A40, 0, 0, GFP_KERNEL | ZERO)
    assert first.ts_ns == 412_103_551_000
    assert r.stacks.frames(first.stack)[:3] == ("__alloc_pages_noprof", "alloc_pages_mpol_noprof", "get_zeroed_page_noprof")
    assert r.stacks.frames(first.stack)[-1] == "ret_from_fork"
    assert evs[1].comm == "Web Content" and evs[1].gfp == HUM | COMP  # comm with a space
    assert evs[4].comm == "jbd2/sda1-8" and evs[4].pid == 301  # comm with a dash: split at the last one
    assert evs[3].pfn == -1 and r.stats.failures == 1  # pfn=0x0, NULL page: a failed allocation
    assert evs[5].stack == -1  # no <stack trace> after it
    assert r.stats.ignored == {"sched_switch": 1}
    assert r.stats.events_by_name()["mm_page_alloc"] == 3
    assert r.stats.malformed == 0


def test_perf_fixture_parses_with_callchains():
    r = read_trace(FIXTURES / "perf_script_callchain.txt")
    evs = list(r)
    assert r.format == "perf"
    assert [e.kind for e in evs] == [ALLOC, ALLOC, FREE]
    assert (evs[0].comm, evs[0].pid, evs[0].cpu, evs[0].pfn) == ("stress-ng-vm", 4411, 1, 0x2F3A1)
    assert evs[0].ts_ns == 1_893_240_127_000
    frames = r.stacks.frames(evs[0].stack)
    assert frames[0] == "__alloc_pages_noprof" and frames[-1] == "55d0c3a1f2b4"  # [unknown] -> its address
    assert r.stacks.frames(evs[1].stack)[-1] == "__kmalloc_cache_noprof"
    assert evs[2].comm == "swapper" and evs[2].pid == 0
    assert r.stacks.frames(evs[2].stack) == ("free_unref_page", "rcu_do_batch", "rcu_core")
    assert r.stats.malformed == 0


# -- ftrace line shapes -----------------------------------------------------

def test_ftrace_without_flags_column_and_decimal_pfn():
    evs, r = read("""\
           <...>-42    [003]   100.000001: mm_page_alloc: page=ffffea0000123400 pfn=4660 order=1 migratetype=2 gfp_flags=GFP_KERNEL
""")
    assert (evs[0].pid, evs[0].cpu, evs[0].pfn, evs[0].order, evs[0].migratetype) == (42, 3, 4660, 1, 2)
    assert evs[0].comm == "<...>"
    assert evs[0].ts_ns == 100_000_001_000


def test_ftrace_record_tgid_column():
    evs, _ = read("""\
            bash-1234    (   1200) [000] .....   5.000001: mm_page_free: page=00000000deadbeef pfn=0x100 order=0
          <idle>-0       (-------) [001] ..s1.   5.000002: mm_page_free: page=00000000deadbeef pfn=0x101 order=0
""")
    assert (evs[0].pid, evs[0].tgid) == (1234, 1200)
    assert (evs[1].pid, evs[1].tgid) == (0, -1)


def test_ftrace_sym_offset_frames_are_reduced_to_symbols():
    evs, r = read("""\
               a-1       [000] .....     1.000000: mm_page_alloc: page=0000000012345678 pfn=0x10 order=0 migratetype=0 gfp_flags=GFP_KERNEL
               a-1       [000] .....     1.000001: <stack trace>
 => __alloc_pages_noprof+0x271/0x3a0 <ffffffff9a2c4e10>
 => pte_alloc_one+0x1e/0x60 <ffffffff9a0b1e2e>
 => 0xffffffffc0a01234
""")
    assert r.stacks.frames(evs[0].stack) == ("__alloc_pages_noprof", "pte_alloc_one", "ffffffffc0a01234")


def test_gfp_forms_names_raw_hex_empty_none():
    evs, _ = read("""\
               a-1       [000] .....     1.000000: mm_page_alloc: page=0000000012345678 pfn=0x10 order=0 migratetype=0 gfp_flags=GFP_KERNEL|__GFP_ZERO
               a-1       [000] .....     1.000001: mm_page_alloc: page=0000000012345678 pfn=0x11 order=0 migratetype=1 gfp_flags=0x152c4a
               a-1       [000] .....     1.000002: mm_page_alloc: page=0000000012345678 pfn=0x12 order=0 migratetype=0 gfp_flags=
               a-1       [000] .....     1.000003: mm_page_alloc: page=0000000012345678 pfn=0x13 order=0 migratetype=0 gfp_flags=0x0
               a-1       [000] .....     1.000004: mm_page_alloc: page=0000000012345678 pfn=0x14 order=0 migratetype=0 gfp_flags=none
""")
    assert [e.gfp for e in evs] == [GFP_KERNEL | ZERO, 0x152C4A, 0, 0, 0]


def test_failures_pfn_zero_minus_one_and_absent():
    evs, r = read("""\
               a-1       [000] .....     1.000000: mm_page_alloc: page=0000000000000000 pfn=0x0 order=3 migratetype=0 gfp_flags=GFP_KERNEL
               a-1       [000] .....     1.000001: mm_page_alloc: page=(nil) pfn=0xffffffffffffffff order=0 migratetype=0 gfp_flags=GFP_KERNEL
               a-1       [000] .....     1.000002: mm_page_alloc: page=(nil) order=0 migratetype=0 gfp_flags=GFP_KERNEL
""")
    assert [e.pfn for e in evs] == [-1, -1, -1]
    assert r.stats.failures == 3


def test_extfrag_and_pcpu_drain_carry_their_fields():
    evs, _ = read("""\
               a-1       [000] .....     1.000000: mm_page_alloc_extfrag: page=0000000012345678 pfn=0x2000 alloc_order=0 fallback_order=9 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 fragmenting=0 change_ownership=1
               a-1       [000] .....     1.000001: mm_page_pcpu_drain: page=0000000012345678 pfn=0x2001 order=0 migratetype=1
""")
    assert evs[0].kind == EXTFRAG and evs[0].pfn == 0x2000
    assert evs[0].extra == (0, 9, 9, 0, 1, 0, 1)
    assert evs[1].kind == PCPU_DRAIN and (evs[1].pfn, evs[1].order, evs[1].migratetype) == (0x2001, 0, 1)


def test_stack_of_an_ignored_event_is_not_attached_to_ours():
    evs, r = read("""\
               a-1       [000] .....     1.000000: mm_page_free: page=0000000012345678 pfn=0x10 order=0
               a-1       [000] .....     1.000001: sched_switch: prev_comm=a prev_pid=1 ==> next_comm=b next_pid=2
               a-1       [000] .....     1.000002: <stack trace>
 => __schedule
""")
    assert evs[0].stack == -1
    assert r.stats.unattached_stacks == 1 and r.stats.ignored == {"sched_switch": 1}


def test_user_stack_blocks_are_read_past():
    evs, r = read("""\
               a-1       [000] .....     1.000000: mm_page_alloc: page=0000000012345678 pfn=0x10 order=0 migratetype=0 gfp_flags=GFP_KERNEL
               a-1       [000] .....     1.000001: <stack trace>
 => __alloc_pages_noprof
               a-1       [000] .....     1.000002: <user stack trace>
 => <00007f1234567890>
 => <00005612345678ab>
               a-1       [000] .....     1.000003: mm_page_free: page=0000000012345678 pfn=0x10 order=0
""")
    assert r.stacks.frames(evs[0].stack) == ("__alloc_pages_noprof",)
    assert evs[1].stack == -1 and r.stats.malformed == 0


def test_stack_on_another_cpu_is_not_attached():
    evs, r = read("""\
               a-1       [000] .....     1.000000: mm_page_free: page=0000000012345678 pfn=0x10 order=0
               b-2       [001] .....     1.000001: <stack trace>
 => something
""")
    assert evs[0].stack == -1 and r.stats.unattached_stacks == 1


def test_lost_events_lines_are_counted():
    _, r = read("""\
CPU:1 [LOST 85 EVENTS]
               a-1       [000] .....     1.000000: mm_page_free: page=0000000012345678 pfn=0x10 order=0
""", fmt="ftrace")
    assert r.stats.lost_events == 85 and r.stats.malformed == 0


# -- trace-cmd --------------------------------------------------------------

TRACE_CMD = """\
version = 6
CPU 1 is empty
cpus=2
            make-1681  [004] d..1.  2319.000857: mm_page_alloc:        page=0xffffea000013479f pfn=0x13479f order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO
            make-1681  [004] d..1.  2319.000858: kernel_stack:         <stack trace >
=> __alloc_pages_noprof (ffffffff9a2c4e10)
=> vma_alloc_folio_noprof+0x64 (ffffffff9a5e0a14)
=> ffffffffc0a01234
            make-1681  [004] .....  2319.000900: mm_page_free:         page=0xffffea000013479f pfn=0x13479f order=0
"""


def test_trace_cmd_report_with_kernel_stack():
    evs, r = read(TRACE_CMD)
    assert r.format == "trace-cmd"
    assert [e.kind for e in evs] == [ALLOC, FREE]
    assert (evs[0].comm, evs[0].pid, evs[0].cpu, evs[0].pfn, evs[0].gfp) == ("make", 1681, 4, 0x13479F, HUM | ZERO)
    assert r.stacks.frames(evs[0].stack) == ("__alloc_pages_noprof", "vma_alloc_folio_noprof", "ffffffffc0a01234")
    assert evs[1].stack == -1
    assert r.stats.malformed == 0


def test_old_trace_cmd_stack_marker_and_no_latency_column():
    evs, r = read("""\
version = 6
cpus=1
            make-1681  [000]  2319.000857: mm_page_alloc:        page=0xffffea000013479f pfn=0x13479f order=0 migratetype=1 gfp_flags=GFP_KERNEL
            make-1681  [000]  2319.000858: kernel_stack:         <stack trace>
=> foo (ffffffff9a2c4e10)
""")
    assert r.stacks.frames(evs[0].stack) == ("foo",)


# -- perf script -------------------------------------------------------------

def test_perf_pid_tid_form_period_and_no_kmem_prefix():
    evs, r = read("""\
Web Content    3300/3301    [002]  10.000001:          1 kmem:mm_page_alloc: page=0xffffea0000001000 pfn=0x1000 order=0 migratetype=0 gfp_flags=GFP_KERNEL
\tffffffff9a5c2e71 __alloc_pages_noprof+0x271 ([kernel.kallsyms])
\tffffffff9a5c2e00 do_thing+0x1 ([kernel.kallsyms])

            perf    77 [000]  10.000002: mm_page_free: page=0xffffea0000001000 pfn=0x1000 order=0

""", fmt="perf")
    assert (evs[0].comm, evs[0].tgid, evs[0].pid, evs[0].cpu) == ("Web Content", 3300, 3301, 2)
    assert r.stacks.frames(evs[0].stack) == ("__alloc_pages_noprof", "do_thing")
    assert (evs[1].comm, evs[1].pid, evs[1].kind, evs[1].stack) == ("perf", 77, FREE, -1)


def test_perf_without_cpu_column():
    evs, r = read("""\
            perf    77  10.000002: kmem:mm_page_free: page=0x0 pfn=0x1000 order=0
""", fmt="perf")
    assert (evs[0].pid, evs[0].cpu, evs[0].pfn) == (77, -1, 0x1000) and r.stats.malformed == 0


def test_perf_nanosecond_timestamps():
    evs, _ = read("""\
            perf    77 [000]  10.000000002: kmem:mm_page_free: page=0x0 pfn=0x1000 order=0
""", fmt="perf")
    assert evs[0].ts_ns == 10_000_000_002


# -- malformed lines and strict mode ---------------------------------------

BAD = """\
               a-1       [000] .....     1.000000: mm_page_free: page=0000000012345678 pfn=0x10 order=0
this is not a trace line
               a-1       [000] .....     1.000001: mm_page_alloc: page=0000000012345678 pfn=0x10 order=x
               a-1       [000] .....     1.000002: mm_page_alloc: page=0000000012345678 pfn=0x11 order=0 migratetype=0 gfp_flags=GFP_BOGUS
               a-1       [000] .....     1.000003: mm_page_free: page=0000000012345678 pfn=0x12 order=0
"""


def test_malformed_lines_are_counted_with_line_numbers_and_skipped():
    evs, r = read(BAD, fmt="ftrace")
    assert [e.pfn for e in evs] == [0x10, 0x12]
    assert r.stats.malformed == 3
    assert [ln for ln, _, _ in r.stats.malformed_examples] == [2, 3, 4]
    assert "GFP_BOGUS" in r.stats.malformed_examples[2][1]
    assert r.stats.malformed_examples[0][2] == "this is not a trace line"


def test_only_the_first_ten_malformed_lines_are_kept():
    text = "garbage\n" * 25
    _, r = read(text, fmt="ftrace")
    assert r.stats.malformed == 25
    assert [ln for ln, _, _ in r.stats.malformed_examples] == list(range(1, 11))


def test_strict_mode_raises_on_first_malformed_line_with_file_and_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text(BAD)
    with pytest.raises(TraceError, match=r"bad\.txt:2: not a trace event line"):
        list(read_trace(p, format="ftrace", strict=True))


def test_frame_outside_a_stack_block_is_malformed():
    _, r = read(" => orphan_frame\n", fmt="ftrace")
    assert r.stats.malformed == 1


# -- detection and compression ------------------------------------------------

def test_detect_format_each_kind():
    assert detect_format(FIXTURES / "ftrace_stacktrace.txt") == "ftrace"
    assert detect_format(FIXTURES / "perf_script_callchain.txt") == "perf"
    assert detect_format(TRACE_CMD.splitlines()) == "trace-cmd"
    # trace-cmd without its header: the padded event name gives it away
    assert detect_format(TRACE_CMD.splitlines()[3:]) == "trace-cmd"
    # ftrace without the header comments
    assert detect_format(["  a-1 [000] ..... 1.000000: mm_page_free: page=0 pfn=0x10 order=0"]) == "ftrace"


def test_detect_format_unknown_names_file_and_line(tmp_path):
    p = tmp_path / "what.txt"
    p.write_text("# comment\n\nhello world\n")
    with pytest.raises(TraceError, match=r"what\.txt:3: cannot tell the trace format"):
        detect_format(p)


def test_unknown_format_name_is_refused():
    with pytest.raises(TraceError, match="unknown trace format"):
        read_trace([], format="systemtap")


@pytest.mark.parametrize("suffix,opener", [(".gz", gzip.open), (".xz", lzma.open), (".bz2", bz2.open)])
def test_compressed_input_by_magic_bytes(tmp_path, suffix, opener):
    data = (FIXTURES / "ftrace_stacktrace.txt").read_bytes()
    p = tmp_path / f"trace{suffix}.data"  # the name does not say; the magic bytes do
    with opener(p, "wb") as f:
        f.write(data)
    plain = list(read_trace(FIXTURES / "ftrace_stacktrace.txt"))
    got = read_trace(p)
    assert list(got) == plain and got.format == "ftrace"


def test_memory_is_bounded_by_distinct_stacks():
    block = """\
               a-1       [000] .....     1.000000: mm_page_alloc: page=0000000012345678 pfn=0x{pfn:x} order=0 migratetype=0 gfp_flags=GFP_KERNEL
               a-1       [000] .....     1.000001: <stack trace>
 => __alloc_pages_noprof
 => caller_{k}
"""
    text = "".join(block.format(pfn=i + 1, k=i % 3) for i in range(300))
    evs, r = read(text)
    assert len(evs) == 300 and len(r.stacks) == 3
    assert len({e.stack for e in evs}) == 3
