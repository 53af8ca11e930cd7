"""Memory hotplug: memory blocks going online and offline, and the notifiers told about it.

A ``Hotplug`` belongs to one machine (``machine.hotplug``).  It checks a
request, tells the notifiers (a notifier that fails going-online or
going-offline cancels the event with nothing changed: page_ext's tables roll
back this way), and asks the machine for each change: presence
(``set_present``), migration and page contents, and asks the allocator
(``machine.buddy``) for every free-list change: ``add_memory``,
``remove_memory``, ``isolate_range`` / ``unisolate_range``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pageext_core.mm.buddy import PageKind
from pageext_core.mm.constants import PAGE_SIZE
from pageext_core.mm.errors import HotplugError
from pageext_core.mm.geometry import _intersect as intersect

if TYPE_CHECKING:
    from pageext_core.mm.machine import Machine

MEM_GOING_ONLINE = "going-online"
MEM_ONLINE = "online"
MEM_CANCEL_ONLINE = "cancel-online"
MEM_GOING_OFFLINE = "going-offline"
MEM_OFFLINE = "offline"
MEM_CANCEL_OFFLINE = "cancel-offline"

MemoryNotifier = Callable[[str, int, int], None]


@dataclass
class MemoryBlock:
    """A hot-pluggable unit (``/sys/devices/system/memory/memoryN``)."""

    index: int
    start_pfn: int
    end_pfn: int
    online: bool
    hotplug: bool  # hot-pluggable memory (offline at boot), not boot RAM

    @property
    def nr_pages(self) -> int:
        return self.end_pfn - self.start_pfn


class Hotplug:
    """One machine's memory blocks and hotplug notifiers."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.notifiers: list[MemoryNotifier] = []
        self._blocks: list[MemoryBlock] | None = None
        self._blocks_by_id: dict[int, MemoryBlock] = {}

    @property
    def blocks(self) -> list[MemoryBlock]:
        """Boot RAM and hot-pluggable memory, in memory-block units, by address.

        A block's ``index`` is the kernel's: its start address divided by the
        block size (``/sys/devices/system/memory/memoryN``).
        """
        if self._blocks is None:
            g = self.m.geometry
            size = (self.m.config.memory_block_size or (1 << self.m.config.section_size_bits)) // PAGE_SIZE
            starts: set[int] = set()
            for lo, hi in g.ram:
                starts.update(range(lo // size * size, hi, size))
            blocks = [MemoryBlock(start // size, start, start + size, True, False) for start in sorted(starts)]
            blocks += [MemoryBlock(lo // size, lo, hi, False, True) for lo, hi in g.hotplug_blocks]
            self._blocks = blocks
            self._blocks_by_id = {b.index: b for b in blocks}
        return self._blocks

    def _block(self, index: int) -> MemoryBlock:
        blk = self._blocks_by_id.get(index) if self.blocks else None
        if blk is None:
            ids = sorted(self._blocks_by_id)
            raise HotplugError(f"memory block {index}: this machine has no such block "
                               f"(memory{ids[0]}..memory{ids[-1]}; see machine.memory_blocks)")
        return blk

    def _notify(self, event: str, start: int, nr: int, notifiers: Sequence[MemoryNotifier] | None = None) -> None:
        for fn in (self.notifiers if notifiers is None else notifiers):
            fn(event, start, nr)

    def online(self, index: int) -> None:
        """Bring a memory block online; a notifier's failure cancels it with nothing changed."""
        blk = self._block(index)
        if blk.online:
            raise HotplugError(f"memory block {index} [{blk.start_pfn:#x}, {blk.end_pfn:#x}) is already online")
        m = self.m
        ranges = [(blk.start_pfn, blk.end_pfn)] if blk.hotplug else intersect(m.geometry.ram, blk.start_pfn, blk.end_pfn)
        start, nr = blk.start_pfn, blk.nr_pages
        for fn in self.notifiers:
            try:
                fn(MEM_GOING_ONLINE, start, nr)
            except Exception as exc:
                self._notify(MEM_CANCEL_ONLINE, start, nr)
                m.log.warn(f"pageext: memory block {index}: online failed: {exc}")
                raise HotplugError(f"memory block {index} [{start:#x}, {blk.end_pfn:#x}): online failed: {exc}") from exc
        m.set_present(ranges, True)
        m.buddy.add_memory(ranges)
        blk.online = True
        self._notify(MEM_ONLINE, start, nr)
        for c in m.callouts.online:  # clients that follow hot-added memory (debug_pagealloc poisons it)
            c.fn(start, nr)
        m.log.info(f"pageext: memory block {index}: online [mem {start * PAGE_SIZE:#018x}-{blk.end_pfn * PAGE_SIZE - 1:#018x}]")

    def offline(self, index: int, migrate: bool = False) -> None:
        """Take a memory block offline.

        Without ``migrate``, any page in use makes it fail (-EBUSY) with
        nothing changed.  With ``migrate`` it does what the kernel does: the
        block's pageblocks are isolated (nothing new is allocated there) and
        its movable allocations are migrated out (reason ``memory_hotplug``);
        an unmovable, reserved or held page still fails it (-EBUSY), and so
        does a migration with nowhere to go (-ENOMEM): the isolation is then
        undone, and blocks already migrated stay where they went, as in the
        kernel.
        """
        blk = self._block(index)
        if not blk.online:
            raise HotplugError(f"memory block {index} is already offline")
        m = self.m
        start, end = blk.start_pfn, blk.end_pfn
        m.buddy.drain_all_pages()
        seg = m.state[start:end]
        kinds = seg >> 4
        busy_mask = (kinds != PageKind.FREE) & (kinds != PageKind.NONE)
        if migrate:
            busy_mask &= kinds != PageKind.ALLOCATED_MOVABLE
        busy = np.flatnonzero(busy_mask)
        if busy.size:
            p = start + int(busy[0])
            k = int(kinds[busy[0]])
            hint = "it cannot be migrated" if migrate else "free it, or offline with migration"
            raise HotplugError(
                f"memory block {index}: offline failed (-EBUSY): pfn {p:#x} is {PageKind(k).label} "
                f"(order {int(seg[busy[0]]) & 15}); {hint}")
        saved = m.buddy.isolate_range(start, end) if migrate else None
        try:
            if migrate:
                self._migrate_out(index, start, end)
            for fn in self.notifiers:
                try:
                    fn(MEM_GOING_OFFLINE, start, end - start)
                except Exception as exc:
                    self._notify(MEM_CANCEL_OFFLINE, start, end - start)
                    raise HotplugError(f"memory block {index}: offline vetoed: {exc}") from exc
        except BaseException:
            if saved is not None:
                m.buddy.unisolate_range(start, end, saved)
            raise
        ranges = intersect(m.present_ranges, start, end)
        m.buddy.remove_memory(start, end, ranges)
        m.contents.forget(ranges)
        m.set_present(ranges, False)
        blk.online = False
        self._notify(MEM_OFFLINE, start, end - start)
        m.log.info(f"pageext: memory block {index}: offline [mem {start * PAGE_SIZE:#018x}-{end * PAGE_SIZE - 1:#018x}]")

    def _migrate_out(self, index: int, start: int, end: int) -> None:
        m = self.m
        heads = np.flatnonzero((m.state[start:end] >> 4) == PageKind.ALLOCATED_MOVABLE)
        pages = 0
        for off in heads.tolist():
            p = start + off
            o = int(m.state[p]) & 15
            if m.migrate_pages(p, o, "memory_hotplug") is None:
                raise HotplugError(f"memory block {index}: offline failed (-ENOMEM): nowhere outside the block "
                                   f"to migrate pfn {p:#x} (order {o}) to")
            pages += 1 << o
        m.drain_all_pages()
        if heads.size:
            m.log.info(f"pageext: memory block {index}: migrated {heads.size} blocks ({pages} pages) out before offlining")
