"""unusable_index and extfrag_index: the kernel's formulas, its text formats, and the reports of a machine."""
from __future__ import annotations

import random

import numpy as np
import pytest

from pageext_core.mm import extfrag, stats
from pageext_core.mm.geometry import MachineConfig
from pageext_core.mm.gfp import GFP_KERNEL
from pageext_core.page_ext import boot


def kernel_indices(nr_free: list[int], order: int) -> tuple[int, int]:
    """(unusable, fragmentation) for one order, written out step by step as mm/vmstat.c defines them."""
    total = free_pages = suitable = 0
    for o, n in enumerate(nr_free):
        total += n
        free_pages += n << o
        if o >= order:
            suitable += n << (o - order)
    unusable = 1000 if free_pages == 0 else (free_pages - (suitable << order)) * 1000 // free_pages
    if total == 0:
        frag = 0
    elif suitable:
        frag = -1000
    else:
        frag = 1000 - (1000 + free_pages * 1000 // (1 << order)) // total
    return unusable, frag


def test_four_single_pages() -> None:
    """Four free order-0 pages: order 0 can be served (-1.000), order 1 cannot, for want of contiguity."""
    nr = np.array([4] + [0] * 10)
    assert extfrag.unusable_free_index(nr)[:2].tolist() == [0, 1000]
    # order 1: 1000 - (1000 + 4*1000/2) / 4 = 1000 - 750
    assert extfrag.fragmentation_index(nr)[:2].tolist() == [-1000, 250]
    assert extfrag.format_unusable(extfrag.unusable_free_index(nr)[:2]) == "0.000 1.000 "
    assert extfrag.format_extfrag(extfrag.fragmentation_index(nr)[:2]) == "-1.000  0.250 "


def test_no_free_memory() -> None:
    nr = np.zeros(11, np.int64)
    assert set(extfrag.unusable_free_index(nr).tolist()) == {1000}
    assert set(extfrag.fragmentation_index(nr).tolist()) == {0}


def test_vectorised_equals_the_kernel_arithmetic_on_random_zones() -> None:
    rng = random.Random(7)
    for _ in range(300):
        nr = [rng.choice([0, 0, 1, 3, 50, 4000]) for _ in range(11)]
        u, f = extfrag.unusable_free_index(np.array(nr)), extfrag.fragmentation_index(np.array(nr))
        for order in range(11):
            assert (int(u[order]), int(f[order])) == kernel_indices(nr, order), (nr, order)


def test_reports_have_one_line_per_populated_zone_in_the_kernel_format() -> None:
    pe = boot(MachineConfig(memory=256 << 20), "")
    m = pe.machine
    for _ in range(300):  # break some large blocks up
        m.alloc_pages(GFP_KERNEL, 0)
    per = stats.free_blocks(m).sum(axis=1)
    zones = stats.populated_zones(m)
    for name, _fn, fmt in (("unusable_index", extfrag.unusable_free_index, "{:d}.{:03d}"),
                          ("extfrag_index", extfrag.fragmentation_index, "{:2d}.{:03d}")):
        text = pe.report(name)
        lines = text.splitlines()
        assert len(lines) == len(zones)
        for z, line in zip(zones, lines):
            head = f"Node {z.node}, zone {z.name:>8s} "
            assert line.startswith(head) and text.endswith(" \n")
            values = [kernel_indices(per[z.index].tolist(), o)[0 if name == "unusable_index" else 1]
                      for o in range(m.nr_orders)]
            want = "".join(("-1.000" if v == -1000 else fmt.format(v // 1000, v % 1000)) + " " for v in values)
            assert line[len(head):] == want


@pytest.mark.parametrize("value, text", [(0, "0.000"), (7, "0.007"), (1000, "1.000"), (999, "0.999")])
def test_unusable_print(value: int, text: str) -> None:
    assert extfrag.format_unusable(np.array([value])) == text + " "


@pytest.mark.parametrize("value, text", [(0, " 0.000"), (-1000, "-1.000"), (1000, " 1.000"), (42, " 0.042")])
def test_extfrag_print(value: int, text: str) -> None:
    assert extfrag.format_extfrag(np.array([value])) == text + " "
