"""page_owner_sort with timestamps kept (-a, --sort=alloc_ts): compact keys and the lazy sorted report.

Every record is a group of its own there, so the aggregator keeps a short
key per record (shape number + timestamp digits) and the report is sorted
without making the texts.  These tests check that it changes nothing: the
groups and their order equal the generic path's (every text made, then
``sort_groups(cull(...))``), for dumps mixing fast-path records, records
only the exact parser reads, identical records and shared timestamps.
"""
from __future__ import annotations

import io
import random
from pathlib import Path

from gendump import generate_records
from hypothesis import given, settings
from hypothesis import strategies as st

from pageext_page_owner.page_owner_sort import main as sort_main
from pageext_page_owner.page_owner_sort.aggregate import cull, sort_groups
from pageext_page_owner.page_owner_sort.parse import Aggregator

OLD_FORMAT = (  # 5.x: free_ts after ts on the first line
    "Page allocated via order 0, mask 0x100cca(GFP_HIGHUSER_MOVABLE), pid 77, tgid 77 (bash), "
    "ts 5000 ns, free_ts 0 ns\nPFN 0x1000 type Movable Block 8 type Movable Flags 0x0()\n"
    " post_alloc_hook+0x1/0x2\n get_page_from_freelist+0x3/0x4\n\n")
NO_PFN = ("Page allocated via order 1, mask 0xcc0(GFP_KERNEL), pid 1, tgid 1 (init), ts 7000 ns\n"
          " post_alloc_hook+0x1/0x2\n kmalloc_large+0x3/0x4\n\n")
NO_TS = ("Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 2, tgid 2 (kthreadd)\n"
         "PFN 0x2000 type Unmovable Block 16 type Unmovable Flags 0x0()\n post_alloc_hook+0x1/0x2\n\n")
GARBAGE = "this is not a record\n\n"


def records(seed: int, n: int) -> list[str]:
    """Generated records, some with their timestamp replaced by a shared one, and odd ones mixed in."""
    rng = random.Random(seed)
    out = []
    for text, _order in generate_records(n, seed=seed % 3, stacks=20):
        if rng.random() < 0.2:  # shared timestamps: ties the sort must break by text
            head, rest = text.split(" ns\n", 1)
            text = head.rsplit(" ts ", 1)[0] + f" ts {rng.choice([100, 200])} ns\n" + rest
        out.append(text)
        if rng.random() < 0.05:
            out.append(rng.choice([OLD_FORMAT, NO_PFN, NO_TS, GARBAGE, text]))  # `text`: the same record again
    return out


def generic(agg: Aggregator, order: list[tuple[str, int]]) -> list[tuple]:
    return [(g.times, g.pages, g.text, g.pid, g.ts, g.alloc) for g in sort_groups(cull(agg.groups(), []), order)]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 400),
       order=st.sampled_from([[("alloc_ts", 1)], [("alloc_ts", -1)], [("alloc_ts", 1), ("pid", -1)],
                              [("alloc_ts", 1), ("allocator", 1), ("free_ts", 1)]]),
       chunk=st.sampled_from([1 << 10, 1 << 20]))
def test_the_lazy_sorted_groups_equal_the_generic_path(seed: int, n: int, order: list[tuple[str, int]],
                                                       chunk: int) -> None:
    data = "".join(records(seed, n)).encode()
    agg = Aggregator(strip_ts=False)
    agg.feed_stream(io.BytesIO(data), chunk_size=chunk)
    lazy = agg.sorted_groups(order)
    assert lazy is not None
    assert [(g.times, g.pages, g.text, g.pid, g.ts, g.alloc) for g in lazy] == generic(agg, order)
    assert len(lazy) == len(agg.groups())
    # compact keys lose nothing: the texts are the records' own (timestamps kept), each once
    texts = [g.text for g in agg.groups()]
    assert len(set(texts)) == len(texts)
    assert sum(g.times for g in agg.groups()) == agg.loaded


def test_a_record_read_by_both_parsers_is_one_group(tmp_path: Path) -> None:
    rec = next(iter(generate_records(1, seed=1)))[0]
    # the second copy follows an unparsable block: the exact parser reads it; the third: the fast path
    dump = tmp_path / "d.txt"
    dump.write_text(rec + rec + GARBAGE + rec + rec)
    agg = Aggregator(strip_ts=False).feed(str(dump))
    assert [g.times for g in agg.groups()] == [4]
    out = tmp_path / "o.txt"
    assert sort_main(["-a", str(dump), str(out)]) == 0
    assert out.read_text().startswith("4 times, ")


def test_sort_options_that_need_texts_take_the_generic_path() -> None:
    agg = Aggregator(strip_ts=False)
    assert agg.sorted_groups([("alloc_ts", 1), ("comm", 1)]) is None
    assert agg.sorted_groups([("pid", 1)]) is None
    assert Aggregator().sorted_groups([("alloc_ts", 1)]) is None  # timestamps cut: not compact
