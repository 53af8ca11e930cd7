"""page_ext tables and the per-client views onto them.

SPARSEMEM keeps one table per present memory section, allocated only for
sections with memory; FLATMEM keeps one per node covering its spanned pfns.
A table is a numpy structured array of the record dtype; its bytes are also
charged to the simulated machine, as in the kernel: SPARSEMEM tables come
from the page allocator (``alloc_pages_exact``), FLATMEM tables from memblock
at early boot.  Hot-added memory gets its tables on going-online, with
rollback of everything that event allocated if one allocation fails.

A client reaches page_ext only through its ``PageExtView``: its own fields
(one pfn, a whole 2^order block as a numpy slice, or vectorised scans) and
its own flag bits.  For the hottest paths ``view.per_section(build)`` gives a
list indexed by section whose entries the storage itself keeps current as
tables come and go (memory hotplug), as ``page_ext.c``'s own memory callback
does: a client keeps no per-section state of its own.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from pageext_core.layout import FLAGS_FIELD, ClientLayout, Layout
from pageext_core.mm.constants import PAGE_SIZE
from pageext_core.mm.errors import HotplugError, MMError
from pageext_core.mm.gfp import GFP_KERNEL, parse_gfp
from pageext_core.mm.hotplug import MEM_CANCEL_ONLINE, MEM_GOING_ONLINE, MEM_OFFLINE
from pageext_core.mm.views import memview

if TYPE_CHECKING:
    from pageext_core.mm.machine import Machine

GFP_PAGE_EXT = GFP_KERNEL | parse_gfp("__GFP_NOWARN")
T = TypeVar("T")


class NoExtension(LookupError):
    """The pfn has no page_ext record (absent section, hole, or page_ext not in use)."""


class PageExtAllocError(MMError):
    """A table could not be allocated (the kernel's -ENOMEM)."""


@dataclass
class Table:
    key: int  # section number (SPARSEMEM) or node id (FLATMEM)
    base_pfn: int
    records: np.ndarray  # structured, full record dtype
    raw: memoryview  # the table's bytes ('B')
    words: memoryview | None  # the table as uint64 words ('Q'), when records are 8-byte multiples
    typed: dict[str, np.ndarray]  # per-client views (client fields only)
    sim_chunks: list[tuple[int, int]]  # simulated memory holding it: (pfn, pages) runs
    sim_pages: int
    from_memblock: bool = False  # FLATMEM: reserved at boot, never freed


class PageExtTables:
    """All tables of one boot, and their accounting."""

    def __init__(self, machine: Machine, layout: Layout) -> None:
        self.machine = machine
        self.layout = layout
        self.record_size = layout.record_size
        self.dtype = layout.dtype
        self.sparse = machine.config.memory_model == "SPARSEMEM"
        self.shift = machine.geometry.section_shift
        self._entries: list[Table | None] = [None] * machine.geometry.nr_sections
        self.tables: dict[int, Table] = {}
        self._client_dtypes = {c.name: client_dtype(layout, c) for c in layout.clients}
        self.fail_allocation: Callable[[int], bool] | None = None  # test hook: fail this table?
        self.views: dict[str, PageExtView] = {}
        self._per_section: list[SectionList[Any]] = []
        self._event_sections: list[int] = []

    # -- accounting ----------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        """Host bytes in tables: exactly record size × pages covered."""
        return sum(t.records.nbytes for t in self.tables.values())

    @property
    def sim_pages(self) -> int:
        """Simulated pages holding the tables."""
        return sum(t.sim_pages for t in self.tables.values())

    # -- allocation ------------------------------------------------------------------

    def _new_table(self, key: int, base: int, nr_pages: int, sim_chunks: list[tuple[int, int]],
                   from_memblock: bool = False) -> Table:
        records = np.zeros(nr_pages, self.dtype)
        raw = memview(records.view(np.uint8))
        words = memview(records.view(np.uint64)) if self.record_size % 8 == 0 else None
        typed = {name: records.view(dt) for name, dt in self._client_dtypes.items()}
        pages = sum(n for _, n in sim_chunks)
        return Table(key, base, records, raw, words, typed, sim_chunks, pages, from_memblock)

    def _install(self, t: Table, sections: range) -> None:
        self.tables[t.key] = t
        for s in sections:
            self._entries[s] = t
        for lst in self._per_section:
            lst.fill(t, sections)

    def allocate_flatmem(self) -> None:
        """Early boot: one table per node, from memblock (before ``free_all``)."""
        m = self.machine
        for n in m.geometry.nodes:
            nr = n.end_pfn - n.start_pfn
            pages = -(-nr * self.record_size // PAGE_SIZE)
            sim = m.memblock_alloc(n.nid, pages)
            t = self._new_table(n.nid, n.start_pfn, nr, [(sim, pages)], from_memblock=True)
            self._install(t, range(n.start_pfn >> self.shift, ((n.end_pfn - 1) >> self.shift) + 1))

    def allocate_sections(self, sections: list[int]) -> list[int]:
        """Allocate tables for these sections; on any failure free all of them and raise."""
        done: list[int] = []
        try:
            for s in sections:
                if s in self.tables:
                    continue
                self._allocate_section(s)
                done.append(s)
        except BaseException:  # -ENOMEM, or a client raising in a call-out of the allocation
            self.free_sections(done)
            raise
        return done

    def _allocate_section(self, section: int) -> None:
        per = 1 << self.shift
        pages = -(-per * self.record_size // PAGE_SIZE)
        if self.fail_allocation is not None and self.fail_allocation(section):
            raise PageExtAllocError(f"page_ext: cannot allocate {pages} pages for section {section} (injected failure)")
        chunks = self._alloc_sim(section, pages)
        t = self._new_table(section, section << self.shift, per, chunks)
        self._install(t, range(section, section + 1))

    def _alloc_sim(self, section: int, pages: int) -> list[tuple[int, int]]:
        """Simulated memory for a table, taken from the machine like any kernel allocation."""
        m = self.machine
        max_block = 1 << m.max_order
        nid = m.geometry.node_of(section << self.shift) or 0
        cpu = next((c for c in range(m.config.cpus) if m.cpu_to_node(c) == nid), m.cpu)
        got: list[tuple[int, int]] = []
        with m.context(cpu=cpu):
            left = pages
            try:
                while left:
                    chunk = min(left, max_block)
                    pfn = m.alloc_pages_exact(chunk, GFP_PAGE_EXT)
                    if pfn is None:
                        raise PageExtAllocError(
                            f"page_ext: cannot allocate {pages} pages for section {section}: out of memory (-ENOMEM)")
                    got.append((pfn, chunk))
                    left -= chunk
            except BaseException:  # give back what this table got, whatever went wrong
                for p, n in got:
                    m.free_pages_exact(p, n)
                raise
        return got

    def free_sections(self, sections: list[int]) -> None:
        for s in sections:
            t = self.tables.pop(s, None)
            if t is None:
                continue
            self._entries[s] = None
            for lst in self._per_section:
                lst.entries[s] = None
            if not t.from_memblock:
                for p, n in t.sim_chunks:
                    self.machine.free_pages_exact(p, n)

    # -- lookup -----------------------------------------------------------------------

    def entry(self, pfn: int) -> Table | None:
        if pfn < 0:
            return None
        try:
            return self._entries[pfn >> self.shift]
        except IndexError:
            return None

    # -- memory hotplug ---------------------------------------------------------------------

    def memory_notifier(self, event: str, start: int, nr: int) -> None:
        """Allocate on going-online (all or nothing), free on cancel-online and offline."""
        if not self.sparse or not self.record_size:
            return
        sections = list(range(start >> self.shift, ((start + nr - 1) >> self.shift) + 1))
        if event == MEM_GOING_ONLINE:
            self._event_sections = []
            try:
                self._event_sections = self.allocate_sections(sections)
            except PageExtAllocError as exc:
                raise HotplugError(str(exc)) from exc
        elif event == MEM_CANCEL_ONLINE:
            # Sent to the whole chain: free only what this event allocated (nothing, if we failed).
            self.free_sections(self._event_sections)
            self._event_sections = []
        elif event == MEM_OFFLINE:
            self.free_sections(sections)


@dataclass(frozen=True)
class ClientTable:
    """One page_ext table as one client sees it: what a ``per_section`` builder is given.

    The pfn ``p``'s record starts at byte ``(p - base_pfn) * record_size`` of
    ``raw``; the client's region at ``offset`` inside it; the flags word is
    ``words[(p - base_pfn) * record_size // 8]`` (``words`` is None when
    records are not made of 8-byte words, i.e. there is no flags word).
    ``records`` shows the client's own fields only.
    """

    base_pfn: int
    nr_pages: int
    raw: memoryview
    words: memoryview | None
    records: np.ndarray
    offset: int
    record_size: int


class SectionList(Generic[T]):
    """A client's per-section entries, ``build(table)`` for every section with a table, kept by the storage."""

    def __init__(self, view: PageExtView, build: Callable[[ClientTable], T]) -> None:
        self._view = view
        self._build = build
        self.entries: list[T | None] = [None] * len(view._tables._entries)

    def fill(self, t: Table, sections: range) -> None:
        value = self._build(self._view._client_table(t))
        for s in sections:
            self.entries[s] = value


def client_dtype(layout: Layout, c: ClientLayout) -> np.dtype:
    """A record dtype showing only one client's fields (same itemsize, real offsets)."""
    return np.dtype({
        "names": [f.name for f in c.fields],
        "formats": [(f.dtype, f.shape) if f.shape else f.dtype for f in c.fields],
        "offsets": [f.offset for f in c.fields],
        "itemsize": max(layout.record_size, 1),
    })


class PageExtView:
    """One client's window onto page_ext: its fields and its flag bits, nothing else."""

    def __init__(self, tables: PageExtTables, client: ClientLayout) -> None:
        self._tables = tables
        self._machine = tables.machine
        self.name = client.name
        self.offset = client.offset
        self.size = client.size
        self.record_size = tables.record_size
        self.fields = tuple(f.name for f in client.fields)
        self.flag_bits = {n: 1 << b for n, b in client.flag_bits.items()}
        self._own_bits = sum(self.flag_bits.values())
        self.dtype = tables._client_dtypes[client.name]
        tables.views[client.name] = self

    def __repr__(self) -> str:
        return f"<PageExtView {self.name} offset={self.offset} size={self.size} flags={sorted(self.flag_bits)}>"

    # -- single pfn / block --------------------------------------------------------

    def _table(self, pfn: int) -> Table:
        t = self._tables.entry(pfn)
        if t is None:
            raise NoExtension(f"pfn {pfn:#x} has no page_ext record")
        return t

    def lookup(self, pfn: int) -> np.void | None:
        """This client's record for ``pfn``, or None ("no extension": absent section, hole)."""
        t = self._tables.entry(pfn)
        if t is None or not self._machine.pfn_valid(pfn):
            return None
        rec: np.void = t.typed[self.name][pfn - t.base_pfn]
        return rec

    def block(self, pfn: int, order: int = 0) -> np.ndarray:
        """The 2^order records starting at ``pfn`` as a writable numpy slice (client fields only)."""
        t = self._table(pfn)
        i = pfn - t.base_pfn
        return t.typed[self.name][i : i + (1 << order)]

    def get(self, pfn: int, field: str) -> Any:
        return self.block(pfn)[field][0]

    def set(self, pfn: int, field: str, value: Any, nr: int = 1) -> None:
        t = self._table(pfn)
        i = pfn - t.base_pfn
        t.typed[self.name][field][i : i + nr] = value

    # -- flag bits ---------------------------------------------------------------------

    def flag(self, name: str) -> int:
        """The mask of one of this client's flag bits."""
        try:
            return self.flag_bits[name]
        except KeyError:
            raise KeyError(f"{self.name} declared no flag {name!r}; it has {sorted(self.flag_bits)}") from None

    def _flags(self, pfn: int, nr: int) -> np.ndarray:
        t = self._table(pfn)
        i = pfn - t.base_pfn
        return t.records[FLAGS_FIELD][i : i + nr]

    def set_flags(self, pfn: int, mask: int, nr: int = 1) -> None:
        """Set bits (``view.flag("X") | ...``) on ``nr`` pages; only this client's bits."""
        self._check_bits(mask)
        seg = self._flags(pfn, nr)
        seg |= np.uint64(mask)

    def clear_flags(self, pfn: int, mask: int, nr: int = 1) -> None:
        self._check_bits(mask)
        seg = self._flags(pfn, nr)
        seg &= np.uint64(~mask & 0xFFFFFFFFFFFFFFFF)

    def test_flag(self, pfn: int, mask: int) -> bool:
        self._check_bits(mask)
        return bool(int(self._flags(pfn, 1)[0]) & mask)

    def flags_of(self, pfn: int, nr: int = 1) -> np.ndarray:
        """This client's bits of ``nr`` pages (other clients' bits masked out), a copy."""
        own: np.ndarray = self._flags(pfn, nr) & np.uint64(self._own_bits)
        return own

    def _check_bits(self, mask: int) -> None:
        if mask & ~self._own_bits:
            raise PermissionError(f"{self.name} may only touch its own flag bits {sorted(self.flag_bits)}")

    # -- scans ---------------------------------------------------------------------------

    def scan(self) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """Every table: ``(base_pfn, records, own_flag_bits)`` for vectorised reports, in pfn order."""
        for key in sorted(self._tables.tables):
            t = self._tables.tables[key]
            flags = None
            if self._own_bits:
                flags = t.records[FLAGS_FIELD] & np.uint64(self._own_bits)
            yield t.base_pfn, t.typed[self.name], flags

    # -- raw access for hot paths -----------------------------------------------------------

    def per_section(self, build: Callable[[ClientTable], T]) -> list[T | None]:
        """A list indexed by section (``pfn >> section_shift``): ``build(table)`` where there is a table, else None.

        ``build`` is called once per table, now and whenever memory hotplug
        adds one; the storage clears the entries of tables it frees.  The list
        is the same object for the whole boot, so a hot path may bind it once
        and index it: ``entries[pfn >> shift]``.  A None entry means "no
        extension" for that pfn (call ``locate`` to get the ``NoExtension``).
        """
        lst = SectionList(self, build)
        for t in {id(t): t for t in self._tables._entries if t is not None}.values():
            lst.fill(t, range(t.base_pfn >> self._tables.shift,
                              ((t.base_pfn + len(t.records) - 1) >> self._tables.shift) + 1))
        self._tables._per_section.append(lst)
        return lst.entries

    @property
    def section_shift(self) -> int:
        """``pfn >> section_shift`` indexes a ``per_section`` list."""
        return self._tables.shift

    def _client_table(self, t: Table) -> ClientTable:
        return ClientTable(t.base_pfn, len(t.records), t.raw, t.words, t.typed[self.name], self.offset,
                           self.record_size)

    def locate(self, pfn: int) -> tuple[memoryview, int, memoryview | None, int]:
        """``(bytes, byte offset of this client's region, words, flags word index)`` for ``pfn``.

        For ``struct.pack_into`` and word-wide flag updates on the hot path.
        Write only inside ``[offset, offset + size)`` and only your own bits;
        the conformance check verifies that you do.
        """
        t = self._table(pfn)
        rec = (pfn - t.base_pfn) * self.record_size
        return t.raw, rec + self.offset, t.words, rec >> 3
