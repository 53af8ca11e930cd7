"""Page contents and the direct map: lazy 4 KiB pages that can be unmapped.

Host memory is spent only on pages whose bytes differ from a single fill
value: a page never touched reads as its fill byte (0 at boot) and has no
backing; writing to it gives it a row in a numpy pool.  Filling a whole range
with one byte (page poisoning, ``__GFP_ZERO``) drops the rows and records the
byte, so poisoning costs the same for a touched and an untouched page and the
bytes a reader sees are exactly what the kernel would have written.

Mapping is a per-pfn flag: an access to an unmapped page raises ``PageFault``
with the report the fault handlers (page_ext clients) give about the page.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from pageext_core.mm.constants import PAGE_SIZE
from pageext_core.mm.errors import InvalidPfn, PageFault
from pageext_core.mm.views import memview

FaultHandler = Callable[[int, int, bool], "str | None"]


class PageContents:
    """Bytes of every simulated page, created on first write."""

    def __init__(self, max_pfn: int, pfn_check: Callable[[int], None]) -> None:
        self.max_pfn = max_pfn
        self._pfn_check = pfn_check
        self.default_fill = 0
        self._slot: np.ndarray | None = None  # pfn -> pool row + 1 (0: no backing)
        self._fill: np.ndarray | None = None  # pfn -> fill byte for pages without backing
        # memoryviews of the two arrays (created with them, never replaced) for cheap scalar reads
        self._slot_mv: memoryview | None = None
        self._fill_mv: memoryview | None = None
        self._zero_slots = bytes(4 << 14)
        self._rows: dict[int, bytes] = {}
        self._unmapped: np.ndarray | None = None  # pfn -> True when not in the direct map
        self._unmapped_mv = memoryview(b"")  # the view of _unmapped once that exists (only read after it does)
        self._pool = np.zeros((0, PAGE_SIZE), np.uint8)
        self._free_rows: list[int] = []
        self._rows_used = 0
        self.nr_unmapped = 0
        self.fault_handlers: list[FaultHandler] = []
        # Called with each fault and the handlers' texts before it is raised: the machine logs the oops.
        self.oops: Callable[[PageFault, list[str]], None] | None = None

    # -- bookkeeping ------------------------------------------------------------

    @property
    def backed_pages(self) -> int:
        """Pages that own 4 KiB of host memory right now."""
        return self._rows_used - len(self._free_rows)

    @property
    def host_bytes(self) -> int:
        """Host bytes spent on contents: pool rows plus the per-pfn side arrays in use."""
        side = sum(a.nbytes for a in (self._slot, self._fill, self._unmapped) if a is not None)
        return self._pool.nbytes + side

    def _slots(self) -> np.ndarray:
        if self._slot is None:
            self._slot = np.zeros(self.max_pfn, np.uint32)
            self._slot_mv = memview(self._slot)
        return self._slot

    def _fills(self) -> np.ndarray:
        if self._fill is None:
            self._fill = np.full(self.max_pfn, self.default_fill, np.uint8)
            self._fill_mv = memview(self._fill)
        return self._fill

    def set_default_fill(self, byte: int) -> None:
        """What an untouched page reads as (0, or PAGE_POISON when poisoning from boot)."""
        if self._fill is not None:
            self._fill[self._fill == self.default_fill] = byte
        self.default_fill = byte

    def _row_for(self, pfn: int) -> int:
        slots = self._slots()
        s = int(slots[pfn])
        if s:
            return s - 1
        if self._free_rows:
            row = self._free_rows.pop()
        else:
            row = self._rows_used
            if row == len(self._pool):
                grown = np.zeros((max(16, 2 * len(self._pool)), PAGE_SIZE), np.uint8)
                grown[: len(self._pool)] = self._pool
                self._pool = grown
            self._rows_used += 1
        fill = self.default_fill if self._fill is None else int(self._fill[pfn])
        self._pool[row].fill(fill)
        slots[pfn] = row + 1
        return row

    # -- mapping ------------------------------------------------------------------

    def _unmapped_array(self) -> np.ndarray:
        if self._unmapped is None:
            self._unmapped = np.zeros(self.max_pfn, np.bool_)
            self._unmapped_mv = memview(self._unmapped)
        return self._unmapped

    def unmap(self, pfn: int, nr_pages: int = 1) -> None:
        """Remove pages from the direct map: the next access faults."""
        arr = self._unmapped_array()
        if nr_pages == 1:  # the common case (debug_pagealloc frees order-0 pages): no numpy call
            mv = self._unmapped_mv
            if not mv[pfn]:
                mv[pfn] = True
                self.nr_unmapped += 1
            return
        seg = arr[pfn : pfn + nr_pages]
        self.nr_unmapped += nr_pages - int(np.count_nonzero(seg))
        seg[:] = True

    def unmap_mask(self, mask: np.ndarray) -> None:
        """Unmap every pfn where ``mask`` is True (boot-time unmapping of all free pages)."""
        arr = self._unmapped_array()
        arr |= mask
        self.nr_unmapped = int(np.count_nonzero(arr))

    def map(self, pfn: int, nr_pages: int = 1) -> None:
        if self._unmapped is None:
            return
        if nr_pages == 1:
            mv = self._unmapped_mv
            if mv[pfn]:
                mv[pfn] = False
                self.nr_unmapped -= 1
            return
        seg = self._unmapped[pfn : pfn + nr_pages]
        self.nr_unmapped -= int(np.count_nonzero(seg))
        seg[:] = False

    def is_mapped(self, pfn: int) -> bool:
        return self._unmapped is None or not bool(self._unmapped[pfn])

    def unmapped_bytes(self) -> memoryview | None:
        """The direct map's flag per pfn as small ints (1: unmapped), for loops over many pages; None while all is mapped.

        A view, not a copy: read it, do not write it (``map``/``unmap`` keep
        the count).  Ask again after an ``unmap``: the first one creates it.
        """
        return None if self._unmapped is None else self._unmapped_mv.cast("B")

    def unmapped_flags(self) -> np.ndarray | None:
        """The same flags as a numpy bool array (read only), for vectorised checks; None while all is mapped."""
        return self._unmapped

    def _check_access(self, pfn: int, offset: int, n: int, write: bool) -> tuple[int, int]:
        """Validate an access of ``n`` bytes at ``pfn*4096+offset``; fault on unmapped pages."""
        if n < 0:
            raise ValueError(f"length {n} is negative")
        start = pfn * PAGE_SIZE + offset
        if offset < 0 or start < 0:
            raise InvalidPfn(pfn, f"offset {offset} is before the start of memory")
        first, last = start // PAGE_SIZE, (start + max(n, 1) - 1) // PAGE_SIZE
        for p in range(first, last + 1):
            self._pfn_check(p)
        if self._unmapped is not None and self.nr_unmapped:
            seg = self._unmapped[first : last + 1]
            if seg.any():
                bad = first + int(np.argmax(seg))
                fault_off = 0 if bad != first else start % PAGE_SIZE
                texts = self._fault_texts(bad, fault_off, write)
                fault = PageFault(bad, fault_off, write, "\n".join(texts))
                if self.oops is not None:
                    self.oops(fault, texts)
                raise fault
        return start, n

    def _fault_texts(self, pfn: int, offset: int, write: bool) -> list[str]:
        parts = []
        for handler in self.fault_handlers:
            text = handler(pfn, offset, write)
            if text:
                parts.append(text)
        return parts

    # -- access ---------------------------------------------------------------------

    def read(self, pfn: int, offset: int = 0, n: int = PAGE_SIZE) -> bytes:
        """Read ``n`` bytes; may run on into following pages, each checked for mapping."""
        start, n = self._check_access(pfn, offset, n, False)
        out = bytearray()
        pos = start
        end = start + n
        while pos < end:
            p, off = divmod(pos, PAGE_SIZE)
            take = min(end - pos, PAGE_SIZE - off)
            out += self.page_view(p)[off : off + take].tobytes()
            pos += take
        return bytes(out)

    def write(self, pfn: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write bytes at ``pfn*4096+offset`` (all touched pages must be mapped)."""
        data = bytes(data)
        start, n = self._check_access(pfn, offset, len(data), True)
        pos, i = start, 0
        while i < n:
            p, off = divmod(pos, PAGE_SIZE)
            take = min(n - i, PAGE_SIZE - off)
            row = self._row_for(p)
            self._pool[row, off : off + take] = np.frombuffer(data, np.uint8, take, i)
            pos += take
            i += take

    def write_phys(self, pfn: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write bytes bypassing the MMU (a DMA engine or a flipped bit): no mapping check, no fault."""
        data = bytes(data)
        start = pfn * PAGE_SIZE + offset
        if offset < 0 or start < 0:
            raise InvalidPfn(pfn, f"offset {offset} is before the start of memory")
        for p in range(start // PAGE_SIZE, (start + max(len(data), 1) - 1) // PAGE_SIZE + 1):
            self._pfn_check(p)
        pos, i, n = start, 0, len(data)
        while i < n:
            p, off = divmod(pos, PAGE_SIZE)
            take = min(n - i, PAGE_SIZE - off)
            row = self._row_for(p)  # may grow (replace) the pool: take the row first
            self._pool[row, off : off + take] = np.frombuffer(data, np.uint8, take, i)
            pos += take
            i += take

    def page_view(self, pfn: int) -> np.ndarray:
        """The page's 4096 bytes (read-only when the page has no backing)."""
        if self._slot is not None:
            s = int(self._slot[pfn])
            if s:
                row: np.ndarray = self._pool[s - 1]
                return row
        fill = self.default_fill if self._fill is None else int(self._fill[pfn])
        view = np.broadcast_to(np.uint8(fill), (PAGE_SIZE,))
        return view

    # -- whole-range operations (page poisoning, __GFP_ZERO, hotplug) --------------------

    def fill(self, pfn: int, nr_pages: int, byte: int) -> None:
        """Every byte of the range becomes ``byte``; backing rows are given back."""
        self._drop_rows(pfn, nr_pages)
        if self._fill is None and byte == self.default_fill:
            return
        self._fills()[pfn : pfn + nr_pages] = byte

    def zero(self, pfn: int, nr_pages: int) -> None:
        self.fill(pfn, nr_pages, 0)

    def _drop_rows(self, pfn: int, nr_pages: int) -> None:
        if self._slot is None:
            return
        seg = self._slot[pfn : pfn + nr_pages]
        if nr_pages == 1:
            s = int(seg[0])
            if s:
                self._free_rows.append(s - 1)
                seg[0] = 0
            return
        used = seg[seg != 0]
        if used.size:
            self._free_rows.extend((used - 1).tolist())
            seg[:] = 0

    def is_filled(self, pfn: int, nr_pages: int, byte: int, which: np.ndarray | None = None) -> bool:
        """True when every page of the range (those where ``which`` is True) has no backing and reads as ``byte``.

        The cheap half of a poison check: such a page cannot be corrupted, so
        the byte comparison (``find_mismatch``) is needed only when this says
        no.  Memoryview reads make the one-page case a few hundred ns.
        """
        if which is not None:
            if self._slot is not None and self._slot[pfn : pfn + len(which)][which].any():
                return False
            if self._fill is None:
                return self.default_fill == byte
            return not bool((self._fill[pfn : pfn + len(which)][which] != byte).any())
        s, f = self._slot_mv, self._fill_mv
        if nr_pages == 1:
            if s is not None and s[pfn]:
                return False
            return (self.default_fill if f is None else f[pfn]) == byte
        if s is not None and s[pfn : pfn + nr_pages].tobytes() != self._zero_slots[: 4 * nr_pages]:
            return False
        if f is None:
            return self.default_fill == byte
        row = self._rows.get(byte)
        if row is None:
            row = self._rows[byte] = bytes([byte]) * (1 << 14)
        return f[pfn : pfn + nr_pages] == row[:nr_pages]

    def find_mismatch(self, pfn: int, nr_pages: int, byte: int) -> list[tuple[int, int, int, bytes]]:
        """Pages of the range whose bytes are not all ``byte``.

        Returns ``(pfn, first_bad, last_bad, bytes[first_bad:last_bad+1])`` per
        bad page, found with whole-page numpy comparisons.
        """
        bad: list[tuple[int, int, int, bytes]] = []
        if self._fill is not None:
            fills = self._fill[pfn : pfn + nr_pages]
            wrong_fill = fills != byte
        else:
            wrong_fill = None if self.default_fill == byte else np.ones(nr_pages, np.bool_)
        slots = None if self._slot is None else self._slot[pfn : pfn + nr_pages]
        backed = None if slots is None else slots != 0
        if slots is not None and backed is not None and backed.any():
            idx = np.flatnonzero(backed)
            rows = self._pool[slots[idx].astype(np.int64) - 1]
            diff = rows != byte
            hit = diff.any(axis=1)
            for k in np.flatnonzero(hit).tolist():
                d = np.flatnonzero(diff[k])
                first, last = int(d[0]), int(d[-1])
                bad.append((pfn + int(idx[k]), first, last, rows[k, first : last + 1].tobytes()))
        if wrong_fill is not None:
            if backed is not None:
                wrong_fill = wrong_fill & ~backed
            for k in np.flatnonzero(wrong_fill).tolist():
                fill = self.default_fill if self._fill is None else int(self._fill[pfn + k])
                bad.append((pfn + k, 0, PAGE_SIZE - 1, bytes([fill]) * PAGE_SIZE))
        bad.sort()
        return bad

    def copy_page(self, dst: int, src: int) -> None:
        """Copy one page's contents (migration)."""
        if self._slot is not None and self._slot[src]:
            row = self._row_for(dst)
            self._pool[row] = self._pool[int(self._slot[src]) - 1]
        else:
            fill = self.default_fill if self._fill is None else int(self._fill[src])
            self.fill(dst, 1, fill)

    def forget(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Offlined memory: drop its bytes and mapping state."""
        for s, e in ranges:
            self._drop_rows(s, e - s)
            if self._fill is not None:
                self._fill[s:e] = self.default_fill
            self.map(s, e - s)
