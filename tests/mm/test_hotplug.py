"""Memory hotplug: online/offline of memory blocks, notifiers, clean failures."""
from __future__ import annotations

import pytest

from pageext_core.mm import (
    HotplugError,
    InvalidPfn,
    Machine,
    MachineConfig,
    MiB,
    check_invariants,
    stats,
)
from pageext_core.mm import gfp as G
from pageext_core.mm.buddy import K_PCP
from pageext_core.mm.machine import (
    MEM_CANCEL_OFFLINE,
    MEM_CANCEL_ONLINE,
    MEM_GOING_OFFLINE,
    MEM_GOING_ONLINE,
    MEM_OFFLINE,
    MEM_ONLINE,
)

NOWARN = G.__GFP_NOWARN
# 64 MiB without holes or reservations, 8 MiB sections = memory blocks of 2048 pages;
# dma32_limit 32 MiB: DMA [0, 4096), DMA32 [4096, 8192), Normal [8192, 16384) at boot.
# 16 MiB hot-pluggable right above RAM: blocks 8 [16384, 18432) and 9 [18432, 20480), in Normal.
CFG = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False,
                    section_size_bits=23, hotplug=16 * MiB, dma32_limit=32 * MiB)
HOT0, HOT1 = (16384, 18432), (18432, 20480)


class Recorder:
    def __init__(self, name: str, log: list, fail_on: str | None = None) -> None:
        self.name, self.log, self.fail_on = name, log, fail_on

    def __call__(self, event: str, start: int, nr: int) -> None:
        self.log.append((self.name, event, start, nr))
        if event == self.fail_on:
            raise RuntimeError(f"{self.name} says no")


@pytest.fixture
def m() -> Machine:
    return Machine(CFG)


def normal_line(m: Machine) -> list[int]:
    line = [ln for ln in stats.buddyinfo(m).splitlines() if "Normal" in ln][0]
    return [int(x) for x in line.split()[4:]]


def test_blocks(m: Machine):
    blocks = m.memory_blocks
    assert [(b.index, b.start_pfn, b.end_pfn, b.online, b.hotplug) for b in blocks] == (
        [(i, 2048 * i, 2048 * (i + 1), True, False) for i in range(8)]
        + [(8, *HOT0, False, True), (9, *HOT1, False, True)]
    )
    assert m.nr_present_pages == 16384
    assert not m.pfn_valid(HOT0[0])
    assert m.present_sections() == list(range(8))


def test_online_adds_free_memory_and_notifies(m: Machine):
    events: list = []
    m.memory_notifiers.append(Recorder("a", events))
    assert normal_line(m) == [0] * 10 + [8]
    m.online_memory_block(8)
    assert events == [("a", MEM_GOING_ONLINE, 16384, 2048), ("a", MEM_ONLINE, 16384, 2048)]
    assert m.memory_blocks[8].online
    assert m.nr_present_pages == 16384 + 2048
    assert m.nr_free_pages == 16384 + 2048
    assert normal_line(m) == [0] * 10 + [10]
    assert m.pfn_valid(16384) and m.pfn_valid(18431) and not m.pfn_valid(18432)
    assert m.present_sections() == list(range(9))
    assert "pageext: memory block 8: online [mem 0x0000000004000000-0x00000000047fffff]" in m.log.grep("memory block 8")
    check_invariants(m)
    # the hot-added memory is handed out like any other Normal memory
    m.online_memory_block(9)
    got = {m.alloc_pages(G.GFP_KERNEL, 10) for _ in range(11)}
    assert got == set(range(8192, 19456, 1024))
    # Normal's last block fails its LOW mark (1024 - 1023 <= LOW): the fast path goes on to DMA32
    assert 4096 <= m.alloc_pages(G.GFP_KERNEL, 10) < 8192
    check_invariants(m)


def test_offline_undoes_online(m: Machine):
    boot = stats.buddyinfo(m)
    events: list = []
    m.memory_notifiers.append(Recorder("a", events))
    m.online_memory_block(8)
    events.clear()
    m.offline_memory_block(8)
    assert events == [("a", MEM_GOING_OFFLINE, 16384, 2048), ("a", MEM_OFFLINE, 16384, 2048)]
    assert not m.memory_blocks[8].online
    assert stats.buddyinfo(m) == boot
    assert m.nr_present_pages == 16384
    with pytest.raises(InvalidPfn, match="offline memory block"):
        m.check_pfn(16384)
    assert "pageext: memory block 8: offline [mem 0x0000000004000000-0x00000000047fffff]" in m.log.grep("offline")
    check_invariants(m)


def test_online_makes_normal_zone_and_kernel_allocations_go_there():
    # default dma32_limit: the 64 MiB machine has no Normal zone; hot memory lands at 4 GiB
    m = Machine(CFG.with_(dma32_limit=4 << 30))
    assert m.geometry.hotplug_blocks[0] == (1 << 20, (1 << 20) + 2048)
    assert "Normal" not in stats.buddyinfo(m)
    assert m.alloc_pages(G.GFP_KERNEL, 0) < 1 << 20
    assert [b.index for b in m.memory_blocks if b.hotplug] == [512, 513]  # the kernel's memory512: 4 GiB / 8 MiB
    m.online_memory_block(512)
    assert "Node 0, zone   Normal      0      0      0      0      0      0      0      0      0      0      2 \n" in stats.buddyinfo(m)
    assert m.alloc_pages(G.GFP_KERNEL, 3) >= 1 << 20  # Normal first
    assert m.alloc_pages(G.GFP_KERNEL | G.__GFP_DMA32, 3) < 1 << 20
    check_invariants(m)


def test_online_failure_in_going_online_cancels_with_nothing_changed(m: Machine, snapshot):
    events: list = []
    m.memory_notifiers += [Recorder("a", events), Recorder("b", events, fail_on=MEM_GOING_ONLINE),
                           Recorder("c", events)]
    snap = snapshot(m)
    with pytest.raises(HotplugError, match="memory block 8 .*online failed: b says no"):
        m.online_memory_block(8)
    # As the kernel's memory_notify: the cancel goes to the whole chain.
    assert events == [
        ("a", MEM_GOING_ONLINE, 16384, 2048),
        ("b", MEM_GOING_ONLINE, 16384, 2048),
        ("a", MEM_CANCEL_ONLINE, 16384, 2048),
        ("b", MEM_CANCEL_ONLINE, 16384, 2048),
        ("c", MEM_CANCEL_ONLINE, 16384, 2048),
    ]
    # the failure is logged; apart from that log line nothing changed
    assert m.log.grep("memory block 8: online failed: b says no")
    snap.before["log_lines"] += 1
    snap.assert_unchanged()
    assert not m.memory_blocks[8].online
    check_invariants(m)
    # and it can be onlined once the notifier agrees
    m.memory_notifiers.pop(1)
    m.online_memory_block(8)
    assert m.memory_blocks[8].online


def test_offline_busy_block_fails_cleanly(m: Machine, snapshot):
    m.online_memory_block(8)
    got = []
    while (p := m.alloc_pages(G.GFP_KERNEL, 4)) is not None and not HOT0[0] <= p < HOT0[1]:
        got.append(p)
    assert p is not None and HOT0[0] <= p < HOT0[1]
    events: list = []
    m.memory_notifiers.append(Recorder("a", events))
    m.drain_all_pages()
    snap = snapshot(m)
    with pytest.raises(HotplugError, match=rf"memory block 8: offline failed \(-EBUSY\): pfn {p:#x} is allocated \(order 4\)"):
        m.offline_memory_block(8)
    snap.assert_unchanged()
    assert events == []
    assert m.memory_blocks[8].online
    m.free_pages(p, 4)
    m.offline_memory_block(8)
    assert not m.memory_blocks[8].online
    check_invariants(m)


def test_offline_block_with_reserved_pages_fails():
    m = Machine(MachineConfig(memory=64 * MiB, section_size_bits=23))  # x86: pfn 0 reserved
    m.drain_all_pages()
    before = m.nr_present_pages
    with pytest.raises(HotplugError, match="pfn 0x0 is reserved"):
        m.offline_memory_block(0)
    assert m.nr_present_pages == before and m.memory_blocks[0].online
    check_invariants(m)


def test_offline_veto_sends_cancel(m: Machine, snapshot):
    m.online_memory_block(8)
    events: list = []
    m.memory_notifiers += [Recorder("a", events), Recorder("b", events, fail_on=MEM_GOING_OFFLINE)]
    m.drain_all_pages()
    snap = snapshot(m)
    with pytest.raises(HotplugError, match="offline vetoed: b says no"):
        m.offline_memory_block(8)
    assert [e[:2] for e in events] == [("a", MEM_GOING_OFFLINE), ("b", MEM_GOING_OFFLINE),
                                       ("a", MEM_CANCEL_OFFLINE), ("b", MEM_CANCEL_OFFLINE)]
    snap.assert_unchanged()
    check_invariants(m)


def test_offline_drains_per_cpu_pages_of_the_block(m: Machine):
    m.online_memory_block(8)
    live = []
    while (p := m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)) is not None:
        live.append(p)
        if HOT0[0] <= p < HOT0[1]:
            break
    for q in live:
        m.free_pages(q, 0)
    assert m.page_kind(p)[0] == K_PCP
    m.offline_memory_block(8)
    assert m.nr_pcp_pages == 0
    assert m.nr_free_pages == 16384
    check_invariants(m)


def test_bad_requests(m: Machine):
    with pytest.raises(HotplugError, match="already online"):
        m.online_memory_block(0)
    with pytest.raises(HotplugError, match="already offline"):
        m.offline_memory_block(8)
    with pytest.raises(HotplugError, match=r"memory block 10: this machine has no such block \(memory0\.\.memory9"):
        m.online_memory_block(10)
    with pytest.raises(HotplugError):
        m.offline_memory_block(-1)


def test_boot_block_offline_and_online_again(m: Machine):
    boot = stats.buddyinfo(m)
    m.offline_memory_block(1)  # DMA pfns 2048..4095
    assert m.nr_present_pages == 16384 - 2048
    with pytest.raises(InvalidPfn, match="not present"):
        m.check_pfn(3000)
    dma = []
    while (p := m.alloc_pages(G.GFP_KERNEL | G.__GFP_DMA | NOWARN, 10)) is not None:
        dma.append(p)
    assert dma == [0]  # DMA's last block would take it under its MIN mark (1024 - 1023 <= MIN)
    for p in dma:
        m.free_pages(p, 10)
    check_invariants(m)
    m.online_memory_block(1)
    assert stats.buddyinfo(m) == boot
    check_invariants(m)


def test_offline_forgets_contents(m: Machine):
    m.online_memory_block(8)
    m.write(17000, 0, b"will vanish")
    assert m.contents.backed_pages == 1
    m.contents.unmap(17001)
    m.offline_memory_block(8)
    assert m.contents.backed_pages == 0
    assert m.contents.nr_unmapped == 0
    m.online_memory_block(8)
    assert m.read(17000, 0, 11) == bytes(11)
    assert m.contents.is_mapped(17001)


def test_movable_hotplug_memory_only_serves_movable_requests():
    m = Machine(CFG.with_(hotplug_movable=True))
    zones = {z.name: (z.start_pfn, z.end_pfn) for z in m.geometry.zones}
    assert zones["Movable"] == (16384, 20480)
    m.online_memory_block(8)
    m.online_memory_block(9)
    kernel = []
    while (p := m.alloc_pages(G.GFP_KERNEL | NOWARN, 10)) is not None:
        kernel.append(p)
    # every block but the last of each zone (the watermarks keep it): 12 + 4 + 4 - 3
    assert len(kernel) == 13 and max(kernel) < 16384
    assert m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 10) >= 16384
    check_invariants(m)


def test_hot_added_memory_is_used_last(m: Machine):
    # Since Linux 5.10 onlined pages go to the tail of the free lists: existing
    # free memory of the same zone is handed out first.
    m.online_memory_block(8)
    hot = range(16384, 16384 + 2048)
    first = [m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 10) for _ in range(3)]
    assert all(p is not None and p not in hot for p in first)
    check_invariants(m)
