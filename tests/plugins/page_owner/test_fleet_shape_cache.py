"""The fleet's per-process ShapeCache: what one task's exact parser learned spares the next task's.

Two requirements: the groups (Partials) are exactly those counted without
the cache, for any records (hypothesis, over the dump formats of four
kernel eras, PFN lines with and without CMA/slab, excerpts without one),
and a second dump of the same fleet sends fewer records through the exact
parser (``scan_block`` calls are counted, not timed).
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from gendump import write_dump
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pageext_page_owner.fleet import engine
from pageext_page_owner.fleet.engine import Options, Part, count_part, plan
from pageext_page_owner.page_owner_sort import parse
from pageext_page_owner.page_owner_sort.aggregate import Selection
from pageext_page_owner.page_owner_sort.parse import Aggregator, ShapeCache, count_range


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the exact parser's calls (the one the Aggregator makes for a record it cannot take fast)."""
    n = [0]
    real = parse.scan_block

    def counted(*args: object, **kwargs: object) -> object:
        n[0] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(parse, "scan_block", counted)
    return n


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two hosts of one fleet (same stacks, other tasks and timestamps)."""
    d = tmp_path_factory.mktemp("fleet")
    out = []
    for snap in (0, 1):
        p = d / f"host{snap}.txt"
        write_dump(p, 3000, seed=1, snapshot=snap)
        out.append(p)
    return out


OPTIONS = [
    Options(),
    Options(fields=("stacktrace", "comm")),
    Options(alloc_bits=True),
    Options(selection=Selection(pids=frozenset(range(0, 4000, 2)))),
    Options(strip_ts=False),  # -a: the cache is not used, the groups are the same
]


@pytest.mark.parametrize("opts", OPTIONS)
def test_two_dumps_through_one_cache_give_the_same_partials_and_parse_less(fleet, scans, opts):
    parts = plan([(p.stem, str(p)) for p in fleet])
    assert [p.start for p in parts] == [None, None]
    alone = []
    alone_scans = []
    for part in parts:
        scans[0] = 0
        alone.append(count_part(part, opts, False))
        alone_scans.append(scans[0])
    cache = ShapeCache()
    shared = []
    shared_scans = []
    for part in parts:
        scans[0] = 0
        shared.append(count_part(part, opts, cache))
        shared_scans.append(scans[0])
    assert shared == alone
    assert shared_scans[0] == alone_scans[0]  # nothing learned yet
    if opts.strip_ts:
        assert len(cache) > 0
        assert shared_scans[1] < alone_scans[1] // 2  # most of host1's shapes were parsed for host0
    else:
        assert len(cache) == 0
        assert shared_scans[1] == alone_scans[1]


def test_byte_ranges_of_one_dump_share_the_cache(fleet, scans):
    size = fleet[0].stat().st_size
    parts = plan([("h", str(fleet[0]))], split_bytes=size // 3)
    assert len(parts) >= 3 and all(p.start is not None for p in parts)
    cache = ShapeCache()
    for i, part in enumerate(parts):
        scans[0] = 0
        want = count_part(part, Options(), False)
        alone = scans[0]
        scans[0] = 0
        assert count_part(part, Options(), cache) == want
        if i:
            assert scans[0] < alone


def test_the_engine_task_uses_this_process_cache(fleet, scans, monkeypatch):
    monkeypatch.setattr(engine, "_SHAPES", ShapeCache())
    part = Part("h", str(fleet[0]))
    want = count_part(part, Options(), False)
    alone = scans[0]
    scans[0] = 0
    assert count_part(part, Options()) == want  # the default: this process's cache, empty so far
    assert scans[0] == alone
    assert len(engine.shape_cache()) > 0
    scans[0] = 0
    assert count_part(part, Options()) == want  # a later task of this process
    assert scans[0] < alone


def test_the_cache_stays_bounded(fleet):
    cache = ShapeCache(max_entries=50, max_tables=2)
    for pids in (None, frozenset({1}), frozenset({2})):
        count_part(Part("h", str(fleet[0])), Options(selection=Selection(pids=pids)), cache)
        assert 0 < len(cache) <= 100
    assert len(cache._tables) == 2


# Records of four formats and PFN lines of every kind, as in test_sort_nopfn: the same
# stack with another PFN line (CMA, slab, none) must not take the cached record's allocator.
_HEADS = [
    "Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 7, tgid 7 (w), ts {ts} ns",
    "Page allocated via order 1, mask 0x52820(GFP_ATOMIC), pid 0, ts {ts} ns, free_ts 0 ns",
    "Page allocated via order 2, mask 0x52820(GFP_ATOMIC), pid 3, ts {ts} ns, free_ts {ts} ns",
    "Page allocated via order 0, mask 0xd0",
    "Page allocated via order 0, mask 0xcc0, pid 5, tgid 5 (ts x), ts {ts} ns",
    "Page allocated via order 0, mask 0xcc0, pid 6, tgid 6 (a), ts 1 ns), ts {ts} ns",
    "Page allocated via order 0, mask 0xcc0, pid 8, tgid 8 (w), ts {ts} ns (x),ts ns",  # the comm spans the digits
]
_PFNS = [
    None,
    "PFN {pfn:#x} type Movable Block 1 type Movable Flags 0x0()",
    "PFN {pfn:#x} type CMA Block 1 type CMA Flags 0x0()",
    "PFN {pfn} type Unmovable Block 1 type Unmovable Flags 0x200(slab|node=0)",
]
_STACKS = [" a+0x1/0x2\n b+0x3/0x4\n", " alloc_pages_bulk+0x1/0x2\n __vmalloc_node_range+0x3/0x4\n", " c+0x1/0x2\n"]

rec_st = st.tuples(st.integers(0, len(_HEADS) - 1), st.integers(0, 3), st.integers(0, 2), st.integers(0, 3))


def build(items: list[tuple[int, int, int, int]]) -> bytes:
    return "".join(
        _HEADS[h].format(ts=ts * 1000 + 1) + "\n"
        + (_PFNS[p].format(pfn=i << 4) + "\n" if _PFNS[p] else "")
        + _STACKS[s] + "\n"
        for i, (h, p, s, ts) in enumerate(items)
    ).encode()


def groups(data: bytes, cache: ShapeCache | None, **opts: object) -> list[object]:
    agg = Aggregator(cache=cache, **opts)  # type: ignore[arg-type]
    agg.feed(io.BytesIO(data), chunk_size=97)
    assert agg.unparsed == 0
    return [*agg.groups(), agg.loaded]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(rec_st, max_size=25), min_size=2, max_size=4), st.booleans(),
       st.sampled_from([None, frozenset({0, 7}), frozenset({3})]))
def test_property_any_records_give_the_groups_counted_without_the_cache(dumps, alloc_bits, pids):
    cache = ShapeCache()
    for items in dumps:
        data = build(items)
        sel = Selection(pids=pids)
        assert groups(data, cache, alloc_bits=alloc_bits, selection=sel) == \
            groups(data, None, alloc_bits=alloc_bits, selection=sel)


def test_count_range_takes_the_cache(fleet, scans):
    size = fleet[1].stat().st_size
    cache = ShapeCache()
    count_range(str(fleet[0]), 0, fleet[0].stat().st_size, 0, cache=cache)
    scans[0] = 0
    agg, _ = count_range(str(fleet[1]), 0, size, 0, cache=cache)
    cached = scans[0]
    scans[0] = 0
    ref, _ = count_range(str(fleet[1]), 0, size, 0)
    assert agg.groups() == ref.groups()
    assert cached < scans[0]


def test_a_slot_made_by_an_excerpt_is_not_cached_for_a_record_with_its_own_pfn_line():
    """The excerpt's allocator comes from the PFN line read before it; a later record of its text has its own."""
    head = _HEADS[0].format(ts=5)
    excerpt = f"{head}\n{_STACKS[0]}\n"
    cma = f"{head}\n{_PFNS[2].format(pfn=16)}\n{_STACKS[0]}\n"
    first = (excerpt + cma).encode()  # the excerpt (no CMA bit carried) makes the slot, the CMA record counts in it
    second = cma.encode()
    cache = ShapeCache()
    assert groups(first, cache) == groups(first, None)
    assert groups(second, cache) == groups(second, None)
