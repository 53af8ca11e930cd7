"""Streaming readers for real kernel page-allocator traces.

Three text formats are read: ftrace's ``trace``/``trace_pipe`` (with or
without the flags column, the ``(tgid)`` column and ``<stack trace>``
blocks), ``trace-cmd report`` (``kernel_stack:`` blocks) and ``perf script``
(callchain lines, records separated by blank lines).  ftrace and trace-cmd
share one line parser: they differ only in column widths and in how a stack
is introduced, and accepting both shapes in either is what real files need.

Design for speed (the target is a few times a bare regex line loop): one
compiled regex per line shape, event fields read by one more regex per event
kind, stacks interned (:class:`~pageext_core.trace.events.StackTable`), gfp
strings and stack frames parsed once each through cache dicts.  Memory is
bounded by distinct stacks, frames and gfp strings, never by trace length.
"""
from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pageext_core.mm.errors import GfpParseError
from pageext_core.mm.gfp import parse_gfp
from pageext_core.trace.events import (
    ALLOC,
    EXTFRAG,
    FREE,
    FREE_BATCHED,
    KIND_NAMES,
    NO_STACK,
    PCPU_DRAIN,
    StackTable,
    TraceEvent,
)

FORMATS = ("ftrace", "trace-cmd", "perf")
MAX_EXAMPLES = 10
DETECT_LINES = 200


class TraceError(ValueError):
    """A trace that cannot be read: names the file and line, says how to fix it."""


@dataclass
class TraceStats:
    """What a reader saw besides the events it yielded (filled while streaming)."""

    format: str = ""
    lines: int = 0
    events: list[int] = field(default_factory=lambda: [0] * len(KIND_NAMES))
    ignored: dict[str, int] = field(default_factory=dict)  # other events by name
    failures: int = 0  # mm_page_alloc with a NULL page / pfn 0 / no pfn
    malformed: int = 0
    malformed_examples: list[tuple[int, str, str]] = field(default_factory=list)  # (line number, why, text)
    unattached_stacks: int = 0  # stack blocks after events that are not ours
    lost_events: int = 0  # ftrace's "CPU:n [LOST k EVENTS]" totals

    def events_by_name(self) -> dict[str, int]:
        return {KIND_NAMES[k]: n for k, n in enumerate(self.events)}


# -- opening ---------------------------------------------------------------

def open_trace(path: str | Path) -> IO[str]:
    """Open a trace as text, decompressing gzip, xz or bzip2 by their magic bytes."""
    p = Path(path)
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic[:2] == b"\x1f\x8b":
        raw: gzip.GzipFile | lzma.LZMAFile | bz2.BZ2File = gzip.open(p, "rb")
    elif magic[:6] == b"\xfd7zXZ\x00":
        raw = lzma.open(p, "rb")
    elif magic[:3] == b"BZh":
        raw = bz2.open(p, "rb")
    else:
        return open(p, encoding="utf-8", errors="replace")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


# -- line shapes -----------------------------------------------------------

# ftrace / trace-cmd: "<comm>-<pid> [(<tgid>)] [<cpu>] [<flags>] <secs>.<frac>: <rest>"
# The comm is split at the first "-<digits>" followed by the cpu (or tgid)
# column, i.e. at the last dash before the pid: comms may hold dashes and spaces.
TEXT_LINE = re.compile(
    r"\s*(.*?)-(\d+)\s+(?:\(\s*([\d-]+)\)\s+)?\[(\d+)\]\s+(?:(\S+)\s+)?(\d+)\.(\d+):\s(.*)"
)
# perf script: "<comm> <tid> [<cpu>] <secs>.<frac>: [period] [kmem:]<event>: <fields>", "<pid>/<tid>"
# for the tid with -F +pid, and no "[cpu]" when the samples carry none (cpu then reads as -1)
PERF_LINE = re.compile(
    r"\s*(.*?)\s+(-?\d+)(?:/(\d+))?\s+(?:\[(\d+)\]\s+)?(\d+)\.(\d+):\s+(?:\d+\s+)?(?:[\w-]+:)?(\w+):\s?(.*)"
)
PERF_FRAME = re.compile(r"\s+([0-9a-fA-F]+)\s+(.*?)(?:\s+\([^()]*\))?\s*$")
LOST = re.compile(r"CPU:\s*\d+\s+\[LOST\s+(\d+)\s+EVENTS\]")
TRACE_CMD_HEADER = re.compile(r"version = \S+|cpus=\d+|CPU \d+ is empty")

_PFN = r"\s*(?:page=(\S*)\s+)?(?:pfn=(\S+)\s+)?"
FIELD_RES = {
    ALLOC: re.compile(_PFN + r"order=(\d+)\s+migratetype=(-?\d+)\s+gfp_flags=(\S*)"),
    FREE: re.compile(_PFN + r"order=(\d+)"),
    FREE_BATCHED: re.compile(_PFN + r"order=(\d+)"),
    PCPU_DRAIN: re.compile(_PFN + r"order=(\d+)\s+migratetype=(-?\d+)"),
    EXTFRAG: re.compile(
        _PFN + r"alloc_order=(-?\d+)\s+fallback_order=(-?\d+)\s+pageblock_order=(-?\d+)\s+"
        r"alloc_migratetype=(-?\d+)\s+fallback_migratetype=(-?\d+)\s+fragmenting=(-?\d+)\s+"
        r"change_ownership=(-?\d+)"
    ),
}
KIND_OF = {name: k for k, name in enumerate(KIND_NAMES)}
NULL_PAGES = frozenset({"0000000000000000", "00000000", "(nil)", "0x0", "0", "(null)"})
PFN_NONE = 1 << 63  # the kernel's -1UL and anything above: no page


def _frac_ns(frac: str) -> int:
    n = len(frac)
    if n == 6:
        return int(frac) * 1000
    if n == 9:
        return int(frac)
    return int((frac + "000000000")[:9])


def _text_frame(text: str, offsets: bool = False) -> str:
    """' => sym+0x1/0x2 <addr>', '=> sym (addr)', '=> addr' -> 'sym' or 'addr'.

    With ``offsets`` the symbol keeps ``+0xoff/0xsize`` and a `` [module]``
    suffix, as page_owner prints frames (only ftrace's sym-offset option
    prints them).
    """
    s = text.strip()
    if s.startswith("=>"):
        s = s[2:].strip()
    for cut in (" <", " ("):
        i = s.find(cut)
        if i >= 0:
            s = s[:i]
    if not offsets:
        i = s.find("+")
        if i > 0:
            s = s[:i]
    if s[:2] in ("0x", "0X"):
        s = s[2:]
    return s.strip()


def _perf_frame(m: re.Match[str], offsets: bool = False) -> str:
    sym = m.group(2)
    if not sym or sym == "[unknown]":
        return m.group(1).lower().lstrip("0") or "0"
    if offsets:
        return sym
    i = sym.find("+0x")
    return sym[:i] if i > 0 else sym


# -- detection -------------------------------------------------------------

def _classify(line: str) -> str | None:
    """The format one meaningful line proves, or '' when it fits text but is not decisive, or None."""
    if TRACE_CMD_HEADER.match(line) or line.startswith("=>"):
        return "trace-cmd"
    if line.startswith(" => "):
        return "ftrace"
    m = TEXT_LINE.match(line)
    if m:
        rest = m.group(8)
        if rest.startswith("<stack trace>"):
            return "ftrace"
        name, sep, tail = rest.partition(":")
        if name == "kernel_stack":
            return "trace-cmd"
        if sep and len(name) < 20:
            return "trace-cmd" if tail.startswith("  ") else "ftrace"
        return ""
    if PERF_LINE.match(line):
        return "perf"
    return None


def detect_format(source: str | Path | Iterable[str], name: str | None = None, max_lines: int = DETECT_LINES) -> str:
    """Tell ftrace, trace-cmd and perf script apart from the first meaningful lines.

    Raises :class:`TraceError` naming the file and line when a line fits no
    format.  A file with no meaningful line at all reads as ftrace (no events).
    """
    if isinstance(source, (str, Path)):
        with open_trace(source) as f:
            return detect_format(f, name or str(source), max_lines)
    label = name or "<trace>"
    for lineno, line in enumerate(source, 1):
        if lineno > max_lines:
            break
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.startswith("#"):
            if "tracer:" in line:
                return "ftrace"
            continue
        if line[0] == "\t" and PERF_FRAME.match(line):
            return "perf"
        got = _classify(line)
        if got is None:
            if LOST.search(line):
                continue
            raise TraceError(
                f"{label}:{lineno}: cannot tell the trace format from {line[:80]!r}; "
                "expected ftrace text, trace-cmd report or perf script output (or pass the format explicitly)"
            )
        if got:
            return got
    return "ftrace"


# -- reading ---------------------------------------------------------------

class TraceReader:
    """Iterate a trace's page events as :class:`TraceEvent` tuples, streaming.

    ``stats`` and ``stacks`` fill in while iterating.  With ``strict`` the
    first malformed line raises :class:`TraceError` (``file:line: why``);
    otherwise malformed lines are counted and the first ten kept with their
    line numbers.  With ``offsets`` stack frames keep the ``+0xoff/0xsize``
    the trace printed (page_owner's frame shape); by default they are the
    symbol name only.
    """

    def __init__(self, source: str | Path | Iterable[str], format: str = "auto", strict: bool = False,
                 stacks: StackTable | None = None, name: str | None = None, offsets: bool = False) -> None:
        if format not in ("auto", *FORMATS):
            raise TraceError(f"unknown trace format {format!r}; use auto, ftrace, trace-cmd or perf")
        self.source = source
        self.name = name or (str(source) if isinstance(source, (str, Path)) else "<trace>")
        self.strict = strict
        self.stacks = stacks if stacks is not None else StackTable()
        self.stats = TraceStats()
        self.format = format
        self.offsets = offsets
        self._gfp_cache: dict[str, int] = {}

    def __iter__(self) -> Iterator[TraceEvent]:
        if isinstance(self.source, (str, Path)):
            if self.format == "auto":
                self.format = detect_format(self.source, self.name)
            with open_trace(self.source) as f:
                yield from self._read(f)
        else:
            lines: Iterable[str] = self.source
            if self.format == "auto":  # detect on a bounded look-ahead, then read it and the rest
                it = iter(lines)
                head = list(itertools.islice(it, DETECT_LINES))
                self.format = detect_format(head, self.name)
                lines = itertools.chain(head, it)
            yield from self._read(lines)

    def _read(self, lines: Iterable[str]) -> Iterator[TraceEvent]:
        self.stats = TraceStats()  # a second pass starts its counts afresh
        self.stats.format = self.format
        if self.format == "perf":
            return self._read_perf(lines)
        return self._read_text(lines)

    # shared helpers
    def _bad(self, lineno: int, why: str, line: str) -> None:
        st = self.stats
        st.malformed += 1
        if len(st.malformed_examples) < MAX_EXAMPLES:
            st.malformed_examples.append((lineno, why, line.rstrip("\r\n")[:300]))
        if self.strict:
            raise TraceError(f"{self.name}:{lineno}: {why}: {line.rstrip()[:120]!r} (strict mode; drop --strict to count and skip such lines)")

    def _gfp(self, text: str) -> int:
        try:
            return self._gfp_cache[text]
        except KeyError:
            pass
        if text in ("none", ""):
            value = 0
        else:
            value = parse_gfp(text)  # may raise GfpParseError: the caller reports the line
        if len(self._gfp_cache) < 65536:
            self._gfp_cache[text] = value
        return value

    def _event(self, kind: int, fields: str, ts: int, cpu: int, pid: int, tgid: int, comm: str,
               lineno: int, line: str) -> list[Any] | None:
        """Parse one event's fields into a pending list (stack filled later), or None if malformed."""
        m = FIELD_RES[kind].match(fields)
        if m is None:
            self._bad(lineno, f"{KIND_NAMES[kind]} fields not understood", line)
            return None
        g = m.groups()
        page, pfn_text = g[0], g[1]
        if pfn_text is None:
            pfn = -1
        else:
            try:
                pfn = int(pfn_text, 16) if pfn_text[:2] in ("0x", "0X") else int(pfn_text)
            except ValueError:
                self._bad(lineno, f"bad pfn {pfn_text!r}", line)
                return None
            if pfn >= PFN_NONE or (pfn == 0 and (page is None or page in NULL_PAGES or kind == ALLOC)):
                pfn = -1
        extra = None
        if kind == ALLOC:
            gfp_text = g[4]
            gfp = self._gfp_cache.get(gfp_text)
            if gfp is None:
                try:
                    gfp = self._gfp(gfp_text)
                except GfpParseError as e:
                    self._bad(lineno, str(e), line)
                    return None
            if pfn < 0:
                self.stats.failures += 1
            self.stats.events[0] += 1
            return [0, ts, cpu, pid, tgid, comm, pfn, int(g[2]), int(g[3]), gfp, NO_STACK, None]
        if kind == EXTFRAG:
            extra = tuple(int(x) for x in g[2:])
            order, mt, gfp = extra[0], extra[3], -1
        else:
            order = int(g[2])
            mt = int(g[3]) if kind == PCPU_DRAIN else -1
            gfp = -1
            if pfn < 0:
                self._bad(lineno, f"{KIND_NAMES[kind]} without a pfn", line)
                return None
        self.stats.events[kind] += 1
        return [kind, ts, cpu, pid, tgid, comm, pfn, order, mt, gfp, NO_STACK, extra]

    def _read_text(self, lines: Iterable[str]) -> Iterator[TraceEvent]:
        st = self.stats
        match_line = TEXT_LINE.match
        kind_of = KIND_OF
        intern = self.stacks.intern
        frame_cache: dict[str, str] = {}
        new = tuple.__new__
        pending: list[Any] | None = None  # the last event, waiting for a possible stack block
        frames: list[str] | None = None  # frames of the stack block being read (None: not ours)
        in_stack = False
        lineno = 0
        try:
            for lineno, line in enumerate(lines, 1):
                c = line[:1]
                if (c == " " and line.startswith(" => ")) or c == "=":
                    if not in_stack:
                        self._bad(lineno, "stack frame outside a stack block", line)
                    elif frames is not None:
                        fr = frame_cache.get(line)
                        if fr is None:
                            fr = frame_cache[line] = _text_frame(line, self.offsets)
                        frames.append(fr)
                    continue
                if in_stack:
                    if frames is not None and pending is not None:
                        pending[10] = intern(tuple(frames))
                    frames = None
                    in_stack = False
                if c == "#":
                    continue
                m = match_line(line)
                if m is None:
                    lost = LOST.search(line)
                    if lost:
                        st.lost_events += int(lost.group(1))
                    elif line.strip() and not TRACE_CMD_HEADER.match(line):
                        self._bad(lineno, "not a trace event line", line)
                    continue
                comm, pid, tg, cpu, _flags, sec, frac, rest = m.groups()
                name, _, fields = rest.partition(":")
                if name == "user_stack" or rest.startswith("<user stack trace"):
                    in_stack = True  # user-space frames: read past them, never attached
                    frames = None
                    continue
                if name == "<stack trace>" or name == "kernel_stack" or rest.startswith("<stack trace"):
                    in_stack = True
                    cpu = int(cpu)
                    if pending is not None and pending[10] == NO_STACK and pending[2] == cpu:
                        frames = []
                    else:
                        st.unattached_stacks += 1
                    continue
                if pending is not None:
                    yield new(TraceEvent, pending)
                    pending = None
                kind = kind_of.get(name)
                if kind is None:
                    name = name.strip()
                    st.ignored[name] = st.ignored.get(name, 0) + 1
                    continue
                pending = self._event(
                    kind, fields, int(sec) * 1_000_000_000 + (int(frac) * 1000 if len(frac) == 6 else _frac_ns(frac)),
                    int(cpu), int(pid), int(tg) if tg and tg[0] != "-" else -1, comm, lineno, line,
                )
        except TraceError:  # strict mode: the event before the bad line was complete: keep it
            if pending is not None:
                yield new(TraceEvent, pending)
            raise
        if in_stack and frames is not None and pending is not None:
            pending[10] = intern(tuple(frames))
        if pending is not None:
            yield new(TraceEvent, pending)
        st.lines = lineno

    def _read_perf(self, lines: Iterable[str]) -> Iterator[TraceEvent]:
        st = self.stats
        match_line = PERF_LINE.match
        match_frame = PERF_FRAME.match
        kind_of = KIND_OF
        intern = self.stacks.intern
        frame_cache: dict[str, str] = {}
        new = tuple.__new__
        pending: list[Any] | None = None
        frames: list[str] = []
        in_record = False  # inside a record whose callchain we may be reading
        lineno = 0
        try:
            for lineno, line in enumerate(lines, 1):
                c = line[:1]
                if c == "\t":
                    if not in_record:
                        self._bad(lineno, "callchain line outside a record", line)
                        continue
                    if pending is not None:
                        fr = frame_cache.get(line)
                        if fr is None:
                            fm = match_frame(line)
                            if fm is None:
                                self._bad(lineno, "callchain line not understood", line)
                                continue
                            fr = frame_cache[line] = _perf_frame(fm, self.offsets)
                        frames.append(fr)
                    continue
                if in_record and pending is not None:
                    if frames:
                        pending[10] = intern(tuple(frames))
                        frames = []
                    yield new(TraceEvent, pending)
                    pending = None
                in_record = False
                frames = []
                if c == "#" or c == "\n" or not line.strip():
                    continue
                m = match_line(line)
                if m is None:
                    self._bad(lineno, "not a perf script event line", line)
                    continue
                in_record = True
                name = m.group(7)
                kind = kind_of.get(name)
                if kind is None:
                    st.ignored[name] = st.ignored.get(name, 0) + 1
                    continue
                if m.group(3) is not None:  # "pid/tid" (perf prints -1 for an unknown pid)
                    tgid, pid = int(m.group(2)), int(m.group(3))
                else:
                    tgid, pid = -1, int(m.group(2))
                frac = m.group(6)
                pending = self._event(
                    kind, m.group(8), int(m.group(5)) * 1_000_000_000 + (int(frac) * 1000 if len(frac) == 6 else _frac_ns(frac)),
                    int(m.group(4) or -1), pid, tgid, m.group(1), lineno, line,
                )
        except TraceError:  # strict mode: the event before the bad line was complete: keep it
            if pending is not None:
                yield new(TraceEvent, pending)
            raise
        if pending is not None:
            if frames:
                pending[10] = intern(tuple(frames))
            yield new(TraceEvent, pending)
        st.lines = lineno


def read_trace(source: str | Path | Iterable[str], format: str = "auto", strict: bool = False,
               stacks: StackTable | None = None, offsets: bool = False) -> TraceReader:
    """A :class:`TraceReader` over a file (gzip/xz/bz2 welcome) or an iterable of lines."""
    return TraceReader(source, format=format, strict=strict, stacks=stacks, offsets=offsets)
