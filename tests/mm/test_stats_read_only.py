"""The machine's own reports only read it (issue 11, section 2), with pages on per-CPU lists.

Per-CPU pages are the state a drain would change: the free lists, the
pageblock types and the free counts.  Here there are some, on two CPUs and
two nodes, and every stats function leaves the machine as it was and agrees
with the others: buddyinfo's and pagetypeinfo's free pages are MemFree.
"""
from __future__ import annotations

import re

from pageext_core.mm import Machine, MachineConfig, MiB, stats
from pageext_core.mm import gfp as G
from pageext_core.mm.zoneinfo import zoneinfo

TWO_NODES = MachineConfig(memory=128 * MiB, nodes=2, cpus=2, section_size_bits=23,
                          x86_holes=False, kernel_image=0, reserve_memmap=False)


def busy() -> Machine:
    m = Machine(TWO_NODES)
    live = []
    for cpu in (0, 1):
        m.cpu = cpu
        for i in range(40):
            gfp = (G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE)[i % 2]
            live.append((m.alloc_pages(gfp, i % 3), i % 3))
        for pfn, order in live[::3]:
            m.free_pages(pfn, order)
        live = live[1::3]
    assert m.nr_pcp_pages > 0
    return m


def test_every_stats_function_leaves_the_machine_as_it_was(snapshot) -> None:
    m = busy()
    snap = snapshot(m)
    texts = [stats.buddyinfo(m), stats.pagetypeinfo(m), stats.meminfo(m), stats.vmstat(m), zoneinfo(m), stats.pageext_meminfo(m)]
    summary = stats.free_summary(m)
    snap.assert_unchanged()
    assert [stats.buddyinfo(m), stats.pagetypeinfo(m), stats.meminfo(m), stats.vmstat(m), zoneinfo(m), stats.pageext_meminfo(m)] == texts
    assert stats.free_summary(m) == summary


def test_buddyinfo_and_pagetypeinfo_free_pages_are_memfree() -> None:
    m = busy()
    memfree_kb = int(re.search(r"^MemFree:\s+(\d+) kB$", stats.meminfo(m), re.M).group(1))
    buddy = sum(sum(int(c) << o for o, c in enumerate(line.split()[4:]))
                for line in stats.buddyinfo(m).splitlines())
    pti = sum(sum(int(c) << o for o, c in enumerate(mt.group(1).split()))
              for mt in re.finditer(r"^Node\s+\d+, zone\s+\S+, type\s+\S+((?:\s+\d+)+)\s*$",
                                    stats.pagetypeinfo(m), re.M))
    assert buddy == pti == memfree_kb // 4 == m.nr_free_pages
    assert stats.buddyinfo(m).count("Node 1,") >= 1  # both nodes are in it


def test_zoneinfo_agrees_with_memfree_and_the_per_cpu_counts() -> None:
    m = busy()
    text = zoneinfo(m)
    free = sum(int(x) for x in re.findall(r"^  pages free     (\d+)$", text, re.M))
    assert free == m.nr_free_pages
    counts = sum(int(x) for x in re.findall(r"^              count: (\d+)$", text, re.M))
    assert counts == m.nr_pcp_pages > 0
    assert text.count("Node 1, zone") == 4  # every zone of both nodes, populated or not
