"""What ``/proc/buddyinfo``, ``/proc/pagetypeinfo`` and ``/proc/meminfo`` show.

Text shapes follow the kernel's so that scripts written for real machines
read ours.  ``pagetypeinfo`` takes extra per-node sections from page_ext
clients (page_owner adds "Number of mixed blocks").  Every function here
only reads the machine: a report never drains the per-CPU lists, so reports
and ``summary.json`` describe one moment whichever of them are asked for.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from pageext_core.mm.constants import MIGRATE_TYPES, MIGRATETYPE_NAMES, PAGE_SIZE

if TYPE_CHECKING:
    from pageext_core.mm.geometry import ZoneSpan
    from pageext_core.mm.machine import Machine

PagetypeinfoSection = Callable[["Machine", int], str]
FREECOUNT_CAP = 100000  # the kernel stops counting a list here and prints ">100000"


def populated_zones(m: Machine, nid: int | None = None) -> list[ZoneSpan]:
    return [z for z in m.geometry.zones if m.zone_present[z.index] and (nid is None or z.node == nid)]


def free_blocks(m: Machine) -> np.ndarray:
    """Free blocks per [zone, migratetype, order] (numbers of blocks, not pages)."""
    return m.buddy.nr_free_counts()


def buddyinfo(m: Machine) -> str:
    per = free_blocks(m).sum(axis=1)
    out = []
    for z in populated_zones(m):
        out.append(f"Node {z.node}, zone {z.name:>8s} " + "".join(f"{int(n):6d} " for n in per[z.index]) + "\n")
    return "".join(out)


def pageblock_counts(m: Machine) -> np.ndarray:
    """Pageblocks per [zone, migratetype], counting blocks whose first page is present."""
    pbo = m.pageblock_order
    counts = np.zeros((m.nr_zones, MIGRATE_TYPES), np.int64)
    for s, e in m.present_ranges:
        first = (s + (1 << pbo) - 1) >> pbo  # blocks whose first page lies in [s, e)
        last = (e - 1) >> pbo
        if last < first:
            continue
        zones = m.pb_zone[first : last + 1].astype(np.int64)
        mts = m.pb_mt[first : last + 1].astype(np.int64)
        ok = zones < m.nr_zones
        np.add.at(counts, (zones[ok], mts[ok]), 1)
    return counts


def pagetypeinfo(m: Machine, sections: Iterable[PagetypeinfoSection] = ()) -> str:
    """``/proc/pagetypeinfo`` per node, read-only: one moment, as buddyinfo shows it.

    The free counts are read as they are (per-CPU pages are not on the free
    lists, as in buddyinfo).  Clients' sections must not change the machine
    either: page_owner's mixed-block count, which the kernel reads after a
    drain, is computed so that it equals the drained figures without draining.
    (On a kernel with several nodes, that drain happens after node 0's free
    counts are printed, so later nodes' counts are read after it; here every
    node shows the same moment.)
    """
    fb = free_blocks(m)
    bc = pageblock_counts(m)
    sections = list(sections)
    out = []
    for n in m.geometry.nodes:
        zones = populated_zones(m, n.nid)
        if not zones:
            continue
        out.append(f"Page block order: {m.pageblock_order}\n")
        out.append(f"Pages per block:  {1 << m.pageblock_order}\n\n")
        out.append(f"{'Free pages count per migrate type at order':<43s} " + "".join(f"{o:6d} " for o in range(m.nr_orders)) + "\n")
        for z in zones:
            for mt in range(MIGRATE_TYPES):
                cells = []
                for o in range(m.nr_orders):
                    c = int(fb[z.index, mt, o])
                    cells.append(f">{FREECOUNT_CAP:6d} " if c >= FREECOUNT_CAP else f"{c:6d} ")
                out.append(f"Node {n.nid:4d}, zone {z.name:>8s}, type {MIGRATETYPE_NAMES[mt]:>12s} " + "".join(cells) + "\n")
        out.append(f"\n{'Number of blocks type ':<23s}" + "".join(f"{name:>12s} " for name in MIGRATETYPE_NAMES) + "\n")
        for z in zones:
            out.append(f"Node {n.nid}, zone {z.name:>8s} " + "".join(f"{int(c):12d} " for c in bc[z.index]) + "\n")
        for section in sections:
            out.append(section(m, n.nid))
    return "".join(out)


# /proc/meminfo's lines in 6.12's order (fs/proc/meminfo.c ``meminfo_proc_show``) for a distro
# x86_64 config: ZSWAP, MEMORY_FAILURE, THP, CMA, UNACCEPTED_MEMORY and hugetlb built in, no
# HIGHMEM.  Lines for what the model does not have (page cache, swap, slab, anon LRU, page
# tables, vmalloc, hugetlb pages) are 0.
MEMINFO_LINES: tuple[str, ...] = (
    "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached",
    "Active", "Inactive", "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)",
    "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Zswap", "Zswapped",
    "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem", "KReclaimable", "Slab", "SReclaimable",
    "SUnreclaim", "KernelStack", "PageTables", "SecPageTables", "NFS_Unstable", "Bounce",
    "WritebackTmp", "CommitLimit", "Committed_AS", "VmallocTotal", "VmallocUsed", "VmallocChunk",
    "Percpu", "HardwareCorrupted", "AnonHugePages", "ShmemHugePages", "ShmemPmdMapped",
    "FileHugePages", "FilePmdMapped", "CmaTotal", "CmaFree", "Unaccepted",
    "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp", "Hugepagesize", "Hugetlb",
    "DirectMap4k", "DirectMap2M",
)
VMALLOC_TOTAL_KB = 34359738367  # x86_64, 4-level paging: VMALLOC_END - VMALLOC_START
OVERCOMMIT_RATIO = 50  # vm.overcommit_ratio's default
HPAGE_KB = 2048


def si_mem_available(m: Machine) -> int:
    """``si_mem_available`` (mm/show_mem.c) in pages: free minus the reserve, plus reclaimable page cache
    and slab (none in this model), never below 0.  Per-CPU and isolated pages are not free here."""
    return max(0, m.nr_free_pages - m.totalreserve_pages)


def meminfo(m: Machine) -> str:
    """``/proc/meminfo`` as 6.12 prints it: its lines, order and format; ``MemAvailable`` by ``si_mem_available``.

    ``show_val_kb``: the label and colon padded to 16 columns, the value in kB
    right-aligned in 8, `` kB``; ``HardwareCorrupted`` has a 5-wide value and
    the ``HugePages_*`` counts no unit.  MemTotal is the managed pages
    (present minus memblock reservations), MemFree the buddy free pages
    (``NR_FREE_PAGES``: not the per-CPU lists, not guard pages).  What the
    kernel does not print here (per-CPU, guard, allocated, reserved pages) is
    in ``pageext_meminfo``.
    """
    kb = PAGE_SIZE // 1024
    managed = m.nr_present_pages - m.nr_reserved_pages
    present_kb = m.nr_present_pages * kb
    values = dict.fromkeys(MEMINFO_LINES, 0)
    values["MemTotal"] = managed * kb
    values["MemFree"] = m.nr_free_pages * kb
    values["MemAvailable"] = si_mem_available(m) * kb
    values["CommitLimit"] = managed * OVERCOMMIT_RATIO // 100 * kb  # no swap, no hugetlb pages
    values["VmallocTotal"] = VMALLOC_TOTAL_KB
    values["Hugepagesize"] = HPAGE_KB
    # x86 maps the direct map with 4k pages only under debug_pagealloc; else with 2M pages where aligned.
    if m.debug_pagealloc_enabled:
        values["DirectMap4k"] = present_kb
    else:
        values["DirectMap2M"] = present_kb // HPAGE_KB * HPAGE_KB
        values["DirectMap4k"] = present_kb - values["DirectMap2M"]
    out = []
    for name in MEMINFO_LINES:
        v = values[name]
        if name == "HardwareCorrupted":
            out.append(f"HardwareCorrupted: {v:5d} kB\n")
        elif name.startswith("HugePages_"):
            out.append(f"{name + ':':<19s}{v:5d}\n")
        else:
            out.append(f"{name + ':':<16s}{v:8d} kB\n")
    return "".join(out)


def pageext_meminfo(m: Machine) -> str:
    """pageext's own memory figures, in meminfo's shape: the ones ``/proc/meminfo`` does not print.

    Present and reserved pages, pages on per-CPU lists (not free in
    ``MemFree``), allocated pages, guard pages (held by the guard client),
    and free pages in isolated pageblocks (not free in ``MemFree`` either).
    Present = MemFree + these (the sum is checked by the tests).
    """
    kb = PAGE_SIZE // 1024
    rows = [
        ("Present", m.nr_present_pages),
        ("Reserved", m.nr_reserved_pages),
        ("Allocated", m.nr_allocated_pages),
        ("PerCPULists", m.nr_pcp_pages),
        ("GuardPages", m.nr_held_pages),
        ("IsolatedFree", nr_isolated_free_pages(m)),
    ]
    return "".join(f"{name + ':':<16s}{value * kb:8d} kB\n" for name, value in rows)


def nr_isolated_free_pages(m: Machine) -> int:
    """Free pages on MIGRATE_ISOLATE free lists (6.12 keeps them out of NR_FREE_PAGES)."""
    return m.nr_isolated_free_pages


def vmstat(m: Machine) -> str:
    """Counters in ``/proc/vmstat``'s ``name value`` shape.

    ``nr_free_pages`` is the kernel's; the others are the model's own, named
    so they cannot be mistaken for kernel counters that mean something else
    (the kernel's ``pgalloc_<zone>``/``pgfree`` count pages, these count calls).
    """
    rows = [
        ("nr_free_pages", m.nr_free_pages),
        ("pcp_pages", m.nr_pcp_pages),
        ("alloc_calls", m.nr_allocs),
        ("free_calls", m.nr_frees),
        ("alloc_failures", m.nr_alloc_failures),
        ("alloc_fallbacks", m.nr_fallbacks),
        ("pageblock_claims", m.nr_pageblock_claims),
    ]
    return "".join(f"{k} {v}\n" for k, v in rows)


def free_summary(m: Machine) -> dict[str, Any]:
    """Free-page statistics as plain data (for summary.json)."""
    fb = free_blocks(m)
    zones = []
    for z in populated_zones(m):
        per_mt = {MIGRATETYPE_NAMES[mt]: [int(x) for x in fb[z.index, mt]] for mt in range(MIGRATE_TYPES)}
        zones.append({
            "node": z.node,
            "zone": z.name,
            "present_pages": m.zone_present[z.index],
            "reserved_pages": m.zone_reserved[z.index],
            "free_pages": m.zone_nr_free_pages(z.index),
            "pcp_pages": m.zone_pcp[z.index],
            "held_pages": m.zone_held[z.index],
            "free_blocks_by_migratetype_and_order": per_mt,
        })
    return {
        "free_pages": m.nr_free_pages,
        "pcp_pages": m.nr_pcp_pages,
        "allocated_pages": m.nr_allocated_pages,
        "reserved_pages": m.nr_reserved_pages,
        "held_pages": m.nr_held_pages,
        "zones": zones,
    }


def _extfrag_lines(m: Machine, index: Callable[[np.ndarray], np.ndarray], fmt: Callable[[np.ndarray], str]) -> str:
    """One line per populated zone of every node with memory: ``Node %d, zone %8s `` and the values."""
    per = free_blocks(m).sum(axis=1)  # [zone, order], every migratetype (the kernel's nr_free)
    return "".join(f"Node {z.node}, zone {z.name:>8s} " + fmt(index(per[z.index])) + "\n" for z in populated_zones(m))


def unusable_index(m: Machine) -> str:
    """``/sys/kernel/debug/extfrag/unusable_index``: per zone and order, the free memory that cannot serve it."""
    from pageext_core.mm import extfrag

    return _extfrag_lines(m, extfrag.unusable_free_index, extfrag.format_unusable)


def extfrag_index(m: Machine) -> str:
    """``/sys/kernel/debug/extfrag/extfrag_index``: per zone and order, whether a failure would be fragmentation."""
    from pageext_core.mm import extfrag

    return _extfrag_lines(m, extfrag.fragmentation_index, extfrag.format_extfrag)
