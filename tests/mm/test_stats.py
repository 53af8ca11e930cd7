"""/proc/buddyinfo, /proc/pagetypeinfo, meminfo, vmstat and free_summary.

Expected text is built from the kernel's format strings:
buddyinfo ``"Node %d, zone %8s "`` + ``"%6lu "`` per order; pagetypeinfo
``"Page block order: %d"``, ``"Pages per block:  %lu"``, a blank line,
``"%-43s "`` header + ``"%6d "`` per order, rows ``"Node %4d, zone %8s, type %12s "``
+ ``"%6lu "``; then ``"\\n%-23s"`` "Number of blocks type " + ``"%12s "`` per
migratetype, rows ``"Node %d, zone %8s "`` + ``"%12lu "``.
"""
from __future__ import annotations

from pageext_core.mm import MIGRATETYPE_NAMES, GiB, Machine, MachineConfig, MiB, check_invariants, stats
from pageext_core.mm import gfp as G

# 64 MiB x86 by hand: RAM pfns 0..159 and 256..16383; pfn 0, the kernel image 4096..8191 and
# the memmap (16288 pages * 64 B -> 255 pages, 16129..16383) reserved.
#  DMA free: 1..159 and 256..4095 -> blocks 1(o0) 2(o1) 4(o2) 8(o3) 16(o4) 32(o5) 64(o6) 128(o5),
#            256(o8) 512(o9) 1024 2048 3072(o10)
#  DMA32 free: 8192..16128 -> 7 x o10 (8192..15359), 15360(o9), 15872(o8), 16128(o0)
X86_64M = MachineConfig(memory=64 * MiB)
DMA_COUNTS = [1, 1, 1, 1, 1, 2, 1, 0, 1, 1, 3]
DMA32_COUNTS = [1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 7]


def row(node: int, zone: str, counts) -> str:
    return f"Node {node}, zone {zone:>8s} " + "".join(f"{c:6d} " for c in counts) + "\n"


def pt_free_row(node: int, zone: str, mt: str, counts) -> str:
    return f"Node {node:4d}, zone {zone:>8s}, type {mt:>12s} " + "".join(f"{c:6d} " for c in counts) + "\n"


def pt_block_row(node: int, zone: str, counts) -> str:
    return f"Node {node}, zone {zone:>8s} " + "".join(f"{c:12d} " for c in counts) + "\n"


def pagetypeinfo_text(node_parts) -> str:
    out = []
    for node, zones in node_parts:
        out.append("Page block order: 9\nPages per block:  512\n\n")
        out.append(f"{'Free pages count per migrate type at order':<43s} " + "".join(f"{o:6d} " for o in range(11)) + "\n")
        for zone, per_mt, _ in zones:
            for mt in MIGRATETYPE_NAMES:
                out.append(pt_free_row(node, zone, mt, per_mt.get(mt, [0] * 11)))
        out.append(f"\n{'Number of blocks type ':<23s}" + "".join(f"{n:>12s} " for n in MIGRATETYPE_NAMES) + "\n")
        for zone, _, blocks in zones:
            out.append(pt_block_row(node, zone, [blocks.get(mt, 0) for mt in MIGRATETYPE_NAMES]))
    return "".join(out)


def test_buddyinfo_of_a_64mib_x86_machine():
    m = Machine(X86_64M)
    assert stats.buddyinfo(m) == row(0, "DMA", DMA_COUNTS) + row(0, "DMA32", DMA32_COUNTS)
    # the classic first line of a real x86 box
    assert stats.buddyinfo(m).splitlines()[0] == (
        "Node 0, zone      DMA      1      1      1      1      1      2      1      0      1      1      3 ")


def test_buddyinfo_leaves_out_empty_zones_and_lists_every_node():
    m = Machine(MachineConfig(memory=128 * MiB, nodes=2, x86_holes=False, kernel_image=0,
                              reserve_memmap=False, section_size_bits=23))
    assert stats.buddyinfo(m) == (row(0, "DMA", [0] * 10 + [4]) + row(0, "DMA32", [0] * 10 + [12])
                                  + row(1, "DMA32", [0] * 10 + [16]))


def test_pagetypeinfo_at_boot():
    m = Machine(X86_64M)
    expected = pagetypeinfo_text([(0, [
        ("DMA", {"Movable": DMA_COUNTS}, {"Movable": 8}),
        ("DMA32", {"Movable": DMA32_COUNTS}, {"Movable": 24}),
    ])])
    assert stats.pagetypeinfo(m) == expected


def test_pagetypeinfo_reads_free_lists_as_they_are_and_shows_claimed_blocks():
    m = Machine(X86_64M)
    # DMA32 manages 7937 pages: per-CPU batch 1. The first Unmovable page claims the
    # order-10 block at 8192 (pageblocks 16 and 17); freed, it sits on the per-CPU list.
    p = m.alloc_pages(G.GFP_KERNEL, 0)
    assert p == 8192
    m.free_pages(p, 0)
    assert m.nr_pcp_pages == 1
    # As in the kernel, the free counts are read without draining (the per-CPU
    # page is on no free list, in buddyinfo either): the split halves of orders
    # 0..9 are the Unmovable free blocks.
    text = stats.pagetypeinfo(m)
    assert m.nr_pcp_pages == 1
    assert text == pagetypeinfo_text([(0, [
        ("DMA", {"Movable": DMA_COUNTS}, {"Movable": 8}),
        ("DMA32", {"Unmovable": [1] * 10 + [0], "Movable": DMA32_COUNTS[:10] + [6]},
         {"Unmovable": 2, "Movable": 22}),
    ])])
    # Drained, the page merges back into the whole order-10 block.
    m.drain_all_pages()
    assert stats.pagetypeinfo(m) == pagetypeinfo_text([(0, [
        ("DMA", {"Movable": DMA_COUNTS}, {"Movable": 8}),
        ("DMA32", {"Unmovable": [0] * 10 + [1], "Movable": DMA32_COUNTS[:10] + [6]},
         {"Unmovable": 2, "Movable": 22}),
    ])])


def test_pagetypeinfo_per_node_with_client_sections():
    m = Machine(MachineConfig(memory=128 * MiB, nodes=2, x86_holes=False, kernel_image=0,
                              reserve_memmap=False, section_size_bits=23))
    calls = []

    def section(machine, nid):
        calls.append(nid)
        return f"client section for node {nid}\n"

    text = stats.pagetypeinfo(m, [section])
    assert calls == [0, 1]
    full = [(10 * [0] + [n]) for n in (4, 12, 16)]
    expected_nodes = pagetypeinfo_text([(0, [("DMA", {"Movable": full[0]}, {"Movable": 8}),
                                             ("DMA32", {"Movable": full[1]}, {"Movable": 24})])])
    expected_nodes += "client section for node 0\n"
    expected_nodes += pagetypeinfo_text([(1, [("DMA32", {"Movable": full[2]}, {"Movable": 32})])])
    expected_nodes += "client section for node 1\n"
    assert text == expected_nodes


def test_pagetypeinfo_caps_counts_at_100000():
    # max_order 1: a 1 GiB machine's DMA32 is 129024 free order-1 blocks on one list
    m = Machine(MachineConfig(memory=1 * GiB, x86_holes=False, kernel_image=0, reserve_memmap=False,
                              max_order=1, pageblock_order=1))
    line = [ln for ln in stats.pagetypeinfo(m).splitlines() if "DMA32, type      Movable" in ln][0]
    assert line.endswith("      0 >100000 ")
    assert stats.buddyinfo(m).splitlines()[1] == "Node 0, zone    DMA32      0 129024 "


def test_pageblock_counts_skip_absent_sections():
    m = Machine(MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False,
                              section_size_bits=23, holes=((32 * MiB, 40 * MiB),)))
    counts = stats.pageblock_counts(m)
    assert counts[1].tolist() == [0, 24 - 4, 0, 0, 0]
    assert counts[0].tolist() == [0, 8, 0, 0, 0]


# 6.12's meminfo_proc_show order for a distro x86_64 config (ZSWAP, MEMORY_FAILURE, THP, CMA,
# UNACCEPTED_MEMORY, hugetlb; no HIGHMEM; no Balloon, which is 6.15).
MEMINFO_ORDER = [
    "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active", "Inactive",
    "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked",
    "SwapTotal", "SwapFree", "Zswap", "Zswapped", "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem",
    "KReclaimable", "Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "SecPageTables",
    "NFS_Unstable", "Bounce", "WritebackTmp", "CommitLimit", "Committed_AS", "VmallocTotal", "VmallocUsed",
    "VmallocChunk", "Percpu", "HardwareCorrupted", "AnonHugePages", "ShmemHugePages", "ShmemPmdMapped",
    "FileHugePages", "FilePmdMapped", "CmaTotal", "CmaFree", "Unaccepted", "HugePages_Total",
    "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp", "Hugepagesize", "Hugetlb", "DirectMap4k",
    "DirectMap2M",
]


def test_meminfo_prints_6_12s_lines_in_6_12s_order_and_format():
    """fs/proc/meminfo.c ``meminfo_proc_show``: ``show_val_kb`` is ``%-16s`` label + ``%8lu kB``;
    HardwareCorrupted ``%5lu kB``; HugePages_* ``%5lu`` without unit; MemAvailable by ``si_mem_available``."""
    import re

    m = Machine(X86_64M)
    text = stats.meminfo(m)
    lines = text.splitlines()
    assert [ln.split(":")[0] for ln in lines] == MEMINFO_ORDER
    assert all(re.fullmatch(r"[A-Za-z_()0-9]+: *\d+( kB)?", ln) for ln in lines)
    # present 16288 pages, reserved 1 + 4096 + 255 = 4352 -> managed 11936 pages = 47744 kB
    # MemAvailable holds back totalreserve_pages: 356 pages = 1424 kB (test_watermarks derives it from zoneinfo)
    assert m.totalreserve_pages == 356
    assert lines[:3] == ["MemTotal:          47744 kB", "MemFree:           47744 kB", "MemAvailable:      46320 kB"]
    assert "HardwareCorrupted:     0 kB" in lines and "HugePages_Total:       0" in lines
    assert "HugePages_Free:        0" in lines and "Hugepagesize:       2048 kB" in lines
    assert "VmallocTotal:   34359738367 kB" in lines
    assert "CommitLimit:       23872 kB" in lines  # managed x overcommit_ratio 50 %, no swap
    assert "PerCPULists" not in text and "Allocated" not in text and "GuardPages" not in text
    m.alloc_pages(G.GFP_KERNEL, 3)
    text = stats.meminfo(m)
    assert "MemFree:           47712 kB\n" in text
    assert "Allocated:            32 kB\n" in stats.pageext_meminfo(m)


def test_memavailable_is_memfree_less_the_reserve_and_per_cpu_pages_are_not_free():
    """si_mem_available: NR_FREE_PAGES - totalreserve_pages (+ page cache and slab, none here); pcp pages
    are not in NR_FREE_PAGES.  The reserve is the allocator's ``totalreserve_pages`` (test_watermarks checks it)."""
    m = Machine(X86_64M)
    p = m.alloc_pages(G.GFP_KERNEL, 0)
    m.free_pages(p, 0)
    assert m.nr_pcp_pages > 0
    info = {ln.split(":")[0]: int(ln.split()[1]) for ln in stats.meminfo(m).splitlines()}
    assert info["MemFree"] == m.nr_free_pages * 4 == (11936 - m.nr_pcp_pages) * 4
    assert info["MemAvailable"] == max(0, m.nr_free_pages - m.totalreserve_pages) * 4
    assert m.totalreserve_pages > 0
    assert stats.meminfo(m).splitlines()[2] == f"MemAvailable:   {(m.nr_free_pages - m.totalreserve_pages) * 4:8d} kB"


def test_pageext_meminfo_has_the_figures_the_kernel_does_not_print():
    m = Machine(X86_64M)
    assert stats.pageext_meminfo(m) == (
        "Present:           65152 kB\n"
        "Reserved:          17408 kB\n"
        "Allocated:             0 kB\n"
        "PerCPULists:           0 kB\n"
        "GuardPages:            0 kB\n"
        "IsolatedFree:          0 kB\n"
    )


def test_vmstat_counts_events(roomy: Machine):
    tiny = roomy  # no watermark floors: all 16 order-10 blocks can be allocated
    p = tiny.alloc_pages(G.GFP_KERNEL, 1)
    tiny.free_pages(p, 1)
    tiny.drain_all_pages()  # the order-1 blocks leave the per-CPU list, merge back
    for _ in range(17):
        tiny.alloc_pages(G.GFP_KERNEL | G.__GFP_NOWARN, 10)
    text = stats.vmstat(tiny)
    values = dict(line.split() for line in text.splitlines())
    assert values["alloc_calls"] == "17"  # 1 + 16 order-10 blocks; the 17th failed
    assert values["free_calls"] == "1"
    assert values["alloc_failures"] == "1"
    assert values["nr_free_pages"] == "0"
    assert int(values["pageblock_claims"]) == 32  # every pageblock went Unmovable


def test_free_summary(tiny: Machine):
    p = tiny.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)  # DMA32 batch 3: two stay per-CPU
    s = stats.free_summary(tiny)
    assert s["free_pages"] == 16384 - 3
    assert s["pcp_pages"] == 2
    assert s["allocated_pages"] == 1
    assert s["reserved_pages"] == 0 and s["held_pages"] == 0
    assert [(z["node"], z["zone"]) for z in s["zones"]] == [(0, "DMA"), (0, "DMA32")]
    dma32 = s["zones"][1]
    assert dma32["present_pages"] == 12288 and dma32["free_pages"] == 12288 - 3 and dma32["pcp_pages"] == 2
    per = dma32["free_blocks_by_migratetype_and_order"]
    assert set(per) == set(MIGRATETYPE_NAMES)
    # 4096 split: 4099(o0), 4100(o2), 4104(o3) ... 4608(o9) stay free; 11 order-10 blocks
    assert per["Movable"] == [1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 11]
    assert per["Unmovable"] == [0] * 11
    assert p == 4096
    check_invariants(tiny)


def test_free_summary_is_plain_data(tiny: Machine):
    import json

    json.dumps(stats.free_summary(tiny))
