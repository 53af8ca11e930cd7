"""GFP masks: the kernel's bit values, %pGg formatting, parsing, zone and migratetype."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pageext_core.mm import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
from pageext_core.mm import gfp as G
from pageext_core.mm.constants import ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL
from pageext_core.mm.errors import GfpParseError
from pageext_core.mm.gfp import format_gfp, format_gfp_mask, gfp_migratetype, parse_gfp

# Single bits from the reference table (section 3).
BITS = {
    "__GFP_DMA": 0x01, "__GFP_HIGHMEM": 0x02, "__GFP_DMA32": 0x04, "__GFP_MOVABLE": 0x08,
    "__GFP_RECLAIMABLE": 0x10, "__GFP_HIGH": 0x20, "__GFP_IO": 0x40, "__GFP_FS": 0x80,
    "__GFP_ZERO": 0x100, "__GFP_DIRECT_RECLAIM": 0x400, "__GFP_KSWAPD_RECLAIM": 0x800,
    "__GFP_WRITE": 0x1000, "__GFP_NOWARN": 0x2000, "__GFP_RETRY_MAYFAIL": 0x4000,
    "__GFP_NOFAIL": 0x8000, "__GFP_NORETRY": 0x10000, "__GFP_MEMALLOC": 0x20000,
    "__GFP_COMP": 0x40000, "__GFP_NOMEMALLOC": 0x80000, "__GFP_HARDWALL": 0x100000,
    "__GFP_THISNODE": 0x200000, "__GFP_ACCOUNT": 0x400000, "__GFP_ZEROTAGS": 0x800000,
}


@pytest.mark.parametrize("name,value", sorted(BITS.items()))
def test_single_bits_have_mainline_values(name, value):
    assert getattr(G, name) == value
    assert parse_gfp(name) == value


@pytest.mark.parametrize("name,value", [
    ("__GFP_RECLAIM", 0xC00),
    ("GFP_ATOMIC", 0x820),
    ("GFP_KERNEL", 0xCC0),
    ("GFP_KERNEL_ACCOUNT", 0x400CC0),
    ("GFP_NOWAIT", 0x2800),
    ("GFP_NOIO", 0xC00),
    ("GFP_NOFS", 0xC40),
    ("GFP_USER", 0x100CC0),
    ("GFP_HIGHUSER", 0x100CC2),
    ("GFP_HIGHUSER_MOVABLE", 0x100CCA),
    # (0x100cca | COMP 0x40000 | NOMEMALLOC 0x80000 | NOWARN 0x2000) & ~0xc00
    ("GFP_TRANSHUGE_LIGHT", 0x1C20CA),
    ("GFP_TRANSHUGE", 0x1C24CA),
])
def test_composites(name, value):
    assert getattr(G, name) == value
    assert parse_gfp(name) == value


@pytest.mark.parametrize("mask,text", [
    # the examples of the issue
    (0x52CC0, "0x52cc0(GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP)"),
    (0x2DC2, "0x2dc2(GFP_KERNEL|__GFP_HIGHMEM|__GFP_NOWARN|__GFP_ZERO)"),
    (0x140CCA, "0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)"),
    (0x0, "0x0()"),
    # composites, longest first
    (0xCC0, "0xcc0(GFP_KERNEL)"),
    (0x100CC0, "0x100cc0(GFP_USER)"),
    (0x100CC2, "0x100cc2(GFP_HIGHUSER)"),
    (0x400CC0, "0x400cc0(GFP_KERNEL_ACCOUNT)"),
    (0x1C24CA, "0x1c24ca(GFP_TRANSHUGE)"),
    (0x1C20CA, "0x1c20ca(GFP_TRANSHUGE_LIGHT)"),
    (0xC40, "0xc40(GFP_NOFS)"),
    (0xC00, "0xc00(GFP_NOIO)"),
    (0x820, "0x820(GFP_ATOMIC)"),
    (0x2800, "0x2800(GFP_NOWAIT)"),
    # GFP_ATOMIC consumes KSWAPD_RECLAIM, so GFP_NOWAIT cannot match after it
    (0x2820, "0x2820(GFP_ATOMIC|__GFP_NOWARN)"),
    (0xCD0, "0xcd0(GFP_KERNEL|__GFP_RECLAIMABLE)"),
    (0xCC1, "0xcc1(GFP_KERNEL|GFP_DMA)"),
    (0xCC4, "0xcc4(GFP_KERNEL|GFP_DMA32)"),
    (0x8C40, "0x8c40(GFP_NOFS|__GFP_NOFAIL)"),
    (0x400, "0x400(__GFP_DIRECT_RECLAIM)"),
    (0x800, "0x800(__GFP_KSWAPD_RECLAIM)"),
    (0x108, "0x108(__GFP_ZERO|__GFP_MOVABLE)"),
    # bits without a name are printed as a number, after the names
    (0x200, "0x200(0x200)"),
    (0xCC0 | 0x1000000, "0x1000cc0(GFP_KERNEL|0x1000000)"),
])
def test_format_like_pGg(mask, text):
    assert format_gfp_mask(mask) == text
    assert format_gfp(mask) == text[text.index("(") + 1 : -1]


@pytest.mark.parametrize("text,mask", [
    ("GFP_KERNEL|__GFP_ZERO", 0xDC0),
    ("  GFP_KERNEL | __GFP_NOWARN ", 0x2CC0),
    ("0x140cca", 0x140CCA),
    ("3264", 0xCC0),
    ("", 0),
    ("0x0()", 0),
    ("0xcc0(GFP_KERNEL)", 0xCC0),
    ("0x52cc0(GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP)", 0x52CC0),
    ("GFP_DMA", 0x1),
    ("__GFP_DMA|__GFP_DMA32", 0x5),
    ("GFP_KERNEL|0x1000000", 0x1000CC0),
])
def test_parse(text, mask):
    assert parse_gfp(text) == mask


def test_parse_int_passthrough_and_negative():
    assert parse_gfp(0xCC0) == 0xCC0
    with pytest.raises(GfpParseError):
        parse_gfp(-1)


@pytest.mark.parametrize("text", ["GFP_KERNAL", "GFP_KERNEL||__GFP_ZERO", "GFP_KERNEL|+", "0xcc0(GFP_USER)"])
def test_parse_errors(text):
    with pytest.raises(GfpParseError) as ei:
        parse_gfp(text)
    assert "gfp mask" in str(ei.value)


def test_parse_error_suggests_a_name():
    with pytest.raises(GfpParseError, match="did you mean 'GFP_KERNEL'"):
        parse_gfp("GFP_KERNAL")


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 26) - 1))
def test_format_parse_round_trip(mask):
    assert parse_gfp(format_gfp_mask(mask)) == mask
    assert parse_gfp(format_gfp(mask)) == mask
    # every printed name stands for bits that are really set
    for name in format_gfp(mask).split("|"):
        if name:
            bits = parse_gfp(name)
            assert mask & bits == bits


@pytest.mark.parametrize("mask,mt", [
    (G.GFP_KERNEL, MIGRATE_UNMOVABLE),
    (G.GFP_USER, MIGRATE_UNMOVABLE),
    (G.GFP_ATOMIC, MIGRATE_UNMOVABLE),
    (G.GFP_HIGHUSER_MOVABLE, MIGRATE_MOVABLE),
    (G.GFP_TRANSHUGE, MIGRATE_MOVABLE),
    (G.GFP_KERNEL | G.__GFP_RECLAIMABLE, MIGRATE_RECLAIMABLE),
    (G.__GFP_DMA | G.__GFP_MOVABLE, MIGRATE_MOVABLE),
])
def test_migratetype(mask, mt):
    assert gfp_migratetype(mask) == mt
    assert gfp_migratetype(mask) == (mask & 0x18) >> 3


@pytest.mark.parametrize("mask,zone", [
    (G.GFP_KERNEL, ZONE_NORMAL),
    (G.GFP_USER, ZONE_NORMAL),
    (G.GFP_HIGHUSER, ZONE_NORMAL),  # HIGHMEM alone: no highmem on 64-bit
    (G.GFP_USER | G.__GFP_MOVABLE, ZONE_NORMAL),  # MOVABLE without HIGHMEM
    (G.GFP_HIGHUSER_MOVABLE, ZONE_MOVABLE),
    (G.GFP_KERNEL | G.__GFP_DMA, ZONE_DMA),
    (G.GFP_KERNEL | G.__GFP_DMA32, ZONE_DMA32),
    (G.GFP_HIGHUSER_MOVABLE | G.__GFP_DMA, ZONE_DMA),
    (G.GFP_HIGHUSER_MOVABLE | G.__GFP_DMA32, ZONE_DMA32),
])
def test_gfp_zone(tiny, mask, zone):
    assert tiny.gfp_zone(mask) == zone


def test_allocation_rejects_non_int_masks(tiny):
    with pytest.raises(TypeError):
        tiny.alloc_pages("GFP_KERNEL", 0)
    with pytest.raises(TypeError):
        tiny.alloc_pages(-1, 0)
    assert tiny.nr_allocs == 0
