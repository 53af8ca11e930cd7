"""``page_owner_sort``: group and sort a page_owner dump, like the kernel's tools/mm helper.

The command line, grouping, ordering and text output follow the newest
kernel tool (timestamps cut out of the compared text unless sorting by
allocation time first; default order: times seen, descending; ties keep
the order of the grouping pass).  What it adds is what users of the kernel
tool run into on real machines:

* streaming: memory grows with the number of *distinct* records, not with
  the file size, and there is no record cap;
* speed: the input is read in large binary chunks that are never split
  into per-record objects; per record, Python runs a few ``find`` calls,
  slices out the first line and does one dict lookup, and the stack is
  compared in place (full parsing only happens the first time a record
  text is seen); big plain files are read by several processes;
* gzip/xz/bzip2 input, CRLF dumps, ``-`` for stdin/stdout;
* ``--format json|csv``, ``--collapsed`` (flame-graph input) and
  ``--diff OLD NEW`` (what grew between two snapshots);
* unparsable records are reported with their line numbers (``-d``) or
  counted in one summary line, and outputs are replaced atomically.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import IO, BinaryIO, Callable, Iterable, Iterator, Sequence

import click

from pageext_page_owner.dumpparse import (
    ALLOC_CMA,
    ALLOC_OTHERS,
    ALLOC_SLAB,
    ALLOC_VMALLOC,
    DEFAULT_CHUNK,
    HEADER_PREFIX,
    OVERSIZED_REASON,
    PFN_PREFIX,
    TS_RE,
    UNTERMINATED_REASON,
    ParseError,
    compression_of,
    count_lines,
    frame_symbol,
    iter_chunks,
    open_dump,
    scan_block,
    strip_ts,
)

PROG = "page_owner_sort"
U64_MAX = (1 << 64) - 1  # what the kernel tool stores when a field is missing (-1 as __u64)

# --sort keys (and their short forms) -> field name
SORT_KEYS: dict[str, str] = {
    "pid": "pid", "p": "pid",
    "tgid": "tgid", "tg": "tgid",
    "name": "comm", "n": "comm",
    "stacktrace": "stacktrace", "st": "stacktrace",
    "txt": "txt", "T": "txt",
    "alloc_ts": "alloc_ts", "at": "alloc_ts",
    "allocator": "allocator", "ator": "allocator",
    "free_ts": "free_ts", "ft": "free_ts",
}
# --cull keys -> field name; CULL_ORDER is the precedence the kernel compares them in.
CULL_KEYS: dict[str, str] = {
    "pid": "pid", "p": "pid",
    "tgid": "tgid", "tg": "tgid",
    "name": "comm", "n": "comm",
    "stacktrace": "stacktrace", "st": "stacktrace",
    "allocator": "allocator", "ator": "allocator",
}
CULL_ORDER = ("stacktrace", "pid", "tgid", "comm", "allocator")
# single-letter sort options -> (field, sign)
SORT_FLAGS: dict[str, tuple[str, int]] = {
    "a": ("alloc_ts", 1),
    "m": ("pages", -1),
    "n": ("comm", 1),
    "p": ("pid", 1),
    "P": ("tgid", 1),
    "r": ("free_ts", 1),
    "s": ("stacktrace", 1),
    "t": ("times", -1),
}
DEFAULT_SORT: list[tuple[str, int]] = [("times", -1)]

# suffixes appended to a record key when culling by allocator: index = CMA | SLAB << 1
_ALLOC_SUFFIX = (b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x00\x03")


class UserError(Exception):
    """A problem with the input or output that is reported without a traceback (and without the usage)."""


class NoRecords(UserError):
    """A non-empty input in which not one record could be used (printed without ``error:``)."""


def _why(e: BaseException, path: str = "") -> str:
    """The reason of an I/O error without the file name Python appends (a temp or resolved path).

    Messages name the path the user typed; ``path: `` at the start of a
    message (our own decompression errors) is not repeated.
    """
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    msg = str(e) or type(e).__name__
    if path and msg.startswith(path + ": "):
        msg = msg[len(path) + 2:]
    return msg


# ----------------------------------------------------------------- records


class _Rep:
    """What is kept per distinct record text: the first record's fields."""

    __slots__ = ("order", "pid", "tgid", "comm", "ts", "free_ts", "alloc", "keep")

    def __init__(self, order: int, pid: int, tgid: int, comm: bytes, ts: int, free_ts: int, alloc: int, keep: bool) -> None:
        self.order = order
        self.pid = pid
        self.tgid = tgid
        self.comm = comm
        self.ts = ts
        self.free_ts = free_ts
        self.alloc = alloc
        self.keep = keep


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


class _Lines:
    """Line numbers inside a chunk, counted only when asked for (errors are rare)."""

    __slots__ = ("data", "pos", "line")

    def __init__(self, data: bytes, first_line: int, start: int = 0) -> None:
        self.data = data
        self.pos = start
        self.line = first_line

    def line_at(self, pos: int) -> int:
        if pos < self.pos:  # not expected, but stay correct
            self.line -= self.data.count(b"\n", pos, self.pos)
        else:
            self.line += self.data.count(b"\n", self.pos, pos)
        self.pos = pos
        return self.line


_NEXT = b"\n\n" + HEADER_PREFIX  # where the next current-format record starts
_OLD = "old"  # marks index keys of records whose first line has no timestamp


class Aggregator:
    """Counts the records of one dump by their text, in one streaming pass.

    Every distinct record text (timestamp digits cut out unless sorting by
    allocation time first) gets a *slot*: a count and the first record's
    fields.  The fast path works on the undivided chunk: per record it
    finds the line ends with ``find``, slices out only the first line up to
    the timestamp, and looks up ``(first line, stack length)`` in an index;
    the stack is then compared in place (``startswith``) instead of being
    copied and hashed.  Whatever does not fit that shape, and every text
    seen for the first time, goes through :func:`scan_block`, which
    validates it; only then is it added to the index.
    """

    def __init__(
        self,
        *,
        strip_ts: bool = True,
        alloc_bits: bool = False,
        selection: Selection | None = None,
        on_error: Callable[[ParseError], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.strip_ts = strip_ts
        self.alloc_bits = alloc_bits
        self.selection = selection or Selection()
        self.on_error = on_error
        self.progress = progress
        self.slot_text: list[bytes] = []  # record text without its final newline
        self.slot_count: list[int] = []
        self.slot_rep: list[_Rep] = []
        self.slot_of: dict[bytes, int] = {}  # text (+ allocator suffix) -> slot
        # (first line up to "ts ", stack length[, allocator bits][, _OLD]) -> [stack, slot, stack, slot, ...]
        self._index: dict[tuple, list] = {}
        self._stacks: dict[bytes, bytes] = {}  # one copy of each stack text
        self.unparsed = 0
        self.released = 0
        self.seen = 0
        self.source = ""
        self.jobs_used = 1
        # A record without a PFN line is classified (CMA/SLAB) by the last PFN line
        # read before it, even one of an earlier record: the kernel tool keeps that
        # line in a buffer it never clears.  pfn_carry holds its bits (CMA 1, slab 2)
        # as of the start of the current chunk; _pfn_pos/_pfn_at track it inside.
        self.pfn_carry = 0
        self._pfn_data = b""
        self._pfn_start = self._pfn_pos = self._pfn_at = 0

    # -- input

    def feed(self, source: object, chunk_size: int = DEFAULT_CHUNK, jobs: int = 1) -> "Aggregator":
        """Read a whole dump (path, ``-`` or binary stream), with ``jobs`` processes if it pays."""
        parallel_ok = not self.selection.drop_released  # -f needs every record parsed: one process
        if jobs > 1 and isinstance(source, (str, os.PathLike)) and os.fspath(source) != "-":
            if parallel_ok and self._feed_parallel(os.fspath(source), jobs, chunk_size):
                return self
            if self._feed_piped(os.fspath(source), chunk_size):
                return self
        with open_dump(source) as (stream, name):  # type: ignore[arg-type]
            self.source = name
            self.feed_stream(stream, chunk_size)
        return self

    def feed_stream(self, stream: BinaryIO, chunk_size: int = DEFAULT_CHUNK) -> None:
        """Read every chunk of an already opened (decompressed) stream."""
        for chunk in iter_chunks(stream, chunk_size):
            if not chunk.terminated:
                reason = OVERSIZED_REASON if chunk.oversized else UNTERMINATED_REASON
                self._error(ParseError(chunk.first_line, reason, self.source))
                continue
            lines = _Lines(chunk.data, chunk.first_line, chunk.start)
            self._pfn_begin(chunk.data, chunk.start)
            if self.selection.drop_released:
                self._slow_segment(chunk.data, chunk.start, chunk.stop, lines)
            elif self.strip_ts:
                self._feed_fast(chunk.data, chunk.start, chunk.stop, lines)
            else:
                self._feed_fast_ts(chunk.data, chunk.start, chunk.stop, lines)
            self._pfn_end(chunk.stop)
            if self.progress is not None:
                self.seen += 1 + chunk.data.count(b"\n\n", chunk.start, chunk.stop)
                self.progress(self.seen)

    def _feed_fast(self, data: bytes, start: int, n: int, lines: _Lines) -> None:
        """The hot loop (timestamps cut out of the compared text).

        Index keys: ``(first line up to "ts ", stack length)`` for the
        current format; ``(..., rest of the first line after the digits)``
        when more follows the timestamp (5.x dumps: ``, free_ts N ns``);
        ``(whole first line, stack length, _OLD)`` when it has no
        timestamp; allocator bits are appended when culling by allocator.
        """
        get = self._index.get
        counts = self.slot_count
        find = data.find
        rfind = data.rfind
        startswith = data.startswith
        alloc_bits = self.alloc_bits
        miss = self._miss
        slow = self._slow_segment
        nxt_pat = _NEXT
        pos = start
        while pos <= n:
            end = find(nxt_pat, pos, n)
            if end < 0:
                end = n
            a3 = find(b" ns\nPFN", pos, end)  # "..., ts <digits> ns[, free_ts <digits> ns]" then the PFN line
            if a3 > 0:
                pfn = a3 + 4
                j = rfind(b" ts ", pos, a3)
                if data[j + 4:a3].isdigit() and j >= 0:
                    e = a3  # current format: the timestamp ends the first line
                else:
                    e = find(b" ", j + 4, a3 + 1)
                    if j < 0 or not data[j + 4:e].isdigit():
                        slow(data, pos, end, lines)
                        pos = end + 2
                        continue
            else:
                pfn = find(b"\nPFN", pos, end) + 1  # older formats: no timestamp in the first line
                if pfn <= 0:
                    slow(data, pos, end, lines)
                    pos = end + 2
                    continue
                j = e = -1
            b = find(b"\n", pfn + 3, end)
            if b < 0:
                b = end
            if e == a3:
                key = (data[pos:j + 4], end - b)
            elif j >= 0:
                key = (data[pos:j + 4], end - b, data[e:a3 + 3])
            else:
                key = (data[pos:pfn - 1], end - b, _OLD)
            if alloc_bits:
                key += ((find(b"CMA", pfn, b) >= 0) | ((find(b"slab", pfn, b) >= 0) << 1),)
            c = get(key)
            if c is not None:
                if startswith(c[0], b):
                    counts[c[1]] += 1
                    pos = end + 2
                    continue
                for k in range(2, len(c), 2):
                    if startswith(c[k], b):
                        counts[c[k + 1]] += 1
                        c[0], c[1], c[k], c[k + 1] = c[k], c[k + 1], c[0], c[1]  # move to front
                        break
                else:
                    miss(data, pos, end, b, key, lines)
            else:
                miss(data, pos, end, b, key, lines)
            pos = end + 2

    def _indexable(self, key: tuple, stack: bytes) -> bool:
        """Whether records of this shape can be counted without re-checking them.

        The per-record fast path only re-checks the timestamp digits; these
        properties hold for every record with the same key and stack, so
        they are checked once here: the first line is one line, and the
        kernel's timestamp regex would cut exactly the digits we cut.
        """
        head = key[0]
        if b"\n" in head:
            return False
        if len(key) > 2 and key[2] == _OLD:
            return TS_RE.search(head) is None and TS_RE.search(stack) is None
        if head.find(b"ts") != len(head) - 3:
            return False  # another "ts" earlier in the line: the kernel's regex might cut there
        tail = key[2] if len(key) > 2 and isinstance(key[2], bytes) else b" ns"
        return tail.startswith(b" ns") and b"\n" not in tail

    def _miss(self, data: bytes, pos: int, end: int, b: int, key: tuple, lines: _Lines) -> None:
        """A record of the fast shape whose (first line, stack) is not indexed yet."""
        stack = data[b:end]
        if b"\n\n" in stack:  # more than one record in this stretch: take them one by one
            self._slow_segment(data, pos, end, lines)
            return
        slot = self._slow_record(data[pos:end], pos, lines)
        if slot is not None and self._indexable(key, stack):
            stack = self._stacks.setdefault(stack, stack)
            self._index.setdefault(key, []).extend((stack, slot))

    def _feed_fast_ts(self, data: bytes, start: int, n: int, lines: _Lines) -> None:
        """Hot loop when sorting by allocation time first: timestamps stay in the text.

        Nearly every record is then a text of its own, so the index maps the
        record's shape (as in :meth:`_feed_fast`) to a validated template,
        and per record only the text and the timestamp are taken.
        """
        get = self._index.get
        find = data.find
        rfind = data.rfind
        startswith = data.startswith
        slot_of = self.slot_of
        counts = self.slot_count
        alloc_bits = self.alloc_bits
        pos = start
        while pos <= n:
            end = find(_NEXT, pos, n)
            if end < 0:
                end = n
            a3 = find(b" ns\nPFN", pos, end)
            if a3 > 0:
                j = rfind(b" ts ", pos, a3)
                e = a3 if data[j + 4:a3].isdigit() else find(b" ", j + 4, a3 + 1)
                if j >= 0 and data[j + 4:e].isdigit():
                    b = find(b"\n", a3 + 7, end)
                    if b < 0:
                        b = end
                    key = (data[pos:j + 4], end - b) if e == a3 else (data[pos:j + 4], end - b, data[e:a3 + 3])
                    bits = 0
                    if alloc_bits:
                        bits = (find(b"CMA", a3 + 4, b) >= 0) | ((find(b"slab", a3 + 4, b) >= 0) << 1)
                        key += (bits,)
                    c = get(key)
                    if c is not None:
                        for k in range(0, len(c), 2):
                            if startswith(c[k], b):
                                text = data[pos:a3 + 3] + data[b:end]
                                if alloc_bits:
                                    text += _ALLOC_SUFFIX[bits]
                                slot = slot_of.get(text)
                                if slot is None:
                                    if not alloc_bits:  # this record's own PFN line decides CMA/SLAB
                                        bits = (find(b"CMA", a3 + 4, b) >= 0) | ((find(b"slab", a3 + 4, b) >= 0) << 1)
                                    self._new_slot(text, c[k + 1], int(data[j + 4:e]), bits)
                                else:
                                    counts[slot] += 1
                                break
                        else:
                            self._miss_ts(data, pos, end, b, key, lines)
                    else:
                        self._miss_ts(data, pos, end, b, key, lines)
                    pos = end + 2
                    continue
            else:
                pfn = find(b"\nPFN", pos, end) + 1  # no timestamp at all: the text is the same as when cutting
                if pfn > 0:
                    b = find(b"\n", pfn + 3, end)
                    if b < 0:
                        b = end
                    key = (data[pos:pfn - 1], end - b, _OLD)
                    if alloc_bits:
                        key += ((find(b"CMA", pfn, b) >= 0) | ((find(b"slab", pfn, b) >= 0) << 1),)
                    c = get(key)
                    if c is not None:
                        for k in range(0, len(c), 2):
                            if startswith(c[k], b):
                                counts[c[k + 1]] += 1
                                break
                        else:
                            self._miss(data, pos, end, b, key, lines)
                    else:
                        self._miss(data, pos, end, b, key, lines)
                    pos = end + 2
                    continue
            self._slow_segment(data, pos, end, lines)
            pos = end + 2

    def _miss_ts(self, data: bytes, pos: int, end: int, b: int, key: tuple, lines: _Lines) -> None:
        stack = data[b:end]
        if b"\n\n" in stack:
            self._slow_segment(data, pos, end, lines)
            return
        slot = self._slow_record(data[pos:end], pos, lines)
        if slot is not None and self._indexable(key, stack):
            stack = self._stacks.setdefault(stack, stack)
            self._index.setdefault(key, []).extend((stack, self.slot_rep[slot]))

    def _new_slot(self, text: bytes, tmpl: _Rep, ts: int, bits: int) -> None:
        """A slot for a record whose shape was validated before (``tmpl``): only ts and PFN bits differ."""
        alloc = (tmpl.alloc & ALLOC_VMALLOC) | (ALLOC_CMA if bits & 1 else 0) | (ALLOC_SLAB if bits & 2 else 0)
        self.slot_of[text] = len(self.slot_count)
        self.slot_text.append(text[:-2] if self.alloc_bits else text)
        self.slot_count.append(1)
        self.slot_rep.append(_Rep(tmpl.order, tmpl.pid, tmpl.tgid, tmpl.comm, ts, tmpl.free_ts, alloc or ALLOC_OTHERS, tmpl.keep))

    def _pfn_begin(self, data: bytes, start: int) -> None:
        """Start tracking the last PFN line inside a new chunk (records from ``start``)."""
        self._pfn_data = data
        self._pfn_start = self._pfn_pos = start
        self._pfn_at = self.pfn_carry

    def _pfn_bits_at(self, pos: int) -> int:
        """CMA/SLAB bits of the last PFN line before ``pos`` in the file (the kernel's ``ext_buf``).

        Only records without a PFN line ask, in file order, so the chunk is
        searched once overall, not once per record.
        """
        data = self._pfn_data
        if pos < self._pfn_pos:  # not expected: search again from the chunk start
            self._pfn_pos, self._pfn_at = self._pfn_start, self.pfn_carry
        lo = self._pfn_pos
        k = data.rfind(b"\nPFN", max(lo - 1, self._pfn_start), pos)
        if k >= 0:
            at = k + 1
        elif lo == self._pfn_start and lo < pos and data.startswith(PFN_PREFIX, lo):
            at = lo
        else:
            at = -1
        if at >= 0:
            e = data.find(b"\n", at, pos)
            ln = data[at:pos if e < 0 else e]
            self._pfn_at = (b"CMA" in ln) | ((b"slab" in ln) << 1)
        self._pfn_pos = pos
        return self._pfn_at

    def _pfn_end(self, stop: int) -> None:
        """Carry the last PFN line of a finished chunk over to the next one."""
        self.pfn_carry = self._pfn_bits_at(stop)

    def _slow_segment(self, data: bytes, pos: int, end: int, lines: _Lines) -> None:
        """Every record between ``pos`` and ``end``, through the exact parser."""
        while pos <= end:
            k = data.find(b"\n\n", pos, end)
            if k < 0:
                k = end
            self._slow_record(data[pos:k], pos, lines)
            pos = k + 2

    def _slow_record(self, p: bytes, pos: int, lines: _Lines) -> int | None:
        """Validate one record and count it; return its slot (None if skipped).

        Creates the slot the first time a record text is seen.
        """
        if not p.strip(b"\n"):
            return None  # only empty lines
        try:
            sc = scan_block(p, 0, self.source)
        except ParseError:
            try:  # again, now with the real line number (errors are rare, line counting is not free)
                scan_block(p, lines.line_at(pos), self.source)
            except ParseError as e:
                self._error(e)
            return None
        if self.selection.drop_released and sc.free_ts_ns and (sc.ts_ns is None or sc.free_ts_ns > sc.ts_ns):
            self.released += 1
            return None
        text = sc.text[:-1]
        key = strip_ts(text) if self.strip_ts else text
        pl = sc.pfn_line
        alloc = sc.allocator_flags
        if pl:
            bits = (b"CMA" in pl) | ((b"slab" in pl) << 1)
        else:  # no PFN line: the kernel tool uses the last one it read (see pfn_carry)
            bits = self._pfn_bits_at(pos)
            alloc = (alloc & ALLOC_VMALLOC) | (ALLOC_CMA if bits & 1 else 0) | (ALLOC_SLAB if bits & 2 else 0)
            alloc = alloc or ALLOC_OTHERS
        if self.alloc_bits:
            key += _ALLOC_SUFFIX[bits]
        slot = self.slot_of.get(key)
        if slot is not None:
            self.slot_count[slot] += 1
            return slot
        pid = -1 if sc.pid is None else sc.pid
        tgid = -1 if sc.tgid is None else sc.tgid
        comm = b"" if sc.comm is None else sc.comm
        slot = len(self.slot_count)
        self.slot_of[key] = slot
        self.slot_text.append(key[:-2] if self.alloc_bits else key)
        self.slot_count.append(1)
        self.slot_rep.append(
            _Rep(
                order=sc.order,
                pid=pid,
                tgid=tgid,
                comm=comm,
                ts=U64_MAX if sc.ts_ns is None else sc.ts_ns,
                free_ts=U64_MAX if sc.free_ts_ns is None else sc.free_ts_ns,
                alloc=alloc,
                keep=self.selection.keeps(pid, tgid, comm),
            )
        )
        return slot

    def _error(self, e: ParseError) -> None:
        self.unparsed += 1
        if self.on_error is not None:
            self.on_error(e)

    # -- parallel input

    def _feed_parallel(self, path: str, jobs: int, chunk_size: int) -> bool:
        """Split a big plain file at record boundaries and count the parts in worker processes.

        The merge keeps the sequential semantics: slots are taken in file
        order, so a text's first record (and its fields) is the same as in
        one pass, and error line numbers are shifted by the lines before
        each part.  Returns False (nothing done) when it does not apply.
        """
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                head = f.read(6)
                if size < PARALLEL_MIN_BYTES or compression_of(head) is not None:
                    return False
                cuts = [0]
                for i in range(1, jobs):
                    f.seek(size * i // jobs)
                    probe = f.read(MAX_SCAN)
                    k = probe.find(b"\n\n")
                    if k < 0:
                        return False
                    cut = size * i // jobs + k + 2
                    if cut > cuts[-1]:
                        cuts.append(cut)
                cuts.append(size)
                carries = [0]
                for cut in cuts[1:-1]:
                    bits = _pfn_bits_before(f, cut)
                    if bits is None:  # no PFN line near the cut: one process keeps it exact
                        return False
                    carries.append(bits)
        except OSError:
            return False
        import multiprocessing

        try:
            ctx = multiprocessing.get_context("fork")
        except ValueError:
            return False
        opts = (self.strip_ts, self.alloc_bits, self.selection, chunk_size)
        parts = [(path, cuts[i], cuts[i + 1], opts, carries[i]) for i in range(len(cuts) - 1)]
        with ctx.Pool(len(parts), initializer=_ignore_sigint) as pool:
            results = pool.map(_count_part, parts)
        self.source = path
        self.jobs_used = len(parts)
        base = 0
        for keys, counts, reps, errors, nlines in results:
            slot_of = self.slot_of
            for key, cnt, rep in zip(keys, counts, reps):
                slot = slot_of.get(key)
                if slot is None:
                    slot_of[key] = len(self.slot_count)
                    self.slot_text.append(key[:-2] if self.alloc_bits else key)
                    self.slot_count.append(cnt)
                    self.slot_rep.append(_Rep(*rep))
                else:
                    self.slot_count[slot] += cnt
            for line, reason in errors:
                self._error(ParseError(base + line, reason, path))
            base += nlines
        return True

    def _feed_piped(self, path: str, chunk_size: int) -> bool:
        """Compressed file: decompress in a child process, count in this one, at the same time.

        Returns False (nothing done) for plain files or where fork is missing.
        """
        try:
            with open(path, "rb") as f:
                if compression_of(f.read(6)) is None:
                    return False
        except OSError:
            return False
        if not hasattr(os, "fork"):
            return False
        data_r, data_w = os.pipe()
        err_r, err_w = os.pipe()
        with contextlib.suppress(Exception):  # bigger pipe, fewer context switches (Linux)
            import fcntl

            fcntl.fcntl(data_w, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        pid = os.fork()
        if pid == 0:  # child: decompress into the pipe
            code = 0
            try:
                os.close(data_r)
                os.close(err_r)
                with open_dump(path) as (stream, _), os.fdopen(data_w, "wb", buffering=0) as out:
                    while True:
                        block = stream.read(1 << 20)
                        if not block:
                            break
                        out.write(block)
            except BrokenPipeError:
                code = 0
            except BaseException as e:  # reported by the parent
                with contextlib.suppress(OSError):
                    os.write(err_w, f"{type(e).__name__}: {e}".encode()[:4000])
                code = 1
            os._exit(code)
        os.close(data_w)
        os.close(err_w)
        self.source = path
        try:
            with os.fdopen(data_r, "rb", buffering=1 << 20) as stream:
                self.feed_stream(stream, chunk_size)  # type: ignore[arg-type]
        finally:
            _, status = os.waitpid(pid, 0)
            with os.fdopen(err_r, "rb") as ef:
                message = ef.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            raise OSError(message or f"decompressing {path} failed")
        return True

    # -- results

    @property
    def loaded(self) -> int:
        """Records that were parsed and selected (what the kernel tool calls ``loaded``)."""
        return sum(c for c, r in zip(self.slot_count, self.slot_rep) if r.keep)

    @property
    def distinct(self) -> int:
        """Distinct record texts seen (what memory use grows with)."""
        return len(self.slot_count)

    def groups(self) -> list[Group]:
        """One :class:`Group` per distinct record text, in order of first appearance."""
        out = []
        for text, cnt, r in zip(self.slot_text, self.slot_count, self.slot_rep):
            if r.keep:
                out.append(Group(cnt, cnt << r.order, text + b"\n", r.order, r.pid, r.tgid, r.comm, r.ts, r.free_ts, r.alloc))
        return out


PARALLEL_MIN_BYTES = 64 << 20  # below this, starting processes costs more than it saves
MAX_SCAN = 1 << 20


class _Range(io.RawIOBase):
    """Reads ``[start, stop)`` of a file."""

    def __init__(self, f: BinaryIO, start: int, stop: int) -> None:
        super().__init__()
        f.seek(start)
        self._f = f
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if size is None or size < 0 or size > self._left:
            size = self._left
        data = self._f.read(size)
        self._left -= len(data)
        return data


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent (which stops them), so they print no tracebacks."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pfn_bits_before(f: BinaryIO, cut: int) -> int | None:
    """CMA/SLAB bits of the last PFN line before byte ``cut`` (what a part starts with).

    None when there is none in the ``MAX_SCAN`` bytes before the cut but
    the file goes further back (the caller then reads in one process).
    """
    lo = max(0, cut - MAX_SCAN)
    f.seek(lo)
    window = f.read(cut - lo)
    k = window.rfind(b"\nPFN")
    if k >= 0:
        at = k + 1
    elif lo == 0 and window.startswith(PFN_PREFIX):
        at = 0
    else:
        return 0 if lo == 0 else None
    e = window.find(b"\n", at)
    ln = window[at:] if e < 0 else window[at:e]
    return (b"CMA" in ln) | ((b"slab" in ln) << 1)


def _count_part(args: tuple) -> tuple:
    """Worker: count one part of a file; line numbers are local to the part."""
    path, start, stop, (strip, alloc_bits, selection, chunk_size), carry = args
    errors: list[tuple[int, str]] = []
    agg = Aggregator(strip_ts=strip, alloc_bits=alloc_bits, selection=selection, on_error=lambda e: errors.append((e.line, e.reason)))
    agg.source = path
    agg.pfn_carry = carry
    nlines = 0
    with open(path, "rb") as f:
        stream = _Range(f, start, stop)
        for chunk in iter_chunks(stream, chunk_size):  # type: ignore[arg-type]
            nlines = chunk.first_line - 1
            if not chunk.terminated:
                agg._error(ParseError(chunk.first_line, OVERSIZED_REASON if chunk.oversized else UNTERMINATED_REASON, path))
                nlines += count_lines(chunk.data) + 1
                continue
            lines = _Lines(chunk.data, chunk.first_line, chunk.start)
            agg._pfn_begin(chunk.data, chunk.start)
            if strip:
                agg._feed_fast(chunk.data, chunk.start, chunk.stop, lines)
            else:
                agg._feed_fast_ts(chunk.data, chunk.start, chunk.stop, lines)
            agg._pfn_end(chunk.stop)
            nlines += count_lines(chunk.data, chunk.start, chunk.stop) + 2
    keys: list[bytes] = [b""] * len(agg.slot_count)
    for key, slot in agg.slot_of.items():
        keys[slot] = key
    reps = [(r.order, r.pid, r.tgid, r.comm, r.ts, r.free_ts, r.alloc, r.keep) for r in agg.slot_rep]
    return keys, agg.slot_count, reps, errors, nlines


# ----------------------------------------------------------------- grouping


def cull_key(g: Group, fields: Sequence[str]) -> tuple:
    """The values a ``--cull`` compares, in the kernel's precedence order."""
    return tuple(g.field(f) for f in CULL_ORDER if f in fields)


def cull(groups: list[Group], fields: Sequence[str]) -> list[Group]:
    """Merge groups that agree on the cull fields; return them in grouping-pass order.

    Without fields, records are grouped by their whole text (already done
    by the aggregator) and ordered by text, as the kernel's first sort does.
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


# ----------------------------------------------------------------- rendering


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

    groups: list[Group]
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


def _group_dict(g: Group, rep: Report) -> dict:
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


def _json_document(head: dict, groups: Iterable[dict]) -> Iterator[bytes]:
    """One JSON object: ``head``'s keys, then ``"groups"``, one group per line, written in chunks."""
    text = json.dumps(head, indent=1)
    yield (text[:-2] + ',\n "groups": [').encode()
    lines = (("\n  " if i == 0 else ",\n  ") + json.dumps(g) for i, g in enumerate(groups))
    yield from _chunks(line.encode() for line in lines)
    yield b"\n ]\n}\n"


def render_json(rep: Report) -> Iterator[bytes]:
    """One JSON document; groups are streamed one per line so huge reports stay cheap."""
    head = {
        "tool": PROG,
        "input": rep.source,
        "records": rep.loaded,
        "pages": sum(g.pages for g in rep.groups),
        "unparsed": rep.unparsed,
        "cull": rep.cull,
        "sort": _sort_desc(rep.sort),
    }
    return _json_document(head, (_group_dict(g, rep) for g in rep.groups))


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
    cols = ["times", "pages"] + [c for c in ("pid", "tgid", "comm") if c in rep.shown]
    if "allocator" in rep.cull:
        cols.append("allocator")
    if "stacktrace" in rep.cull:
        cols.append("stacktrace")

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


# ----------------------------------------------------------------- diff


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


@dataclass
class DiffReport:
    rows: list[DiffRow]
    cull: list[str]
    shown: list[str]
    old: tuple[str, int, int]  # source, records, unparsed
    new: tuple[str, int, int]
    old_pages: int = 0
    new_pages: int = 0
    old_times: int = 0
    new_times: int = 0


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


def _diff_row_dict(r: DiffRow, d: DiffReport) -> dict:
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


def render_diff_json(d: DiffReport) -> Iterator[bytes]:
    head = {
        "tool": PROG,
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


# ----------------------------------------------------------------- output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """Write ``path`` all at once: into a temp file beside it, then ``os.replace``.

    On any error the temp file is removed and an existing ``path`` is left
    as it was.  ``-`` is stdout; devices and FIFOs (``/dev/null``) are
    written directly since they cannot be replaced.
    """
    if path == "-":
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"output {path!r} is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            f = open(path, "wb")
        except OSError as e:
            raise UserError(f"cannot write {path}: {_why(e)}") from e
        with f:
            yield f
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as e:
        raise UserError(f"cannot write {path}: {_why(e)}") from e
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            yield f
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                raise UserError(f"cannot write {path}: {_why(e)}") from e
        try:
            os.chmod(tmp, (st.st_mode & 0o7777) if st is not None else (0o666 & ~_umask()))
            os.replace(tmp, path)
        except OSError as e:
            raise UserError(f"cannot write {path}: {_why(e)}") from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_all(out: IO[bytes], chunks: Iterable[bytes], name: str = "") -> None:
    """Write every chunk; a failed write names the output as the user gave it."""
    try:
        for c in chunks:
            out.write(c)
    except BrokenPipeError:
        raise  # the reader went away (`... - | head`): main() stops quietly
    except OSError as e:
        if not name:
            raise
        raise UserError(f"cannot write {name}: {_why(e)}") from e


def _same_file(a: str, b: str) -> bool:
    """True when two paths are one file: equal once resolved, or hard links to it."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # the output does not exist yet
        return False


def _version() -> str:
    """``page_owner_sort (pageext-page-owner X.Y.Z)``: the tool and the distribution it ships in."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("pageext-page-owner")
    except PackageNotFoundError:  # running from a source tree
        from pageext_page_owner import __version__ as v
    return f"{PROG} (pageext-page-owner {v})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version())
        ctx.exit(0)


# ----------------------------------------------------------------- CLI

USAGE = f"""\
Usage: {PROG} [OPTIONS] <input> <output>
       {PROG} --diff [OPTIONS] <old> <new> [<output>]

  -a -m -n -p -P -s -t   sort by alloc time / total pages / command name / pid /
                         tgid / stack trace / times seen (default); only one
  -d                     list unparsable records (file:line) on stderr
  -f                     leave out blocks the dump marks as released
  -r                     sort by release time (dumps with free_ts only)
  --pid=LIST --tgid=LIST --name=LIST   keep only these (comma-separated)
  --cull=RULES           merge by pid,tgid,name,stacktrace,allocator
  --sort=ORDER           [+|-]key[,...]: pid tgid name stacktrace txt alloc_ts allocator
  --format=text|json|csv, --collapsed, --diff, --jobs=N, -h/--help, --version
"""

HELP = f"""Group the records of a page_owner dump and sort the groups.

\b
  cat /sys/kernel/debug/page_owner > page_owner_full.txt
  {PROG} page_owner_full.txt sorted_page_owner.txt
  {PROG} -m page_owner_full.txt.gz -          # by total pages, to stdout
  {PROG} --cull=st,name --sort=-pid dump.txt out.txt
  {PROG} --diff before.txt after.txt growth.txt

Identical records (same first line, timestamp digits removed, and same
stack) are merged and printed with how many times they were seen and how
many pages they hold.  <input> may be gzip/xz/bzip2-compressed or '-'
(stdin); <output> may be '-' (stdout).  See docs/page_owner_sort.md.
"""


def default_jobs() -> int:
    """One worker per idle CPU, at most 8.

    Idle means usable CPUs minus the 1-minute load average: on a busy
    machine extra processes only share the same CPUs and add their start-up
    and merge costs.  The result is the same whatever the number of jobs.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        n -= int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        pass
    return max(1, min(n, 8))


def _parse_list(value: str | None, what: str) -> frozenset[int] | None:
    if value is None:
        return None
    out = set()
    for part in value.split(","):
        try:
            out.add(int(part.strip(), 10))
        except ValueError:
            raise click.UsageError(f"--{what}={value}: {part!r} is not a number (give a comma-separated list like --{what}=1,812)")
    return frozenset(out)


def _parse_sort(value: str) -> list[tuple[str, int]]:
    order = []
    for part in value.split(","):
        sign = 1
        key = part
        if key[:1] in ("+", "-"):
            sign = -1 if key[0] == "-" else 1
            key = key[1:]
        name = SORT_KEYS.get(key)
        if name is None:
            raise click.UsageError(
                f"--sort={value}: unknown key {part!r}; use [+|-]key with key one of "
                "pid|p, tgid|tg, name|n, stacktrace|st, txt|T, alloc_ts|at, allocator|ator, free_ts|ft"
            )
        order.append((name, sign))
    return order


def _parse_cull(value: str) -> list[str]:
    fields = []
    for part in value.split(","):
        name = CULL_KEYS.get(part)
        if name is None:
            raise click.UsageError(
                f"--cull={value}: unknown key {part!r}; use a comma-separated list of "
                "pid|p, tgid|tg, name|n, stacktrace|st, allocator|ator"
            )
        if name not in fields:
            fields.append(name)
    return [f for f in CULL_ORDER if f in fields]


class _Command(click.Command):
    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(USAGE.split("\n\n")[0] + "\n")

    def get_usage(self, ctx: click.Context) -> str:
        return USAGE.rstrip("\n")


@click.command(
    name=PROG,
    cls=_Command,
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    no_args_is_help=False,
)
@click.option("-a", "flag_a", is_flag=True, help="Sort by allocation time, oldest first (keeps timestamps in the compared text).")
@click.option("-m", "flag_m", is_flag=True, help="Sort by total pages, largest first.")
@click.option("-n", "flag_n", is_flag=True, help="Sort by task command name.")
@click.option("-p", "flag_p", is_flag=True, help="Sort by pid.")
@click.option("-P", "flag_P", is_flag=True, help="Sort by tgid.")
@click.option("-s", "flag_s", is_flag=True, help="Sort by stack trace.")
@click.option("-t", "flag_t", is_flag=True, help="Sort by times seen, most first (the default).")
@click.option("-r", "flag_r", is_flag=True, help="Sort by release time (older dumps with free_ts; a no-op order otherwise).")
@click.option("-f", "drop_released", is_flag=True, help="Leave out blocks released after allocation (dumps with free_ts only).")
@click.option("-d", "debug", is_flag=True, help="Report every unparsable record with its file:line on stderr.")
@click.option("--pid", "pid_list", metavar="LIST", help="Keep only records whose pid is in the comma-separated LIST.")
@click.option("--tgid", "tgid_list", metavar="LIST", help="Keep only records whose tgid is in LIST.")
@click.option("--name", "name_list", metavar="LIST", help="Keep only records whose command name is in LIST.")
@click.option("--cull", "cull_rules", metavar="RULES", multiple=True, help="Merge records that agree on these keys: pid|p, tgid|tg, name|n, stacktrace|st, allocator|ator.")
@click.option("--sort", "sort_order", metavar="ORDER", help="Sort by [+|-]key[,...]; keys: pid|p tgid|tg name|n stacktrace|st txt|T alloc_ts|at allocator|ator free_ts|ft.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True, help="Output format; json/csv carry the same groups with their keys and counts.")
@click.option("--collapsed", is_flag=True, help="Write flame-graph input: 'root;...;leaf pages' per stack (with --diff: 'stack old new').")
@click.option("--diff", "diff", is_flag=True, help="Compare two dumps: <old> <new> [<output>]; per stack (or --cull key), largest growth first.")
@click.option("--jobs", "jobs", type=click.IntRange(0, 256), default=0, metavar="N", help="Processes for big or compressed inputs (0: one per idle CPU, up to 8; 1: just this one).")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version, help="Print the version and exit.")
@click.argument("paths", nargs=-1, metavar="<input> <output>")
@click.pass_context
def cli(
    ctx: click.Context,
    flag_a: bool,
    flag_m: bool,
    flag_n: bool,
    flag_p: bool,
    flag_P: bool,
    flag_s: bool,
    flag_t: bool,
    flag_r: bool,
    drop_released: bool,
    debug: bool,
    pid_list: str | None,
    tgid_list: str | None,
    name_list: str | None,
    cull_rules: tuple[str, ...],
    sort_order: str | None,
    fmt: str,
    collapsed: bool,
    diff: bool,
    jobs: int,
    paths: tuple[str, ...],
) -> int:
    flags = {"a": flag_a, "m": flag_m, "n": flag_n, "p": flag_p, "P": flag_P, "r": flag_r, "s": flag_s, "t": flag_t}
    chosen = [k for k, v in flags.items() if v]
    if len(chosen) > 1:
        raise click.UsageError("only one of -a -m -n -p -P -r -s -t may be given (use --sort=key,key for several keys)")
    explicit_sort = bool(chosen) or sort_order is not None
    order = _parse_sort(sort_order) if sort_order is not None else list(DEFAULT_SORT)
    if chosen:  # as in the kernel tool, a single-letter option replaces --sort
        order = [SORT_FLAGS[chosen[0]]]
    fields = _parse_cull(",".join(cull_rules)) if cull_rules else []  # repeated --cull options add up
    selection = Selection(
        pids=_parse_list(pid_list, "pid"),
        tgids=_parse_list(tgid_list, "tgid"),
        names=None if name_list is None else frozenset(n.encode("utf-8", "surrogateescape") for n in name_list.split(",")),
        drop_released=drop_released,
    )
    if collapsed and fmt != "text":
        raise click.UsageError("--collapsed is an output format of its own; do not combine it with --format")
    if collapsed and explicit_sort:
        raise click.UsageError("--collapsed output is sorted by stack; sort options do not apply")
    if diff:
        if explicit_sort:
            raise click.UsageError("--diff output is sorted by growth; sort options do not apply")
        if len(paths) not in (2, 3):
            raise click.UsageError("--diff needs <old> <new> [<output>]")
        inputs, output = list(paths[:2]), (paths[2] if len(paths) == 3 else "-")
    else:
        if len(paths) != 2:
            raise click.UsageError("need <input> and <output>" if len(paths) < 2 else f"unexpected extra argument {paths[2]!r}")
        inputs, output = [paths[0]], paths[1]

    if inputs.count("-") > 1:
        raise click.UsageError("only one input can be '-' (stdin)")
    if output != "-":
        for path in inputs:
            if path != "-" and _same_file(path, output):
                raise click.UsageError(
                    f"the output {output!r} is the input {path!r}: the report would replace the dump; "
                    "give another output path (or '-' for stdout)"
                )
    # from here on: problems with the files themselves, reported without the usage
    for path in inputs:
        if path == "-":
            continue
        if os.path.isdir(path):
            raise UserError(f"cannot open input {path!r}: it is a directory")
        if not os.access(path, os.R_OK):
            why = "no such file" if not os.path.exists(path) else "permission denied"
            raise UserError(f"cannot open input {path!r}: {why}")
    if output != "-":
        outdir = os.path.dirname(output) or "."  # as the user wrote it, not resolved
        if os.path.isdir(output):
            raise UserError(f"cannot write output {output!r}: it is a directory")
        if not os.path.isdir(outdir):
            raise UserError(f"cannot write output {output!r}: directory {outdir!r} does not exist")
        if not os.access(outdir, os.W_OK):
            raise UserError(f"cannot write output {output!r}: directory {outdir!r} is not writable")

    if jobs == 0:
        jobs = default_jobs()
    info = sys.stderr if output == "-" else sys.stdout
    tty = info.isatty()

    def say(msg: str) -> None:
        info.write(msg + "\n")
        info.flush()

    errors: list[ParseError] = []  # the first unusable block of the input being read

    def on_error(e: ParseError) -> None:
        if debug:
            sys.stderr.write(f"{e.source or '<input>'}:{e.line}: skipped: {e.reason}\n")
        if not errors:
            errors.append(e)

    def progress(n: int) -> None:
        if tty:
            info.write(f"loaded {n}\r")
            info.flush()

    if diff and not fields:
        fields = ["stacktrace"]
    if collapsed and not fields:
        fields = ["stacktrace"]
    shown = list(fields)
    for f, given in (("pid", selection.pids), ("tgid", selection.tgids), ("comm", selection.names)):
        if given is not None and f not in shown:
            shown.append(f)

    def load(path: str) -> Aggregator:
        agg = Aggregator(
            strip_ts=order[0][0] != "alloc_ts",
            alloc_bits="allocator" in fields,
            selection=selection,
            on_error=on_error,
            progress=progress if tty else None,
        )
        name = path if path != "-" else "<stdin>"
        try:
            agg.feed(path, jobs=jobs)
        except BrokenPipeError:
            raise
        except (OSError, EOFError, ValueError) as e:
            raise UserError(f"cannot read {name}: {_why(e, path)}") from e
        first = errors[0] if errors else None
        if agg.distinct == 0 and agg.released == 0 and agg.unparsed:
            # text, but not one record in it: an error, not an empty report
            where = f" (first unusable block: {first.source}:{first.line}: {first.reason})" if first else ""
            raise NoRecords(f"no page_owner records found in {name}{where}")
        say(f"loaded {agg.loaded}")
        if agg.unparsed and not debug:
            hint = " Is this a /sys/kernel/debug/page_owner dump?" if agg.loaded == 0 else ""
            where = f" (first: {first.source}:{first.line}: {first.reason})" if first else ""
            sys.stderr.write(
                f"{PROG}: {agg.unparsed} record{'s' if agg.unparsed != 1 else ''} in {agg.source} could not be parsed "
                f"and {'were' if agg.unparsed != 1 else 'was'} skipped{where}; run with -d to list them all.{hint}\n"
            )
        errors.clear()
        return agg

    with atomic_output(output) as out:
        if diff:
            old, new = load(inputs[0]), load(inputs[1])
            say("sorting ....")
            og, ng = old.groups(), new.groups()
            say("culling")
            if collapsed:
                write_all(out, render_diff_collapsed(og, ng, fields), output)
                return 0
            report = DiffReport(
                rows=diff_groups(og, ng, fields),
                cull=fields,
                shown=shown,
                old=(old.source, old.loaded, old.unparsed),
                new=(new.source, new.loaded, new.unparsed),
                old_pages=sum(g.pages for g in og),
                new_pages=sum(g.pages for g in ng),
                old_times=sum(g.times for g in og),
                new_times=sum(g.times for g in ng),
            )
            renderer = {"text": render_diff_text, "json": render_diff_json, "csv": render_diff_csv}[fmt]
            write_all(out, renderer(report), output)
            return 0
        agg = load(inputs[0])
        say("sorting ....")
        groups = agg.groups()
        if collapsed:
            say("culling")
            write_all(out, render_collapsed(collapse(groups, fields)), output)
            return 0
        passed = cull(groups, fields)
        say("culling")
        rep = Report(
            groups=sort_groups(passed, order),
            cull=fields,
            shown=shown,
            sort=order,
            source=agg.source,
            loaded=agg.loaded,
            unparsed=agg.unparsed,
        )
        renderer = {"text": render_text, "json": render_json, "csv": render_csv}[fmt]
        write_all(out, renderer(rep), output)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 1 usage/input/output error, 130 Ctrl-C)."""
    try:
        rv = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except click.UsageError as e:
        sys.stderr.write(USAGE + "\n")
        sys.stderr.write(f"{PROG}: error: {e.format_message()}\n")
        return 1
    except click.ClickException as e:
        sys.stderr.write(f"{PROG}: error: {e.format_message()}\n")
        return 1
    except click.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            sys.stderr.write(f"{PROG}: interrupted\n")
            return 130
        sys.stderr.write(f"{PROG}: aborted\n")
        return 1
    except NoRecords as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 1
    except UserError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 1
    except BrokenPipeError:  # `page_owner_sort dump - | head`: stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
