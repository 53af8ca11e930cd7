"""/proc/zoneinfo parsing (by label) and the machines built from it or from a trace's highest pfn."""
from __future__ import annotations

from pathlib import Path

import pytest

from pageext_core.mm.geometry import MachineConfig, build_geometry
from pageext_core.trace.zoneinfo import (
    ZoneinfoError,
    machine_covering,
    machine_from_zoneinfo,
    parse_zoneinfo,
    read_zoneinfo,
    usable_end,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "trace"


def test_one_node_box_with_unpopulated_zones():
    zi = read_zoneinfo(FIX / "zoneinfo_1node.txt")
    assert [(z.node, z.name) for z in zi.zones] == [(0, "DMA"), (0, "DMA32"), (0, "Normal"), (0, "Movable"),
                                                    (0, "Device")]
    dma32 = zi.zones[1]
    assert (dma32.start_pfn, dma32.spanned, dma32.present, dma32.managed) == (4096, 1044480, 782300, 782200)
    assert zi.zones[3].spanned == 0 and zi.zones[3].start_pfn == -1  # unpopulated: no start_pfn line
    assert zi.cpus == 4
    assert zi.end_pfn == 1048576 + 1310720
    cfg = machine_from_zoneinfo(zi)
    g = build_geometry(cfg)
    assert cfg.nodes == 1 and cfg.cpus == 4
    assert cfg.dma_limit == 4096 * 4096 and cfg.dma32_limit == 1048576 * 4096
    assert g.max_pfn >= zi.end_pfn
    # RAM is the present pages rounded up to a max-order block (4 MiB)
    present = 3998 + 782300 + 1310720
    assert present * 4096 <= cfg.memory < present * 4096 + 4 * 2**20 or g.max_pfn >= zi.end_pfn


def test_two_nodes_each_sized_by_its_present_pages():
    zi = read_zoneinfo(FIX / "zoneinfo_2node.txt")
    assert zi.nodes == [0, 1]
    assert zi.cpus == 2
    cfg = machine_from_zoneinfo(zi)
    assert cfg.nodes == 2 and isinstance(cfg.memory, tuple)
    assert cfg.memory[0] == 2 * 2**30  # 3998 + 520192 pages rounded up to a 128 MiB section
    assert build_geometry(cfg).max_pfn >= zi.end_pfn
    assert cfg.dma32_limit == 524288 * 4096  # DMA32 ends at 2 GiB on this box


def test_labels_not_positions_newer_kernels_pad_and_add_items():
    text = (FIX / "zoneinfo_1node.txt").read_text().replace("        spanned  4095", "        spanned  4095\n"
                                                             "        new_item 7")
    text = text.replace("              high:  42", "              high:     42\n              high_min: 3")
    assert parse_zoneinfo(text).zones[0].spanned == 4095


@pytest.mark.parametrize("text, why", [
    ("hello\n", "no 'Node N, zone NAME' line"),
    ("        spanned  12\n", ":1: spanned before any 'Node N, zone NAME' line"),
    ("Node 0, zone   Weird\n", ":1: unknown zone 'Weird'"),
    ("Node 0, zone   Normal\n        spanned  12\n        present  12\n", ":1: zone Normal of node 0 has pages but no start_pfn"),
    ("Node 0, zone   Normal\n        spanned  0\n", "no zone has present pages"),
])
def test_errors_name_the_file_and_line(text, why):
    with pytest.raises(ZoneinfoError) as e:
        parse_zoneinfo(text, "zi.txt")
    assert str(e.value).startswith("zi.txt")
    assert why in str(e.value)


def test_unreadable_file():
    with pytest.raises(ZoneinfoError, match="cannot read it"):
        read_zoneinfo(FIX / "no-such-zoneinfo")


@pytest.mark.parametrize("end", [1, 5000, 0x40000, 0xC0000, 0x110000])
def test_machine_covering_reaches_the_highest_pfn_and_no_further_than_a_step(end):
    cfg = machine_covering(end, MachineConfig())
    g = build_geometry(cfg)
    assert g.max_pfn >= end
    assert all(s >= end or e <= 0x2000 for s, e in g.reserved)  # no reservation on traced pfns but boot's own
    assert cfg.memory >= 64 << 20
    smaller = cfg.memory - (4 << 20)
    if smaller >= 64 << 20:
        assert usable_end(build_geometry(cfg.with_(memory=smaller))) < end
