"""Zone watermarks, lowmem_reserve and per-CPU list sizes, as Linux 6.12 computes them.

Pure functions of zone sizes (no machine state): the allocator calls them at
boot and after memory hotplug (``init_per_zone_wmark_min`` in the kernel)
and keeps the results in plain lists, so the check on every allocation is a
comparison of a zone's free-page counter with a precomputed number.

What follows the kernel (mm/page_alloc.c, 6.12):

- ``calculate_min_free_kbytes``: ``int_sqrt(lowmem_kbytes * 16)`` clamped to
  128..262144 kB, where lowmem is ``nr_free_buffer_pages()`` (managed pages
  minus HIGH of the zones up to Normal, over the zonelist of every node).
  khugepaged's raise (``set_recommended_min_free_kbytes``) is not applied:
  the machine has THP compiled in (the pcp THP lists) but no khugepaged.
- ``__setup_per_zone_wmarks``: MIN, LOW, HIGH, PROMO with
  ``watermark_scale_factor`` (default 10); Movable zones get
  ``clamp(managed / 1024, 32, 128)`` as MIN.  ``watermark_boost`` stays 0:
  boosting is undone by kswapd, which is not modelled, so a boost would only
  ever grow.
- ``setup_per_zone_lowmem_reserve``: ``lowmem_reserve_ratio`` (256, 256, 32, 0).
- ``zone_batchsize``/``zone_highsize`` and the high_min/high_max pair of
  ``zone_set_pageset_high_and_batch`` (``percpu_pagelist_high_fraction`` 0).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from pageext_core.mm.constants import PAGE_SHIFT, ZONE_MOVABLE, ZONE_NORMAL

# Watermark indexes (enum zone_watermarks) and alloc_flags bits (mm/internal.h).
WMARK_MIN: Final = 0
WMARK_LOW: Final = 1
WMARK_HIGH: Final = 2
WMARK_PROMO: Final = 3
ALLOC_WMARK_MIN: Final = WMARK_MIN
ALLOC_WMARK_LOW: Final = WMARK_LOW
ALLOC_WMARK_HIGH: Final = WMARK_HIGH
ALLOC_NO_WATERMARKS: Final = 0x04
ALLOC_WMARK_MASK: Final = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM: Final = 0x08
ALLOC_NON_BLOCK: Final = 0x10
ALLOC_MIN_RESERVE: Final = 0x20
ALLOC_CPUSET: Final = 0x40
ALLOC_CMA: Final = 0x80
ALLOC_NOFRAGMENT: Final = 0x100
ALLOC_HIGHATOMIC: Final = 0x200
ALLOC_KSWAPD: Final = 0x800
ALLOC_RESERVES: Final = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

WATERMARK_SCALE_FACTOR: Final = 10  # vm.watermark_scale_factor
LOWMEM_RESERVE_RATIO: Final = (256, 256, 32, 0)  # vm.lowmem_reserve_ratio: DMA, DMA32, Normal, Movable
MIN_FREE_KBYTES_RANGE: Final = (128, 262144)
PERCPU_PAGELIST_HIGH_FRACTION: Final = 0  # vm.percpu_pagelist_high_fraction (default: auto-tuned)
MIN_PERCPU_PAGELIST_HIGH_FRACTION: Final = 8
PCP_BATCH_SCALE_MAX: Final = 5  # CONFIG_PCP_BATCH_SCALE_MAX
SWAP_CLUSTER_MAX: Final = 32


def calculate_min_free_kbytes(lowmem_pages: int) -> int:
    """``calculate_min_free_kbytes``: sqrt(16 x lowmem in kB), clamped to 128..262144."""
    lowmem_kbytes = lowmem_pages << (PAGE_SHIFT - 10)
    lo, hi = MIN_FREE_KBYTES_RANGE
    return min(max(math.isqrt(lowmem_kbytes * 16), lo), hi)


def zone_watermarks(managed: Sequence[int], ztypes: Sequence[int], min_free_kbytes: int,
                    scale_factor: int = WATERMARK_SCALE_FACTOR) -> list[tuple[int, int, int, int]]:
    """``__setup_per_zone_wmarks``: (MIN, LOW, HIGH, PROMO) per zone, from every zone's managed pages."""
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    lowmem = sum(n for n, zt in zip(managed, ztypes, strict=True) if zt != ZONE_MOVABLE)
    out = []
    for n, zt in zip(managed, ztypes, strict=True):
        tmp = pages_min * n // lowmem if lowmem else 0
        wmin = min(max(n // 1024, SWAP_CLUSTER_MAX), 128) if zt == ZONE_MOVABLE else tmp
        step = max(tmp >> 2, n * scale_factor // 10000)
        out.append((wmin, wmin + step, wmin + 2 * step, wmin + 3 * step))
    return out


def calculate_totalreserve_pages(managed: Sequence[int], wmarks: Sequence[tuple[int, int, int, int]],
                                 protection: Sequence[Sequence[int]]) -> int:
    """``calculate_totalreserve_pages``: per zone, its largest lowmem_reserve plus its HIGH mark, at most managed.

    What ``si_mem_available`` (MemAvailable) holds back from the free pages.
    """
    total = 0
    for n, wm, prot in zip(managed, wmarks, protection, strict=True):
        total += min(max(prot, default=0) + wm[WMARK_HIGH], n)
    return total


def lowmem_reserve(managed: Sequence[int], ratios: Sequence[int] = LOWMEM_RESERVE_RATIO) -> list[list[int]]:
    """``setup_per_zone_lowmem_reserve`` for one node's zones (by zone type): protection[i][j]."""
    nz = len(managed)
    out = [[0] * nz for _ in range(nz)]
    for i in range(nz - 1):
        ratio = ratios[i]
        if ratio < 1 or not managed[i]:
            continue
        upper = 0
        for j in range(i + 1, nz):
            upper += managed[j]
            out[i][j] = upper // ratio
    return out


def zone_batchsize(managed_pages: int) -> int:
    """``zone_batchsize``: about a quarter of a 1/1024 share (at most 1 MiB), a 2^n-1 value, at least 1."""
    batch = min(managed_pages >> 10, (1 << 20) >> PAGE_SHIFT) // 4
    if batch < 1:
        batch = 1
    batch = batch + batch // 2
    return max(1, (1 << (batch.bit_length() - 1)) - 1)


def zone_highsize(managed_pages: int, low_wmark: int, batch: int, node_cpus: int, online_cpus: int,
                  fraction: int) -> int:
    """``zone_highsize``: the zone's LOW mark (or managed/fraction) split over its node's CPUs, >= 4 x batch."""
    total = managed_pages // fraction if fraction else low_wmark
    split = node_cpus or online_cpus
    return max(total // split, batch << 2)


def pageset_high_limits(managed_pages: int, low_wmark: int, batch: int, node_cpus: int,
                        online_cpus: int, fraction: int = PERCPU_PAGELIST_HIGH_FRACTION) -> tuple[int, int]:
    """``zone_set_pageset_high_and_batch``: (high_min, high_max) for every CPU's pcp of a zone."""
    if fraction:
        h = zone_highsize(managed_pages, low_wmark, batch, node_cpus, online_cpus, fraction)
        return h, h
    return (zone_highsize(managed_pages, low_wmark, batch, node_cpus, online_cpus, 0),
            zone_highsize(managed_pages, low_wmark, batch, node_cpus, online_cpus,
                          MIN_PERCPU_PAGELIST_HIGH_FRACTION))


def vm_stats_threshold(managed_pages: int, online_cpus: int) -> int:
    """``calculate_normal_threshold``: the vmstat per-CPU drift zoneinfo prints (at most 125)."""
    mem = managed_pages >> (27 - PAGE_SHIFT)
    return min(125, 2 * online_cpus.bit_length() * (1 + mem.bit_length()))


def gfp_to_alloc_flags(gfp_mask: int) -> int:
    """``gfp_to_alloc_flags`` (the slow path's flags): MIN mark, __GFP_HIGH's reserve, non-blocking."""
    from pageext_core.mm import gfp as G

    flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    if gfp_mask & G.__GFP_HIGH:
        flags |= ALLOC_MIN_RESERVE
    if gfp_mask & G.__GFP_KSWAPD_RECLAIM:
        flags |= ALLOC_KSWAPD
    if not gfp_mask & G.__GFP_DIRECT_RECLAIM:
        if not gfp_mask & G.__GFP_NOMEMALLOC:
            flags |= ALLOC_NON_BLOCK
        if flags & ALLOC_MIN_RESERVE:
            flags &= ~ALLOC_CPUSET
    return flags


def is_lowmem_type(ztype: int) -> bool:
    """Zones counted by ``nr_free_buffer_pages`` (GFP_USER's highest zone is Normal)."""
    return ztype <= ZONE_NORMAL
