"""page_owner_sort on records without a ``PFN`` line, as the kernel tool reads them.

The kernel tool (tools/mm/page_owner_sort.c) splits its input at empty
lines, takes every line that starts with ``PFN`` out of the record text and
copies it into one buffer that is never cleared, and classifies a record as
CMA/SLAB by whatever that buffer holds when the record ends.  So a record
pasted without its PFN line (a bug-report excerpt) is still a record: it is
grouped by its text like any other, and it gets the CMA/SLAB class of the
last PFN line read before it, even one of an earlier record.

The fixture ``four_eras.txt`` has ten records from four eras, in this order
(the letters name the group each one joins):

  1. A  2014 RFC format (decimal PFN, ``[<addr>] sym`` frames, no pid/ts)
  2. C  current format (hex PFN, tgid, comm, ts): a python3 page fault
  3. B  5.x format (decimal PFN, ``ts N ns, free_ts 0 ns``): an skb slab page,
        its PFN line has ``slab`` in the flags
  4. D  excerpt, no PFN line: a vmalloc page of modprobe
  5. A  2014 again, another PFN
  6. C  excerpt of the python3 fault, no PFN line
  7. B  excerpt of the skb allocation, no PFN line
  8. C  the python3 fault again, with PFN line
  9. B  the skb allocation again, with PFN line (slab)
 10. D  the modprobe excerpt again, no PFN line

The expected outputs below are written out by hand from the C source's
rules and were checked against the C tool compiled from the kernel source
(the version before it started to stop with "Out of memory" on records
without a ``tgid N (comm)`` part; see docs/page_owner_sort.md).
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pageext_page_owner.page_owner_sort as pos
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pageext_page_owner.dumpparse import allocator_flags, allocator_name, parse_dump
from pageext_page_owner.page_owner_sort import Aggregator, main, parallel

FOUR_ERAS = Path(__file__).resolve().parents[2] / "fixtures" / "page_owner" / "four_eras.txt"

# ---- the four texts, as the kernel tool compares them: PFN line gone, timestamp digits cut

TEXT_A = (  # 2014: nothing to cut (no ts)
    "Page allocated via order 0, mask 0xd0\n"
    " [<ffffffff8116b3ec>] __alloc_pages_nodemask+0x17c/0x9f0\n"
    " [<ffffffff811b1a3a>] alloc_pages_current+0x9a/0x120\n"
    " [<ffffffff8116635e>] __get_free_pages+0xe/0x50\n"
    " [<ffffffff811bf7f7>] kmem_cache_alloc_trace+0x37/0x1f0\n"
)
TEXT_B = (  # 5.x: only the first match of ts\s*([0-9]*)\s*ns is cut; "free_ts 0 ns" stays
    "Page allocated via order 1, mask 0x52820(GFP_ATOMIC|__GFP_NOWARN|__GFP_COMP|__GFP_NOMEMALLOC), pid 0, ts  ns, free_ts 0 ns\n"
    " get_page_from_freelist+0x14dc/0x1560\n"
    " __alloc_pages+0x1b2/0x360\n"
    " allocate_slab+0x2e1/0x430\n"
    " ___slab_alloc+0x4f6/0x860\n"
    " __kmalloc_node_track_caller+0x1a2/0x2f0\n"
    " kmalloc_reserve+0x32/0x90\n"
    " __alloc_skb+0x8a/0x1d0\n"
    " __netdev_alloc_skb+0x44/0x170\n"
)
TEXT_C = (
    "Page allocated via order 0, mask 0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), pid 2291, tgid 2288 (python3), ts  ns\n"
    " post_alloc_hook+0x1a2/0x1c0\n"
    " get_page_from_freelist+0x3b8/0x1530\n"
    " __alloc_pages_noprof+0x17c/0x360\n"
    " alloc_pages_mpol_noprof+0x95/0x1c0\n"
    " vma_alloc_folio_noprof+0x64/0xd0\n"
    " do_anonymous_page+0x327/0x8a0\n"
    " __handle_mm_fault+0xb1b/0x1120\n"
)
TEXT_D = (
    "Page allocated via order 0, mask 0xcc2(GFP_KERNEL|__GFP_HIGHMEM), pid 4113, tgid 4113 (modprobe), ts  ns\n"
    " post_alloc_hook+0x1a2/0x1c0\n"
    " alloc_pages_bulk_noprof+0x4c3/0x7a0\n"
    " __vmalloc_node_range_noprof+0x1f0/0x9b0\n"
    " __vmalloc_node_noprof+0x4a/0x70\n"
    " load_module+0x7b4/0x1f10\n"
    " init_module_from_file+0x8a/0xe0\n"
    " __x64_sys_finit_module+0x1c4/0x310\n"
)


def stack(text: str) -> str:
    return text.partition("\n")[2]


def run(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def sort_to_text(capsys, tmp_path, *args) -> tuple[str, str, str]:
    out = tmp_path / "sorted.txt"
    rc, stdout, stderr = run(capsys, *args, FOUR_ERAS, out)
    assert rc == 0, stderr
    return out.read_text(), stdout, stderr


def test_ten_records_from_four_eras_make_four_groups(capsys, tmp_path):
    text, stdout, stderr = sort_to_text(capsys, tmp_path)
    # All ten records are read ("loaded 10"), none is skipped (nothing on stderr).
    assert stdout == "loaded 10\nsorting ....\nculling\n" and stderr == ""
    # Groups, by text (timestamp digits cut): A = records 1, 5; B = 3, 7, 9; C = 2, 6, 8; D = 4, 10.
    # The grouping pass orders them by text (strcmp): after "Page allocated via order ", order 0
    # comes before order 1 (B last); among order 0, mask "0x1..." < "0xc..." < "0xd...": C, D, A, B.
    # The stable sort by times (descending) then gives C (3), B (3), D (2), A (2).
    # The class shown is the group's first record's:
    #   C: record 2, its own PFN line has neither CMA nor slab: OTHERS;
    #   B: record 3, its PFN line's flags say slab: SLAB;
    #   D: record 4 has no PFN line; the last one read before it is record 3's (slab), so SLAB,
    #      and __vmalloc_node_range has alloc_pages on the line before it: VMALLOC too;
    #   A: 2014 flags are single letters, never "slab": OTHERS.
    # pages = sum of 2^order: B is order 1, so 3 records hold 6 pages.
    assert text == (
        "3 times, 3 pages, allocated by OTHERS :\n" + TEXT_C + "\n"
        "3 times, 6 pages, allocated by SLAB :\n" + TEXT_B + "\n"
        "2 times, 2 pages, allocated by SLAB VMALLOC :\n" + TEXT_D + "\n"
        "2 times, 2 pages, allocated by OTHERS :\n" + TEXT_A + "\n"
    )


def test_excerpts_borrow_the_last_pfn_line_when_culling_by_allocator(capsys, tmp_path):
    text, _, _ = sort_to_text(capsys, tmp_path, "--cull=stacktrace,allocator")
    # Per record, the class the kernel tool gives (own PFN line, or the last one read before it):
    #   B: record 3 SLAB, record 7 (excerpt; last PFN line read is record 5's, 2014) OTHERS, record 9 SLAB
    #   C: records 2, 8 OTHERS; record 6 (after record 5's PFN line) OTHERS
    #   D: record 4 (after record 3's PFN line) and record 10 (after record 9's) SLAB VMALLOC
    # So B splits in two.  Grouping pass: by stack text, then by class (SLAB 4 < OTHERS 16):
    # " [<" < " get_page_from_freelist" < " post_alloc_hook... alloc_pages_bulk" (D) < "... get_page" (C):
    # A, B/SLAB, B/OTHERS, D, C; then by times, descending, stable: C, A, B/SLAB, D, B/OTHERS.
    assert text == (
        "3 times, 3 pages, allocated by OTHERS :\n" + stack(TEXT_C) + "\n"
        "2 times, 2 pages, allocated by OTHERS :\n" + stack(TEXT_A) + "\n"
        "2 times, 4 pages, allocated by SLAB :\n" + stack(TEXT_B) + "\n"
        "2 times, 2 pages, allocated by SLAB VMALLOC :\n" + stack(TEXT_D) + "\n"
        "1 times, 2 pages, allocated by OTHERS :\n" + stack(TEXT_B) + "\n"
    )


def test_excerpts_keep_their_pid_tgid_and_name(capsys, tmp_path):
    text, _, _ = sort_to_text(capsys, tmp_path, "--cull=name,pid", "-m")
    # keys (pid, comm): (2291, python3) 3 pages; (0, "") 6 pages (5.x: no tgid/comm);
    # (4113, modprobe) 2 pages; (-1, "") 2 pages (2014: no pid).  -m: by pages, descending;
    # ties (2 pages) keep the grouping-pass order: pid -1 before pid 4113.
    assert text == (
        "3 times, 6 pages, PID 0, task_comm_name: \n"
        "3 times, 3 pages, PID 2291, task_comm_name: python3\n"
        "2 times, 2 pages, PID -1, task_comm_name: \n"
        "2 times, 2 pages, PID 4113, task_comm_name: modprobe\n"
    )


def test_json_carries_the_same_groups(capsys, tmp_path):
    out = tmp_path / "s.json"
    rc, _, _ = run(capsys, "--format=json", FOUR_ERAS, out)
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["records"] == 10 and doc["unparsed"] == 0 and doc["pages"] == 13
    assert [(g["times"], g["pages"], g["allocator"], g["text"]) for g in doc["groups"]] == [
        (3, 3, "OTHERS", TEXT_C),
        (3, 6, "SLAB", TEXT_B),
        (2, 2, "SLAB VMALLOC", TEXT_D),
        (2, 2, "OTHERS", TEXT_A),
    ]


def test_before_this_change_four_records_were_dropped(capsys, tmp_path):
    # the symptom, pinned: without the excerpts (records 4, 6, 7, 10) only three groups form
    kept = [b for b in FOUR_ERAS.read_bytes().split(b"\n\n") if b"\nPFN" in b]
    src = tmp_path / "with_pfn_only.txt"
    src.write_bytes(b"\n\n".join(kept) + b"\n\n")
    out = tmp_path / "o.txt"
    assert run(capsys, src, out)[0] == 0
    # all tie at 2 times, so the text order stays: C (order 0, 0x1...), A (order 0, 0xd0), B (order 1)
    assert re.findall(r"^\d+ times.*$", out.read_text(), re.M) == [
        "2 times, 2 pages, allocated by OTHERS :",  # C: records 2, 8
        "2 times, 2 pages, allocated by OTHERS :",  # A: records 1, 5
        "2 times, 4 pages, allocated by SLAB :",  # B: records 3, 9
    ]


def test_the_parser_yields_excerpts_as_records():
    errors: list = []
    records = list(parse_dump(FOUR_ERAS, errors.append))
    assert errors == []
    assert len(records) == 10
    no_pfn = [i + 1 for i, r in enumerate(records) if r.pfn is None]
    assert no_pfn == [4, 6, 7, 10]
    assert all(records[i - 1].pfn_line == "" for i in no_pfn)
    assert [r.pfn for r in records if r.pfn is not None] == [66314, 0x2B6E1, 1097214, 66907, 0x2B6E2, 1097216]
    # the library classifies a record by its own lines only (no PFN line: from the stack alone)
    assert records[3].allocator == "VMALLOC" and records[6].allocator == "OTHERS"
    assert (records[5].pid, records[5].tgid, records[5].comm, records[5].ts_ns) == (2291, 2288, "python3", 9094410263)


# ---- an independent model of the kernel tool's reading loop, against the aggregator


def kernel_model(data: bytes, alloc_bits: bool) -> list[tuple[str, int, str]]:
    """Groups (text, times, class of the first record) in order of first appearance.

    Reads line by line like the C tool: an empty line ends a record; a line
    starting with "PFN" goes into one buffer that is never cleared; a last
    record with no empty line after it is dropped.
    """
    last_pfn = b""
    block: list[bytes] = []
    groups: dict[bytes, list] = {}
    lines = data.split(b"\n")
    for ln in lines[:-1]:  # the piece after the last newline never ends a record
        if ln == b"":
            if block:
                text = b"".join(x + b"\n" for x in block)
                cut = re.sub(rb"ts\s*([0-9]*)\s*ns", lambda m: m.group(0).replace(m.group(1), b""), text, count=1)
                flags = allocator_flags(text, last_pfn)
                key = cut + (bytes([flags & 6]) if alloc_bits else b"")
                if key in groups:
                    groups[key][1] += 1
                else:
                    groups[key] = [cut.decode(), 1, allocator_name(flags)]
            block = []
        elif ln.startswith(b"PFN"):
            last_pfn = ln
        else:
            block.append(ln)
    return [tuple(g) for g in groups.values()]


_HEADS = [
    "Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 7, tgid 7 (w), ts {ts} ns",
    "Page allocated via order 1, mask 0x52820(GFP_ATOMIC), pid 0, ts {ts} ns, free_ts 0 ns",
    "Page allocated via order 0, mask 0xd0",
]
_PFNS = [
    None,  # an excerpt
    "PFN {pfn:#x} type Movable Block 1 type Movable Flags 0x0()",
    "PFN {pfn:#x} type CMA Block 1 type CMA Flags 0x0()",
    "PFN {pfn} type Unmovable Block 1 type Unmovable Flags 0x200(slab|node=0)",
]
_STACKS = [" a+0x1/0x2\n b+0x3/0x4\n", " alloc_pages_bulk+0x1/0x2\n __vmalloc_node_range+0x3/0x4\n"]

rec_st = st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 1), st.integers(0, 3))


def build(items) -> bytes:
    return "".join(
        _HEADS[h].format(ts=ts * 1000) + "\n"
        + (_PFNS[p].format(pfn=i << 4) + "\n" if _PFNS[p] else "")
        + _STACKS[s] + "\n"
        for i, (h, p, s, ts) in enumerate(items)
    ).encode()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rec_st, max_size=30), st.integers(1, 300), st.booleans())
def test_property_excerpts_are_classified_by_the_last_pfn_line_read(items, chunk_size, alloc_bits):
    data = build(items)
    want = kernel_model(data, alloc_bits)
    for drop_released in (False, True):  # the fast path and the exact one (-f reads every record exactly)
        agg = Aggregator(alloc_bits=alloc_bits, selection=pos.Selection(drop_released=drop_released))
        agg.feed(io.BytesIO(data), chunk_size=chunk_size)
        got = [(g.text.decode(), g.times, allocator_name(g.alloc)) for g in agg.groups()]
        assert got == want
        assert agg.unparsed == 0


@pytest.mark.parametrize("window", [1 << 20, 300])
def test_parallel_parts_start_with_the_pfn_line_before_their_cut(capsys, tmp_path, monkeypatch, window):
    # Many parts over a mixed file: an excerpt right after a cut must still see the PFN line
    # of the part before.  With a small window the parts cannot always see it; the reader
    # then falls back to one process.  Either way the answer is the one-process answer.
    items = [(i % 3, (i * 7) % 4, (i // 3) % 2, i) for i in range(300)]
    src = tmp_path / "mixed.txt"
    src.write_bytes(build(items))
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "MAX_SCAN", window)
    outs = []
    for jobs in ("1", "3", "7"):
        out = tmp_path / f"o{jobs}.txt"
        rc, _, err = run(capsys, f"--jobs={jobs}", "--cull=stacktrace,allocator", src, out)
        assert rc == 0, err
        outs.append(out.read_text())
    assert outs[0] == outs[1] == outs[2]
    want = kernel_model(build(items), alloc_bits=True)
    assert sum(t for _, t, _ in want) == 300
    assert outs[0].count(" times, ") == len({(stack(t), a) for t, _, a in want})
