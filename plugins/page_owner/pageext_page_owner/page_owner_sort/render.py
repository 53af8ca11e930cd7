"""The writers: the kernel tool's text, JSON, CSV, flame-graph input and diffs.

Every writer takes a finished report and yields the output as a few big
``bytes`` chunks, so a huge report is written in pieces and never held
twice.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pageext_page_owner.dumpparse import ALLOC_CMA, ALLOC_OTHERS, ALLOC_SLAB, ALLOC_VMALLOC, frame_symbol
from pageext_page_owner.page_owner_sort.aggregate import U64_MAX, DiffRow, Group

__all__ = [
    "PROG",
    "DiffReport",
    "Report",
    "alloc_label",
    "collapse",
    "collapsed_stack",
    "csv_columns",
    "csv_rows",
    "diff_row_dict",
    "group_block",
    "group_dict",
    "json_document",
    "json_head",
    "render_collapsed",
    "render_csv",
    "render_diff_collapsed",
    "render_diff_csv",
    "render_diff_json",
    "render_diff_text",
    "render_json",
    "render_text",
]

PROG = "page_owner_sort"  # the tool's name, in its JSON documents and messages


def alloc_label(flags: int) -> bytes:
    """``allocated by`` value as the kernel prints it: each class followed by a space."""
    out = b""
    if flags & ALLOC_CMA:
        out += b"CMA "
    if flags & ALLOC_SLAB:
        out += b"SLAB "
    if flags & ALLOC_VMALLOC:
        out += b"VMALLOC "
    if flags & ALLOC_OTHERS:
        out += b"OTHERS "
    return out


def _txt(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _frames(stack: bytes) -> list[str]:
    return [frame_symbol(_txt(ln)) for ln in stack.split(b"\n") if ln[:1] in (b" ", b"\t")]


@dataclass
class Report:
    """What the text/json/csv writers need about one run."""

    groups: Sequence[Group]
    cull: list[str]
    shown: list[str]  # key fields printed in cull headers (cull keys + selected filters)
    sort: list[tuple[str, int]]
    source: str
    loaded: int
    unparsed: int


def _chunks(lines: Iterator[bytes], size: int = 4096) -> Iterator[bytes]:
    """Join output lines into big chunks: one write per few thousand groups, not one per group."""
    buf: list[bytes] = []
    for line in lines:
        buf.append(line)
        if len(buf) >= size:
            yield b"".join(buf)
            buf.clear()
    if buf:
        yield b"".join(buf)


def _key_fields(g: Group, shown: list[str], cull: list[str]) -> bytes:
    """The kernel's cull header fields after the counts: PID, TGID, comm, allocator, then the stack."""
    parts = []
    if "pid" in shown:
        parts.append(b", PID %d" % g.pid)
    if "tgid" in shown:
        parts.append(b", TGID %d" % g.tgid)
    if "comm" in shown:
        parts.append(b", task_comm_name: " + g.comm)
    if "allocator" in cull:
        parts.append(b", allocated by " + alloc_label(g.alloc))
    if "stacktrace" in cull:
        parts.append(b":\n" + g.stacktrace)
    return b"".join(parts)


def render_text(rep: Report) -> Iterator[bytes]:
    """The kernel tool's output, byte for byte."""
    if not rep.cull:
        return _chunks(b"%d times, %d pages, allocated by %s:\n%s\n" % (g.times, g.pages, alloc_label(g.alloc), g.text)
                       for g in rep.groups)
    return _chunks(b"%d times, %d pages%s\n" % (g.times, g.pages, _key_fields(g, rep.shown, rep.cull))
                   for g in rep.groups)


def group_block(g: Group, rep: Report) -> bytes:
    """One group as :func:`render_text` writes it (for writers that add lines of their own)."""
    if not rep.cull:
        return b"%d times, %d pages, allocated by %s:\n%s\n" % (g.times, g.pages, alloc_label(g.alloc), g.text)
    return b"%d times, %d pages%s\n" % (g.times, g.pages, _key_fields(g, rep.shown, rep.cull))


def group_dict(g: Group, rep: Report) -> dict[str, Any]:
    """One group as :func:`render_json` writes it (and :func:`render_csv` picks columns from)."""
    return _group_dict(g, rep)


def csv_columns(rep: Report) -> list[str]:
    """The columns :func:`render_csv` writes for this report."""
    if not rep.cull:
        return ["times", "pages", "allocator", "order", "pid", "tgid", "comm", "text"]
    cols = ["times", "pages"] + [c for c in ("pid", "tgid", "comm") if c in rep.shown]
    if "allocator" in rep.cull:
        cols.append("allocator")
    if "stacktrace" in rep.cull:
        cols.append("stacktrace")
    return cols


def json_head(rep: Report) -> dict[str, Any]:
    """The keys before ``"groups"`` in :func:`render_json`'s document."""
    return {
        "tool": PROG,
        "input": rep.source,
        "records": rep.loaded,
        "pages": sum(g.pages for g in rep.groups),
        "unparsed": rep.unparsed,
        "cull": rep.cull,
        "sort": _sort_desc(rep.sort),
    }


def json_document(head: dict[str, Any], groups: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """A JSON object of ``head``'s keys and ``"groups"``, one group per line, in chunks."""
    return _json_document(head, groups)


def csv_rows(header: list[str], rows: Iterable[list[object]]) -> Iterator[bytes]:
    """CSV text (a header row, then the rows) in chunks, as the CSV writers make it."""
    return _csv_rows(header, rows)


def _group_dict(g: Group, rep: Report) -> dict[str, Any]:
    d: dict[str, object] = {"times": g.times, "pages": g.pages}
    if not rep.cull:
        d.update(
            allocator=_txt(alloc_label(g.alloc)).strip(),
            order=g.order,
            pid=g.pid,
            tgid=g.tgid,
            comm=_txt(g.comm),
            first_line=_txt(g.first_line),
            frames=_frames(g.stacktrace),
            text=_txt(g.text),
        )
        if rep.sort and rep.sort[0][0] == "alloc_ts":
            d["ts_ns"] = None if g.ts == U64_MAX else g.ts
        return d
    d.update(_key_dict(g, rep.shown, rep.cull))
    return d


def _key_dict(g: Group, shown: list[str], cull: list[str]) -> dict[str, object]:
    """The key fields of a culled group, for json/csv (the text form is ``_key_fields``)."""
    d: dict[str, object] = {}
    if "pid" in shown:
        d["pid"] = g.pid
    if "tgid" in shown:
        d["tgid"] = g.tgid
    if "comm" in shown:
        d["comm"] = _txt(g.comm)
    if "allocator" in cull:
        d["allocator"] = _txt(alloc_label(g.alloc)).strip()
    if "stacktrace" in cull:
        d["frames"] = _frames(g.stacktrace)
        d["stacktrace"] = _txt(g.stacktrace)
    return d


def _sort_desc(order: Sequence[tuple[str, int]]) -> list[str]:
    return [("-" if s < 0 else "+") + n for n, s in order]


def _json_document(head: dict[str, Any], groups: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON object: ``head``'s keys, then ``"groups"``, one group per line, written in chunks."""
    text = json.dumps(head, indent=1)
    yield (text[:-2] + ',\n "groups": [').encode()
    lines = (("\n  " if i == 0 else ",\n  ") + json.dumps(g) for i, g in enumerate(groups))
    yield from _chunks(line.encode() for line in lines)
    yield b"\n ]\n}\n"


def render_json(rep: Report) -> Iterator[bytes]:
    """One JSON document; groups are streamed one per line so huge reports stay cheap."""
    return _json_document(json_head(rep), (_group_dict(g, rep) for g in rep.groups))


def _csv_rows(header: list[str], rows: Iterable[list[object]]) -> Iterator[bytes]:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    n = 0
    for row in rows:
        w.writerow(row)
        n += 1
        if n % 4096 == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def render_csv(rep: Report) -> Iterator[bytes]:
    """A header row, then one row per group; multi-line texts are quoted."""
    if not rep.cull:
        header = ["times", "pages", "allocator", "order", "pid", "tgid", "comm", "text"]
        rows = (
            [g.times, g.pages, _txt(alloc_label(g.alloc)).strip(), g.order, g.pid, g.tgid, _txt(g.comm), _txt(g.text)]
            for g in rep.groups
        )
        return _csv_rows(header, rows)
    cols = csv_columns(rep)

    def row(g: Group) -> list[object]:
        d = _group_dict(g, rep)
        return [d[c] for c in cols]

    return _csv_rows(cols, (row(g) for g in rep.groups))


def _sanitize_frame(s: str) -> str:
    return s.replace(";", "_").replace("\n", " ").strip() or "[unknown]"


def collapsed_stack(g: Group, fields: Sequence[str]) -> str:
    """Flame-graph line key: pseudo-frames for the cull keys, then frames root first.

    The dump prints the innermost frame first (``post_alloc_hook``);
    flame-graph tools want the outermost caller first, so frames are
    reversed.  ``comm``/``tgid``/``pid``/``allocator`` (when culled on)
    become the outermost frames, comm first, as ``perf``-based flame graphs
    put the process name at the root.
    """
    parts: list[str] = []
    if "comm" in fields:
        parts.append(_sanitize_frame(_txt(g.comm)))
    if "tgid" in fields:
        parts.append(f"tgid={g.tgid}")
    if "pid" in fields:
        parts.append(f"pid={g.pid}")
    if "allocator" in fields:
        parts.append("allocator=" + _txt(alloc_label(g.alloc)).strip().replace(" ", "+"))
    if "stacktrace" in fields:
        frames = [_sanitize_frame(f) for f in _frames(g.stacktrace)]
        parts.extend(reversed(frames) if frames else ["[no stack]"])
    return ";".join(parts)


def collapse(groups: Iterable[Group], fields: Sequence[str]) -> dict[str, int]:
    """Pages per collapsed stack line."""
    out: dict[str, int] = {}
    for g in groups:
        k = collapsed_stack(g, fields)
        out[k] = out.get(k, 0) + g.pages
    return out


def render_collapsed(pages: dict[str, int]) -> Iterator[bytes]:
    """``frame;frame;frame pages`` lines, sorted by stack (as stackcollapse tools emit)."""
    lines = [f"{k} {v}\n" for k, v in sorted(pages.items(), key=lambda kv: kv[0].encode("utf-8", "surrogateescape"))]
    for i in range(0, len(lines), 4096):
        yield "".join(lines[i:i + 4096]).encode("utf-8", "surrogateescape")



@dataclass
class DiffReport:
    """What the diff writers need: the rows and both dumps' totals."""

    rows: list[DiffRow]
    cull: list[str]
    shown: list[str]
    old: tuple[str, int, int]  # source, records, unparsed
    new: tuple[str, int, int]
    old_pages: int = 0
    new_pages: int = 0
    old_times: int = 0
    new_times: int = 0


def _diff_counts(dp: int, dt: int, ot: int, op: int, nt: int, np_: int) -> bytes:
    return b"%+d pages, %+d times (old %d times, %d pages; new %d times, %d pages)" % (dp, dt, ot, op, nt, np_)


def render_diff_text(d: DiffReport) -> Iterator[bytes]:
    """Human-readable diff: a total line, then one entry per key, biggest growth first."""
    yield b"total: " + _diff_counts(
        d.new_pages - d.old_pages, d.new_times - d.old_times, d.old_times, d.old_pages, d.new_times, d.new_pages
    ) + b"\n\n"
    yield from _chunks(
        _diff_counts(r.delta_pages, r.delta_times, r.old_times, r.old_pages, r.new_times, r.new_pages)
        + _key_fields(r.rep, d.shown, d.cull) + b"\n"
        for r in d.rows)


def _diff_row_dict(r: DiffRow, d: DiffReport) -> dict[str, Any]:
    out: dict[str, object] = {
        "delta_pages": r.delta_pages,
        "delta_times": r.delta_times,
        "old_times": r.old_times,
        "old_pages": r.old_pages,
        "new_times": r.new_times,
        "new_pages": r.new_pages,
    }
    out.update(_key_dict(r.rep, d.shown, d.cull))
    return out


def diff_row_dict(r: DiffRow, d: DiffReport) -> dict[str, Any]:
    """One diff row as :func:`render_diff_json` writes it."""
    return _diff_row_dict(r, d)


def render_diff_json(d: DiffReport, tool: str = PROG) -> Iterator[bytes]:
    head = {
        "tool": tool,
        "old": {"input": d.old[0], "records": d.old[1], "unparsed": d.old[2]},
        "new": {"input": d.new[0], "records": d.new[1], "unparsed": d.new[2]},
        "cull": d.cull,
        "total": {
            "delta_pages": d.new_pages - d.old_pages,
            "delta_times": d.new_times - d.old_times,
            "old_times": d.old_times,
            "old_pages": d.old_pages,
            "new_times": d.new_times,
            "new_pages": d.new_pages,
        },
    }
    return _json_document(head, (_diff_row_dict(r, d) for r in d.rows))


def render_diff_csv(d: DiffReport) -> Iterator[bytes]:
    cols = ["delta_pages", "delta_times", "old_times", "old_pages", "new_times", "new_pages"]
    cols += [c for c in ("pid", "tgid", "comm") if c in d.shown]
    if "allocator" in d.cull:
        cols.append("allocator")
    if "stacktrace" in d.cull:
        cols.append("stacktrace")

    def row(r: DiffRow) -> list[object]:
        dd = _diff_row_dict(r, d)
        return [dd[c] for c in cols]

    return _csv_rows(cols, (row(r) for r in d.rows))


def render_diff_collapsed(old: list[Group], new: list[Group], fields: Sequence[str]) -> Iterator[bytes]:
    """``stack old_pages new_pages`` lines: the input format of differential flame graphs."""
    a, b = collapse(old, fields), collapse(new, fields)
    keys = sorted(set(a) | set(b), key=lambda k: k.encode("utf-8", "surrogateescape"))
    lines = [f"{k} {a.get(k, 0)} {b.get(k, 0)}\n" for k in keys]
    for i in range(0, len(lines), 4096):
        yield "".join(lines[i:i + 4096]).encode("utf-8", "surrogateescape")
