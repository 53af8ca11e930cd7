"""page_ext tables per memory model, their cost to the machine, and per-client views.

Machines here have no x86 holes, no kernel image and no memmap reservation,
so every figure follows from sizes alone: a section is 32768 pages; a
SPARSEMEM table covers a whole present section; a FLATMEM table covers its
node's spanned pfns; a table of N records of R bytes takes ceil(N*R/4096)
simulated pages.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
from fwsupport import PAGES_PER_SECTION, Fixed, boot_with

from pageext_core import MachineConfig, NoExtension
from pageext_core.layout import FLAGS_FIELD
from pageext_core.mm import ConfigError, GiB, MiB, check_invariants
from pageext_core.mm import buddy as _b
from pageext_core.mm.gfp import GFP_KERNEL

BARE = dict(x86_holes=False, kernel_image=0, reserve_memmap=False)
# 1 GiB with a hole over [256 MiB, 512 MiB): sections 2 and 3 are absent.
HOLEY = MachineConfig(memory=1 * GiB, holes=((256 * MiB, 512 * MiB),), **BARE)
PRESENT_PAGES = 65536 + 131072  # [0, 256 MiB) and [512 MiB, 1 GiB)


def rec16() -> Fixed:
    """Flags word (8) + count u4 at 8 + tag S3 at 12 -> 15, padded to 16 bytes."""
    return Fixed({"count": "u4", "tag": "S3"}, ["SEEN"])


# -- SPARSEMEM ------------------------------------------------------------------------


def test_sparsemem_one_table_per_present_section_exact_bytes():
    c = rec16()
    pe = boot_with(("c", c), config=HOLEY)
    m = pe.machine
    assert pe.record_size == 16
    assert m.present_sections() == [0, 1, 4, 5, 6, 7]
    assert sorted(pe.tables.tables) == [0, 1, 4, 5, 6, 7]
    assert pe.tables.sparse
    assert pe.nbytes == 16 * PAGES_PER_SECTION * 6 == 3 * 1024 * 1024
    for s, t in pe.tables.tables.items():
        assert t.base_pfn == s * PAGES_PER_SECTION
        assert len(t.records) == PAGES_PER_SECTION
    # 16 * 32768 / 4096 = 128 pages per table
    assert pe.tables.sim_pages == 128 * 6


def test_sparsemem_tables_are_taken_from_the_machine():
    plain = boot_with(("c", Fixed({"x": "u4"}, need=False)), config=HOLEY).machine
    pe = boot_with(("c", rec16()), config=HOLEY)
    m = pe.machine
    assert plain.nr_free_pages == PRESENT_PAGES
    assert m.nr_pcp_pages == 0
    assert m.nr_free_pages == plain.nr_free_pages - pe.tables.sim_pages == PRESENT_PAGES - 768
    assert m.nr_allocated_pages == 768
    assert m.nr_reserved_pages == plain.nr_reserved_pages == 0
    for t in pe.tables.tables.values():
        for pfn, n in t.sim_chunks:
            assert m.is_allocated(pfn), f"table memory at {pfn:#x} is not an allocated block"
        assert sum(n for _, n in t.sim_chunks) == t.sim_pages == 128
    check_invariants(m)


def test_sparsemem_table_memory_comes_from_the_sections_node():
    pe = boot_with(("c", rec16()), config=MachineConfig(memory=1 * GiB, nodes=2, **BARE))
    g = pe.machine.geometry
    assert sorted(pe.tables.tables) == list(range(8))
    for s, t in pe.tables.tables.items():
        for pfn, _ in t.sim_chunks:
            assert g.node_of(pfn) == g.node_of(s * PAGES_PER_SECTION)


def test_lookup_outside_present_memory_is_no_extension():
    c = rec16()
    boot_with(("c", c), config=HOLEY)
    v = c.view
    assert v.lookup(5) is not None
    absent = 2 * PAGES_PER_SECTION + 5
    assert v.lookup(absent) is None
    with pytest.raises(NoExtension):
        v.block(absent)
    with pytest.raises(NoExtension):
        v.set_flags(absent, v.flag("SEEN"))
    assert v.lookup(8 * PAGES_PER_SECTION) is None  # beyond the last pfn
    assert v.lookup(10**9) is None
    assert v.lookup(-1) is None
    with pytest.raises(NoExtension):
        v.block(-1)


def test_lookup_in_a_hole_inside_a_present_section():
    c = rec16()
    pe = boot_with(("c", c), config=MachineConfig(memory=256 * MiB))  # x86 hole: pfns [160, 256)
    assert 0 in pe.tables.tables
    assert c.view.lookup(159) is not None
    assert c.view.lookup(160) is None
    assert c.view.lookup(255) is None
    assert c.view.lookup(256) is not None


def test_too_small_a_machine_for_the_record_is_a_config_error():
    # 4 MiB = 1024 free pages; a 256-byte record needs 256 * 32768 / 4096 = 2048 pages for section 0
    with pytest.raises(ConfigError, match="256 bytes per page"):
        boot_with(("big", Fixed({"blob": ("u1", 256)})), config=MachineConfig(memory=4 * MiB, **BARE))


# -- FLATMEM -------------------------------------------------------------------------------


def test_flatmem_one_table_per_node_from_memblock():
    cfg = MachineConfig(memory=1 * GiB, nodes=2, memory_model="FLATMEM", **BARE)
    plain = boot_with(config=cfg).machine
    pe = boot_with(("c", rec16()), config=cfg)
    m = pe.machine
    assert not pe.tables.sparse
    assert sorted(pe.tables.tables) == [0, 1]
    t0, t1 = pe.tables.tables[0], pe.tables.tables[1]
    assert (t0.base_pfn, len(t0.records)) == (0, 131072)
    assert (t1.base_pfn, len(t1.records)) == (131072, 131072)
    assert pe.nbytes == 16 * 262144
    # ceil(131072 * 16 / 4096) = 512 reserved pages per node, at the top of the node (memblock is top-down)
    assert t0.sim_chunks == [(131072 - 512, 512)]
    assert t1.sim_chunks == [(262144 - 512, 512)]
    assert plain.nr_reserved_pages == 0
    assert m.nr_reserved_pages == 1024
    assert m.nr_free_pages == plain.nr_free_pages - 1024 == 262144 - 1024
    assert m.page_kind(131072 - 512)[0] == _b.K_RESERVED
    assert pe.tables.sim_pages == 1024
    check_invariants(m)


def test_flatmem_table_spans_holes_but_lookup_there_is_none():
    c = rec16()
    cfg = MachineConfig(memory=256 * MiB, memory_model="FLATMEM", holes=((64 * MiB, 128 * MiB),), **BARE)
    pe = boot_with(("c", c), config=cfg)
    [t] = pe.tables.tables.values()
    assert (t.base_pfn, len(t.records)) == (0, 65536)  # the node's span, hole included
    assert pe.nbytes == 16 * 65536
    assert c.view.lookup(16384 - 1) is not None
    assert c.view.lookup(16384) is None
    assert c.view.lookup(32767) is None
    assert c.view.lookup(32768) is not None


def test_flatmem_with_hotplug_is_refused():
    with pytest.raises(ConfigError, match="hotplug needs SPARSEMEM"):
        boot_with(config=MachineConfig(memory=256 * MiB, memory_model="FLATMEM", hotplug=128 * MiB))


# -- views: one client's window -----------------------------------------------------------------


def two_clients():
    alpha = Fixed({"a": "u4"}, ["A"])
    beta = Fixed({"b": "u8"}, ["B"])
    pe = boot_with(("alpha", alpha), ("beta", beta))
    return pe, alpha.view, beta.view


def test_a_view_sees_only_its_own_fields():
    pe, va, vb = two_clients()
    p = pe.machine.alloc_pages(GFP_KERNEL, 2)
    assert va.block(p, 2).dtype.names == ("a",)
    assert vb.block(p, 2).dtype.names == ("b",)
    assert va.lookup(p).dtype.names == ("a",)
    assert va.fields == ("a",) and vb.fields == ("b",)
    with pytest.raises(ValueError, match="no field of name b"):
        va.set(p, "b", 1)
    with pytest.raises(ValueError):
        va.get(p, "b")
    # writing all of alpha's bytes leaves beta's bytes and the flags word alone
    va.block(p, 2)["a"] = 0xFFFFFFFF
    assert vb.block(p, 2)["b"].tolist() == [0, 0, 0, 0]
    rec = pe.tables.tables[0].records
    assert rec[FLAGS_FIELD][p : p + 4].tolist() == [0, 0, 0, 0]
    assert rec["alpha.a"][p : p + 4].tolist() == [0xFFFFFFFF] * 4


def test_a_view_cannot_touch_another_clients_flag_bits():
    pe, va, vb = two_clients()
    p = 1000
    b_mask = vb.flag("B")
    for op in (va.set_flags, va.clear_flags):
        with pytest.raises(PermissionError, match="alpha may only touch its own flag bits"):
            op(p, b_mask)
    with pytest.raises(PermissionError):
        va.test_flag(p, b_mask)
    with pytest.raises(PermissionError):
        va.set_flags(p, va.flag("A") | b_mask)  # one of its own bits does not make it allowed
    with pytest.raises(KeyError, match="alpha declared no flag 'B'"):
        va.flag("B")
    vb.set_flags(p, b_mask, nr=4)
    va.set_flags(p + 1, va.flag("A"))
    assert va.flags_of(p, 4).tolist() == [0, va.flag("A"), 0, 0]  # beta's bit masked out
    assert vb.flags_of(p, 4).tolist() == [b_mask] * 4
    assert vb.test_flag(p + 3, b_mask) and not va.test_flag(p + 3, va.flag("A"))
    vb.clear_flags(p, b_mask, nr=4)
    assert int(pe.tables.tables[0].records[FLAGS_FIELD][p + 1]) == va.flag("A")


def test_block_views_are_numpy_slices_that_write_through():
    pe, va, _ = two_clients()
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 3)
    blk = va.block(p, 3)
    assert isinstance(blk, np.ndarray) and len(blk) == 8
    t = pe.tables.entry(p)
    assert np.shares_memory(blk, t.records)
    blk["a"] = np.arange(8)
    assert va.get(p + 5, "a") == 5
    assert t.records["alpha.a"][p - t.base_pfn + 7] == 7
    va.set(p, "a", 99, nr=2)
    assert blk["a"][:3].tolist() == [99, 99, 2]


def test_locate_gives_raw_bytes_of_the_clients_region():
    pe, va, vb = two_clients()
    # flags 0..8, alpha.a at 8, beta.b at 16; record 24
    assert (va.offset, va.size, vb.offset, vb.size, va.record_size) == (8, 4, 16, 8, 24)
    p = 40
    raw, off, words, widx = va.locate(p)
    assert off == p * 24 + 8
    struct.pack_into("<I", raw, off, 1234)
    assert va.get(p, "a") == 1234
    va.set_flags(p, va.flag("A"))
    assert words is not None and words[widx] == va.flag("A") and widx == p * 3
    raw, off, _, _ = vb.locate(p)
    assert off == p * 24 + 16


def test_locate_has_no_words_when_records_are_not_word_multiples():
    c = Fixed({"a": "u4", "b": "u2"})  # 6 bytes padded to 8 (alignment 4): whole words
    d = Fixed({"a": "u2", "b": "u2", "c": "u2"})  # 6 bytes, alignment 2: not a multiple of 8
    boot_with(("c", c))
    boot_with(("d", d))
    assert c.view.record_size == 8
    assert c.view.locate(0)[2] is not None
    assert d.view.record_size == 6
    assert d.view.locate(0)[2] is None


def test_scan_walks_tables_in_pfn_order():
    c = Fixed({"n": "u2"}, ["X"])
    o = Fixed({"m": "u2"})
    boot_with(("c", c), ("o", o), config=HOLEY)
    c.view.set_flags(PAGES_PER_SECTION * 4 + 3, c.view.flag("X"))
    got = list(c.view.scan())
    assert [base for base, _, _ in got] == [s * PAGES_PER_SECTION for s in (0, 1, 4, 5, 6, 7)]
    base, recs, flags = got[2]
    assert recs.dtype.names == ("n",) and len(recs) == PAGES_PER_SECTION
    assert np.flatnonzero(flags).tolist() == [3]
    assert all(f is None for _, _, f in o.view.scan())  # no bits: no flags array
