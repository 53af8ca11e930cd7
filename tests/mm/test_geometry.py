"""Machine geometry: nodes, zones, holes, sections, reservations, config errors, boot cost.

Expected numbers are worked out by hand from the x86_64 facts: 4 KiB pages,
DMA below 16 MiB (pfn 4096), DMA32 below 4 GiB (pfn 1048576), the legacy
hole 640 KiB-1 MiB (pfns 160..255), the PCI hole 3-4 GiB with the RAM it
covers relocated above 4 GiB, 128 MiB sections (32768 pages), the BIOS page
(pfn 0) and the kernel image (16 MiB from 16 MiB) reserved, and the memmap
(64 bytes per present page) reserved top-down in each node.
"""
from __future__ import annotations

import gc

import pytest

from pageext_core.mm import (
    ConfigError,
    GiB,
    InvalidPfn,
    KiB,
    Machine,
    MachineConfig,
    MiB,
    TiB,
    check_invariants,
    format_size,
    parse_size,
    stats,
)
from pageext_core.mm import gfp as G
from pageext_core.mm.buddy import K_ALLOC, K_ALLOC_MOVABLE, K_RESERVED

DMA_END = 16 * MiB // 4096  # 4096
DMA32_END = 4 * GiB // 4096  # 1048576


def zone_table(m: Machine) -> dict[tuple[int, str], tuple[int, int, int, int, int]]:
    """(node, zone) -> (start, end, present, reserved, free) for populated zones."""
    out = {}
    for z in m.geometry.zones:
        if m.zone_present[z.index]:
            out[(z.node, z.name)] = (z.start_pfn, z.end_pfn, m.zone_present[z.index],
                                     m.zone_reserved[z.index], m.zone_free[z.index])
    return out


def test_1gib_x86_machine():
    m = Machine(MachineConfig(memory=1 * GiB))
    g = m.geometry
    end = GiB // 4096  # 262144
    assert g.max_pfn == end
    assert [(n.nid, n.start_pfn, n.end_pfn) for n in g.nodes] == [(0, 0, end)]
    assert g.ram == [(0, 160), (256, end)]
    assert g.holes == [(160, 256)]
    # memmap: (160 + 261888) pages * 64 B = 16769.5 KiB -> 4095 pages at the top
    memmap = -(-(160 + (end - 256)) * 64 // 4096)
    assert memmap == 4095
    assert g.reserved == [(0, 1), (4096, 8192), (end - memmap, end)]
    assert zone_table(m) == {
        (0, "DMA"): (0, DMA_END, 160 + (DMA_END - 256), 1, 160 + (DMA_END - 256) - 1),
        (0, "DMA32"): (DMA_END, end, end - DMA_END, 4096 + memmap, end - DMA_END - 4096 - memmap),
    }
    assert m.nr_free_pages == 3999 + 249857
    assert m.present_sections() == list(range(8))
    assert not m.section_present(8)
    check_invariants(m)


def test_8gib_x86_machine_relocates_the_pci_hole():
    m = Machine(MachineConfig(memory=8 * GiB))
    g = m.geometry
    low_end = 3 * GiB // 4096  # 786432: RAM stops at the PCI hole
    top = (4 + 5) * GiB // 4096  # the 5 GiB above 3 GiB move to 4..9 GiB: 2359296
    assert g.max_pfn == top
    assert g.ram == [(0, 160), (256, low_end), (DMA32_END, top)]
    assert g.holes == [(160, 256), (low_end, DMA32_END)]
    present = 160 + (low_end - 256) + (top - DMA32_END)
    assert present == 8 * GiB // 4096 - 96
    memmap = -(-present * 64 // 4096)
    assert memmap == 32767
    assert zone_table(m) == {
        (0, "DMA"): (0, DMA_END, 4000, 1, 3999),
        (0, "DMA32"): (DMA_END, DMA32_END, low_end - DMA_END, 4096, low_end - DMA_END - 4096),
        (0, "Normal"): (DMA32_END, top, top - DMA32_END, memmap, top - DMA32_END - memmap),
    }
    # sections 24..31 (3-4 GiB) are absent; 32..71 present
    assert m.present_sections() == list(range(24)) + list(range(32, 72))
    assert not m.section_present(24) and not m.section_present(31) and m.section_present(32)
    with pytest.raises(InvalidPfn, match="hole"):
        m.check_pfn(low_end)
    m.check_pfn(DMA32_END)
    check_invariants(m)


def test_boot_log_zone_ranges():
    m = Machine(MachineConfig(memory=8 * GiB))
    text = m.log.text()
    assert "  DMA      [mem 0x0000000000000000-0x0000000000ffffff]" in text
    assert "  DMA32    [mem 0x0000000001000000-0x00000000ffffffff]" in text
    assert "  Normal   [mem 0x0000000100000000-0x000000023fffffff]" in text
    assert "  node   0: [mem 0x0000000000100000-0x00000000bfffffff]" in text
    assert "pageext: memory model: SPARSEMEM, 1 node(s), 2 CPU(s)" in text


def test_two_nodes_with_uneven_memory():
    m = Machine(MachineConfig(memory=(1 * GiB, 3 * GiB), nodes=2, cpus=4))
    g = m.geometry
    n0_end = GiB // 4096
    # node 1: 1..3 GiB below the PCI hole, then 1 GiB relocated to 4..5 GiB
    n1_end = 5 * GiB // 4096
    assert [(n.start_pfn, n.end_pfn) for n in g.nodes] == [(0, n0_end), (n0_end, n1_end)]
    n1_memmap = (3 * GiB // 4096) * 64 // 4096  # 12288, top of node 1
    assert zone_table(m) == {
        (0, "DMA"): (0, DMA_END, 4000, 1, 3999),
        (0, "DMA32"): (DMA_END, n0_end, n0_end - DMA_END, 4096 + 4095, n0_end - DMA_END - 8191),
        (1, "DMA32"): (n0_end, DMA32_END, 3 * GiB // 4096 - n0_end, 0, 3 * GiB // 4096 - n0_end),
        (1, "Normal"): (DMA32_END, n1_end, GiB // 4096, n1_memmap, GiB // 4096 - n1_memmap),
    }
    assert [m.cpu_to_node(c) for c in range(4)] == [0, 0, 1, 1]
    check_invariants(m)


def test_movablecore_takes_the_top_of_normal():
    m = Machine(MachineConfig(memory=8 * GiB, movablecore=1 * GiB))
    zones = {z.name: (z.start_pfn, z.end_pfn) for z in m.geometry.zones}
    top = 9 * GiB // 4096
    mstart = top - GiB // 4096
    assert zones["Normal"] == (DMA32_END, mstart)
    assert zones["Movable"] == (mstart, top)
    assert "Movable zone start for each node" in m.log.text()
    assert "  Node 0: 0x0000000200000000" in m.log.text()
    check_invariants(m)


def test_movablecore_across_nodes_is_split_evenly():
    m = Machine(MachineConfig(memory=16 * GiB, nodes=2, movablecore=2 * GiB))
    mov = [z for z in m.geometry.zones if z.name == "Movable"]
    assert [z.spanned_pages for z in mov] == [GiB // 4096, GiB // 4096]
    assert [z.end_pfn for z in mov] == [n.end_pfn for n in m.geometry.nodes]


def test_custom_hole_makes_a_section_absent():
    cfg = MachineConfig(memory=1 * GiB, holes=((256 * MiB, 384 * MiB),))
    m = Machine(cfg)
    assert m.present_sections() == [0, 1, 3, 4, 5, 6, 7]
    assert (65536, 98304) in m.geometry.holes
    assert m.nr_present_pages == GiB // 4096 - 96 - 32768
    with pytest.raises(InvalidPfn, match=r"hole \[0x10000, 0x18000\)"):
        m.check_pfn(70000)
    # nothing ever gets handed out from the hole
    got = []
    while (p := m.alloc_pages(G.GFP_KERNEL | G.__GFP_NOWARN, 10)) is not None:
        got.append(p)
    assert got and not any(65536 <= p < 98304 for p in got)
    check_invariants(m)


def test_legacy_hole_pages_are_not_memory():
    m = Machine(MachineConfig(memory=64 * MiB))
    for pfn in (160, 200, 255):
        assert not m.pfn_valid(pfn)
        with pytest.raises(InvalidPfn, match="hole"):
            m.check_pfn(pfn)
    assert m.pfn_valid(159) and m.pfn_valid(256)


def test_no_x86_holes():
    m = Machine(MachineConfig(memory=8 * GiB, x86_holes=False, kernel_image=0, reserve_memmap=False))
    assert m.geometry.ram == [(0, 8 * GiB // 4096)]
    assert m.geometry.holes == []
    assert m.nr_free_pages == 8 * GiB // 4096


def test_flatmem_has_the_same_layout_as_sparsemem():
    sparse = Machine(MachineConfig(memory=1 * GiB))
    flat = Machine(MachineConfig(memory=1 * GiB, memory_model="FLATMEM"))
    assert zone_table(flat) == zone_table(sparse)
    assert stats.buddyinfo(flat) == stats.buddyinfo(sparse)
    assert "pageext: memory model: FLATMEM" in flat.log.text()


def test_memblock_alloc_before_free_all_is_reserved():
    cfg = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
    m = Machine(cfg, memblock_only=True)
    assert not m.booted
    first = m.memblock_alloc(0, 10)
    assert first == 16384 - 10  # top-down
    second = m.memblock_alloc(0, 6)
    assert second == 16384 - 16
    m.free_all()
    assert m.booted
    assert m.nr_reserved_pages == 16
    assert m.page_kind(16370)[0] == K_RESERVED
    assert m.nr_free_pages == 16384 - 16
    check_invariants(m)
    with pytest.raises(RuntimeError):
        m.memblock_alloc(0, 1)


def test_memblock_alloc_too_large():
    cfg = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
    m = Machine(cfg, memblock_only=True)
    with pytest.raises(ConfigError, match="cannot reserve"):
        m.memblock_alloc(0, 16385)


def test_tiny_machine_turns_mobility_grouping_off():
    # 8 MiB = 2048 pages < 5 migratetypes * 512 pages: the kernel disables grouping
    m = Machine(MachineConfig(memory=8 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False))
    assert not m.mobility_grouping
    assert "mobility grouping off" in m.log.text()
    pfn = m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 2)
    assert pfn is not None
    check_invariants(m)


@pytest.mark.parametrize("cfg,fix", [
    (MachineConfig(memory=1 * GiB + 4096), "multiple of 4MiB"),
    (MachineConfig(memory=0), "positive multiple"),
    (MachineConfig(memory=2 * MiB), "multiple of 4MiB"),
    (MachineConfig(memory=1 * GiB, nodes=3), "does not split evenly over 3 nodes"),
    (MachineConfig(memory=(1 * GiB,), nodes=2), "lists 1 node sizes but nodes = 2"),
    (MachineConfig(memory=(1 * GiB, 132 * MiB), nodes=2), "multiple of the section size 128MiB"),
    (MachineConfig(memory=1 * GiB, nodes=0), "expected 1..64"),
    (MachineConfig(memory=1 * GiB, nodes=65), "expected 1..64"),
    (MachineConfig(memory=1 * GiB, cpus=0), "expected 1..4096"),
    (MachineConfig(memory=1 * GiB, memory_model="DISCONTIGMEM"), "expected one of SPARSEMEM, FLATMEM"),
    (MachineConfig(memory=1 * GiB, max_order=0), "expected 1..14"),
    (MachineConfig(memory=1 * GiB, pageblock_order=11), "expected 0..max_order"),
    (MachineConfig(memory=1 * GiB, section_size_bits=21), "at least 22"),
    (MachineConfig(memory=1 * GiB, holes=((100, 8192),)), "page-aligned"),
    (MachineConfig(memory=1 * GiB, holes=((8192, 4096),)), "start < end"),
    (MachineConfig(memory=64 * MiB, holes=((0, 64 * MiB),), x86_holes=False), "no memory left"),
    (MachineConfig(memory=1 * GiB, hotplug=100 * MiB), "multiple of the memory block size 128MiB"),
    (MachineConfig(memory=1 * GiB, hotplug=128 * MiB, memory_block_size=96 * MiB), "multiple of the section size"),
    (MachineConfig(memory=1 * GiB, movablecore=512 * MiB), "make it smaller"),
    (MachineConfig(memory=8 * GiB, movablecore=16 * GiB), "more than node 0 can give"),
    (MachineConfig(memory=1 * GiB, dma_limit=5 * GiB), "dma_limit <= dma32_limit"),
    (MachineConfig(memory=4 * MiB, x86_holes=False, reserve_memmap=True, kernel_image=0), "give the machine more memory"),
])
def test_bad_configs_say_how_to_fix(cfg, fix):
    with pytest.raises(ConfigError) as ei:
        Machine(cfg)
    assert fix in str(ei.value)


@pytest.mark.parametrize("memory", ["1GiB", 1.5 * GiB, (1 * GiB, "1GiB")])
def test_memory_of_the_wrong_type_is_a_config_error(memory):
    nodes = len(memory) if isinstance(memory, tuple) else 1
    with pytest.raises(ConfigError, match="parse_size"):
        Machine(MachineConfig(memory=memory, nodes=nodes))


@pytest.mark.parametrize("text,value", [
    ("4GiB", 4 * GiB), ("512MiB", 512 * MiB), ("64M", 64 * MiB), ("1T", TiB), ("4096", 4096),
    ("1.5GiB", 3 * GiB // 2), ("640 KiB", 640 * KiB), (4096, 4096), ("2g", 2 * GiB), ("8kb", 8 * KiB),
])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["", "GiB", "4 lightyears", "1.0000001KiB", -1, True, 2.5])
def test_parse_size_errors(bad):
    with pytest.raises(ConfigError):
        parse_size(bad)


@pytest.mark.parametrize("n,text", [(GiB, "1GiB"), (768 * MiB, "768MiB"), (4096, "4KiB"), (100, "100B"),
                                    (TiB, "1TiB"), (0, "0B"), (3 * GiB // 2, "1536MiB")])
def test_format_size(n, text):
    assert format_size(n) == text


# How fast they boot is measured in benchmarks/bench_mm.py (targets there), not asserted here.
@pytest.mark.parametrize("memory", [64 * MiB, 1 * GiB, 8 * GiB, 64 * GiB])
def test_boot_sizes(memory):
    m = Machine(MachineConfig(memory=memory))
    assert m.booted and m.nr_free_pages > 0


def test_one_tib_machine_boots_in_little_host_memory():
    gc.collect()
    m = Machine(MachineConfig(memory=1 * TiB))
    try:
        g = m.geometry
        # 1 TiB with the PCI hole relocated: RAM to 1 TiB + 1 GiB
        assert g.max_pfn == (TiB + GiB) // 4096
        hb = m.host_bytes()
        allocator = hb["state"] + hb["pflags"] + hb["pageblocks"] + hb["free_lists"]
        per_page = allocator / m.nr_present_pages
        assert per_page < 6.0, f"{per_page:.2f} host bytes per simulated page"
        assert hb["contents"] == 0
        free0 = m.nr_free_pages
        a = m.alloc_pages(G.GFP_KERNEL, 10)
        b = m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
        c = m.alloc_pages(G.GFP_KERNEL | G.__GFP_DMA, 3)
        assert a >= DMA32_END and b >= DMA32_END  # Normal first
        assert c < DMA_END
        assert m.page_kind(a) == (K_ALLOC, 10, a)
        assert m.page_kind(b) == (K_ALLOC_MOVABLE, 0, b)
        m.write(b, 0, b"hello")
        assert m.read(b, 0, 5) == b"hello"
        for pfn, order in ((a, 10), (b, 0), (c, 3)):
            m.free_pages(pfn, order)
        m.drain_all_pages()
        assert m.nr_free_pages == free0
        assert m.nr_allocated_pages == 0
    finally:
        del m
        gc.collect()


def test_kernel_image_must_fit_in_node_0() -> None:
    from pageext_core.mm import ConfigError, MachineConfig
    from pageext_core.mm.geometry import build_geometry

    with pytest.raises(ConfigError, match=r"kernel_image 2GiB: the kernel is loaded at 16 MiB and must fit in node 0 "
                                          r"\(1GiB\); make it smaller, or 0 for none"):
        build_geometry(MachineConfig(memory=1 << 30, kernel_image=2 << 30))
    # 16 MiB at 16 MiB on a 64 MiB machine fits (the default).
    build_geometry(MachineConfig(memory=64 << 20))
