"""The page_owner dump parser: formats, line numbers, bad input, compression."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import sys
from pathlib import Path

import pytest
from gendump import write_dump
from pageext_page_owner.dumpparse import (
    ALLOC_CMA,
    ALLOC_OTHERS,
    ALLOC_SLAB,
    ALLOC_VMALLOC,
    ParseError,
    allocator_flags,
    frame_symbol,
    iter_chunks,
    iter_pieces,
    parse_block,
    parse_dump,
    scan_block,
    strip_ts,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "page_owner"  # tracked, in the repository
CURRENT = FIXTURES / "current.txt"
RFC2014 = FIXTURES / "rfc2014.txt"


def collect(source, **kw):
    errors: list[ParseError] = []
    records = list(parse_dump(source, errors.append, **kw))
    return records, errors


def test_current_fixture_fields():
    records, errors = collect(CURRENT)
    assert errors == []
    assert [r.line for r in records] == [1, 11, 21, 32, 46, 57, 72]
    assert [r.order for r in records] == [0, 0, 3, 0, 0, 0, 9]
    assert [r.pages for r in records] == [1, 1, 8, 1, 1, 1, 512]
    first = records[0]
    assert first.gfp_mask == 0xCC0
    assert first.gfp_flags == "GFP_KERNEL"
    assert (first.pid, first.tgid, first.comm) == (812, 812, "systemd-udevd")
    assert first.ts_ns == 2315508201
    assert first.free_ts_ns is None
    assert first.pfn == 0x10A3C
    assert first.pfn_line == "PFN 0x10a3c type Unmovable Block 133 type Unmovable Flags 0x200(workingset|node=0|zone=1)"
    assert first.first_line == (
        "Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 812, tgid 812 (systemd-udevd), ts 2315508201 ns"
    )
    assert first.frames == (
        "post_alloc_hook+0x1a2/0x1c0",
        "get_page_from_freelist+0x3b8/0x1530",
        "__alloc_pages_noprof+0x17c/0x360",
        "alloc_pages_mpol_noprof+0x95/0x1c0",
        "pcpu_populate_chunk+0x11c/0x3c0",
        "pcpu_alloc_noprof+0x40f/0x7a0",
        "mem_cgroup_css_alloc+0x18e/0x6d0",
    )
    # the compared text: first line + stack, PFN line removed, every line newline-terminated
    assert first.text == first.first_line + "\n" + "".join(" " + f + "\n" for f in first.frames)
    assert "PFN" not in first.text
    assert first.allocator == "OTHERS"
    python = records[3]
    assert (python.pid, python.tgid, python.comm, python.gfp_flags) == (2291, 2288, "python3", "GFP_HIGHUSER_MOVABLE|__GFP_COMP")
    migrated = records[5]
    assert migrated.migrate_reason == "compaction"
    assert migrated.migrate_line == "Page has been migrated, last migrate reason: compaction"
    assert migrated.text.endswith("asm_exc_page_fault+0x26/0x30\nPage has been migrated, last migrate reason: compaction\n")
    assert records[6].pfn == 0x40000 and records[6].ts_ns == 9530001120
    assert all(r.migrate_reason is None for i, r in enumerate(records) if i != 5)


def test_allocator_classes_follow_the_kernel_rules():
    records, _ = collect(CURRENT)
    # the slab record's PFN line has no "slab" flag (newer kernels do not print it): OTHERS
    assert records[2].allocator == "OTHERS"
    # vmalloc: the line before __vmalloc_node_range_noprof is __vmalloc_area_node, no alloc_pages: OTHERS
    assert records[4].allocator == "OTHERS"
    text = b"H\n alloc_pages_bulk_noprof+0x1/0x2\n __vmalloc_node_range_noprof+0x1/0x2\n"
    assert allocator_flags(text, b"PFN 0x1 type Movable") == ALLOC_VMALLOC
    assert allocator_flags(b"H\n x+0x1/0x2\n", b"PFN 0x1 type CMA Block 1 type CMA Flags 0x200(slab|node=0)") == ALLOC_CMA | ALLOC_SLAB
    assert allocator_flags(b"H\n x+0x1/0x2\n", b"PFN 0x1 type Unmovable Flags 0x200(slab|node=0)") == ALLOC_SLAB
    assert allocator_flags(b"H\n x\n", b"PFN 1") == ALLOC_OTHERS


def test_rfc2014_format():
    records, errors = collect(RFC2014)
    assert errors == []
    assert [(r.line, r.order, r.gfp_mask, r.pfn) for r in records] == [(1, 0, 0xD0, 66314), (8, 2, 0x2084D0, 70656), (15, 0, 0x200DA, 91201)]
    r = records[1]
    assert r.gfp_flags is None and r.pid is None and r.tgid is None and r.comm is None and r.ts_ns is None
    assert r.frames[0] == "[<ffffffff8116b3ec>] __alloc_pages_nodemask+0x17c/0x9f0"
    assert frame_symbol(r.frames[2]) == "new_slab"
    assert r.pfn_line.startswith("PFN 70656 Block 138 type 2 Fallback Flags")
    assert r.text == (
        "Page allocated via order 2, mask 0x2084d0\n"
        " [<ffffffff8116b3ec>] __alloc_pages_nodemask+0x17c/0x9f0\n"
        " [<ffffffff811b1a3a>] alloc_pages_current+0x9a/0x120\n"
        " [<ffffffff811bc5d2>] new_slab+0x2f2/0x340\n"
        " [<ffffffff81673b0c>] __slab_alloc+0x2ba/0x4a0\n"
    )
    # one-letter flags: no "slab" word, so the kernel tool's rule says OTHERS
    assert r.allocator == "OTHERS"


def test_decimal_pfn_and_older_headers():
    text = (
        b"Page allocated via order 1, mask 0x24200ca(GFP_HIGHUSER_MOVABLE)\n"
        b"PFN 262144 type Movable Block 512 type Movable Flags 0x1fffff80000000(node=0|zone=2)\n"
        b" get_page_from_freelist+0x1/0x2\n"
        b"\n"
        b"Page allocated via order 0, mask 0x100cca(GFP_HIGHUSER_MOVABLE), pid 77, ts 1234 ns, free_ts 999 ns\n"
        b"PFN 4096 type Movable Block 8 type Movable Flags 0x0()\n"
        b" do_anonymous_page+0x1/0x2\n"
        b"\n"
    )
    records, errors = collect(io.BytesIO(text))
    assert errors == []
    a, b = records
    assert (a.pfn, a.order, a.pid, a.tgid, a.ts_ns, a.free_ts_ns) == (262144, 1, None, None, None, None)
    assert (b.pfn, b.pid, b.tgid, b.comm, b.ts_ns, b.free_ts_ns) == (4096, 77, None, None, 1234, 999)
    assert not b.released  # freed (999) before this allocation (1234)
    c = parse_block(b"Page allocated via order 0, mask 0x0(), pid 1, ts 10 ns, free_ts 20 ns\nPFN 1\n f+0x1/0x2")
    assert c.released


def test_crlf_gzip_xz_bzip2_and_file_objects_give_the_same_records(tmp_path):
    want = [r.text for r in collect(CURRENT)[0]]
    raw = CURRENT.read_bytes()
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(raw.replace(b"\n", b"\r\n"))
    gz = tmp_path / "dump.txt"  # gzip content under a .txt name: detected by magic bytes
    gz.write_bytes(gzip.compress(raw))
    xz = tmp_path / "dump.xz"
    xz.write_bytes(lzma.compress(raw))
    bz = tmp_path / "dump.bz2"
    bz.write_bytes(bz2.compress(raw))
    for source in (crlf, gz, xz, bz, io.BytesIO(raw), str(gz)):
        records, errors = collect(source)
        assert errors == []
        assert [r.text for r in records] == want, source
    # CRLF survives being cut between \r and \n by a small read size
    records, errors = collect(crlf, chunk_size=7)
    assert [r.text for r in records] == want and errors == []
    assert [r.line for r in records] == [1, 11, 21, 32, 46, 57, 72]


def test_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(RFC2014.read_bytes()))))
    records, errors = collect("-")
    assert [r.order for r in records] == [0, 2, 0] and errors == []


def test_zstd_is_refused_with_a_hint(tmp_path):
    p = tmp_path / "dump.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    with pytest.raises(OSError, match="zstd-compressed.*decompress it first"):
        collect(p)


def test_bad_records_are_reported_with_line_numbers_and_skipped():
    good = (
        b"Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 1, tgid 1 (init), ts 5 ns\n"
        b"PFN 0x1 type Unmovable Block 0 type Unmovable Flags 0x0()\n"
        b" f+0x1/0x2\n"
    )
    text = (
        b"garbage\nmore garbage\n\n"  # 1: not a record
        + good + b"\n"  # 4: fine
        + b"Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 1, tgid 1 (init), ts 6 ns\n f+0x1/0x2\n\n"  # 8: no PFN line: still a record
        + b"Page allocated via order 99, mask 0x0()\nPFN 1\n\n"  # 11: order out of range
        + good + good + b"\n"  # 14: two records glued together (second header on line 17)
        + b"\n\n"  # extra empty lines are not records
        + b" post_alloc_hook+0x1/0x2\nnr_base_pages: 3\n\n"  # 23: show_stacks output
        + good  # 26: last record without an empty line after it
    )
    records, errors = collect(io.BytesIO(text))
    assert [r.line for r in records] == [4, 8]
    assert records[1].pfn_line == "" and records[1].pfn is None and records[1].allocator == "OTHERS"
    assert [e.line for e in errors] == [1, 11, 14, 23, 26]
    assert "does not start with 'Page allocated via order" in errors[0].reason and "'garbage'" in errors[0].reason
    assert "order 99 is out of range" in errors[1].reason
    assert "second 'Page allocated' line at line 17" in errors[2].reason
    assert "show_stacks" in errors[3].reason
    assert "not followed by an empty line" in errors[4].reason
    assert str(errors[0]).startswith("<stream>:1: record does not start with")
    # the same answers whatever the read size
    for size in (5, 64, 1000):
        r2, e2 = collect(io.BytesIO(text), chunk_size=size)
        assert [r.line for r in r2] == [4, 8]
        assert [e.line for e in e2] == [1, 11, 14, 23, 26]


def test_text_without_empty_lines_is_skipped_in_bounded_memory(monkeypatch):
    import pageext_page_owner.dumpparse as dp

    monkeypatch.setattr(dp, "MAX_RECORD_BYTES", 1000)
    good = CURRENT.read_bytes()
    blob = b"".join(b"line %d of a log file\n" % i for i in range(500))  # ~11 kB, no empty line
    records, errors = collect(io.BytesIO(blob + b"\n" + good), chunk_size=256)
    assert [e.line for e in errors] == [1]
    assert "no empty line within" in errors[0].reason
    assert [r.line for r in records] == [502, 512, 522, 533, 547, 558, 573]


def test_empty_input():
    assert collect(io.BytesIO(b"")) == ([], [])
    assert collect(io.BytesIO(b"\n\n\n")) == ([], [])


def test_iter_chunks_and_pieces_agree_across_read_sizes():
    raw = CURRENT.read_bytes() + b"\n\n" + RFC2014.read_bytes()
    want = [(p, line) for p, line, _ in iter_pieces(io.BytesIO(raw))]
    assert [line for _, line in want] == [1, 11, 21, 32, 46, 57, 72, 88, 95, 102]
    for size in (1, 2, 3, 17, 100, 4096):
        got = [(p, line) for p, line, _ in iter_pieces(io.BytesIO(raw), chunk_size=size)]
        assert got == want, size
        chunks = list(iter_chunks(io.BytesIO(raw), chunk_size=size))
        assert all(c.terminated for c in chunks)
        assert b"\n\n".join(c.text for c in chunks) == raw[:-2]  # the batches are the input, cut at empty lines


def test_strip_ts_and_frame_symbol():
    assert strip_ts(b"x, pid 1, tgid 1 (a), ts 2315508201 ns\n f\n") == b"x, pid 1, tgid 1 (a), ts  ns\n f\n"
    assert strip_ts(b"order 0, mask 0xd0\n f\n") == b"order 0, mask 0xd0\n f\n"
    # only the first (leftmost) timestamp, as the kernel's regex does
    assert strip_ts(b"pid 1, ts 12 ns, free_ts 34 ns") == b"pid 1, ts  ns, free_ts 34 ns"
    assert frame_symbol("post_alloc_hook+0x1a2/0x1c0") == "post_alloc_hook"
    assert frame_symbol(" [<ffffffff811b1a3a>] alloc_pages_current+0x9a/0x120") == "alloc_pages_current"
    assert frame_symbol("xfs_file_read_iter+0x1f0/0x380 [xfs]") == "xfs_file_read_iter [xfs]"
    assert frame_symbol("__do_sys_finit_module") == "__do_sys_finit_module"


def test_scan_block_gives_the_raw_fields():
    sc = scan_block(
        b"Page allocated via order 2, mask 0xcc0(GFP_KERNEL), pid 5, tgid 4 (a (b), c), ts 7 ns\n"
        b"PFN 0x10 type Unmovable Block 0 type CMA Flags 0x0()\n"
        b" f+0x1/0x2\n"
        b"Charged to memcg foo"
    )
    assert (sc.order, sc.pid, sc.tgid, sc.comm, sc.ts_ns) == (2, 5, 4, b"a (b), c", 7)
    assert sc.text.endswith(b" f+0x1/0x2\nCharged to memcg foo\n")
    assert sc.allocator_flags == ALLOC_CMA


def test_generated_dump_round_trips(tmp_path):
    path = tmp_path / "gen.txt.gz"
    info = write_dump(path, 3000, seed=7, stacks=40, gzip=True)
    records, errors = collect(path)
    assert errors == []
    assert len(records) == info.records == 3000
    assert sum(r.pages for r in records) == info.pages
    assert {r.order for r in records} <= {0, 1, 2, 3, 4, 9}
    assert 9 in {r.order for r in records} and 0 in {r.order for r in records}
    assert all(r.ts_ns is not None and r.comm for r in records)
    assert all(r.gfp_flags for r in records)
    assert [r.pfn for r in records] == sorted(r.pfn for r in records)
    assert all(r.pfn % r.pages == 0 for r in records)  # blocks are aligned to their order
    stacks = {r.frames for r in records}
    assert 20 <= len(stacks) <= 40
    # deterministic: the same seed writes the same bytes
    again = tmp_path / "again.txt"
    write_dump(again, 300, seed=7, stacks=40)
    once = tmp_path / "once.txt"
    write_dump(once, 300, seed=7, stacks=40)
    assert again.read_bytes() == once.read_bytes()
