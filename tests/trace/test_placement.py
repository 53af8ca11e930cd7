"""``alloc_pages_at``: exactly the asked block, or a refusal that names the page in the way and changes nothing."""
from __future__ import annotations

import numpy as np
import pytest

from pageext_core.mm import MIGRATE_TYPES, Machine, MachineConfig, MiB
from pageext_core.mm import buddy as _b
from pageext_core.mm.callouts import Callout, Callouts
from pageext_core.mm.errors import InvalidOrder, PlacementRefused
from pageext_core.mm.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, parse_gfp
from pageext_core.mm.invariants import check_invariants
from pageext_core.mm.pageflags import PG_head

TINY = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)


def _state(m: Machine) -> tuple:
    lists = tuple(m.free_list(z, o, mt) for z in range(m.nr_zones) for mt in range(MIGRATE_TYPES)
                  for o in range(m.nr_orders))
    pcps = tuple(m.pcp_snapshot(c, z) for c in range(m.config.cpus) for z in range(m.nr_zones))
    return (m.state.tobytes(), m.pflags.tobytes(), m.pb_mt.tobytes(), lists, tuple(m.zone_free),
            tuple(m.zone_pcp), pcps, m.nr_allocs, m.clock_ns)


def test_places_inside_a_free_max_order_block_and_lists_the_rest():
    m = Machine(TINY)
    free0 = m.nr_free_pages
    assert m.alloc_pages_at(5000, 2, GFP_KERNEL) == 5000
    assert m.state[5000] == _b.ALLOC_K | 2
    assert m.nr_free_pages == free0 - 4
    # the rest of the order-10 block at 4096 is free, in blocks of every order the split made
    assert m.is_free(5004) and m.is_free(4999) and m.is_free(4096) and m.is_free(5119)
    check_invariants(m)
    m.free_pages(5000, 2)
    check_invariants(m)
    assert m.state[5000] == _b.PCP_K | 2  # order 2 is freed to the per-CPU list first
    m.drain_all_pages()
    assert m.nr_free_pages == free0
    assert m.state[4096] == _b.FREE_K | 10  # merged back whole


def test_movable_gfp_makes_a_movable_block_and_comp_a_head():
    m = Machine(TINY)
    m.alloc_pages_at(8192, 3, GFP_HIGHUSER_MOVABLE | parse_gfp("__GFP_COMP"))
    assert m.state[8192] == _b.ALLOCM_K | 3
    assert m.page_flags(8192) == 1 << PG_head
    check_invariants(m)


def test_takes_a_page_from_a_per_cpu_list():
    m = Machine(TINY)
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    assert m.state[p] == _b.PCP_K
    pcp0 = m.nr_pcp_pages
    assert m.alloc_pages_at(p, 0, GFP_KERNEL) == p
    assert m.nr_pcp_pages == pcp0 - 1
    assert all(p not in pl for c in range(m.config.cpus) for z in range(m.nr_zones)
               for pl in m.pcp_snapshot(c, z).lists)
    check_invariants(m)


def test_an_order_1_block_made_of_a_per_cpu_page_and_a_free_page():
    m = Machine(TINY)
    a = m.alloc_pages(GFP_KERNEL, 0)
    b = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(a, 0)  # a stays on the per-CPU list
    m.drain_all_pages()
    m.free_pages(b, 0)
    head = min(a, b) & ~1
    if {a, b} != {head, head + 1}:
        pytest.skip("the per-CPU list handed out pages that are not buddies")
    m.alloc_pages_at(head, 1, GFP_KERNEL)
    assert m.state[head] == _b.ALLOC_K | 1
    check_invariants(m)


@pytest.mark.parametrize("pfn, order, why", [
    (5001, 0, "page 0x1389 is allocated (part of the order-2 block at 0x1388)"),
    (5000, 3, "page 0x1388 is allocated"),
    (1 << 20, 0, "outside memory (pfns 0..0x3fff)"),
    (5002, 2, "not aligned to its order"),
])
def test_refusals_name_the_page_and_change_nothing(pfn, order, why):
    m = Machine(TINY)
    m.alloc_pages_at(5000, 2, GFP_KERNEL)
    before = _state(m)
    with pytest.raises(PlacementRefused) as e:
        m.alloc_pages_at(pfn, order, GFP_KERNEL)
    assert why in str(e.value)
    assert str(e.value).startswith(f"pfn {pfn:#x} order {order}: ")
    assert _state(m) == before


def test_reserved_and_hole_pages_are_refused():
    m = Machine(MachineConfig(memory=64 * MiB))  # x86 holes, kernel image at 16 MiB
    with pytest.raises(PlacementRefused, match="page 0x1000 is reserved"):
        m.alloc_pages_at(0x1000, 0, GFP_KERNEL)
    with pytest.raises(PlacementRefused, match="in a hole"):
        m.alloc_pages_at(0xa0, 0, GFP_KERNEL)
    with pytest.raises(InvalidOrder):
        m.alloc_pages_at(0, 11, GFP_KERNEL)


def test_call_outs_fire_as_for_alloc_pages():
    m = Machine(TINY)
    seen = []
    m.install(Callouts(alloc=(Callout("test", lambda pfn, order, gfp, mt: seen.append((pfn, order, gfp, mt, m.clock_ns))),)))
    m.clock_ns = 1000
    m.alloc_pages_at(6000 & ~7, 3, GFP_KERNEL)
    assert seen == [(6000 & ~7, 3, GFP_KERNEL, 0, 1000 + m.op_cost_ns)]
    assert m.nr_allocs == 1


def test_many_random_placements_keep_the_allocator_consistent():
    m = Machine(TINY)
    rng = np.random.default_rng(3)
    placed = {}
    for _ in range(300):
        order = int(rng.integers(0, 4))
        pfn = int(rng.integers(0, m.geometry.max_pfn >> order)) << order
        try:
            m.alloc_pages_at(pfn, order, GFP_KERNEL)
            placed[pfn] = order
        except PlacementRefused:
            assert not m.is_free(pfn) or any(not m.is_free(p) for p in range(pfn, pfn + (1 << order)))
        if placed and rng.random() < 0.3:
            p = sorted(placed)[int(rng.integers(0, len(placed)))]
            m.free_pages(p, placed.pop(p))
    check_invariants(m)
