"""Groups of records: what they hold, which records are kept, culling, sorting and diffing."""
from __future__ import annotations

import operator
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from typing import Any

__all__ = ["CULL_ORDER", "U64_MAX", "DiffRow", "Group", "HostStats", "Partial", "Selection", "cull", "cull_key",
           "diff_groups", "group_key", "sort_groups"]

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


# A group's fields in declaration order, as one tuple (C speed): what ``Group(*row)`` takes back.
_group_row = operator.attrgetter(*(f.name for f in dataclass_fields(Group)))


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


def cull_key(g: Group, fields: Sequence[str]) -> tuple[Any, ...]:
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
    merged: dict[tuple[Any, ...], Group] = {}
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

    key: tuple[Any, ...]
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
    rows: dict[tuple[Any, ...], DiffRow] = {}
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


def group_key(g: Group, fields: Sequence[str]) -> Hashable:
    """What makes two groups one: the cull key with ``fields``, else the record text."""
    return cull_key(g, fields) if fields else g.text


@dataclass
class HostStats:
    """How one host's dump read: what ``page_owner_sort`` prints about its input."""

    source: str  # the dump's path
    loaded: int = 0  # records kept (after --pid/--tgid/--name)
    parsed: int = 0  # records read, kept or not
    unparsed: int = 0
    released: int = 0
    lines: int = 0  # lines read so far (parts of one file are merged in file order)
    first_error: tuple[int, str] | None = None  # (line, reason) of the first unusable block

    def then(self, later: HostStats) -> HostStats:
        """These counts followed by those of the next part of the same file."""
        err = self.first_error
        if err is None and later.first_error is not None:
            err = (later.first_error[0] + self.lines, later.first_error[1])
        return HostStats(self.source, self.loaded + later.loaded, self.parsed + later.parsed, self.unparsed + later.unparsed,
                         self.released + later.released, self.lines + later.lines, err)


@dataclass
class Partial:
    """The groups of some hosts' dumps, with each host's share: mergeable, in any tree.

    ``page_owner_fleet`` makes one per dump (or part of a big dump) where
    the dump lies and combines them in a tree, several at a time.  Merging keeps the groups
    in order of first appearance (the left operand's first), so the fields
    a group shows are those of its first record in the concatenation of
    the dumps in the order merged, exactly as :func:`cull` takes them from
    one dump.  :meth:`merged` returns a new object and changes neither
    operand (a Dask task may run again on the same inputs).
    """

    fields: tuple[str, ...]
    hosts: list[str] = field(default_factory=list)
    stats: list[HostStats] = field(default_factory=list)
    index: dict[Hashable, int] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    by_host: list[dict[int, tuple[int, int]]] = field(default_factory=list)  # per group: host -> (times, pages)

    @classmethod
    def of(cls, host: str, groups: list[Group], fields: Sequence[str], stats: HostStats) -> Partial:
        """One host's groups (as :meth:`Aggregator.groups` gives them), merged by ``fields``."""
        p = cls(tuple(fields), [host], [stats])
        for g in groups:
            k = group_key(g, fields)
            i = p.index.get(k)
            if i is None:
                p.index[k] = len(p.groups)
                p.groups.append(g)
                p.by_host.append({0: (g.times, g.pages)})
            else:
                m = p.groups[i] = replace(p.groups[i], times=p.groups[i].times + g.times, pages=p.groups[i].pages + g.pages)
                p.by_host[i] = {0: (m.times, m.pages)}
        return p

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # A Partial travels between Dask workers at every merge: as plain tuples it pickles and loads about
        # three times faster than as Group objects, and the index travels as its keys in group order.
        keys: list[Hashable] = [None] * len(self.groups)
        for k, i in self.index.items():
            keys[i] = k
        rows = [_group_row(g) for g in self.groups]
        return _restore_partial, (self.fields, self.hosts, self.stats, keys, rows, self.by_host)

    def merged(self, *others: Partial) -> Partial:
        """Self followed by ``others`` in order; a host met again is one dump read in parts (the later part last).

        One new object, copied once however many are merged: a merge of
        eight partials costs one pass over each, not seven copies of a
        growing result.
        """
        for other in others:
            if other.fields != self.fields:
                raise ValueError(f"cannot merge groups culled by {other.fields} into groups culled by {self.fields}")
        out = Partial(self.fields, list(self.hosts), list(self.stats), dict(self.index), list(self.groups), list(self.by_host))
        owned: set[int] = set()  # groups (and per-host dicts) that are out's own; the others are an operand's
        for other in others:
            out._absorb(other, owned)
        return out

    def _absorb(self, other: Partial, owned: set[int]) -> None:
        remap: dict[int, int] = {}
        where = {h: i for i, h in enumerate(self.hosts)}
        for j, h in enumerate(other.hosts):
            i = where.get(h)
            if i is None:
                i = where[h] = len(self.hosts)
                self.hosts.append(h)
                self.stats.append(other.stats[j])
            else:
                self.stats[i] = self.stats[i].then(other.stats[j])
            remap[j] = i
        for k, gi in other.index.items():
            g = other.groups[gi]
            i = self.index.get(k)
            if i is None:  # the operand's group itself (copied if a later operand adds to it)
                self.index[k] = len(self.groups)
                self.groups.append(g)
                self.by_host.append({remap[hj]: v for hj, v in other.by_host[gi].items()})
            else:
                m = self.groups[i]
                if i in owned:
                    m.times += g.times
                    m.pages += g.pages
                    d = self.by_host[i]
                else:  # still an operand's group: counted into a copy
                    m = self.groups[i] = Group(*_group_row(m))
                    m.times += g.times
                    m.pages += g.pages
                    d = self.by_host[i] = dict(self.by_host[i])
                    owned.add(i)
                for hj, (t, pg) in other.by_host[gi].items():
                    t0, p0 = d.get(remap[hj], (0, 0))
                    d[remap[hj]] = (t0 + t, p0 + pg)

    def host_shares(self, i: int) -> list[tuple[str, int, int]]:
        """Group ``i``'s ``(host, times, pages)`` on every host it occurs on, most pages first (then by host)."""
        rows = [(self.hosts[h], t, p) for h, (t, p) in self.by_host[i].items()]
        rows.sort(key=lambda r: (-r[2], r[0]))
        return rows


def _restore_partial(fields: tuple[str, ...], hosts: list[str], stats: list[HostStats], keys: list[Hashable],
                     rows: list[tuple[Any, ...]], by_host: list[dict[int, tuple[int, int]]]) -> Partial:
    return Partial(fields, hosts, stats, {k: i for i, k in enumerate(keys)}, [Group(*r) for r in rows], by_host)
