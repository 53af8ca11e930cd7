"""page_owner's reports: the dump file (both formats), record-by-record reads, per-stack
counts, leaks, mixed pageblocks, the summary, and a round trip through page_owner_sort.

Expected texts are written from the kernel's format strings (reference
section 4 and 8); only pfns and timestamps are taken from the run, and the
parts derived from them (Block = pfn >> 9, hex/decimal PFN) are computed
here by hand.  TINY: 64 MiB, DMA = [0, 4096), DMA32 = [4096, 16384).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import pageext_core as pc
from pageext_core.mm import MiB, Task, check_invariants
from pageext_core.mm.gfp import (
    __GFP_COMP,
    __GFP_NORETRY,
    __GFP_NOWARN,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
)
from pageext_core.mm.pageflags import flags_mask
from pageext_page_owner import dumpparse, page_owner_sort
from pageext_page_owner.dump import frame_address
from pageext_page_owner.plugin import PageOwner

TINY = pc.MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
UDEV = Task(812, 812, "systemd-udevd")
INIT = Task(1, 1, "systemd")
PY = Task(2291, 2288, "python3")
PCPU = ["post_alloc_hook+0x1a2/0x1c0", "get_page_from_freelist+0x3b8/0x1530", "pcpu_populate_chunk+0x11c/0x3c0"]
SLAB = ["post_alloc_hook+0x1a2/0x1c0", "allocate_slab+0x2a9/0x3d0", "kernfs_fop_open+0x2a5/0x3c0"]
ANON = ["post_alloc_hook+0x1a2/0x1c0", "vma_alloc_folio_noprof+0x64/0xd0", "do_anonymous_page+0x327/0x8a0"]
SLAB_MASK = GFP_KERNEL | __GFP_NOWARN | __GFP_NORETRY | __GFP_COMP  # 0x52cc0
ANON_MASK = GFP_HIGHUSER_MOVABLE | __GFP_COMP  # 0x140cca
ADDR = re.compile(r"\[<ffffffff8[0-9a-f]{7}>\]")
# The page_ext table (576 pages at pfn 4096, allocated before page_owner's init) has 576
# order-0 early records (6.12's init_pages_in_zone: gfp 0, the init task, the early stack).
EARLY_PFNS = range(4096, 4096 + 576)


def without_early(text: str) -> str:
    """The dump without the early records (both formats), for tests about the records they make."""
    recs = text.split("\n\n")
    assert recs[-1] == ""
    return "".join(r + "\n\n" for r in recs[:-1]
                   if not r.startswith(("Page allocated via order 0, mask 0x0(), pid 0, tgid 0 (swapper/0), ",
                                        "Page allocated via order 0, mask 0x0\n")))


@pytest.fixture(params=["entry point", "direct"])
def pe(request: pytest.FixtureRequest) -> pc.PageExt:
    if request.param == "entry point":
        return pc.boot(TINY, "page_owner=on", autoload=True)
    return pc.boot(TINY, "page_owner=on", autoload=False, plugins=[PageOwner])


def owner(pe: pc.PageExt) -> PageOwner:
    return pe.plugin("page_owner")


def alloc(m: pc.Machine, task: Task, stack: list[str], gfp: int, order: int) -> tuple[int, int]:
    """(pfn, ts): the allocator charges op_cost_ns before the call-out records the time."""
    with m.context(task=task, stack=stack):
        ts = m.clock_ns + m.op_cost_ns
        return m.alloc_pages(gfp, order), ts


@pytest.fixture
def scene(pe: pc.PageExt) -> dict:
    """Three live blocks (one migrated), as in the reference's sample dump."""
    m = pe.machine
    a, ts_a = alloc(m, UDEV, PCPU, GFP_KERNEL, 0)
    m.advance(1_000_000)
    b, ts_b = alloc(m, INIT, SLAB, SLAB_MASK, 3)
    # a slab page: in 6.12 slab is a page type, not a page flag, so its Flags show only head
    m.advance(1_000_000)
    old, ts_c = alloc(m, PY, ANON, ANON_MASK, 0)
    m.set_page_flags(old, flags_mask("uptodate|lru|active|swapbacked"))
    c = m.migrate_pages(old, 0, reason="compaction")
    return {"pe": pe, "a": a, "ts_a": ts_a, "b": b, "ts_b": ts_b, "c": c, "ts_c": ts_c, "old": old}


def current_records(s: dict) -> dict[int, str]:
    a, b, c = s["a"], s["b"], s["c"]
    return {
        a: ("Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 812, tgid 812 (systemd-udevd), "
            f"ts {s['ts_a']} ns\n"
            f"PFN {a:#x} type Unmovable Block {a >> 9} type Unmovable Flags 0xfffffc0000000(node=0|zone=1|lastcpupid=0x1fffff)\n"
            " post_alloc_hook+0x1a2/0x1c0\n get_page_from_freelist+0x3b8/0x1530\n pcpu_populate_chunk+0x11c/0x3c0\n\n"),
        b: ("Page allocated via order 3, mask 0x52cc0(GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP), "
            f"pid 1, tgid 1 (systemd), ts {s['ts_b']} ns\n"
            f"PFN {b:#x} type Unmovable Block {b >> 9} type Unmovable Flags 0xfffffc0000040(head|node=0|zone=1|lastcpupid=0x1fffff)\n"
            " post_alloc_hook+0x1a2/0x1c0\n allocate_slab+0x2a9/0x3d0\n kernfs_fop_open+0x2a5/0x3c0\n\n"),
        c: ("Page allocated via order 0, mask 0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), pid 2291, tgid 2288 (python3), "
            f"ts {s['ts_c']} ns\n"
            f"PFN {c:#x} type Movable Block {c >> 9} type Movable "
            "Flags 0xfffffc0020128(uptodate|lru|active|swapbacked|node=0|zone=1|lastcpupid=0x1fffff)\n"
            " post_alloc_hook+0x1a2/0x1c0\n vma_alloc_folio_noprof+0x64/0xd0\n do_anonymous_page+0x327/0x8a0\n"
            "Page has been migrated, last migrate reason: compaction\n\n"),
    }


# -- the dump file ------------------------------------------------------------------------------


def test_dump_current_format_exactly(scene: dict) -> None:
    want = current_records(scene)
    assert without_early(scene["pe"].report("page_owner")) == "".join(want[p] for p in sorted(want))


def test_dump_2014_format_exactly(scene: dict) -> None:
    """2014's print_page_owner: ``Fallback`` or eight spaces (its width), then the one-letter flag columns.

    6.12 has no PG_slab (a page type now) and no PG_error, so the S and E columns stay blank.
    """
    a, b, c = scene["a"], scene["b"], scene["c"]
    want = {
        a: (f"Page allocated via order 0, mask 0xcc0\nPFN {a} Block {a >> 9} type 0          Flags             \n"
            " [<ADDR>] post_alloc_hook+0x1a2/0x1c0\n [<ADDR>] get_page_from_freelist+0x3b8/0x1530\n"
            " [<ADDR>] pcpu_populate_chunk+0x11c/0x3c0\n\n"),
        b: (f"Page allocated via order 3, mask 0x52cc0\nPFN {b} Block {b >> 9} type 0          Flags          C  \n"
            " [<ADDR>] post_alloc_hook+0x1a2/0x1c0\n [<ADDR>] allocate_slab+0x2a9/0x3d0\n"
            " [<ADDR>] kernfs_fop_open+0x2a5/0x3c0\n\n"),
        c: (f"Page allocated via order 0, mask 0x140cca\nPFN {c} Block {c >> 9} type 1          Flags    U LA     \n"
            " [<ADDR>] post_alloc_hook+0x1a2/0x1c0\n [<ADDR>] vma_alloc_folio_noprof+0x64/0xd0\n"
            " [<ADDR>] do_anonymous_page+0x327/0x8a0\n\n"),
    }
    text = without_early(scene["pe"].report("page_owner", format="2014"))
    assert ADDR.sub("[<ADDR>]", text) == "".join(want[p] for p in sorted(want))


def test_2014_addresses_are_stable_and_follow_the_offset() -> None:
    # Same function, different call sites: one function start, offsets apart.
    assert frame_address("allocate_slab+0x2a9/0x3d0") - frame_address("allocate_slab+0x9/0x3d0") == 0x2a0
    assert frame_address("allocate_slab+0x9/0x3d0") != frame_address("new_slab+0x9/0x3d0")
    assert frame_address("xfs_buf_alloc+0x10/0x80 [xfs]") == frame_address("xfs_buf_alloc+0x10/0x80")
    for f in ("a", "post_alloc_hook+0x1a2/0x1c0", "test_x+0x3/0x20 [test_mod]"):
        assert 0xFFFFFFFF81000000 <= frame_address(f) < 0xFFFFFFFF90000000
    # Not Python's hash(): the same in another interpreter run (PYTHONHASHSEED differs).
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "from pageext_page_owner.dump import frame_address as f; "
                          "print(f('allocate_slab+0x2a9/0x3d0'))"], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert int(out.stdout) == frame_address("allocate_slab+0x2a9/0x3d0")


def test_2014_fallback_when_the_page_came_from_another_pageblock_type(pe: pc.PageExt) -> None:
    m = pe.machine
    u, _ = steal_unmovable_page_from_movable_block(m)
    text = owner(pe).read_record(u, format="2014")[0]
    assert text.splitlines()[:2] == ["Page allocated via order 0, mask 0x2cc0",
                                     f"PFN {u} Block {u >> 9} type 1 Fallback Flags             "]
    current = owner(pe).read_record(u)[0]
    assert current.splitlines()[1] == (f"PFN {u:#x} type Unmovable Block {u >> 9} type Movable "
                                       "Flags 0xfffffc0000000(node=0|zone=1|lastcpupid=0x1fffff)")


def test_unknown_format_is_refused(pe: pc.PageExt) -> None:
    with pytest.raises(ValueError, match="unknown format '2015'"):
        pe.report("page_owner", format="2015")


def test_dump_skips_free_tail_and_recordless_pages(scene: dict) -> None:
    pe, m = scene["pe"], scene["pe"].machine
    text = pe.report("page_owner")
    pfns = [int(x, 16) for x in re.findall(r"^PFN (0x[0-9a-f]+)", text, re.M)]
    # not old (freed), not b+1..b+7 (tails); the page_ext table's pages are each an early record
    assert pfns == sorted([*EARLY_PFNS, scene["a"], scene["b"], scene["c"]])
    m.free_pages(scene["b"], 3)
    assert pe.report("page_owner").count("Page allocated via") == 576 + 2


def test_split_block_prints_each_page(pe: pc.PageExt) -> None:
    m = pe.machine
    b, _ = alloc(m, INIT, SLAB, GFP_KERNEL, 2)
    m.split_page(b, 2)
    text = without_early(pe.report("page_owner"))
    assert re.findall(r"^PFN (0x[0-9a-f]+)", text, re.M) == [f"{b + i:#x}" for i in range(4)]
    assert text.count("Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 1, tgid 1 (systemd)") == 4


# -- read() one record at a time ------------------------------------------------------------------


def test_read_record_walks_the_file(scene: dict) -> None:
    po = owner(scene["pe"])
    want = current_records(scene)
    order = sorted(want)
    pos, got = EARLY_PFNS[-1] + 1, []  # after the early records
    while True:
        text, nxt = po.read_record(pos)
        if nxt is None:
            assert text == ""
            break
        got.append(text)
        assert nxt == order[len(got) - 1] + 1  # the position is the pfn after the one printed
        pos = nxt
    assert got == [want[p] for p in order]
    assert "".join(got) == without_early(scene["pe"].report("page_owner"))


def test_read_record_resumes_at_any_position(scene: dict) -> None:
    po = owner(scene["pe"])
    want = current_records(scene)
    b = scene["b"]
    assert po.read_record(b) == (want[b], b + 1)  # at the head: that record
    after_b = min(p for p in want if p > b) if any(p > b for p in want) else None
    # Inside the block (a tail page): the next head, never the tail.
    text, nxt = po.read_record(b + 1)
    if after_b is None:
        assert (text, nxt) == ("", None)
    else:
        assert (text, nxt) == (want[after_b], after_b + 1)
    assert po.read_record(16384) == ("", None)  # past the end of memory
    assert po.read_record(max(want) + 1) == ("", None)


# -- page_owner_stacks/show_stacks ------------------------------------------------------------------


def stack_scene(pe: pc.PageExt) -> dict:
    m = pe.machine
    x, _ = alloc(m, UDEV, PCPU, GFP_KERNEL, 0)  # 1 page
    y, _ = alloc(m, INIT, SLAB, SLAB_MASK, 3)  # 8 pages
    z1, _ = alloc(m, PY, ANON, GFP_HIGHUSER_MOVABLE, 1)  # 2 + 2 pages
    z2, _ = alloc(m, PY, ANON, GFP_HIGHUSER_MOVABLE, 1)
    return {"x": x, "y": y, "z1": z1, "z2": z2}


def test_show_stacks_counts_base_pages_per_stack(pe: pc.PageExt) -> None:
    stack_scene(pe)
    pcpu = " post_alloc_hook+0x1a2/0x1c0\n get_page_from_freelist+0x3b8/0x1530\n pcpu_populate_chunk+0x11c/0x3c0\n"
    slab = " post_alloc_hook+0x1a2/0x1c0\n allocate_slab+0x2a9/0x3d0\n kernfs_fop_open+0x2a5/0x3c0\n"
    anon = " post_alloc_hook+0x1a2/0x1c0\n vma_alloc_folio_noprof+0x64/0xd0\n do_anonymous_page+0x327/0x8a0\n"
    # depot order: the order the stacks were first seen
    assert pe.report("page_owner_stacks/show_stacks") == (
        f"{pcpu}nr_base_pages: 1\n\n{slab}nr_base_pages: 8\n\n{anon}nr_base_pages: 4\n\n")
    assert pe.report("page_owner_stacks/show_stacks", count_threshold=4) == (
        f"{slab}nr_base_pages: 8\n\n{anon}nr_base_pages: 4\n\n")
    assert pe.report("page_owner_stacks/show_stacks", count_threshold="5") == f"{slab}nr_base_pages: 8\n\n"
    assert pe.report("page_owner_stacks/show_stacks", count_threshold=9) == ""


def test_show_stacks_follows_frees(pe: pc.PageExt) -> None:
    s = stack_scene(pe)
    m = pe.machine
    m.free_pages(s["z1"], 1)
    m.free_pages(s["x"], 0)
    text = pe.report("page_owner_stacks/show_stacks")
    assert "pcpu_populate_chunk" not in text  # owns no page any more
    assert text.endswith(" do_anonymous_page+0x327/0x8a0\nnr_base_pages: 2\n\n")


def test_show_stacks_threshold_must_be_a_count(pe: pc.PageExt) -> None:
    for bad in (-1, "lots", None):
        with pytest.raises(ValueError, match="count_threshold"):
            pe.report("page_owner_stacks/show_stacks", count_threshold=bad)


# -- leaks -------------------------------------------------------------------------------------------


def test_leaks_group_by_stack_largest_first(pe: pc.PageExt) -> None:
    m = pe.machine
    one = ["one_block+0x1/0x10"]
    two = ["two_pages+0x1/0x10"]
    big = ["big+0x1/0x10"]
    tie_a = ["tie_a+0x1/0x10"]
    tie_b = ["tie_b+0x1/0x10"]
    _, ts_one = alloc(m, UDEV, one, GFP_KERNEL, 1)  # 2 pages in 1 record
    m.advance(10)
    _, ts_two = alloc(m, UDEV, two, GFP_KERNEL, 0)  # 2 pages in 2 records: before "one"
    alloc(m, UDEV, two, GFP_KERNEL, 0)
    _, ts_big = alloc(m, UDEV, big, GFP_KERNEL, 2)  # 4 pages: first
    _, ts_ta = alloc(m, UDEV, tie_a, GFP_KERNEL, 0)  # full ties: depot order
    _, ts_tb = alloc(m, UDEV, tie_b, GFP_KERNEL, 0)
    freed, _ = alloc(m, UDEV, ["freed+0x1/0x10"], GFP_KERNEL, 3)
    m.free_pages(freed, 3)
    assert pe.report("page_owner_leaks") == (
        "page_owner leaks: 6 records, 10 pages, 40960 bytes still allocated from 5 stacks\n\n"
        f"4 pages, 16384 bytes, 1 records, oldest ts {ts_big} ns\n big+0x1/0x10\n\n"
        f"2 pages, 8192 bytes, 2 records, oldest ts {ts_two} ns\n two_pages+0x1/0x10\n\n"
        f"2 pages, 8192 bytes, 1 records, oldest ts {ts_one} ns\n one_block+0x1/0x10\n\n"
        f"1 pages, 4096 bytes, 1 records, oldest ts {ts_ta} ns\n tie_a+0x1/0x10\n\n"
        f"1 pages, 4096 bytes, 1 records, oldest ts {ts_tb} ns\n tie_b+0x1/0x10\n\n"
    )


def test_leaks_of_a_clean_session(pe: pc.PageExt) -> None:
    m = pe.machine
    pfn, _ = alloc(m, UDEV, PCPU, GFP_KERNEL, 2)
    m.free_pages(pfn, 2)
    assert pe.report("page_owner_leaks") == (
        "page_owner leaks: 0 records, 0 pages, 0 bytes still allocated from 0 stacks\n\n")


# -- /proc/pagetypeinfo: mixed blocks ----------------------------------------------------------------

MOV = GFP_HIGHUSER_MOVABLE | __GFP_NOWARN
KER = GFP_KERNEL | __GFP_NOWARN
MIXED_HEADER = ("\nNumber of mixed blocks    Unmovable      Movable  Reclaimable   HighAtomic      Isolate \n")


def fill(m: pc.Machine) -> None:
    """Allocate every free page as movable (largest blocks first) so later requests must fall back.

    The watermark floors are lowered to nothing first (vm.min_free_kbytes and
    vm.lowmem_reserve_ratio 0), and what per-CPU refills left on the lists is
    drained and allocated too.
    """
    m.set_min_free_kbytes(0)
    m.set_lowmem_reserve_ratio([0, 0, 0, 0])
    with m.context(stack=["fill+0x0/0x10"]):
        while True:
            for order in range(9, -1, -1):
                while m.alloc_pages(MOV, order) is not None:
                    pass
            if not m.drain_all_pages():
                break
    assert m.nr_free_pages == 0 and m.nr_pcp_pages == 0


def steal_unmovable_page_from_movable_block(m: pc.Machine) -> tuple[int, int]:
    """An unmovable request served from a movable pageblock that it cannot claim.

    Everything is allocated; one page of a fully movable pageblock is freed;
    the unmovable request finds no unmovable page, cannot claim a block whose
    pages are nearly all movable, and steals the single page.
    """
    fill(m)
    blk = 0x3000  # pageblock 24, DMA32, filled by one order-9 movable block
    m.split_page(blk, 9)
    m.free_pages(blk + 5, 0)
    m.drain_all_pages()
    with m.context(task=UDEV, stack=["steal+0x0/0x10"]):
        u = m.alloc_pages(KER, 0)
    assert u == blk + 5 and m.pageblock_migratetype(u) == 1  # precondition: Movable block, unmovable page
    return u, blk >> 9


def test_pagetypeinfo_mixed_blocks_on_a_fresh_machine(pe: pc.PageExt) -> None:
    text = pe.report("pagetypeinfo")
    assert text.endswith(MIXED_HEADER
                         + "Node 0, zone      DMA            0            0            0            0            0 \n"
                         + "Node 0, zone    DMA32            0            0            0            0            0 \n")


# fill() makes pageblock 9 Movable (its free tail is claimed by movable requests); the
# page_ext table's last 64 pages (4608..4671) are early records there, gfp 0 = Unmovable,
# so that block is mixed too: 6.12 counts early pages like any other (init_pages_in_zone).
EARLY_MIXED = 1


def test_early_pages_count_in_the_mixed_block_section(pe: pc.PageExt) -> None:
    fill(pe.machine)
    assert pe.machine.pageblock_migratetype(4608) == 1 and owner(pe).record(4608).gfp_mask == 0
    assert pe.report("pagetypeinfo").endswith(
        MIXED_HEADER
        + "Node 0, zone      DMA            0            0            0            0            0 \n"
        + "Node 0, zone    DMA32            0            1            0            0            0 \n")


def test_unmovable_page_in_movable_block_counts_in_movable_column(pe: pc.PageExt) -> None:
    steal_unmovable_page_from_movable_block(pe.machine)
    assert pe.report("pagetypeinfo").endswith(
        MIXED_HEADER
        + "Node 0, zone      DMA            0            0            0            0            0 \n"
        + f"Node 0, zone    DMA32            0            {1 + EARLY_MIXED}            0            0            0 \n")


def test_movable_page_in_unmovable_block_counts_in_unmovable_column(pe: pc.PageExt) -> None:
    m = pe.machine
    fill(m)
    m.free_pages(0x3000, 9)  # one whole free pageblock (24), still Movable
    m.drain_all_pages()  # the THP order is freed to a per-CPU list first
    with m.context(stack=["kernel+0x0/0x10"]):
        # The first unmovable request claims the whole block; 300 pages keep it unclaimable later.
        unmovable = [m.alloc_pages(KER, 0) for _ in range(300)]
    assert m.pageblock_migratetype(0x3000) == 0 and all(p >> 9 == 24 for p in unmovable)
    with m.context(stack=["user+0x0/0x10"]):
        v = m.alloc_pages(MOV, 0)
    assert v >> 9 == 24 and m.pageblock_migratetype(v) == 0  # precondition: movable page, Unmovable block
    # Counted once although 300 pages in it agree with it and one does not.
    assert pe.report("pagetypeinfo").endswith(
        MIXED_HEADER
        + "Node 0, zone      DMA            0            0            0            0            0 \n"
        + f"Node 0, zone    DMA32            1            {EARLY_MIXED}            0            0            0 \n")
    # Freed, the block is no longer mixed.
    m.free_pages(v, 0)
    assert pe.report("pagetypeinfo").endswith(
        f"Node 0, zone    DMA32            0            {EARLY_MIXED}            0            0            0 \n")
    check_invariants(m)


def test_several_mixed_pages_in_one_block_count_once(pe: pc.PageExt) -> None:
    m = pe.machine
    fill(m)
    m.split_page(0x3000, 9)
    for p in (0x3001, 0x3100, 0x31ff):
        m.free_pages(p, 0)
    m.drain_all_pages()
    with m.context(stack=["steal+0x0/0x10"]):
        got = sorted(m.alloc_pages(KER, 0) for _ in range(3))
    assert got == [0x3001, 0x3100, 0x31ff]
    assert pe.report("pagetypeinfo").endswith(
        f"Node 0, zone    DMA32            0            {1 + EARLY_MIXED}            0            0            0 \n")


def test_two_nodes_print_their_node_and_a_section_each() -> None:
    cfg = TINY.with_(memory=256 * MiB, nodes=2, cpus=2)  # node 1 = pfns [32768, 65536), its CPU is 1
    pe = pc.boot(cfg, "page_owner=on", autoload=True)
    m = pe.machine
    with m.context(cpu=1, task=UDEV, stack=PCPU):
        p = m.alloc_pages(GFP_KERNEL, 0)
    assert 32768 <= p < 65536
    assert f"PFN {p:#x} type Unmovable Block {p >> 9} type Unmovable Flags 0x4fffffc0000000(node=1|zone=1|lastcpupid=0x1fffff)\n" \
        in pe.report("page_owner")
    text = pe.report("pagetypeinfo")
    assert text.count("Number of mixed blocks") == 2
    assert text.endswith(MIXED_HEADER
                         + "Node 1, zone    DMA32            0            0            0            0            0 \n")


# -- summary -------------------------------------------------------------------------------------------


def test_summary_figures(scene: dict) -> None:
    pe = scene["pe"]
    s = pe.client_summaries()["page_owner"]
    # live: a (1 page), b (8), c (1), plus the 576 early records; old: freed by the migration.
    assert s["allocated_records"] == 576 + 3 and s["allocated_pages"] == 576 + 10
    assert s["pages_with_record"] == 576 + 11 and s["freed_pages_with_record"] == 1
    assert s["distinct_alloc_stacks"] == 1 + 3  # the early stack and the three
    assert s["early_allocated_pages"] == 576
    assert s["early_allocated_by_zone"] == {"Node 0, zone DMA": 0, "Node 0, zone DMA32": 576}
    assert s["allocations_recorded"] == 4 and s["frees_recorded"] == 1  # the migration target, and the source
    assert s["migrations"] == 1 and s["record_bytes"] == 64 and s["stack_depth"] == 16
    assert s["depot_stacks"] == len(pe.machine.depot) and s["depot_bytes"] == pe.machine.depot.nbytes


# -- round trip through the dump parser and page_owner_sort ---------------------------------------------


def workload(pe: pc.PageExt) -> None:
    """5 x order-0 by udev/PCPU, 3 x order-2 by systemd/SLAB, 2 x order-0 by udev/SLAB,
    1 x order-1 vmalloc by python3, plus blocks allocated then freed (absent from the dump)."""
    m = pe.machine
    vmalloc = ["post_alloc_hook+0x1a2/0x1c0", "alloc_pages_bulk_noprof+0x3a1/0x690",
               "__vmalloc_node_range_noprof+0x1d9/0x7e0", "load_module+0x1c6/0x2210"]
    for _ in range(5):
        alloc(m, UDEV, PCPU, GFP_KERNEL, 0)
        m.advance(12_345)
    for _ in range(3):
        alloc(m, INIT, SLAB, GFP_KERNEL, 2)  # 6.12 prints no "slab" flag for slab pages
    for _ in range(2):
        alloc(m, UDEV, SLAB, GFP_KERNEL, 0)
    alloc(m, PY, vmalloc, GFP_KERNEL, 1)
    for _ in range(4):
        pfn, _ = alloc(m, PY, ANON, GFP_HIGHUSER_MOVABLE, 0)
        m.free_pages(pfn, 0)


def test_dump_parses_back_into_the_allocations(pe: pc.PageExt, tmp_path: Path) -> None:
    workload(pe)
    path = tmp_path / "page_owner.txt"
    path.write_text(pe.report("page_owner"))
    errors: list = []
    records = list(dumpparse.parse_dump(str(path), errors.append))
    assert errors == []
    early = [r for r in records if r.gfp_mask == 0]
    assert len(early) == 576 and {(r.order, r.pid, r.comm) for r in early} == {(0, 0, "swapper/0")}
    records = [r for r in records if r.gfp_mask != 0]
    assert len(records) == 11
    assert sorted((r.order, r.pid, r.tgid, r.comm) for r in records) == sorted(
        [(0, 812, 812, "systemd-udevd")] * 7 + [(2, 1, 1, "systemd")] * 3 + [(1, 2291, 2288, "python3")])
    assert sum(r.pages for r in records) == 5 + 12 + 2 + 2
    assert all(r.gfp_mask == GFP_KERNEL and r.gfp_flags == "GFP_KERNEL" for r in records)
    # no "slab" in 6.12's Flags (slab is a page type), so page_owner_sort's rule finds no SLAB records
    assert sorted(r.allocator for r in records).count("SLAB") == 0
    assert [r.pfn for r in records] == sorted(r.pfn for r in records)
    assert all(r.migrate_reason is None for r in records)


def test_page_owner_sort_groups_the_dump(pe: pc.PageExt, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    workload(pe)
    src, out = tmp_path / "page_owner.txt", tmp_path / "sorted.txt"
    src.write_text(pe.report("page_owner"))
    assert page_owner_sort.main([str(src), str(out)]) == 0
    heads = [ln for ln in out.read_text().splitlines() if " times, " in ln]
    # Timestamps are cut from the compared text, so identical allocations merge; most seen first.
    assert heads == [
        "576 times, 576 pages, allocated by OTHERS :",  # the early records of the page_ext table
        "5 times, 5 pages, allocated by OTHERS :",
        "3 times, 12 pages, allocated by OTHERS :",
        "2 times, 2 pages, allocated by OTHERS :",
        "1 times, 2 pages, allocated by VMALLOC :",
    ]
    capsys.readouterr()
