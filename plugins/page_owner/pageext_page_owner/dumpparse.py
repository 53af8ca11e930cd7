"""Streaming parser for page_owner dumps (``/sys/kernel/debug/page_owner``).

Real dumps are big (a record per allocated block, often millions of them),
come from many kernel versions, and are often copied around gzipped or
through Windows machines.  This module reads them in large binary chunks,
never holding more than one chunk plus one partial record, and understands:

* the current format (``PFN 0x...``, ``pid``, ``tgid (comm)``, ``ts ... ns``);
* older mainline formats (decimal PFN, no tgid/comm, no ts, ``free_ts``);
* the 2014 RFC format (``PFN %lu Block %lu type %d ...`` and frames printed
  as `` [<ffffffff8116b3ec>] sym+0x17c/0x9f0``);
* CRLF line ends, gzip/xz/bzip2 input (by magic bytes), ``-`` for stdin.

Records are separated by an empty line.  As in the kernel's page_owner_sort,
the ``PFN ...`` line is not part of the record text (a record without one,
as pasted into bug reports, is still a record), and a last record that is
not followed by an empty line is not used; here it is reported as unparsed
so the user learns about it.

Two levels of API: :func:`iter_chunks` yields raw record blocks in batches
(what the fast sorter uses), :func:`parse_dump` yields :class:`Record`
objects (what tests and other tools use).
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple, Union

try:  # numpy is a dependency of pageext-core; the parser still works without it
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None  # type: ignore[assignment]  # no numpy: the callers test for None and parse in pure Python

__all__ = [
    "ALLOC_CMA",
    "ALLOC_OTHERS",
    "ALLOC_SLAB",
    "ALLOC_VMALLOC",
    "Chunk",
    "DumpSource",
    "ParseError",
    "Record",
    "Scan",
    "allocator_flags",
    "allocator_name",
    "compression_of",
    "count_lines",
    "frame_symbol",
    "iter_chunks",
    "iter_pieces",
    "open_dump",
    "parse_block",
    "parse_dump",
    "scan_block",
    "strip_ts",
]

# Allocator classes, with the bit values the kernel tool sorts by
# (``--sort=allocator`` orders CMA < SLAB < VMALLOC < OTHERS).
ALLOC_CMA = 1 << 1
ALLOC_SLAB = 1 << 2
ALLOC_VMALLOC = 1 << 3
ALLOC_OTHERS = 1 << 4
_ALLOC_NAMES = ((ALLOC_CMA, "CMA"), (ALLOC_SLAB, "SLAB"), (ALLOC_VMALLOC, "VMALLOC"), (ALLOC_OTHERS, "OTHERS"))

HEADER_PREFIX = b"Page allocated via order "
PFN_PREFIX = b"PFN"  # the kernel tool drops every line that starts with these 3 bytes
MIGRATE_PREFIX = b"Page has been migrated, last migrate reason: "
MAX_ORDER = 63
# A kernel record is at most one page (print_page_owner caps it at PAGE_SIZE);
# this much text without an empty line means the input is not a dump.
MAX_RECORD_BYTES = 1 << 20
DEFAULT_CHUNK = 16 << 20

# The kernel tool finds the timestamp with ``ts\s*([0-9]*)\s*ns`` (leftmost
# match in the record text) and, in its newest version, cuts the digits out.
TS_RE = re.compile(rb"ts\s*([0-9]*)\s*ns")
_HEADER_RE = re.compile(rb"Page allocated via order ([0-9]+),")
_MASK_RE = re.compile(rb"mask\s+(0[xX][0-9a-fA-F]+)(?:\(([^)]*)\))?")
_PID_RE = re.compile(rb"pid\s*([0-9]+),")
_TGID_RE = re.compile(rb"tgid\s*([0-9]+)")
_COMM_RE = re.compile(rb"tgid\s*[0-9]*\s*\((.*)\),\s*ts")
_COMM_EOL_RE = re.compile(rb"tgid\s*[0-9]*\s*\((.*)\)\s*$")
_TS_VALUE_RE = re.compile(rb"(?<![a-z_])ts\s*([0-9]+)\s*ns")
_FREE_TS_RE = re.compile(rb"free_ts\s*([0-9]+)\s*ns")
_PFN_RE = re.compile(rb"PFN\s+(0[xX][0-9a-fA-F]+|[0-9]+)")
_FRAME_RE = re.compile(
    r"^\s*(?:\[<[0-9a-fA-F]+>\]\s*)?(?:\?\s+)?([^\s+]+)(?:\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+)?(\s+\[[^\]]*\])?\s*$"
)

DumpSource = Union[str, "os.PathLike[str]", BinaryIO]


class ParseError(ValueError):
    """A record that cannot be used, with the line it starts on."""

    def __init__(self, line: int, reason: str, source: str = "") -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason
        self.source = source

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.source else f"line {self.line}"
        return f"{where}: {self.reason}"


@dataclass(slots=True)
class Record:
    """One page_owner record (one allocated block).

    ``text`` is what the kernel tool compares: the first line and every
    following line except the ``PFN`` line, each ending in a newline, with
    the timestamp still in it (see :func:`strip_ts`).  ``pfn_line`` is
    empty and ``pfn`` None for a record printed without its ``PFN`` line
    (an excerpt from a bug report); its allocator then comes from the
    stack alone (``page_owner_sort`` does what the kernel tool does, see
    docs/page_owner_sort.md).
    """

    line: int
    text: str
    first_line: str
    pfn_line: str
    frames: tuple[str, ...]
    order: int
    gfp_mask: int | None
    gfp_flags: str | None
    pid: int | None
    tgid: int | None
    comm: str | None
    ts_ns: int | None
    free_ts_ns: int | None
    pfn: int | None
    allocator_flags: int
    migrate_reason: str | None
    migrate_line: str | None
    extra_lines: tuple[str, ...]

    @property
    def pages(self) -> int:
        """Base pages in the block: 2^order."""
        return 1 << self.order

    @property
    def allocator(self) -> str:
        """``CMA``, ``SLAB``, ``VMALLOC`` or ``OTHERS`` (space-joined if several)."""
        return allocator_name(self.allocator_flags)

    @property
    def stacktrace(self) -> str:
        """Everything after the first line, as ``--cull=stacktrace`` compares it."""
        return self.text.partition("\n")[2]

    @property
    def released(self) -> bool:
        """True when the dump says the block was freed after it was allocated.

        Only 5.x-era dumps print ``free_ts``; current dumps list allocated
        blocks only, so this is False for them.
        """
        if self.free_ts_ns is None or self.free_ts_ns == 0:
            return False
        return self.ts_ns is None or self.free_ts_ns > self.ts_ns


def allocator_name(flags: int) -> str:
    """Names of the allocator bits in the kernel tool's print order."""
    return " ".join(name for bit, name in _ALLOC_NAMES if flags & bit)


def allocator_flags(text: bytes, pfn_line: bytes) -> int:
    """Classify a record like the kernel tool does.

    CMA / SLAB come from the ``PFN`` line (its migratetype and page flags);
    VMALLOC when the first ``__vmalloc_node_range`` in the text has
    ``alloc_pages`` on the line before it (or earlier on its own line).
    """
    flags = 0
    if b"CMA" in pfn_line:
        flags |= ALLOC_CMA
    if b"slab" in pfn_line:
        flags |= ALLOC_SLAB
    at = text.find(b"__vmalloc_node_range")
    if at >= 0:
        line_start = text.rfind(b"\n", 0, at)
        prev_start = text.rfind(b"\n", 0, line_start) + 1 if line_start > 0 else 0
        hit = text.find(b"alloc_pages", prev_start)
        if 0 <= hit < at:
            flags |= ALLOC_VMALLOC
    return flags or ALLOC_OTHERS


def strip_ts(text: bytes) -> bytes:
    """Cut the timestamp digits out of a record text, as the newest kernel tool does.

    ``..., ts 2315508201 ns`` becomes ``..., ts  ns`` so that identical
    allocations made at different times compare equal.
    """
    m = TS_RE.search(text)
    if m is None:
        return text
    s, e = m.span(1)
    return text[:s] + text[e:]


def frame_symbol(frame: str) -> str:
    """Function name of a stack line: ``post_alloc_hook+0x1a2/0x1c0`` -> ``post_alloc_hook``.

    Also drops the 2014 ``[<ffffffff8116b3ec>]`` address and keeps a module
    suffix (``xfs_file_read_iter [xfs]``).  Flame graphs merge by function,
    so offsets (which differ per call site and per build) are removed.
    """
    m = _FRAME_RE.match(frame)
    if m is None:
        return frame.strip()
    return m.group(1) + (" " + m.group(2).strip() if m.group(2) else "")


def _dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class Scan(NamedTuple):
    """The raw (bytes) fields of a validated record: what sorting needs, nothing decoded."""

    line: int
    header: bytes
    pfn_line: bytes
    text: bytes  # first line + every non-PFN line, each ending in "\n"
    order: int
    pid: int | None
    tgid: int | None
    comm: bytes | None
    ts_ns: int | None
    free_ts_ns: int | None
    allocator_flags: int


_SECOND_HEADER = b"\n" + HEADER_PREFIX


def scan_block(block: bytes, line: int = 1, source: str = "") -> Scan:
    """Validate one record block and pull out its raw fields.

    ``block`` is the text between two empty lines (no trailing newline).
    Raises :class:`ParseError` (with the block's line number) when it is
    not a usable record: no ``Page allocated via order N,`` first line, an
    order above 63, or a second record glued to it.  A record without a
    ``PFN`` line (an excerpt from a bug report) is valid: ``pfn_line`` is
    then empty and the allocator comes from the stack alone.
    """
    block = block.rstrip(b"\n")
    if block[:1] == b"\n":
        lead = len(block) - len(block.lstrip(b"\n"))
        block = block[lead:]
        line += lead
    nl = block.find(b"\n")
    header = block if nl < 0 else block[:nl]
    if not header.startswith(HEADER_PREFIX):
        shown = _dec(header[:60]) + ("..." if len(header) > 60 else "")
        hint = ""
        if header.startswith(b" ") or header.startswith(b"nr_base_pages"):
            hint = " (this looks like page_owner_stacks/show_stacks output, not /sys/kernel/debug/page_owner)"
        elif header.startswith(PFN_PREFIX):
            hint = " (the 'Page allocated via order' line before it is missing)"
        raise ParseError(line, f"record does not start with 'Page allocated via order N, ...' but with {shown!r}{hint}", source)
    m = _HEADER_RE.match(header)
    if m is None:
        raise ParseError(line, f"cannot read the order in {_dec(header[:80])!r} (expected 'order <number>,')", source)
    order = int(m.group(1))
    if order > MAX_ORDER:
        raise ParseError(line, f"order {order} is out of range (0-{MAX_ORDER})", source)
    second = block.find(_SECOND_HEADER)
    if second >= 0:
        at = line + block.count(b"\n", 0, second) + 1
        raise ParseError(
            line,
            f"a second 'Page allocated' line at line {at}: the empty line between two records is missing "
            "(truncated or spliced dump?)",
            source,
        )
    # the kernel tool drops every line that starts with "PFN" and keeps the last one aside
    if nl >= 0 and block.startswith(PFN_PREFIX, nl + 1) and block.find(b"\nPFN", nl + 1) < 0:
        e = block.find(b"\n", nl + 1)
        pfn_line = block[nl + 1:] if e < 0 else block[nl + 1:e]
        text = header + b"\n" if e < 0 else header + block[e:] + b"\n"
    else:
        # no PFN line at all (an excerpt pasted into a bug report, a hand-trimmed
        # record) is still a record: the kernel tool keeps and groups it by its text
        kept = [header]
        pfn_line = b""
        for ln in block.split(b"\n")[1:]:
            if ln.startswith(PFN_PREFIX):
                pfn_line = ln
            else:
                kept.append(ln)
        text = b"\n".join(kept) + b"\n"
    pm = _PID_RE.search(header)
    tm = _TGID_RE.search(header)
    cm = _COMM_RE.search(header) or _COMM_EOL_RE.search(header)
    tsm = _TS_VALUE_RE.search(header)
    fm = _FREE_TS_RE.search(header)
    return Scan(
        line,
        header,
        pfn_line,
        text,
        order,
        int(pm.group(1)) if pm else None,
        int(tm.group(1)) if tm else None,
        cm.group(1) if cm else None,
        int(tsm.group(1)) if tsm else None,
        int(fm.group(1)) if fm else None,
        allocator_flags(text, pfn_line),
    )


def parse_block(block: bytes, line: int = 1, source: str = "") -> Record:
    """Parse one record (the lines between two empty lines, no trailing newline).

    Raises :class:`ParseError` when the block is not a usable record.
    """
    sc = scan_block(block, line, source)
    frames: list[str] = []
    extra: list[str] = []
    migrate_reason = migrate_line = None
    for ln in sc.text[len(sc.header) + 1:-1].split(b"\n") if len(sc.text) > len(sc.header) + 1 else ():
        if ln[:1] in (b" ", b"\t"):
            frames.append(_dec(ln.strip()))
        elif ln.startswith(MIGRATE_PREFIX):
            migrate_line = _dec(ln)
            migrate_reason = _dec(ln[len(MIGRATE_PREFIX):].strip())
        else:
            extra.append(_dec(ln))
    mm = _MASK_RE.search(sc.header)
    pfm = _PFN_RE.match(sc.pfn_line)
    return Record(
        line=sc.line,
        text=_dec(sc.text),
        first_line=_dec(sc.header),
        pfn_line=_dec(sc.pfn_line),
        frames=tuple(frames),
        order=sc.order,
        gfp_mask=int(mm.group(1), 16) if mm else None,
        gfp_flags=_dec(mm.group(2)) if mm and mm.group(2) is not None else None,
        pid=sc.pid,
        tgid=sc.tgid,
        comm=_dec(sc.comm) if sc.comm is not None else None,
        ts_ns=sc.ts_ns,
        free_ts_ns=sc.free_ts_ns,
        pfn=int(pfm.group(1), 0) if pfm else None,
        allocator_flags=sc.allocator_flags,
        migrate_reason=migrate_reason,
        migrate_line=migrate_line,
        extra_lines=tuple(extra),
    )


# ---------------------------------------------------------------- input


class _Prefixed(io.RawIOBase):
    """A reader that first returns ``head`` (the sniffed magic bytes), then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data = self._head + self._rest.read()
                self._head = b""
                return data
            head, self._head = self._head[:size], self._head[size:]
            if len(head) == size:
                return head
            return head + self._rest.read(size - len(head))
        return self._rest.read(size)


COMPRESSION_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def compression_of(head: bytes) -> str | None:
    """``gzip``/``xz``/``bzip2``/``zstd`` from a file's first bytes, or None for plain text."""
    for magic, kind in COMPRESSION_MAGIC:
        if head.startswith(magic) and (kind != "bzip2" or head[3:4].isdigit()):
            return kind
    return None


def _wrap_compressed(raw: BinaryIO, name: str) -> BinaryIO:
    head = raw.read(6)
    kind = compression_of(head)
    stream: BinaryIO = _Prefixed(head, raw)  # type: ignore[assignment]
    if kind is None:
        return stream
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(stream, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(stream, mode="rb")  # type: ignore[return-value]
    raise OSError(f"{name}: input is {kind}-compressed, which is not supported; decompress it first (e.g. 'zstd -dc {name} | page_owner_sort - OUT')")


@contextlib.contextmanager
def open_dump(source: DumpSource) -> Iterator[tuple[BinaryIO, str]]:
    """Open a dump for binary reading: a path, ``-`` (stdin) or a binary file object.

    Compression is detected from the first bytes, not the file name, so a
    gzipped dump saved as ``page_owner.txt`` still works.  Yields
    ``(stream, display_name)``.
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if name == "-":
            yield _wrap_compressed(sys.stdin.buffer, "<stdin>"), "<stdin>"
            return
        with open(name, "rb") as raw:
            stream = _wrap_compressed(raw, name)
            try:
                yield stream, name
            finally:
                if stream is not raw:
                    stream.close()
        return
    name = str(getattr(source, "name", "<stream>"))
    yield _wrap_compressed(source, name), name


@dataclass(slots=True)
class Chunk:
    """A batch of whole records cut out of the input.

    The records are ``data[start:stop]``, separated by exactly two newlines
    (no trailing newline), so a consumer can walk them with ``find``
    without copying the chunk.  ``first_line`` is the line number at
    ``start``; the record at offset ``k`` starts on line ``first_line +
    data.count(b"\n", start, k)``.  Runs of extra empty lines show up as
    empty records or records starting with a newline.  ``terminated`` is
    False only for the final batch when the input did not end with an
    empty line: it then holds the unterminated tail (or, with
    ``oversized``, the start of a run of text with no empty line at all,
    which was dropped).
    """

    data: bytes
    first_line: int
    start: int = 0
    stop: int = -1
    terminated: bool = True
    oversized: bool = False

    def __post_init__(self) -> None:
        if self.stop < 0:
            self.stop = len(self.data)

    @property
    def text(self) -> bytes:
        """The records of this batch as one bytes object (a copy unless it is all of ``data``)."""
        if self.start == 0 and self.stop == len(self.data):
            return self.data
        return self.data[self.start:self.stop]

    @property
    def pieces(self) -> list[bytes]:
        """The records as separate bytes objects."""
        return self.text.split(b"\n\n")


def count_lines(data: bytes, start: int = 0, stop: int | None = None) -> int:
    """Newlines in ``data[start:stop]`` (numpy when available: about twice as fast on big chunks)."""
    if stop is None:
        stop = len(data)
    if _np is not None and stop - start > 1 << 16:
        return int(_np.count_nonzero(_np.frombuffer(data, _np.uint8, stop - start, start) == 10))
    return data.count(b"\n", start, stop)


def iter_chunks(stream: BinaryIO, chunk_size: int = DEFAULT_CHUNK) -> Iterator[Chunk]:
    """Split a binary stream into batches of whole records, a large read at a time.

    All work is bytes operations on whole chunks (find/count run in C) and
    the big chunk is handed on without being copied; only the record that
    straddles two reads is glued together.  Memory is one chunk plus one
    partial record.
    """
    read = stream.read
    carry = b""
    line = 1
    skipping = False  # inside an oversized run, dropping text up to the next empty line
    while True:
        data = read(chunk_size)
        if not data:
            break
        if b"\r" in data or (carry and carry[-1:] == b"\r"):
            data = (carry + data).replace(b"\r\n", b"\n")
            carry = b""
        r0 = 0  # where the not yet handed-out part of data starts
        if carry and not skipping:
            # finish the record that straddles the two reads, copying only that record
            if carry[-1:] == b"\n" and data[:1] == b"\n":
                head, r0 = carry[:-1], 1
            else:
                k0 = data.find(b"\n\n", 0, MAX_RECORD_BYTES)
                if k0 >= 0:
                    head, r0 = carry + data[:k0], k0 + 2
                else:
                    head = b""
            if r0:
                carry = b""
                yield Chunk(head, line)
                line += head.count(b"\n") + 2
            else:
                data = carry + data
                carry = b""
        elif carry:
            data = carry + data
            carry = b""
        if skipping:
            k = data.find(b"\n\n", r0)
            if k < 0:
                keep = b"\n" if data.endswith(b"\n") else b""
                line += count_lines(data, r0) - len(keep)
                carry = keep
                continue
            line += count_lines(data, r0, k) + 2
            r0 = k + 2
            skipping = False
        k = data.rfind(b"\n\n", r0)
        if k < 0:
            if len(data) - r0 > MAX_RECORD_BYTES:
                rest = data[r0:r0 + MAX_RECORD_BYTES]
                lead = len(rest) - len(rest.lstrip(b"\n"))
                yield Chunk(rest[lead:lead + 200], line + lead, terminated=False, oversized=True)
                keep = b"\n" if data.endswith(b"\n") else b""
                line += count_lines(data, r0) - len(keep)
                carry = keep
                skipping = True
            else:
                carry = data[r0:] if r0 else data
            continue
        while k > r0 and data[k - 1] == 10:
            k -= 1
        carry = data[k + 2:]
        yield Chunk(data, line, r0, k)
        line += count_lines(data, r0, k) + 2
    if carry and not skipping:
        lead = len(carry) - len(carry.lstrip(b"\n"))
        rest = carry[lead:]
        if rest.strip():
            yield Chunk(rest.rstrip(b"\n"), line + lead, terminated=False)


def iter_pieces(stream: BinaryIO, chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[bytes, int, bool]]:
    """Every record block with its line number: ``(block, line, terminated)``.

    Empty blocks (runs of empty lines) are left out.  Slower than
    :func:`iter_chunks` by one generator step per record; fine for tools
    that do more work per record anyway.
    """
    for chunk in iter_chunks(stream, chunk_size):
        line = chunk.first_line
        for p in chunk.pieces:
            nl = p.count(b"\n")
            if p:
                lead = len(p) - len(p.lstrip(b"\n"))
                if lead < len(p):
                    yield p[lead:], line + lead, chunk.terminated and not chunk.oversized
            line += nl + 2


UNTERMINATED_REASON = (
    "the last record is not followed by an empty line; the kernel tool ignores such a record and so do we "
    "(append an empty line to the file to include it)"
)
OVERSIZED_REASON = (
    f"no empty line within {MAX_RECORD_BYTES >> 20} MiB: not a page_owner record "
    "(kernel records are at most one page long); text skipped up to the next empty line"
)


def parse_dump(
    source: DumpSource,
    on_error: Callable[[ParseError], None] | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> Iterator[Record]:
    """Yield every usable record of a dump; report the others to ``on_error``.

    Unusable blocks (not a record, two records run together, an
    unterminated last record) are skipped; ``on_error`` receives a
    :class:`ParseError` carrying the file name and line number.
    """
    with open_dump(source) as (stream, name):
        for chunk in iter_chunks(stream, chunk_size):
            if not chunk.terminated:
                if on_error is not None:
                    reason = OVERSIZED_REASON if chunk.oversized else UNTERMINATED_REASON
                    on_error(ParseError(chunk.first_line, reason, name))
                continue
            line = chunk.first_line
            for p in chunk.pieces:
                if p and p.strip(b"\n"):
                    try:
                        yield parse_block(p, line, name)
                    except ParseError as e:
                        if on_error is not None:
                            on_error(e)
                line += p.count(b"\n") + 2
