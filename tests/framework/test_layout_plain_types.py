"""The layout reads plain dtype strings without numpy, and reads them exactly as numpy does.

``compute_layout`` works out sizes and alignments of ``"<u8"``-style field
specs itself so that ``pageext plugins`` needs no numpy; each answer it
gives is checked here against ``numpy.dtype`` (the reference), and a layout
from strings against the same layout from numpy dtype objects.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pageext_core.layout import FieldType, _plain_type, compute_layout

ORDERS = ["", "<", ">", "=", "|"]
KINDS = "biufcSV"


def numpy_answer(spec: str) -> FieldType:
    dt = np.dtype(spec)
    return FieldType(dt.str, dt.itemsize, dt.alignment)


@given(order=st.sampled_from(ORDERS), kind=st.sampled_from(KINDS), size=st.integers(0, 40))
def test_every_string_read_without_numpy_is_read_as_numpy_reads_it(order: str, kind: str, size: int) -> None:
    spec = f"{order}{kind}{size}"
    got = _plain_type(spec)
    if got is None:  # left to numpy: nothing to compare
        return
    assert got == numpy_answer(spec)


@pytest.mark.parametrize("spec", ["<u8", "<u2", "<i2", "<u4", "<i4", "S16", "u1", "i1", "?", "b1", "f8", ">u4",
                                  "=i8", "c8", "<c16", "f2", "|S3", "V44", "|u1"])
def test_the_common_specs_are_read_without_numpy_and_match_it(spec: str) -> None:
    got = _plain_type(spec)
    assert got is not None
    assert got == numpy_answer(spec)


@pytest.mark.parametrize("spec", ["u3", "|u8", "b2", "S0", "U4", "M8[ns]", "uint32", "f16"])
def test_anything_else_is_left_to_numpy(spec: str) -> None:
    assert _plain_type(spec) is None


def test_a_layout_from_strings_equals_the_layout_from_numpy_dtypes() -> None:
    fields = {"ts": "<u8", "order": "<u2", "reason": "<i2", "comm": "S16", "flag": "?", "vec": ("<u4", 3),
              "tail": "u1"}
    as_numpy = {k: (np.dtype(v[0]), v[1]) if isinstance(v, tuple) else np.dtype(v) for k, v in fields.items()}
    a = compute_layout([("a", fields, ["X"]), ("b", {"x": "<u8"}, [])])
    b = compute_layout([("a", as_numpy, ["X"]), ("b", {"x": np.dtype("<u8")}, [])])
    assert a == b  # FieldType compares code, size and alignment (not the numpy object it may keep)
    assert a.dtype == b.dtype
    for fa, fb in zip(a.clients[0].fields, b.clients[0].fields):
        assert (fa.offset, fa.size, fa.dtype_str, fa.dtype) == (fb.offset, fb.size, fb.dtype.str, fb.dtype)


def test_a_numpy_dtype_given_as_a_spec_is_kept_as_given() -> None:
    sub = np.dtype((np.uint8, 4))  # a subarray dtype: its .str alone ("|V4") would lose the shape
    lay = compute_layout([("a", {"x": sub}, [])])
    assert lay.clients[0].fields[0].dtype == sub
