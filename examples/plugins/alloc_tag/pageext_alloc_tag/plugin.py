"""The alloc_tag page_ext client (entry point ``alloc_tag`` in ``pageext.clients``).

Memory allocation profiling, as mainline's ``/proc/allocinfo``: how many
bytes and allocations every call site holds right now.  Off unless
``sysctl.vm.mem_profiling=1``; then every page has a 4-byte ``tag`` in
page_ext (2 bytes with ``,compressed``) naming the call site of the
allocation it heads.

How it stays cheap (the kernel's design, kept):

* no stack is recorded: an allocation costs one dict lookup (stack handle,
  or Python code object and line, → tag id), one write of the head page's
  tag, and one counter update (pages and calls share one int per tag);
* as in the kernel, only the **head page** of an allocation holds the tag,
  so an order-9 allocation costs what an order-0 one does; ``split_page``
  copies the tag to every new head (and counts each as a call, so freeing
  the pieces one by one balances);
* a free reads the tag back from the head page's record (never recomputed)
  and clears it, so a record is non-zero exactly while its block is live;
* migration swaps the two heads' tags, so the original call site keeps the
  moved block and the migration's own allocation cancels out when the old
  block is freed.

Tag 0 is "no tag": blocks allocated before this client's init (the page_ext
tables themselves) and, with ``,compressed``, call sites beyond the 2-byte
index space.  Their frees are counted, not charged.
"""
from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Mapping
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

import numpy as np

from pageext_alloc_tag import callsite, params
from pageext_alloc_tag.allocinfo import Row, format_allocinfo
from pageext_core import BootConfig, BootParam, hookimpl
from pageext_core.mm.constants import PAGE_SIZE

if TYPE_CHECKING:
    from pageext_core import ClientTable, PageExtView
    from pageext_core.mm import KernelLog, Machine

CLIENT = "alloc_tag"
FIELD = "tag"

# (numpy dtype, memoryview format, bit marking a page made by split_page)
REFERENCE = {False: ("u4", "I", 1 << 31), True: ("u2", "H", 1 << 15)}

CALLS_BITS = 32
CALLS_MASK = (1 << CALLS_BITS) - 1

_getframe = sys._getframe
_UNSEEN: Any = object()


class AllocTag:
    """Memory allocation profiling.  Off unless ``sysctl.vm.mem_profiling=1``.

    Besides the hooks: ``rows()`` (the allocinfo rows as data), ``tag_of(pfn)``
    and ``totals()``; get the object with ``page_ext.plugin("alloc_tag")``.
    """

    name = CLIENT

    def __init__(self) -> None:
        self.setting = params.DEFAULT
        self.compressed = False
        self.active = False
        # Tag id -> text and live counters; id 0 is "no tag" and is never printed.
        # A tag's counters are one int: live pages above bit 32, live calls below
        # (one list update per event instead of two; both parts stay >= 0).
        self.texts: list[str] = [""]
        self._count: list[int] = [0]
        self.untracked_frees = 0
        self._ids: dict[str, int] = {}
        self._by_handle: dict[int, int] = {}
        # Python callers: id(code) -> None for the allocator's own code, else
        # {line: tag}.  Keyed by id because CPython does not cache a code
        # object's hash (about a microsecond each time); the codes are kept
        # alive in _codes so that an id is never reused while it is a key.
        self._lines: dict[int, dict[int, int] | None] = {}
        self._codes: list[CodeType] = []
        self._sections: list[tuple | None] = []
        self._full_logged = False
        # What one allocation of each order adds: 2^order pages, one call.
        self._inc = [(1 << order << CALLS_BITS) | 1 for order in range(32)]

    # -- boot ------------------------------------------------------------------------------

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [params.boot_param()]

    @hookimpl
    def pageext_need(self, boot: BootConfig) -> bool:
        self.setting = str(boot[params.PARAM])
        self.compressed = params.compressed(self.setting)
        return params.enabled(self.setting)

    @hookimpl
    def pageext_fields(self, boot: BootConfig) -> Mapping[str, str]:
        return {FIELD: REFERENCE[params.compressed(str(boot[params.PARAM]))][0]}

    @hookimpl
    def pageext_init(self, view: PageExtView, machine: Machine, log: KernelLog) -> None:
        dtype, fmt, split = REFERENCE[self.compressed]
        size = np.dtype(dtype).itemsize
        field_off = view.dtype.fields[FIELD][1]
        if struct.calcsize(fmt) != size or view.record_size % size or field_off % size:
            raise RuntimeError(f"alloc_tag: tag at byte {field_off} of a {view.record_size}-byte record "
                               f"cannot be addressed as {size}-byte items")
        self._view = view
        self._machine = machine
        self._log = log
        self._fmt = fmt
        self._np_dtype = np.dtype(dtype)
        self._split = split
        self._max_tag = split - 1
        self._step = view.record_size // size  # items per record
        self._item = field_off // size  # the tag's item inside a record
        self._shift = view.section_shift
        # Where each table's tags are, per section; the view keeps it current through hotplug.
        self._sections = view.per_section(self._tags_of)
        self.active = True
        log.info(params.boot_message(self.setting))

    # -- where a pfn's tag lives ---------------------------------------------------------------

    def _tags_of(self, t: ClientTable) -> tuple:
        """``(items, step, k, tags, base)`` for one table.

        ``items[pfn * step + k]`` is the pfn's tag (one memoryview store on the
        hot path); ``tags[pfn - base]`` the same through numpy, for blocks.
        """
        items = t.raw.cast(self._fmt)
        k = self._item - t.base_pfn * self._step
        tags = np.frombuffer(t.raw, self._np_dtype)[self._item :: self._step]
        return (items, self._step, k, tags, t.base_pfn)

    def _load(self, pfn: int) -> tuple:
        """No table for ``pfn``: ``locate`` raises the ``NoExtension`` that says so."""
        self._view.locate(pfn)
        raise AssertionError("unreachable: a pfn with a table has a per_section entry")

    # -- call site -> tag id ---------------------------------------------------------------------

    def _intern(self, text: str) -> int:
        tag = self._ids.get(text)
        if tag is None:
            tag = len(self.texts)
            if tag > self._max_tag:
                self._table_full()
                return 0
            self._ids[text] = tag
            self.texts.append(text)
            self._count.append(0)
        return tag

    def _table_full(self) -> None:
        if not self._full_logged:
            self._full_logged = True
            bits = self._max_tag.bit_length()
            self._log.warn(f"alloc_tag: more than {self._max_tag} call sites cannot be referenced with a "
                           f"{bits}-bit tag; allocations from new call sites are not profiled")

    def _handle_tag(self, handle: int) -> int:
        tag = self._intern(callsite.kernel_tag(self._machine.depot.fetch(handle)))
        self._by_handle[handle] = tag
        return tag

    def _python_tag(self, f: FrameType | None) -> int:
        """The tag of the first frame outside the allocator, cached by code and line."""
        known = self._lines
        while f is not None:
            lines = known.get(id(f.f_code), _UNSEEN)
            if lines is None:  # the allocator's own frame
                f = f.f_back
                continue
            if lines is _UNSEEN:
                code = f.f_code
                self._codes.append(code)
                lines = known[id(code)] = None if callsite.is_allocator_module(f.f_globals.get("__name__")) else {}
                if lines is None:
                    continue
            tag = lines.get(f.f_lineno)
            if tag is None:
                tag = lines[f.f_lineno] = self._intern(callsite.python_tag(f))
            return tag
        return self._intern(callsite.python_tag(None))

    # -- hot path -----------------------------------------------------------------------------------

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
        """Charge the block to its call site: tag the head page, count bytes and one call."""
        # An explicit stack (workloads, machine.context) is a depot handle; the
        # machine offers no public read of it that does not capture a Python
        # stack into the depot, which is exactly the cost this client avoids.
        h = self._machine.explicit_stack
        tag = self._by_handle.get(h) if h else self._python_tag(_getframe(1))
        if tag is None:
            tag = self._handle_tag(h)
        items, step, k, _, _ = self._sections[pfn >> self._shift] or self._load(pfn)
        items[pfn * step + k] = tag
        self._count[tag] += self._inc[order]

    @hookimpl
    def pageext_on_free(self, pfn: int, order: int) -> None:
        """Uncharge the call site read back from the head page, and clear it."""
        items, step, k, tags, base = self._sections[pfn >> self._shift] or self._load(pfn)
        i = pfn * step + k
        tag = items[i]
        if not tag:
            self.untracked_frees += 1
            return
        items[i] = 0
        if tag & self._split:
            tag ^= self._split
            self._count[tag] -= (1 << order << CALLS_BITS) | (1 << order)
            if order:  # alloc_pages_exact frees its tail in aligned pieces; clear the rest too
                tags[pfn - base + 1 : pfn - base + (1 << order)] = 0
            return
        self._count[tag] -= self._inc[order]

    # -- rarer events ----------------------------------------------------------------------------------

    @hookimpl
    def pageext_on_split_page(self, pfn: int, order: int) -> None:
        """Every page becomes its own allocation: each gets the tag, and counts as a call."""
        ent = self._sections[pfn >> self._shift] or self._load(pfn)
        tag = ent[0][pfn * ent[1] + ent[2]]
        if not tag:
            return
        n = 1 << order
        i = pfn - ent[4]
        ent[3][i : i + n] = tag | self._split
        if not tag & self._split:
            self._count[tag] += n - 1  # the pages stay; the one call becomes n

    @hookimpl
    def pageext_on_migrate(self, old_pfn: int, new_pfn: int, order: int, reason: str) -> None:
        """Swap the heads' tags: the moved block stays charged to its original call site."""
        eo = self._sections[old_pfn >> self._shift] or self._load(old_pfn)
        en = self._sections[new_pfn >> self._shift] or self._load(new_pfn)
        io = old_pfn * eo[1] + eo[2]
        inew = new_pfn * en[1] + en[2]
        eo[0][io], en[0][inew] = en[0][inew], eo[0][io]

    # -- data ----------------------------------------------------------------------------------------------

    def rows(self) -> list[Row]:
        """Every call site seen, in first-seen order: (live bytes, live calls, tag text)."""
        return [Row((c >> CALLS_BITS) * PAGE_SIZE, c & CALLS_MASK, t) for c, t in zip(self._count[1:], self.texts[1:])]

    def tag_of(self, pfn: int) -> str | None:
        """The call site charged for the allocated block covering ``pfn``; None when untagged or not allocated."""
        m = self._machine
        if not m.is_allocated(pfn):
            return None
        head = m.page_kind(pfn).head
        ent = self._sections[head >> self._shift] or self._load(head)
        tag = ent[0][head * ent[1] + ent[2]] & self._max_tag
        return self.texts[tag] if tag else None

    def totals(self) -> tuple[int, int]:
        """(live bytes, live calls) over all call sites."""
        rows = self.rows()
        return sum(r.bytes for r in rows), sum(r.calls for r in rows)

    # -- reports and results -----------------------------------------------------------------------------------

    @hookimpl
    def pageext_report(self) -> Mapping[str, Callable[..., Any]]:
        return {"allocinfo": self.allocinfo}

    def allocinfo(self) -> str:
        """``/proc/allocinfo``."""
        return "".join(format_allocinfo(self.rows()))

    @hookimpl
    def pageext_summary(self) -> Mapping[str, Any]:
        live_bytes, live_calls = self.totals()
        return {
            "setting": self.setting,
            "reference_bytes": self._np_dtype.itemsize if self.active else 0,
            "tags": len(self.texts) - 1,
            "tags_in_use": sum(1 for c in self._count[1:] if c),
            "live_bytes": live_bytes,
            "live_calls": live_calls,
            "live_pages": live_bytes // PAGE_SIZE,
            "untracked_frees": self.untracked_frees,
            "unprofiled_allocations": self._count[0] & CALLS_MASK,
        }
