"""The buddy allocator: free lists per zone, order and migratetype.

Page state lives in two numpy arrays indexed by pfn, about five bytes per
simulated page, never a Python object per page:

- ``state`` (uint8): for the head page of every block, ``kind << 4 | order``;
  0 for tail pages, holes and offline memory.
- ``pflags`` (uint32): the page flags of allocated and reserved pages.  For
  the head of a *free* block the same word holds the block's index in its
  free list, as ``struct page`` reuses its words for buddy pages.

A free list is a numpy ``uint32`` stack of head pfns with a count; a block is
removed from the middle (when it merges with its buddy) by moving the last
entry into its slot, which the head's ``pflags`` word tells us.  The hot path
reads and writes these arrays through memoryviews, which cost half of what
numpy scalar indexing costs.

The allocator calls out to page_ext clients at the points the kernel does:
after an allocation completed, before a free is applied, when ``expand``
splits off a block (a client may hold it: guard pages) and when a freed block
meets a held buddy.  With nothing attached each point costs one truth test.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from pageext_core.mm import gfp as _gfp
from pageext_core.mm.callouts import EVENTS, Callouts, first_true
from pageext_core.mm.constants import (
    FALLBACKS,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_MOVABLE,
    ZONE_NORMAL,
)
from pageext_core.mm.errors import (
    BadPageState,
    DoubleFree,
    InvalidOrder,
    MMError,
    OrderMismatch,
    PlacementRefused,
)
from pageext_core.mm.geometry import _intersect, count_pages
from pageext_core.mm.gfp import format_gfp_mask, gfp_migratetype
from pageext_core.mm.pageflags import (
    PG_head,
    PG_locked,
    PG_mlocked,
    PG_reserved,
    PG_writeback,
    flag_names,
)

if TYPE_CHECKING:
    from pageext_core.mm.contents import PageContents
    from pageext_core.mm.context import Task
    from pageext_core.mm.geometry import Geometry
    from pageext_core.mm.printk import KernelLog

# gfp bits used inside class bodies, where a ``__GFP_*`` name would be mangled.
GFP_BIT_COMP = _gfp.__GFP_COMP
GFP_BIT_DMA = _gfp.__GFP_DMA
GFP_BIT_DMA32 = _gfp.__GFP_DMA32
GFP_BIT_HIGHMEM = _gfp.__GFP_HIGHMEM
GFP_BIT_MOVABLE = _gfp.__GFP_MOVABLE
GFP_BIT_NOWARN = _gfp.__GFP_NOWARN
GFP_BIT_THISNODE = _gfp.__GFP_THISNODE
GFP_BIT_ZERO = _gfp.__GFP_ZERO

# Block kinds, stored in the high nibble of ``state`` at a block's head pfn.
K_NONE = 0  # tail page, hole or offline memory
K_FREE = 1  # on a buddy free list
K_ALLOC = 2  # allocated, not movable
K_PCP = 3  # order-0 page on a per-CPU list
K_RESERVED = 4  # memblock reservation (never freed to the buddy)
K_HELD = 5  # split off by expand() and held by a page_ext client (guard pages)
K_ALLOC_MOVABLE = 6  # allocated with a movable migratetype (the kernel's LRU pages)
KIND_NAMES = ("none", "free", "allocated", "pcp", "reserved", "held", "allocated")



class PageKind(IntEnum):
    """What the block covering a pfn is (the public names of the ``K_*`` values)."""

    NONE = K_NONE  #: a hole, offline memory, or no block
    FREE = K_FREE  #: on a buddy free list
    ALLOCATED = K_ALLOC  #: allocated, not movable
    PCP = K_PCP  #: an order-0 page on a per-CPU list (free to the user)
    RESERVED = K_RESERVED  #: a memblock reservation
    HELD = K_HELD  #: split off by expand and held by a page_ext client (guard pages)
    ALLOCATED_MOVABLE = K_ALLOC_MOVABLE  #: allocated with a movable migratetype

    @property
    def label(self) -> str:
        """How reports name it ("free", "allocated", "held"...)."""
        return KIND_NAMES[self]

    @property
    def allocated(self) -> bool:
        return self in (PageKind.ALLOCATED, PageKind.ALLOCATED_MOVABLE)

    @property
    def free(self) -> bool:
        """Free from the user's point of view: in the buddy or on a per-CPU list."""
        return self in (PageKind.FREE, PageKind.PCP)


_KINDS = tuple(PageKind)


class PageBlock(NamedTuple):
    """The block covering a pfn: its kind, order and head pfn."""

    kind: PageKind
    order: int
    head: int


FREE_K = K_FREE << 4
ALLOC_K = K_ALLOC << 4
PCP_K = K_PCP << 4
RESV_K = K_RESERVED << 4
HELD_K = K_HELD << 4
ALLOCM_K = K_ALLOC_MOVABLE << 4

# A page freed with one of these set is a bug the kernel reports at once.
FLAGS_CHECK_AT_FREE = (1 << PG_locked) | (1 << PG_writeback) | (1 << PG_mlocked)

AllocHook = Callable[[int, int, int, int], object]
FreeHook = Callable[[int, int], object]


class HookError(MMError):
    """A page_ext client raised inside an allocator call-out.

    Names the client, the hook and the pfn; the allocator is consistent when
    this is raised (an allocation is undone, a free is not applied).
    """

    def __init__(self, owner: str, hook: str, pfn: int, order: int, exc: BaseException, undone: str) -> None:
        self.owner = owner
        self.hook = hook
        self.pfn = pfn
        self.order = order
        self.__cause__ = exc
        super().__init__(
            f"page_ext client {owner!r} raised in {hook} for pfn {pfn:#x} order {order}: "
            f"{type(exc).__name__}: {exc} ({undone})"
        )


def zone_batchsize(managed_pages: int) -> int:
    """The kernel's per-CPU batch: about a quarter of a 1/1024 share, a 2^n-1 value."""
    batch = min(managed_pages >> 10, (1 << 20) >> 12) // 4
    if batch < 1:
        batch = 1
    batch = batch + batch // 2
    return (1 << (batch.bit_length() - 1)) - 1 if batch > 1 else 1


class BuddyAllocator:
    """Allocator state and operations; ``Machine`` builds on it.

    The allocator owns its state (page state, pageblocks, free lists, per-CPU
    lists, counters) and every change to its free lists.  What it needs from
    the machine is declared below and provided by ``Machine`` before
    ``_init_allocator``: the geometry, the clock and CPU it charges and runs
    on, the current task (named in errors), the log (allocation failures),
    the page contents (``__GFP_ZERO``) and the machine's pfn check and page
    descriptions (errors in the kernel's words).
    """

    geometry: Geometry
    clock_ns: int
    cpu: int
    current: Task
    log: KernelLog
    contents: PageContents

    def check_pfn(self, pfn: int) -> None:
        """Raise ``InvalidPfn`` saying why a pfn is not usable memory (the machine's)."""
        raise NotImplementedError

    def describe_page(self, pfn: int) -> str:
        """A ``dump_page``-style description (the machine's)."""
        raise NotImplementedError

    def cpu_line(self) -> str:
        """``dump_stack``'s first line (the machine's)."""
        raise NotImplementedError

    def call_trace_lines(self) -> list[str]:
        """The current call trace (the machine's)."""
        raise NotImplementedError

    def dump_stack_lines(self) -> list[str]:
        """``dump_stack``'s lines: CPU, taint, hardware name, call trace (the machine's)."""
        raise NotImplementedError

    # -- set-up -----------------------------------------------------------

    def _init_allocator(self) -> None:
        g = self.geometry
        n = g.max_pfn
        self.max_order = g.max_order
        self.pageblock_order = g.pageblock_order
        self.nr_orders = g.max_order + 1
        # np.zeros maps fresh zero pages lazily: holes and untouched ranges
        # cost address space, not memory.
        self.state = np.zeros(n, np.uint8)
        self.pflags = np.zeros(n, np.uint32)
        self._st = memoryview(self.state)
        self._pf = memoryview(self.pflags)
        nblocks = (n + (1 << g.pageblock_order) - 1) >> g.pageblock_order
        self.pb_mt = np.full(nblocks, MIGRATE_MOVABLE, np.uint8)
        self.pb_zone = np.full(nblocks, 255, np.uint8)
        for z in g.zones:
            if z.spanned_pages:
                self.pb_zone[z.start_pfn >> g.pageblock_order : (z.end_pfn + (1 << g.pageblock_order) - 1) >> g.pageblock_order] = z.index
        self._pbmt = memoryview(self.pb_mt)
        self._pbz = memoryview(self.pb_zone)
        nz = len(g.zones)
        self.nr_zones = nz
        nlists = nz * MIGRATE_TYPES * self.nr_orders
        self._fl_arr: list[np.ndarray] = [np.zeros(0, np.uint32) for _ in range(nlists)]
        self._fl_mv: list[memoryview] = [memoryview(a) for a in self._fl_arr]
        self._fl_n: list[int] = [0] * nlists
        self._nonempty: list[int] = [0] * (nz * MIGRATE_TYPES)
        self.zone_free: list[int] = [0] * nz
        self.zone_held: list[int] = [0] * nz
        self.zone_present: list[int] = [0] * nz
        self.zone_reserved: list[int] = [0] * nz
        self.zone_pcp: list[int] = [0] * nz
        # Counters (the vmstat events we model).
        self.nr_allocs = 0
        self.nr_frees = 0
        self.nr_alloc_failures = 0
        self.alloc_failures_by_order = [0] * self.nr_orders
        self.nr_fallbacks = 0
        self.nr_pageblock_claims = 0
        # Call-outs: plain tuples bound from the machine's Callouts table (``bind_callouts``).
        self._on_alloc: tuple[AllocHook, ...] = ()
        self._on_free: tuple[FreeHook, ...] = ()
        self._on_split: Callable[[int, int, int], object] | None = None
        self._on_merge: Callable[[int, int], object] | None = None
        self._on_split_page: tuple[Callable[[int, int], object], ...] = ()
        self._callout_names: dict[int, tuple[str, str]] = {}
        self._deferred_hook_error: HookError | None = None
        self._gfp_cache: dict[int, tuple[int, tuple[tuple[int, ...], ...]]] = {}
        self.mobility_grouping = True
        self.op_cost_ns = 250  # simulated time per allocator operation

    def bind_callouts(self, callouts: Callouts) -> None:
        """Bind the allocator's events of a call-out table as plain tuples for the hot path."""
        names: dict[int, tuple[str, str]] = {}

        def fns(event: str) -> tuple[Callable[..., Any], ...]:
            entries = getattr(callouts, event)
            for c in entries:
                names[id(c.fn)] = (c.client, EVENTS[event])
            return tuple(c.fn for c in entries)

        self._on_alloc = fns("alloc")
        self._on_free = fns("free")
        self._on_split_page = fns("split_page")
        split, merge = fns("split"), fns("merge")
        self._on_split = first_true(split)
        self._on_merge = first_true(merge)
        for event, group, combined in (("split", callouts.split, self._on_split),
                                       ("merge", callouts.merge, self._on_merge)):
            if len(group) > 1:
                names[id(combined)] = ("+".join(c.client for c in group), EVENTS[event])
        self._callout_names = names

    def _init_pcp(self) -> None:
        """Per-CPU lists for order-0 pages, one per (cpu, zone, pcp migratetype)."""
        nz = self.nr_zones
        self.pcp_batch = [zone_batchsize(max(self.zone_present[z] - self.zone_reserved[z], 0)) for z in range(nz)]
        self.pcp_high = [6 * b for b in self.pcp_batch]
        self._pcp: list[list[list[int]]] = [
            [[] for _ in range(nz * MIGRATE_PCPTYPES)] for _ in range(self.geometry.config.cpus)
        ]
        self._build_zonelists()

    def _build_zonelists(self) -> None:
        """Zonelists per (node, highest zone type): own node high → low, then other nodes."""
        g = self.geometry
        nn = len(g.nodes)
        by_node: list[list[int]] = [[] for _ in range(nn)]
        for z in g.zones:
            by_node[z.node].append(z.index)
        self._zonelists: dict[tuple[int, int, bool], tuple[int, ...]] = {}
        for nid in range(nn):
            for top in (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE):
                order = [nid] + [(nid + k) % nn for k in range(1, nn)]
                for thisnode in (False, True):
                    zl = []
                    for node in order[:1] if thisnode else order:
                        for zi in reversed(by_node[node]):
                            zt = g.zones[zi].ztype
                            if zt <= top and self.zone_present[zi] > self.zone_reserved[zi]:
                                zl.append(zi)
                    self._zonelists[(nid, top, thisnode)] = tuple(zl)
        self._gfp_cache.clear()
        self._cpu_node = [self.cpu_to_node(c) for c in range(self.geometry.config.cpus)]

    def cpu_to_node(self, cpu: int) -> int:
        """CPUs are spread over nodes in blocks, as firmware usually numbers them."""
        nn = len(self.geometry.nodes)
        cpus = self.geometry.config.cpus
        return min(cpu * nn // cpus, nn - 1)

    def gfp_zone(self, gfp_mask: int) -> int:
        """Highest zone type a request may use."""
        if gfp_mask & GFP_BIT_DMA:
            return ZONE_DMA
        if gfp_mask & GFP_BIT_DMA32:
            return ZONE_DMA32
        if gfp_mask & (GFP_BIT_HIGHMEM | GFP_BIT_MOVABLE) == (GFP_BIT_HIGHMEM | GFP_BIT_MOVABLE):
            return ZONE_MOVABLE
        return ZONE_NORMAL

    def _resolve_gfp(self, gfp_mask: int) -> tuple[int, tuple[tuple[int, ...], ...]]:
        """(migratetype, zonelist per node) for a mask, cached: a mask is resolved once."""
        mt = gfp_migratetype(gfp_mask) if self.mobility_grouping else MIGRATE_UNMOVABLE
        if mt > MIGRATE_RECLAIMABLE:  # both movable bits set: not a valid request type
            mt = MIGRATE_MOVABLE
        top = self.gfp_zone(gfp_mask)
        thisnode = bool(gfp_mask & GFP_BIT_THISNODE)
        zls = tuple(self._zonelists[(nid, top, thisnode)] for nid in range(len(self.geometry.nodes)))
        info = (mt, zls)
        self._gfp_cache[gfp_mask] = info
        return info

    # -- free list primitives -------------------------------------------------

    def _push(self, zm: int, order: int, pfn: int) -> None:
        """Put a free block head on list (zone*MT+mt, order)."""
        li = zm * self.nr_orders + order
        n = self._fl_n[li]
        mv = self._fl_mv[li]
        if n == len(mv):
            mv = self._grow(li)
        mv[n] = pfn
        self._pf[pfn] = n
        self._fl_n[li] = n + 1
        if not n:
            self._nonempty[zm] |= 1 << order

    def _grow(self, li: int) -> memoryview:
        old = self._fl_arr[li]
        new = np.zeros(max(16, len(old) * 2), np.uint32)
        new[: len(old)] = old
        self._fl_arr[li] = new
        mv = self._fl_mv[li] = memoryview(new)
        return mv

    def _pop(self, zm: int, order: int) -> int:
        li = zm * self.nr_orders + order
        n = self._fl_n[li] - 1
        self._fl_n[li] = n
        pfn = self._fl_mv[li][n]
        if not n:
            self._nonempty[zm] &= ~(1 << order)
        self._pf[pfn] = 0
        return pfn

    def _remove(self, zm: int, order: int, pfn: int) -> None:
        """Take a block out of the middle of its list (its buddy is merging)."""
        li = zm * self.nr_orders + order
        pf = self._pf
        i = pf[pfn]
        n = self._fl_n[li] - 1
        self._fl_n[li] = n
        mv = self._fl_mv[li]
        last = mv[n]
        mv[i] = last
        pf[last] = i
        pf[pfn] = 0
        if not n:
            self._nonempty[zm] &= ~(1 << order)

    def nr_free(self, zone: int, order: int, migratetype: int) -> int:
        """Blocks on one free list (the kernel's ``free_area[order].nr_free`` per type)."""
        return self._fl_n[(zone * MIGRATE_TYPES + migratetype) * self.nr_orders + order]

    # -- allocation -------------------------------------------------------------

    def alloc_pages(self, gfp_mask: int, order: int = 0) -> int | None:
        """Allocate 2^order pages; the head pfn, or None when no zone can serve it.

        Order-0 requests go through the current CPU's per-CPU list.  A failure
        is counted and logged like the kernel's ``warn_alloc`` unless
        ``GFP_BIT_NOWARN``.
        """
        if order.__class__ is not int or order < 0 or order > self.max_order:
            raise InvalidOrder(order, self.max_order)
        info = self._gfp_cache.get(gfp_mask)
        if info is None:
            if gfp_mask.__class__ is not int or gfp_mask < 0:
                raise TypeError(f"gfp_mask must be a non-negative int (use parse_gfp), got {gfp_mask!r}")
            info = self._resolve_gfp(gfp_mask)
        mt = info[0]
        pfn = -1
        if order:
            for zone in info[1][self._cpu_node[self.cpu]]:
                pfn = self._rmqueue(zone, order, mt)
                if pfn >= 0:
                    break
        else:
            pcp = self._pcp[self.cpu]
            for zone in info[1][self._cpu_node[self.cpu]]:
                pl = pcp[zone * 3 + mt]
                if not pl:
                    self._pcp_refill(zone, mt, pl)
                    if not pl:
                        continue
                pfn = pl.pop()
                self.zone_pcp[zone] -= 1
                break
        self.clock_ns += self.op_cost_ns
        if pfn < 0:
            self._alloc_failed(gfp_mask, order)
            return None
        self._st[pfn] = (ALLOCM_K if mt == MIGRATE_MOVABLE else ALLOC_K) | order
        if order and gfp_mask & GFP_BIT_COMP:
            self._pf[pfn] = 1 << PG_head
        self.nr_allocs += 1
        if self._deferred_hook_error is not None:
            self._undo_alloc(pfn, order, self._deferred_hook_error)
        hooks = self._on_alloc
        if hooks:
            try:
                for h in hooks:
                    h(pfn, order, gfp_mask, mt)
            except Exception as exc:  # a client bug: undo, then report it
                self._undo_alloc(pfn, order, self._hook_error(h, "on_alloc", pfn, order, exc, "the allocation was undone"))
        if gfp_mask & GFP_BIT_ZERO:
            # After the call-outs, as post_alloc_hook checks poison before zeroing.
            self.contents.zero(pfn, 1 << order)
        return pfn

    def alloc_pages_at(self, pfn: int, order: int, gfp_mask: int) -> int:
        """Allocate exactly [pfn, pfn + 2^order), as a replayed kernel trace says it was; returns ``pfn``.

        Only when every page of the range is free: the free buddy block that
        holds it is taken off its list and split down (the other halves go
        back on the lists of their pageblock's migratetype; no split call-out,
        so no guard page is made where a trace says memory was), pages on
        per-CPU lists are taken from them.  Then the same post-allocation path
        as ``alloc_pages`` runs (page state, compound head, call-outs, zeroing).
        Anything in the way raises ``PlacementRefused`` with nothing changed.
        """
        if order.__class__ is not int or order < 0 or order > self.max_order:
            raise InvalidOrder(order, self.max_order)
        info = self._gfp_cache.get(gfp_mask)
        if info is None:
            if gfp_mask.__class__ is not int or gfp_mask < 0:
                raise TypeError(f"gfp_mask must be a non-negative int (use parse_gfp), got {gfp_mask!r}")
            info = self._resolve_gfp(gfp_mask)
        mt = info[0]
        size = 1 << order
        end = pfn + size
        if pfn.__class__ is not int or pfn < 0 or end > self.geometry.max_pfn:
            raise PlacementRefused(pfn, order, f"outside memory (pfns 0..{self.geometry.max_pfn - 1:#x})")
        if pfn & (size - 1):
            raise PlacementRefused(pfn, order, f"not aligned to its order (a block of {size} pages starts at a "
                                               f"multiple of {size})")
        st = self._st
        pbo = self.pageblock_order
        # What covers the range: one free block holding it, or free blocks and per-CPU pages inside it.
        pieces: list[tuple[int, int]] = []  # (head, order) of free blocks; order -1: a per-CPU page
        p = pfn
        while p < end:
            s = st[p]
            if s >> 4 == K_FREE:
                o = s & 15
                pieces.append((p, o))
                p += 1 << o
                continue
            if s == PCP_K:
                pieces.append((p, -1))
                p += 1
                continue
            kind, o, head = self.page_kind(p)
            if kind == K_FREE and head < pfn:  # a larger free block holds the whole range
                pieces.append((head, o))
                break
            what = {K_ALLOC: "allocated", K_ALLOC_MOVABLE: "allocated", K_RESERVED: "reserved",
                    K_HELD: "held by a page_ext client (a guard page)"}.get(kind)
            if what is None:
                try:
                    self.check_pfn(p)
                    what = "not a page of any block"
                except MMError as exc:
                    what = str(exc).split(": ", 1)[-1]
                    what = "in a hole" if "hole" in what else what
            if kind != K_NONE and head != p:
                what += f" (part of the order-{o} block at {head:#x})"
            raise PlacementRefused(pfn, order, f"page {p:#x} is {what}")
        pbmt = self._pbmt
        for head, o in pieces:
            z = self._pbz[head >> pbo]
            if o < 0:
                for lists in self._pcp:
                    for idx in range(z * MIGRATE_PCPTYPES, (z + 1) * MIGRATE_PCPTYPES):
                        pl = lists[idx]
                        if pl and head in pl:
                            pl.remove(head)
                            break
                    else:
                        continue
                    break
                self.zone_pcp[z] -= 1
                st[head] = 0
                continue
            self._remove(z * MIGRATE_TYPES + pbmt[head >> pbo], o, head)
            self.zone_free[z] -= 1 << o
            st[head] = 0
            # split down to the range: the halves that do not hold it go back as free blocks
            while o > order:
                o -= 1
                half = head + (1 << o)
                if pfn >= half:
                    head, half = half, head
                st[half] = FREE_K | o
                self._push(z * MIGRATE_TYPES + pbmt[half >> pbo], o, half)
                self.zone_free[z] += 1 << o
        self.clock_ns += self.op_cost_ns
        # the post-allocation path of alloc_pages
        st[pfn] = (ALLOCM_K if mt == MIGRATE_MOVABLE else ALLOC_K) | order
        if order and gfp_mask & GFP_BIT_COMP:
            self._pf[pfn] = 1 << PG_head
        self.nr_allocs += 1
        hooks = self._on_alloc
        if hooks:
            try:
                for h in hooks:
                    h(pfn, order, gfp_mask, mt)
            except Exception as exc:
                self._undo_alloc(pfn, order, self._hook_error(h, "on_alloc", pfn, order, exc, "the allocation was undone"))
        if gfp_mask & GFP_BIT_ZERO:
            self.contents.zero(pfn, size)
        return pfn

    def _undo_alloc(self, pfn: int, order: int, err: HookError) -> None:
        self._deferred_hook_error = None
        self.nr_allocs -= 1
        self._release(pfn, order)
        raise err

    def _hook_error(self, h: object, hook: str, pfn: int, order: int, exc: BaseException, undone: str) -> HookError:
        h = getattr(exc, "__pageext_hook__", h)  # a combined split/merge call-out names the one that raised
        owner, name = self._callout_names.get(id(h), (getattr(h, "__qualname__", repr(h)), hook))
        return HookError(owner, name, pfn, order, exc, undone)

    def _alloc_failed(self, gfp_mask: int, order: int) -> None:
        self.nr_alloc_failures += 1
        self.alloc_failures_by_order[order] += 1
        if not gfp_mask & GFP_BIT_NOWARN:
            # warn_alloc: the headline (with the task's cpuset and allowed nodes), then its stack.
            nodes = len(self.geometry.nodes)
            mems = "0" if nodes == 1 else f"0-{nodes - 1}"
            self.log.warn_ratelimited(
                "warn_alloc",
                "\n".join([f"{self.current.comm}: page allocation failure: order:{order}, "
                           f"mode:{format_gfp_mask(gfp_mask)}, nodemask=(null),cpuset=/,mems_allowed={mems}",
                           *self.dump_stack_lines()]),
            )

    def _rmqueue(self, zone: int, order: int, mt: int) -> int:
        """Take a 2^order block from a zone's buddy lists, falling back to other types."""
        zm = zone * MIGRATE_TYPES + mt
        avail = self._nonempty[zm] >> order
        if avail:
            cur = order + (avail & -avail).bit_length() - 1
            pfn = self._pop(zm, cur)
            self.zone_free[zone] -= 1 << cur
            if cur != order:
                self._expand(zone, pfn, order, cur, mt)
            return pfn
        return self._rmqueue_fallback(zone, order, mt)

    def _expand(self, zone: int, pfn: int, low: int, high: int, mt: int) -> None:
        """Split a 2^high block down to 2^low, freeing (or handing out) the upper halves."""
        zm = zone * MIGRATE_TYPES + mt
        st = self._st
        split = self._on_split
        while high > low:
            high -= 1
            half = pfn + (1 << high)
            if split is not None:
                try:
                    held = split(half, high, mt)
                except Exception as exc:
                    held = False
                    if self._deferred_hook_error is None:
                        self._deferred_hook_error = self._hook_error(
                            split, "on_split", half, high, exc, "the allocation was undone")
                if held:
                    st[half] = HELD_K | high
                    self.zone_held[zone] += 1 << high
                    continue
            st[half] = FREE_K | high
            self._push(zm, high, half)
            self.zone_free[zone] += 1 << high

    def _rmqueue_fallback(self, zone: int, order: int, start_mt: int) -> int:
        """Steal from another migratetype; claim whole pageblocks when it pays.

        Claiming walks from the largest free block down (so a big block is
        converted rather than many small ones polluted); when no block can be
        claimed, the smallest suitable block of another type is stolen and the
        pageblock becomes mixed.
        """
        if start_mt >= MIGRATE_PCPTYPES:
            return -1
        ne = self._nonempty
        base = zone * MIGRATE_TYPES
        fallbacks = FALLBACKS[start_mt]
        pbo = self.pageblock_order
        for cur in range(self.max_order, order - 1, -1):
            if not (cur >= pbo // 2 or start_mt != MIGRATE_MOVABLE or not self.mobility_grouping):
                break
            for fmt in fallbacks:
                if ne[base + fmt] >> cur & 1:
                    pfn = self._try_claim(zone, cur, order, start_mt, fmt)
                    if pfn >= 0:
                        self.nr_fallbacks += 1
                        return pfn
        for cur in range(order, self.max_order + 1):
            for fmt in fallbacks:
                if ne[base + fmt] >> cur & 1:
                    pfn = self._pop(base + fmt, cur)
                    self.zone_free[zone] -= 1 << cur
                    if cur != order:
                        self._expand(zone, pfn, order, cur, fmt)
                    self.nr_fallbacks += 1
                    return pfn
        return -1

    def _try_claim(self, zone: int, cur: int, order: int, start_mt: int, block_mt: int) -> int:
        base = zone * MIGRATE_TYPES
        pbo = self.pageblock_order
        li = (base + block_mt) * self.nr_orders + cur
        pfn = self._fl_mv[li][self._fl_n[li] - 1]
        if cur >= pbo:
            self._pop(base + block_mt, cur)
            self.zone_free[zone] -= 1 << cur
            self.pb_mt[pfn >> pbo : (pfn + (1 << cur)) >> pbo] = start_mt
            self.nr_pageblock_claims += (1 << cur) >> pbo
            if cur != order:
                self._expand(zone, pfn, order, cur, start_mt)
            return pfn
        pb = pfn >> pbo
        start = pb << pbo
        seg = self.state[start : start + (1 << pbo)]
        kinds = seg >> 4
        sizes = np.left_shift(1, (seg & 15).astype(np.int64))
        free_pages = int(sizes[kinds == K_FREE].sum())
        movable_pages = int(sizes[kinds == K_ALLOC_MOVABLE].sum())
        if start_mt == MIGRATE_MOVABLE:
            alike = movable_pages
        elif block_mt == MIGRATE_MOVABLE:
            alike = (1 << pbo) - free_pages - movable_pages
        else:
            alike = 0
        if free_pages + alike < (1 << (pbo - 1)) and self.mobility_grouping:
            return -1
        self._move_freepages_block(zone, pb, block_mt, start_mt)
        self.nr_pageblock_claims += 1
        return self._rmqueue(zone, order, start_mt)

    def _move_freepages_block(self, zone: int, pb: int, old_mt: int, new_mt: int) -> None:
        """Re-type a pageblock and move its free blocks to the new type's lists."""
        pbo = self.pageblock_order
        start = pb << pbo
        seg = self.state[start : start + (1 << pbo)]
        heads = np.flatnonzero((seg >> 4) == K_FREE)
        base = zone * MIGRATE_TYPES
        st = self._st
        for off in heads.tolist():
            pfn = start + off
            o = st[pfn] & 15
            self._remove(base + old_mt, o, pfn)
            self._push(base + new_mt, o, pfn)
        self._pbmt[pb] = new_mt

    # -- whole ranges: boot, hotplug, isolation -----------------------------------------

    def free_ranges(self, ranges: Sequence[tuple[int, int]], *, tail: bool = False) -> None:
        """Hand page ranges to the buddy as maximal aligned free blocks (boot, hot-add), vectorised.

        The pages must be present and belong to no block.  No call-out is made.

        Lists are filled so that the lowest pfns are handed out first, as the
        kernel's boot-time frees to the list tails make happen.  With
        ``tail`` (hot-added memory, as since Linux 5.10) the new blocks go
        below what is already listed, so they are used last.
        """
        maxo = self.max_order
        big = 1 << maxo
        pbo = self.pageblock_order
        per_list: dict[tuple[int, int], list[np.ndarray]] = {}
        for s, e in ranges:
            for zs, ze, zi in self._split_by_zone(s, e):
                a = min(-(-zs // big) * big, ze)
                b = max(a, ze // big * big)
                edge = []
                for lo, hi in ((zs, a), (b, ze)):
                    p = lo
                    while p < hi:
                        o = 0
                        while o < maxo and p & ((2 << o) - 1) == 0 and p + (2 << o) <= hi:
                            o += 1
                        edge.append((p, o))
                        p += 1 << o
                if b > a:
                    heads = np.arange(a, b, big, dtype=np.int64)
                    self.state[heads] = FREE_K | maxo
                    per_list.setdefault((zi, maxo), []).append(heads)
                    self.zone_free[zi] += b - a
                for p, o in edge:
                    self._st[p] = FREE_K | o
                    per_list.setdefault((zi, o), []).append(np.array([p], np.int64))
                    self.zone_free[zi] += 1 << o
                self.pb_mt[zs >> pbo : (ze + (1 << pbo) - 1) >> pbo] = MIGRATE_MOVABLE
        for (zi, o), parts in per_list.items():
            zm = zi * MIGRATE_TYPES + MIGRATE_MOVABLE
            li = zm * self.nr_orders + o
            heads = np.sort(np.concatenate(parts))[::-1]
            n0 = self._fl_n[li]
            need = n0 + len(heads)
            if need > len(self._fl_arr[li]):
                grown = np.zeros(max(16, need), np.uint32)
                grown[:n0] = self._fl_arr[li][:n0]
                self._fl_arr[li] = grown
                self._fl_mv[li] = memoryview(grown)
            arr = self._fl_arr[li]
            if tail and n0:
                # The stack is popped from its end: put the new blocks at its start.
                arr[len(heads):need] = arr[:n0].copy()
                arr[: len(heads)] = heads
                self.pflags[arr[:need].astype(np.int64)] = np.arange(need, dtype=np.uint32)
            else:
                arr[n0:need] = heads
                self.pflags[heads] = np.arange(n0, need, dtype=np.uint32)
            self._fl_n[li] = need
            self._nonempty[zm] |= 1 << o

    def _split_by_zone(self, s: int, e: int) -> list[tuple[int, int, int]]:
        out = []
        for z in self.geometry.zones:
            lo, hi = max(s, z.start_pfn), min(e, z.end_pfn)
            if lo < hi:
                out.append((lo, hi, z.index))
        return out

    def _retype(self, start: int, end: int, mts: np.ndarray) -> None:
        """Give the block's pageblocks these migratetypes; its free blocks move to the matching lists."""
        pbo = self.pageblock_order
        first = start >> pbo
        pbmt = self._pbmt
        moved = []
        for off in np.flatnonzero((self.state[start:end] >> 4) == K_FREE).tolist():
            p = start + off
            o = self._st[p] & 15
            zi = self._pbz[p >> pbo]
            self._remove(zi * MIGRATE_TYPES + pbmt[p >> pbo], o, p)  # a free block's list is its pageblock's type
            moved.append((p, o, zi))
        self.pb_mt[first : first + len(mts)] = mts
        for p, o, zi in moved:
            mt = pbmt[p >> pbo]
            if o >= pbo:  # a free block over several pageblocks has one type
                self.pb_mt[p >> pbo : (p + (1 << o)) >> pbo] = mt
            self._push(zi * MIGRATE_TYPES + mt, o, p)

    def reserve_ranges(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Boot: mark memblock reservations (never freed to the buddy) and count them in their zones."""
        for s, e in ranges:
            self.state[s:e] = RESV_K
            self.pflags[s:e] = 1 << PG_reserved
            for z in self.geometry.zones:
                self.zone_reserved[z.index] += count_pages(_intersect([(s, e)], z.start_pfn, z.end_pfn))

    def free_list_bytes(self) -> int:
        """Host bytes of the free lists' arrays."""
        return sum(a.nbytes for a in self._fl_arr)

    def add_memory(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Hot-added memory: count it present in its zones and free it to the buddy (used last)."""
        for z in self.geometry.zones:
            self.zone_present[z.index] += count_pages(_intersect(ranges, z.start_pfn, z.end_pfn))
        self.free_ranges(ranges, tail=True)
        self._build_zonelists()

    def remove_memory(self, start: int, end: int, ranges: Sequence[tuple[int, int]]) -> None:
        """Offlined memory: ``[start, end)`` (present in ``ranges``) leaves the free lists and its zones.

        Every page must be free or belong to no block (the caller checked).
        """
        self.take_free_range(start, end)
        for z in self.geometry.zones:
            self.zone_present[z.index] -= count_pages(_intersect(ranges, z.start_pfn, z.end_pfn))
        self.pflags[start:end] = 0
        self._build_zonelists()

    def isolate_range(self, start: int, end: int) -> np.ndarray:
        """MIGRATE_ISOLATE the pageblocks of ``[start, end)``: their free memory is never handed out.

        Returns the old types, for ``unisolate_range``.
        """
        pbo = self.pageblock_order
        saved = self.pb_mt[start >> pbo : ((end - 1) >> pbo) + 1].copy()
        self._retype(start, end, np.full(len(saved), MIGRATE_ISOLATE, np.uint8))
        return saved

    def unisolate_range(self, start: int, end: int, saved: np.ndarray) -> None:
        """Give the pageblocks of ``[start, end)`` back the types ``isolate_range`` returned."""
        self._retype(start, end, saved)

    def take_free_range(self, start: int, end: int) -> int:
        """Take every free page of ``[start, end)`` off the buddy free lists; the number of pages taken.

        A free block that reaches outside the range is split as ``expand``
        splits: its pieces outside the range go back on the free lists (of the
        same zone and type), its pages inside are taken.  Pages of the range
        that are not on a buddy free list (allocated, per-CPU, held, holes)
        are left as they are.  Taken pages belong to no block afterwards
        (state 0): the caller gives them one (an exact-placement allocation)
        or removes them (offlining).  Pageblock types are not changed.
        """
        start, end = max(start, 0), min(end, len(self.state))  # a memory block may reach past max_pfn
        if start >= end:
            return 0
        st = self._st
        pbo = self.pageblock_order
        taken = 0
        for edge in (start, end - 1):
            head = self.block_head(edge)
            if head is None:
                continue
            s = st[head]
            order = s & 15
            if s >> 4 != K_FREE or (head >= start and head + (1 << order) <= end):
                continue
            zone = self._pbz[head >> pbo]
            zm = zone * MIGRATE_TYPES + self._pbmt[head >> pbo]
            self._remove(zm, order, head)
            self.zone_free[zone] -= 1 << order
            st[head] = 0
            lo, hi = max(head, start), min(head + (1 << order), end)
            taken += hi - lo
            for a, b in ((head, lo), (hi, head + (1 << order))):
                p = a
                while p < b:  # the outside piece, as maximal aligned blocks
                    o = 0
                    while p & ((2 << o) - 1) == 0 and p + (2 << o) <= b:
                        o += 1
                    st[p] = FREE_K | o
                    self._push(zm, o, p)
                    self.zone_free[zone] += 1 << o
                    p += 1 << o
        for off in np.flatnonzero((self.state[start:end] >> 4) == K_FREE).tolist():
            p = start + off
            o = st[p] & 15
            zone = self._pbz[p >> pbo]
            self._remove(zone * MIGRATE_TYPES + self._pbmt[p >> pbo], o, p)
            self.zone_free[zone] -= 1 << o
            st[p] = 0
            taken += 1 << o
        return taken

    # -- per-CPU lists ------------------------------------------------------------

    def _pcp_refill(self, zone: int, mt: int, pl: list[int]) -> None:
        st = self._st
        for _ in range(self.pcp_batch[zone]):
            pfn = self._rmqueue(zone, 0, mt)
            if pfn < 0:
                break
            st[pfn] = PCP_K
            pl.append(pfn)
        pl.reverse()  # hand out in the order they left the buddy lists
        self.zone_pcp[zone] += len(pl)

    def _pcp_free(self, pfn: int, zone: int) -> None:
        mt = self._pbmt[pfn >> self.pageblock_order]
        if mt >= MIGRATE_PCPTYPES:
            if mt == MIGRATE_ISOLATE:
                self._free_one(pfn, 0, zone)
                return
            mt = MIGRATE_MOVABLE
        pl = self._pcp[self.cpu][zone * 3 + mt]
        self._st[pfn] = PCP_K
        pl.append(pfn)
        self.zone_pcp[zone] += 1
        if len(pl) > self.pcp_high[zone]:
            batch = self.pcp_batch[zone]
            cold = pl[:batch]
            del pl[:batch]
            self.zone_pcp[zone] -= len(cold)
            for p in cold:
                self._free_one(p, 0, zone)

    def drain_all_pages(self) -> int:
        """Return every per-CPU page to the buddy lists; the number of pages moved."""
        moved = 0
        for lists in self._pcp:
            for idx, pl in enumerate(lists):
                if not pl:
                    continue
                zone = idx // 3
                cold = pl[:]
                pl.clear()
                self.zone_pcp[zone] -= len(cold)
                for p in cold:
                    self._free_one(p, 0, zone)
                moved += len(cold)
        return moved

    # -- free -----------------------------------------------------------------------

    def free_pages(self, pfn: int, order: int = 0) -> None:
        """Free a block allocated with ``alloc_pages(..., order)``.

        A pfn outside memory, a block that is not allocated, a wrong order, a
        double free or a page freed while locked/under writeback raise (the
        kernel's ``Bad page state``) and change nothing.
        """
        if pfn.__class__ is not int or pfn < 0 or pfn >= self.geometry.max_pfn:
            self._bad_free(pfn, order)
        s = self._st[pfn]
        if (s != ALLOC_K | order and s != ALLOCM_K | order) or self._pf[pfn] & FLAGS_CHECK_AT_FREE:
            self._bad_free(pfn, order)
        self.clock_ns += self.op_cost_ns  # before the call-outs: a free has its own timestamp
        hooks = self._on_free
        if hooks:
            try:
                for h in hooks:
                    h(pfn, order)
            except Exception as exc:
                raise self._hook_error(h, "on_free", pfn, order, exc, "the block stays allocated") from exc
        self.nr_frees += 1
        self._release(pfn, order)
        err = self._deferred_hook_error
        if err is not None:
            self._deferred_hook_error = None
            raise err

    def _release(self, pfn: int, order: int) -> None:
        """Return an allocated block to the buddy (no call-outs)."""
        zone = self._pbz[pfn >> self.pageblock_order]
        if order:
            self.pflags[pfn : pfn + (1 << order)] = 0
            self._free_one(pfn, order, zone)
        else:
            self._pf[pfn] = 0
            self._pcp_free(pfn, zone)

    def _free_one(self, pfn: int, order: int, zone: int, to_tail: bool = False) -> None:
        """``__free_one_page``: merge with free (or held) buddies, then list the block (at the tail: FPI_TO_TAIL)."""
        st = self._st
        pbo = self.pageblock_order
        pbmt = self._pbmt
        mt = pbmt[pfn >> pbo]
        maxo = self.max_order
        base = zone * MIGRATE_TYPES
        st[pfn] = 0
        while order < maxo:
            buddy = pfn ^ (1 << order)
            s = st[buddy]
            if s != FREE_K | order:
                if s != HELD_K | order or not self._release_held(buddy, order, zone):
                    break
            else:
                bmt = pbmt[buddy >> pbo]
                if order >= pbo and bmt != mt and (bmt >= MIGRATE_HIGHATOMIC or mt >= MIGRATE_HIGHATOMIC):
                    break
                self._remove(base + bmt, order, buddy)
                self.zone_free[zone] -= 1 << order
                if bmt != mt:
                    self.pb_mt[buddy >> pbo : (buddy + (1 << order)) >> pbo] = mt
            st[buddy] = 0
            pfn &= ~(1 << order)
            order += 1
        st[pfn] = FREE_K | order
        if to_tail:
            self._push_tail(base + mt, order, pfn)
        else:
            self._push(base + mt, order, pfn)
        self.zone_free[zone] += 1 << order

    def _push_tail(self, zm: int, order: int, pfn: int) -> None:
        """Put a free block head at the tail of its list (popped last): FPI_TO_TAIL."""
        li = zm * self.nr_orders + order
        n = self._fl_n[li]
        if n == len(self._fl_arr[li]):
            self._grow(li)
        arr = self._fl_arr[li]
        arr[1 : n + 1] = arr[:n].copy()
        arr[0] = pfn
        self.pflags[arr[: n + 1].astype(np.int64)] = np.arange(n + 1, dtype=np.uint32)
        self._fl_n[li] = n + 1
        if not n:
            self._nonempty[zm] |= 1 << order

    def _release_held(self, pfn: int, order: int, zone: int) -> bool:
        """A freed block meets a held buddy (a guard): ask its holder to let go."""
        merge = self._on_merge
        if merge is None:
            return False
        try:
            ok = merge(pfn, order)
        except Exception as exc:
            if self._deferred_hook_error is None:
                self._deferred_hook_error = self._hook_error(
                    merge, "on_merge", pfn, order, exc, "the free was applied without this merge")
            return False
        if ok:
            self.zone_held[zone] -= 1 << order
        return bool(ok)

    def _bad_free(self, pfn: object, order: object) -> None:
        """Work out why a free is wrong and raise it in the kernel's words."""
        if order.__class__ is not int or not 0 <= order <= self.max_order:  # type: ignore[operator]
            raise InvalidOrder(order, self.max_order)
        if pfn.__class__ is not int:
            raise TypeError(f"pfn must be an int, got {pfn!r}")
        assert isinstance(pfn, int) and isinstance(order, int)
        self.check_pfn(pfn)
        comm = self.current.comm
        s = self._st[pfn]
        kind, korder = s >> 4, s & 15
        dump = self.describe_page(pfn)
        if kind in (K_ALLOC, K_ALLOC_MOVABLE):
            if korder != order:
                raise OrderMismatch(pfn, "free with the wrong order", f"order {korder}", f"order {order}", comm, dump)
            bad = self._pf[pfn] & FLAGS_CHECK_AT_FREE
            raise BadPageState(pfn, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set", "no " + "|".join(flag_names(FLAGS_CHECK_AT_FREE)),
                               "|".join(flag_names(bad)), comm, dump)
        if kind in (K_FREE, K_PCP):
            raise DoubleFree(pfn, "double free", "an allocated block", "a free page" + (" on a per-CPU list" if kind == K_PCP else ""), comm, dump)
        if kind == K_RESERVED:
            raise BadPageState(pfn, "freeing a reserved page", "an allocated block", "a reserved page", comm, dump)
        if kind == K_HELD:
            raise BadPageState(pfn, "freeing a page held by a page_ext client", "an allocated block", "a held (guard) block", comm, dump)
        head = self.block_head(pfn)
        if head is not None:
            hs = self._st[head]
            raise BadPageState(pfn, "freeing a tail page", "the head of an allocated block",
                               f"page {pfn - head} of a {KIND_NAMES[hs >> 4]} order-{hs & 15} block at pfn {head:#x}", comm, dump)
        raise BadPageState(pfn, "freeing a page that is not allocated", "an allocated block", "no block", comm, dump)

    # -- queries ----------------------------------------------------------------------

    def block_head(self, pfn: int) -> int | None:
        """Head pfn of the block covering ``pfn`` (free, allocated, held...), or None."""
        # Tail pages have state 0, so the first non-empty state found while
        # aligning pfn down to ever larger orders is the only block that can
        # cover it: it does when its order reaches that alignment.
        st = self._st
        for o in range(self.max_order + 1):
            head = pfn & ~((1 << o) - 1)
            s = st[head]
            if s and (s & 15) >= o:
                return head
        return None

    def page_kind(self, pfn: int) -> PageBlock:
        """``PageBlock(kind, order, head)`` of the block covering ``pfn``; kind ``PageKind.NONE`` when none."""
        head = self.block_head(pfn)
        if head is None:
            return PageBlock(PageKind.NONE, 0, pfn)
        s = self._st[head]
        return PageBlock(_KINDS[s >> 4], s & 15, head)

    def is_allocated(self, pfn: int) -> bool:
        return self.page_kind(pfn)[0] in (K_ALLOC, K_ALLOC_MOVABLE)

    def is_free(self, pfn: int) -> bool:
        """Free from the user's point of view: in the buddy or on a per-CPU list."""
        return self.page_kind(pfn)[0] in (K_FREE, K_PCP)

    def allocated_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Head pfns and orders of every allocated block, in pfn order (vectorised)."""
        kinds = self.state >> 4
        heads = np.flatnonzero((kinds == K_ALLOC) | (kinds == K_ALLOC_MOVABLE))
        return heads, (self.state[heads] & 15)

    def free_pages_mask(self) -> np.ndarray:
        """Boolean per pfn: the page is free (on a buddy list or a per-CPU list)."""
        kinds = self.state >> 4
        heads = np.flatnonzero((kinds == K_FREE) | (kinds == K_PCP))
        return self.block_mask(heads, self.state[heads] & 15)

    def block_mask(self, heads: np.ndarray, orders: np.ndarray) -> np.ndarray:
        """Boolean per pfn covering the given blocks (vectorised)."""
        n = len(self.state)
        cover = np.zeros(n + 1, np.int32)
        np.add.at(cover, heads, 1)
        np.add.at(cover, np.minimum(heads + np.left_shift(1, orders.astype(np.int64)), n), -1)
        return np.cumsum(cover[:n]) > 0

    # -- page flags ---------------------------------------------------------------------

    def _require_allocated(self, pfn: int, nr: int) -> None:
        if 0 <= pfn < len(self.state):
            s = self._st[pfn]
            if s >> 4 in (K_ALLOC, K_ALLOC_MOVABLE, K_RESERVED) and nr <= 1 << (s & 15):
                return  # the head of a block: the common case, answered without a search
        kind, order, head = self.page_kind(pfn)
        if kind not in (K_ALLOC, K_ALLOC_MOVABLE, K_RESERVED) or pfn + nr > head + (1 << order):
            self.check_pfn(pfn)
            raise BadPageState(pfn, "page flags on a page that is not allocated", "an allocated page",
                               f"a {KIND_NAMES[kind]} page", self.current.comm)

    def set_page_flags(self, pfn: int, mask: int, nr: int = 1) -> None:
        """Set flag bits on ``nr`` pages of an allocated block (e.g. lru|active)."""
        self._require_allocated(pfn, nr)
        if nr == 1:
            self._pf[pfn] |= mask
        else:
            self.pflags[pfn : pfn + nr] |= np.uint32(mask)

    def clear_page_flags(self, pfn: int, mask: int, nr: int = 1) -> None:
        self._require_allocated(pfn, nr)
        self.pflags[pfn : pfn + nr] &= np.uint32(~mask & 0xFFFFFFFF)

    def check_block(self, pfn: int, order: int) -> None:
        """Raise, in the kernel's words, unless ``pfn`` heads an allocated block of this order."""
        s = self._st[pfn] if pfn.__class__ is int and 0 <= pfn < self.geometry.max_pfn else 0
        if s != ALLOC_K | order and s != ALLOCM_K | order:
            self._bad_free(pfn, order)

    def replace_page_flags(self, pfn: int, flags: int) -> None:
        """Set the whole flags word of an allocated page (migration moves it to the new block)."""
        self._require_allocated(pfn, 1)
        self._pf[pfn] = flags

    def page_flags(self, pfn: int) -> int:
        """Flags of a page (0 for free pages, whose flag word holds list bookkeeping)."""
        if self._st[pfn] >> 4 == K_FREE:
            return 0
        return self._pf[pfn]

    # -- whole-block operations used by page_ext clients and boot ------------------------

    def split_page(self, pfn: int, order: int) -> None:
        """Turn one allocated order-n block into 2^n allocated order-0 pages.

        Only for non-compound blocks, as in the kernel; clients are told so
        that per-page records get the new order.
        """
        s = self._st[pfn] if 0 <= pfn < self.geometry.max_pfn else 0
        if s != ALLOC_K | order and s != ALLOCM_K | order:
            self._bad_free(pfn, order)
        if self._pf[pfn] & (1 << PG_head):
            raise BadPageState(pfn, "split_page on a compound page", "a non-compound block", "a compound (head) page", self.current.comm)
        if not order:
            return
        kind = s & 0xF0
        self.state[pfn : pfn + (1 << order)] = kind
        for h in self._on_split_page:
            h(pfn, order)

    def free_pages_exact_tail(self, pfn: int, keep: int, order: int) -> None:
        """Split an allocated block and free all but the first ``keep`` pages (alloc_pages_exact).

        As 6.12's ``make_alloc_exact``: each tail page is freed alone with
        ``__free_pages_ok(page, 0, FPI_TO_TAIL)``: straight to the buddy (not
        the per-CPU lists), to the tail of its free list (handed out last).
        Clients see one order-0 free per page; merging page by page ends in
        the state of freeing the aligned runs, which is what is applied.
        """
        self.split_page(pfn, order)
        end = pfn + (1 << order)
        for p in range(pfn + keep, end):
            if self._pf[p] & FLAGS_CHECK_AT_FREE:
                self._bad_free(p, 0)
        hooks = self._on_free
        for p in range(pfn + keep, end):
            self.clock_ns += self.op_cost_ns
            for h in hooks:
                try:
                    h(p, 0)
                except Exception as exc:
                    raise self._hook_error(h, "on_free", p, 0, exc, "the page stays allocated") from exc
            self.nr_frees += 1
        zone = self._pbz[pfn >> self.pageblock_order]
        p = pfn + keep
        while p < end:
            o = 0
            while o < order and p & ((1 << (o + 1)) - 1) == 0 and p + (1 << (o + 1)) <= end:
                o += 1
            self.pflags[p : p + (1 << o)] = 0
            self.state[p : p + (1 << o)] = 0
            self._free_one(p, o, zone, to_tail=True)
            p += 1 << o
        err = self._deferred_hook_error
        if err is not None:
            self._deferred_hook_error = None
            raise err
