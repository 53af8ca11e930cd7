"""The per-CPU refill and bulk free work per run, not per block: they must do exactly what per-block code does.

``_rmqueue_bulk`` takes same-order blocks as one slice and a split block's
pieces as a range (holding a hold rule's pieces in one batch);
``_free_pcppages_bulk`` merges with its state bound once, releasing a hold
rule's guards by state and clearing their bits in one batch.  The
reference below is the straightforward code they replaced: ``__rmqueue``
block by block (each split through ``_expand``, which asks the rule or the
split call-outs per half) and ``__free_one_page`` block by block (each held
buddy through ``_release_held``).  Random sequences run on a machine with
the fast paths and on one patched with the reference; the pfns handed out
and every piece of allocator state (and, with guard pages, every page_ext
word and the direct map) must agree after every step.
"""
from __future__ import annotations

import types

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pageext_core as pc
from pageext_core.mm import Machine, MachineConfig, MiB
from pageext_core.mm import buddy as _b
from pageext_core.mm.gfp import __GFP_NOWARN, __GFP_RECLAIMABLE, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_USER

SMALL = MachineConfig(memory=32 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False, cpus=2)
GFPS = (GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_USER, GFP_KERNEL | __GFP_RECLAIMABLE)
ORDERS = (0, 0, 0, 1, 2, 3, 4, 9)


def reference_rmqueue_bulk(self: _b.BuddyAllocator, zone: int, order: int, mt: int, count: int, aflags: int,
                           out: list[int]) -> None:
    """rmqueue_bulk as the kernel writes it: ``__rmqueue`` once per block."""
    for _ in range(count):
        pfn = self._rmqueue(zone, order, mt, aflags)
        if pfn < 0:
            break
        self._st[pfn] = _b.PCP_K | order
        out.append(pfn)


def reference_free_pcppages_bulk(self: _b.BuddyAllocator, zone: int, count: int, pcp: _b.PerCpuPages, pindex: int,
                                 lists: list[list[int]]) -> None:
    """free_pcppages_bulk as the kernel writes it: ``__free_one_page`` once per block."""
    count = min(pcp.count, count)
    base = zone * _b.NR_PCP_LISTS
    pindex -= 1
    while count > 0:
        while True:
            pindex += 1
            if pindex >= _b.NR_PCP_LISTS:
                pindex = 0
            pl = lists[base + pindex]
            if pl:
                break
        order = pindex // 3 if pindex < _b.NR_PCP_ORDER_LISTS else self.thp_order
        n = 1 << order
        k = min(len(pl), -(-count // n))
        cold = pl[:k]
        del pl[:k]
        self.nr_pcp_returned += k
        count -= k * n
        pcp.count -= k * n
        self.zone_pcp[zone] -= k * n
        for p in cold:
            self._free_one(p, order, zone)


def use_reference(machine: Machine) -> None:
    m = machine.buddy
    m._rmqueue_bulk = types.MethodType(reference_rmqueue_bulk, m)  # type: ignore[method-assign]
    m._free_pcppages_bulk = types.MethodType(reference_free_pcppages_bulk, m)  # type: ignore[method-assign]


def state_of(machine: Machine) -> tuple:
    m = machine.buddy
    lists = tuple(bytes(m._fl_arr[li][: m._fl_n[li]]) for li in range(len(m._fl_n)))  # order matters: stacks
    return (m.state.tobytes(), m.pflags.tobytes(), m.pb_mt.tobytes(), lists, tuple(m._nonempty),
            tuple(m.zone_free), tuple(m.zone_held), tuple(m.zone_pcp), tuple(m.zone_below_high),
            repr(m._pcp), repr([[(p.count, p.high, p.alloc_factor, p.free_count, p.prev_free_high_order)
                                 for p in c] for c in m._pcps]),
            m.nr_allocs, m.nr_frees, m.nr_alloc_failures, m.nr_fallbacks, m.nr_pageblock_claims,
            m.nr_pcp_refilled, m.nr_pcp_returned, tuple(len(a) for a in m._fl_arr))


def guard_state_of(pe: pc.PageExt) -> tuple:
    m = pe.machine
    um = m.contents._unmapped
    g = pe.plugin("guard")
    words = [bytes(w) for w in {id(e[0]): e[0] for e in g._words if e is not None}.values()]
    return (state_of(m), b"" if um is None else um.tobytes(), m.contents.nr_unmapped, tuple(words),
            g.nr_created, g.nr_released, tuple(m.buddy._rule_held))


ops = st.lists(st.tuples(st.booleans(), st.integers(0, 10**6), st.sampled_from(GFPS), st.sampled_from(ORDERS),
                         st.integers(0, 30)),
               min_size=20, max_size=400)


def drive(machines: list, seq: list, snap) -> None:  # type: ignore[no-untyped-def]
    lives: list[list[tuple[int, int]]] = [[] for _ in machines]
    for free, pick, gfp, order, cpu_draw in seq:
        got = []
        for m, live in zip(machines, lives, strict=True):
            m.set_cpu(cpu_draw % 2) if cpu_draw < 3 else None
            if free and live:
                p, o = live.pop(pick % len(live))
                m.free_pages(p, o)
                got.append(None)
            else:
                p = m.alloc_pages(gfp | __GFP_NOWARN, order)
                if p is not None:
                    live.append((p, order))
                got.append(p)
        assert got[0] == got[1]
        assert snap(0) == snap(1)
    for m, live in zip(machines, lives, strict=True):
        for p, o in live:
            m.free_pages(p, o)
        m.drain_all_pages()
    assert snap(0) == snap(1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=ops)
def test_refill_and_bulk_free_do_what_block_by_block_code_does(seq: list) -> None:
    fast, ref = Machine(SMALL), Machine(SMALL)
    use_reference(ref)
    machines = [fast, ref]
    drive(machines, seq, lambda i: state_of(machines[i]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=ops, minorder=st.sampled_from((1, 2, 3, 5)))
def test_guard_pages_by_rule_in_runs_match_block_by_block(seq: list, minorder: int) -> None:
    line = f"debug_pagealloc=on debug_guardpage_minorder={minorder}"
    pes = [pc.boot(SMALL, line), pc.boot(SMALL, line)]
    use_reference(pes[1].machine)
    drive([pe.machine for pe in pes], seq, lambda i: guard_state_of(pes[i]))
    for pe in pes:
        assert pe.report("guard") == pes[0].report("guard")


def test_a_refill_from_a_bigger_block_takes_a_run_and_leaves_the_pieces_expand_would() -> None:
    """Hand-checked: an order-0 refill of 5 pages when the only free block is an order-3 block at pfn 8.

    Block by block: 8 is split (12/2, 10/1 and 9/0 listed) and 8 taken; then
    9; then 10 is split (11 listed) and taken; 11; 12 is split (14/1, 13/0)
    and taken.  Left: 13 alone on the order-0 list, 14 on the order-1 list.
    """
    m = Machine(SMALL).buddy
    zone, mt = 0, 2  # DMA, movable
    assert m.take_free_range(0, 4096) == 4096
    m.free_ranges([(8, 16)])
    out: list[int] = []
    m._rmqueue_bulk(zone, 0, mt, 5, 0, out)
    assert out == [8, 9, 10, 11, 12]
    assert [int(m.state[p]) for p in out] == [_b.PCP_K] * 5
    assert m.state[13] == _b.FREE_K | 0 and m.state[14] == _b.FREE_K | 1
    assert (m.nr_free(zone, 0, mt), m.nr_free(zone, 1, mt), m.nr_free(zone, 2, mt), m.nr_free(zone, 3, mt)) == (1, 1, 0, 0)
    assert m.zone_free[zone] == 3
