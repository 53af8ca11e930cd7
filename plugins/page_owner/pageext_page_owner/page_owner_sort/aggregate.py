"""Groups of records: what they hold, which records are kept, culling, sorting and diffing."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CULL_ORDER", "U64_MAX", "DiffRow", "Group", "Selection", "cull", "cull_key", "diff_groups", "sort_groups"]

U64_MAX = (1 << 64) - 1  # what the kernel tool stores when a field is missing (-1 as __u64)
CULL_ORDER = ("stacktrace", "pid", "tgid", "comm", "allocator")  # the precedence the kernel compares cull keys in


@dataclass
class Group:
    """A line of the report: records merged by text (or by the cull keys)."""

    times: int
    pages: int
    text: bytes  # kernel record text (first line + stack, PFN line removed), ends with "\n"
    order: int
    pid: int
    tgid: int
    comm: bytes
    ts: int
    free_ts: int
    alloc: int

    @property
    def stacktrace(self) -> bytes:
        """Text after the first line, as ``--cull=stacktrace`` compares it."""
        return self.text.partition(b"\n")[2]

    @property
    def first_line(self) -> bytes:
        return self.text.partition(b"\n")[0]

    def field(self, name: str) -> object:
        """The value a ``--sort`` or ``--cull`` key compares."""
        if name == "stacktrace":
            return self.stacktrace
        if name == "txt":
            return self.text
        if name == "alloc_ts":
            return self.ts
        if name == "allocator":
            return self.alloc
        return getattr(self, name)


@dataclass
class Selection:
    """``--pid`` / ``--tgid`` / ``--name`` lists and ``-f``."""

    pids: frozenset[int] | None = None
    tgids: frozenset[int] | None = None
    names: frozenset[bytes] | None = None
    drop_released: bool = False

    def keeps(self, pid: int, tgid: int, comm: bytes) -> bool:
        if self.pids is not None and pid not in self.pids:
            return False
        if self.tgids is not None and tgid not in self.tgids:
            return False
        if self.names is not None and comm not in self.names:
            return False
        return True


def cull_key(g: Group, fields: Sequence[str]) -> tuple:
    """The values a ``--cull`` compares, in the kernel's precedence order."""
    return tuple(g.field(f) for f in CULL_ORDER if f in fields)


def cull(groups: list[Group], fields: Sequence[str]) -> list[Group]:
    """Merge groups that agree on the cull fields; return them in grouping-pass order.

    Without fields, records are grouped by their whole text (already done
    while counting) and ordered by text, as the kernel's first sort does.
    With fields, the first record (in input order) of a merged group gives
    the values shown for it.
    """
    if not fields:
        return sorted(groups, key=lambda g: g.text)
    merged: dict[tuple, Group] = {}
    for g in groups:
        k = cull_key(g, fields)
        m = merged.get(k)
        if m is None:
            merged[k] = Group(g.times, g.pages, g.text, g.order, g.pid, g.tgid, g.comm, g.ts, g.free_ts, g.alloc)
        else:
            m.times += g.times
            m.pages += g.pages
    return [merged[k] for k in sorted(merged)]


def sort_groups(groups: list[Group], order: Sequence[tuple[str, int]]) -> list[Group]:
    """Stable multi-key sort: ties keep the grouping-pass order."""
    out = list(groups)
    for name, sign in reversed(order):
        out.sort(key=lambda g, n=name: g.field(n), reverse=sign < 0)  # type: ignore[misc]
    return out


@dataclass
class DiffRow:
    """One cull key's counts in the old and the new dump."""

    key: tuple
    rep: Group  # shows the key fields (taken from the new dump when present)
    old_times: int = 0
    old_pages: int = 0
    new_times: int = 0
    new_pages: int = 0

    @property
    def delta_times(self) -> int:
        return self.new_times - self.old_times

    @property
    def delta_pages(self) -> int:
        return self.new_pages - self.old_pages


def diff_groups(old: list[Group], new: list[Group], fields: Sequence[str]) -> list[DiffRow]:
    """Rows for every key present in either dump, largest page growth first.

    Ties: larger growth in records first, then the cull-key order.
    """
    rows: dict[tuple, DiffRow] = {}
    for g in cull(old, fields):
        k = cull_key(g, fields)
        rows[k] = DiffRow(k, g, old_times=g.times, old_pages=g.pages)
    for g in cull(new, fields):
        k = cull_key(g, fields)
        r = rows.get(k)
        if r is None:
            rows[k] = DiffRow(k, g, new_times=g.times, new_pages=g.pages)
        else:
            r.rep = g
            r.new_times, r.new_pages = g.times, g.pages
    out = sorted(rows.values(), key=lambda r: r.key)
    out.sort(key=lambda r: (r.delta_pages, r.delta_times), reverse=True)
    return out
