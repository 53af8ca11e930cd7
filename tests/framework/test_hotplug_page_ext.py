"""page_ext tables under memory hotplug: allocate on online, free on offline, roll back on failure.

The machine: 1 GiB of boot RAM (sections 0-7, no holes, nothing reserved)
and 512 MiB of hot-pluggable memory at 4 GiB in memory blocks of two
sections: block 16 (the kernel's memory16: 4 GiB / 256 MiB) = sections 32 and 33,
block 17 = sections 34 and 35.
The record is 16 bytes, so a section's table is 16 * 32768 = 512 KiB of
host memory and 128 simulated pages (an order-7 block).
"""
from __future__ import annotations

import numpy as np
import pytest
from fwsupport import PAGES_PER_SECTION, Counter, Fixed, boot_with, free_total, log_lines

from pageext_core import MachineConfig, hookimpl
from pageext_core.mm import GiB, HotplugError, MiB, check_invariants
from pageext_core.mm.gfp import GFP_KERNEL
from pageext_core.mm.machine import MEM_GOING_ONLINE

HOT = MachineConfig(memory=1 * GiB, hotplug=512 * MiB, memory_block_size=256 * MiB,
                    x86_holes=False, kernel_image=0, reserve_memmap=False)
BLOCK4 = 32 * PAGES_PER_SECTION  # first pfn of memory block 16 (the first hot-pluggable one)
BLOCK5 = 34 * PAGES_PER_SECTION
SECTION_BYTES = 16 * PAGES_PER_SECTION
SECTION_SIM_PAGES = 128


def rec16(**kw) -> Counter:
    return Counter({"count": "u4", "tag": "S3"}, ["SEEN"], **kw)


def state_of(pe) -> dict:
    """Everything the tests compare before and after a hotplug event (per-CPU pages drained)."""
    m = pe.machine
    m.drain_all_pages()
    return {
        "sections": sorted(pe.tables.tables),
        "nbytes": pe.nbytes,
        "sim_pages": pe.tables.sim_pages,
        "free": m.nr_free_pages,
        "present": m.nr_present_pages,
        "allocated": m.nr_allocated_pages,
        "online": [b.online for b in m.memory_blocks],
        "state": m.state.copy(),
    }


def assert_same(before: dict, after: dict) -> None:
    for k, v in before.items():
        if isinstance(v, np.ndarray):
            assert np.array_equal(v, after[k]), f"{k} changed at {np.flatnonzero(v != after[k])[:8].tolist()}"
        else:
            assert v == after[k], f"{k}: {v!r} -> {after[k]!r}"


def test_machine_layout_is_what_the_tests_assume():
    m = boot_with(("c", rec16()), config=HOT).machine
    blocks = [(b.index, b.start_pfn, b.end_pfn, b.online, b.hotplug) for b in m.memory_blocks]
    # Numbered as the kernel does: start address / block size (4 GiB / 256 MiB = 16).
    assert blocks[4:] == [(16, BLOCK4, BLOCK4 + 65536, False, True), (17, BLOCK5, BLOCK5 + 65536, False, True)]
    assert all(b.online and not b.hotplug for b in m.memory_blocks[:4])


def test_online_allocates_the_new_sections_and_offline_frees_them():
    c = rec16()
    pe = boot_with(("c", c), config=HOT)
    m = pe.machine
    before = state_of(pe)
    assert before["sections"] == list(range(8))
    assert before["nbytes"] == 8 * SECTION_BYTES
    assert c.view.lookup(BLOCK4) is None

    m.online_memory_block(16)
    assert sorted(pe.tables.tables) == list(range(8)) + [32, 33]
    assert pe.nbytes == before["nbytes"] + 2 * SECTION_BYTES
    assert pe.tables.sim_pages == before["sim_pages"] + 2 * SECTION_SIM_PAGES
    # The tables were taken from boot RAM (the block was not online yet), then the block's 65536 pages were freed.
    assert m.nr_free_pages == before["free"] - 2 * SECTION_SIM_PAGES + 65536
    assert m.nr_present_pages == before["present"] + 65536
    for s in (32, 33):
        for pfn, _ in pe.tables.tables[s].sim_chunks:
            assert pfn < 8 * PAGES_PER_SECTION
    assert c.view.lookup(BLOCK4) is not None
    assert c.view.lookup(BLOCK4 + 65535) is not None
    assert c.view.lookup(BLOCK5) is None
    check_invariants(m)

    m.offline_memory_block(16)
    assert_same(before, state_of(pe))
    assert c.view.lookup(BLOCK4) is None
    check_invariants(m)


def test_records_of_onlined_memory_are_usable_and_fresh_after_reonline():
    c = rec16()
    pe = boot_with(("c", c), config=HOT)
    m = pe.machine
    m.online_memory_block(16)
    # GFP_KERNEL prefers ZONE_NORMAL, which is only the new block
    p = m.alloc_pages(GFP_KERNEL, 2)
    assert BLOCK4 <= p < BLOCK4 + 65536
    assert c.events[-1] == ("alloc", p, 2)
    c.view.block(p, 2)["count"] = 5
    m.free_pages(p, 2)
    m.offline_memory_block(16)
    m.online_memory_block(16)
    assert c.view.get(p, "count") == 0  # a new table, not the old one


@pytest.mark.parametrize("inject", ["boot argument", "attribute"])
def test_failed_table_allocation_rolls_back_the_whole_event(inject):
    asked: list[int] = []

    def fail_33(section: int) -> bool:
        asked.append(section)
        return section == 33  # the second section of block 16

    c = rec16()
    if inject == "boot argument":
        pe = boot_with(("c", c), config=HOT, fail_table_allocation=fail_33)
    else:
        pe = boot_with(("c", c), config=HOT)
        pe.tables.fail_allocation = fail_33
    m = pe.machine
    asked.clear()
    before = state_of(pe)
    free_before = free_total(m)

    with pytest.raises(HotplugError, match="memory block 16.*online failed.*section 33"):
        m.online_memory_block(16)
    assert asked == [32, 33]  # section 32's table was allocated, then freed again
    assert free_total(m) == free_before
    assert_same(before, state_of(pe))
    assert not m.memory_blocks[4].online
    assert not m.pfn_valid(BLOCK4)
    assert c.view.lookup(BLOCK4) is None
    assert any("memory block 16: online failed" in t for t in log_lines(pe))
    check_invariants(m)

    pe.tables.fail_allocation = None
    m.online_memory_block(16)
    assert sorted(pe.tables.tables) == list(range(8)) + [32, 33]
    assert pe.nbytes == before["nbytes"] + 2 * SECTION_BYTES
    assert m.memory_blocks[4].online
    check_invariants(m)


def test_failed_online_leaves_other_blocks_tables_alone():
    c = rec16()
    pe = boot_with(("c", c), config=HOT)
    m = pe.machine
    m.online_memory_block(17)
    before = state_of(pe)
    pe.tables.fail_allocation = lambda s: s == 33
    with pytest.raises(HotplugError):
        m.online_memory_block(16)
    assert_same(before, state_of(pe))
    assert c.view.lookup(BLOCK5) is not None


@pytest.mark.parametrize("fields,orders", [
    ({"count": "u4"}, [7, 7]),  # 16-byte record: one order-7 table per section; section 33's raises
    ({"blob": ("u1", 248)}, [10, 10]),  # 256-byte record: two order-10 chunks per section; the second raises
], ids=["second-table", "second-chunk"])
def test_client_raising_during_online_leaves_nothing_behind(fields, orders):
    class Explodes(Counter):
        armed = False

        @hookimpl
        def pageext_on_alloc(self, pfn, order):
            self.events.append(("alloc", pfn, order))
            if self.armed and len(self.events) == 2:
                raise RuntimeError("client exploded")

    c = Explodes(fields, ["SEEN"])
    pe = boot_with(("c", c), config=HOT)
    m = pe.machine
    before = state_of(pe)
    c.armed = True
    with pytest.raises(HotplugError, match="'c' raised in pageext_on_alloc.*client exploded"):
        m.online_memory_block(16)
    assert [e[2] for e in c.events if e[0] == "alloc"] == orders
    assert_same(before, state_of(pe))
    check_invariants(m)


def test_another_notifier_vetoing_online_frees_the_tables_of_the_event():
    c = rec16()
    pe = boot_with(("c", c), config=HOT)
    m = pe.machine
    before = state_of(pe)

    def veto(event, start, nr):
        if event == MEM_GOING_ONLINE:
            raise RuntimeError("no thanks")

    m.memory_notifiers.append(veto)  # after page_ext's, which has already allocated
    with pytest.raises(HotplugError, match="no thanks"):
        m.online_memory_block(16)
    assert_same(before, state_of(pe))
    check_invariants(m)


def test_offline_refused_while_a_page_is_in_use_keeps_the_tables():
    c = rec16()
    pe = boot_with(("c", c), config=HOT)
    m = pe.machine
    m.online_memory_block(16)
    p = m.alloc_pages(GFP_KERNEL, 0)
    nbytes = pe.nbytes
    with pytest.raises(HotplugError, match="-EBUSY"):
        m.offline_memory_block(16)
    assert pe.nbytes == nbytes
    assert c.view.lookup(p) is not None
    m.free_pages(p, 0)
    m.offline_memory_block(16)
    assert pe.nbytes == nbytes - 2 * SECTION_BYTES


def test_no_page_ext_no_notifier():
    pe = boot_with(("c", Fixed({"x": "u4"}, need=False)), config=HOT)
    m = pe.machine
    assert m.memory_notifiers == []
    m.online_memory_block(16)
    assert pe.nbytes == 0 and pe.tables is None
    check_invariants(m)


def test_per_section_lists_follow_hotplug_without_the_client_listening():
    """The storage builds entries for hot-added tables and clears those it frees: clients keep no cache."""
    c = rec16()
    pe = boot_with(("c", c), config=HOT)
    m = pe.machine
    built: list[int] = []

    def build(t):
        built.append(t.base_pfn)
        return t

    entries = c.view.per_section(build)
    shift = c.view.section_shift
    assert sorted(built) == [s * PAGES_PER_SECTION for s in range(8)]  # boot RAM: sections 0-7
    assert entries[32] is None and entries[33] is None
    m.online_memory_block(16)
    assert entries[32].base_pfn == BLOCK4 and entries[33].base_pfn == BLOCK4 + PAGES_PER_SECTION
    # The entry is the table the view itself reads: a write through it is what lookup sees.
    p = BLOCK4 + 5
    t = entries[p >> shift]
    t.records["count"][p - t.base_pfn] = 77
    assert c.view.lookup(p)["count"] == 77
    m.offline_memory_block(16)
    assert entries[32] is None and entries[33] is None
    m.online_memory_block(16)
    assert entries[32] is not None and entries[32].records["count"][5] == 0  # a fresh table


def test_failed_online_leaves_no_entry_behind():
    c = rec16()
    pe = boot_with(("c", c), config=HOT, fail_table_allocation=lambda s: s == 33)
    entries = c.view.per_section(lambda t: t)
    with pytest.raises(HotplugError):
        pe.machine.online_memory_block(16)
    assert entries[32] is None and entries[33] is None
