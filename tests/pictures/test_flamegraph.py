"""The flame graph SVG: one rectangle per frame group, hover titles, self-contained, diff colours."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("matplotlib", reason="pictures need the pictures extra (make install installs it)")

from pageext_core.pictures import flamegraph

SVG = "{http://www.w3.org/2000/svg}"
STACKS = [
    (["entry", "sys_read", "alloc_pages"], 10),
    (["entry", "sys_read", "kmalloc"], 5),
    (["entry", "sys_write", "alloc_pages"], 3),
    (["irq", "alloc_pages"], 2),
]
# Frame groups: all, entry, entry;sys_read, entry;sys_read;alloc_pages, entry;sys_read;kmalloc,
# entry;sys_write, entry;sys_write;alloc_pages, irq, irq;alloc_pages
GROUPS = 9


def groups(svg: bytes) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if re.fullmatch(r"fg\d+", g.get("id") or "")}


def test_one_rect_per_frame_group_with_pages_and_bytes_on_hover() -> None:
    svg = flamegraph.render_flamegraph(STACKS, "test")
    gs = groups(svg)
    assert len(gs) == GROUPS
    titles = {g.find(f"{SVG}title").text for g in gs.values()}
    assert "all: 20 pages, 81920 bytes" in titles
    assert "sys_read: 15 pages, 61440 bytes" in titles
    assert "alloc_pages: 10 pages, 40960 bytes" in titles and "alloc_pages: 3 pages, 12288 bytes" in titles
    for g in gs.values():
        assert len(g.findall(f"{SVG}path")) == 1  # the rectangle itself


def test_widths_are_proportional_to_pages() -> None:
    svg = flamegraph.render_flamegraph(STACKS, "test")
    widths = {}
    for g in groups(svg).values():
        xs = [float(v) for v in re.findall(r"([\d.]+) [\d.]+", g.find(f"{SVG}path").get("d"))][:4]
        widths[g.find(f"{SVG}title").text.split(":")[0] + g.find(f"{SVG}title").text.split(",")[0]] = max(xs) - min(xs)
    assert widths["sys_readsys_read: 15 pages"] == pytest.approx(widths["allall: 20 pages"] * 15 / 20, rel=0.01)
    assert widths["irqirq: 2 pages"] == pytest.approx(widths["allall: 20 pages"] * 2 / 20, rel=0.01)


def test_self_contained_and_deterministic() -> None:
    a = flamegraph.render_flamegraph(STACKS, "test")
    assert a == flamegraph.render_flamegraph(STACKS, "test")
    text = a.decode()
    assert "<script" not in text and "@font-face" not in text and "<dc:date>" not in text
    assert not re.search(r'(href|src)="(https?:|//)|url\((https?:|//)', text)  # nothing fetched


def test_diff_colours_growth_red_and_shrinkage_blue() -> None:
    svg = flamegraph.render_diff([(["a", "grows"], 2, 8), (["a", "shrinks"], 6, 1), (["a", "same"], 4, 4)], "d")
    fill = {}
    for g in groups(svg).values():
        name = g.find(f"{SVG}title").text.split(":")[0]
        style = g.find(f"{SVG}path").get("style")
        fill[name] = re.search(r"fill: #([0-9a-f]{6})", style).group(1)
    r, gr, b = (int(fill["grows"][i : i + 2], 16) for i in (0, 2, 4))
    assert r == 255 and b < 200 and gr == b
    r, gr, b = (int(fill["shrinks"][i : i + 2], 16) for i in (0, 2, 4))
    assert b == 255 and r < 255 and r == gr
    assert fill["same"][0:2] == fill["same"][2:4] == fill["same"][4:6] >= "e0"  # unchanged: pale grey
    titles = {g.find(f"{SVG}title").text for g in groups(svg).values()}
    assert "grows: 2 -> 8 pages (+6 pages, +24576 bytes)" in titles
    assert "shrinks: 6 -> 1 pages (-5 pages, -20480 bytes)" in titles


def test_show_stacks_text_is_read_root_first() -> None:
    text = " leaf+0x1/0x10\n mid+0x2/0x20\n root+0x3/0x30\nnr_base_pages: 12\n\n other+0x4/0x40\nnr_base_pages: 1\n\n"
    assert flamegraph.parse_show_stacks(text) == [(["root+0x3/0x30", "mid+0x2/0x20", "leaf+0x1/0x10"], 12),
                                                   (["other+0x4/0x40"], 1)]


def test_write_flamegraph_for_page_owner_sort(tmp_path) -> None:
    out = tmp_path / "fg.svg"
    flamegraph.write_flamegraph(str(out), STACKS)
    assert len(groups(out.read_bytes())) == GROUPS
    flamegraph.write_diff_flamegraph(str(out), [(f, n, n + 1) for f, n in STACKS])
    assert len(groups(out.read_bytes())) == GROUPS
