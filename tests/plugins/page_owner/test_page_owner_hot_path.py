"""page_owner's event hooks write exactly the block's records, whichever path an order takes.

Small blocks (up to ``record.SMALL_ORDER``) are written page by page,
larger ones by a head pack and numpy copies; both must give every page of
the block the head's allocation (or free) run and its flag bits, keep each
page's other run, and touch nothing else: not the pages around the block,
not another client's bytes or bits.  A second client (``marker``) shares the
record and the flags word, with a pattern in both, to show that.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pageext_core as pc
from pageext_core import hookimpl
from pageext_core.layout import FLAGS_FIELD
from pageext_core.mm import MiB, Task
from pageext_core.mm.gfp import GFP_KERNEL
from pageext_page_owner.record import ALLOC_BYTES, FIELDS, SMALL_ORDER

TINY = pc.MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
UDEV = Task(812, 812, "systemd-udevd")
PY = Task(2291, 2288, "python3")
STACK = ["post_alloc_hook+0x1a2/0x1c0", "get_page_from_freelist+0x3b8/0x1530", "kernfs_fop_open+0x2a5/0x3c0"]
FREE_STACK = ["free_unref_page+0x25/0x3a0", "kernfs_fop_release+0x44/0x90"]
ALLOC_FIELDS = [f for f in FIELDS if f != "free_handle" and not f.startswith("free_")]
FREE_FIELDS = [f for f in FIELDS if f not in ALLOC_FIELDS]
ORDERS = sorted({0, 1, SMALL_ORDER, SMALL_ORDER + 1, 5, 9})


class Marker:
    """Another client in the same record: a pattern in its field and its flag bit on odd pfns."""

    name = "marker"

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_fields(self) -> dict[str, str]:
        return {"x": "<u8"}

    @hookimpl
    def pageext_flags(self) -> list[str]:
        return ["MARK"]

    @hookimpl
    def pageext_init(self, view: Any) -> None:
        for base, recs, _ in view.scan():
            recs["x"] = np.arange(base, base + len(recs), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            for pfn in range(base + 1, base + len(recs), 2):
                view.set_flags(pfn, view.flag("MARK"))


def snapshot(pe: pc.PageExt) -> list[np.ndarray]:
    assert pe.tables is not None
    return [t.records.copy() for t in pe.tables.tables.values()]


def changed_pfns(pe: pc.PageExt, before: list[np.ndarray]) -> set[int]:
    assert pe.tables is not None
    out: set[int] = set()
    for t, old in zip(pe.tables.tables.values(), before):
        idx = np.flatnonzero(t.records != old)
        out.update((idx + t.base_pfn).tolist())
    return out


def records(pe: pc.PageExt, pfn: int, n: int, snap: list[np.ndarray] | None = None) -> np.ndarray:
    """The whole records (every client's bytes and the flags word) of ``n`` pages, now or in ``snap``."""
    assert pe.tables is not None
    tables = list(pe.tables.tables.values())
    t = pe.tables.entry(pfn)
    recs = t.records if snap is None else snap[tables.index(t)]
    return recs[pfn - t.base_pfn : pfn - t.base_pfn + n].copy()


@pytest.fixture
def pe() -> pc.PageExt:
    return pc.boot(TINY, "page_owner=on", autoload=False, plugins=[Marker(), _page_owner()])


def _page_owner() -> Any:
    from pageext_page_owner.plugin import PageOwner

    return PageOwner()


@pytest.mark.parametrize("order", ORDERS)
def test_an_allocation_writes_every_page_of_its_block_and_nothing_else(pe: pc.PageExt, order: int) -> None:
    m = pe.machine
    n = 1 << order
    owner = pe.plugin("page_owner").view
    both = owner.flag("OWNER") | owner.flag("OWNER_ALLOCATED")
    before = snapshot(pe)
    with m.context(task=UDEV, stack=STACK):
        t0 = m.clock_ns
        pfn = m.alloc_pages(GFP_KERNEL, order)
    old = records(pe, pfn, n, before)
    assert changed_pfns(pe, before) == set(range(pfn, pfn + n))
    got = records(pe, pfn, n)
    head = got[0]
    assert head["page_owner.order"] == order and head["page_owner.gfp_mask"] == GFP_KERNEL
    assert head["page_owner.handle"] == m.depot.save(STACK) and head["page_owner.ts_nsec"] == t0 + m.op_cost_ns
    assert (head["page_owner.pid"], head["page_owner.comm"], head["page_owner.last_migrate_reason"]) == (
        812, b"systemd-udevd", -1)
    for f in ALLOC_FIELDS:  # every page: the head's allocation run
        assert (got[f"page_owner.{f}"] == head[f"page_owner.{f}"]).all(), f
    for f in FREE_FIELDS:  # and its own free history, untouched
        assert (got[f"page_owner.{f}"] == old[f"page_owner.{f}"]).all(), f
    assert (got["marker.x"] == old["marker.x"]).all()
    assert (got[FLAGS_FIELD] == (old[FLAGS_FIELD] | np.uint64(both))).all()  # MARK kept, ours added


@pytest.mark.parametrize("order", ORDERS)
def test_a_free_writes_every_page_of_its_block_and_nothing_else(pe: pc.PageExt, order: int) -> None:
    m = pe.machine
    n = 1 << order
    owner = pe.plugin("page_owner").view
    allocated = owner.flag("OWNER_ALLOCATED")
    with m.context(task=UDEV, stack=STACK):
        pfn = m.alloc_pages(GFP_KERNEL, order)
    m.advance(1000)
    old = records(pe, pfn, n)
    before = snapshot(pe)
    with m.context(task=PY, stack=FREE_STACK):
        t0 = m.clock_ns
        m.free_pages(pfn, order)
    # Page_owner writes only the block; a free may also merge buddies, which writes no page_ext.
    assert changed_pfns(pe, before) == set(range(pfn, pfn + n))
    got = records(pe, pfn, n)
    assert (got["page_owner.free_handle"] == m.depot.save(FREE_STACK)).all()
    assert (got["page_owner.free_pid"] == 2291).all() and (got["page_owner.free_tgid"] == 2288).all()
    assert (got["page_owner.free_ts_nsec"] == got["page_owner.free_ts_nsec"][0]).all()
    assert t0 <= int(got["page_owner.free_ts_nsec"][0]) <= m.clock_ns
    for f in ALLOC_FIELDS:  # the allocation history stays
        assert (got[f"page_owner.{f}"] == old[f"page_owner.{f}"]).all(), f
    assert (got["marker.x"] == old["marker.x"]).all()
    assert (got[FLAGS_FIELD] == (old[FLAGS_FIELD] & np.uint64(~allocated & 0xFFFFFFFFFFFFFFFF))).all()


def test_the_allocation_run_is_the_struct_the_hot_path_packs() -> None:
    assert sum(np.dtype(FIELDS[f]).itemsize for f in ALLOC_FIELDS) == ALLOC_BYTES
