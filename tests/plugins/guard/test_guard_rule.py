"""The guard client's hold rule does what its split and merge hooks did, guard for guard.

Before the hold rule (``pageext_hold_rule``) the client answered every
split with ``pageext_on_split`` (hold below minorder: GUARD on the head,
unmap if mapped) and every merge with a held buddy with ``pageext_on_merge``
(clear GUARD if it is ours).  Here one machine runs with the rule and a twin
runs with those two hooks written out as call-outs (the rule removed from
its table); the same random sequence must leave the same allocator state,
the same page_ext words, the same direct map and the same guard counts.
"""
from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pageext_core as pc
from pageext_core.mm import Callout, MachineConfig, MiB
from pageext_core.mm.gfp import __GFP_NOWARN, __GFP_RECLAIMABLE, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_USER

SMALL = MachineConfig(memory=32 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False, cpus=2)
GFPS = (GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_USER, GFP_KERNEL | __GFP_RECLAIMABLE)
ORDERS = (0, 0, 0, 1, 2, 3, 4, 5, 9)


def install_hooks_instead_of_rule(pe: pc.PageExt) -> dict[str, int]:
    """The guard's former split/merge hooks as call-outs, its rule removed; returns their counters."""
    g = pe.plugin("guard")
    m = pe.machine
    contents = m.contents
    counts = {"created": 0, "released": 0}

    def on_split(pfn: int, order: int, migratetype: int) -> bool:
        if order >= g.minorder:
            return False
        words, k = g._words[pfn >> g._shift]
        words[k + pfn * g._stride] |= g._bit
        if contents.is_mapped(pfn) or (order and contents.is_mapped(pfn + (1 << order) - 1)):
            contents.unmap(pfn, 1 << order)
        counts["created"] += 1
        return True

    def on_merge(pfn: int, order: int) -> bool:
        words, k = g._words[pfn >> g._shift]
        wi = k + pfn * g._stride
        if not words[wi] & g._bit:
            return False
        words[wi] &= ~g._bit & 0xFFFFFFFFFFFFFFFF
        counts["released"] += 1
        return True

    table = m.callouts
    assert table.hold and table.hold[0].client == "guard"
    m.install(dataclasses.replace(table, hold=(), split=(Callout("guard", on_split),),
                                  merge=(Callout("guard", on_merge),)))
    return counts


def snapshot(pe: pc.PageExt) -> tuple:
    m = pe.machine
    g = pe.plugin("guard")
    um = m.contents._unmapped
    b = m.buddy
    lists = tuple(bytes(b._fl_arr[li][: b._fl_n[li]]) for li in range(len(b._fl_n)))
    words = tuple(bytes(w) for w in {id(e[0]): e[0] for e in g._words if e is not None}.values())
    return (m.state.tobytes(), m.pflags.tobytes(), lists, tuple(m.zone_free), tuple(m.zone_held),
            repr(b._pcp), b"" if um is None else um.tobytes(), m.contents.nr_unmapped, words)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.lists(st.tuples(st.booleans(), st.integers(0, 10**6), st.sampled_from(GFPS), st.sampled_from(ORDERS)),
                    min_size=20, max_size=400),
       minorder=st.sampled_from((1, 2, 3, 5)))
def test_the_rule_holds_and_releases_what_the_hooks_did(seq: list, minorder: int) -> None:
    line = f"debug_pagealloc=on debug_guardpage_minorder={minorder}"
    by_rule, by_hooks = pc.boot(SMALL, line), pc.boot(SMALL, line)
    counts = install_hooks_instead_of_rule(by_hooks)
    lives: list[list[tuple[int, int]]] = [[], []]
    for free, pick, gfp, order in seq:
        got = []
        for pe, live in zip((by_rule, by_hooks), lives, strict=True):
            if free and live:
                p, o = live.pop(pick % len(live))
                pe.machine.free_pages(p, o)
                got.append(None)
            else:
                p = pe.machine.alloc_pages(gfp | __GFP_NOWARN, order)
                if p is not None:
                    live.append((p, order))
                got.append(p)
        assert got[0] == got[1]
    assert snapshot(by_rule) == snapshot(by_hooks)
    g = by_rule.plugin("guard")
    assert (g.nr_created, g.nr_released) == (counts["created"], counts["released"])
    for pe, live in zip((by_rule, by_hooks), lives, strict=True):
        for p, o in live:
            pe.machine.free_pages(p, o)
        pe.machine.drain_all_pages()
    assert snapshot(by_rule) == snapshot(by_hooks)
    assert (g.nr_created, g.nr_released) == (counts["created"], counts["released"])
    assert g.nr_created == g.nr_released or by_rule.machine.nr_held_pages > 0


def test_the_guard_client_declares_a_rule_and_no_split_or_merge_call_out() -> None:
    pe = pc.boot(SMALL, "debug_pagealloc=on debug_guardpage_minorder=2")
    table = pe.machine.callouts
    assert [r.client for r in table.hold] == ["guard"] and table.hold[0].below_order == 2
    assert not table.split and not table.merge
    assert "guard" in table.clients() and table.only("guard").hold == table.hold
    off = pc.boot(SMALL, "debug_pagealloc=on")
    assert not off.machine.callouts.hold


def test_many_units_held_with_numpy_match_one_by_one() -> None:
    """A refill holding hundreds of units does it with numpy (``_hold_units_np``): same result as one by one.

    Two order-10 blocks (256 units of 8 pages) taken off the free lists on
    twin machines; a few of their pages mapped again so that both ways must
    unmap exactly those pieces.
    """
    line = "debug_pagealloc=on debug_guardpage_minorder=3"
    a, b = pc.boot(SMALL, line), pc.boot(SMALL, line)
    outs = []
    for pe, numpy_way in ((a, True), (b, False)):
        m = pe.machine
        start = 1024  # DMA: free order-10 blocks at boot (the page_ext tables come from DMA32)
        assert m.take_free_range(start, start + 2048) == 2048
        for p in (start + 1, start + 13, start + 8 * 100 + 7, start + 2047):
            m.contents.map(p)
        rule = m.callouts.hold[0]
        units = list(range(start, start + 2048, 8))
        assert len(units) >= 256
        if numpy_way:
            m.buddy._hold_units_np(rule, units, 0, 3)
        else:
            m.buddy._hold_units(rule, units, 0, 3)
        g = pe.plugin("guard")
        um = m.contents._unmapped
        outs.append((m.state[start : start + 2048].tobytes(), um.tobytes(), m.contents.nr_unmapped,
                     tuple(bytes(w) for w in {id(e[0]): e[0] for e in g._words if e is not None}.values())))
        assert [int(m.state[start + o]) for o in (1, 2, 4)] == [0x50, 0x51, 0x52]  # HELD, orders 0-2
        # A piece with a mapped first or last page is unmapped whole; a mapped page inside a piece
        # whose ends are unmapped is left as it is (the client's own rule: free blocks are unmapped whole).
        assert um[start + 1] and um[start + 804 : start + 808].all() and um[start + 2044 : start + 2048].all()
        assert not um[start + 13]
    assert outs[0] == outs[1]
