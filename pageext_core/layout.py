"""The page_ext record layout, computed at boot from the enabled clients (those whose ``need`` said yes).

The rule is mainline's (offsets in a fixed client order, a shared flags
word only when needed), with the alignment a numpy record needs, which the
kernel gets for free because its clients' structs are multiples of 8:

1. the record starts empty;
2. if any enabled client asks for flag bits, the record starts with one
   8-byte flags word, and bits are handed out in client order;
3. enabled clients are placed in a fixed order — sorted by client name, so
   the layout does not depend on install or discovery order — each at the
   size so far rounded up to its own alignment; inside a client, fields go
   in the order it declared them, each at its natural alignment (a C struct);
4. the record size is the end of the last client rounded up to the largest
   alignment in the record (so every record in a table stays aligned);
   nothing else is added;
5. no enabled client: record size 0 and nothing is allocated.

Computing a layout needs no numpy when every field is given as a dtype
string of a plain scalar (``"<u8"``, ``"S16"``...): ``pageext plugins``
lays out the clients without importing it.  A numpy dtype object given as a
spec, and the ``dtype`` properties, use numpy (imported then).
"""
from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

FLAGS_FIELD = "__page_ext_flags"
FLAGS_BYTES = 8


class LayoutError(ValueError):
    """A client's fields or flags cannot be laid out (bad dtype, duplicate name, too many bits)."""


@dataclass(frozen=True)
class FieldType:
    """What the layout needs of a field's dtype: numpy's ``dtype.str``, its size and its alignment."""

    code: str  # numpy's dtype.str, e.g. "<u8", "|S16"
    itemsize: int
    alignment: int
    numpy_dtype: Any = field(default=None, compare=False, repr=False)  # the dtype given, when numpy read it

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype (imports numpy)."""
        if self.numpy_dtype is not None:
            return self.numpy_dtype  # type: ignore[no-any-return]  # a np.dtype by construction
        import numpy as np

        return np.dtype(self.code)


@dataclass(frozen=True)
class FieldLayout:
    name: str
    offset: int  # from the start of the record
    type: FieldType
    shape: tuple[int, ...] = ()

    @property
    def dtype(self) -> np.dtype:
        """The field's numpy dtype (imports numpy)."""
        return self.type.dtype

    @property
    def dtype_str(self) -> str:
        """numpy's ``dtype.str`` of the field, without importing numpy."""
        return self.type.code

    @property
    def size(self) -> int:
        return self.type.itemsize * math.prod(self.shape)


@dataclass(frozen=True)
class ClientLayout:
    """Where one client's bytes and bits are."""

    name: str
    offset: int
    size: int
    fields: tuple[FieldLayout, ...]
    flag_bits: Mapping[str, int] = field(default_factory=dict)  # name -> bit number


@dataclass(frozen=True)
class Layout:
    record_size: int
    has_flags: bool
    clients: tuple[ClientLayout, ...]

    @property
    def dtype(self) -> np.dtype:
        """The full record as a numpy structured dtype (imports numpy)."""
        import numpy as np

        names: list[str] = []
        formats: list[Any] = []  # a dtype, or (dtype, shape) for an array field
        offsets: list[int] = []
        if self.has_flags:
            names.append(FLAGS_FIELD)
            formats.append(np.dtype("<u8"))
            offsets.append(0)
        for c in self.clients:
            for f in c.fields:
                names.append(f"{c.name}.{f.name}")
                formats.append((f.dtype, f.shape) if f.shape else f.dtype)
                offsets.append(f.offset)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": max(self.record_size, 1)})

    def client(self, name: str) -> ClientLayout:
        for c in self.clients:
            if c.name == name:
                return c
        raise KeyError(f"client {name!r} is not in the page_ext layout (not enabled this boot?)")


# A plain scalar's dtype string, as numpy reads it: byte order, kind, size in bytes.
_SCALAR = re.compile(r"([<>=|]?)([biufc])(\d+)")
_SCALAR_SIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8), "c": (8, 16)}
_BYTES = re.compile(r"\|?([SV])(\d+)")
_NATIVE = "<" if sys.byteorder == "little" else ">"


def _plain_type(spec: str) -> FieldType | None:
    """The ``FieldType`` numpy would give a plain scalar or bytes dtype string, worked out without numpy.

    None for anything else (numpy then reads the spec); ``tests/framework``
    checks every string accepted here against numpy's own answer.
    """
    if spec == "?":
        spec = "b1"
    m = _SCALAR.fullmatch(spec)
    if m is not None:
        order, kind, n = m.group(1), m.group(2), int(m.group(3))
        if n not in _SCALAR_SIZES[kind]:
            return None
        if n == 1 or kind == "b":
            order = "|"
        elif order in ("", "="):
            order = _NATIVE
        elif order == "|":
            return None
        return FieldType(f"{order}{kind}{n}", n, n // 2 if kind == "c" else n)
    m = _BYTES.fullmatch(spec)
    if m is not None and int(m.group(2)) > 0:
        return FieldType(f"|{m.group(1)}{int(m.group(2))}", int(m.group(2)), 1)
    return None


def _field_dtype(client: str, name: str, spec: Any) -> tuple[FieldType, tuple[int, ...]]:
    shape: tuple[int, ...] = ()
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise LayoutError(f"client {client!r} field {name!r}: expected dtype or (dtype, shape), got {spec!r}")
        spec, shp = spec
        shape = (shp,) if isinstance(shp, int) else tuple(shp)
    if spec is None:
        raise LayoutError(f"client {client!r} field {name!r}: None is not a dtype (numpy would read it as float64)")
    ft = _plain_type(spec) if isinstance(spec, str) else None
    if ft is None:
        import numpy as np

        try:
            dt = np.dtype(spec)
        except TypeError as exc:
            raise LayoutError(f"client {client!r} field {name!r}: {spec!r} is not a numpy dtype ({exc})") from None
        if dt.fields is not None or dt.hasobject or dt.itemsize == 0:
            raise LayoutError(f"client {client!r} field {name!r}: use a plain fixed-size dtype, not {dt}")
        ft = FieldType(dt.str, dt.itemsize, dt.alignment, dt)
    if any(d <= 0 for d in shape):
        raise LayoutError(f"client {client!r} field {name!r}: shape {shape} must be positive")
    return ft, shape


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def compute_layout(clients: Sequence[tuple[str, Mapping[str, Any], Sequence[str]]]) -> Layout:
    """Lay out enabled clients given as ``(name, fields, flag_names)``."""
    ordered = sorted(clients, key=lambda c: c[0])
    names = [c[0] for c in ordered]
    if len(set(names)) != len(names):
        raise LayoutError(f"duplicate client names in layout: {names}")
    has_flags = any(flags for _, _, flags in ordered)
    size = FLAGS_BYTES if has_flags else 0
    max_align = FLAGS_BYTES if has_flags else 1
    bit = 0
    out: list[ClientLayout] = []
    for name, fields, flags in ordered:
        if not isinstance(fields, Mapping):
            raise LayoutError(f"client {name!r}: pageext_fields must return a mapping, got {type(fields).__name__}")
        placed: list[tuple[str, FieldType, tuple[int, ...], int]] = []
        rel = 0
        calign = 1
        for fname, spec in fields.items():
            if not isinstance(fname, str) or not fname.isidentifier():
                raise LayoutError(f"client {name!r}: field name {fname!r} must be an identifier")
            dt, shape = _field_dtype(name, fname, spec)
            a = dt.alignment
            rel = _align(rel, a)
            placed.append((fname, dt, shape, rel))
            rel += dt.itemsize * math.prod(shape)
            calign = max(calign, a)
        csize = _align(rel, calign) if placed else 0
        offset = _align(size, calign)
        bits: dict[str, int] = {}
        for fl in flags:
            if fl in bits:
                raise LayoutError(f"client {name!r} declares flag {fl!r} twice")
            if bit >= FLAGS_BYTES * 8:
                raise LayoutError(f"client {name!r}: the shared flags word has no bit left for {fl!r} (64 in use)")
            bits[fl] = bit
            bit += 1
        out.append(ClientLayout(
            name=name,
            offset=offset,
            size=csize,
            fields=tuple(FieldLayout(f, offset + r, dt, shp) for f, dt, shp, r in placed),
            flag_bits=bits,
        ))
        size = offset + csize
        max_align = max(max_align, calign)
    record = _align(size, max_align) if size else 0
    return Layout(record_size=record, has_flags=has_flags, clients=tuple(out))
