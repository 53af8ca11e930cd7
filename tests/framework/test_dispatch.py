"""Hot-path dispatch: event hooks resolved once at boot into plain call lists.

Covers what the allocator is handed (plain functions or one-line adapters),
call order, that clients not needed are never called, and that a client
raising inside a call-out leaves the allocator consistent.
"""
from __future__ import annotations

import inspect
import types

import numpy as np
import pytest
from fwsupport import Counter, Fixed, boot_with, free_total

from pageext_core import hookimpl
from pageext_core.mm import NO_CALLOUTS, Callout, HookError, PageFault, check_invariants
from pageext_core.mm.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL

CANONICAL_ALLOC = ["pfn", "order", "gfp_mask", "migratetype"]


# -- what the allocator holds ---------------------------------------------------------------


def test_full_signature_hooks_are_the_clients_own_methods():
    c = Counter(flags=["F"])
    pe = boot_with(("c", c))
    m = pe.machine
    assert m.callouts.alloc == (Callout("c", c.pageext_on_alloc),)
    assert m.callouts.alloc[0].fn.__func__ is Counter.pageext_on_alloc
    assert m.callouts.free == (Callout("c", c.pageext_on_free),)
    assert m.callouts.clients() == {"c"}
    p = m.alloc_pages(GFP_KERNEL, 1)
    m.free_pages(p, 1)
    assert c.events == [("alloc", p, 1), ("free", p, 1)]


def test_subset_of_arguments_gets_a_one_line_adapter():
    got = []

    class Subset(Fixed):
        @hookimpl
        def pageext_on_alloc(self, migratetype, pfn):  # any subset, in any order
            got.append(("alloc", pfn, migratetype))

        @hookimpl
        def pageext_on_free(self, order):
            got.append(("free", order))

    c = Subset(flags=["F"])
    pe = boot_with(("s", c))
    m = pe.machine
    [(client, fn)] = [(e.client, e.fn) for e in m.callouts.alloc]
    assert isinstance(fn, types.FunctionType) and fn.__name__ == "<lambda>"
    assert list(inspect.signature(fn).parameters) == CANONICAL_ALLOC
    assert list(inspect.signature(m.callouts.free[0].fn).parameters) == ["pfn", "order"]
    assert client == "s"
    p = m.alloc_pages(GFP_HIGHUSER_MOVABLE, 2)
    m.free_pages(p, 2)
    assert got == [("alloc", p, 1), ("free", 2)]  # MIGRATE_MOVABLE is 1


def test_hooks_are_not_looked_up_through_pluggy_on_the_hot_path():
    c = Counter(flags=["F"])
    pe = boot_with(("c", c))
    m = pe.machine
    through_pluggy = []
    undo = pe.pm.add_hookcall_monitoring(lambda name, impls, kw: through_pluggy.append(name), lambda *a: None)
    try:
        for order in (0, 0, 3, 10):
            p = m.alloc_pages(GFP_KERNEL, order)
            m.free_pages(p, order)
    finally:
        undo()
    assert len(c.events) == 8
    assert through_pluggy == []

    late = Counter(flags=["G"])
    pe.pm.register(late, name="late")  # registering after boot changes nothing: the lists are fixed
    m.free_pages(m.alloc_pages(GFP_KERNEL, 0), 0)
    assert late.events == []
    assert len(c.events) == 10


# -- order -----------------------------------------------------------------------------------------


def ordered(mark: dict, log: list):
    class Ordered(Fixed):
        @hookimpl(**mark)
        def pageext_on_alloc(self, pfn):
            log.append((self.label, "alloc"))

        @hookimpl(**mark)
        def pageext_on_free(self, pfn):
            log.append((self.label, "free"))

    return Ordered(flags=["F"])


def test_call_order_tryfirst_then_name_order_then_trylast():
    log: list = []
    spec = [("b_plain", {}), ("c_last", {"trylast": True}), ("z_first", {"tryfirst": True}),
            ("a_plain", {}), ("m_first", {"tryfirst": True})]
    clients = []
    for name, mark in spec:
        c = ordered(mark, log)
        c.label = name
        clients.append((name, c))
    pe = boot_with(*clients)
    m = pe.machine
    assert pe.enabled == ["a_plain", "b_plain", "c_last", "m_first", "z_first"]
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    expected = ["m_first", "z_first", "a_plain", "b_plain", "c_last"]
    assert log == [(n, "alloc") for n in expected] + [(n, "free") for n in expected]
    assert [e.client for e in m.callouts.alloc] == expected


# -- not needed: never called ----------------------------------------------------------------------------


class EveryHook(Fixed):
    """Implements every event and report hook and counts each call."""

    def __init__(self, **kw):
        super().__init__({"x": "u4"}, ["F"], **kw)
        self.calls: list[str] = []

    @hookimpl
    def pageext_on_alloc(self, pfn):
        self.calls.append("alloc")

    @hookimpl
    def pageext_on_free(self, pfn):
        self.calls.append("free")

    @hookimpl
    def pageext_on_split(self, pfn):
        self.calls.append("split")
        return False

    @hookimpl
    def pageext_on_merge(self, pfn):
        self.calls.append("merge")
        return False

    @hookimpl
    def pageext_on_split_page(self, pfn):
        self.calls.append("split_page")

    @hookimpl
    def pageext_on_migrate(self, old_pfn):
        self.calls.append("migrate")

    @hookimpl
    def pageext_on_fault(self, pfn):
        self.calls.append("fault")
        return "every-hook was here"

    @hookimpl
    def pageext_dump_page(self, pfn):
        self.calls.append("dump_page")
        return "owner"

    @hookimpl
    def pageext_report(self):
        self.calls.append("report")
        return {"every": lambda: "text"}

    @hookimpl
    def pageext_summary(self):
        self.calls.append("summary")
        return {"n": 1}

    @hookimpl
    def pageext_findings(self):
        self.calls.append("findings")
        return []


def exercise(pe) -> None:
    m = pe.machine
    for order in (0, 1, 3, 9):
        p = m.alloc_pages(GFP_KERNEL, order)
        m.free_pages(p, order)
    p = m.alloc_pages(GFP_KERNEL, 2)
    m.split_page(p, 2)
    for i in range(4):
        m.free_pages(p + i, 0)
    q = m.alloc_pages(GFP_HIGHUSER_MOVABLE, 1)
    q = m.migrate_pages(q, 1)
    m.free_pages(q, 1)
    m.drain_all_pages()
    pe.report_names()
    pe.client_summaries()
    pe.findings()
    pe.dump_page(5)


def test_a_client_not_needed_is_never_called():
    off, on = EveryHook(need=False), EveryHook()
    pe = boot_with(("off", off), ("on", on))
    assert pe.enabled == ["on"]
    exercise(pe)
    assert off.calls == []
    assert {"alloc", "free", "split", "split_page", "migrate", "report", "summary", "findings",
            "dump_page"} <= set(on.calls)
    assert "off" not in pe.client_summaries()
    assert "every" in pe.report_names()


def test_only_clients_not_needed_means_no_callouts_and_no_calls():
    off = EveryHook(need=False)
    pe = boot_with(("off", off))
    m = pe.machine
    assert m.callouts == NO_CALLOUTS and not m.callouts
    exercise(pe)
    assert pe.dump_page(5) is None
    assert off.calls == []


# -- other event hooks ----------------------------------------------------------------------------------


def test_split_page_migrate_and_fault_hooks():
    got = []

    class Others(Fixed):
        @hookimpl
        def pageext_on_split_page(self, order, pfn):
            got.append(("split_page", pfn, order))

        @hookimpl
        def pageext_on_migrate(self, reason, new_pfn, old_pfn):
            got.append(("migrate", old_pfn, new_pfn, reason))

        @hookimpl
        def pageext_on_fault(self, pfn, write):
            return f"others: pfn {pfn:#x} {'write' if write else 'read'}"

    pe = boot_with(("o", Others(flags=["F"])))
    m = pe.machine
    assert list(inspect.signature(m.callouts.migrate[0].fn).parameters) == ["old_pfn", "new_pfn", "order", "reason"]
    p = m.alloc_pages(GFP_KERNEL, 2)
    m.split_page(p, 2)
    q = m.alloc_pages(GFP_HIGHUSER_MOVABLE, 1)
    new = m.migrate_pages(q, 1, reason="compaction")
    assert got == [("split_page", p, 2), ("migrate", q, new, "compaction")]
    m.contents.unmap(p + 1)
    with pytest.raises(PageFault) as ei:
        m.read(p + 1, 0, 8)
    assert f"others: pfn {p + 1:#x} read" in str(ei.value)


def holder(name: str, log: list, hold_order: int | None, release: bool = True):
    class Holder(Fixed):
        @hookimpl
        def pageext_on_split(self, pfn, order):
            log.append((name, "split", pfn, order))
            return order == hold_order

        @hookimpl
        def pageext_on_merge(self, pfn, order):
            log.append((name, "merge", pfn, order))
            return release

    return Holder(flags=[name.upper()])


def test_split_hold_and_merge_release():
    log: list = []
    # order 4: above the per-CPU orders, so the allocation and the free meet the buddy directly
    pe = boot_with(("g", holder("g", log, hold_order=4)))
    m = pe.machine
    assert [e.client for e in m.callouts.split] == ["g"] and [e.client for e in m.callouts.merge] == ["g"]
    m.drain_all_pages()
    before = m.nr_free_pages
    p = m.alloc_pages(GFP_KERNEL, 4)
    held = [(pfn, o) for _, what, pfn, o in log if what == "split" and o == 4]
    assert len(held) == 1
    assert held[0][0] == p ^ 16  # the order-4 buddy of the allocated block
    assert m.nr_held_pages == 16
    assert m.nr_free_pages == before - 32
    check_invariants(m, allow_held_buddies=True)
    log.clear()
    m.free_pages(p, 4)
    assert log == [("g", "merge", p ^ 16, 4)]
    assert m.nr_held_pages == 0
    assert m.nr_free_pages == before
    check_invariants(m)


def test_first_client_to_hold_wins():
    log: list = []
    pe = boot_with(("a", holder("a", log, hold_order=4)), ("b", holder("b", log, hold_order=5)))
    m = pe.machine
    m.alloc_pages(GFP_KERNEL, 4)  # above the per-CPU orders: one split, no refill of several blocks
    asked = [(who, o) for who, what, _, o in log if what == "split"]
    # every split half is offered to a first; b is asked only when a declines
    assert ("a", 4) in asked and ("b", 4) not in asked
    assert ("a", 5) in asked and ("b", 5) in asked
    assert m.nr_held_pages == 16 + 32


# -- a client raising -------------------------------------------------------------------------------------


class Boom(Fixed):
    """Raises in one hook on the n-th call (counting from 1), records every call."""

    def __init__(self, hook: str, on_call: int = 1):
        super().__init__({"x": "u4"}, ["F"])
        self.hook, self.on_call = hook, on_call
        self.seen: list[tuple[str, int, int]] = []
        self.armed = True

    def _maybe(self, hook, pfn, order):
        self.seen.append((hook, pfn, order))
        if self.armed and hook == self.hook and sum(1 for h, _, _ in self.seen if h == hook) == self.on_call:
            raise RuntimeError(f"{hook} exploded")

    @hookimpl
    def pageext_on_alloc(self, pfn, order):
        self._maybe("alloc", pfn, order)

    @hookimpl
    def pageext_on_free(self, pfn, order):
        self._maybe("free", pfn, order)

    @hookimpl
    def pageext_on_split(self, pfn, order):
        self._maybe("split", pfn, order)
        return False


def snapshot(m) -> tuple:
    return (m.state.copy(), m.nr_allocs, m.nr_frees, free_total(m), m.nr_allocated_pages)


def assert_unchanged(before: tuple, m) -> None:
    after = snapshot(m)
    assert np.array_equal(before[0], after[0]), "allocator state changed"
    assert before[1:] == after[1:]


@pytest.mark.parametrize("order", [0, 4])  # through the per-CPU list, and straight from the buddy
def test_raising_on_alloc_undoes_the_allocation(order):
    b = Boom("alloc")
    pe = boot_with(("boom", b))
    m = pe.machine
    if order == 0:
        b.armed = False
        m.free_pages(m.alloc_pages(GFP_KERNEL, 0), 0)  # fill the per-CPU list first
        b.armed = True
    b.seen.clear()
    before = snapshot(m)
    with pytest.raises(HookError) as ei:
        m.alloc_pages(GFP_KERNEL, order)
    err = ei.value
    [pfn] = [pfn for h, pfn, _ in b.seen if h == "alloc"]
    assert (err.owner, err.hook, err.pfn, err.order) == ("boom", "pageext_on_alloc", pfn, order)
    msg = str(err)
    assert "'boom'" in msg and "pageext_on_alloc" in msg and f"pfn {pfn:#x}" in msg
    assert "allocation was undone" in msg
    assert isinstance(err.__cause__, RuntimeError)
    assert not m.is_allocated(pfn)
    if order:
        assert_unchanged(before, m)  # merged back exactly where it was
    else:
        assert before[1:] == snapshot(m)[1:]  # back on the per-CPU list
    check_invariants(m)
    b.armed = False
    assert m.alloc_pages(GFP_KERNEL, order) is not None


def test_raising_on_free_leaves_the_block_allocated():
    b = Boom("free")
    pe = boot_with(("boom", b))
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 2)
    before = snapshot(m)
    with pytest.raises(HookError) as ei:
        m.free_pages(p, 2)
    err = ei.value
    assert (err.owner, err.hook, err.pfn, err.order) == ("boom", "pageext_on_free", p, 2)
    assert f"pfn {p:#x}" in str(err) and "stays allocated" in str(err)
    assert m.is_allocated(p)
    assert_unchanged(before, m)
    check_invariants(m)
    b.armed = False
    m.free_pages(p, 2)
    assert not m.is_allocated(p)
    check_invariants(m)


def test_raising_on_split_mid_expand_undoes_the_allocation():
    b = Boom("split", on_call=2)
    pe = boot_with(("boom", b))
    m = pe.machine
    m.drain_all_pages()
    before = snapshot(m)
    with pytest.raises(HookError) as ei:
        m.alloc_pages(GFP_KERNEL, 4)  # above the per-CPU orders: the undone block goes back to the buddy
    splits = [(pfn, o) for h, pfn, o in b.seen if h == "split"]
    assert len(splits) >= 3, "expected a split of at least three levels"
    # halves are offered top-down, one order at a time
    assert [o for _, o in splits] == list(range(splits[0][1], splits[0][1] - len(splits), -1))
    err = ei.value
    assert (err.owner, err.hook) == ("boom", "pageext_on_split")
    assert (err.pfn, err.order) == splits[1]
    assert "allocation was undone" in str(err)
    assert [h for h, _, _ in b.seen if h == "alloc"] == []  # never told of an allocation that is undone
    assert_unchanged(before, m)
    check_invariants(m)
    b.armed = False
    p = m.alloc_pages(GFP_KERNEL, 4)
    assert p is not None
    check_invariants(m)


def test_raising_on_split_during_a_per_cpu_refill_undoes_the_allocation():
    b = Boom("split", on_call=2)
    pe = boot_with(("boom", b))
    m = pe.machine
    before = (free_total(m), m.nr_allocs, m.nr_allocated_pages)
    with pytest.raises(HookError) as ei:
        m.alloc_pages(GFP_KERNEL, 0)  # the per-CPU list is empty: a batch is split off a larger block
    assert ei.value.hook == "pageext_on_split"
    assert (free_total(m), m.nr_allocs, m.nr_allocated_pages) == before
    check_invariants(m)


def test_raising_on_merge_frees_without_that_merge():
    class BadMerge(Fixed):
        @hookimpl
        def pageext_on_split(self, pfn, order):
            return order == 4

        @hookimpl
        def pageext_on_merge(self, pfn):
            raise RuntimeError("merge exploded")

    pe = boot_with(("bm", BadMerge(flags=["H"])))
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 4)  # above the per-CPU orders: the free merges at once
    with pytest.raises(HookError) as ei:
        m.free_pages(p, 4)
    err = ei.value
    assert (err.owner, err.hook, err.pfn, err.order) == ("bm", "pageext_on_merge", p ^ 16, 4)
    assert "free was applied without this merge" in str(err)
    assert not m.is_allocated(p)
    assert m.nr_held_pages == 16  # the held buddy stays held
    check_invariants(m, allow_held_buddies=True)


def test_hook_error_names_the_one_split_client_that_raised():
    class Declines(Fixed):
        @hookimpl
        def pageext_on_split(self, pfn):
            return False

    class Raises(Fixed):
        @hookimpl
        def pageext_on_split(self, pfn):
            raise RuntimeError("b exploded")

    pe = boot_with(("a", Declines(flags=["A"])), ("b", Raises(flags=["B"])))
    with pytest.raises(HookError) as ei:
        pe.machine.alloc_pages(GFP_KERNEL, 3)
    assert ei.value.owner == "b"
    assert "page_ext client 'b' raised in pageext_on_split" in str(ei.value)
    check_invariants(pe.machine)
