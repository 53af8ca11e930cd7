"""The page_ext record layout (``pageext_core.layout``), against the rule in its docstring.

Every expected offset and size below is worked out by hand from the rule:
flags word (8 bytes) first when any needed client wants a bit, bits handed
out in client-name order; clients sorted by name, each at the size so far
rounded up to its own alignment; fields in declared order at natural
alignment, a client's size rounded up to its largest alignment (C struct);
the record rounded up to the largest alignment in it; nothing when no
client is needed.
"""
from __future__ import annotations

import numpy as np
import pytest
from fwsupport import PAGES_PER_SECTION, Counter, Fixed, boot_with, log_lines

from pageext_core.layout import FLAGS_FIELD, Layout, LayoutError, compute_layout
from pageext_core.mm import check_invariants
from pageext_core.mm.gfp import GFP_KERNEL


def offsets(layout: Layout) -> dict[str, tuple[int, int]]:
    return {c.name: (c.offset, c.size) for c in layout.clients}


def field_offsets(layout: Layout, client: str) -> dict[str, int]:
    return {f.name: f.offset for f in layout.client(client).fields}


# -- nothing needed ------------------------------------------------------------------


def test_no_client_needed_allocates_nothing_and_installs_no_callouts():
    quiet = Counter({"big": ("u8", 4)}, ["F"], need=False)
    pe = boot_with(("quiet", quiet))
    m = pe.machine

    assert pe.record_size == 0
    assert pe.tables is None
    assert pe.nbytes == 0
    assert pe.enabled == []
    assert pe.layout == Layout(record_size=0, has_flags=False, clients=())
    # The allocator makes no call at all.
    assert all(entries == () for entries in m.callouts.events().values())
    assert m.contents.fault_handlers == []
    lines = log_lines(pe)
    assert "pageext: page_ext: no client is enabled, nothing allocated" in lines
    assert not [t for t in lines if "bytes of page_ext" in t]
    # All 16384 pages of the 64 MiB machine are free: nothing was taken for tables.
    assert m.nr_free_pages == 16384

    p = m.alloc_pages(GFP_KERNEL, 3)
    m.free_pages(p, 3)
    assert quiet.events == []
    assert quiet.asked == ["need"]  # fields, flags and init are asked of needed clients only
    assert pe.report("page_ext") == "record size: 0 bytes\npage_ext bytes: 0\n"
    check_invariants(m)


def test_empty_layout():
    assert compute_layout([]) == Layout(record_size=0, has_flags=False, clients=())


# -- flags only ----------------------------------------------------------------------------


def test_flags_only_one_word_bits_in_name_order():
    lay = compute_layout([("beta", {}, ["Z"]), ("alpha", {}, ["X", "Y"])])
    assert lay.record_size == 8
    assert lay.has_flags
    assert [c.name for c in lay.clients] == ["alpha", "beta"]
    assert dict(lay.client("alpha").flag_bits) == {"X": 0, "Y": 1}
    assert dict(lay.client("beta").flag_bits) == {"Z": 2}
    # Flag-only clients take no bytes; they sit at the end of the flags word.
    assert offsets(lay) == {"alpha": (8, 0), "beta": (8, 0)}
    assert lay.dtype.names == (FLAGS_FIELD,)
    assert lay.dtype.itemsize == 8


def test_flags_only_boot_bits_land_in_the_shared_word():
    beta, alpha = Fixed(flags=["Z"]), Fixed(flags=["X", "Y"])
    pe = boot_with(("beta", beta), ("alpha", alpha))
    assert pe.record_size == 8
    # One section (the 64 MiB machine is inside section 0), a table for the whole section.
    assert pe.nbytes == 8 * PAGES_PER_SECTION
    alpha.view.set_flags(100, alpha.view.flag("Y"))
    beta.view.set_flags(100, beta.view.flag("Z"))
    word = int(pe.tables.tables[0].records[FLAGS_FIELD][100])
    assert word == 0b110  # Y is bit 1, Z is bit 2
    assert alpha.view.flag_bits == {"X": 1, "Y": 2}
    assert beta.view.flag_bits == {"Z": 4}


def test_flags_word_only_when_a_needed_client_asks_for_a_bit():
    pe = boot_with(("data", Fixed({"x": "u2"})), ("flagger", Fixed(flags=["F"], need=False)))
    assert not pe.layout.has_flags
    assert pe.record_size == 2
    assert offsets(pe.layout) == {"data": (0, 2)}


# -- fields only -----------------------------------------------------------------------------


def test_fields_only_c_struct_padding():
    # struct { u8 a; /* 3 pad */ u32 b; u16 c; /* 2 pad */ } == 12 bytes
    lay = compute_layout([("c", {"a": "u1", "b": "u4", "c": "u2"}, [])])
    assert not lay.has_flags
    assert field_offsets(lay, "c") == {"a": 0, "b": 4, "c": 8}
    assert offsets(lay) == {"c": (0, 12)}
    assert lay.record_size == 12
    # numpy's C-struct alignment agrees
    assert np.dtype([("a", "u1"), ("b", "u4"), ("c", "u2")], align=True).itemsize == 12
    dt = lay.dtype
    assert dt.names == ("c.a", "c.b", "c.c")
    assert [dt.fields[n][1] for n in dt.names] == [0, 4, 8]
    assert dt.itemsize == 12


def test_fields_only_boot_sizes_tables_exactly():
    pe = boot_with(("c", Fixed({"a": "u1", "b": "u4", "c": "u2"})))
    assert pe.record_size == 12
    assert pe.nbytes == 12 * PAGES_PER_SECTION
    assert f"allocated {12 * PAGES_PER_SECTION} bytes of page_ext" in log_lines(pe)


def test_client_tail_padding_and_record_rounding():
    # a: u4 + u1 -> 5 bytes, padded to 8 (alignment 4)
    assert offsets(compute_layout([("a", {"x": "u4", "y": "u1"}, [])])) == {"a": (0, 8)}
    # a: u8 at 0; b: u1 at 8 -> 9 bytes, record rounded up to the u8 alignment: 16
    lay = compute_layout([("b", {"y": "u1"}, []), ("a", {"x": "u8"}, [])])
    assert offsets(lay) == {"a": (0, 8), "b": (8, 1)}
    assert lay.record_size == 16
    # a: u1 at 0; b: u8 must start aligned: 8; record 16
    lay = compute_layout([("a", {"y": "u1"}, []), ("b", {"x": "u8"}, [])])
    assert offsets(lay) == {"a": (0, 1), "b": (8, 8)}
    assert lay.record_size == 16
    # only byte-aligned data: no rounding at all
    lay = compute_layout([("a", {"s": "S3"}, []), ("b", {"t": "S2"}, [])])
    assert offsets(lay) == {"a": (0, 3), "b": (3, 2)}
    assert lay.record_size == 5


# -- mixed ---------------------------------------------------------------------------------------


def test_mixed_flags_and_fields():
    # flags word [0, 8); alpha: cnt u2 at 8 -> 10; beta (align 8): ts u8 at 16, tag S3 at 24,
    # beta size 11 rounded to 16 -> ends at 32; record 32.
    lay = compute_layout([("beta", {"ts": "u8", "tag": "S3"}, []), ("alpha", {"cnt": "u2"}, ["F"])])
    assert lay.has_flags
    assert offsets(lay) == {"alpha": (8, 2), "beta": (16, 16)}
    assert field_offsets(lay, "alpha") == {"cnt": 8}
    assert field_offsets(lay, "beta") == {"ts": 16, "tag": 24}
    assert dict(lay.client("alpha").flag_bits) == {"F": 0}
    assert dict(lay.client("beta").flag_bits) == {}
    assert lay.record_size == 32
    assert lay.dtype.names == (FLAGS_FIELD, "alpha.cnt", "beta.ts", "beta.tag")


def test_mixed_boot_report_text():
    pe = boot_with(("beta", Fixed({"ts": "u8", "tag": "S3"})), ("alpha", Fixed({"cnt": "u2"}, ["F"])))
    nbytes = 32 * PAGES_PER_SECTION
    assert pe.report("page_ext") == (
        "record size: 32 bytes\n"
        f"page_ext bytes: {nbytes}\n"
        f"tables: 1 (per section), {nbytes // 4096} simulated pages\n"
        "offset 0: flags word (8 bytes)\n"
        "offset 8: alpha (2 bytes), flags F=bit0\n"
        "    +0    cnt <u2\n"
        "offset 16: beta (16 bytes)\n"
        "    +0    ts <u8\n"
        "    +8    tag |S3\n"
    )


# -- several clients: order by name -------------------------------------------------------------


@pytest.mark.parametrize("order", [("zeta", "alpha", "mid"), ("mid", "zeta", "alpha"), ("alpha", "mid", "zeta")])
def test_clients_ordered_by_name_not_registration(order):
    spec = {"zeta": {"z": "u4"}, "alpha": {"a": "u8"}, "mid": {"m": "u1"}}
    pe = boot_with(*[(n, Fixed(spec[n])) for n in order])
    assert pe.enabled == ["alpha", "mid", "zeta"]
    # alpha u8 at 0; mid u1 at 8; zeta u4 at align(9, 4) = 12; record align(16, 8) = 16
    assert offsets(pe.layout) == {"alpha": (0, 8), "mid": (8, 1), "zeta": (12, 4)}
    assert pe.record_size == 16


def test_flag_bits_follow_client_names_up_to_64():
    a = [f"A{i}" for i in range(40)]
    b = [f"B{i}" for i in range(24)]
    lay = compute_layout([("bbb", {}, b), ("aaa", {}, a)])
    assert dict(lay.client("aaa").flag_bits) == {n: i for i, n in enumerate(a)}
    assert dict(lay.client("bbb").flag_bits) == {n: 40 + i for i, n in enumerate(b)}
    assert lay.record_size == 8
    with pytest.raises(LayoutError, match="'ccc'.*no bit left"):
        compute_layout([("bbb", {}, b), ("aaa", {}, a), ("ccc", {}, ["one_too_many"])])


# -- (dtype, shape) fields ---------------------------------------------------------------------------


def test_dtype_shape_fields():
    # stack: 3 x u4 at 0 (12); grid: 2x2 u2 at 12 (8) -> 20; tag S5 at 20 -> 25; size align(25, 4) = 28
    lay = compute_layout([("s", {"stack": ("u4", 3), "grid": ("u2", (2, 2)), "tag": "S5"}, [])])
    fl = {f.name: (f.offset, f.shape, f.size) for f in lay.client("s").fields}
    assert fl == {"stack": (0, (3,), 12), "grid": (12, (2, 2), 8), "tag": (20, (), 5)}
    assert offsets(lay) == {"s": (0, 28)}
    assert lay.record_size == 28


def test_dtype_shape_fields_through_a_view():
    c = Fixed({"stack": ("u4", 3), "grid": ("u2", (2, 2))})
    pe = boot_with(("s", c))
    m = pe.machine
    p = m.alloc_pages(GFP_KERNEL, 1)
    blk = c.view.block(p, 1)
    assert blk["stack"].shape == (2, 3)
    assert blk["grid"].shape == (2, 2, 2)
    blk["stack"][1] = [7, 8, 9]
    assert c.view.get(p + 1, "stack").tolist() == [7, 8, 9]
    d = pe.client("s").describe()
    assert d["fields"] == {"stack": ["<u4", [3]], "grid": ["<u2", [2, 2]]}
    assert (d["offset"], d["size"]) == (0, 20)


# -- bad dtypes and names ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [
    "not_a_dtype", "u3", 3, "O", "S0", [("a", "u1")], "i8,i8",
    ("u4", 0), ("u4", (2, -1)), ("u4",), ("u4", 2, 1),
], ids=repr)
def test_bad_dtype_is_a_layout_error_naming_client_and_field(spec):
    with pytest.raises(LayoutError, match=r"client 'bad' field 'f'"):
        compute_layout([("bad", {"f": spec}, [])])


def test_none_is_not_a_dtype():
    with pytest.raises(LayoutError, match=r"client 'bad' field 'f'"):
        compute_layout([("bad", {"f": None}, [])])


@pytest.mark.parametrize("fname", ["not valid", "1st", "", "a-b", 3, None], ids=repr)
def test_bad_field_name_is_a_layout_error(fname):
    with pytest.raises(LayoutError, match="client 'bad': field name"):
        compute_layout([("bad", {fname: "u4"}, [])])


def test_other_layout_errors():
    with pytest.raises(LayoutError, match="must return a mapping"):
        compute_layout([("bad", [("f", "u4")], [])])  # type: ignore[list-item]
    with pytest.raises(LayoutError, match="declares flag 'F' twice"):
        compute_layout([("bad", {}, ["F", "F"])])
    with pytest.raises(LayoutError, match="duplicate client names"):
        compute_layout([("x", {}, ["F"]), ("x", {}, ["G"])])


def test_boot_with_bad_field_fails_naming_the_client():
    with pytest.raises(LayoutError, match="client 'oops' field 'f'"):
        boot_with(("ok", Fixed({"x": "u4"})), ("oops", Fixed({"f": "float128x"})))
