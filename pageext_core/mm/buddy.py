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
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from pageext_core.mm import gfp as _gfp
from pageext_core.mm.callouts import EVENTS, Callouts, HoldRule, first_true
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
    ZONE_NAMES,
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
from pageext_core.mm.geometry import _intersect, _subtract, count_pages
from pageext_core.mm.gfp import format_gfp_mask, gfp_migratetype
from pageext_core.mm.pageflags import (
    PG_head,
    PG_locked,
    PG_mlocked,
    PG_reserved,
    PG_writeback,
    flag_names,
)
from pageext_core.mm.views import memview
from pageext_core.mm.watermarks import (
    ALLOC_KSWAPD,
    ALLOC_MIN_RESERVE,
    ALLOC_NO_WATERMARKS,
    ALLOC_NOFRAGMENT,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_RESERVES,
    ALLOC_WMARK_LOW,
    ALLOC_WMARK_MASK,
    LOWMEM_RESERVE_RATIO,
    PCP_BATCH_SCALE_MAX,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_PROMO,
    calculate_min_free_kbytes,
    calculate_totalreserve_pages,
    gfp_to_alloc_flags,
    is_lowmem_type,
    lowmem_reserve,
    pageset_high_limits,
    zone_batchsize,
    zone_watermarks,
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
GFP_BIT_KSWAPD_RECLAIM = _gfp.__GFP_KSWAPD_RECLAIM
GFP_BIT_MEMALLOC = _gfp.__GFP_MEMALLOC
GFP_BIT_DIRECT_RECLAIM = _gfp.__GFP_DIRECT_RECLAIM
GFP_BIT_NOFAIL = _gfp.__GFP_NOFAIL
GFP_BIT_NOMEMALLOC = _gfp.__GFP_NOMEMALLOC
GFP_BIT_MOVABLE = _gfp.__GFP_MOVABLE
GFP_BIT_NOWARN = _gfp.__GFP_NOWARN
GFP_BIT_THISNODE = _gfp.__GFP_THISNODE
GFP_BIT_ZERO = _gfp.__GFP_ZERO

# Block kinds, stored in the high nibble of ``state`` at a block's head pfn.
K_NONE = 0  # tail page, hole or offline memory
K_FREE = 1  # on a buddy free list
K_ALLOC = 2  # allocated, not movable
K_PCP = 3  # a block (orders 0-3 or THP) on a per-CPU list
K_RESERVED = 4  # memblock reservation (never freed to the buddy)
K_HELD = 5  # split off by expand() and held by a page_ext client (guard pages)
K_ALLOC_MOVABLE = 6  # allocated with a movable migratetype (the kernel's LRU pages)
KIND_NAMES = ("none", "free", "allocated", "pcp", "reserved", "held", "allocated")



class PageKind(IntEnum):
    """What the block covering a pfn is (the public names of the ``K_*`` values)."""

    NONE = K_NONE  #: a hole, offline memory, or no block
    FREE = K_FREE  #: on a buddy free list
    ALLOCATED = K_ALLOC  #: allocated, not movable
    PCP = K_PCP  #: a block (orders 0-3 or THP) on a per-CPU list (free to the user)
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


# pcp_allowed_order / order_to_pindex: orders 0..PAGE_ALLOC_COSTLY_ORDER and the THP order.
PAGE_ALLOC_COSTLY_ORDER = 3
NR_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1) + 2  # 14: 3 types x 4 orders + 2 THP lists
NR_PCP_ORDER_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)  # 12
# Runs of at least this many blocks are written with one numpy call (~1 us) rather than per block.
_NP_RUN = 32
# A refill's held pieces (guard pages) are set up with numpy from this many on (seven numpy
# calls, ~8-10 us in the standard workload, against ~0.2-0.3 us per piece done one by one).
_NP_PIECES = 48
# The pieces expand holds in a 2^g unit when it hands out the unit's first 2^low pages:
# (offset, HELD state byte, offset of the piece's last page), per low and g.
_HOLD_PIECES = tuple(tuple(tuple((1 << q, HELD_K | q, (1 << q) - 1) for q in range(low, g)) for g in range(16))
                     for low in range(16))


class _HoldTable:
    """One page_ext table under the hold rule, as numpy arrays indexed by ``pfn - base``: for ``_hold_units_np``.

    The flags words, the page state and the direct map's flags beside them,
    the rule's bit, and per ``(low, g)`` the pieces' offsets (less ``base``,
    as a column) and their state bytes repeated per unit count.
    """

    __slots__ = ("_pieces", "base", "bit", "ent", "flags", "nr_pages", "state", "unmapped")

    def __init__(self, ent: tuple[memoryview, int], rule: HoldRule, state: np.ndarray, unmapped: np.ndarray) -> None:
        words, k = ent  # page p's flags word is words[k + p * stride]
        self.ent = ent
        r = k % rule.stride  # the word's place in a record: words[r + (p - base) * stride]
        self.base = (r - k) // rule.stride
        self.flags = np.asarray(words)[r :: rule.stride]
        self.nr_pages = len(self.flags)
        self.state = state[self.base : self.base + self.nr_pages]
        self.unmapped = unmapped[self.base : self.base + self.nr_pages]
        self.bit = np.uint64(rule.bit)
        self._pieces: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, int]] = {}

    def pieces(self, low: int, g: int, n: int) -> tuple[np.ndarray, np.ndarray, int]:
        """For ``n`` units: the offsets (``_HOLD_PIECES[low][g]``'s, then their last pages'), the state bytes, how many pieces."""
        got = self._pieces.get((low, g, n))
        if got is None:
            pieces = _HOLD_PIECES[low][g]
            offs = [p[0] for p in pieces] + [p[0] + p[2] for p in pieces]
            got = self._pieces[(low, g, n)] = (np.array(offs, np.intp)[:, None] - self.base,
                                               np.repeat(np.array([p[1] for p in pieces], np.uint8), n), len(pieces))
        return got


# Zeroed flag words of 2^order pages, copied into ``pflags`` through its memoryview (a numpy
# slice assignment costs several times more for the small blocks most frees are).
_ZEROS_U32 = tuple(memview(np.zeros(1 << _o, np.uint32)) for _o in range(11))


def pindex_to_order(pindex: int, thp_order: int) -> int:
    """The order of the blocks on a pcp list (``pindex_to_order``)."""
    return pindex // MIGRATE_PCPTYPES if pindex < NR_PCP_ORDER_LISTS else thp_order


class PerCpuPages:
    """One CPU's ``struct per_cpu_pages`` for one zone: its counters and limits (the lists live in ``_pcp``).

    ``count`` is in base pages over all 14 lists; ``high`` is clamped into
    [high_min, high_max] when used (0 until the CPU first uses the zone, as a
    boot pageset is); ``alloc_factor`` and ``free_count`` scale refills and
    bulk frees (``nr_pcp_alloc``, ``nr_pcp_free``).
    """

    __slots__ = ("alloc_factor", "batch", "count", "free_count", "high", "high_max", "high_min",
                 "prev_free_high_order")

    def __init__(self) -> None:
        self.count = 0
        self.high = 0  # BOOT_PAGESET_HIGH
        self.high_min = 0
        self.high_max = 0
        self.batch = 1  # BOOT_PAGESET_BATCH
        self.alloc_factor = 0
        self.free_count = 0
        self.prev_free_high_order = False  # PCPF_PREV_FREE_HIGH_ORDER


class AllocatorHost(Protocol):
    """What the allocator asks of the machine it runs in: only for errors and warnings.

    The allocator names the current task and describes a page in the
    kernel's words when it refuses a request (``Bad page state``, a failed
    allocation's ``warn_alloc``); the machine knows which pfns exist and how
    to print a page and a stack.
    """

    @property
    def current(self) -> Task:
        """The task the event is attributed to."""
        ...

    def check_pfn(self, pfn: int) -> None:
        """Raise ``InvalidPfn`` saying why a pfn is not usable memory."""
        ...

    def describe_page(self, pfn: int) -> str:
        """A ``dump_page`` description of a page."""
        ...

    def dump_stack_lines(self) -> list[str]:
        """``dump_stack``'s lines: CPU, taint, hardware name, call trace."""
        ...


@dataclass(frozen=True)
class PcpSnapshot:
    """One CPU's pageset for one zone, copied (``BuddyAllocator.pcp_snapshot``): plain values, no live state."""

    count: int
    high: int
    batch: int
    high_min: int
    high_max: int
    alloc_factor: int
    free_count: int
    #: the 14 lists by pindex (orders 0-3 per pcp type, then the two THP lists), each head first (handed out next)
    lists: tuple[tuple[int, ...], ...]


class BuddyAllocator:
    """Allocator state and operations; ``Machine`` holds one (``machine.buddy``).

    The allocator owns its state (page state, pageblocks, free lists, per-CPU
    lists, counters) and every change to its free lists: allocation and free,
    the bulk free at boot (``free_all``), isolation (``isolate_range``), hot
    add and removal (``add_memory``, ``remove_memory``, ``take_free_range``).

    What it is given: the geometry, the log (allocation failures), the page
    contents (``__GFP_ZERO``) and its host (``AllocatorHost``: the task named
    in errors, the pfn check and the page and stack descriptions).  The CPU it
    runs on (``cpu``, set by the machine's context) and the clock it charges
    (``clock_ns``) are its own plain attributes: every allocation reads them.
    """

    # The call-out table's hold rule (``bind_callouts``) and the pages held under it, per zone.
    _hold_rule: HoldRule | None = None
    _hold_below = 0  # the rule's below_order (0: nothing is held by rule)
    _rule_held: list[int]  # set with the rule (bind_callouts)
    _fl_grown: list[int] | None = None  # per (zone, type): orders whose free-list array has room (_rmqueue_bulk)
    _hold_np_table: _HoldTable | None = None  # the table the last numpy hold used (_hold_table_of)

    def __init__(self, geometry: Geometry, host: AllocatorHost, log: KernelLog, contents: PageContents) -> None:
        self.geometry = geometry
        self.host = host
        self.log = log
        self.contents = contents
        self.clock_ns = 0  # the machine's clock: simulated ns, charged op_cost_ns per operation
        self.cpu = 0  # smp_processor_id(): whose per-CPU lists allocations and frees use
        self._init_allocator()

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
        self._st = memview(self.state)
        self._pf = memview(self.pflags)
        nblocks = (n + (1 << g.pageblock_order) - 1) >> g.pageblock_order
        self.pb_mt = np.full(nblocks, MIGRATE_MOVABLE, np.uint8)
        self.pb_zone = np.full(nblocks, 255, np.uint8)
        for z in g.zones:
            if z.spanned_pages:
                self.pb_zone[z.start_pfn >> g.pageblock_order : (z.end_pfn + (1 << g.pageblock_order) - 1) >> g.pageblock_order] = z.index
        self._pbmt = memview(self.pb_mt)
        self._pbz = memview(self.pb_zone)
        nz = len(g.zones)
        self.nr_zones = nz
        nlists = nz * MIGRATE_TYPES * self.nr_orders
        self._fl_arr: list[np.ndarray] = [np.zeros(0, np.uint32) for _ in range(nlists)]
        self._fl_mv: list[memoryview] = [memview(a) for a in self._fl_arr]
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
        self.nr_pcp_refilled = 0  # blocks per-CPU refills took from the buddy (rmqueue_bulk)
        self.nr_pcp_returned = 0  # blocks bulk frees and drains gave back (free_pcppages_bulk)
        # Call-outs: plain tuples bound from the machine's Callouts table (``bind_callouts``).
        self._on_alloc: tuple[AllocHook, ...] = ()
        self._on_free: tuple[FreeHook, ...] = ()
        self._on_split: Callable[[int, int, int], object] | None = None
        self._on_merge: Callable[[int, int], object] | None = None
        self._on_split_page: tuple[Callable[[int, int], object], ...] = ()
        self._callout_names: dict[int, tuple[str, str]] = {}
        self._deferred_hook_error: HookError | None = None
        self._gfp_cache: dict[int, tuple[int, tuple[tuple[int, ...], ...], int, tuple[int, ...], int]] = {}
        # Watermarks (``watermarks``; computed with the pcp sizes once the zones are known).
        self.min_free_kbytes = 0
        self.user_min_free_kbytes = -1  # vm.min_free_kbytes as written (-1: never)
        self.lowmem_reserve_ratio: tuple[int, ...] = LOWMEM_RESERVE_RATIO
        self.zone_wmark: list[tuple[int, int, int, int]] = []
        self.totalreserve_pages = 0  # what MemAvailable holds back (calculate_totalreserve_pages)
        self.zone_protection: list[list[int]] = []
        self.zone_below_high: list[bool] = [False] * nz  # ZONE_BELOW_HIGH
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
        rule = callouts.hold[0] if callouts.hold else None
        if len(callouts.hold) > 1:
            raise ValueError("at most one client may declare a hold rule, got "
                             + ", ".join(r.client for r in callouts.hold))
        if rule is not self._hold_rule:
            # Pages held under another (or no) rule are not this rule's: count afresh.
            self._rule_held = [0] * self.nr_zones
            self._hold_np_table = None
        self._hold_rule = rule
        self._hold_below = rule.below_order if rule is not None else 0

    def _init_pcp(self) -> None:
        """Per-CPU pagesets: per (CPU, zone) one ``PerCpuPages`` and 14 lists (orders 0-3 and THP, per type).

        ``_pcp[cpu][zone * NR_PCP_LISTS + pindex]`` is a list of head pfns whose
        end is the kernel list's head (frees and allocations there) and whose
        start is its tail (bulk frees take the oldest from there).
        """
        nz = self.nr_zones
        cpus = self.geometry.config.cpus
        self.thp_order = 9  # HPAGE_PMD_ORDER on x86_64
        self._pcp: list[list[list[int]]] = [[[] for _ in range(nz * NR_PCP_LISTS)] for _ in range(cpus)]
        self._pcps: list[list[PerCpuPages]] = [[PerCpuPages() for _ in range(nz)] for _ in range(cpus)]
        self._build_zonelists()

    def _build_zonelists(self) -> None:
        """Zonelists per (node, highest zone type): own node high → low, then other nodes.

        Also (re)computes what depends on zone sizes, as the kernel does at boot
        and after memory hotplug: watermarks, lowmem_reserve and the pcp sizes.
        """
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
        self._zone_node = [z.node for z in g.zones]
        self._init_per_zone_wmark_min()

    def zone_managed(self, zone: int) -> int:
        """Pages of a zone the buddy allocator manages (present minus memblock reservations)."""
        return max(self.zone_present[zone] - self.zone_reserved[zone], 0)

    def _init_per_zone_wmark_min(self) -> None:
        """``init_per_zone_wmark_min``: min_free_kbytes, watermarks, lowmem_reserve, then the pcp sizes.

        Stores, per zone, the watermarks and protection, and the thresholds the
        allocation path compares ``zone_free`` with: ``_wm_thr[mark][highest
        zone type][zone]`` = watermark + lowmem_reserve.
        """
        g = self.geometry
        zones = g.zones
        managed = [self.zone_managed(z.index) for z in zones]
        # nr_free_buffer_pages: GFP_USER zones (<= Normal) of all nodes, managed minus HIGH (0 at boot).
        old = self.zone_wmark
        lowmem = sum(max(managed[z.index] - (old[z.index][WMARK_HIGH] if old else 0), 0)
                     for z in zones if is_lowmem_type(z.ztype))
        new = calculate_min_free_kbytes(lowmem)
        if new > self.user_min_free_kbytes:
            self.min_free_kbytes = new
        self._setup_per_zone_wmarks()

    def set_min_free_kbytes(self, kbytes: int) -> None:
        """Write ``vm.min_free_kbytes`` (``min_free_kbytes_sysctl_handler``): new watermarks and pcp sizes.

        As in the kernel the value is kept over later recomputations (memory
        hotplug) unless those compute a larger one.
        """
        if kbytes.__class__ is not int or kbytes < 0:
            raise ValueError(f"vm.min_free_kbytes {kbytes!r}: expected a non-negative number of kB")
        self.min_free_kbytes = self.user_min_free_kbytes = kbytes
        self._setup_per_zone_wmarks()

    def set_lowmem_reserve_ratio(self, ratios: Sequence[int]) -> None:
        """Write ``vm.lowmem_reserve_ratio`` (one value per zone type; values below 1 store 0)."""
        if len(ratios) != len(ZONE_NAMES) or any(r.__class__ is not int for r in ratios):
            raise ValueError(f"vm.lowmem_reserve_ratio {list(ratios)!r}: expected {len(ZONE_NAMES)} integers "
                             f"({', '.join(ZONE_NAMES)})")
        self.lowmem_reserve_ratio = tuple(r if r >= 1 else 0 for r in ratios)
        self._setup_per_zone_wmarks()

    def _setup_per_zone_wmarks(self) -> None:
        """``setup_per_zone_wmarks`` + ``setup_per_zone_lowmem_reserve`` + ``zone_pcp_update``."""
        g = self.geometry
        zones = g.zones
        managed = [self.zone_managed(z.index) for z in zones]
        self.zone_wmark = zone_watermarks(managed, [z.ztype for z in zones], self.min_free_kbytes)
        nt = len(ZONE_NAMES)
        self.zone_protection = [[0] * nt for _ in zones]
        for n in g.nodes:
            node_zones = sorted((z for z in zones if z.node == n.nid), key=lambda z: z.ztype)
            res = lowmem_reserve([managed[z.index] for z in node_zones],
                                 self.lowmem_reserve_ratio)
            for z, row in zip(node_zones, res, strict=True):
                self.zone_protection[z.index] = row
        self.totalreserve_pages = calculate_totalreserve_pages(managed, self.zone_wmark, self.zone_protection)
        self._wm_thr = [[[self.zone_wmark[z.index][mark] + self.zone_protection[z.index][hz] for z in zones]
                         for hz in range(nt)] for mark in range(WMARK_PROMO + 1)]
        # zone_pcp_update: batch, high_min, high_max for every CPU's pageset of the zone.
        cpus = g.config.cpus
        node_cpus = [0] * len(g.nodes)
        for c in range(cpus):
            node_cpus[self._cpu_node[c]] += 1
        self.pcp_batch = []
        self.pcp_high_limits: list[tuple[int, int]] = []
        for z in zones:
            batch = zone_batchsize(managed[z.index])
            limits = pageset_high_limits(managed[z.index], self.zone_wmark[z.index][WMARK_LOW], batch,
                                         node_cpus[z.node], cpus)
            self.pcp_batch.append(batch)
            self.pcp_high_limits.append(limits)
            for per_cpu in self._pcps:
                pcp = per_cpu[z.index]
                pcp.batch = batch
                pcp.high_min, pcp.high_max = limits

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

    def _resolve_gfp(self, gfp_mask: int) -> tuple[int, tuple[tuple[int, ...], ...], int, tuple[int, ...], int]:
        """What a mask means, cached (a mask is resolved once):

        (migratetype, zonelist per node, highest zone type, fast-path
        alloc_flags per node, slow-path alloc_flags).  The fast path checks
        the LOW watermark and, when the preferred zone is Normal,
        ``ALLOC_NOFRAGMENT`` (``alloc_flags_nofragment``); the slow path is
        ``gfp_to_alloc_flags``.
        """
        mt = gfp_migratetype(gfp_mask) if self.mobility_grouping else MIGRATE_UNMOVABLE
        if mt > MIGRATE_RECLAIMABLE:  # both movable bits set: not a valid request type
            mt = MIGRATE_MOVABLE
        top = self.gfp_zone(gfp_mask)
        thisnode = bool(gfp_mask & GFP_BIT_THISNODE)
        g = self.geometry
        nn = len(g.nodes)
        zls = tuple(self._zonelists[(nid, top, thisnode)] for nid in range(nn))
        kswapd = ALLOC_KSWAPD if gfp_mask & GFP_BIT_KSWAPD_RECLAIM else 0
        fast = []
        for nid in range(nn):
            flags = ALLOC_WMARK_LOW | kswapd
            zl = zls[nid]
            # alloc_flags_nofragment: the preferred zone (first of the zonelist) is Normal and, with
            # several nodes, the same node has a populated DMA32 zone.
            if zl and g.zones[zl[0]].ztype == ZONE_NORMAL:
                node = g.zones[zl[0]].node
                if nn == 1 or any(z.node == node and z.ztype == ZONE_DMA32 and self.zone_managed(z.index)
                                  for z in g.zones):
                    flags |= ALLOC_NOFRAGMENT
            fast.append(flags)
        info = (mt, zls, top, tuple(fast), gfp_to_alloc_flags(gfp_mask))
        self._gfp_cache[gfp_mask] = info
        return info

    def alloc_flags(self, gfp_mask: int) -> tuple[tuple[int, ...], int]:
        """The alloc_flags a mask gets: the fast path's per node (LOW mark, maybe NOFRAGMENT), the slow path's."""
        info = self._gfp_cache.get(gfp_mask)
        if info is None:
            info = self._resolve_gfp(gfp_mask)
        return info[3], info[4]

    def migratetype_of(self, gfp_mask: int) -> int:
        """The migratetype a request with this mask gets (Unmovable for all when mobility grouping is off)."""
        info = self._gfp_cache.get(gfp_mask)
        if info is None:
            info = self._resolve_gfp(gfp_mask)
        return info[0]

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
        mv = self._fl_mv[li] = memview(new)
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

    def free_list(self, zone: int, order: int, migratetype: int) -> tuple[int, ...]:
        """Head pfns on one free list, a copy: first the block handed out next, last the list's tail."""
        li = (zone * MIGRATE_TYPES + migratetype) * self.nr_orders + order
        return tuple(int(p) for p in self._fl_arr[li][: self._fl_n[li]][::-1])

    def nr_free_counts(self) -> np.ndarray:
        """Blocks on every free list, as an int64 array [zone, migratetype, order] (a copy)."""
        counts: np.ndarray = np.array(self._fl_n, dtype=np.int64).reshape(self.nr_zones, MIGRATE_TYPES, self.nr_orders)
        return counts

    def isolated_free_pages(self, zone: int) -> int:
        """Free pages on a zone's MIGRATE_ISOLATE lists (pageblocks being offlined)."""
        base = (zone * MIGRATE_TYPES + MIGRATE_ISOLATE) * self.nr_orders
        return sum(n << o for o, n in enumerate(self._fl_n[base : base + self.nr_orders]))

    # -- allocation -------------------------------------------------------------

    def alloc_pages(self, gfp_mask: int, order: int = 0) -> int | None:
        """Allocate 2^order pages; the head pfn, or None when no zone can serve it.

        ``__alloc_pages_noprof``: the fast path (LOW watermark, maybe
        ``ALLOC_NOFRAGMENT``), then what is left of the slow path without
        reclaim or compaction (MIN watermark with the reserves the gfp mask
        allows).  Orders 0-3 and the THP order go through the current CPU's
        per-CPU lists.  A failure is counted and logged like the kernel's
        ``warn_alloc`` unless ``GFP_BIT_NOWARN``.
        """
        if order.__class__ is not int or order < 0 or order > self.max_order:
            raise InvalidOrder(order, self.max_order)
        info = self._gfp_cache.get(gfp_mask)
        if info is None:
            if gfp_mask.__class__ is not int or gfp_mask < 0:
                raise TypeError(f"gfp_mask must be a non-negative int (use parse_gfp), got {gfp_mask!r}")
            info = self._resolve_gfp(gfp_mask)
        mt = info[0]
        cpu = self.cpu
        nid = self._cpu_node[cpu]
        zl = info[1][nid]
        pfn = -1
        if zl and (order <= PAGE_ALLOC_COSTLY_ORDER or order == self.thp_order):
            # The common case of get_page_from_freelist + rmqueue_pcplist, written out: the
            # preferred zone passes its HIGH mark as _get_page_from_freelist checks it (no
            # flag changes then; no isolated free pages to leave out) and this CPU's list has
            # a block.  Anything else takes the general path below, which repeats the check.
            zone = zl[0]
            base = zone * MIGRATE_TYPES
            ne = self._nonempty
            if not self.zone_below_high[zone] and not ne[base + MIGRATE_ISOLATE] and \
                    self.zone_free[zone] - ((1 << order) - 1) > self._wm_thr[WMARK_HIGH][info[2]][zone] and \
                    (not order or (ne[base] | ne[base + 1] | ne[base + 2]) >> order):
                pl = self._pcp[cpu][zone * NR_PCP_LISTS + (
                    order * 3 + mt if order <= PAGE_ALLOC_COSTLY_ORDER
                    else NR_PCP_ORDER_LISTS + (mt == MIGRATE_MOVABLE))]
                if pl:
                    pcp = self._pcps[cpu][zone]
                    pcp.free_count >>= 1
                    pcp.count -= 1 << order
                    self.zone_pcp[zone] -= 1 << order
                    pfn = pl.pop()
        if pfn < 0:
            pfn = self._get_page_from_freelist(zl, order, mt, info[2], info[3][nid])
            if pfn < 0:
                pfn = self._alloc_slowpath(gfp_mask, zl, order, mt, info[2], info[4])
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

    def _get_page_from_freelist(self, zl: tuple[int, ...], order: int, mt: int, hz: int, aflags: int) -> int:
        """``get_page_from_freelist``: the first zone of the zonelist that passes its watermark and has a block.

        Each zone is checked against HIGH first (failing sets
        ``ZONE_BELOW_HIGH``, which shrinks the pcp ``high`` on frees), then
        against the mark of ``aflags``.  Order 0 without reserve flags is
        answered by one comparison of the zone's free counter.  Under
        ``ALLOC_NOFRAGMENT`` a zone on another node, or every zone failing,
        drops the flag and starts again.
        """
        zone_free = self.zone_free
        below = self.zone_below_high
        high_thr = self._wm_thr[WMARK_HIGH][hz]
        ne = self._nonempty
        while True:
            no_fallback = aflags & ALLOC_NOFRAGMENT
            restart = False
            for zone in zl:
                if no_fallback and zone != zl[0] and self._zone_node[zone] != self._zone_node[zl[0]]:
                    aflags &= ~ALLOC_NOFRAGMENT  # locality beats fragmentation
                    restart = True
                    break
                if not (aflags & ALLOC_NO_WATERMARKS or (not order and not below[zone] and zone_free[zone] > high_thr[zone]
                                                         and not ne[zone * MIGRATE_TYPES + MIGRATE_ISOLATE])):
                    ok = False
                    if not below[zone]:
                        ok = self._zone_watermark_ok(zone, order, WMARK_HIGH, hz, aflags)
                        if not ok:
                            below[zone] = True
                    if not ok and not self._zone_watermark_ok(zone, order, aflags & ALLOC_WMARK_MASK, hz, aflags):
                        continue
                if order <= PAGE_ALLOC_COSTLY_ORDER or order == self.thp_order:
                    pfn = self._rmqueue_pcplist(zone, order, mt, aflags)
                else:
                    pfn = self._rmqueue(zone, order, mt, aflags)
                if pfn >= 0:
                    return pfn
            if restart:
                continue
            if no_fallback:
                aflags &= ~ALLOC_NOFRAGMENT
                continue
            return -1

    def _zone_watermark_ok(self, zone: int, order: int, mark: int, hz: int, aflags: int) -> bool:
        """``__zone_watermark_ok``: free pages above mark + lowmem_reserve, and a big enough free block.

        ``ALLOC_MIN_RESERVE`` (__GFP_HIGH) may use half of the mark, with
        ``ALLOC_NON_BLOCK`` (GFP_ATOMIC) 3/8 of it; ``ALLOC_OOM`` half again.
        The free pages are NR_FREE_PAGES: in 6.12 ``account_freepages`` leaves
        out free pages on MIGRATE_ISOLATE lists (a memory block being offlined
        with migration), so they never let an allocation pass the check.
        """
        free = self._nr_free_pages_wm(zone) - ((1 << order) - 1)
        wmin = self.zone_wmark[zone][mark]
        if aflags & ALLOC_RESERVES:
            if aflags & ALLOC_MIN_RESERVE:
                wmin -= wmin // 2
                if aflags & ALLOC_NON_BLOCK:
                    wmin -= wmin // 4
            if aflags & ALLOC_OOM:
                wmin -= wmin // 2
        if free <= wmin + self.zone_protection[zone][hz]:
            return False
        if not order:
            return True
        ne = self._nonempty
        base = zone * MIGRATE_TYPES
        return bool((ne[base] | ne[base + 1] | ne[base + 2]) >> order)

    def _nr_free_pages_wm(self, zone: int) -> int:
        """A zone's NR_FREE_PAGES for the watermark checks: free pages on isolated pageblocks' lists left out."""
        free = self.zone_free[zone]
        if self._nonempty[zone * MIGRATE_TYPES + MIGRATE_ISOLATE]:
            base = (zone * MIGRATE_TYPES + MIGRATE_ISOLATE) * self.nr_orders
            free -= sum(n << o for o, n in enumerate(self._fl_n[base : base + self.nr_orders]))
        return free

    def _alloc_slowpath(self, gfp_mask: int, zl: tuple[int, ...], order: int, mt: int, hz: int, aflags: int) -> int:
        """``__alloc_pages_slowpath`` without kswapd, reclaim, compaction or the OOM killer.

        One more try at the MIN watermark (with __GFP_HIGH's and GFP_ATOMIC's
        reserves), then ``ALLOC_NO_WATERMARKS`` for __GFP_MEMALLOC; a request
        that may reclaim directly then does what ``__alloc_pages_direct_reclaim``
        does when reclaim frees nothing: drain every CPU's lists and try again.
        Last, for __GFP_NOFAIL, one try with ``ALLOC_MIN_RESERVE`` (where the
        kernel would retry forever, the model fails).
        """
        pfn = self._get_page_from_freelist(zl, order, mt, hz, aflags)
        if pfn >= 0:
            return pfn
        if gfp_mask & GFP_BIT_MEMALLOC and not gfp_mask & GFP_BIT_NOMEMALLOC:
            pfn = self._get_page_from_freelist(zl, order, mt, hz, ALLOC_NO_WATERMARKS | (aflags & ALLOC_KSWAPD))
            if pfn >= 0:
                return pfn
        if gfp_mask & GFP_BIT_DIRECT_RECLAIM and self.nr_pcp_pages_total():
            self.drain_all_pages()
            pfn = self._get_page_from_freelist(zl, order, mt, hz, aflags)
            if pfn >= 0:
                return pfn
        if gfp_mask & GFP_BIT_NOFAIL:
            return self._get_page_from_freelist(zl, order, mt, hz, ALLOC_MIN_RESERVE)
        return -1

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
        # What covers the range: one free (or per-CPU) block holding it, or such blocks inside it.
        pieces: list[tuple[int, int, bool]] = []  # (head, order, on a per-CPU list)
        p = pfn
        while p < end:
            s = st[p]
            if s >> 4 == K_FREE or s >> 4 == K_PCP:
                o = s & 15
                pieces.append((p, o, s >> 4 == K_PCP))
                p += 1 << o
                continue
            kind, o, head = self.page_kind(p)
            if (kind == K_FREE or kind == K_PCP) and head < pfn:  # a larger free block holds the whole range
                pieces.append((head, o, kind == K_PCP))
                break
            what = {K_ALLOC: "allocated", K_ALLOC_MOVABLE: "allocated", K_RESERVED: "reserved",
                    K_HELD: "held by a page_ext client (a guard page)"}.get(kind)
            if what is None:
                try:
                    self.host.check_pfn(p)
                    what = "not a page of any block"
                except MMError as exc:
                    what = str(exc).split(": ", 1)[-1]
                    what = "in a hole" if "hole" in what else what
            if kind != K_NONE and head != p:
                what += f" (part of the order-{o} block at {head:#x})"
            raise PlacementRefused(pfn, order, f"page {p:#x} is {what}")
        pbmt = self._pbmt
        for head, o, on_pcp in pieces:
            z = self._pbz[head >> pbo]
            if on_pcp:
                self._take_from_pcp(head, o, z)
            else:
                self._remove(z * MIGRATE_TYPES + pbmt[head >> pbo], o, head)
                self.zone_free[z] -= 1 << o
            st[head] = 0
            # split down to the range: the halves that do not hold it go back as free buddy blocks
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

    def _take_from_pcp(self, head: int, order: int, zone: int) -> None:
        """Take one block off whichever CPU's per-CPU list holds it (exact placement)."""
        base = zone * NR_PCP_LISTS
        for cpu, lists in enumerate(self._pcp):
            for pl in lists[base : base + NR_PCP_LISTS]:
                if pl and head in pl:
                    pl.remove(head)
                    self._pcps[cpu][zone].count -= 1 << order
                    self.zone_pcp[zone] -= 1 << order
                    return
        raise AssertionError(f"pfn {head:#x} in per-CPU state but on no per-CPU list")

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
                "\n".join([f"{self.host.current.comm}: page allocation failure: order:{order}, "
                           f"mode:{format_gfp_mask(gfp_mask)}, nodemask=(null),cpuset=/,mems_allowed={mems}",
                           *self.host.dump_stack_lines()]),
            )

    def _rmqueue(self, zone: int, order: int, mt: int, aflags: int = 0) -> int:
        """``__rmqueue``: a 2^order block from a zone's buddy lists, falling back to other types."""
        zm = zone * MIGRATE_TYPES + mt
        avail = self._nonempty[zm] >> order
        if avail:
            cur = order + (avail & -avail).bit_length() - 1
            pfn = self._pop(zm, cur)
            self.zone_free[zone] -= 1 << cur
            if cur != order:
                self._expand(zone, pfn, order, cur, mt)
            return pfn
        return self._rmqueue_fallback(zone, order, mt, aflags)

    def _rmqueue_smallest(self, zone: int, order: int, mt: int) -> int:
        """``__rmqueue_smallest``: the smallest block of this type of at least ``order``, or -1."""
        zm = zone * MIGRATE_TYPES + mt
        avail = self._nonempty[zm] >> order
        if not avail:
            return -1
        cur = order + (avail & -avail).bit_length() - 1
        pfn = self._pop(zm, cur)
        self.zone_free[zone] -= 1 << cur
        if cur != order:
            self._expand(zone, pfn, order, cur, mt)
        return pfn

    def _expand(self, zone: int, pfn: int, low: int, high: int, mt: int) -> None:
        """Split a 2^high block down to 2^low, freeing (or handing out) the upper halves.

        A half below the hold rule's order is held by the rule (its flag bits
        are set after the loop, in one batch per order); otherwise the split
        call-outs are asked.
        """
        zm = zone * MIGRATE_TYPES + mt
        st = self._st
        pf = self._pf
        fl_n = self._fl_n
        fl_mv = self._fl_mv
        ne = self._nonempty
        nr_orders = self.nr_orders
        freed = 0
        split = self._on_split
        below = self._hold_below
        by_rule: list[tuple[int, int]] = []
        while high > low:
            high -= 1
            half = pfn + (1 << high)
            if high < below:
                st[half] = HELD_K | high
                by_rule.append((half, high))
                continue
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
            # _push(zm, high, half)
            li = zm * nr_orders + high
            n = fl_n[li]
            mv = fl_mv[li]
            if n == len(mv):
                mv = self._grow(li)
            mv[n] = half
            pf[half] = n
            fl_n[li] = n + 1
            if not n:
                ne[zm] |= 1 << high
            freed += 1 << high
        self.zone_free[zone] += freed
        for half, high in by_rule:
            self._hold_mark(zone, [half], high)

    def _hold_mark(self, zone: int, heads: list[int], order: int) -> None:
        """Held by the rule: count these order-``order`` blocks (their state says HELD) and set their flag bit.

        Unmaps any of them whose first or last page is mapped (a free block
        is unmapped already when debug_pagealloc is on).  For the few halves
        of one ``_expand``; a refill's many pieces go through ``_hold_pieces``.
        """
        rule = self._hold_rule
        assert rule is not None
        nr = len(heads)
        if not nr:
            return
        size = 1 << order
        self.zone_held[zone] += nr << order
        self._rule_held[zone] += nr << order
        stats = rule.stats
        stats.created += nr
        stats.marked += 1
        stats.runs += 1
        words, shift, stride, bit = rule.words, rule.shift, rule.stride, rule.bit
        contents = self.contents
        for h in heads:
            ent = words[h >> shift]
            if ent is None:
                raise MMError(f"hold rule of {rule.client!r}: no page_ext for pfn {h:#x}")
            mv, k = ent
            mv[k + h * stride] |= bit
            if contents.is_mapped(h) or (order and contents.is_mapped(h + size - 1)):
                contents.unmap(h, size)

    @staticmethod
    def _by_section(a: np.ndarray, words: list[tuple[memoryview, int] | None], shift: int,
                    client: str) -> list[tuple[tuple[memoryview, int], np.ndarray]]:
        """The pfns of ``a`` grouped by section, each with its flags-word entry."""
        secs = a >> shift
        first = int(secs[0])
        groups = [(first, a)] if (secs == first).all() else [(sec, a[secs == sec]) for sec in np.unique(secs).tolist()]
        out = []
        for sec, part in groups:
            ent = words[sec]
            if ent is None:
                raise MMError(f"hold rule of {client!r}: no page_ext for pfn {int(part[0]):#x}")
            out.append((ent, part))
        return out

    def _hold_pieces(self, zone: int, units: list[int], runs: list[tuple[int, int, int]], low: int,
                     blocks: int, lo: int, hi: int) -> None:
        """Held by the rule: the pieces of orders ``low``..below-1 of each 2^below unit, and of each smaller run.

        What ``expand`` holds while a refill takes one 2^low piece per unit
        (the unit's first pages) off ``blocks`` blocks: ``units`` start the
        units of the rule's order (within pfns ``lo``..``hi - 1``), ``runs``
        are ``(start, end, g)`` of blocks of an order g below it.  The
        pieces' state (HELD, the order), the counters, the flag bit on each
        head, and any piece still mapped is unmapped (as the client's own
        hook did: a piece whose first or last page is mapped).  One call per
        refill; the units are done together, with numpy from ``_NP_PIECES``
        pieces on (its fixed cost is what some forty pieces one by one cost).
        """
        rule = self._hold_rule
        assert rule is not None
        below = self._hold_below
        n = len(units)
        pages = n * ((1 << below) - (1 << low))
        created = n * (below - low)
        for pfn, end, g in runs:
            nr = (end - pfn) >> g
            pages += nr * ((1 << g) - (1 << low))
            created += nr * (g - low)
            self._hold_units(rule, range(pfn, end, 1 << g), low, g)
        if n * (below - low) >= _NP_PIECES:
            self._hold_units_np(rule, units, low, below, lo, hi - 1)
        elif units:
            self._hold_units(rule, units, low, below)
        self.zone_held[zone] += pages
        self._rule_held[zone] += pages
        stats = rule.stats
        stats.created += created
        stats.marked += 1
        stats.runs += blocks

    def _hold_units(self, rule: HoldRule, units: Sequence[int], low: int, g: int) -> None:
        """The pieces of each 2^g unit below its first 2^low pages: state, flag bit, unmapped (one by one).

        Piece by piece over all units (one to three pieces: a loop over the
        units without a tuple to unpack per piece), the page_ext entry
        looked up again only when the section changes.
        """
        st = self._st
        words, shift, stride, bit = rule.words, rule.shift, rule.stride, rule.bit
        contents = self.contents
        um = contents.unmapped_bytes()  # the direct map's "unmapped" flag per pfn; None while all is mapped
        for off, hk, last in _HOLD_PIECES[low][g]:  # (offset in the unit, state byte, offset of the piece's last page)
            sec, mv, k = -1, memoryview(b""), 0
            for u in units:
                p = u + off
                if p >> shift != sec:
                    sec = p >> shift
                    ent = words[sec]
                    if ent is None:
                        raise MMError(f"hold rule of {rule.client!r}: no page_ext for pfn {p:#x}")
                    mv, k = ent
                st[p] = hk
                mv[k + p * stride] |= bit
                if um is None or not um[p] or not um[p + last]:
                    contents.unmap(p, last + 1)
                    um = contents.unmapped_bytes()

    def _hold_table_of(self, rule: HoldRule, lo: int, hi: int) -> _HoldTable | None:
        """The numpy views of the one page_ext table holding pfns ``lo``..``hi``, or None.

        None too while nothing is unmapped (the direct map has no flags yet).
        The last table used is kept: a workload's refills mostly stay in one.
        """
        words, shift = rule.words, rule.shift
        ent = words[lo >> shift]
        if ent is None or ent is not words[hi >> shift]:
            return None  # sections between two of one table's are the table's (a table covers a pfn range)
        t = self._hold_np_table
        if t is None or t.ent is not ent:
            um = self.contents.unmapped_flags()
            if um is None:
                return None
            t = self._hold_np_table = _HoldTable(ent, rule, self.state, um)
        return t

    def _hold_units_np(self, rule: HoldRule, units: list[int], low: int, g: int, lo: int, hi: int) -> None:
        """``_hold_units`` with numpy: seven calls whatever the number of units, for a refill's many pieces.

        When the units are not all in one page_ext table, or a piece's first
        or last page is mapped (it must be unmapped), they are done one by
        one instead; nothing is written before that is known.
        """
        t = self._hold_table_of(rule, lo, hi)  # the units span pfns lo..hi
        if t is None:
            self._hold_units(rule, units, low, g)
            return
        n = len(units)
        offs, hks, npieces = t.pieces(low, g, n)
        # Row i: every unit's piece i (pfn - base); from row npieces on, the pieces' last pages.
        x = np.fromiter(units, np.intp, n) + offs
        if 0 in t.unmapped[x].tobytes():  # (a third of what .all() costs here)
            self._hold_units(rule, units, low, g)
            return
        heads = x[:npieces].ravel()
        t.state[heads] = hks
        t.flags[heads] |= t.bit

    def _hold_clear(self, zone: int, heads: list[int], order_pages: int) -> None:
        """Released by the rule: clear the flag bit of these held heads (``order_pages`` pages in all)."""
        rule = self._hold_rule
        assert rule is not None
        nr = len(heads)
        if not nr:
            return
        self._rule_held[zone] -= order_pages
        stats = rule.stats
        stats.released += nr
        stats.cleared += 1
        words, shift, stride, bit = rule.words, rule.shift, rule.stride, rule.bit
        keep = ~bit & 0xFFFFFFFFFFFFFFFF
        if nr < _NP_RUN:
            for h in heads:
                mv, k = words[h >> shift]  # type: ignore[misc]  # held by the rule: it has page_ext
                mv[k + h * stride] &= keep
            return
        a = np.fromiter(heads, np.intp, nr)
        t = self._hold_table_of(rule, int(a.min()), int(a.max()))  # numpy's: a third of min() and max() on the list
        if t is not None:
            a -= t.base
            t.flags[a] &= ~t.bit
            return
        for (mv, k), part in self._by_section(a, words, shift, rule.client):
            arr = np.asarray(mv)
            arr[k + part * stride] &= np.uint64(keep)

    def _find_suitable_fallback(self, zone: int, order: int, start_mt: int) -> tuple[int, bool]:
        """``find_suitable_fallback``: the first non-empty fallback type at this order, and ``can_steal``.

        Only the first non-empty type in the fallback table's order is
        considered (-1 when both are empty).  ``can_steal_fallback``: a whole
        pageblock or more, half a pageblock or more, or an Unmovable or
        Reclaimable request (or mobility grouping off).
        """
        ne = self._nonempty
        base = zone * MIGRATE_TYPES
        for fmt in FALLBACKS[start_mt]:
            if ne[base + fmt] >> order & 1:
                pbo = self.pageblock_order
                return fmt, (order >= pbo // 2 or start_mt != MIGRATE_MOVABLE or not self.mobility_grouping)
        return -1, False

    def _rmqueue_fallback(self, zone: int, order: int, start_mt: int, aflags: int = 0) -> int:
        """``__rmqueue_fallback`` (6.12): take a block of another migratetype, the largest first.

        From the largest order down: the first order with a suitable fallback
        block is taken, unless a Movable request could not claim its pageblock
        (then the smallest suitable block is taken instead, ``find_smallest``).
        Under ``ALLOC_NOFRAGMENT`` only blocks of at least a pageblock are
        looked at (so no pageblock becomes mixed).
        """
        if start_mt >= MIGRATE_PCPTYPES:
            return -1
        pbo = self.pageblock_order
        min_order = pbo if order < pbo and aflags & ALLOC_NOFRAGMENT else order
        for cur in range(self.max_order, min_order - 1, -1):
            fmt, can_steal = self._find_suitable_fallback(zone, cur, start_mt)
            if fmt < 0:
                continue
            if not can_steal and start_mt == MIGRATE_MOVABLE and cur > order:
                break  # find_smallest
            return self._steal_suitable_fallback(zone, cur, order, start_mt, fmt, can_steal)
        else:
            return -1
        for cur in range(order, self.max_order + 1):
            fmt, can_steal = self._find_suitable_fallback(zone, cur, start_mt)
            if fmt >= 0:
                return self._steal_suitable_fallback(zone, cur, order, start_mt, fmt, can_steal)
        return -1  # not reached: a block was found above

    def _steal_suitable_fallback(self, zone: int, cur: int, order: int, start_mt: int, block_mt: int,
                                 whole_block: bool) -> int:
        """``steal_suitable_fallback`` (6.12): claim the found block's pageblock, or split just that block.

        A block of a pageblock or more is re-typed whole.  Otherwise, if
        ``whole_block`` and the pageblock lies inside the zone
        (``prep_move_freepages_block``) and at least half of it is free or
        allocated alike, the pageblock is claimed (its free blocks move to the
        request's type) and the smallest block of the request's type in the
        zone is taken.  Else the found block is split with its remainders left
        on its own type's lists: the pageblock becomes mixed.  The watermark
        boost is not modelled (kswapd would undo it).
        """
        self.nr_fallbacks += 1
        base = zone * MIGRATE_TYPES
        pbo = self.pageblock_order
        li = (base + block_mt) * self.nr_orders + cur
        pfn = self._fl_mv[li][self._fl_n[li] - 1]  # the list's head, as get_page_from_free_area takes it
        if cur >= pbo:
            self._pop(base + block_mt, cur)
            self.zone_free[zone] -= 1 << cur
            self.pb_mt[pfn >> pbo : (pfn + (1 << cur)) >> pbo] = start_mt
            self.nr_pageblock_claims += (1 << cur) >> pbo
            if cur != order:
                self._expand(zone, pfn, order, cur, start_mt)
            return pfn
        if whole_block and block_mt != MIGRATE_HIGHATOMIC:
            pb = pfn >> pbo
            start = pb << pbo
            z = self.geometry.zones[zone]
            if z.start_pfn <= start and start + (1 << pbo) <= z.end_pfn:
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
                if free_pages + alike >= (1 << (pbo - 1)) or not self.mobility_grouping:
                    self._move_freepages_block(zone, pb, block_mt, start_mt)
                    self.nr_pageblock_claims += 1
                    return self._rmqueue_smallest(zone, order, start_mt)
        # single_page: split the found block; the remainders stay on the block's type.
        self._pop(base + block_mt, cur)
        self.zone_free[zone] -= 1 << cur
        if cur != order:
            self._expand(zone, pfn, order, cur, block_mt)
        return pfn

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

    def set_pageblock_migratetype(self, pb: int, migratetype: int) -> None:
        """Re-type pageblock ``pb`` (a replayed trace says it changed hands): its free blocks move lists too."""
        old = self._pbmt[pb]
        if old != migratetype:
            self._move_freepages_block(self._pbz[pb], pb, old, migratetype)

    # -- whole ranges: boot, hotplug, isolation -----------------------------------------

    def free_all(self, present: Sequence[tuple[int, int]], reserved: Sequence[tuple[int, int]]) -> None:
        """Boot (``memblock_free_all``): count present pages per zone, mark the reservations, free the rest.

        Every present page outside ``reserved`` goes to the buddy as maximal
        aligned blocks.  Mobility grouping is turned off when there is less
        than one pageblock per migratetype (``build_all_zonelists``), then the
        per-CPU pagesets, zonelists and watermarks are built.
        """
        for z in self.geometry.zones:
            self.zone_present[z.index] = count_pages(_intersect(present, z.start_pfn, z.end_pfn))
        self.reserve_ranges(reserved)
        free = list(present)
        for r in reserved:
            free = _subtract(free, r)
        self.free_ranges(free)
        if sum(self.zone_free) < (1 << self.pageblock_order) * MIGRATE_TYPES:
            self.mobility_grouping = False
        self._init_pcp()

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
                self._fl_mv[li] = memview(grown)
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
        saved: np.ndarray = self.pb_mt[start >> pbo : ((end - 1) >> pbo) + 1].copy()
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

    def _rmqueue_pcplist(self, zone: int, order: int, mt: int, aflags: int) -> int:
        """``rmqueue_pcplist``: a block from this CPU's list for (order, type), refilled when empty.

        The refill takes ``nr_pcp_alloc`` blocks from the buddy (``rmqueue_bulk``,
        each through ``__rmqueue``, so with fallbacks); the list's head is
        handed out.  -1 when the list is empty and nothing could be taken.
        """
        pcp = self._pcps[self.cpu][zone]
        pcp.free_count >>= 1
        pindex = order * 3 + mt if order <= PAGE_ALLOC_COSTLY_ORDER else NR_PCP_ORDER_LISTS + (mt == MIGRATE_MOVABLE)
        pl = self._pcp[self.cpu][zone * NR_PCP_LISTS + pindex]
        if not pl:
            self._rmqueue_bulk(zone, order, mt, self._nr_pcp_alloc(pcp, zone, order), aflags, pl)
            if not pl:
                return -1
            pl.reverse()  # the first block taken is the list's head
            self.nr_pcp_refilled += len(pl)
            n = len(pl) << order
            pcp.count += n
            self.zone_pcp[zone] += n
        pcp.count -= 1 << order
        self.zone_pcp[zone] -= 1 << order
        return pl.pop()

    def _rmqueue_bulk(self, zone: int, order: int, mt: int, count: int, aflags: int, out: list[int]) -> None:
        """``rmqueue_bulk``: up to ``count`` blocks of ``order`` from the buddy, appended to ``out`` in the order taken.

        Each block is what ``__rmqueue`` would return one at a time (the same
        pfns, lists and counters afterwards), but worked out per run rather
        than per block:

        - blocks of the wanted order are popped from the top of their list as
          one slice;
        - when the smallest block is of a higher order, every list between
          the two orders is empty, so the blocks taken one by one would be
          this block's consecutive pieces (each ``expand`` leaves exactly one
          piece per order, the next smallest is always the next piece): they
          are taken as a range and what is left of the block goes on the
          lists as its maximal aligned pieces, one per list, as ``expand``
          would have left them.  With a split call-out attached (guard
          pages) each split goes through ``_expand``, block by block;
        - a fallback (no block of the type) is taken block by block.
        """
        st = self._st
        pf = self._pf
        k = PCP_K | order
        zm = zone * MIGRATE_TYPES + mt
        ne = self._nonempty
        fl_n = self._fl_n
        fl_mv = self._fl_mv
        nr_orders = self.nr_orders
        zone_free = self.zone_free
        split = self._on_split
        below = self._hold_below
        # The hold rule's pieces, done at the end: the 2^below units split, and (start, end, g) for the
        # blocks of an order g below the rule's that were split (each one unit); how many blocks in all.
        held_units: list[int] = []
        held_lo, held_hi = self.geometry.max_pfn, 0  # the pfns they span
        holds: list[tuple[int, int, int]] = []
        held_blocks = 0
        grown = self._fl_grown
        if grown is None:
            grown = self._fl_grown = [0] * len(ne)
        left = count
        while left:
            avail = ne[zm] >> order
            if not avail:
                pfn = self._rmqueue_fallback(zone, order, mt, aflags)
                if pfn < 0:
                    break
                st[pfn] = k
                out.append(pfn)
                left -= 1
                continue
            cur = order + (avail & -avail).bit_length() - 1
            li = zm * nr_orders + cur
            n = fl_n[li]
            mv = fl_mv[li]
            if cur == order:  # a run off the top of the list
                t = n if n < left else left
                n -= t
                fl_n[li] = n
                if not n:
                    ne[zm] &= ~(1 << cur)
                run = mv[n : n + t].tolist()
                run.reverse()
                if t < _NP_RUN:
                    for p in run:
                        st[p] = k
                        pf[p] = 0
                else:
                    heads = self._fl_arr[li][n : n + t]
                    self.state[heads] = k
                    self.pflags[heads] = 0
                zone_free[zone] -= t << order
                out += run
                left -= t
                continue
            n -= 1
            fl_n[li] = n
            pfn = mv[n]
            if not n:
                ne[zm] &= ~(1 << cur)
            pf[pfn] = 0
            zone_free[zone] -= 1 << cur
            if split is not None:  # a client may hold pieces: expand block by block
                self._expand(zone, pfn, order, cur, mt)
                st[pfn] = k
                out.append(pfn)
                left -= 1
                continue
            # The block's first t pieces of the wanted order, as a range.  With a hold rule
            # below order g > order, each aligned 2^g unit gives one piece: its halves below g
            # are held as each unit is split (and the next piece is the next unit's).
            g = order if below <= order else (below if below < cur else cur)
            step = 1 << g
            nb = 1 << (cur - g)
            t = nb if nb < left else left
            end = pfn + (t << g)
            if t < _NP_RUN:
                for p in range(pfn, end, step):
                    st[p] = k
                    pf[p] = 0
            else:
                self.state[pfn:end:step] = k
                self.pflags[pfn:end:step] = 0
            pieces = range(pfn, end, step)
            out += pieces
            left -= t
            if g > order:  # the rule holds the rest of each unit (done at the end)
                held_blocks += 1
                if g == below:
                    held_units += pieces
                    if pfn < held_lo:
                        held_lo = pfn
                    if end > held_hi:
                        held_hi = end
                else:  # a block smaller than the rule's order: one unit of its own order
                    holds.append((pfn, end, g))
            # The first expand pushed one piece on each list from g to cur - 1 (growing an
            # unused list's array): keep the arrays as they would be.  Arrays never shrink,
            # so a list seen with room is not looked at again (``grown``: orders per list group).
            need = ((1 << cur) - 1) & ~((1 << g) - 1)
            if need & ~grown[zm]:
                for q in range(g, cur):
                    if not len(fl_mv[zm * nr_orders + q]):
                        self._grow(zm * nr_orders + q)
                grown[zm] |= need
            # What is left of the block: its maximal aligned pieces, one on each of their (empty) lists.
            stop = pfn + (1 << cur)
            p = end
            freed = stop - end
            while p < stop:
                q = ((p - pfn) & (pfn - p)).bit_length() - 1
                st[p] = FREE_K | q
                pf[p] = 0
                lq = zm * nr_orders + q
                fl_mv[lq][0] = p
                fl_n[lq] = 1
                ne[zm] |= 1 << q
                p += 1 << q
            zone_free[zone] += freed
        if held_blocks:
            self._hold_pieces(zone, held_units, holds, order, held_blocks, held_lo, held_hi)

    def _nr_pcp_alloc(self, pcp: PerCpuPages, zone: int, order: int) -> int:
        """``nr_pcp_alloc``: how many blocks a refill takes (batch, doubled by runs of order-0 allocations)."""
        base_batch = pcp.batch
        high = pcp.high = min(max(pcp.high, pcp.high_min), pcp.high_max)
        if high < base_batch:
            return 1
        batch = base_batch if order else base_batch << pcp.alloc_factor
        if pcp.high_min != pcp.high_max and not self.zone_below_high[zone]:
            high = pcp.high = min(high + batch, pcp.high_max)
        if not order:
            max_nr_alloc = max(high - pcp.count - base_batch, base_batch)
            if batch <= max_nr_alloc and pcp.alloc_factor < PCP_BATCH_SCALE_MAX:
                pcp.alloc_factor += 1
            batch = min(batch, max_nr_alloc)
        if batch > 1:
            batch = max(batch >> order, 2)
        return batch

    def _free_unref_page(self, pfn: int, order: int, zone: int) -> None:
        """``free_unref_page``: a block of a pcp order goes to the head of this CPU's list.

        When the CPU's count over all its lists reaches ``nr_pcp_high``, a
        bulk of ``nr_pcp_free`` pages goes back to the buddy
        (``free_pcppages_bulk``).  Isolated pageblocks bypass the lists;
        HighAtomic ones use the Movable list.
        """
        mt = self._pbmt[pfn >> self.pageblock_order]
        if mt >= MIGRATE_PCPTYPES:
            if mt == MIGRATE_ISOLATE:
                self._free_one(pfn, order, zone)
                return
            mt = MIGRATE_MOVABLE
        cpu = self.cpu
        pcp = self._pcps[cpu][zone]
        pcp.alloc_factor >>= 1
        pindex = order * 3 + mt if order <= PAGE_ALLOC_COSTLY_ORDER else NR_PCP_ORDER_LISTS + (mt == MIGRATE_MOVABLE)
        self._pcp[cpu][zone * NR_PCP_LISTS + pindex].append(pfn)
        self._st[pfn] = PCP_K | order
        n = 1 << order
        count = pcp.count + n
        pcp.count = count
        self.zone_pcp[zone] += n
        batch = pcp.batch
        free_count = pcp.free_count
        free_high = False
        if order and order <= PAGE_ALLOC_COSTLY_ORDER:
            # PCPF_FREE_HIGH_BATCH (a CPU cache slice above 3 x batch) is never set: no caches modelled.
            free_high = free_count >= batch and pcp.prev_free_high_order
            pcp.prev_free_high_order = True
        else:
            pcp.prev_free_high_order = False
        if free_count < batch << PCP_BATCH_SCALE_MAX:
            free_count += n
            pcp.free_count = free_count
        # nr_pcp_high (ZONE_RECLAIM_ACTIVE is never set: no reclaim)
        high_min = pcp.high_min
        high_max = pcp.high_max
        high = pcp.high
        if high < high_min:  # min(max(high, high_min), high_max)
            high = high_min
        if high > high_max:
            high = high_max
        pcp.high = high
        if high:
            if free_high:
                pcp.high = max(high - (batch << PCP_BATCH_SCALE_MAX), high_min)
                high = 0
            elif high_min != high_max:
                if self.zone_below_high[zone]:
                    pcp.high = max(high - max(free_count, batch), high_min)
                    high = max(count, high_min)
                elif count >= high:
                    need_high = free_count + batch
                    if high < need_high:
                        pcp.high = min(max(need_high, high_min), high_max)
        if count >= high:
            # nr_pcp_free
            if free_high:
                nr = min(count, batch << PCP_BATCH_SCALE_MAX)
            elif high < batch:
                nr = 1
            else:
                nr = min(max(free_count, batch), high - batch)
            self._free_pcppages_bulk(zone, nr, pcp, pindex, self._pcp[cpu])
            if self.zone_below_high[zone] and \
                    self._nr_free_pages_wm(zone) > self._wm_thr[WMARK_HIGH][ZONE_MOVABLE][zone]:
                self.zone_below_high[zone] = False

    def _free_pcppages_bulk(self, zone: int, count: int, pcp: PerCpuPages, pindex: int,
                            lists: list[list[int]]) -> None:
        """``free_pcppages_bulk``: ``count`` pages back to the buddy, round-robin over the lists.

        Starts with the list just freed to and takes each list's oldest
        blocks (its tail); each is freed with its pageblock's type now.
        Each block goes through ``__free_one_page`` as ``_free_one`` does
        it, written out here with the state bound once per bulk: this is
        where most blocks of a workload return to the buddy.
        """
        count = min(pcp.count, count)
        base = zone * NR_PCP_LISTS
        thp = self.thp_order
        st = self._st
        pf = self._pf
        pbo = self.pageblock_order
        pbmt = self._pbmt
        maxo = self.max_order
        nr_orders = self.nr_orders
        zbase = zone * MIGRATE_TYPES
        lbase = [(zbase + t) * nr_orders for t in range(MIGRATE_TYPES)]  # list index of (type, order 0)
        fl_n = self._fl_n
        fl_mv = self._fl_mv
        ne = self._nonempty
        release_held = self._release_held
        # Every held page of the zone is the hold rule's: a held buddy is released by its state
        # alone, and the rule's bits are cleared in one batch at the end.
        by_rule = self._hold_rule is not None and self.zone_held[zone] == self._rule_held[zone]
        released: list[int] = []
        released_pages = 0
        freed = 0  # pages added to zone_free
        pindex -= 1
        while count > 0:
            while True:
                pindex += 1
                if pindex >= NR_PCP_LISTS:
                    pindex = 0
                pl = lists[base + pindex]
                if pl:
                    break
            order0 = pindex // 3 if pindex < NR_PCP_ORDER_LISTS else thp
            n0 = 1 << order0
            k = min(len(pl), -(-count // n0))
            cold = pl[:k]
            del pl[:k]
            self.nr_pcp_returned += k
            count -= k * n0
            pcp.count -= k * n0
            self.zone_pcp[zone] -= k * n0
            fk0 = FREE_K | order0
            for pfn in cold:
                # _free_one(pfn, order0, zone), with 1 << order and FREE_K | order carried along
                order = order0
                bit = n0
                fk = fk0
                mt = pbmt[pfn >> pbo]
                st[pfn] = 0
                while order < maxo:
                    buddy = pfn ^ bit
                    s = st[buddy]
                    if s != fk:
                        if s != fk + (HELD_K - FREE_K):
                            break
                        if by_rule:
                            released.append(buddy)
                            released_pages += bit
                        elif not release_held(buddy, order, zone):
                            break
                    else:
                        bmt = pbmt[buddy >> pbo]
                        if bmt != mt and order >= pbo and (bmt >= MIGRATE_HIGHATOMIC or mt >= MIGRATE_HIGHATOMIC):
                            break
                        li = lbase[bmt] + order
                        i = pf[buddy]
                        n = fl_n[li] - 1
                        fl_n[li] = n
                        if i != n:  # not the top of its list: the top takes its slot
                            mv = fl_mv[li]
                            last = mv[n]
                            mv[i] = last
                            pf[last] = i
                        pf[buddy] = 0
                        if not n:
                            ne[zbase + bmt] &= ~bit
                        freed -= bit
                        if bmt != mt:
                            self.pb_mt[buddy >> pbo : (buddy + bit) >> pbo] = mt
                    st[buddy] = 0
                    if buddy < pfn:
                        pfn = buddy
                    order += 1
                    bit <<= 1
                    fk += 1
                st[pfn] = fk
                li = lbase[mt] + order
                n = fl_n[li]
                try:
                    fl_mv[li][n] = pfn
                except IndexError:  # the list's array is full
                    self._grow(li)[n] = pfn
                pf[pfn] = n
                fl_n[li] = n + 1
                if not n:
                    ne[zbase + mt] |= bit
                freed += bit
        self.zone_free[zone] += freed
        if released:
            self.zone_held[zone] -= released_pages
            self._hold_clear(zone, released, released_pages)

    def drain_all_pages(self) -> int:
        """``drain_all_pages``: every CPU's lists back to the buddy; the number of pages moved.

        Per CPU and zone (``drain_pages_zone``) in chunks of batch << 5, each
        starting at list 0.
        """
        moved = 0
        for cpu, lists in enumerate(self._pcp):
            for zone, pcp in enumerate(self._pcps[cpu]):
                moved += pcp.count
                while pcp.count:
                    self._free_pcppages_bulk(zone, min(pcp.count, pcp.batch << PCP_BATCH_SCALE_MAX), pcp, 0, lists)
        err = self._deferred_hook_error  # a merge call-out that raised while the drain merged
        if err is not None:
            self._deferred_hook_error = None
            raise err
        return moved

    def nr_pcp_pages_total(self) -> int:
        """Pages on every CPU's lists (all zones)."""
        return sum(self.zone_pcp)

    def pcp_stats(self, cpu: int, zone: int) -> tuple[int, int, int]:
        """(count, high, batch) of one CPU's pageset for a zone, as /proc/zoneinfo prints them."""
        pcp = self._pcps[cpu][zone]
        return pcp.count, pcp.high, pcp.batch

    def pcp_snapshot(self, cpu: int, zone: int) -> PcpSnapshot:
        """One CPU's pageset for a zone, copied: its counters and limits, and its 14 lists (head first)."""
        pcp = self._pcps[cpu][zone]
        base = zone * NR_PCP_LISTS
        lists = tuple(tuple(reversed(pl)) for pl in self._pcp[cpu][base : base + NR_PCP_LISTS])
        return PcpSnapshot(pcp.count, pcp.high, pcp.batch, pcp.high_min, pcp.high_max, pcp.alloc_factor,
                           pcp.free_count, lists)

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
        # _release(pfn, order), written out
        zone = self._pbz[pfn >> self.pageblock_order]
        if not order:
            self._pf[pfn] = 0
        elif order < len(_ZEROS_U32):
            self._pf[pfn : pfn + (1 << order)] = _ZEROS_U32[order]
        else:
            self.pflags[pfn : pfn + (1 << order)] = 0
        if order <= PAGE_ALLOC_COSTLY_ORDER or order == self.thp_order:
            self._free_unref_page(pfn, order, zone)
        else:
            self._free_one(pfn, order, zone)
        err = self._deferred_hook_error
        if err is not None:
            self._deferred_hook_error = None
            raise err

    def _release(self, pfn: int, order: int) -> None:
        """Return an allocated block (no call-outs): pcp orders to this CPU's list, others to the buddy."""
        zone = self._pbz[pfn >> self.pageblock_order]
        if not order:
            self._pf[pfn] = 0
        elif order < len(_ZEROS_U32):
            self._pf[pfn : pfn + (1 << order)] = _ZEROS_U32[order]
        else:
            self.pflags[pfn : pfn + (1 << order)] = 0
        if order <= PAGE_ALLOC_COSTLY_ORDER or order == self.thp_order:
            self._free_unref_page(pfn, order, zone)
        else:
            self._free_one(pfn, order, zone)

    def _free_one(self, pfn: int, order: int, zone: int, to_tail: bool = False) -> None:
        """``__free_one_page``: merge with free (or held) buddies, then list the block (at the tail: FPI_TO_TAIL).

        The list operations of ``_remove``/``_push`` are written out here: this
        runs for every block a per-CPU bulk free returns.
        """
        st = self._st
        pf = self._pf
        pbo = self.pageblock_order
        pbmt = self._pbmt
        mt = pbmt[pfn >> pbo]
        maxo = self.max_order
        nr_orders = self.nr_orders
        base = zone * MIGRATE_TYPES
        fl_n = self._fl_n
        fl_mv = self._fl_mv
        ne = self._nonempty
        merged = 0
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
                # _remove(base + bmt, order, buddy)
                li = (base + bmt) * nr_orders + order
                i = pf[buddy]
                n = fl_n[li] - 1
                fl_n[li] = n
                mv = fl_mv[li]
                last = mv[n]
                mv[i] = last
                pf[last] = i
                pf[buddy] = 0
                if not n:
                    ne[base + bmt] &= ~(1 << order)
                merged += 1 << order
                if bmt != mt:
                    self.pb_mt[buddy >> pbo : (buddy + (1 << order)) >> pbo] = mt
            st[buddy] = 0
            pfn &= ~(1 << order)
            order += 1
        st[pfn] = FREE_K | order
        if to_tail:
            self._push_tail(base + mt, order, pfn)
        else:
            # _push(base + mt, order, pfn)
            zm = base + mt
            li = zm * nr_orders + order
            n = fl_n[li]
            mv = fl_mv[li]
            if n == len(mv):
                mv = self._grow(li)
            mv[n] = pfn
            pf[pfn] = n
            fl_n[li] = n + 1
            if not n:
                ne[zm] |= 1 << order
        self.zone_free[zone] += (1 << order) - merged

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
        """A freed block meets a held buddy (a guard): the hold rule's bit says it is the rule's, else ask its holder."""
        rule = self._hold_rule
        if rule is not None:
            ent = rule.words[pfn >> rule.shift]
            if ent is not None and ent[0][ent[1] + pfn * rule.stride] & rule.bit:
                self.zone_held[zone] -= 1 << order
                self._hold_clear(zone, [pfn], 1 << order)
                return True
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
        if order.__class__ is not int or not 0 <= order <= self.max_order:
            raise InvalidOrder(order, self.max_order)
        if pfn.__class__ is not int:
            raise TypeError(f"pfn must be an int, got {pfn!r}")
        assert isinstance(pfn, int) and isinstance(order, int)
        self.host.check_pfn(pfn)
        comm = self.host.current.comm
        s = self._st[pfn]
        kind, korder = s >> 4, s & 15
        dump = self.host.describe_page(pfn)
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
        mask: np.ndarray = np.cumsum(cover[:n]) > 0
        return mask

    # -- page flags ---------------------------------------------------------------------

    def _require_allocated(self, pfn: int, nr: int) -> None:
        if 0 <= pfn < len(self.state):
            s = self._st[pfn]
            if s >> 4 in (K_ALLOC, K_ALLOC_MOVABLE, K_RESERVED) and nr <= 1 << (s & 15):
                return  # the head of a block: the common case, answered without a search
        kind, order, head = self.page_kind(pfn)
        if kind not in (K_ALLOC, K_ALLOC_MOVABLE, K_RESERVED) or pfn + nr > head + (1 << order):
            self.host.check_pfn(pfn)
            raise BadPageState(pfn, "page flags on a page that is not allocated", "an allocated page",
                               f"a {KIND_NAMES[kind]} page", self.host.current.comm)

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
            raise BadPageState(pfn, "split_page on a compound page", "a non-compound block", "a compound (head) page", self.host.current.comm)
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
