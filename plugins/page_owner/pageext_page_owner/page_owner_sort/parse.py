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
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, overload

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

__all__ = ["Aggregator", "SortedGroups", "count_range"]

# suffixes appended to a record key when culling by allocator: index = CMA | SLAB << 1
_ALLOC_SUFFIX = (b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x00\x03")
_NEXT = b"\n\n" + HEADER_PREFIX  # where the next current-format record starts
_OLD = "old"  # marks index keys of records whose first line has no timestamp
# --sort keys a _Rep holds as a number: what sorted_groups() can order by without the texts
_NUMERIC = {"pid": "pid", "tgid": "tgid", "free_ts": "free_ts", "allocator": "alloc"}  # and alloc_ts (slot_ts)


class _Rep:
    """What is kept per distinct record text: the first record's fields but its timestamp (``slot_ts``).

    Never changed once made, so slots whose records differ only in their
    timestamps (``-a``) share one.
    """

    __slots__ = ("alloc", "comm", "free_ts", "keep", "order", "pid", "tgid")

    def __init__(self, order: int, pid: int, tgid: int, comm: bytes, free_ts: int, alloc: int, keep: bool) -> None:
        self.order = order
        self.pid = pid
        self.tgid = tgid
        self.comm = comm
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
        self.slot_text: list[bytes] = []  # record text without its final newline (compact: the key, see _key_of)
        self.slot_count: list[int] = []
        self.slot_rep: list[_Rep] = []
        self.slot_ts = array("Q")  # the first record's timestamp (U64_MAX: none), 8 bytes a slot
        self.slot_of: dict[bytes, int] = {}  # text (+ allocator suffix) -> slot
        # (first line up to "ts ", stack length[, rest of the first line][, _OLD][, allocator bits])
        #   -> [stack, value, stack, value, ...]; value: the slot, or with timestamps kept the
        #   template _Rep of a record shape whose records differ only in their timestamps
        self._index: dict[tuple[Any, ...], list[Any]] = {}
        self._stacks: dict[bytes, bytes] = {}  # one copy of each stack text
        # With timestamps kept (-a) nearly every record is a text of its own, so a slot's key is
        # compact (see _key_of): a record of a known shape is "\n" + 4-byte shape number + its
        # timestamp digits, the shape (the text around the digits) being kept once in _shapes.
        # Without allocator bits only (their suffix would come last).
        self.compact = not strip_ts and not alloc_bits
        self._tags: dict[tuple[bytes, bytes, bytes], bytes] = {}  # shape -> its tag
        self._shapes: list[tuple[bytes, bytes, bytes]] = []  # tag number -> (before digits, after them, stack)
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
            # with timestamps kept every record is a group of its own: merging parts would cost what
            # counting them does, so one process reads the file
            parts = None if self.selection.drop_released or self.compact else parallel.split(path, jobs)
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
        compact = self.compact
        slot_text = self.slot_text
        slot_rep = self.slot_rep
        slot_ts = self.slot_ts
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
                key: tuple[Any, ...] = (data[pos:pfn - 1], end - b, _OLD)
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
                        v = c[k + 1]  # [tag, the shape's _Rep for each of the 4 CMA/SLAB bit values]
                        if compact:
                            text = v[0] + data[j + 4:e]
                        else:
                            text = data[pos:a3 + 3] + data[b:end] + _ALLOC_SUFFIX[bits]
                        slot = slot_of.get(text)
                        if slot is None:
                            if not alloc_bits:  # this record's own PFN line decides CMA/SLAB
                                bits = (find(b"CMA", pfn, b) >= 0) | ((find(b"slab", pfn, b) >= 0) << 1)
                            slot_of[text] = len(counts)
                            slot_text.append(text if compact else text[:-2])
                            counts.append(1)
                            slot_rep.append(v[1 + bits])
                            slot_ts.append(int(data[j + 4:e]))
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

    def _indexable(self, key: tuple[Any, ...], stack: bytes) -> bool:
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

    def _miss(self, data: bytes, pos: int, end: int, b: int, key: tuple[Any, ...], lines: _Lines) -> None:
        """A record of the fast shape whose (first line, stack) is not indexed yet."""
        stack = data[b:end]
        if b"\n\n" in stack:  # more than one record in this stretch: take them one by one
            self._slow_segment(data, pos, end, lines)
            return
        slot = self._slow_record(data[pos:end], pos, lines)
        if slot is not None and self._indexable(key, stack):
            stack = self._stacks.setdefault(stack, stack)
            timestamped = not self.strip_ts and key[2:3] != (_OLD,)
            value: object = slot
            if timestamped:
                r = self.slot_rep[slot]
                value = [self._tag(key[0], key[2] if len(key) > 2 else b" ns", stack)] + [
                    _Rep(r.order, r.pid, r.tgid, r.comm, r.free_ts, _alloc_with_bits(r.alloc, bits), r.keep)
                    for bits in range(4)]
            self._index.setdefault(key, []).extend((stack, value))

    def _tag(self, before: bytes, after: bytes, stack: bytes) -> bytes:
        """The 5 bytes that stand for a record shape in a compact key: the text but its timestamp digits."""
        shape = (before, after, stack)
        t = self._tags.get(shape)
        if t is None:
            t = self._tags[shape] = b"\n" + len(self._shapes).to_bytes(4, "little")
            self._shapes.append(shape)
        return t

    def _key_of(self, text: bytes) -> bytes:
        """The compact key of a record text; the same bytes :meth:`_scan` makes for it.

        A first line ``... ts <digits> ns[...]`` (found as :meth:`_scan`
        finds it) gives ``tag + digits``, the tag standing for the text
        around the digits; any other text gives ``"\0" + first line + tag``
        with the tag standing for the rest.  The first byte tells the two
        forms apart.
        """
        i = text.find(b"\n")
        line, stack = (text, b"") if i < 0 else (text[:i], text[i:])
        if line.endswith(b" ns"):
            a3 = len(line) - 3
            j = line.rfind(b" ts ", 0, a3)
            if j >= 0:
                e = a3 if line[j + 4:a3].isdigit() else line.find(b" ", j + 4, a3 + 1)
                if e > j + 4 and line[j + 4:e].isdigit():
                    return self._tag(line[:j + 4], line[e:], stack) + line[j + 4:e]
        return b"\0" + line + self._tag(b"", b"", stack)

    def _retag(self, key: bytes, shapes: list[tuple[bytes, bytes, bytes]]) -> bytes:
        """A compact key of another aggregator (whose shapes are ``shapes``) as this one writes it."""
        if key[:1] == b"\n":
            return self._tag(*shapes[int.from_bytes(key[1:5], "little")]) + key[5:]
        return key[:-5] + self._tag(*shapes[int.from_bytes(key[-4:], "little")])

    def text_of(self, slot: int) -> bytes:
        """The record text of a slot (without its final newline)."""
        key = self.slot_text[slot]
        if not self.compact:
            return key
        if key[:1] == b"\n":
            before, after, stack = self._shapes[int.from_bytes(key[1:5], "little")]
            return before + key[5:] + after + stack
        return key[1:-5] + self._shapes[int.from_bytes(key[-4:], "little")][2]

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
        key = strip_ts(text) if self.strip_ts else self._key_of(text) if self.compact else text
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
                free_ts=U64_MAX if sc.free_ts_ns is None else sc.free_ts_ns,
                alloc=alloc,
                keep=self.selection.keeps(pid, tgid, comm),
            )
        )
        self.slot_ts.append(U64_MAX if sc.ts_ns is None else sc.ts_ns)
        return slot

    def _error(self, e: ParseError) -> None:
        self.unparsed += 1
        if self.on_error is not None:
            self.on_error(e)

    def _merge(self, path: str, results: list[tuple[Any, ...]]) -> None:
        """Add the counts of the parts of ``path`` (:func:`_count_part` results, in file order).

        Slots are taken in file order, so a text's first record (and its
        fields) is the same as in one pass, and error line numbers are
        shifted by the lines before each part.
        """
        self.source = path
        base = 0
        for keys, counts, reps, tss, errors, nlines, stacks in results:
            if self.compact:  # the part's stack numbers are its own
                keys = [self._retag(k, stacks) for k in keys]
            slot_of = self.slot_of
            for key, cnt, rep, ts in zip(keys, counts, reps, tss):
                slot = slot_of.get(key)
                if slot is None:
                    slot_of[key] = len(self.slot_count)
                    self.slot_text.append(key[:-2] if self.alloc_bits else key)
                    self.slot_count.append(cnt)
                    self.slot_rep.append(_Rep(*rep))
                    self.slot_ts.append(ts)
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

    def sorted_groups(self, order: Sequence[tuple[str, int]]) -> SortedGroups | None:
        """The groups in report order, for reports sorted by allocation time first (``-a``); else None.

        The same order as ``sort_groups(cull(self.groups(), []), order)``
        (by text, then a stable sort per key), found without making the
        texts: timestamps are sorted as an array, and only records that
        share a timestamp are ordered by their other keys and their texts.
        None when the order needs more than numbers (``--sort=alloc_ts,name``)
        or the keys are not compact.
        """
        if not self.compact or not order or order[0][0] != "alloc_ts" or \
                any(n not in _NUMERIC and n != "alloc_ts" for n, _ in order):
            return None
        import numpy as np

        reps = self.slot_rep
        slot_ts = self.slot_ts
        every = np.frombuffer(slot_ts, dtype=np.uint64) if len(slot_ts) else np.zeros(0, np.uint64)
        if all(r.keep for r in reps):
            slots = list(range(len(reps)))
            ts = every
        else:
            slots = [i for i, r in enumerate(reps) if r.keep]
            ts = every[np.array(slots, dtype=np.int64)]
        o = np.argsort(ts, kind="stable")
        if order[0][1] < 0:
            o = o[::-1]
        out = [slots[i] for i in o.tolist()]
        if len(out) > 1:
            st = ts[o]
            ties = np.flatnonzero(st[1:] == st[:-1])
            if len(ties):
                bounds = [0, *(np.flatnonzero(st[1:] != st[:-1]) + 1).tolist(), len(out)]
                for a, b in zip(bounds, bounds[1:]):
                    if b - a > 1:
                        run = sorted(out[a:b], key=lambda s: self.text_of(s) + b"\n")
                        for name, sign in reversed(order[1:]):
                            if name == "alloc_ts":
                                run.sort(key=slot_ts.__getitem__, reverse=sign < 0)
                            else:
                                attr = _NUMERIC[name]
                                run.sort(key=lambda s, at=attr: getattr(reps[s], at), reverse=sign < 0)  # type: ignore[misc]
                        out[a:b] = run
        return SortedGroups(self, out)

    def groups(self) -> list[Group]:
        """One :class:`Group` per distinct record text, in order of first appearance."""
        out = []
        text_of = self.text_of
        for slot, (cnt, r, ts) in enumerate(zip(self.slot_count, self.slot_rep, self.slot_ts)):
            if r.keep:
                out.append(Group(cnt, cnt << r.order, text_of(slot) + b"\n", r.order, r.pid, r.tgid, r.comm, ts,
                                 r.free_ts, r.alloc))
        return out


class SortedGroups(Sequence[Group]):
    """The groups of an :class:`Aggregator` in a given slot order, each made when it is read.

    With timestamps kept a dump of a million records has a million groups;
    holding them (and their texts) as objects would cost several times the
    counts themselves.  The writers only iterate, so each :class:`Group`
    is built as it is written and dropped after.
    """

    def __init__(self, agg: Aggregator, slots: list[int]) -> None:
        self._agg = agg
        self._slots = slots

    def __len__(self) -> int:
        return len(self._slots)

    def _group(self, slot: int) -> Group:
        agg = self._agg
        cnt, r = agg.slot_count[slot], agg.slot_rep[slot]
        return Group(cnt, cnt << r.order, agg.text_of(slot) + b"\n", r.order, r.pid, r.tgid, r.comm, agg.slot_ts[slot],
                     r.free_ts, r.alloc)

    @overload
    def __getitem__(self, i: int) -> Group: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Group]: ...

    def __getitem__(self, i: int | slice) -> Group | Sequence[Group]:
        if isinstance(i, slice):
            return SortedGroups(self._agg, self._slots[i])
        return self._group(self._slots[i])

    def __iter__(self) -> Iterator[Group]:
        group = self._group
        for slot in self._slots:
            yield group(slot)


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


def _count_part(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Worker process: count one part of a file (see :func:`parallel.split`); line numbers are the part's own."""
    path, start, stop, carry, (strip, alloc_bits, selection, chunk_size) = args
    errors: list[tuple[int, str]] = []
    agg, nlines = count_range(path, start, stop, carry, strip_ts=strip, alloc_bits=alloc_bits, selection=selection,
                              chunk_size=chunk_size, on_error=lambda e: errors.append((e.line, e.reason)))
    keys: list[bytes] = [b""] * len(agg.slot_count)
    for key, slot in agg.slot_of.items():
        keys[slot] = key
    reps = [(r.order, r.pid, r.tgid, r.comm, r.free_ts, r.alloc, r.keep) for r in agg.slot_rep]
    return keys, agg.slot_count, reps, agg.slot_ts, errors, nlines, agg._shapes
