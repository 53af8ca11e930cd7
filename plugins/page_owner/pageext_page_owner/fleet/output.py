"""page_owner_fleet's writers: page_owner_sort's formats with each group's hosts, and Parquet.

The text, JSON and CSV writers are page_owner_sort's (:mod:`..page_owner_sort.render`)
with what a fleet adds per group: on how many hosts it occurs and its
pages on the top hosts.  Text: the kernel tool's block for the group,
then one ``hosts:`` line.  Parquet: one row per group and host, for
pandas and DuckDB.
"""
from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from pageext_page_owner.page_owner_sort.aggregate import DiffRow, Group, HostStats, Partial
from pageext_page_owner.page_owner_sort.render import (
    DiffReport,
    Report,
    csv_columns,
    csv_rows,
    diff_row_dict,
    group_block,
    group_dict,
    json_document,
    json_head,
)

__all__ = ["PROG", "FleetOutput", "FleetReport", "build_report", "diff_report", "finish_report", "hosts_line", "ordered", "render_fleet_csv", "render_fleet_json",
           "render_fleet_text", "write_diff_parquet", "write_fleet_parquet"]

PROG = "page_owner_fleet"


def ordered(p: Partial, order: Sequence[tuple[str, int]]) -> list[int]:
    """Group indices in output order, exactly as page_owner_sort orders its groups.

    First by key (the record text, or the cull key), as ``cull`` leaves
    them, then a stable sort by each ``--sort`` key from the last.
    """
    keys: list[Any] = list(p.index)  # in group order
    idx = sorted(range(len(p.groups)), key=lambda i: keys[i])
    groups = p.groups
    for name, sign in reversed(order):
        values: list[Any] = [g.field(name) for g in groups]
        idx.sort(key=lambda i: values[i], reverse=sign < 0)
    return idx


@dataclass
class FleetReport:
    """A finished fleet run: the merged groups, their order and how to show them."""

    partial: Partial
    order: list[int]  # indices of partial.groups in output order
    report: Report  # page_owner_sort's report of the same groups (what its writers take)
    top: int  # hosts named per group

    def shares(self, k: int) -> list[tuple[str, int, int]]:
        """``(host, times, pages)`` of the ``k``-th group in output order, most pages first."""
        return self.partial.host_shares(self.order[k])


def build_report(p: Partial, sort: list[tuple[str, int]], shown: list[str], top: int) -> FleetReport:
    order = ordered(p, sort)
    groups = [p.groups[i] for i in order]
    rep = Report(
        groups=groups,
        cull=list(p.fields),
        shown=shown,
        sort=sort,
        source=", ".join(s.source for s in p.stats),
        loaded=sum(s.loaded for s in p.stats),
        unparsed=sum(s.unparsed for s in p.stats),
    )
    return FleetReport(p, order, rep, top)


def hosts_line(shares: list[tuple[str, int, int]], total: int, top: int) -> bytes:
    """``hosts: 3 of 8 (web1 120 pages, web2 40 pages, ...)``: where a group occurs, biggest first."""
    shown = ", ".join(f"{h} {pages} pages" for h, _, pages in shares[:top])
    more = ", ..." if len(shares) > top else ""
    return f"hosts: {len(shares)} of {total} ({shown}{more})".encode("utf-8", "backslashreplace")


def render_fleet_text(fr: FleetReport) -> Iterator[bytes]:
    """page_owner_sort's text, with a ``hosts:`` line closing each group (before its empty line)."""
    total = len(fr.partial.hosts)
    buf: list[bytes] = []
    for k, g in enumerate(fr.report.groups):
        block = group_block(g, fr.report)
        line = hosts_line(fr.shares(k), total, fr.top)
        if block.endswith(b"\n\n"):
            buf.append(block[:-1] + line + b"\n\n")
        else:
            buf.append(block + line + b"\n")
        if len(buf) >= 4096:
            yield b"".join(buf)
            buf.clear()
    if buf:
        yield b"".join(buf)


def _top(shares: list[tuple[str, int, int]], top: int) -> list[dict[str, Any]]:
    return [{"host": h, "times": t, "pages": p} for h, t, p in shares[:top]]


def render_fleet_json(fr: FleetReport) -> Iterator[bytes]:
    """page_owner_sort's JSON document; each group adds ``hosts`` and ``top_hosts``, the head lists the hosts."""
    head = json_head(fr.report)
    head["tool"] = PROG
    head["input"] = [s.source for s in fr.partial.stats]
    head["hosts"] = [{"host": h, "input": s.source, "records": s.loaded, "unparsed": s.unparsed}
                     for h, s in zip(fr.partial.hosts, fr.partial.stats)]

    def groups() -> Iterator[dict[str, Any]]:
        for k, g in enumerate(fr.report.groups):
            d = group_dict(g, fr.report)
            shares = fr.shares(k)
            d["hosts"] = len(shares)
            d["top_hosts"] = _top(shares, fr.top)
            yield d

    return json_document(head, groups())


def render_fleet_csv(fr: FleetReport) -> Iterator[bytes]:
    """page_owner_sort's CSV columns, then ``hosts`` and ``top_hosts`` (``host:pages;host:pages``)."""
    cols = csv_columns(fr.report)

    def rows() -> Iterator[list[object]]:
        for k, g in enumerate(fr.report.groups):
            d = group_dict(g, fr.report)
            shares = fr.shares(k)
            yield [d[c] for c in cols] + [len(shares), ";".join(f"{h}:{p}" for h, _, p in shares[:fr.top])]

    return csv_rows([*cols, "hosts", "top_hosts"], rows())


def _key_columns(g: Group, fr: FleetReport) -> dict[str, Any]:
    d = group_dict(g, fr.report)
    d.pop("frames", None)  # a list; the text columns carry the stack
    d.pop("times", None)
    d.pop("pages", None)
    return d


def write_fleet_parquet(fr: FleetReport, out: BinaryIO) -> None:
    """One row per group and host: ``group`` (rank in the report, from 1), ``host``, ``input``, its
    ``times`` and ``pages`` there, the group's totals and host count, then the group's key fields."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    hosts = fr.partial.hosts
    inputs = {h: s.source for h, s in zip(hosts, fr.partial.stats)}
    cols: dict[str, list[Any]] = {c: [] for c in ("group", "host", "input", "times", "pages", "group_times",
                                                   "group_pages", "group_hosts")}
    key_cols: dict[str, list[Any]] = {}
    n = 0
    for k, g in enumerate(fr.report.groups):
        shares = fr.shares(k)
        keys = _key_columns(g, fr)
        for h, t, p in shares:
            for c, v in zip(cols, (k + 1, h, inputs[h], t, p, g.times, g.pages, len(shares))):
                cols[c].append(v)
            for c, v in keys.items():
                key_cols.setdefault(c, [None] * n).append(v)
            n += 1
    cols.update(key_cols)
    types = {c: pa.int64() for c in ("group", "times", "pages", "group_times", "group_pages", "group_hosts",
                                     "order", "pid", "tgid", "ts_ns")}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in cols])
    pq.write_table(pa.table(cols, schema=schema), out)


@dataclass(frozen=True)
class FleetOutput:
    """A fleet run's report as the command writes it, with what the command says about each host's input."""

    hosts: list[str]
    stats: list[HostStats]
    data: bytes


def finish_report(fmt: str, sort: list[tuple[str, int]], shown: list[str], top: int, p: Partial) -> FleetOutput:
    """The root task's last step: the report rendered where the merged groups are.

    Only the report's bytes travel back to the command: the merged groups
    (every distinct record of the fleet, with its hosts) are never
    serialised for the trip, nor loaded again by a command that would only
    render them.
    """
    fr = build_report(p, sort, shown, top)
    if fmt == "parquet":
        buf = io.BytesIO()
        write_fleet_parquet(fr, buf)
        data = buf.getvalue()
    else:
        render = {"text": render_fleet_text, "json": render_fleet_json, "csv": render_fleet_csv}[fmt]
        data = b"".join(render(fr))
    return FleetOutput(p.hosts, p.stats, data)


def write_diff_parquet(d: DiffReport, out: BinaryIO) -> None:
    """One row per stack (or cull key): page_owner_sort's ``--diff --format=csv`` columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [diff_row_dict(r, d) for r in d.rows]
    names: list[str] = ["delta_pages", "delta_times", "old_times", "old_pages", "new_times", "new_pages"]
    names += [c for c in ("pid", "tgid", "comm", "allocator", "stacktrace") if rows and c in rows[0]]
    cols = {c: [r.get(c) for r in rows] for c in names}
    ints = {"delta_pages", "delta_times", "old_times", "old_pages", "new_times", "new_pages", "pid", "tgid"}
    schema = pa.schema([(c, pa.int64() if c in ints else pa.string()) for c in names])
    pq.write_table(pa.table(cols, schema=schema), out)


def diff_report(rows: list[DiffRow], old: Partial, new: Partial, shown: list[str]) -> DiffReport:
    """page_owner_sort's diff report of two fleet rounds."""
    return DiffReport(
        rows=rows,
        cull=list(new.fields),
        shown=shown,
        old=(", ".join(s.source for s in old.stats), sum(s.loaded for s in old.stats), sum(s.unparsed for s in old.stats)),
        new=(", ".join(s.source for s in new.stats), sum(s.loaded for s in new.stats), sum(s.unparsed for s in new.stats)),
        old_pages=sum(g.pages for g in old.groups),
        new_pages=sum(g.pages for g in new.groups),
        old_times=sum(g.times for g in old.groups),
        new_times=sum(g.times for g in new.groups),
    )

