"""The simulated machine: geometry, page allocator, contents, context and log.

Boot follows the kernel's order so that what depends on it can hook in at
the same points: memblock (holes, reservations, early allocations such as
FLATMEM page_ext tables) → ``free_all`` (memory handed to the buddy
allocator) → late users (SPARSEMEM page_ext tables, clients' ``init``).
``Machine(config)`` does all of it; ``Machine(config, memblock_only=True)``
stops before ``free_all`` so the page_ext framework can reserve memory first.

The machine is the front plugins, sessions and tests use, composed of its
parts: the allocator (``buddy``: page state and every free-list change),
the task, CPU and stack (``ctx``, ``pageext_core.mm.context``), the oops
state (``oopses``, ``pageext_core.mm.oops``), memory hotplug (``hotplug``),
the page contents (``contents``), the kernel log (``log``) and the
call-out table (``callouts``).  The machine keeps memblock and the present
ranges itself, and forwards the parts' public methods and attributes
(``pageext_core.mm.delegate``): a forwarded method is the part's own bound
method, stored on the machine when it is made, so ``machine.alloc_pages`` costs
what ``machine.buddy.alloc_pages`` costs.
"""
from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from pageext_core.mm import dump_page
from pageext_core.mm.buddy import GFP_BIT_COMP, GFP_BIT_NOWARN, BuddyAllocator, PageKind
from pageext_core.mm.callouts import NO_CALLOUTS, Callouts
from pageext_core.mm.constants import (
    KERNEL_RELEASE,
    MIGRATE_REASONS,
    PAGE_SIZE,
    ZONE_MOVABLE,
    ZONE_NAMES,
)
from pageext_core.mm.contents import PageContents
from pageext_core.mm.context import Context, Task
from pageext_core.mm.delegate import bind_forwards, forward, forward_attr
from pageext_core.mm.errors import ConfigError, InvalidPfn
from pageext_core.mm.geometry import (
    Geometry,
    MachineConfig,
    ZoneSpan,
    _intersect,
    _merge,
    _subtract,
    build_geometry,
    format_size,
)
from pageext_core.mm.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL
from pageext_core.mm.hotplug import (  # noqa: F401 - re-exported: their home used to be here
    MEM_CANCEL_OFFLINE,
    MEM_CANCEL_ONLINE,
    MEM_GOING_OFFLINE,
    MEM_GOING_ONLINE,
    MEM_OFFLINE,
    MEM_ONLINE,
    Hotplug,
    MemoryBlock,
    MemoryNotifier,
)
from pageext_core.mm.oops import Oopses
from pageext_core.mm.pageflags import format_pageflags
from pageext_core.mm.printk import KernelLog
from pageext_core.mm.stackdepot import StackDepot

B = BuddyAllocator


class Machine:
    """A booted machine.  The allocator's entry points are ``alloc_pages`` and ``free_pages``."""

    def __init__(self, config: MachineConfig | None = None, *, memblock_only: bool = False,
                 log_sink: Callable[[str], None] | None = None) -> None:
        self.config = config or MachineConfig()
        self.geometry: Geometry = build_geometry(self.config)
        g = self.geometry
        self.log = KernelLog(lambda: self.buddy.clock_ns)
        self.log.sink = log_sink
        self.depot = StackDepot()
        self.contents = PageContents(g.max_pfn, self.check_pfn)
        self.buddy = BuddyAllocator(g, self, self.log, self.contents)
        self.ctx = Context(self.config.cpus, self.depot, self.buddy)
        self.oopses = Oopses(self.ctx, self.log)
        self.contents.oops = self.oopses.log_oops
        bind_forwards(self)  # machine.alloc_pages is buddy.alloc_pages: no call layer
        # The allocator's arrays and sizes, never rebound: the same objects as ``buddy``'s.
        b = self.buddy
        self.state: np.ndarray = b.state
        self.pflags: np.ndarray = b.pflags
        self.pb_mt: np.ndarray = b.pb_mt
        self.pb_zone: np.ndarray = b.pb_zone
        self.max_order: int = b.max_order
        self.pageblock_order: int = b.pageblock_order
        self.nr_orders: int = b.nr_orders
        self.nr_zones: int = b.nr_zones
        # Whoever holds pfns (a workload, a test) and must follow a block that
        # migration moves: called with (old_pfn, new_pfn, order, reason).
        self.migrate_observers: list[Callable[[int, int, int, str], None]] = []
        self.callouts: Callouts = NO_CALLOUTS
        self._on_migrate: tuple[Callable[[int, int, int, str], object], ...] = ()
        self._present: list[tuple[int, int]] = list(g.ram)
        self._present_starts = [s for s, _ in self._present]
        self.memblock_reserved: list[tuple[int, int]] = list(g.reserved)
        self.booted = False
        self.hotplug = Hotplug(self)
        # Called with (event, start_pfn, nr_pages) on every hotplug event; the same list as ``hotplug.notifiers``.
        self.memory_notifiers: list[MemoryNotifier] = self.hotplug.notifiers
        self._log_layout()
        if not memblock_only:
            self.free_all()

    # -- the allocator (``buddy``): its methods and state, forwarded --------------------------

    alloc_pages = forward("buddy", B.alloc_pages)
    free_pages = forward("buddy", B.free_pages)
    alloc_pages_at = forward("buddy", B.alloc_pages_at)
    drain_all_pages = forward("buddy", B.drain_all_pages)
    split_page = forward("buddy", B.split_page)
    page_kind = forward("buddy", B.page_kind)
    block_head = forward("buddy", B.block_head)
    is_allocated = forward("buddy", B.is_allocated)
    is_free = forward("buddy", B.is_free)
    allocated_blocks = forward("buddy", B.allocated_blocks)
    free_pages_mask = forward("buddy", B.free_pages_mask)
    block_mask = forward("buddy", B.block_mask)
    check_block = forward("buddy", B.check_block)
    page_flags = forward("buddy", B.page_flags)
    set_page_flags = forward("buddy", B.set_page_flags)
    clear_page_flags = forward("buddy", B.clear_page_flags)
    replace_page_flags = forward("buddy", B.replace_page_flags)
    cpu_to_node = forward("buddy", B.cpu_to_node)
    gfp_zone = forward("buddy", B.gfp_zone)
    zone_managed = forward("buddy", B.zone_managed)
    set_min_free_kbytes = forward("buddy", B.set_min_free_kbytes)
    set_lowmem_reserve_ratio = forward("buddy", B.set_lowmem_reserve_ratio)
    nr_free = forward("buddy", B.nr_free)
    free_list = forward("buddy", B.free_list)
    pcp_stats = forward("buddy", B.pcp_stats)
    pcp_snapshot = forward("buddy", B.pcp_snapshot)
    isolate_range = forward("buddy", B.isolate_range)
    unisolate_range = forward("buddy", B.unisolate_range)
    take_free_range = forward("buddy", B.take_free_range)

    clock_ns = forward_attr[int]("buddy", "The simulated clock (ns): each allocator operation adds ``op_cost_ns``.",
                                 writable=True)
    cpu = forward_attr[int]("buddy", "The CPU events run on (``set_cpu`` checks it).", writable=True)
    op_cost_ns = forward_attr[int]("buddy", "Simulated ns each allocator operation takes.", writable=True)
    mobility_grouping = forward_attr[bool]("buddy", "Grouping pages by mobility (off on tiny machines).",
                                           writable=True)
    nr_allocs = forward_attr[int]("buddy", "Allocations so far.")
    nr_frees = forward_attr[int]("buddy", "Frees so far.")
    nr_alloc_failures = forward_attr[int]("buddy", "Allocations that failed.")
    alloc_failures_by_order = forward_attr[list[int]]("buddy", "Failed allocations per order.")
    nr_fallbacks = forward_attr[int]("buddy", "Allocations that fell back to another migratetype.")
    nr_pageblock_claims = forward_attr[int]("buddy", "Pageblocks claimed by a fallback.")
    nr_pcp_refilled = forward_attr[int]("buddy", "Blocks per-CPU refills took from the buddy (rmqueue_bulk).")
    nr_pcp_returned = forward_attr[int]("buddy", "Blocks bulk frees and drains gave back (free_pcppages_bulk).")
    zone_free = forward_attr[list[int]]("buddy", "Free pages on the buddy lists, per zone.")
    zone_pcp = forward_attr[list[int]]("buddy", "Pages on per-CPU lists, per zone.")
    zone_held = forward_attr[list[int]]("buddy", "Pages held by page_ext clients (guard pages), per zone.")
    zone_present = forward_attr[list[int]]("buddy", "Present pages, per zone.")
    zone_reserved = forward_attr[list[int]]("buddy", "Memblock-reserved pages, per zone.")
    zone_wmark = forward_attr[list[tuple[int, int, int, int]]]("buddy", "Watermarks (min, low, high, promo), per zone.")
    zone_protection = forward_attr[list[list[int]]]("buddy", "lowmem_reserve per zone and highest zone type.")
    zone_below_high = forward_attr[list[bool]]("buddy", "ZONE_BELOW_HIGH, per zone.")
    totalreserve_pages = forward_attr[int]("buddy", "What MemAvailable holds back (calculate_totalreserve_pages).")
    min_free_kbytes = forward_attr[int]("buddy", "vm.min_free_kbytes in effect.")
    lowmem_reserve_ratio = forward_attr[tuple[int, ...]]("buddy", "vm.lowmem_reserve_ratio, per zone type.")
    pcp_batch = forward_attr[list[int]]("buddy", "Per-CPU list batch, per zone.")
    pcp_high_limits = forward_attr[list[tuple[int, int]]]("buddy", "Per-CPU (high_min, high_max), per zone.")

    # -- the context (``ctx``): task, CPU, stack --------------------------------------------

    set_task = forward("ctx", Context.set_task)
    set_cpu = forward("ctx", Context.set_cpu)
    set_stack = forward("ctx", Context.set_stack)
    set_stack_depth = forward("ctx", Context.set_stack_depth)
    current_stack = forward("ctx", Context.current_stack)
    current = forward_attr[Task]("ctx", "The task events are attributed to.", writable=True)
    explicit_stack = forward_attr[int]("ctx", "Depot handle set by ``set_stack``/``context`` (0: none).")
    stack_max_frames = forward_attr[int]("ctx", "Frames kept per stack (``set_stack_depth`` sets it).")

    @contextlib.contextmanager
    def context(self, task: Task | None = None, stack: Sequence[str] | int | None = None,
                cpu: int | None = None) -> Iterator[Machine]:
        """Run a block as ``task`` on ``cpu`` with ``stack``; restores the previous context."""
        with self.ctx.running(task, stack, cpu):
            yield self

    def advance(self, ns: int) -> None:
        """Move the simulated clock forward."""
        if ns < 0:
            raise ValueError("time only moves forward")
        self.buddy.clock_ns += ns

    # -- oopses (``oopses``) ------------------------------------------------------------------

    taint_text = forward("oopses", Oopses.taint_text)
    cpu_line = forward("oopses", Oopses.cpu_line)
    call_trace_lines = forward("oopses", Oopses.call_trace_lines)
    stack_info_lines = forward("oopses", Oopses.stack_info_lines)
    dump_stack_lines = forward("oopses", Oopses.dump_stack_lines)
    taint = forward_attr[set[str]]("oopses", "Taint letters (``D`` after an oops).")
    nr_oopses = forward_attr[int]("oopses", "Oopses logged so far.")
    debug_pagealloc_enabled = forward_attr[bool]("oopses", "debug_pagealloc_enabled(): shown in the oops header.",
                                                 writable=True)

    # -- boot ---------------------------------------------------------------------

    def _log_layout(self) -> None:
        g = self.geometry
        log = self.log.info
        log(f"Linux version {KERNEL_RELEASE} (pageext simulated machine) #1 SMP PREEMPT_DYNAMIC")
        log(f"pageext: memory model: {self.config.memory_model}, {len(g.nodes)} node(s), {self.config.cpus} CPU(s)")
        log("Zone ranges:")
        for zt, name in enumerate(ZONE_NAMES[:ZONE_MOVABLE]):
            spans = [z for z in g.zones if z.ztype == zt and z.spanned_pages]
            if spans:
                s, e = min(z.start_pfn for z in spans), max(z.end_pfn for z in spans)
                log(f"  {name:<8s} [mem {s * PAGE_SIZE:#018x}-{e * PAGE_SIZE - 1:#018x}]")
            else:
                log(f"  {name:<8s} empty")
        log("Movable zone start for each node")
        for z in g.zones:
            if z.ztype == ZONE_MOVABLE and z.spanned_pages:
                log(f"  Node {z.node}: {z.start_pfn * PAGE_SIZE:#018x}")
        log("Early memory node ranges")
        for n in g.nodes:
            for s, e in _intersect(g.ram, n.start_pfn, n.end_pfn):
                log(f"  node {n.nid:3d}: [mem {s * PAGE_SIZE:#018x}-{e * PAGE_SIZE - 1:#018x}]")

    def memblock_alloc(self, nid: int, nr_pages: int) -> int:
        """Reserve pages before ``free_all`` (top-down in the node), as memblock does.

        Used by the FLATMEM page_ext tables; returns the first pfn.
        """
        if self.booted:
            raise RuntimeError("memblock_alloc after free_all: use alloc_pages_exact")
        free = [r for r in _intersect(self._present, self.geometry.nodes[nid].start_pfn, self.geometry.nodes[nid].end_pfn)]
        for r in self.memblock_reserved:
            free = _subtract(free, r)
        for s, e in reversed(free):
            if e - s >= nr_pages:
                self.memblock_reserved = sorted(self.memblock_reserved + [(e - nr_pages, e)])
                return e - nr_pages
        raise ConfigError(f"memblock: cannot reserve {nr_pages} pages on node {nid}: not enough contiguous memory")

    def free_all(self) -> None:
        """``memblock_free_all``: the allocator marks the reservations and takes every other present page."""
        if self.booted:
            return
        b = self.buddy
        b.free_all(self._present, self.memblock_reserved)
        self.booted = True
        total = sum(b.zone_free)
        managed = sum(b.zone_present) - sum(b.zone_reserved)
        self.log.info(
            f"Built {len(self.geometry.nodes)} zonelists, mobility grouping {'on' if b.mobility_grouping else 'off'}.  "
            f"Total pages: {managed}"
        )
        present_kb = sum(b.zone_present) * PAGE_SIZE // 1024
        self.log.info(
            f"Memory: {total * PAGE_SIZE // 1024}K/{present_kb}K available "
            f"({sum(b.zone_reserved) * PAGE_SIZE // 1024}K reserved)"
        )

    # -- call-outs ------------------------------------------------------------------------

    def install(self, callouts: Callouts) -> None:
        """Make ``callouts`` the machine's call-out table (the page_ext framework does, at boot).

        Replaces the whole table; ``install(NO_CALLOUTS)`` removes every call-out.
        """
        self.buddy.bind_callouts(callouts)
        self._on_migrate = tuple(c.fn for c in callouts.migrate)
        self.contents.fault_handlers = [c.fn for c in callouts.fault]
        self.callouts = callouts

    # -- pfn checks and descriptions --------------------------------------------------

    def pfn_valid(self, pfn: int) -> bool:
        """True for a pfn of present (online, not a hole) memory."""
        i = bisect.bisect_right(self._present_starts, pfn) - 1
        return i >= 0 and pfn < self._present[i][1]

    def check_pfn(self, pfn: int) -> None:
        """Raise ``InvalidPfn`` saying why a pfn is not usable memory."""
        g = self.geometry
        if pfn.__class__ is not int or pfn < 0 or pfn >= g.max_pfn:
            raise InvalidPfn(pfn if isinstance(pfn, int) else -1,
                             f"outside memory (valid pfns are 0..{g.max_pfn - 1:#x}, {format_size(g.max_pfn * PAGE_SIZE)})")
        if self.pfn_valid(pfn):
            return
        for s, e in g.hotplug_blocks:
            if s <= pfn < e:
                raise InvalidPfn(pfn, f"in an offline memory block [{s:#x}, {e:#x}); online it first")
        for s, e in g.holes:
            if s <= pfn < e:
                raise InvalidPfn(pfn, f"in a memory hole [{s:#x}, {e:#x})")
        raise InvalidPfn(pfn, "not present memory (a hole or an offline section)")

    def zone_of(self, pfn: int) -> int:
        """Zone index of a pfn (from its pageblock): ``geometry.zones[i]``."""
        return int(self.pb_zone[pfn >> self.pageblock_order])

    def zones_of(self, pfns: np.ndarray) -> np.ndarray:
        """Zone index of each pfn (vectorised ``zone_of``), as int64."""
        zones: np.ndarray = self.pb_zone[np.asarray(pfns, np.int64) >> self.pageblock_order].astype(np.int64)
        return zones

    def node_zone(self, pfn: int) -> tuple[int, int]:
        """(node id, zone type) of a pfn, as ``%pGp`` prints them."""
        z = self.geometry.zones[self.zone_of(pfn)]
        return z.node, z.ztype

    def format_page_flags(self, pfn: int) -> str:
        """``%pGp`` of a page: ``0x200(workingset|node=0|zone=1)``."""
        node, zt = self.node_zone(pfn)
        return format_pageflags(self.page_flags(pfn), node, zt)

    def pageblock_migratetype(self, pfn: int) -> int:
        """Migratetype of the pageblock holding ``pfn`` (``MIGRATETYPE_NAMES[i]``)."""
        return int(self.pb_mt[pfn >> self.pageblock_order])

    def pageblock_migratetypes(self, pfns: np.ndarray) -> np.ndarray:
        """Migratetype of each pfn's pageblock (vectorised ``pageblock_migratetype``), as int64."""
        mts: np.ndarray = self.pb_mt[np.asarray(pfns, np.int64) >> self.pageblock_order].astype(np.int64)
        return mts

    def populated_zones(self, nid: int | None = None) -> list[ZoneSpan]:
        """Zones with present memory (of one node, or all), in index order."""
        return [z for z in self.geometry.zones if self.zone_present[z.index] and (nid is None or z.node == nid)]

    def blocks_of(self, *kinds: PageKind) -> tuple[np.ndarray, np.ndarray]:
        """Head pfns and orders of every block of these kinds, in pfn order (vectorised; ``block_mask`` covers them)."""
        found = np.isin(self.state >> 4, np.array([int(k) for k in kinds], np.uint8))
        heads = np.flatnonzero(found)
        return heads, (self.state[heads] & 15)

    def describe_page(self, pfn: int) -> str:
        """A ``dump_page`` description (the lines before ``page dumped because``), as 6.12's ``__dump_folio``."""
        return dump_page.describe_page(self, pfn)

    # -- page contents ------------------------------------------------------------------

    def read(self, pfn: int, offset: int = 0, n: int = PAGE_SIZE) -> bytes:
        """Read memory; an unmapped page raises ``PageFault`` with the clients' report."""
        return self.contents.read(pfn, offset, n)

    def write(self, pfn: int, offset: int, data: bytes) -> None:
        self.contents.write(pfn, offset, data)

    # -- allocation helpers ---------------------------------------------------------------

    def alloc_pages_exact(self, nr_pages: int, gfp_mask: int = GFP_KERNEL) -> int | None:
        """``alloc_pages_exact``: ``nr_pages`` contiguous order-0 pages; the tail of the block is freed."""
        if nr_pages <= 0:
            raise ValueError("nr_pages must be positive")
        order = (nr_pages - 1).bit_length()
        if order > self.max_order:
            raise ValueError(f"{nr_pages} pages is more than one max-order block ({1 << self.max_order} pages)")
        # As the kernel does: a compound block could not be split into order-0 pages.
        gfp_mask &= ~GFP_BIT_COMP
        pfn = self.alloc_pages(gfp_mask, order)
        if pfn is None:
            return None
        self.buddy.free_pages_exact_tail(pfn, nr_pages, order)
        return pfn

    def free_pages_exact(self, pfn: int, nr_pages: int) -> None:
        for p in range(pfn, pfn + nr_pages):
            self.free_pages(p, 0)

    def migrate_pages(self, pfn: int, order: int, reason: str = "compaction", gfp_mask: int = GFP_HIGHUSER_MOVABLE) -> int | None:
        """Move an allocated block to a new one (compaction, hotplug...); the new head pfn.

        Contents are copied and clients told (page_owner copies its record and
        records the reason); the old block is freed.  None when no target block
        could be allocated: the block stays where it was (the failed attempt is
        counted like any allocation failure).
        """
        if reason not in MIGRATE_REASONS:
            raise ValueError(f"migrate reason {reason!r}: expected one of {', '.join(MIGRATE_REASONS)}")
        self.check_block(pfn, order)
        flags = self.page_flags(pfn)
        # The target is allocated like any block (clients map it, record it);
        # the migrate call-out then lets them copy the old block's record over.
        new = self.alloc_pages(gfp_mask | GFP_BIT_NOWARN, order)
        if new is None:
            return None
        for i in range(1 << order):
            self.contents.copy_page(new + i, pfn + i)
        self.replace_page_flags(new, flags)
        for h in self._on_migrate:
            h(pfn, new, order, reason)
        self.replace_page_flags(pfn, 0)
        self.free_pages(pfn, order)
        for observer in self.migrate_observers:
            observer(pfn, new, order, reason)
        return new

    # -- memory hotplug (pageext_core.mm.hotplug) -------------------------------------------

    @property
    def memory_blocks(self) -> list[MemoryBlock]:
        """Boot RAM and hot-pluggable memory, in memory-block units, by address (see ``Hotplug.blocks``)."""
        return self.hotplug.blocks

    def online_memory_block(self, index: int) -> None:
        """Bring a memory block online (``Hotplug.online``)."""
        self.hotplug.online(index)

    def offline_memory_block(self, index: int, migrate: bool = False) -> None:
        """Take a memory block offline (``Hotplug.offline``)."""
        self.hotplug.offline(index, migrate)

    # -- present memory --------------------------------------------------------------------------

    def set_present(self, ranges: Sequence[tuple[int, int]], present: bool) -> None:
        """Mark page ranges present (online) or not; ``pfn_valid`` follows."""
        cur = list(self._present)
        for r in ranges:
            cur = _subtract(cur, r)
        if present:
            cur = cur + list(ranges)
        merged = _merge(cur)
        self._present = merged
        self._present_starts = [s for s, _ in merged]

    @property
    def present_ranges(self) -> list[tuple[int, int]]:
        return list(self._present)

    def section_present(self, section: int) -> bool:
        shift = self.geometry.section_shift
        s, e = section << shift, (section + 1) << shift
        return any(ps < e and pe > s for ps, pe in self._present)

    def present_sections(self) -> list[int]:
        """Sections with any present memory, ascending."""
        shift = self.geometry.section_shift
        out: set[int] = set()
        for s, e in self._present:
            out.update(range(s >> shift, ((e - 1) >> shift) + 1))
        return sorted(out)

    # -- totals ----------------------------------------------------------------------------------

    @property
    def nr_free_pages(self) -> int:
        """The kernel's NR_FREE_PAGES: pages on buddy free lists, per-CPU pages not included.

        As 6.12's ``account_freepages``, free pages on MIGRATE_ISOLATE lists
        (pageblocks being offlined) are not counted: MemFree drops when a
        block is isolated and comes back if the isolation is undone.
        """
        return sum(self.zone_free) - self.nr_isolated_free_pages

    def zone_nr_free_pages(self, zone: int) -> int:
        """NR_FREE_PAGES of one zone (index into ``geometry.zones``): isolated free pages not counted."""
        return self.buddy.zone_free[zone] - self.buddy.isolated_free_pages(zone)

    @property
    def nr_isolated_free_pages(self) -> int:
        """Free pages on MIGRATE_ISOLATE free lists (counted by pageext_meminfo, not by MemFree)."""
        return sum(self.buddy.isolated_free_pages(z) for z in range(self.nr_zones))

    @property
    def nr_pcp_pages(self) -> int:
        return sum(self.zone_pcp)

    @property
    def nr_present_pages(self) -> int:
        return sum(self.zone_present)

    @property
    def nr_reserved_pages(self) -> int:
        return sum(self.zone_reserved)

    @property
    def nr_held_pages(self) -> int:
        return sum(self.zone_held)

    @property
    def nr_allocated_pages(self) -> int:
        return self.nr_present_pages - sum(self.zone_free) - self.nr_pcp_pages - self.nr_reserved_pages - self.nr_held_pages

    def host_bytes(self) -> dict[str, int]:
        """Host memory the model holds, by part (virtual sizes of the arrays)."""
        return {
            "state": self.state.nbytes,
            "pflags": self.pflags.nbytes,
            "pageblocks": self.pb_mt.nbytes + self.pb_zone.nbytes,
            "free_lists": self.buddy.free_list_bytes(),
            "contents": self.contents.host_bytes,
        }
