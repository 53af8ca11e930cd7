"""``/proc/zoneinfo`` as Linux 6.12 prints it (``zoneinfo_show_print``, mm/vmstat.c).

Every zone of every node, populated or not, in zone order: free pages,
watermark boost, MIN/LOW/HIGH/PROMO, spanned/present/managed, CMA, the
``protection`` (lowmem_reserve) row; then, for populated zones, the zone
counters, each CPU's pageset (6.12's three lines ``count``/``high``/``batch``,
not the later form with ``high_min``/``high_max``) with its vmstat threshold,
``node_unreclaimable`` and ``start_pfn``.

What the model does not keep is left out rather than printed as a made-up
zero: the ``per-node stats`` block (LRU, slab, file counters...) and the
zone counters other than ``nr_free_pages``; the NUMA counters.  Parse by
label, as the kernel's own format changes between versions.  Reading it
changes nothing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pageext_core.mm.watermarks import WMARK_HIGH, WMARK_LOW, WMARK_MIN, WMARK_PROMO, vm_stats_threshold

if TYPE_CHECKING:
    from pageext_core.mm.machine import Machine


def zoneinfo(m: Machine) -> str:
    """The text of ``/proc/zoneinfo`` for the machine as it is now."""
    cpus = m.geometry.config.cpus
    out: list[str] = []
    for node in m.geometry.nodes:
        for z in sorted((z for z in m.geometry.zones if z.node == node.nid), key=lambda z: z.ztype):
            i = z.index
            managed = m.zone_managed(i)
            wm = m.zone_wmark[i]
            boost = 0  # watermark boosting is not modelled
            lines = [
                f"Node {node.nid}, zone {z.name:>8s}",
                f"  pages free     {m.zone_free[i]}",
                f"        boost    {boost}",
                f"        min      {wm[WMARK_MIN] + boost}",
                f"        low      {wm[WMARK_LOW] + boost}",
                f"        high     {wm[WMARK_HIGH] + boost}",
                f"        promo    {wm[WMARK_PROMO] + boost}",
                f"        spanned  {z.spanned_pages}",
                f"        present  {m.zone_present[i]}",
                f"        managed  {managed}",
                "        cma      0",
                "        protection: (" + ", ".join(str(r) for r in m.zone_protection[i]) + ")",
            ]
            if m.zone_present[i]:
                lines.append(f"      {'nr_free_pages':<12s} {m.zone_free[i]}")
                lines.append("  pagesets")
                threshold = vm_stats_threshold(managed, cpus)
                for cpu in range(cpus):
                    count, high, batch = m.pcp_stats(cpu, i)
                    lines += [f"    cpu: {cpu}",
                              f"              count: {count}",
                              f"              high:  {high}",
                              f"              batch: {batch}",
                              f"  vm stats threshold: {threshold}"]
                lines += ["  node_unreclaimable:  0",  # no reclaim: kswapd never fails
                          f"  start_pfn:           {z.start_pfn}"]
            out.append("\n".join(lines) + "\n")
    return "".join(out)
