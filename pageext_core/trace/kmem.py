"""``perf kmem stat --page`` from a trace's events, in perf's own layout.

The numbers follow perf's rules (tools/perf/builtin-kmem.c, 6.12), not the
live set's, so the report can be compared with perf's on the same trace:

* only ``mm_page_alloc`` and ``mm_page_free`` count (``mm_page_free_batched``
  always comes with an ``mm_page_free`` of the same page);
* a failed allocation counts as a request and a failure, nothing else;
* a second allocation of a live pfn adds to that pfn's entry (perf keeps
  one entry per pfn), and a free is matched by pfn alone;
* a free whose pfn is not live is "free-only" (allocated before recording);
* the order table indexes raw migratetype values under perf's old labels, so
  on 6.12 the ``Reclaimable`` column holds Movable (1) and ``Movable`` holds
  Reclaimable (2); ``--live`` counts allocations minus frees.

Callsite: the first of the first 16 frames whose symbol does not match
``^_?_?(alloc|get_free|get_zeroed)_pages?`` (nor name one of the allocator's
internals below the tracepoint, ``post_alloc_hook``, ``get_page_from_freelist``
and the like, which page_owner-style stacks carry); with none, the innermost frame
(perf falls back to the sample's ip); with no stack, ``0``.  Rows tie-break
by callsite name where perf uses the callsite's address.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pageext_core.mm.gfp import format_gfp
from pageext_core.trace.events import ALLOC, FREE, StackTable, TraceEvent

DOTTED = "-" * 105
MAX_PAGE_ORDER = 11  # perf's table covers orders 0..10
MAX_MIGRATE_TYPES = 6
MIGRATE_TYPE_STR = ("UNMOVABL", "RECLAIM", "MOVABLE", "RESERVED", "CMA/ISLT", "UNKNOWN")
ALLOC_FUNC = re.compile(r"_?_?(alloc|get_free|get_zeroed)_pages?")
CALLCHAIN_DEPTH = 16

# perf's gfp_compact_table: full flag name -> short form (names not listed are dropped)
GFP_COMPACT: dict[str, str] = {
    "GFP_TRANSHUGE": "THP", "GFP_TRANSHUGE_LIGHT": "THL", "GFP_HIGHUSER_MOVABLE": "HUM",
    "GFP_HIGHUSER": "HU", "GFP_USER": "U", "GFP_KERNEL_ACCOUNT": "KAC", "GFP_KERNEL": "K",
    "GFP_NOFS": "NF", "GFP_ATOMIC": "A", "GFP_NOIO": "NI", "GFP_NOWAIT": "NW", "GFP_DMA": "D",
    "__GFP_HIGHMEM": "HM", "GFP_DMA32": "D32", "__GFP_HIGH": "H", "__GFP_IO": "I", "__GFP_FS": "F",
    "__GFP_NOWARN": "NWR", "__GFP_RETRY_MAYFAIL": "R", "__GFP_NOFAIL": "NF", "__GFP_NORETRY": "NR",
    "__GFP_COMP": "C", "__GFP_ZERO": "Z", "__GFP_NOMEMALLOC": "NMA", "__GFP_MEMALLOC": "MA",
    "__GFP_HARDWALL": "HW", "__GFP_THISNODE": "TN", "__GFP_RECLAIMABLE": "RC", "__GFP_MOVABLE": "M",
    "__GFP_ACCOUNT": "AC", "__GFP_WRITE": "WR", "__GFP_RECLAIM": "R", "__GFP_DIRECT_RECLAIM": "DR",
    "__GFP_KSWAPD_RECLAIM": "KR",
}
SORT_KEYS = ("page", "callsite", "bytes", "hit", "order", "migtype", "gfp")


def compact_gfp(names: str) -> str:
    """perf's short form of a gfp name list: ``GFP_KERNEL|__GFP_ZERO`` -> ``K|Z``."""
    return "|".join(GFP_COMPACT[n] for n in names.split("|") if n in GFP_COMPACT)


# The page allocator's own frames below the tracepoint, as page_owner stacks show them (a kernel
# trace's stack starts at __alloc_pages; stacks recorded from page_owner-style frames start lower).
ALLOC_INTERNAL = frozenset({"post_alloc_hook", "prep_new_page", "get_page_from_freelist", "rmqueue",
                            "rmqueue_bulk", "__rmqueue_pcplist", "rmqueue_pcplist", "__rmqueue_smallest",
                            "__rmqueue", "set_page_owner", "__set_page_owner"})


def _symbol(frame: str) -> str:
    """A frame's symbol without ``+0xoff/0xsize`` or `` [module]``."""
    return frame.split("+", 1)[0].split(" ", 1)[0]


def callsite_of(frames: Sequence[str]) -> str:
    """The first frame outside the page allocator (see the module docstring), as a symbol name."""
    for f in frames[:CALLCHAIN_DEPTH]:
        sym = _symbol(f)
        if not ALLOC_FUNC.match(sym) and sym not in ALLOC_INTERNAL:
            return sym
    return _symbol(frames[0]) if frames else "0"


class KmemStat:
    """Accumulates perf kmem's page statistics from a stream of events; ``report()`` prints them."""

    def __init__(self, stacks: StackTable, live: bool = False, page_size: int = 4096, both: bool = False) -> None:
        self.stacks = stacks
        self.live = live
        # ``both``: also keep the --live caller and order tables in the same pass (``live_report``)
        self.both = both and not live
        self.lcallers: dict[tuple[str, int, int, int], list[Any]] = {}
        self.lorder_stats = [[0] * MAX_MIGRATE_TYPES for _ in range(MAX_PAGE_ORDER)]
        self.page_size = page_size
        self.nr_allocs = self.alloc_bytes = 0
        self.nr_frees = self.free_bytes = 0
        self.nr_nomatch = self.nomatch_bytes = 0
        self.nr_fails = self.fail_bytes = 0
        self.order_stats = [[0] * MAX_MIGRATE_TYPES for _ in range(MAX_PAGE_ORDER)]
        # live pages: pfn -> [nr_alloc, alloc_bytes, order, mt, gfp, callsite]
        self.pages: dict[int, list[Any]] = {}
        # --alloc without --live: (pfn, order, mt, gfp) -> [nr_alloc, alloc_bytes, callsite]
        self.allocs: dict[tuple[int, int, int, int], list[Any]] = {}
        # callers: (callsite, order, mt, gfp) -> [nr_alloc, alloc_bytes]
        self.callers: dict[tuple[str, int, int, int], list[Any]] = {}
        self.gfps: dict[int, tuple[str, str]] = {}  # gfp -> (compact, full text)
        self._callsites: dict[int, str] = {}

    def _callsite(self, stack: int) -> str:
        c = self._callsites.get(stack)
        if c is None:
            c = self._callsites[stack] = callsite_of(self.stacks.frames(stack))
        return c

    def feed(self, events: Iterable[TraceEvent]) -> KmemStat:
        """Account a stream of events; returns self."""
        for ev in events:
            kind = ev[0]
            if kind == ALLOC:
                self._alloc(ev)
            elif kind == FREE:
                self._free(ev)
        return self

    def add(self, ev: TraceEvent) -> None:
        """Account one event (a replay feeds events one at a time as it applies them)."""
        kind = ev[0]
        if kind == ALLOC:
            self._alloc(ev)
        elif kind == FREE:
            self._free(ev)

    def _alloc(self, ev: TraceEvent) -> None:
        order, mt, gfp, pfn = ev[7], ev[8], ev[9], ev[6]
        nbytes = self.page_size << order
        self.nr_allocs += 1
        self.alloc_bytes += nbytes
        if pfn < 0:
            self.nr_fails += 1
            self.fail_bytes += nbytes
            return
        if gfp not in self.gfps:
            text = format_gfp(gfp) if gfp > 0 else "none"
            self.gfps[gfp] = (compact_gfp(text), text)
        callsite = self._callsite(ev[10])
        page = self.pages.get(pfn)
        if page is None:
            self.pages[pfn] = [1, nbytes, order, mt, gfp, callsite]
        else:  # perf keeps the first allocation's order/type/gfp and the latest callsite
            page[0] += 1
            page[1] += nbytes
            page[5] = callsite
        if not self.live:
            key = (pfn, order, mt, gfp)
            a = self.allocs.get(key)
            if a is None:
                self.allocs[key] = [1, nbytes, callsite]
            else:
                a[0] += 1
                a[1] += nbytes
                a[2] = callsite
        ckey = (callsite, order, mt, gfp)
        c = self.callers.get(ckey)
        if c is None:
            self.callers[ckey] = [1, nbytes]
        else:
            c[0] += 1
            c[1] += nbytes
        if order < MAX_PAGE_ORDER and 0 <= mt < MAX_MIGRATE_TYPES:
            self.order_stats[order][mt] += 1
            if self.both:
                self.lorder_stats[order][mt] += 1
        if self.both:
            c = self.lcallers.get(ckey)
            if c is None:
                self.lcallers[ckey] = [1, nbytes]
            else:
                c[0] += 1
                c[1] += nbytes

    def _free(self, ev: TraceEvent) -> None:
        order, pfn = ev[7], ev[6]
        nbytes = self.page_size << order
        self.nr_frees += 1
        self.free_bytes += nbytes
        page = self.pages.pop(pfn, None)
        if page is None:
            self.nr_nomatch += 1
            self.nomatch_bytes += nbytes
            return
        if self.live:
            callers, order_stats = self.callers, self.order_stats
        elif self.both:
            callers, order_stats = self.lcallers, self.lorder_stats
        else:
            return
        mt, gfp, callsite = page[3], page[4], page[5]
        if order < MAX_PAGE_ORDER and 0 <= mt < MAX_MIGRATE_TYPES:
            order_stats[order][mt] -= 1
        ckey = (callsite, order, mt, gfp)
        c = callers.get(ckey)
        if c is not None:
            c[0] -= 1
            c[1] -= nbytes
            if c[0] == 0:
                del callers[ckey]

    # -- printing ----------------------------------------------------------

    def _gfp_len(self) -> int:
        return max([9] + [len(c) for c, _ in self.gfps.values()])

    def _sorted(self, rows: list[dict[str, Any]], sort: Sequence[str]) -> list[dict[str, Any]]:
        for k in sort:
            if k not in SORT_KEYS:
                raise ValueError(f"unknown sort key {k!r}; use {', '.join(SORT_KEYS)}")
        return sorted(rows, key=lambda r: tuple(r[k] for k in sort), reverse=True)

    def _legend(self) -> list[str]:
        width = max([0] + [len(c) for c, _ in self.gfps.values()])
        out = ["#", "# GFP flags", "# ---------"]
        for gfp in sorted(self.gfps):
            compact, text = self.gfps[gfp]
            out.append(f"# {gfp:08x}: {compact:>{width}}: {text}")
        return out

    def _caller_table(self, sort: Sequence[str], lines: int) -> list[str]:
        gl = self._gfp_len()
        rows = [{"callsite": k[0], "order": k[1], "migtype": k[2], "gfp": k[3], "hit": v[0], "bytes": v[1],
                 "page": 0} for k, v in sorted(self.callers.items())]
        out = ["", DOTTED, f" {'Live' if self.live else 'Total':>5s} alloc (KB) | Hits      | Order | Mig.type | "
               f"{'GFP flags':<{gl}} | Callsite", DOTTED]
        out += self._rows(self._sorted(rows, sort), lines, gl, with_page=False)
        out.append(DOTTED)
        return out

    def _alloc_table(self, sort: Sequence[str], lines: int) -> list[str]:
        gl = self._gfp_len()
        if self.live:
            items = [{"page": pfn, "bytes": p[1], "hit": p[0], "order": p[2], "migtype": p[3], "gfp": p[4],
                      "callsite": p[5]} for pfn, p in sorted(self.pages.items())]
        else:
            items = [{"page": k[0], "order": k[1], "migtype": k[2], "gfp": k[3], "hit": v[0], "bytes": v[1],
                      "callsite": v[2]} for k, v in sorted(self.allocs.items())]
        out = ["", DOTTED, f" {'PFN':<16s} | {'Live' if self.live else 'Total':>5s} alloc (KB) | Hits      | Order | "
               f"Mig.type | {'GFP flags':<{gl}} | Callsite", DOTTED]
        out += self._rows(self._sorted(items, sort), lines, gl, with_page=True)
        out.append(DOTTED)
        return out

    def _rows(self, rows: list[dict[str, Any]], lines: int, gl: int, with_page: bool) -> list[str]:
        out = []
        n = lines
        i = 0
        while i < len(rows) and n != 0:
            n -= 1
            r = rows[i]
            i += 1
            mt = r["migtype"]
            mts = MIGRATE_TYPE_STR[mt] if 0 <= mt < len(MIGRATE_TYPE_STR) else "UNKNOWN"
            compact = self.gfps.get(r["gfp"], ("", ""))[0]
            lead = f" {r['page']:16d} |" if with_page else ""
            out.append(f"{lead} {r['bytes'] // 1024:16d} | {r['hit']:9d} | {r['order']:5d} | {mts:>8s} | "
                       f"{compact:<{gl}} | {r['callsite']}")
        # perf prints the "..." row when the row limit ran out, and (its quirk) for an empty table
        if (lines < 0 and not rows) or (lines >= 0 and i < len(rows)):
            if with_page:
                out.append(f" ...              | ...              | ...       | ...   | ...      | {'...':<{gl}} | ...")
            else:
                out.append(f" ...              | ...       | ...   | ...      | {'...':<{gl}} | ...")
        return out

    def _summary(self) -> list[str]:
        def row(label: str, n: int, nbytes: int) -> str:
            return f"{label:<30s}: {n:16d}   [ {nbytes // 1024:16d} KB ]"

        freed = self.nr_frees - self.nr_nomatch
        freed_bytes = self.free_bytes - self.nomatch_bytes
        out = ["", "SUMMARY (page allocator)", "========================",
               row("Total allocation requests", self.nr_allocs, self.alloc_bytes),
               row("Total free requests", self.nr_frees, self.free_bytes), "",
               row("Total alloc+freed requests", freed, freed_bytes),
               row("Total alloc-only requests", self.nr_allocs - freed, self.alloc_bytes - freed_bytes),
               row("Total free-only requests", self.nr_nomatch, self.nomatch_bytes), "",
               row("Total allocation failures", self.nr_fails, self.fail_bytes), "",
               f"{'Order':>5s}  {'Unmovable':>12s}  {'Reclaimable':>12s}  {'Movable':>12s}  {'Reserved':>12s}  "
               f"{'CMA/Isolated':>12s}",
               "  ".join(["-" * 5] + ["-" * 12] * 5)]
        for o in range(MAX_PAGE_ORDER):
            cells = "".join(f"  {v:12d}" if v else f"  {'.':>12s}" for v in self.order_stats[o][:MAX_MIGRATE_TYPES - 1])
            out.append(f"{o:5d}{cells}")
        return out

    def live_report(self, caller: bool = False, sort: Sequence[str] = ("bytes", "hit"), lines: int = -1) -> str:
        """What ``report`` prints for ``live=True``, from a ``both=True`` account (one pass, two views)."""
        if not self.both:
            raise ValueError("live_report needs KmemStat(..., both=True)")
        return _live_view(self).report(caller=caller, sort=sort, lines=lines)

    def report(self, caller: bool = False, alloc: bool = False, sort: Sequence[str] = ("bytes", "hit"),
               lines: int = -1) -> str:
        """The text perf kmem stat --page prints (``--caller``/``--alloc`` add their tables; ``lines`` is ``-l``)."""
        out: list[str] = []
        if caller or alloc:
            out += self._legend()
        if caller:
            out += self._caller_table(sort, lines)
        if alloc:
            out += self._alloc_table(sort, lines)
        out += self._summary()
        return "\n".join(out) + "\n"


def _live_view(k: KmemStat) -> KmemStat:
    v = copy.copy(k)
    v.live, v.both = True, False
    v.callers, v.order_stats = k.lcallers, k.lorder_stats
    return v


def kmem_report(events: Iterable[TraceEvent], stacks: StackTable, *, live: bool = False, caller: bool = False,
                alloc: bool = False, sort: Sequence[str] = ("bytes", "hit"), lines: int = -1) -> str:
    """One-call form: account the events and return perf kmem stat --page's text."""
    return KmemStat(stacks, live=live).feed(events).report(caller=caller, alloc=alloc, sort=sort, lines=lines)
