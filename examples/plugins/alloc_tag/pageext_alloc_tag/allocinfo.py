"""The ``/proc/allocinfo`` text: writing it, and reading it back.

Format (version 1.0 of the kernel's file)::

    allocinfo - version: 1.0
    #     <size>  <calls> <tag info>
              8192        2 mm/slub.c:0 func:allocate_slab 

one row per call site ever seen, in the order they were first seen: live
bytes (``%12lli``), live allocations (``%8llu``), a space, the tag text, and
— as the kernel writes it — a space before the newline.  Rows whose counters
are back to zero stay (the kernel lists every tag compiled in).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

HEADER = "allocinfo - version: 1.0\n#     <size>  <calls> <tag info>\n"


class Row(NamedTuple):
    bytes: int
    calls: int
    tag: str


def format_row(nbytes: int, calls: int, tag: str) -> str:
    return f"{nbytes:12d} {calls:8d} {tag} \n"


def format_allocinfo(rows: Iterable[tuple[int, int, str]]) -> Iterator[str]:
    """The file, in chunks: the header, then one line per row."""
    yield HEADER
    for nbytes, calls, tag in rows:
        yield format_row(nbytes, calls, tag)


def parse_allocinfo(text: str) -> list[Row]:
    """Rows of an allocinfo text (header checked), for tests and tools."""
    lines = text.splitlines()
    if lines[:2] != HEADER.splitlines():
        raise ValueError(f"not an allocinfo version 1.0 file: starts with {lines[:2]!r}")
    out = []
    for n, line in enumerate(lines[2:], 3):
        parts = line.split(None, 2)
        if len(parts) != 3:
            raise ValueError(f"line {n}: expected '<size> <calls> <tag info>', got {line!r}")
        out.append(Row(int(parts[0]), int(parts[1]), parts[2].rstrip()))
    return out
