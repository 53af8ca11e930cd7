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
import random
from collections.abc import Iterable

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
    drive_twins(by_rule, by_hooks, install_hooks_instead_of_rule(by_hooks), seq)


def drive_twins(by_rule: pc.PageExt, by_hooks: pc.PageExt, counts: dict[str, int],
                ops: Iterable[tuple[bool, int, int, int]]) -> None:
    """Run ``(free, pick, gfp, order)`` on both machines; compare them at the end and after freeing everything.

    A free takes the live block ``pick`` (modulo their number), when there
    is one; otherwise the operation allocates.
    """
    lives: list[list[tuple[int, int]]] = [[], []]
    for free, pick, gfp, order in ops:
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
    assert snapshot(by_rule) == snapshot(by_hooks)  # guards still held: their bits, state and counts
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


TWO_SECTIONS = MachineConfig(memory=256 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False, cpus=2)


def flag_words(pe: pc.PageExt) -> tuple[bytes, ...]:
    g = pe.plugin("guard")
    return tuple(bytes(w) for w in {id(e[0]): e[0] for e in g._words if e is not None}.values())


def spy_one_by_one(m: pc.Machine) -> list[int]:
    """Count the calls of ``_hold_units`` (the one-by-one way) on this machine's allocator."""
    calls: list[int] = []
    inner = m.buddy._hold_units

    def spy(rule: object, units: list[int], low: int, g: int) -> None:
        calls.append(len(units))
        inner(rule, units, low, g)  # type: ignore[arg-type]

    m.buddy._hold_units = spy  # type: ignore[method-assign]
    return calls


def hold_both_ways(config: MachineConfig, start: int, nr: int, mapped: tuple[int, ...],
                   line: str = "debug_pagealloc=on debug_guardpage_minorder=3",
                   word: int = 0) -> tuple[list, list[int]]:
    """Take ``[start, start + nr)`` off the free lists of twin machines, map ``mapped`` again, hold its 8-page units.

    One machine through ``_hold_units_np``, the other through ``_hold_units``;
    returns what each left (state, direct map, page_ext words) and the
    calls the numpy one made to the one-by-one way.  ``word``: the rule's
    flags word is that word of each record (a ``HoldRule`` may name any).
    """
    outs = []
    fell_back: list[int] = []
    for numpy_way in (True, False):
        pe = pc.boot(config, line)
        m = pe.machine
        assert m.take_free_range(start, start + nr) == nr
        for p in mapped:
            m.contents.map(p)
        rule = m.callouts.hold[0]
        if word:
            rule = dataclasses.replace(rule, words=[None if e is None else (e[0], e[1] + word) for e in rule.words])
            m.install(dataclasses.replace(m.callouts, hold=(rule,)))
        units = list(range(start, start + nr, 8))
        if numpy_way:
            fell_back = spy_one_by_one(m)
            m.buddy._hold_units_np(rule, units, 0, 3, start, start + nr - 1)
        else:
            m.buddy._hold_units(rule, units, 0, 3)
        um = m.contents._unmapped
        outs.append([m.state[start : start + nr].tobytes(), um.tobytes(), m.contents.nr_unmapped, flag_words(pe)])
        assert [int(m.state[start + o]) for o in (1, 2, 4, 8 + 1)] == [0x50, 0x51, 0x52, 0x50]  # HELD, orders 0-2
        if not word:
            g = pe.plugin("guard")
            assert all(g._view.test_flag(start + o, g._bit) for o in (1, 2, 4))
            assert not any(g._view.test_flag(start + o, g._bit) for o in (0, 3, 5, 6, 7))
    return outs, fell_back


def test_many_units_held_with_numpy_match_one_by_one() -> None:
    """A refill holding many units does it with numpy (``_hold_units_np``): what one by one does, without it."""
    outs, fell_back = hold_both_ways(SMALL, 1024, 2048, ())  # DMA: free order-10 blocks at boot
    assert fell_back == []
    assert outs[0] == outs[1]


def test_a_mapped_piece_makes_numpy_do_the_units_one_by_one() -> None:
    """A piece whose first or last page is mapped must be unmapped whole: numpy leaves the units to the loop.

    A mapped page inside a piece whose ends are unmapped is left as it is
    (the client's own rule: free blocks are unmapped whole).
    """
    start = 1024
    outs, fell_back = hold_both_ways(SMALL, start, 2048, (start + 1, start + 13, start + 8 * 100 + 7, start + 2047))
    assert fell_back == [256]
    assert outs[0] == outs[1]
    um = outs[0][1]
    assert um[start + 1] and all(um[start + 804 : start + 808]) and all(um[start + 2044 : start + 2048])
    assert not um[start + 13]


def test_a_mapped_last_page_alone_makes_numpy_do_the_units_one_by_one() -> None:
    """The check covers each piece's last page too: the order-2 piece of unit 100 ends at +807."""
    start = 1024
    outs, fell_back = hold_both_ways(SMALL, start, 2048, (start + 8 * 100 + 7,))
    assert fell_back == [256]
    assert outs[0] == outs[1]
    assert all(outs[0][1][start + 804 : start + 808])  # unmapped whole


def test_numpy_holds_in_a_table_that_does_not_start_at_pfn_0() -> None:
    """A SPARSEMEM section's table starts at its section: indices are pfn - base (here 32768)."""
    outs, fell_back = hold_both_ways(TWO_SECTIONS, (1 << 15) + 1024, 2048, ())
    assert fell_back == []
    assert outs[0] == outs[1]


def test_numpy_holds_a_rule_whose_flags_word_is_not_a_records_first() -> None:
    """``HoldRule.words`` names page p's word as ``words[k + p * stride]`` for any k (here word 1 of 9)."""
    outs, fell_back = hold_both_ways(TWO_SECTIONS, (1 << 15) + 1024, 2048, (),
                                     line="page_owner=on debug_pagealloc=on debug_guardpage_minorder=3", word=1)
    assert fell_back == []
    assert outs[0] == outs[1]


def test_units_in_two_page_ext_tables_are_held_one_by_one() -> None:
    """SPARSEMEM has a table per section: units on both sides of a section's end are not one numpy array."""
    boundary = 1 << 15  # 128 MiB: the second section of TWO_SECTIONS
    outs, fell_back = hold_both_ways(TWO_SECTIONS, boundary - 1024, 2048, ())
    assert fell_back == [256]
    assert outs[0] == outs[1]


def test_clearing_many_guards_with_numpy_in_one_table_or_two() -> None:
    """``_hold_clear`` clears a bulk free's bits with numpy in one table, and section by section across two."""
    boundary = 1 << 15
    pe = pc.boot(TWO_SECTIONS, "debug_pagealloc=on debug_guardpage_minorder=3")
    m = pe.machine
    g = pe.plugin("guard")
    rule = m.callouts.hold[0]
    start = boundary - 1024
    assert m.take_free_range(start, start + 2048) == 2048
    m.buddy._hold_units(rule, list(range(start, start + 2048, 8)), 0, 3)
    heads = [u + o for u in range(start, start + 2048, 8) for o in (1, 2, 4)]
    zone = m.zone_of(start)
    before = flag_words(pe)
    one_table = [h for h in heads if h >= boundary][:40]  # in the second section's table (base 32768)
    both = [h for h in heads if h not in one_table]
    assert len(one_table) >= 32 and min(both) < boundary <= max(both)  # both batches take the numpy way
    m.buddy._hold_clear(zone, one_table, len(one_table))
    assert not any(g._view.test_flag(h, g._bit) for h in one_table)
    assert all(g._view.test_flag(h, g._bit) for h in both)
    m.buddy._hold_clear(zone, both, len(both))
    assert not any(g._view.test_flag(h, g._bit) for h in heads)
    assert flag_words(pe) != before and not any(any(w) for w in flag_words(pe))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_big_refills_keep_the_rule_equal_to_the_hooks(seed: int) -> None:
    """On a machine with two sections and 64-page per-CPU batches, refills hold dozens of units: the numpy way.

    The same comparison as the property test above, with the numpy paths
    taken (counted, so that this test cannot pass without them).
    """
    line = "debug_pagealloc=on debug_guardpage_minorder=3"
    by_rule, by_hooks = pc.boot(TWO_SECTIONS, line), pc.boot(TWO_SECTIONS, line)
    counts = install_hooks_instead_of_rule(by_hooks)
    used = {"make": 0, "clear": 0}
    b = by_rule.machine.buddy
    make, clear = b._hold_units_np, b._hold_clear

    def count_make(*args: object) -> None:
        used["make"] += 1
        make(*args)  # type: ignore[arg-type]

    def count_clear(zone: int, heads: list[int], pages: int) -> None:
        used["clear"] += len(heads) >= 32
        clear(zone, heads, pages)

    b._hold_units_np = count_make  # type: ignore[method-assign]
    b._hold_clear = count_clear  # type: ignore[method-assign]
    rnd = random.Random(seed)
    # Allocations only at first: runs of order-0 refills grow the batch (alloc_factor); then half frees.
    ops = [(i >= 800 and rnd.random() < 0.5, rnd.randrange(10**6), rnd.choice(GFPS), rnd.choice((0, 0, 0, 0, 1, 2, 3)))
           for i in range(3000)]
    drive_twins(by_rule, by_hooks, counts, ops)
    assert used["make"] > 0 and used["clear"] > 0
