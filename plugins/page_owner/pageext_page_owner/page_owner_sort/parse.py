"""Reading a dump: records counted by their text in one streaming pass.

The input is read in large binary chunks that are never split into
per-record objects.  Every distinct record text (timestamp digits cut out
unless sorting by allocation time first) gets a *slot*: a count and the
first record's fields.  Per record, the fast path (:meth:`Aggregator._scan`)
runs a few ``find`` calls, slices out the first line up to the timestamp
and looks up ``(first line, stack length)`` in an index; the stack is then
compared in place (``startswith``) instead of being copied and hashed.
Whatever does not fit that shape, and every text seen for the first time,
goes through the exact parser (:func:`~pageext_page_owner.dumpparse.scan_block`),
which validates it; only then is it added to the index.  ``-f`` takes the
exact parser for every record.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

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
    Chunk,
    ParseError,
    count_lines,
    iter_chunks,
    open_dump,
    scan_block,
    strip_ts,
)
from pageext_page_owner.page_owner_sort import parallel
from pageext_page_owner.page_owner_sort.aggregate import U64_MAX, Group, Selection

__all__ = ["Aggregator", "count_range"]

# suffixes appended to a record key when culling by allocator: index = CMA | SLAB << 1
_ALLOC_SUFFIX = (b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x00\x03")
_NEXT = b"\n\n" + HEADER_PREFIX  # where the next current-format record starts
_OLD = "old"  # marks index keys of records whose first line has no timestamp


class _Rep:
    """What is kept per distinct record text: the first record's fields."""

    __slots__ = ("alloc", "comm", "free_ts", "keep", "order", "pid", "tgid", "ts")

    def __init__(self, order: int, pid: int, tgid: int, comm: bytes, ts: int, free_ts: int, alloc: int, keep: bool) -> None:
        self.order = order
        self.pid = pid
        self.tgid = tgid
        self.comm = comm
        self.ts = ts
        self.free_ts = free_ts
        self.alloc = alloc
        self.keep = keep


class _Lines:
    """Line numbers inside a chunk, counted only when asked for (errors are rare)."""

    __slots__ = ("data", "line", "pos")

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


def _alloc_with_bits(alloc: int, bits: int) -> int:
    """Allocator flags with CMA/SLAB taken from PFN-line ``bits`` (CMA 1, slab 2)."""
    alloc = (alloc & ALLOC_VMALLOC) | (ALLOC_CMA if bits & 1 else 0) | (ALLOC_SLAB if bits & 2 else 0)
    return alloc or ALLOC_OTHERS


class Aggregator:
    """Counts the records of one dump by their text; :meth:`groups` gives the result."""

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
        # (first line up to "ts ", stack length[, rest of the first line][, _OLD][, allocator bits])
        #   -> [stack, value, stack, value, ...]; value: the slot, or with timestamps kept the
        #   template _Rep of a record shape whose records differ only in their timestamps
        self._index: dict[tuple, list] = {}
        self._stacks: dict[bytes, bytes] = {}  # one copy of each stack text
        self.unparsed = 0
        self.released = 0
        self.seen = 0
        self.source = ""
        # A record without a PFN line is classified (CMA/SLAB) by the last PFN line
        # read before it, even one of an earlier record: the kernel tool keeps that
        # line in a buffer it never clears.  pfn_carry holds its bits (CMA 1, slab 2)
        # as of the start of the current chunk; _pfn_pos/_pfn_at track it inside.
        self.pfn_carry = 0
        self._pfn_data = b""
        self._pfn_start = self._pfn_pos = self._pfn_at = 0

    # -- input

    def feed(self, source: object, chunk_size: int = DEFAULT_CHUNK, jobs: int = 1) -> Aggregator:
        """Read a whole dump (path, ``-`` or binary stream), with ``jobs`` processes if it pays."""
        if jobs > 1 and isinstance(source, (str, os.PathLike)) and os.fspath(source) != "-":
            path = os.fspath(source)
            # -f needs the exact parser on every record: one process counts them
            parts = None if self.selection.drop_released else parallel.split(path, jobs)
            if parts is not None:
                opts = (self.strip_ts, self.alloc_bits, self.selection, chunk_size)
                self._merge(path, parallel.map_parts(_count_part, [(path, *part, opts) for part in parts]))
                return self
            if parallel.is_compressed(path) and parallel.can_fork():
                self.source = path
                with parallel.decompressed(path) as stream:
                    self.feed_stream(stream, chunk_size)
                return self
        with open_dump(source) as (stream, name):  # type: ignore[arg-type]
            self.source = name
            self.feed_stream(stream, chunk_size)
        return self

    def feed_stream(self, stream: BinaryIO, chunk_size: int = DEFAULT_CHUNK) -> None:
        """Read every chunk of an already opened (decompressed) stream."""
        for chunk in iter_chunks(stream, chunk_size):
            if self._feed_chunk(chunk) and self.progress is not None:
                self.seen += 1 + chunk.data.count(b"\n\n", chunk.start, chunk.stop)
                self.progress(self.seen)

    def _feed_chunk(self, chunk: Chunk) -> bool:
        """Count the records of one chunk; False when it is one unusable block."""
        if not chunk.terminated:
            reason = OVERSIZED_REASON if chunk.oversized else UNTERMINATED_REASON
            self._error(ParseError(chunk.first_line, reason, self.source))
            return False
        lines = _Lines(chunk.data, chunk.first_line, chunk.start)
        self._pfn_begin(chunk.data, chunk.start)
        if self.selection.drop_released:
            self._slow_segment(chunk.data, chunk.start, chunk.stop, lines)
        else:
            self._scan(chunk.data, chunk.start, chunk.stop, lines)
        self._pfn_end(chunk.stop)
        return True

    def _scan(self, data: bytes, start: int, n: int, lines: _Lines) -> None:
        """The hot loop: every record between ``start`` and ``n``.

        Index keys: ``(first line up to "ts ", stack length)`` for the
        current format; ``(..., rest of the first line after the digits)``
        when more follows the timestamp (5.x dumps: ``, free_ts N ns``);
        ``(whole first line, stack length, _OLD)`` when it has no
        timestamp; allocator bits are appended when culling by allocator.
        With timestamps cut out, a hit is counted in its slot.  With them
        kept (``-a``), nearly every record is a text of its own: a hit gives
        the validated template of the record's shape, and per record only
        the text and the timestamp are taken.
        """
        get = self._index.get
        counts = self.slot_count
        slot_of = self.slot_of
        find = data.find
        rfind = data.rfind
        startswith = data.startswith
        alloc_bits = self.alloc_bits
        keep_ts = not self.strip_ts
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
                if j >= 0 and data[j + 4:a3].isdigit():
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
            if j < 0:
                key: tuple = (data[pos:pfn - 1], end - b, _OLD)
            elif e == a3:
                key = (data[pos:j + 4], end - b)
            else:
                key = (data[pos:j + 4], end - b, data[e:a3 + 3])
            bits = 0
            if alloc_bits:
                bits = (find(b"CMA", pfn, b) >= 0) | ((find(b"slab", pfn, b) >= 0) << 1)
                key += (bits,)
            c = get(key)
            if c is None:
                miss(data, pos, end, b, key, lines)
            elif keep_ts and j >= 0:
                for k in range(0, len(c), 2):
                    if startswith(c[k], b):
                        text = data[pos:a3 + 3] + data[b:end]
                        if alloc_bits:
                            text += _ALLOC_SUFFIX[bits]
                        slot = slot_of.get(text)
                        if slot is None:
                            if not alloc_bits:  # this record's own PFN line decides CMA/SLAB
                                bits = (find(b"CMA", pfn, b) >= 0) | ((find(b"slab", pfn, b) >= 0) << 1)
                            self._new_slot(text, c[k + 1], int(data[j + 4:e]), bits)
                        else:
                            counts[slot] += 1
                        break
                else:
                    miss(data, pos, end, b, key, lines)
            elif startswith(c[0], b):
                counts[c[1]] += 1
            else:
                for k in range(2, len(c), 2):
                    if startswith(c[k], b):
                        counts[c[k + 1]] += 1
                        c[0], c[1], c[k], c[k + 1] = c[k], c[k + 1], c[0], c[1]  # move to front
                        break
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
        if key[2:3] == (_OLD,):
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
            timestamped = not self.strip_ts and key[2:3] != (_OLD,)
            self._index.setdefault(key, []).extend((stack, self.slot_rep[slot] if timestamped else slot))

    def _new_slot(self, text: bytes, tmpl: _Rep, ts: int, bits: int) -> None:
        """A slot for a record whose shape was validated before (``tmpl``): only ts and PFN bits differ."""
        self.slot_of[text] = len(self.slot_count)
        self.slot_text.append(text[:-2] if self.alloc_bits else text)
        self.slot_count.append(1)
        alloc = _alloc_with_bits(tmpl.alloc, bits)
        self.slot_rep.append(_Rep(tmpl.order, tmpl.pid, tmpl.tgid, tmpl.comm, ts, tmpl.free_ts, alloc, tmpl.keep))

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
            alloc = _alloc_with_bits(alloc, bits)
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

    def _merge(self, path: str, results: list[tuple]) -> None:
        """Add the counts of the parts of ``path`` (:func:`_count_part` results, in file order).

        Slots are taken in file order, so a text's first record (and its
        fields) is the same as in one pass, and error line numbers are
        shifted by the lines before each part.
        """
        self.source = path
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


def count_range(
    path: str,
    start: int,
    stop: int,
    carry: int,
    *,
    strip_ts: bool = True,
    alloc_bits: bool = False,
    selection: Selection | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    on_error: Callable[[ParseError], None] | None = None,
) -> tuple[Aggregator, int]:
    """Count bytes ``[start, stop)`` of a plain file (one part of a :func:`parallel.cut_parts`).

    Returns the aggregator and the number of lines the part spans; error
    line numbers are the part's own (line 1 is its first line).
    """
    agg = Aggregator(strip_ts=strip_ts, alloc_bits=alloc_bits, selection=selection, on_error=on_error)
    agg.source = path
    agg.pfn_carry = carry
    nlines = 0
    with open(path, "rb") as f:
        for chunk in iter_chunks(parallel.FileRange(f, start, stop), chunk_size):  # type: ignore[arg-type]
            nlines = chunk.first_line - 1
            if agg._feed_chunk(chunk):
                nlines += count_lines(chunk.data, chunk.start, chunk.stop) + 2
            else:
                nlines += count_lines(chunk.data) + 1
    return agg, nlines


def _count_part(args: tuple) -> tuple:
    """Worker process: count one part of a file (see :func:`parallel.split`); line numbers are the part's own."""
    path, start, stop, carry, (strip, alloc_bits, selection, chunk_size) = args
    errors: list[tuple[int, str]] = []
    agg, nlines = count_range(path, start, stop, carry, strip_ts=strip, alloc_bits=alloc_bits, selection=selection,
                              chunk_size=chunk_size, on_error=lambda e: errors.append((e.line, e.reason)))
    keys: list[bytes] = [b""] * len(agg.slot_count)
    for key, slot in agg.slot_of.items():
        keys[slot] = key
    reps = [(r.order, r.pid, r.tgid, r.comm, r.ts, r.free_ts, r.alloc, r.keep) for r in agg.slot_rep]
    return keys, agg.slot_count, reps, errors, nlines
