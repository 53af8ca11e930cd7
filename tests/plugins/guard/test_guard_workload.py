"""A random workload with guards: invariants after every step, planted overruns, no leak at the end."""
from __future__ import annotations

import random

import pytest
from guardsupport import STACKS, TINY, boot, check_guards_consistent, guard_of, held_blocks

from pageext_core.mm import PageFault, check_invariants
from pageext_core.mm import buddy as _b
from pageext_core.mm.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, parse_gfp

GFPS = (GFP_KERNEL, GFP_HIGHUSER_MOVABLE, parse_gfp("GFP_DMA"), parse_gfp("GFP_KERNEL|__GFP_RECLAIMABLE"))
ORDERS = (0, 0, 0, 0, 1, 1, 2, 3, 5)


def plant(m, pfn: int, offset: int) -> tuple[bool, str | None]:
    """Write one byte at ``pfn*4096+offset``: (was the target page a guard page, fault report or None)."""
    if not m.pfn_valid(pfn):
        return False, None
    is_guard = m.page_kind(pfn)[0] == _b.K_HELD
    try:
        m.write(pfn, offset, b"\x5a")
    except PageFault as exc:
        assert (exc.pfn, exc.offset) == (pfn, offset)
        return is_guard, exc.report
    return is_guard, None


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("n,seed", [(1, 1), (2, 2), (3, 3), (3, 4), (5, 5)])
def test_random_workload(stack: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    pe = boot(f"debug_pagealloc=on debug_guardpage_minorder={n}", stack, config=TINY)
    m = pe.machine
    g = guard_of(pe)
    boot_free = m.nr_free_pages
    live: list[tuple[str, int, int]] = []  # (how, pfn, order or nr_pages)
    planted = reported = 0
    for _step in range(400):
        r = rng.random()
        if r < 0.55 or not live:
            if rng.random() < 0.08:
                nr = rng.randint(1, 12)
                pfn = m.alloc_pages_exact(nr)
                if pfn is not None:
                    live.append(("exact", pfn, nr))
            else:
                order = rng.choice(ORDERS)
                pfn = m.alloc_pages(rng.choice(GFPS), order)
                if pfn is not None:
                    live.append(("pages", pfn, order))
        elif r < 0.9:
            how, pfn, size = live.pop(rng.randrange(len(live)))
            if how == "exact":
                m.free_pages_exact(pfn, size)
            else:
                m.free_pages(pfn, size)
        elif r < 0.93:
            m.drain_all_pages()
        else:
            # Plant an overrun (the byte past the end) and an underrun (the byte before the start).
            how, pfn, size = rng.choice(live)
            nr = size if how == "exact" else 1 << size
            # The block the report must name: the allocation itself, or for alloc_pages_exact
            # (split into order-0 pages) the page at that end.
            past_end = (pfn, size) if how == "pages" else (pfn + nr - 1, 0)
            before_start = (pfn, size) if how == "pages" else (pfn, 0)
            for target, off, (head, order), where in (
                    (pfn + nr, 0, past_end, "0 bytes to the right of"),
                    (pfn - 1, 4095, before_start, "1 bytes to the left of")):
                before = len(g.hits)
                is_guard, rep = plant(m, target, off)
                planted += 1
                if is_guard:
                    assert rep is not None
                    lines = rep.splitlines()
                    assert lines[0].startswith("pageext: page is a guard page: "), rep
                    assert lines[1].endswith(f"is located {where}"), rep
                    assert f": order-{order} block at pfn {head:#x}" in lines[2], rep
                    assert len(g.hits) == before + 1 and (g.hits[-1].pfn, g.hits[-1].offset) == (target, off)
                    reported += 1
                else:
                    assert rep is None or "guard page" not in rep
                    assert len(g.hits) == before
        check_invariants(m)
        check_guards_consistent(pe)
    assert reported > 0, "the workload never hit a guard: the test lost its point"
    assert len([f for f in pe.findings() if f.kind == "guard-hit"]) == reported
    for how, pfn, size in live:
        if how == "exact":
            m.free_pages_exact(pfn, size)
        else:
            m.free_pages(pfn, size)
    m.drain_all_pages()
    check_invariants(m)
    assert held_blocks(m) == {} and m.nr_held_pages == 0
    assert m.nr_free_pages == boot_free
    assert g.nr_created == g.nr_released > 0
    check_guards_consistent(pe)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("n", [1, 3])
def test_session_workload_planted_overruns(stack: str, n: int) -> None:
    """The core's synthetic workload plants overruns and underruns; each one that lands in a guard is a guard hit."""
    workload = pytest.importorskip("pageext_core.session.workload")
    from pageext_core.session.config import WorkloadSpec

    pe = boot(f"debug_pagealloc=on debug_guardpage_minorder={n}", stack)
    spec = WorkloadSpec(seed=n, operations=3000, lifetime=300, faults={"overrun": 30, "underrun": 30})
    res = workload.run_workload(pe, spec)
    check_invariants(pe.machine)
    planted = [p for p in res.planted if "skipped" not in p]
    in_guard = [p for p in planted if p["target"] == "guard page"]
    assert in_guard, "no planted write landed in a guard"
    hits = {(f.pfn, f.offset) for f in pe.findings() if f.kind == "guard-hit"}
    assert hits == {(p["pfn"], p["offset"]) for p in in_guard}
    assert all(p["faulted"] for p in in_guard)
