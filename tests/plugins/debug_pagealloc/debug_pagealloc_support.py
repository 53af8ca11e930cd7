"""Helpers for the debug_pagealloc tests: small machines booted the way users boot them.

``boot_dpa`` boots with only this client (so work in progress elsewhere
cannot break these tests); ``boot_installed`` boots with every installed
client, as ``pageext run`` does.  ``free_then_alloc`` plants bytes in a
free page and hands the very same page out again (the per-CPU list is a
stack: an order-0 page freed on a CPU is the next one that CPU allocates).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

import pageext_core as pc
from pageext_core.mm import MachineConfig, MiB
from pageext_core.mm.gfp import GFP_KERNEL
from pageext_debug_pagealloc.plugin import DebugPagealloc

# 64 MiB, no holes, nothing reserved: pfns 0..16383, DMA [0, 4096), DMA32 above.
SMALL = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
POISON = 0xAA


def boot_dpa(cmdline: str = "debug_pagealloc=on page_poison=on", *, extra: Iterable[Any] = (),
             config: MachineConfig = SMALL, **kw: Any) -> pc.PageExt:
    """Boot SMALL with this client (and ``extra`` clients) only; by default both mechanisms, as the default session."""
    return pc.boot(config, cmdline, plugins=[DebugPagealloc(), *extra], autoload=False, strict=True, **kw)


def boot_installed(cmdline: str, config: MachineConfig = SMALL) -> pc.PageExt:
    """Boot with every installed client, discovered from entry points."""
    return pc.boot(config, cmdline)


def client(pe: pc.PageExt) -> DebugPagealloc:
    return pe.plugin("debug_pagealloc")


def free_then_alloc(pe: pc.PageExt, plant: dict[int, bytes], gfp: int = GFP_KERNEL) -> int:
    """Allocate a page, free it, write ``{offset: bytes}`` into it behind the MMU, allocate it again."""
    m = pe.machine
    p = m.alloc_pages(gfp, 0)
    m.free_pages(p, 0)
    for off, data in plant.items():
        m.contents.write_phys(p, off, data)
    q = m.alloc_pages(gfp, 0)
    assert q == p, "the per-CPU list should hand back the page just freed"
    return p


def never_allocated_free_pfn(pe: pc.PageExt) -> int:
    """The highest free pfn: the allocator hands out low pfns first, so nobody has had it."""
    return int(np.flatnonzero(pe.machine.free_pages_mask())[-1])


def log_lines(pe: pc.PageExt, needle: str) -> list[str]:
    return pe.machine.log.grep(needle)


def headlines(pe: pc.PageExt) -> list[str]:
    """Log lines that start a debug_pagealloc report: ``pagealloc: ...`` (the kernel's poison reports) or
    ``pageext: pagealloc: ...`` (pageext's own headline under a fault's oops)."""
    return [t.removeprefix("pageext: ") for _, _, t in pe.machine.log.lines
            if t.startswith(("pagealloc: ", "pageext: pagealloc: "))]
