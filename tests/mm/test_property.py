"""Stateful property test: random allocator workloads against a reference model.

A hypothesis ``RuleBasedStateMachine`` boots one of several small machines
(64 MiB flat, 64 MiB with hot-pluggable blocks, an x86 layout with holes and
reservations, two nodes, an 8 MiB machine without mobility grouping) and runs
random alloc / free / bad free / lock / drain / online / offline / split_page /
alloc_pages_exact / migrate sequences.  The reference model is a dict of live
blocks (head pfn -> order).  After every step the allocator's own invariants
are checked, and the model must agree with the machine exactly; at the end
everything is freed and the machine must look as it did at boot.
"""
from __future__ import annotations

import functools

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pageext_core.mm import (
    NO_CALLOUTS,
    BadPageState,
    Callout,
    Callouts,
    HotplugError,
    Machine,
    MachineConfig,
    MiB,
    MMError,
    check_invariants,
    flags_mask,
    stats,
)
from pageext_core.mm import gfp as G
from pageext_core.mm.buddy import K_ALLOC, K_ALLOC_MOVABLE
from pageext_core.mm.constants import ZONE_DMA
from pageext_core.mm.pageflags import PG_head
from tests.mm.conftest import free_lists, pcp_lists

NOWARN = G.__GFP_NOWARN
GFPS = [
    G.GFP_KERNEL,
    G.GFP_KERNEL | NOWARN,
    G.GFP_KERNEL | G.__GFP_DMA | NOWARN,
    G.GFP_KERNEL | G.__GFP_DMA32 | NOWARN,
    G.GFP_HIGHUSER_MOVABLE,
    G.GFP_HIGHUSER_MOVABLE | G.__GFP_COMP | NOWARN,
    G.GFP_KERNEL | G.__GFP_RECLAIMABLE | NOWARN,
    G.GFP_USER | NOWARN,
    G.GFP_ATOMIC | NOWARN,
    G.GFP_KERNEL | G.__GFP_ZERO | NOWARN,
    G.GFP_KERNEL | G.__GFP_COMP | NOWARN,
    G.GFP_TRANSHUGE,
]
ORDERS = [0] * 8 + [1] * 4 + [2] * 4 + [3] * 3 + [4, 5, 6, 7, 8, 9, 9, 10]
LOCK = flags_mask("locked|writeback")
# ``G.__GFP_*`` would be name-mangled inside the class body
DMA_BIT, COMP_BIT, ZERO_BIT = G.__GFP_DMA, G.__GFP_COMP, G.__GFP_ZERO

SMALL = dict(x86_holes=False, kernel_image=0, reserve_memmap=False)
VARIANTS = {
    "flatmem-64M": MachineConfig(memory=64 * MiB, memory_model="FLATMEM", **SMALL),
    "hotplug-64M": MachineConfig(memory=64 * MiB, section_size_bits=23, hotplug=16 * MiB,
                                 dma32_limit=32 * MiB, **SMALL),
    "x86-memmap-hotplug-64M": MachineConfig(memory=64 * MiB, x86_holes=True, kernel_image=0, reserve_memmap=True,
                                            section_size_bits=23, hotplug=16 * MiB, dma32_limit=32 * MiB),
    "two-nodes-128M": MachineConfig(memory=128 * MiB, nodes=2, section_size_bits=23, cpus=2,
                                    x86_holes=False, kernel_image=0, reserve_memmap=True),
    "no-grouping-8M": MachineConfig(memory=8 * MiB, section_size_bits=23, cpus=1, **SMALL),
}


def guarded(fn):
    """Mark the machine broken when a step fails, so teardown does not hide the real error."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except BaseException:
            self.broken = True
            raise

    return wrapper


class AllocatorModel(RuleBasedStateMachine):
    broken = False

    @initialize(variant=st.sampled_from(sorted(VARIANTS)))
    def boot(self, variant: str) -> None:
        self.m = Machine(VARIANTS[variant])
        m = self.m
        self.live: dict[int, int] = {}  # head pfn -> order
        self.comp: set[int] = set()  # heads allocated with __GFP_COMP (order > 0)
        self.locked: set[int] = set()
        self.owned = np.zeros(m.geometry.max_pfn, np.bool_)
        self.boot_free = m.nr_free_pages
        self.boot_buddyinfo = stats.buddyinfo(m)
        self.boot_online = [b.online for b in m.memory_blocks]
        self.reserved = list(m.memblock_reserved)
        self.dma_end = m.config.dma_limit >> 12
        check_invariants(m)

    # -- helpers ---------------------------------------------------------------------------

    def _take(self, pfn: int, order: int, gfp: int) -> None:
        m = self.m
        n = 1 << order
        assert pfn % n == 0, f"pfn {pfn:#x} not aligned to order {order}"
        assert pfn >= 0 and pfn + n <= m.geometry.max_pfn
        assert not self.owned[pfn : pfn + n].any(), f"block {pfn:#x}/{order} overlaps a live block"
        assert all(m.pfn_valid(p) for p in (pfn, pfn + n - 1))
        zone = m.geometry.zones[m.zone_of(pfn)]
        assert zone.ztype <= m.gfp_zone(gfp), f"{zone.name} page for {G.format_gfp(gfp)}"
        if gfp & DMA_BIT:
            assert zone.ztype == ZONE_DMA and pfn + n <= self.dma_end
        self.owned[pfn : pfn + n] = True
        self.live[pfn] = order

    def _drop(self, pfn: int) -> None:
        order = self.live.pop(pfn)
        self.owned[pfn : pfn + (1 << order)] = False
        self.comp.discard(pfn)
        self.locked.discard(pfn)

    def _pick(self, data) -> int:
        return data.draw(st.sampled_from(sorted(self.live)))

    def _snapshot(self):
        m = self.m
        return (m.state.copy(), m.pflags.copy(), m.pb_mt.copy(), free_lists(m), list(m.zone_free),
                list(m.zone_pcp), pcp_lists(m), m.nr_allocs, m.nr_frees,
                m.clock_ns, [b.online for b in m.memory_blocks], m.present_ranges)

    def _same(self, before) -> None:
        after = self._snapshot()
        for a, b in zip(before, after):
            if isinstance(a, np.ndarray):
                assert np.array_equal(a, b)
            else:
                assert a == b

    # -- rules -----------------------------------------------------------------------------------

    @rule(gfp=st.sampled_from(GFPS), order=st.sampled_from(ORDERS), cpu=st.integers(0, 1))
    @guarded
    def alloc(self, gfp: int, order: int, cpu: int) -> None:
        m = self.m
        m.set_cpu(cpu % m.config.cpus)
        failures = m.nr_alloc_failures
        pfn = m.alloc_pages(gfp, order)
        if pfn is None:
            assert m.nr_alloc_failures == failures + 1
            return
        assert m.nr_alloc_failures == failures
        self._take(pfn, order, gfp)
        if gfp & COMP_BIT and order:
            self.comp.add(pfn)
        if gfp & ZERO_BIT:
            assert m.contents.find_mismatch(pfn, 1 << order, 0) == []
        else:
            m.write(pfn, 0, pfn.to_bytes(8, "little"))

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    @guarded
    def free(self, data) -> None:
        pfn = self._pick(data)
        m = self.m
        if pfn in self.locked:
            before = self._snapshot()
            try:
                m.free_pages(pfn, self.live[pfn])
            except BadPageState as exc:
                assert exc.pfn == pfn
            else:
                raise AssertionError("freeing a locked page did not fail")
            self._same(before)
            m.clear_page_flags(pfn, LOCK)
        m.set_cpu(data.draw(st.integers(0, m.config.cpus - 1)))
        order = self.live[pfn]
        # dirty the block: freeing keeps the bytes, a later __GFP_ZERO allocation must clear them
        m.write(pfn, 8, b"\xff" * 8)
        m.write(pfn + (1 << order) - 1, 4088, b"\xee" * 8)
        m.free_pages(pfn, order)
        self._drop(pfn)
        assert m.read(pfn, 8, 8) == b"\xff" * 8

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    @guarded
    def lock(self, data) -> None:
        pfn = self._pick(data)
        self.m.set_page_flags(pfn, LOCK)
        self.locked.add(pfn)

    @rule(data=st.data())
    @guarded
    def bad_free(self, data) -> None:
        m = self.m
        if self.live and data.draw(st.booleans()):
            # near a live block: its tail, its buddy, or the head with another order
            head = self._pick(data)
            pfn = head + data.draw(st.integers(0, (1 << self.live[head]) * 2))
        else:
            pfn = data.draw(st.integers(-2, m.geometry.max_pfn + 2))
        order = data.draw(st.integers(-1, 11))
        if self.live.get(pfn) == order and pfn not in self.locked:
            return  # that would be a correct free
        before = self._snapshot()
        try:
            m.free_pages(pfn, order)
        except MMError as exc:
            assert f"{pfn:05x}" in str(exc) or f"{pfn:#x}" in str(exc) or "order" in str(exc)
        else:
            raise AssertionError(f"bad free of {pfn:#x} order {order} was accepted")
        self._same(before)

    @rule()
    @guarded
    def drain(self) -> None:
        pcp = self.m.nr_pcp_pages
        assert self.m.drain_all_pages() == pcp
        assert self.m.nr_pcp_pages == 0

    @rule(data=st.data())
    @guarded
    def hotplug(self, data) -> None:
        m = self.m
        blocks = m.memory_blocks
        blk = data.draw(st.sampled_from(blocks))
        if not blk.online:
            m.online_memory_block(blk.index)
            assert blk.online and m.pfn_valid(blk.start_pfn if blk.hotplug else m.present_ranges[0][0])
            return
        busy = self.owned[blk.start_pfn : blk.end_pfn].any() or any(
            s < blk.end_pfn and e > blk.start_pfn for s, e in self.reserved)
        if busy:
            m.drain_all_pages()
            before = self._snapshot()
            try:
                m.offline_memory_block(blk.index)
            except HotplugError as exc:
                assert "-EBUSY" in str(exc)
            else:
                raise AssertionError(f"offlined block {blk.index} with pages in use")
            self._same(before)
        else:
            m.offline_memory_block(blk.index)
            assert not blk.online
            assert not any(s < blk.end_pfn and e > blk.start_pfn for s, e in m.present_ranges)

    @rule(data=st.data())
    @guarded
    def offline_migrating(self, data) -> None:
        """The kernel's offline: isolate, migrate movable blocks out, fail on anything else."""
        m = self.m
        online = [b for b in m.memory_blocks if b.online]
        if not online:
            return
        blk = data.draw(st.sampled_from(online))
        moves: list[tuple[int, int, int]] = []
        m.install(Callouts(migrate=(Callout("test", lambda old, new, order, reason: moves.append((old, new, order))),)))
        try:
            m.offline_memory_block(blk.index, migrate=True)
            done = True
        except HotplugError as exc:
            assert "-EBUSY" in str(exc) or "-ENOMEM" in str(exc), str(exc)
            done = False
        finally:
            m.install(NO_CALLOUTS)
        for old, new, order in moves:  # migrated blocks stay migrated, even when the offline fails
            locked, comp = old in self.locked, old in self.comp
            self._drop(old)
            self._take(new, order, G.GFP_HIGHUSER_MOVABLE)
            if locked:
                self.locked.add(new)
            if comp:
                self.comp.add(new)
        assert blk.online is not done
        if done:
            assert not self.owned[blk.start_pfn : blk.end_pfn].any()

    @precondition(lambda self: any(o for o in self.live.values()))
    @rule(data=st.data())
    @guarded
    def split(self, data) -> None:
        m = self.m
        pfn = data.draw(st.sampled_from(sorted(p for p, o in self.live.items() if o)))
        order = self.live[pfn]
        if pfn in self.comp:
            before = self._snapshot()
            try:
                m.split_page(pfn, order)
            except BadPageState:
                pass
            else:
                raise AssertionError("split_page of a compound page was accepted")
            self._same(before)
            return
        m.split_page(pfn, order)
        locked = pfn in self.locked
        self._drop(pfn)
        self.owned[pfn : pfn + (1 << order)] = True
        for p in range(pfn, pfn + (1 << order)):
            self.live[p] = 0
        if locked:
            self.locked.add(pfn)

    @rule(n=st.integers(1, 40), gfp=st.sampled_from(GFPS))
    @guarded
    def exact(self, n: int, gfp: int) -> None:
        pfn = self.m.alloc_pages_exact(n, gfp | NOWARN)
        if pfn is None:
            return
        for p in range(pfn, pfn + n):
            self._take(p, 0, gfp)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    @guarded
    def migrate(self, data) -> None:
        m = self.m
        pfn = self._pick(data)
        order = self.live[pfn]
        last = pfn + (1 << order) - 1
        m.write(last, 4000, b"tail-of-block")
        head_bytes = m.read(pfn, 0, 64)
        new = m.migrate_pages(pfn, order, "compaction")
        if new is None:
            assert m.page_kind(pfn) in ((K_ALLOC, order, pfn), (K_ALLOC_MOVABLE, order, pfn))
            return
        locked, comp = pfn in self.locked, pfn in self.comp
        self._drop(pfn)
        self._take(new, order, G.GFP_HIGHUSER_MOVABLE)
        if locked:  # the page flags move with the contents
            self.locked.add(new)
        if comp:
            self.comp.add(new)
            assert m.page_flags(new) & (1 << PG_head)
        assert m.read(new, 0, 64) == head_bytes
        assert m.read(new + (1 << order) - 1, 4000, 13) == b"tail-of-block"

    # -- checks after every step ----------------------------------------------------------------------

    @invariant()
    @guarded
    def consistent(self) -> None:
        if not hasattr(self, "m"):
            return
        m = self.m
        check_invariants(m)
        heads, orders = m.allocated_blocks()
        assert dict(zip(heads.tolist(), orders.tolist())) == self.live
        assert m.nr_allocated_pages == sum(1 << o for o in self.live.values())
        for pfn in list(self.live)[-3:]:
            assert m.page_kind(pfn)[0] in (K_ALLOC, K_ALLOC_MOVABLE)
            assert m.is_allocated(pfn + (1 << self.live[pfn]) - 1)

    def teardown(self) -> None:
        if not hasattr(self, "m") or self.broken:
            return
        m = self.m
        for pfn in list(self.live):
            if pfn in self.locked:
                m.clear_page_flags(pfn, LOCK)
            m.free_pages(pfn, self.live[pfn])
            self._drop(pfn)
        m.drain_all_pages()
        for blk, online in zip(m.memory_blocks, self.boot_online):
            if blk.online and not online:
                m.offline_memory_block(blk.index)
            elif online and not blk.online:
                m.online_memory_block(blk.index)
        check_invariants(m)
        assert m.nr_allocated_pages == 0
        assert m.nr_free_pages == self.boot_free
        assert stats.buddyinfo(m) == self.boot_buddyinfo


AllocatorModel.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestAllocatorModel = AllocatorModel.TestCase
