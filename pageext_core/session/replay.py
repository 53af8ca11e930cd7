"""Replaying a real kernel page trace: the ``replay`` workload kind (exact and what-if).

**exact** forces every traced block into the simulated machine at the pfn and
order the trace gives (``alloc_pages_at``), as the task, CPU, time and stack
the trace recorded, so page_owner and the other clients record what the
traced box did.  **what-if** sends the same requests (order, gfp, task,
stack) and frees through the simulated allocator, which chooses the pfns;
each free follows its allocation by identity (the traced pfn at allocation
time names the simulated block), and a shadow exact replay on a bare machine
gives the traced side of the comparison.

Rules (docs/replay.md says the same, for users):

* The machine starts with everything free except what boot takes (memblock
  reservations, page_ext tables).  Pages allocated before tracing began are
  unknown: their frees are counted (``free-before-trace``) and skipped.
* ``lost-free`` (an allocation at a pfn still allocated): the old block is
  freed at that moment, then the new one placed.  An allocation that
  overlaps a block the trace placed at another head (``overlap``) is the
  same fact seen from the side: those blocks are freed first.
* ``order-mismatch``: a smaller free splits the block (``split_page``,
  compound or not) and frees the pages in the range; a larger free frees
  every block in the range.
* exact: a block that cannot be placed (a page of it reserved, in a hole,
  outside memory, allocated by the simulated boot, held as a guard page) is
  ``refused``: counted with the allocator's reason, nothing changed; a later
  free of it changes nothing either.
* Pageblock types: an ``mm_page_alloc_extfrag`` event with
  ``change_ownership=1`` gives its pageblock (all ``2^(fallback_order -
  pageblock_order)`` of them when ``fallback_order`` is at least a
  pageblock) the allocation's migratetype once the next allocation is
  placed (a free block spanning several pageblocks keeps one type and is
  left alone).  Until the trace shows such an event the type
  is inferred: a placed block whose migratetype differs from its
  pageblock's claims the pageblock when the pageblock was wholly free (as
  the kernel claims a free pageblock it falls back into); each inference
  is counted.
* The machine clock follows the trace: each event runs at its trace time
  (the allocator's own per-operation cost is set to 0 for the replay).
* A trace CPU the machine lacks runs as CPU ``cpu % cpus``.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pageext_core.mm import buddy as _b
from pageext_core.mm.constants import MIGRATE_MOVABLE, MIGRATE_TYPES, PAGE_SIZE
from pageext_core.mm.context import Task
from pageext_core.mm.errors import PlacementRefused
from pageext_core.mm.geometry import format_size
from pageext_core.mm.machine import Machine
from pageext_core.mm.pageflags import PG_head
from pageext_core.mm.views import memview
from pageext_core.session.config import Session, SessionError, WorkloadSpec
from pageext_core.trace.anomalies import ANOMALIES, LiveSet, aligned_blocks
from pageext_core.trace.events import ALLOC, EXTFRAG, FREE, TraceEvent
from pageext_core.trace.kmem import KmemStat
from pageext_core.trace.reader import TraceError, TraceReader, detect_format, open_trace
from pageext_core.trace.zoneinfo import ZoneinfoError, machine_covering, machine_from_zoneinfo, read_zoneinfo

if TYPE_CHECKING:
    from pageext_core.page_ext import PageExt
    from pageext_core.session.workload import WorkloadResult

MODES = ("exact", "what-if")
REFUSED = "refused"
OVERLAP = "overlap"
MAX_EXAMPLES = 5
PROGRESS_EVERY = 4096
_PFN_ORDER = re.compile(r"pfn=(0x[0-9a-fA-F]+|\d+)\s+(?:alloc_)?order=(\d+)")


def trace_path(spec: WorkloadSpec) -> Path:
    """The trace file, relative names taken from the session file's folder."""
    p = Path(spec.trace or "")
    if not p.is_absolute() and spec.base_dir:
        p = Path(spec.base_dir) / p
    return p


def _rel(spec: WorkloadSpec, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() or not spec.base_dir else Path(spec.base_dir) / p


def highest_pfn_end(path: Path) -> int:
    """One cheap pass over the trace: the end of the highest block it names (0 if none).

    A regex over each line, not the full reader: the machine must be sized
    before it boots, and this costs a fraction of the replay itself.
    """
    end = 0
    search = _PFN_ORDER.search
    with open_trace(path) as f:
        for line in f:
            if "pfn=" not in line:
                continue
            m = search(line)
            if m is None:
                continue
            t = m.group(1)
            pfn = int(t, 16) if t[:2] == "0x" or t[:2] == "0X" else int(t)
            if pfn >= 1 << 52:  # a failed allocation's -1
                continue
            e = pfn + (1 << min(int(m.group(2)), 20))
            if e > end:
                end = e
    return end


def prepare_replay(sess: Session) -> Session:
    """Check the trace (and zoneinfo) before boot and size the machine; every problem is a located SessionError."""
    spec = sess.workload
    where = sess.source.where
    path = trace_path(spec)
    if not path.is_file():
        raise SessionError(f"{where(['workload', 'trace'])}: [workload] trace: no such file {str(path)!r}")
    try:
        fmt = spec.trace_format if spec.trace_format != "auto" else detect_format(path)
    except (TraceError, OSError, EOFError) as exc:
        raise SessionError(f"{where(['workload', 'trace'])}: [workload] trace: {exc}") from None
    spec.trace_format = fmt
    machine = sess.machine
    if spec.zoneinfo:
        try:
            zi = read_zoneinfo(_rel(spec, spec.zoneinfo))
            machine = machine_from_zoneinfo(zi, machine)
        except ZoneinfoError as exc:
            raise SessionError(f"{where(['workload', 'zoneinfo'])}: [workload] zoneinfo: {exc}") from None
    elif spec.infer_memory:
        try:
            end = highest_pfn_end(path)
        except (OSError, EOFError) as exc:
            raise SessionError(f"{where(['workload', 'trace'])}: [workload] trace: cannot read it: {exc}") from None
        machine = machine_covering(max(end, 1), machine)
    return replace(sess, machine=machine)


@dataclass
class ReplayStats:
    """What a replay read and did: ``summary.json``'s ``replay`` section."""

    mode: str
    trace: str
    format: str = ""
    events: int = 0
    anomalies: dict[str, int] = field(default_factory=lambda: {a: 0 for a in (*ANOMALIES, OVERLAP, REFUSED)})
    examples: dict[str, list[str]] = field(default_factory=dict)
    traced_failures: int = 0  # allocations that failed on the traced box
    failures: int = 0  # exact: refused placements; what-if: requests the simulated allocator failed
    extfrag_applied: int = 0
    pageblocks_inferred: int = 0
    stopped_at_event: int | None = None

    def note(self, what: str, text: str) -> None:
        self.anomalies[what] = self.anomalies.get(what, 0) + 1
        ex = self.examples.setdefault(what, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(text)


class _Placer:
    """Applies allocations and frees at given pfns to one machine (exact mode, and what-if's shadow)."""

    def __init__(self, m: Machine, stats: ReplayStats, shadow: bool = False) -> None:
        self.m = m
        self._st = memview(m.state)  # page state and pageblock types, read per event: views are cheap to index
        self._pbmt = memview(m.pb_mt)
        self.stats = stats
        self.shadow = shadow
        heads, _ = m.allocated_blocks()
        self.boot_heads = set(heads.tolist())  # blocks the simulated boot allocated: never freed by the trace
        self.infer = True
        self.pending_mt: list[tuple[int, int, int]] = []  # (pfn, fallback order, migratetype) to apply
        self.mt_cache: dict[int, int] = {}
        self.refused: set[int] = set()
        self.live: LiveSet | None = None

    def mt_of(self, gfp: int) -> int:
        mt = self.mt_cache.get(gfp)
        if mt is None:
            mt = self.mt_cache[gfp] = self.m.buddy.migratetype_of(gfp)
        return mt

    def free_range(self, start: int, nr: int) -> None:
        """Free every block the trace placed in [start, start + nr), splitting blocks that straddle an edge."""
        m = self.m
        end = min(start + nr, m.geometry.max_pfn)
        st = self._st
        for edge in (start, end):
            if edge >= m.geometry.max_pfn:
                continue
            kind, o, head = m.page_kind(edge)
            if kind in (_b.K_ALLOC, _b.K_ALLOC_MOVABLE) and head < edge and head not in self.boot_heads:
                if m.pflags[head] & (1 << PG_head):
                    m.pflags[head] &= ~np.uint32(1 << PG_head)
                m.split_page(head, o)
        p = start
        while p < end:
            s = st[p]
            k = s >> 4
            if k == _b.K_ALLOC or k == _b.K_ALLOC_MOVABLE:
                o = s & 15
                if p not in self.boot_heads:
                    m.free_pages(p, o)
                p += 1 << o
            elif k:
                p += 1 << (s & 15)
            else:
                p += 1

    def free(self, pfn: int, order: int) -> None:
        s = self._st[pfn] if 0 <= pfn < self.m.geometry.max_pfn else 0
        if (s == _b.ALLOC_K | order or s == _b.ALLOCM_K | order) and pfn not in self.boot_heads:
            self.m.free_pages(pfn, order)
        elif pfn in self.refused:
            self.refused.discard(pfn)
        else:
            self.free_range(pfn, 1 << order)

    def place(self, pfn: int, order: int, gfp: int, ts: int) -> bool:
        """Put the block at [pfn, pfn + 2^order); False (counted as refused) when it cannot be."""
        m = self.m
        claim = False
        if self.infer and not self.pending_mt and m.mobility_grouping:
            pbo = m.pageblock_order
            mt = self.mt_cache.get(gfp)
            if mt is None:
                mt = self.mt_of(gfp)
            if 0 <= pfn < m.geometry.max_pfn and self._pbmt[pfn >> pbo] != mt:
                if order >= pbo:
                    claim = True
                else:  # the kernel claims a pageblock it falls back into when the pageblock is free
                    k, o, _ = m.page_kind(pfn >> pbo << pbo)
                    claim = k == _b.K_FREE and o >= pbo
        try:
            m.alloc_pages_at(pfn, order, gfp)
        except PlacementRefused as first:
            exc: PlacementRefused | None = first  # the refusal that stands, unless a retry succeeds
            # blocks this trace placed there lost their frees: free them, then try again
            placed = self._placed_in(pfn, order)
            if placed:
                if self.live is not None:  # the trace's live set forgets them too: one state, not two
                    for h in placed:
                        if h != pfn:
                            self.live.live.pop(h, None)
                self.stats.note(OVERLAP, f"at {_ts(ts)}: pfn {pfn:#x} (order {order}) overlaps a block allocated "
                                         f"at another head: that block is taken as freed")
                st = self._st
                for h in placed:  # each such block is freed whole, as a lost free is
                    s = st[h]
                    if s >> 4 in (_b.K_ALLOC, _b.K_ALLOC_MOVABLE):
                        m.free_pages(h, s & 15)
                try:
                    m.alloc_pages_at(pfn, order, gfp)
                except PlacementRefused as again:
                    exc = again
                else:
                    exc = None
            if exc is not None:
                self.refused.add(pfn)
                if not self.shadow:
                    self.stats.failures += 1
                    self.stats.note(REFUSED, f"at {_ts(ts)}: {exc}")
                return False
        self.refused.discard(pfn)
        if self.pending_mt:
            pbo = m.pageblock_order
            for at, fo, pmt in self.pending_mt:
                n = 1 << (fo - pbo) if fo >= pbo else 1
                lo = at >> pbo
                for pb in range(lo, min(lo + n, len(m.pb_mt))):
                    self.retype(pb << pbo, 0, pmt)
                if not self.shadow:
                    self.stats.extfrag_applied += 1
            self.pending_mt = []
        elif claim:
            self.retype(pfn, order, self.mt_of(gfp))
            if not self.shadow:
                self.stats.pageblocks_inferred += 1
        return True

    def _placed_in(self, pfn: int, order: int) -> list[int]:
        m = self.m
        end = min(pfn + (1 << order), m.geometry.max_pfn)
        if pfn < 0 or pfn >= end:
            return []
        seg = m.state[pfn:end] >> 4
        heads = np.flatnonzero((seg == _b.K_ALLOC) | (seg == _b.K_ALLOC_MOVABLE)) + pfn
        kind, _, head = m.page_kind(pfn)
        if kind in (_b.K_ALLOC, _b.K_ALLOC_MOVABLE) and head < pfn:
            heads = np.append(heads, head)
        found = [int(h) for h in heads]
        # only blocks this replay placed; boot's own blocks refuse the placement instead
        if any(h in self.boot_heads for h in found):
            return []
        return found

    def retype(self, pfn: int, order: int, mt: int) -> None:
        m = self.m
        pbo = m.pageblock_order
        if not 0 <= mt < MIGRATE_TYPES:
            return
        if order >= pbo:
            m.pb_mt[pfn >> pbo:(pfn + (1 << order)) >> pbo] = mt
            return
        pb = pfn >> pbo
        old = self._pbmt[pb]
        if old == mt:
            return
        kind, o, head = m.page_kind(pb << pbo)
        if kind == _b.K_FREE and o > pbo:  # one free block over several pageblocks has one type: not split here
            return
        m.buddy.set_pageblock_migratetype(pb, mt)

    def extfrag(self, ev: TraceEvent) -> None:
        self.infer = False  # the trace says which pageblocks changed hands
        x = ev[11]
        if x and x[6] == 1 and ev[6] >= 0:
            self.pending_mt.append((ev[6], x[1], x[3]))


def _ts(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000 // 1000:06d}"


class Replay:
    """Runs a trace through the session's machine; see the module docstring."""

    def __init__(self, pe: PageExt, spec: WorkloadSpec, progress: Callable[[int], None],
                 result: WorkloadResult) -> None:
        self.pe = pe
        self.m = pe.machine
        self.spec = spec
        self.progress = progress
        self.res = result
        self.path = trace_path(spec)
        self.stats = ReplayStats(mode=spec.mode, trace=str(spec.trace))
        self.reader = TraceReader(self.path, format=spec.trace_format, strict=spec.strict, offsets=True)
        self.live = LiveSet(max_examples=MAX_EXAMPLES)
        self.kmem = KmemStat(self.reader.stacks, both=True)  # perf kmem stat --page, and its --live view
        self._tasks: dict[tuple[int, int, str], Task] = {}
        self._handles: list[int] = []
        depot = self.m.depot
        self._no_stack = depot.save(())

    # -- per-event context --------------------------------------------------------

    def _task(self, pid: int, tgid: int, comm: str) -> Task:
        key = (pid, tgid, comm)
        t = self._tasks.get(key)
        if t is None:
            t = self._tasks[key] = Task(pid, pid if tgid < 0 else tgid, comm)
        return t

    def _handle(self, sid: int) -> int:
        if sid < 0:
            return self._no_stack
        hs = self._handles
        while len(hs) <= sid:
            frames = self.reader.stacks.frames(len(hs))
            hs.append(self.m.depot.save(frames[: self.m.stack_max_frames]))
        return hs[sid]

    # -- the loop -------------------------------------------------------------------

    def run(self) -> WorkloadResult:
        m, res, st = self.m, self.res, self.stats
        whatif = self.spec.mode == "what-if"
        placer = _Placer(m, st)
        shadow: _Placer | None = None
        if whatif:
            shadow = _Placer(Machine(m.config), st, shadow=True)
            shadow.m.op_cost_ns = 0
            shadow.live = self.live
        else:
            placer.live = self.live
        idmap: dict[int, tuple[int, int]] = {}  # what-if: traced head pfn -> (simulated head, order)
        live = self.live
        kmem_alloc, kmem_free = self.kmem._alloc, self.kmem._free
        ncpu = m.config.cpus
        cost = m.op_cost_ns
        m.op_cost_ns = 0
        ctx, alloc = m.ctx, m.buddy  # set per event: plain attributes of the parts, not the machine's forwards
        saved = (ctx.current, ctx.stack_handle, alloc.cpu)
        n = 0
        progress = self.progress
        tasks, handles = self._tasks, self._handles
        n_alloc = n_free = 0
        try:
            for ev in self.reader:
                n += 1
                if not n % PROGRESS_EVERY:
                    res.operations = n
                    progress(n)
                kind = ev[0]
                if kind != ALLOC and kind != FREE:
                    if kind == EXTFRAG:
                        (shadow or placer).extfrag(ev)
                    continue
                alloc.clock_ns = ev[1]
                cpu = ev[2]
                alloc.cpu = cpu % ncpu if cpu >= 0 else 0
                task = tasks.get((ev[3], ev[4], ev[5]))
                ctx.current = task if task is not None else self._task(ev[3], ev[4], ev[5])
                sid = ev[10]
                ctx.stack_handle = handles[sid] if 0 <= sid < len(handles) else self._handle(sid)
                pfn, order = ev[6], ev[7]
                if kind == ALLOC:
                    kmem_alloc(ev)
                    n_alloc += 1
                    if pfn < 0:
                        st.traced_failures += 1
                        if whatif:
                            self._whatif_failed_request(ev)
                        continue
                    prev = live.alloc(pfn, order, ev[8], ev[9], ev[10], ev[1])
                    if not whatif:
                        if prev is not None:
                            placer.free_range(pfn, 1 << prev[0])
                        placer.place(pfn, order, ev[9], ev[1])
                        continue
                    assert shadow is not None
                    if prev is not None:
                        shadow.free_range(pfn, 1 << prev[0])
                    shadow.place(pfn, order, ev[9], ev[1])
                    old = idmap.pop(pfn, None)
                    if old is not None:
                        placer.free(old[0], old[1])
                    sim = m.alloc_pages(ev[9], order)
                    if sim is None:
                        st.failures += 1
                        res.failures += 1
                    else:
                        idmap[pfn] = (sim, order)
                else:
                    kmem_free(ev)
                    n_free += 1
                    got = live.free(pfn, order, ev[1])
                    if not whatif:
                        if got is not None or pfn in placer.refused:
                            placer.free(pfn, order)
                        continue
                    assert shadow is not None
                    if got is not None:
                        shadow.free(pfn, order)
                    self._whatif_free(idmap, placer, pfn, order)
        except KeyboardInterrupt:
            res.interrupted = True
            st.stopped_at_event = n
            raise
        finally:
            m.op_cost_ns = cost
            ctx.current, ctx.stack_handle, alloc.cpu = saved
            res.operations = n
            res.allocations += n_alloc
            res.frees += n_free
            self._finish(placer, shadow, idmap)
            progress(n)
        return res

    def _whatif_failed_request(self, ev: TraceEvent) -> None:
        """A request that failed on the traced box is made again; if it succeeds here it is freed at once."""
        m = self.m
        sim = m.alloc_pages(ev[9], ev[7])
        if sim is None:
            self.stats.failures += 1
            self.res.failures += 1
        else:
            m.free_pages(sim, ev[7])

    def _whatif_free(self, idmap: dict[int, tuple[int, int]], placer: _Placer, pfn: int, order: int) -> None:
        ent = idmap.pop(pfn, None)
        if ent is not None:
            sim, have = ent
            if have == order:
                placer.free(sim, order)
                return
            if order < have:
                placer.free_range(sim, 1 << order)
                for h, ko in aligned_blocks(pfn + (1 << order), pfn + (1 << have)):
                    idmap[h] = (sim + h - pfn, ko)
            else:
                placer.free_range(sim, 1 << have)
                for p in range(pfn + 1, pfn + (1 << order)):
                    e = idmap.pop(p, None)
                    if e is not None:
                        placer.free_range(e[0], 1 << e[1])
            return
        for o in range(1, self.m.max_order + 1):  # a free inside a block the trace allocated
            head = pfn & ~((1 << o) - 1)
            e = idmap.get(head)
            if e is not None and head + (1 << e[1]) > pfn:
                sim, have = e
                del idmap[head]
                end = head + (1 << have)
                stop = min(pfn + (1 << order), end)
                placer.free_range(sim + pfn - head, stop - pfn)
                for h, ko in aligned_blocks(head, pfn) + aligned_blocks(stop, end):
                    idmap[h] = (sim + h - head, ko)
                return

    # -- the end --------------------------------------------------------------------

    def _finish(self, placer: _Placer, shadow: _Placer | None, idmap: dict[int, tuple[int, int]]) -> None:
        st, res, r = self.stats, self.res, self.reader.stats
        st.format = r.format
        st.events = sum(r.events)
        for a in ANOMALIES:
            st.anomalies[a] = self.live.counts[a]
            if self.live.examples[a]:
                st.examples[a] = list(self.live.examples[a])
        res.live_blocks = len(idmap) if shadow is not None else len(self.live) - len(placer.refused)
        res.live_pages = (sum(1 << o for _, o in idmap.values()) if shadow is not None
                          else self.live.live_pages())
        res.replay = self.summary(placer, shadow)
        res.reports = self.reports(placer, shadow)

    def summary(self, placer: _Placer, shadow: _Placer | None) -> dict[str, Any]:
        st, r = self.stats, self.reader.stats
        out: dict[str, Any] = {
            "trace": st.trace,
            "mode": st.mode,
            "machine_from": self.machine_from(),
            "format": st.format,
            "lines": r.lines,
            "events": st.events,
            "events_by_kind": r.events_by_name(),
            "ignored": dict(sorted(r.ignored.items())),
            "anomalies": dict(st.anomalies),
            "anomaly_examples": {k: v for k, v in sorted(st.examples.items())},
            "traced_failures": st.traced_failures,
            "failures": st.failures,
            "malformed": r.malformed,
            "malformed_examples": [{"line": ln, "why": why, "text": text} for ln, why, text in r.malformed_examples],
            "unattached_stacks": r.unattached_stacks,
            "lost_events": r.lost_events,
            "extfrag_applied": st.extfrag_applied,
            "pageblocks_inferred": st.pageblocks_inferred,
        }
        if st.stopped_at_event is not None:
            out["stopped_at_event"] = st.stopped_at_event
        if shadow is not None:
            out["comparison"] = self.comparison(shadow.m)
        return out

    def machine_from(self) -> str:
        """Where the machine's geometry came from: the zoneinfo file, the trace's highest pfn, or the session."""
        if self.spec.zoneinfo:
            return f"zoneinfo {self.spec.zoneinfo}"
        return "the trace's highest pfn" if self.spec.infer_memory else "the session"

    def comparison(self, traced: Machine) -> dict[str, Any]:
        m = self.m
        return {
            "allocation_failures": {"traced": self.stats.traced_failures, "what_if": self.stats.failures},
            "mixed_pageblocks": {"traced": mixed_pageblocks(traced), "what_if": mixed_pageblocks(m)},
            "free_blocks_per_order": {"traced": free_blocks_per_order(traced), "what_if": free_blocks_per_order(m)},
            "free_pages": {"traced": traced.nr_free_pages + traced.nr_pcp_pages,
                           "what_if": m.nr_free_pages + m.nr_pcp_pages},
            "page_ext_bytes": {"traced": 0, "what_if": self.pe.nbytes},
            "guard_pages_held": {"traced": traced.nr_held_pages, "what_if": m.nr_held_pages},
        }

    def reports(self, placer: _Placer, shadow: _Placer | None) -> dict[str, str]:
        out = {
            "kmem": self.kmem.report(),
            "kmem_caller": self.kmem.report(caller=True),
            "kmem_live": self.kmem.live_report(caller=True),
            "replay": self.text(shadow),
        }
        return out

    def text(self, shadow: _Placer | None) -> str:
        st, r = self.stats, self.reader.stats
        lines = [f"pageext replay ({st.mode}) of {st.trace} ({st.format}): {st.events} events, {r.lines} lines",
                 "events:    " + (", ".join(f"{k} {v}" for k, v in r.events_by_name().items() if v) or "none"),
                 "ignored:   " + (", ".join(f"{k} {v}" for k, v in sorted(r.ignored.items())) or "none"),
                 f"malformed: {r.malformed}, unattached stacks: {r.unattached_stacks}, lost events: {r.lost_events}",
                 f"machine:   {format_size(m_bytes(self.m))} present, {self.m.config.nodes} node(s), "
                 f"{self.m.config.cpus} CPU(s), from {self.machine_from()}",
                 f"failed in the trace: {st.traced_failures}",
                 ("refused placements" if st.mode == "exact" else "what-if allocation failures") + f": {st.failures}",
                 f"pageblock types: {st.extfrag_applied} from extfrag events, {st.pageblocks_inferred} inferred",
                 "", "anomalies:"]
        for k, v in st.anomalies.items():
            lines.append(f"  {k:<18s} {v}")
            for ex in st.examples.get(k, []):
                lines.append(f"      {ex}")
        if shadow is not None:
            c = self.comparison(shadow.m)
            lines += ["", f"{'':32s}{'traced':>14s}{'what-if':>14s}"]
            for key in ("allocation_failures", "mixed_pageblocks", "free_pages", "page_ext_bytes", "guard_pages_held"):
                lines.append(f"{key.replace('_', ' '):32s}{c[key]['traced']:>14d}{c[key]['what_if']:>14d}")
            t, w = c["free_blocks_per_order"]["traced"], c["free_blocks_per_order"]["what_if"]
            lines.append("free blocks per order")
            for o in range(len(t)):
                lines.append(f"  order {o:<24d}{t[o]:>14d}{w[o]:>14d}")
            lines.append(f"page_ext for this boot line costs {format_size(self.pe.nbytes)} on this "
                         f"{format_size(m_bytes(self.m))} machine")
        return "\n".join(lines) + "\n"


def m_bytes(m: Machine) -> int:
    return m.nr_present_pages * PAGE_SIZE


def mixed_pageblocks(m: Machine) -> int:
    """Pageblocks holding an allocated block whose movability differs from the pageblock's type (read only)."""
    heads, _ = m.allocated_blocks()
    if not heads.size:
        return 0
    pbo = m.pageblock_order
    movable = (m.state[heads] >> 4) == _b.K_ALLOC_MOVABLE
    pb = heads >> pbo
    pb_movable = m.pb_mt[pb] == MIGRATE_MOVABLE
    return int(np.unique(pb[movable != pb_movable]).size)


def free_blocks_per_order(m: Machine) -> list[int]:
    """Free buddy blocks per order (per-CPU pages not included), read from page state."""
    st = m.state
    heads = np.flatnonzero((st >> 4) == _b.K_FREE)
    return [int(x) for x in np.bincount(st[heads] & 15, minlength=m.max_order + 1)]


def run_replay(pe: PageExt, spec: WorkloadSpec, progress: Callable[[int], None],
               result: WorkloadResult) -> WorkloadResult:
    """The ``replay`` workload: ``spec.mode`` is exact or what-if."""
    if spec.mode not in MODES:
        raise SessionError(f"[workload] mode {spec.mode!r}: expected one of {', '.join(MODES)}")
    return Replay(pe, spec, progress, result).run()


__all__ = [
    "Replay",
    "ReplayStats",
    "free_blocks_per_order",
    "highest_pfn_end",
    "mixed_pageblocks",
    "prepare_replay",
    "run_replay",
]
