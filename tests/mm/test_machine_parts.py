"""The machine is composed: an allocator, a context, an oops state, forwarded without a call layer.

- The allocator works on its own, given a geometry, a log, contents and a
  host that answers only what its errors need (``AllocatorHost``).
- ``machine.alloc_pages`` *is* the allocator's bound method (no wrapper).
- Attributes the parts own are read and written through the machine;
  counters are read-only there.
- The read-only copies (``free_list``, ``pcp_snapshot``) tell the truth and
  change nothing.
"""
from __future__ import annotations

import pytest

from pageext_core.mm import MIGRATE_MOVABLE, DoubleFree, Machine, Task
from pageext_core.mm import gfp as G
from pageext_core.mm.buddy import BuddyAllocator, PageKind
from pageext_core.mm.contents import PageContents
from pageext_core.mm.geometry import build_geometry
from pageext_core.mm.invariants import check_invariants
from pageext_core.mm.printk import KernelLog
from tests.mm.conftest import TINY, _assert_same, _snapshot

DMA32 = 1


class FakeHost:
    """An ``AllocatorHost`` that is not a machine: what the allocator's errors may ask, and a record of it."""

    def __init__(self) -> None:
        self.current = Task(7, 7, "fakehost")
        self.asked: list[str] = []

    def check_pfn(self, pfn: int) -> None:
        self.asked.append(f"check_pfn {pfn}")

    def describe_page(self, pfn: int) -> str:
        self.asked.append(f"describe_page {pfn}")
        return f"page {pfn:#x} as the fake host describes it"

    def dump_stack_lines(self) -> list[str]:
        self.asked.append("dump_stack_lines")
        return ["Call Trace:"]


def test_the_allocator_runs_without_a_machine() -> None:
    g = build_geometry(TINY)
    host = FakeHost()
    b = BuddyAllocator(g, host, KernelLog(lambda: 0), PageContents(g.max_pfn, host.check_pfn))
    b.free_all(g.ram, g.reserved)
    assert sum(b.zone_free) == g.max_pfn  # TINY: no holes, nothing reserved
    pfn = b.alloc_pages(G.GFP_KERNEL, 4)
    assert pfn is not None and b.page_kind(pfn) == (PageKind.ALLOCATED, 4, pfn)
    assert b.clock_ns == b.op_cost_ns  # the allocator's own clock
    b.free_pages(pfn, 4)
    assert host.asked == []  # nothing asked of the host on the normal path
    with pytest.raises(DoubleFree) as err:
        b.free_pages(pfn, 4)
    assert "fakehost" in str(err.value) and f"describe_page {pfn}" in host.asked


def test_forwarded_methods_are_the_parts_own_bound_methods(tiny: Machine) -> None:
    for name in ("alloc_pages", "free_pages", "page_kind", "drain_all_pages"):
        fn = getattr(tiny, name)
        assert fn.__self__ is tiny.buddy and fn.__func__ is getattr(BuddyAllocator, name)
        assert vars(tiny)[name] is fn  # stored on the machine: the next lookup is a plain attribute
    assert tiny.current_stack.__self__ is tiny.ctx
    assert tiny.dump_stack_lines.__self__ is tiny.oopses


def test_the_parts_attributes_read_and_write_through_the_machine(tiny: Machine) -> None:
    tiny.alloc_pages(G.GFP_KERNEL, 0)
    assert tiny.nr_allocs == tiny.buddy.nr_allocs == 1
    assert tiny.zone_free is tiny.buddy.zone_free
    tiny.clock_ns = 5000
    assert tiny.buddy.clock_ns == 5000
    tiny.advance(10)
    assert tiny.clock_ns == 5010
    with pytest.raises(AttributeError, match="read-only"):
        tiny.nr_allocs = 0  # a counter cannot be set from outside
    assert tiny.nr_allocs == 1
    tiny.debug_pagealloc_enabled = True
    assert tiny.oopses.debug_pagealloc_enabled


def test_the_context_sets_the_cpu_the_allocator_uses(tiny: Machine) -> None:
    task = Task(42, 42, "worker")
    with tiny.context(task, stack=["a", "b"], cpu=1):
        assert tiny.cpu == tiny.buddy.cpu == tiny.ctx.cpu == 1
        assert tiny.current is task
        tiny.alloc_pages(G.GFP_KERNEL, 0)  # refills CPU 1's list
        assert tiny.pcp_snapshot(1, DMA32).count > 0 and tiny.pcp_snapshot(0, DMA32).count == 0
    assert tiny.cpu == tiny.buddy.cpu == 0 and tiny.current.comm == "swapper/0" and tiny.explicit_stack == 0
    with pytest.raises(ValueError, match="CPUs 0..1"):
        tiny.set_cpu(2)
    assert tiny.buddy.cpu == 0


def test_free_list_is_head_first_and_reading_changes_nothing(tiny: Machine) -> None:
    heads = tiny.free_list(DMA32, 10, MIGRATE_MOVABLE)
    assert len(heads) == tiny.nr_free(DMA32, 10, MIGRATE_MOVABLE) == 12
    before = _snapshot(tiny)
    for _ in range(3):
        assert tiny.free_list(DMA32, 10, MIGRATE_MOVABLE) == heads
        assert tiny.pcp_snapshot(0, DMA32) == tiny.pcp_snapshot(0, DMA32)
        tiny.buddy.nr_free_counts()
    _assert_same(before, _snapshot(tiny))
    # the head is what a Movable max-order request (not via per-CPU lists) is handed next
    assert tiny.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 10) == heads[0]
    assert tiny.free_list(DMA32, 10, MIGRATE_MOVABLE) == heads[1:]


def test_pcp_snapshot_matches_what_zoneinfo_reads(tiny: Machine) -> None:
    p = tiny.alloc_pages(G.GFP_KERNEL, 0)
    snap = tiny.pcp_snapshot(0, DMA32)
    assert (snap.count, snap.high, snap.batch) == tiny.pcp_stats(0, DMA32)
    assert sum(len(pl) for pl in snap.lists) == 2  # batch 3 refilled, one handed out
    tiny.free_pages(p, 0)
    # a free goes to the head of its list (pindex 0 * 3 + Unmovable)
    assert tiny.pcp_snapshot(0, DMA32).lists[0][0] == p
    check_invariants(tiny)


def test_a_forward_must_keep_the_parts_name() -> None:
    from pageext_core.mm.delegate import forward

    with pytest.raises((TypeError, RuntimeError)) as err:  # 3.11 wraps a __set_name__ error in RuntimeError
        type("Front", (), {"alloc": forward("buddy", BuddyAllocator.alloc_pages)})
    cause = err.value.__cause__ or err.value
    assert "Front.alloc forwards alloc_pages: the names must match" in str(cause)


def test_every_machine_has_the_same_attributes_in_the_same_order() -> None:
    """Forwards are bound in ``__init__``, not at first use: what a machine did does not reorder its ``__dict__``."""
    used, fresh = Machine(TINY), Machine(TINY)
    used.pcp_snapshot(0, DMA32)
    used.free_pages(used.alloc_pages(G.GFP_KERNEL, 0), 0)
    used.describe_page(4096)
    assert list(vars(used)) == list(vars(fresh))
    assert "alloc_pages" in vars(fresh) and "pcp_snapshot" in vars(fresh)
