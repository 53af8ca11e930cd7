"""Bad input: each mistake raises its own exception naming the pfn and the states, and changes nothing."""
from __future__ import annotations

import numpy as np
import pytest

from pageext_core.mm import (
    BadPageState,
    DoubleFree,
    InvalidOrder,
    InvalidPfn,
    Machine,
    MachineConfig,
    MiB,
    MMError,
    OrderMismatch,
    Task,
    check_invariants,
    flags_mask,
)
from pageext_core.mm import gfp as G

KERNEL, MOVABLE = G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE

# x86 64 MiB: legacy hole at pfns 160..255, pfn 0 and the kernel image 4096..8191 reserved;
# 8 MiB sections/blocks; 16 MiB of offline hot-pluggable memory right above RAM (pfns 16384..20479)
CFG = MachineConfig(memory=64 * MiB, section_size_bits=23, hotplug=16 * MiB, dma32_limit=32 * MiB)


@pytest.fixture
def m() -> Machine:
    machine = Machine(CFG)
    assert machine.geometry.hotplug_blocks == [(16384, 18432), (18432, 20480)]
    return machine


def expect(m: Machine, snapshot, exc: type, fn, *args, match: str | None = None):
    snap = snapshot(m)
    with pytest.raises(exc, match=match) as ei:
        fn(*args)
    snap.assert_unchanged()
    check_invariants(m)
    return ei.value


@pytest.mark.parametrize("order", [-1, 11, 99, "1", 1.0, True, None])
def test_alloc_order_out_of_range(m, snapshot, order):
    err = expect(m, snapshot, InvalidOrder, m.alloc_pages, KERNEL, order, match=r"outside 0\.\.10")
    assert err.order == order


@pytest.mark.parametrize("order", [-1, 11, 15, 16])
def test_free_order_out_of_range(m, snapshot, order):
    pfn = m.alloc_pages(KERNEL, 0)
    err = expect(m, snapshot, InvalidOrder, m.free_pages, pfn, order, match=r"outside 0\.\.10")
    assert err.order == order


@pytest.mark.parametrize("order", ["0", 0.0, None])
def test_free_order_of_the_wrong_type(m, snapshot, order):
    # free_pages does not type-check the order on its fast path: a TypeError, nothing changed
    pfn = m.alloc_pages(KERNEL, 0)
    expect(m, snapshot, (InvalidOrder, TypeError), m.free_pages, pfn, order)


@pytest.mark.parametrize("pfn,why", [
    (20480, "outside memory"),  # max_pfn
    (1 << 40, "outside memory"),
    (-1, "outside memory"),
    (160, r"in a memory hole \[0xa0, 0x100\)"),
    (255, "in a memory hole"),
    (16384, r"in an offline memory block \[0x4000, 0x4800\); online it first"),
    (20479, "offline memory block"),
])
def test_free_pfn_that_is_not_memory(m, snapshot, pfn, why):
    err = expect(m, snapshot, InvalidPfn, m.free_pages, pfn, 0, match=why)
    assert err.pfn == pfn
    assert f"pfn {pfn:#x}" in str(err)


def test_free_pfn_of_the_wrong_type(m, snapshot):
    pfn = m.alloc_pages(MOVABLE, 2)
    expect(m, snapshot, TypeError, m.free_pages, np.int64(pfn), 2)
    expect(m, snapshot, TypeError, m.free_pages, float(pfn), 2)


def test_free_a_free_page_is_a_double_free(m, snapshot):
    free_head = m.page_kind(8192)
    assert free_head[0] == 1  # 8192 heads a free block (just above the kernel image)
    err = expect(m, snapshot, DoubleFree, m.free_pages, 8192, free_head[1])
    assert err.pfn == 8192
    assert "BUG: Bad page state in process swapper/0  pfn:02000" in str(err)
    assert "page dumped because: double free (expected an allocated block, found a free page)" in str(err)
    assert "page_type: f0(buddy)" in str(err)


def test_double_free_of_a_block(m, snapshot):
    pfn = m.alloc_pages(MOVABLE, 1)
    m.free_pages(pfn, 1)
    err = expect(m, snapshot, DoubleFree, m.free_pages, pfn, 1)
    assert (err.expected, err.actual) == ("an allocated block", "a free page on a per-CPU list")  # order 1 is a pcp order
    m.drain_all_pages()
    err = expect(m, snapshot, DoubleFree, m.free_pages, pfn, 1)
    assert (err.expected, err.actual) == ("an allocated block", "a free page")


def test_double_free_of_a_page_on_a_per_cpu_list(m, snapshot):
    pfn = m.alloc_pages(KERNEL, 0)
    m.free_pages(pfn, 0)
    with m.context(task=Task(77, 70, "a-very-long-process-name")):
        err = expect(m, snapshot, DoubleFree, m.free_pages, pfn, 0)
    assert err.actual == "a free page on a per-CPU list"
    assert f"in process a-very-long-pro  pfn:{pfn:05x}" in str(err)  # comm is 15 bytes


def test_wrong_order(m, snapshot):
    pfn = m.alloc_pages(MOVABLE, 2)
    err = expect(m, snapshot, OrderMismatch, m.free_pages, pfn, 1)
    assert (err.pfn, err.expected, err.actual) == (pfn, "order 2", "order 1")
    assert "free with the wrong order (expected order 2, found order 1)" in str(err)
    err = expect(m, snapshot, OrderMismatch, m.free_pages, pfn, 3)
    assert err.actual == "order 3"
    m.free_pages(pfn, 2)
    check_invariants(m)


def test_tail_page(m, snapshot):
    pfn = m.alloc_pages(MOVABLE, 2)
    err = expect(m, snapshot, BadPageState, m.free_pages, pfn + 1, 0)
    assert type(err) is BadPageState
    assert err.pfn == pfn + 1
    assert err.expected == "the head of an allocated block"
    assert err.actual == f"page 1 of a allocated order-2 block at pfn {pfn:#x}"
    assert f"page: refcount:0 mapcount:0 mapping:0000000000000000 index:0x0 pfn:{pfn + 1:#x}" in str(err)


def test_tail_of_a_free_block(m, snapshot):
    kind, order, head = m.page_kind(8192 + 5)
    assert (kind, head) == (1, 8192) and order >= 3
    err = expect(m, snapshot, BadPageState, m.free_pages, 8192 + 5, 0)
    assert "freeing a tail page" in str(err)
    assert f"of a free order-{order} block at pfn 0x2000" in err.actual


def test_reserved_page(m, snapshot):
    for pfn in (0, 4096, 8191):  # BIOS page, kernel image
        err = expect(m, snapshot, BadPageState, m.free_pages, pfn, 0)
        assert (err.expected, err.actual) == ("an allocated block", "a reserved page")
        assert "freeing a reserved page" in str(err)
        assert "reserved" in str(err).split("flags: ")[1]


@pytest.mark.parametrize("flag", ["locked", "writeback", "locked|writeback", "mlocked"])
def test_page_with_flags_checked_at_free(m, snapshot, flag):
    pfn = m.alloc_pages(MOVABLE, 0)
    m.set_page_flags(pfn, flags_mask(flag) | flags_mask("lru"))
    err = expect(m, snapshot, BadPageState, m.free_pages, pfn, 0)
    assert err.pfn == pfn
    assert err.actual == flag
    assert "PAGE_FLAGS_CHECK_AT_FREE flag(s) set" in str(err)
    assert err.expected.startswith("no locked")
    m.clear_page_flags(pfn, flags_mask(flag))
    m.free_pages(pfn, 0)
    assert m.is_free(pfn)
    check_invariants(m)


def test_page_never_allocated_in_an_online_hotplug_block(m, snapshot):
    m.online_memory_block(8)
    # the whole block is one free order-10 block pair; its second page is a tail
    err = expect(m, snapshot, BadPageState, m.free_pages, 16385, 0)
    assert "tail page" in str(err)


def test_every_error_is_an_mmerror():
    for exc in (BadPageState, DoubleFree, OrderMismatch, InvalidOrder, InvalidPfn):
        assert issubclass(exc, MMError)
    assert issubclass(DoubleFree, BadPageState) and issubclass(OrderMismatch, BadPageState)


def test_errors_do_not_disturb_later_work(m):
    """A long run of mistakes interleaved with real work ends with a consistent, fully free machine."""
    boot_free = m.nr_free_pages
    live = []
    for i in range(200):
        order = i % 4
        p = m.alloc_pages(KERNEL if i % 3 else MOVABLE, order)
        live.append((p, order))
        for bad in ((p, order + 1), (p + 1, 0) if order else (p, 11), (160, 0), (0, 0)):
            with pytest.raises((MMError, TypeError)):
                m.free_pages(*bad)
    for p, o in live:
        m.free_pages(p, o)
        # a double free (or, once merged into a lower buddy, a free of a free block's tail)
        with pytest.raises(BadPageState, match="double free|tail page"):
            m.free_pages(p, o)
    m.drain_all_pages()
    assert m.nr_free_pages == boot_free
    check_invariants(m)
