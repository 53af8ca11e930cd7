"""Live counters: frees, split_page, alloc_pages_exact, migration, hotplug, and random runs vs a reference."""
from __future__ import annotations

import random
import sys

import numpy as np
import pytest
from tagsupport import (
    ANON,
    ANON_TAG,
    DRIVER,
    DRIVER_TAG,
    PAGES_PER_SECTION,
    PIPE,
    PIPE_TAG,
    SLAB,
    SLAB_TAG,
    boot_tag,
    kstack,
)

from pageext_core import MachineConfig
from pageext_core.mm import GiB, MiB
from pageext_core.mm.gfp import GFP_KERNEL

COMPACTION = kstack("alloc_pages_noprof+0x53/0x90", "compaction_alloc+0x1c/0x90", "migrate_pages_batch+0x2f1/0xa50")
COMPACTION_TAG = "?:0 func:compaction_alloc"


def live(tag) -> dict[str, tuple[int, int]]:
    """Rows with something live, as {tag: (bytes, calls)}."""
    return {r.tag: (r.bytes, r.calls) for r in tag.rows() if r.bytes or r.calls}


def nonzero_records(pe) -> int:
    view = pe.client("alloc_tag").view
    return sum(int(np.count_nonzero(recs["tag"])) for _, recs, _ in view.scan())


def test_free_uncharges_the_call_site_read_from_the_record(pe, tag):
    m = pe.machine
    with m.context(stack=ANON):
        a = m.alloc_pages(GFP_KERNEL, 2)
        b = m.alloc_pages(GFP_KERNEL, 0)
    with m.context(stack=SLAB):
        c = m.alloc_pages(GFP_KERNEL, 1)
        # The free happens under another stack: the tag comes from a's record, not from the stack.
        m.free_pages(a, 2)
    assert live(tag) == {ANON_TAG: (4096, 1), SLAB_TAG: (8192, 1)}
    assert nonzero_records(pe) == 2
    m.free_pages(b, 0)
    m.free_pages(c, 1)
    assert live(tag) == {} and nonzero_records(pe) == 0


def test_split_page_makes_every_page_a_call(pe, tag):
    m = pe.machine
    with m.context(stack=ANON):
        pfn = m.alloc_pages(GFP_KERNEL, 2)
    m.split_page(pfn, 2)
    assert live(tag) == {ANON_TAG: (16384, 4)}  # same bytes, each page now its own allocation
    assert [tag.tag_of(p) for p in range(pfn, pfn + 4)] == [ANON_TAG] * 4
    m.free_pages(pfn + 2, 0)
    m.free_pages(pfn, 0)
    assert live(tag) == {ANON_TAG: (8192, 2)}
    m.free_pages(pfn + 1, 0)
    m.free_pages(pfn + 3, 0)
    assert live(tag) == {} and nonzero_records(pe) == 0


def test_alloc_pages_exact_and_its_tail_pieces(pe, tag):
    m = pe.machine
    with m.context(stack=DRIVER):
        pfn = m.alloc_pages_exact(5, GFP_KERNEL)
    # order 3 split into 8 pages (8 calls); pages 5 and 6-7 freed back as an order-0 and an order-1 piece.
    assert live(tag) == {DRIVER_TAG: (5 * 4096, 5)}
    assert nonzero_records(pe) == 5
    m.free_pages_exact(pfn, 5)
    assert live(tag) == {} and nonzero_records(pe) == 0


def test_migration_keeps_the_original_call_site(pe, tag):
    m = pe.machine
    with m.context(stack=SLAB):
        old = m.alloc_pages(GFP_KERNEL, 1)
    with m.context(stack=COMPACTION):
        new = m.migrate_pages(old, 1, "compaction", GFP_KERNEL)
    assert new is not None and new != old
    assert tag.tag_of(new) == SLAB_TAG and tag.tag_of(old) is None
    assert [tuple(r) for r in tag.rows()] == [(8192, 1, SLAB_TAG), (0, 0, COMPACTION_TAG)]
    m.free_pages(new, 1)
    assert live(tag) == {}


def test_blocks_allocated_before_init_have_no_tag(pe, tag):
    m = pe.machine
    (table,) = pe.tables.tables.values()  # SPARSEMEM: allocated from the buddy before clients' init
    pfn, pages = table.sim_chunks[0]
    assert tag.tag_of(pfn) is None
    m.free_pages(pfn, 0)
    assert tag.untracked_frees == 1 and tag.rows() == []


def test_compressed_tags_run_out_after_32767_call_sites():
    pe = boot_tag("sysctl.vm.mem_profiling=1,compressed")
    m, tag = pe.machine, pe.plugin("alloc_tag")
    for i in range(32768):
        m.set_stack(kstack(f"site_{i}+0x1/0x2"))
        m.free_pages(m.alloc_pages(GFP_KERNEL, 0), 0)
    m.set_stack(kstack("site_0+0x1/0x2"))  # an old site still works
    m.alloc_pages(GFP_KERNEL, 0)
    m.set_stack(None)
    rows = tag.rows()
    assert len(rows) == 32767 and rows[-1].tag == "?:0 func:site_32766"
    assert live(tag) == {"?:0 func:site_0": (4096, 1)}
    s = pe.client_summaries()["alloc_tag"]
    assert (s["tags"], s["unprofiled_allocations"], s["untracked_frees"]) == (32767, 1, 1)
    assert len(m.log.grep("cannot be referenced with a 15-bit tag")) == 1


# -- memory hotplug: tables come and go ------------------------------------------------------------

HOT = MachineConfig(memory=1 * GiB, hotplug=512 * MiB, memory_block_size=256 * MiB,
                    x86_holes=False, kernel_image=0, reserve_memmap=False)
BLOCK4 = 32 * PAGES_PER_SECTION  # memory block 16 (4 GiB / 256 MiB): sections 32 and 33, the only ZONE_NORMAL memory
TABLE_PAGES = PAGES_PER_SECTION * 4 // 4096  # one section's 4-byte tags: 32 pages


def test_hotplug_tables_are_followed_and_charged_to_page_ext():
    pe = boot_tag(config=HOT)
    m, tag = pe.machine, pe.plugin("alloc_tag")
    view = pe.client("alloc_tag").view
    m.online_memory_block(16)
    # The qualified name needs Python 3.11 (co_qualname); 3.10 names the bare function.
    func = "PageExtTables._alloc_sim" if sys.version_info >= (3, 11) else "_alloc_sim"
    (storage,) = [r for r in tag.rows() if r.tag.endswith(f" func:{func}")]
    assert storage.tag.startswith("pageext_core/storage.py:")
    assert (storage.bytes, storage.calls) == (2 * TABLE_PAGES * 4096, 2 * TABLE_PAGES)
    for round_ in range(2):
        with m.context(stack=PIPE):
            pfn = m.alloc_pages(GFP_KERNEL, 0)
        assert BLOCK4 <= pfn < BLOCK4 + 2 * PAGES_PER_SECTION  # GFP_KERNEL prefers ZONE_NORMAL
        assert tag.texts[int(view.get(pfn, "tag"))] == PIPE_TAG  # written into the current table
        m.free_pages(pfn, 0)
        m.offline_memory_block(16)
        assert live(tag) == {}  # the tables' pages were freed too
        m.online_memory_block(16)  # new tables: the old ones must not be written any more


# -- many random operations against a simple reference ----------------------------------------------

STACKS = [(SLAB, SLAB_TAG), (ANON, ANON_TAG), (PIPE, PIPE_TAG), (DRIVER, DRIVER_TAG)]
ORDERS = [0, 0, 0, 0, 1, 1, 2, 3, 5]


def expected(blocks: dict[int, tuple[int, str]]) -> dict[str, tuple[int, int]]:
    """The reference: live bytes and calls per tag, recomputed from the live blocks."""
    out: dict[str, list[int]] = {}
    for order, text in blocks.values():
        row = out.setdefault(text, [0, 0])
        row[0] += 4096 << order
        row[1] += 1
    return {t: (b, c) for t, (b, c) in out.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_match_the_reference(seed):
    pe = boot_tag()
    m, tag = pe.machine, pe.plugin("alloc_tag")
    rng = random.Random(seed)
    blocks: dict[int, tuple[int, str]] = {}  # head pfn -> (order, tag text)
    for step in range(3000):
        r = rng.random()
        if r < 0.55 or not blocks:
            stack, text = rng.choice(STACKS)
            order = rng.choice(ORDERS)
            with m.context(stack=stack):
                pfn = m.alloc_pages(GFP_KERNEL, order)
            if pfn is not None:
                blocks[pfn] = (order, text)
        elif r < 0.9:
            pfn = rng.choice(sorted(blocks))
            m.free_pages(pfn, blocks.pop(pfn)[0])
        elif r < 0.95:
            big = sorted(p for p, (o, _) in blocks.items() if o)
            if big:
                pfn = rng.choice(big)
                order, text = blocks.pop(pfn)
                m.split_page(pfn, order)
                blocks.update({p: (0, text) for p in range(pfn, pfn + (1 << order))})
        else:
            pfn = rng.choice(sorted(blocks))
            with m.context(stack=COMPACTION):
                new = m.migrate_pages(pfn, blocks[pfn][0], "compaction", GFP_KERNEL)
            if new is not None:
                blocks[new] = blocks.pop(pfn)
        if step % 300 == 0:
            assert live(tag) == expected(blocks), f"step {step}"
    assert live(tag) == expected(blocks)
    assert nonzero_records(pe) == len(blocks)  # a record is set exactly on each live block's head
    assert all(tag.tag_of(p) == text for p, (_, text) in blocks.items())
    assert tag.totals() == (sum(4096 << o for o, _ in blocks.values()), len(blocks))
