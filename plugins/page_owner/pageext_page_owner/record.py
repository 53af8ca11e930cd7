"""page_owner's per-page record and the allocator events that write it (the hot path).

The fields are mainline's ``struct page_owner``; only their order differs.
Everything an allocation writes is one contiguous run at the front of the
record and everything a free writes is the run after it, so each event is
one ``struct.pack_into`` per page for a small block (orders up to
``SMALL_ORDER``: four packs and four flag-word stores cost less than two
numpy calls), and for a larger one a pack on the head then one
numpy assignment copying that run to the other pages and one numpy OR of
their flag words.  Either way a page's own free history is never
overwritten by an allocation, as the kernel's per-page loop does not either.

Hot-path rules kept here: the event hooks take the full canonical argument
list (a subset would make the dispatcher wrap them in an adapter), read
``self`` attributes bound at init, find a table's ``Section`` with one list
index (``view.per_section``, kept current by the storage), and redo per-task
work (comm bytes) only when ``machine.current`` changes.

numpy is imported when the client is bound (``pageext_init``), not with the
module: listing the plugin (``pageext plugins``) does not load it.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple, NoReturn, cast

from pageext_core import hookimpl
from pageext_core.mm.constants import MIGRATE_REASONS

if TYPE_CHECKING:
    import numpy as np

    from pageext_core import ClientTable, PageExtView
    from pageext_core.mm import Machine, Task

# Field name -> numpy dtype, in record order (offsets relative to the client's region).
FIELDS: dict[str, str] = {
    # written on allocation: one run, bytes [0, ALLOC_BYTES)
    "ts_nsec": "<u8",
    "order": "<u2",
    "last_migrate_reason": "<i2",  # index into MIGRATE_REASONS, -1 = never migrated
    "gfp_mask": "<u4",
    "handle": "<u4",  # allocation stack (depot handle)
    "pid": "<i4",
    "tgid": "<i4",
    "comm": "S16",
    # written on free: the run after it, bytes [ALLOC_BYTES, RECORD_BYTES)
    "free_handle": "<u4",
    "free_ts_nsec": "<u8",
    "free_pid": "<i4",
    "free_tgid": "<i4",
}
FLAGS = ("OWNER", "OWNER_ALLOCATED")

# pid, tgid and comm change only with the task: packed once per task into one blob.
TASK_STRUCT = struct.Struct("<ii16s")
ALLOC_STRUCT = struct.Struct(f"<QHhII{TASK_STRUCT.size}s")  # ts, order, reason, gfp, handle, task blob
FREE_STRUCT = struct.Struct("<IQii")  # free handle, free ts, free pid, free tgid
ALLOC_BYTES = ALLOC_STRUCT.size  # 44
FREE_OFFSET = ALLOC_BYTES
FREE_BYTES = FREE_STRUCT.size  # 20
RECORD_BYTES = ALLOC_BYTES + FREE_BYTES  # 64
# Where each field must land for the structs above to be right (checked at init).
EXPECTED_OFFSETS = {
    "ts_nsec": 0, "order": 8, "last_migrate_reason": 10, "gfp_mask": 12, "handle": 16, "pid": 20,
    "tgid": 24, "comm": 28, "free_handle": 44, "free_ts_nsec": 48, "free_pid": 56, "free_tgid": 60,
}
# Blocks up to this order (four pages) are written page by page with struct
# and memoryview stores; larger ones with numpy, whose fixed cost per call
# (about 0.4 µs) is then spread over eight pages or more (measured: the
# page-by-page loop is 30% cheaper at order 2, 12% dearer at order 3).
SMALL_ORDER = 2


class OwnerRecord(NamedTuple):
    """One page's record as plain Python values (what reports format)."""

    pfn: int
    ts_nsec: int
    order: int
    last_migrate_reason: int
    gfp_mask: int
    handle: int
    pid: int
    tgid: int
    comm: bytes
    free_handle: int
    free_ts_nsec: int
    free_pid: int
    free_tgid: int

    @property
    def migrate_reason(self) -> str | None:
        """The last migrate reason's name, or None when the page never moved."""
        r = self.last_migrate_reason
        return MIGRATE_REASONS[r] if 0 <= r < len(MIGRATE_REASONS) else None

    @property
    def comm_text(self) -> str:
        return self.comm.decode("utf-8", "replace")


assert OwnerRecord._fields[1:] == tuple(FIELDS), "OwnerRecord must list FIELDS in record order"


class Runs(NamedTuple):
    """One table as numpy, for block copies: one element per record from pfn ``base``."""

    base: int
    alloc_runs: np.ndarray
    free_runs: np.ndarray
    flags: np.ndarray


# What ``section_of`` really hands the hot path: plain tuples of these shapes.
RunsTuple = tuple[int, "np.ndarray", "np.ndarray", "np.ndarray"]


class Section(NamedTuple):
    """Where one table's records are, for the hot path (one per table, kept by the view).

    A pfn's client bytes start at ``pfn * rs + kb`` in ``raw`` and its flags
    word is ``words[pfn * wpr + kw]``; ``runs`` serves block copies.  Seven
    items, unpacked on every event: the numpy ones are nested so that an
    order-0 event does not pay for them.
    """

    raw: memoryview
    words: memoryview
    rs: int
    kb: int
    wpr: int
    kw: int
    runs: RunsTuple  # a ``Runs``, as a plain tuple


SectionTuple = tuple[memoryview, memoryview, int, int, int, int, RunsTuple]


def section_of(t: ClientTable) -> SectionTuple:
    """A table's ``Section``, as a plain tuple (``view.per_section`` calls this once per table).

    Plain: unpacking an exact tuple takes CPython's fast path, a NamedTuple
    (a subclass) the slow one, which costs page_owner about 2% per event.
    """
    import numpy as np

    rs = t.record_size
    wpr = rs >> 3
    base = t.base_pfn
    runs = np.frombuffer(t.raw, np.dtype({
        "names": ["alloc", "free"], "formats": [f"V{ALLOC_BYTES}", f"V{FREE_BYTES}"],
        "offsets": [t.offset, t.offset + FREE_OFFSET], "itemsize": rs}))
    assert t.words is not None  # check_layout: records are whole words
    section = Section(t.raw, t.words, rs, t.offset - base * rs, wpr, -base * wpr,
                      cast(RunsTuple, tuple(Runs(base, runs["alloc"], runs["free"], np.frombuffer(t.raw, np.uint64)[::wpr]))))
    return cast(SectionTuple, tuple(section))


class OwnerEvents:
    """The allocator call-outs: page_owner's part of the hot path.

    ``bind`` is called from ``pageext_init`` with the client's view; until
    then no event can arrive (call-outs are installed after init).
    """

    _view: PageExtView
    _machine: Machine

    def bind(self, view: PageExtView, machine: Machine) -> None:
        """Bind the hot path's state to the view and the machine (``pageext_init`` calls it)."""
        import numpy as np

        check_layout(view)
        self._view = view
        self._machine = machine
        self._sections = view.per_section(section_of)
        self._shift = view.section_shift
        self._current_stack = machine.current_stack
        self._owner = view.flag("OWNER")
        self._allocated = view.flag("OWNER_ALLOCATED")
        self._both = self._owner | self._allocated
        self._keep_unallocated = ~self._allocated & 0xFFFFFFFFFFFFFFFF
        # 0-d arrays, not numpy scalars: the ufunc call is about a third cheaper.
        self._np_both = np.array(self._both, np.uint64)
        self._np_keep_unallocated = np.array(self._keep_unallocated, np.uint64)
        self._or = np.bitwise_or
        self._and = np.bitwise_and
        # A small block's other pages, as (record byte, flags word) steps from the head, by order.
        rs, wpr = view.record_size, view.record_size >> 3
        self._tails = [tuple((j * rs, j * wpr) for j in range(1, 1 << order)) for order in range(SMALL_ORDER + 1)]
        self._pack_alloc = ALLOC_STRUCT.pack_into
        self._pack_free = FREE_STRUCT.pack_into
        self._task: Task | None = None
        self._task_blob = b""
        self._pid = self._tgid = 0
        self.migrations = 0
        self.split_pages = 0

    def _switch_task(self, task: Task) -> None:
        """Per-task values, worked out once per task rather than per event."""
        self._task = task
        self._pid = task.pid
        self._tgid = task.tgid
        self._task_blob = TASK_STRUCT.pack(task.pid, task.tgid, task.comm.encode()[:15])

    # -- hot path ------------------------------------------------------------------

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
        """Record who allocated the block: every page of a small one packed, a large one's head packed and copied."""
        raw, words, rs, kb, wpr, kw, runs = self._sections[pfn >> self._shift] or self._none(pfn)
        m = self._machine
        if m.current is not self._task:
            self._switch_task(m.current)
        if not order:  # half of all events: no locals beyond what the one page needs
            self._pack_alloc(raw, pfn * rs + kb, m.clock_ns, 0, -1, gfp_mask, self._current_stack(), self._task_blob)
            words[pfn * wpr + kw] |= self._both
            return
        at = pfn * rs + kb
        wi = pfn * wpr + kw
        both = self._both
        if order <= SMALL_ORDER:
            pack = self._pack_alloc
            ts = m.clock_ns
            handle = self._current_stack()
            blob = self._task_blob
            pack(raw, at, ts, order, -1, gfp_mask, handle, blob)
            words[wi] |= both
            for dr, dw in self._tails[order]:
                pack(raw, at + dr, ts, order, -1, gfp_mask, handle, blob)
                words[wi + dw] |= both
            return
        self._pack_alloc(raw, at, m.clock_ns, order, -1, gfp_mask, self._current_stack(), self._task_blob)
        base, alloc_runs, _, flags = runs
        i = pfn - base
        end = i + (1 << order)
        alloc_runs[i + 1 : end] = alloc_runs[i : i + 1]
        seg = flags[i:end]
        self._or(seg, self._np_both, seg)

    @hookimpl
    def pageext_on_free(self, pfn: int, order: int) -> None:
        """Record who freed the block; the pages stay OWNER but are no longer OWNER_ALLOCATED."""
        raw, words, rs, kb, wpr, kw, runs = self._sections[pfn >> self._shift] or self._none(pfn)
        m = self._machine
        if m.current is not self._task:
            self._switch_task(m.current)
        if not order:
            self._pack_free(raw, pfn * rs + kb + FREE_OFFSET, self._current_stack(), m.clock_ns, self._pid, self._tgid)
            words[pfn * wpr + kw] &= self._keep_unallocated
            return
        at = pfn * rs + kb + FREE_OFFSET
        wi = pfn * wpr + kw
        keep = self._keep_unallocated
        if order <= SMALL_ORDER:
            pack = self._pack_free
            handle = self._current_stack()
            ts = m.clock_ns
            pid = self._pid
            tgid = self._tgid
            pack(raw, at, handle, ts, pid, tgid)
            words[wi] &= keep
            for dr, dw in self._tails[order]:
                pack(raw, at + dr, handle, ts, pid, tgid)
                words[wi + dw] &= keep
            return
        self._pack_free(raw, at, self._current_stack(), m.clock_ns, self._pid, self._tgid)
        base, _, free_runs, flags = runs
        i = pfn - base
        end = i + (1 << order)
        free_runs[i + 1 : end] = free_runs[i : i + 1]
        seg = flags[i:end]
        self._and(seg, self._np_keep_unallocated, seg)

    def _none(self, pfn: int) -> NoReturn:
        """No table for ``pfn``: ``locate`` raises the ``NoExtension`` that says so."""
        self._view.locate(pfn)
        raise AssertionError("unreachable: a pfn with a table has a per_section entry")

    # -- rarer events --------------------------------------------------------------------

    @hookimpl
    def pageext_on_split_page(self, pfn: int, order: int) -> None:
        """``split_page``: every page of the block becomes its own order-0 allocation."""
        self._view.block(pfn, order)["order"] = 0
        self.split_pages += 1 << order

    @hookimpl
    def pageext_on_migrate(self, old_pfn: int, new_pfn: int, order: int, reason: str) -> None:
        """6.12's ``__folio_copy_owner`` then ``set_page_owner_migrate_reason``.

        The new block was just allocated, so its records carry the migration
        target's allocation stack (the "migrate handle").  Every new page takes
        the old *head*'s allocation (stack, order, gfp, reason, pid, tgid,
        comm, ts); its free stack is left as it was (6.12 passes handle 0, so
        ``free_handle`` is not touched), its free ts is the old head's and its
        free pid/tgid the current task's.  The old pages take the migrate
        handle, so that freeing them releases that stack's pages, not the
        original's.  Only the new head records the reason.
        """
        view = self._view
        new = view.block(new_pfn, order)
        old = view.block(old_pfn, order)
        migrate_handle = int(new["handle"][0])
        head = old[0].copy()
        for field in ("ts_nsec", "order", "last_migrate_reason", "gfp_mask", "handle", "pid", "tgid", "comm"):
            new[field] = head[field]
        new["free_ts_nsec"] = head["free_ts_nsec"]
        task = self._machine.current
        new["free_pid"] = task.pid
        new["free_tgid"] = task.tgid
        old["handle"] = migrate_handle
        new["last_migrate_reason"][0] = MIGRATE_REASONS.index(reason)
        self.migrations += 1


def check_layout(view: PageExtView) -> None:
    """The structs assume our field offsets; fail loudly at boot if the core placed them otherwise."""
    fields = view.dtype.fields
    assert fields is not None  # a structured dtype
    got = {name: fields[name][1] - view.offset for name in FIELDS}
    if got != EXPECTED_OFFSETS or view.size != RECORD_BYTES:
        raise RuntimeError(f"page_owner: unexpected record layout {got} (size {view.size}); "
                           f"the hot path packs {EXPECTED_OFFSETS} (size {RECORD_BYTES})")
    if view.record_size % 8:
        raise RuntimeError(f"page_owner: record size {view.record_size} is not a multiple of the flags word")
