"""Helpers for the guard client's tests; ``from guardsupport import ...``.

``TINY`` is 64 MiB with no holes and nothing reserved: the DMA zone is pfns
[0, 4096) = four free order-10 blocks, and the page_ext tables (SPARSEMEM,
``GFP_KERNEL``) come out of DMA32, so DMA stays untouched after boot.  Its
per-CPU batch is 1 (4096 managed pages: 4096 >> 10 = 4, quartered to 1), so
an order-0 ``GFP_DMA`` request takes exactly one page from the buddy lists.
Requests are served from the lowest pfn first.

Two client stacks:

- ``installed``: every installed client, as users run it (the real
  debug_pagealloc poisons and unmaps free pages);
- ``isolated``: debug_pagealloc replaced by ``StubDebugPagealloc``, which owns
  the parameter and only maps allocated blocks and unmaps freed ones, so the
  guard tests do not depend on the real client's work in progress.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import pageext_core as pc
from pageext_core import BootParam, hookimpl
from pageext_core.mm import MachineConfig, MiB
from pageext_core.mm import buddy as _b
from pageext_core.mm.dump_page import page_private
from pageext_core.mm.gfp import parse_gfp

TINY = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
DMA_ZONE = 0
GFP_DMA = parse_gfp("GFP_DMA")
GFP_DMA_MOVABLE = parse_gfp("GFP_DMA|__GFP_MOVABLE")
STACKS = ("installed", "isolated")


class StubDebugPagealloc:
    """Owns ``debug_pagealloc``; keeps allocated blocks mapped and free ones unmapped, nothing else."""

    name = "debug_pagealloc"

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("debug_pagealloc", "bool", False, "stub for the guard tests", key="enabled")]

    @hookimpl
    def pageext_need(self, boot: pc.BootConfig) -> bool:
        return bool(boot["debug_pagealloc"])

    @hookimpl
    def pageext_init(self, machine: Any) -> None:
        self.contents = machine.contents
        self.contents.unmap_mask(machine.free_pages_mask())

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int) -> None:
        self.contents.map(pfn, 1 << order)

    @hookimpl
    def pageext_on_free(self, pfn: int, order: int) -> None:
        self.contents.unmap(pfn, 1 << order)


class ParamOnlyDebugPagealloc:
    """Owns ``debug_pagealloc`` and does nothing: every page stays mapped unless the guard client unmaps it."""

    name = "debug_pagealloc"

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("debug_pagealloc", "bool", False, "stub for the guard tests", key="enabled")]

    @hookimpl
    def pageext_need(self, boot: pc.BootConfig) -> bool:
        return bool(boot["debug_pagealloc"])


class FakeOwner:
    """Stands in for page_owner's ``dump_page_owner`` (needed whenever it is given)."""

    name = "fake_owner"

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_dump_page(self, pfn: int) -> str:
        return f"page_owner tracks the page as allocated\nFAKE OWNER DUMP pfn {pfn:#x}"


def boot(cmdline: str, stack: str = "installed", config: MachineConfig = TINY, plugins: list[Any] = (),
         **kw: Any) -> pc.PageExt:
    """Boot ``config`` with the given client stack (see the module docstring)."""
    if stack == "isolated":
        return pc.boot(config, cmdline, blocked=["debug_pagealloc", "page_owner"],
                       plugins=[StubDebugPagealloc(), *plugins], **kw)
    return pc.boot(config, cmdline, plugins=list(plugins), **kw)


def guard_of(pe: pc.PageExt) -> Any:
    return pe.plugin("guard")


def held_blocks(m: Any, lo: int = 0, hi: int | None = None) -> dict[int, int]:
    """{head pfn: order} of every held block in [lo, hi), from the allocator's own state."""
    seg = m.state[lo:hi]
    heads = np.flatnonzero((seg >> 4) == _b.K_HELD)
    return {lo + int(h): int(seg[h] & 15) for h in heads}


def free_blocks(m: Any, lo: int = 0, hi: int | None = None) -> dict[int, int]:
    seg = m.state[lo:hi]
    heads = np.flatnonzero((seg >> 4) == _b.K_FREE)
    return {lo + int(h): int(seg[h] & 15) for h in heads}


def flagged_heads(pe: pc.PageExt) -> dict[int, int]:
    """{pfn: order} of every page carrying the GUARD bit (page_ext); the order is the machine's (page private)."""
    view = pe.client("guard").view
    out: dict[int, int] = {}
    for base, _, flags in view.scan():
        for i in np.flatnonzero(flags).tolist():
            out[base + i] = page_private(pe.machine, base + i)
    return out


def check_guards_consistent(pe: pc.PageExt) -> None:
    """Every held block is one of our guards (flag + order on its head), every guard page unmapped."""
    m = pe.machine
    held = held_blocks(m)
    assert flagged_heads(pe) == held
    mapped = [p for h, o in held.items() for p in range(h, h + (1 << o)) if m.contents.is_mapped(p)]
    assert not mapped, f"guard pages still mapped: {mapped[:8]}"
