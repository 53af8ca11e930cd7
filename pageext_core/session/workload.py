"""Workloads: a seeded synthetic generator, or a user's function.

The synthetic generator drives the allocator the way a small busy machine
would: several tasks (pid, tgid, comm) on their CPUs allocate from kernel-
like call sites; every allocation gets a lifetime (exponential, in
operations) and a fraction leaks; memory blocks may be hot-plugged; and bugs
can be planted — use-after-free writes, stray writes into free memory, bit
flips and corruption in free pages, writes past the end or before the start
of an allocation — each recorded (kind, pfn, offset, time) so that what the
debug features report can be compared with what was planted.

Everything random comes from one ``random.Random(seed)``: a seed gives the
same operations, the same pfns and the same reports, byte for byte.
"""
from __future__ import annotations

import heapq
import importlib
import random
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pageext_core.mm import PageKind
from pageext_core.mm.constants import PAGE_SIZE
from pageext_core.mm.context import Task
from pageext_core.mm.errors import HotplugError, PageFault
from pageext_core.reports import Finding, FindingKinds
from pageext_core.session.callsites import ACCESS_FRAME, BUILTIN_SITES, DEFAULT_TASKS, STRAY_STACK, CallSite
from pageext_core.session.config import SessionError, WorkloadSpec

if TYPE_CHECKING:
    from pageext_core.page_ext import PageExt

STRAY_TASK = Task(203, 203, "kworker/0:3")  # the broken driver's work item runs here

Progress = Callable[[int], None]


@dataclass
class WorkloadResult:
    kind: str
    seed: int
    operations: int = 0
    allocations: int = 0
    frees: int = 0
    failures: int = 0
    leaked_blocks: int = 0
    live_blocks: int = 0
    live_pages: int = 0
    interrupted: bool = False
    error: str | None = None  # why the session stopped early, when a plugin or the function raised
    hotplug: list[dict[str, Any]] = field(default_factory=list)
    hotplug_failures: int = 0  # events in ``hotplug`` that failed (each logged in dmesg as the kernel logs it)
    planted: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    replay: dict[str, Any] | None = None  # kind = "replay": summary.json's ``replay`` section
    reports: dict[str, str] = field(default_factory=dict)  # report files the workload itself writes (replay's)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("planted", "result", "replay", "reports")}
        if self.result is not None:
            d["result"] = self.result
        return d


@dataclass
class WorkloadContext:
    """What a ``module:function`` workload receives."""

    machine: Any
    page_ext: PageExt
    rng: random.Random
    params: dict[str, Any]
    spec: WorkloadSpec
    progress: Progress
    result: WorkloadResult


def run_workload(pe: PageExt, spec: WorkloadSpec, progress: Progress | None = None,
                 result: WorkloadResult | None = None, sample: Callable[[int], None] | None = None,
                 sample_every: int = 0) -> WorkloadResult:
    """Run the session's workload into ``result``.

    A KeyboardInterrupt propagates, with ``result`` holding what was done, so
    the caller can still report the state reached.  ``sample`` (read-only,
    given the operation count) is called before the first operation, every
    ``sample_every`` operations of a synthetic workload, and at the end.
    """
    progress = progress or (lambda n: None)
    result = result or WorkloadResult(kind=spec.kind, seed=spec.seed)
    if sample is not None:
        sample(0)
    try:
        if spec.kind == "function":
            return _run_function(pe, spec, progress, result)
        if spec.kind == "replay":
            from pageext_core.session.replay import run_replay

            return run_replay(pe, spec, progress, result)
        return Synthetic(pe, spec, progress, result, sample if sample_every > 0 else None, sample_every).run()
    finally:
        if sample is not None:
            failing = sys.exc_info()[1] is not None
            try:
                sample(result.operations)  # the state reached, also when the workload stopped early
            except Exception:
                if not failing:  # never hide the error that stopped the workload behind the sampler's
                    raise


def load_function(target: str, base_dir: str | None = None) -> Callable[[WorkloadContext], Any]:
    """Import ``package.module:function`` (this runs that code, like an entry point).

    The module is looked up next to the session file first, then on sys.path.
    """
    mod_name, _, attr = target.partition(":")
    added = base_dir is not None and base_dir not in sys.path
    if added:
        sys.path.insert(0, base_dir)  # type: ignore[arg-type]
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise SessionError(f"[workload] function {target!r}: cannot import {mod_name!r}: {exc}") from None
    finally:
        if added:
            sys.path.remove(base_dir)  # type: ignore[arg-type]
    obj: Any = mod
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise SessionError(f"[workload] function {target!r}: {mod_name!r} has no {attr!r}")
    if not callable(obj):
        raise SessionError(f"[workload] function {target!r} is not callable")
    fn: Callable[[WorkloadContext], Any] = obj
    return fn


def _run_function(pe: PageExt, spec: WorkloadSpec, progress: Progress, res: WorkloadResult) -> WorkloadResult:
    fn = load_function(spec.function or "", spec.base_dir)
    m = pe.machine
    a0, f0, x0 = m.nr_allocs, m.nr_frees, m.nr_alloc_failures
    pages0, blocks0 = m.nr_allocated_pages, _allocated_blocks(m)
    ctx = WorkloadContext(m, pe, random.Random(spec.seed), dict(spec.params), spec, progress, res)
    try:
        res.result = fn(ctx)
    finally:
        res.allocations = m.nr_allocs - a0
        res.frees = m.nr_frees - f0
        res.failures = m.nr_alloc_failures - x0
        res.operations = res.allocations + res.frees
        # What the function left allocated: the machine's count now less the count it started from.
        res.live_pages = m.nr_allocated_pages - pages0
        res.live_blocks = _allocated_blocks(m) - blocks0
    return res


def _allocated_blocks(m: Any) -> int:
    """Allocated blocks on the machine (head pages of allocated blocks, movable or not): one scan."""
    return len(m.allocated_blocks()[0])


# Why an offline failed, in the kernel's words (mm/memory_hotplug.c, offline_pages): the model
# refuses a block with a page it may not move before isolating it, as isolation does; a
# notifier's veto is "notifier failure"; a movable page with nowhere to go stays unmovable.
_OFFLINE_REASONS = (("(-EBUSY)", "failure to isolate range"), ("vetoed", "notifier failure"),
                    ("(-ENOMEM)", "unmovable page"))


def hotplug_failure_line(m: Any, action: str, index: int, error: str) -> str:
    """The dmesg line for a failed hotplug event: the kernel's own, or a ``pageext:`` line when it prints none.

    ``online_pages`` and ``offline_pages`` print theirs when they fail; a
    request refused before them (the block is already in that state) gets no
    kernel line, so ours says what happened.
    """
    blk = next((b for b in m.memory_blocks if b.index == index), None)
    if blk is not None and "already" not in error:
        start, end = blk.start_pfn * PAGE_SIZE, blk.end_pfn * PAGE_SIZE - 1
        if action == "online":
            return f"online_pages [mem {start:#010x}-{end:#010x}] failed"
        reason = next((r for key, r in _OFFLINE_REASONS if key in error), None)
        if reason is not None:
            return f"memory offlining [mem {start:#010x}-{end:#010x}] failed due to {reason}"
    return f"pageext: hotplug: {action} of memory block {index} failed: {error}"


class Synthetic:
    """The seeded generator; see the module docstring."""

    def __init__(self, pe: PageExt, spec: WorkloadSpec, progress: Progress, result: WorkloadResult,
                 sample: Callable[[int], None] | None = None, sample_every: int = 0) -> None:
        self.pe = pe
        self.sample, self.sample_every = sample, sample_every
        self.m = pe.machine
        self.spec = spec
        self.progress = progress
        self.rng = random.Random(spec.seed)
        self.res = result
        m = self.m
        tasks = spec.tasks or [dict(t) for t in DEFAULT_TASKS]
        self.tasks = [Task(t["pid"], t.get("tgid", t["pid"]), t["comm"]) for t in tasks]
        self.task_user = [bool(t.get("user", False)) for t in tasks]
        self.task_weight = [float(t.get("weight", 1.0)) for t in tasks]
        self.task_cpu = [i % m.config.cpus for i in range(len(tasks))]
        self.sites = self._variants(spec.call_sites)
        depot = m.depot
        depth = m.stack_max_frames
        self.alloc_handle = [depot.save(s.stack(v)[:depth]) for s, v in self.sites]
        self.free_handle = [depot.save(s.free_frames[:depth]) for s, _ in self.sites]
        # A planted bug's access: a copy into the block by the code that allocated it.
        self.access_handle = [depot.save((ACCESS_FRAME,) + s.callers[v % len(s.callers)][: depth - 1])
                              for s, v in self.sites]
        self.stray_handle = depot.save(STRAY_STACK[:depth])
        # Sites each task may use, with weights.
        self.task_sites: list[tuple[list[int], list[float]]] = []
        for user in self.task_user:
            idx = [i for i, (s, _) in enumerate(self.sites) if (s.user if user else s.kernel)]
            if not idx:
                idx = list(range(len(self.sites)))
            self.task_sites.append((idx, [self.sites[i][0].weight for i in idx]))
        self.orders = list(spec.orders.items()) if spec.orders else None
        self.gfps = list(spec.gfp.items()) if spec.gfp else None
        self.heap: list[tuple[int, int, int, int, int, int]] = []  # (due op, seq, pfn, order, site, task)
        self.live: dict[int, tuple[int, int, int]] = {}  # pfn -> (order, site, task)
        self.live_pages = 0
        self.recently_freed: deque[tuple[int, int, int, int]] = deque(maxlen=32)  # (pfn, order, task, site)
        self.seq = 0
        # A block migrated (offline with migration) lives on at another pfn: follow it.
        self.moved: dict[int, int] = {}
        # Max-order blocks any page of which was ever handed out, kept only when stray
        # writes are planted: a stray write must land in memory nobody was ever given.
        self.used_blocks: np.ndarray | None = None
        if spec.faults.get("stray_write"):
            self.used_blocks = np.zeros((m.geometry.max_pfn >> m.max_order) + 1, dtype=bool)
            self._mark_tables()

    def _variants(self, want: int | None) -> list[tuple[CallSite, int]]:
        base = [(s, 0) for s in BUILTIN_SITES]
        if not want:
            return base
        out = list(base[:want])
        v = 1
        while len(out) < want:
            grew = False
            for s in BUILTIN_SITES:
                if v < len(s.callers) and len(out) < want:
                    out.append((s, v))
                    grew = True
            if not grew:
                # Every caller variant used: make more by distinct call depths.
                for s in BUILTIN_SITES:
                    if len(out) >= want:
                        break
                    out.append((s, v))
            v += 1
        return out

    # -- the loop -----------------------------------------------------------------

    def run(self) -> WorkloadResult:
        spec, res, m = self.spec, self.res, self.m
        plants = self._plan_faults()
        hot = sorted(spec.hotplug, key=lambda e: e.at)
        hi = 0
        think = spec.think_time_ns
        rng = self.rng
        cap = spec.max_live_pages
        sample, every = self.sample, self.sample_every
        self.m.migrate_observers.append(self._migrated)
        try:
            for i in range(spec.operations):
                while hi < len(hot) and hot[hi].at <= i:
                    self._hotplug(hot[hi])
                    hi += 1
                while plants and plants[-1][0] <= i:
                    self._plant(plants.pop()[1])
                if think:
                    m.clock_ns += int(rng.expovariate(1.0 / think))
                heap = self.heap
                if heap and (heap[0][0] <= i or (cap is not None and self.live_pages >= cap)):
                    self._free(heapq.heappop(heap))
                else:
                    self._alloc(i)
                res.operations = i + 1
                if sample is not None and not res.operations % every:
                    sample(res.operations)
                if not i & 1023:
                    self.progress(i)
            while hi < len(hot):
                self._hotplug(hot[hi])
                hi += 1
            while plants:
                self._plant(plants.pop()[1])
        except KeyboardInterrupt:
            res.interrupted = True
            raise
        finally:
            self.m.migrate_observers.remove(self._migrated)
            res.live_blocks = len(self.live)
            res.live_pages = self.live_pages
            res.leaked_blocks = len(self.live) - len(self.heap)
            self.progress(res.operations)
        return res

    def _pick_task(self) -> int:
        return self.rng.choices(range(len(self.tasks)), self.task_weight)[0]

    def _alloc(self, i: int, *, task: int | None = None, site: int | None = None, gfp: int | None = None,
               order: int | None = None) -> int | None:
        m, rng = self.m, self.rng
        t = self._pick_task() if task is None else task
        if site is None:
            idx, w = self.task_sites[t]
            site = rng.choices(idx, w)[0]
        s = self.sites[site][0]
        if order is None:
            order = rng.choices(*zip(*self.orders))[0] if self.orders else rng.choices(*zip(*s.orders))[0]
        if gfp is None:
            gfp = rng.choices(*zip(*self.gfps))[0] if self.gfps else s.gfp
        ctx = m.ctx  # plain attributes of the machine's parts: set before every operation
        ctx.current = self.tasks[t]
        m.buddy.cpu = self.task_cpu[t]
        ctx.stack_handle = self.alloc_handle[site]
        pfn = m.alloc_pages(gfp, order)
        self.res.allocations += 1
        if pfn is None:
            self.res.failures += 1
            return None
        if s.page_flags:
            m.set_page_flags(pfn, s.page_flags)
        if self.used_blocks is not None:
            self.used_blocks[pfn >> m.max_order] = True
        self.live[pfn] = (order, site, t)
        self.live_pages += 1 << order
        if rng.random() >= self.spec.leak_fraction:
            life = max(1, int(rng.expovariate(1.0 / (self.spec.lifetime * s.lifetime_scale))))
            self.seq += 1
            heapq.heappush(self.heap, (i + life, self.seq, pfn, order, site, t))
        return pfn

    def _migrated(self, old: int, new: int, order: int, reason: str) -> None:
        if self.used_blocks is not None:
            self.used_blocks[new >> self.m.max_order] = True
        entry = self.live.pop(old, None)
        if entry is not None:
            self.live[new] = entry
            self.moved[old] = new

    def _free(self, item: tuple[int, int, int, int, int, int]) -> None:
        _, _, pfn, order, site, t = item
        while pfn in self.moved:  # the heap still names where the block was allocated
            pfn = self.moved.pop(pfn)
        m = self.m
        ctx = m.ctx
        ctx.current = self.tasks[t]
        m.buddy.cpu = self.task_cpu[t]
        ctx.stack_handle = self.free_handle[site]
        m.free_pages(pfn, order)
        del self.live[pfn]
        self.live_pages -= 1 << order
        self.res.frees += 1
        self.recently_freed.append((pfn, order, t, site))

    # -- hotplug ------------------------------------------------------------------------

    def _hotplug(self, ev: Any) -> None:
        m = self.m
        blocks = m.memory_blocks
        if ev.block is None:
            cands = [b for b in blocks if b.hotplug]
            if not cands:
                error = "the machine has no hot-pluggable memory ([machine] hotplug)"
                self.res.hotplug.append({"at": ev.at, "action": ev.action, "ok": False, "error": error})
                self.res.hotplug_failures += 1
                m.log.warn(f"pageext: hotplug: {ev.action} failed: {error}")
                return
            index = cands[0].index
        else:
            index = ev.block
        entry: dict[str, Any] = {"at": ev.at, "action": ev.action, "block": index, "time_ns": m.clock_ns}
        if ev.migrate:
            entry["migrate"] = True
        try:
            if ev.action == "online":
                m.online_memory_block(index)
            else:
                m.offline_memory_block(index, migrate=ev.migrate)
            entry["ok"] = True
        except HotplugError as exc:
            entry["ok"] = False
            entry["error"] = str(exc)
            self.res.hotplug_failures += 1
            m.log.warn(hotplug_failure_line(m, ev.action, index, str(exc)))
        self.res.hotplug.append(entry)
        if self.used_blocks is not None:  # onlining allocates page_ext tables for the new sections
            self._mark_tables()

    def _mark_tables(self) -> None:
        """Mark the blocks page_ext tables were carved from (``alloc_pages_exact`` handed out and freed the tails)."""
        tables = self.pe.tables
        if tables is None or self.used_blocks is None:
            return
        shift = self.m.max_order
        for t in tables.tables.values():
            for p, _ in t.sim_chunks:
                self.used_blocks[p >> shift] = True

    # -- planted bugs -------------------------------------------------------------------

    def _plan_faults(self) -> list[tuple[int, str]]:
        """(operation, kind) for every bug to plant, spread over the run; popped from the end."""
        n = max(self.spec.operations, 1)
        plan = []
        for kind, count in sorted(self.spec.faults.items()):
            for _ in range(count):
                plan.append((self.rng.randrange(n // 10, n) if n >= 10 else 0, kind))
        plan.sort(reverse=True)
        return plan

    def _record(self, kind: str, pfn: int, offset: int, nbytes: int, faulted: PageFault | None, target: str,
                **extra: Any) -> None:
        self.res.planted.append({
            "kind": kind, "pfn": pfn, "pfn_hex": f"{pfn:#x}", "offset": offset, "bytes": nbytes,
            "time_ns": self.m.clock_ns, "op": self.res.operations, "target": target, "faulted": faulted is not None,
            **extra,
        })

    def _write(self, pfn: int, offset: int, data: bytes) -> PageFault | None:
        try:
            self.m.write(pfn, offset, data)
        except PageFault as exc:
            return exc
        return None

    def _plant(self, kind: str) -> None:
        getattr(self, f"_plant_{kind}")()

    def _plant_use_after_free(self) -> None:
        m, rng = self.m, self.rng
        for pfn, order, t, site in reversed(self.recently_freed):
            if m.is_free(pfn):
                page = pfn + rng.randrange(1 << order)
                off = rng.randrange(0, PAGE_SIZE - 8, 8)
                with m.context(task=self.tasks[t], cpu=self.task_cpu[t], stack=self.access_handle[site]):
                    fault = self._write(page, off, b"\xde\xad\xbe\xef\x00\x00\x00\x01")
                self._record("use_after_free", page, off, 8, fault, "freed block", block_pfn=pfn, order=order)
                return
        self.res.planted.append({"kind": "use_after_free", "skipped": "no recently freed block is still free"})

    def _free_pages_never_used(self) -> np.ndarray:
        """Heads of free max-order blocks no page of which was ever handed out (``used_blocks``)."""
        st = self.m.state
        heads = np.flatnonzero(st == ((PageKind.FREE << 4) | self.m.max_order))  # the state byte: kind << 4 | order
        if self.used_blocks is not None:
            heads = heads[~self.used_blocks[heads >> self.m.max_order]]
        return heads

    def _plant_stray_write(self) -> None:
        m = self.m
        heads = self._free_pages_never_used()
        if not heads.size:
            self.res.planted.append({"kind": "stray_write", "skipped": "no untouched free max-order block"})
            return
        head = int(heads[self.rng.randrange(heads.size)])
        page = head + self.rng.randrange(1 << self.m.max_order)
        off = self.rng.randrange(0, PAGE_SIZE - 8, 8)
        with m.context(task=STRAY_TASK, stack=self.stray_handle):
            fault = self._write(page, off, b"\x0b\xad\xf0\x0d\x0b\xad\xf0\x0d")
        self._record("stray_write", page, off, 8, fault, "free memory never handed out")

    def _reused_free_page(self) -> tuple[int, int, int] | None:
        """A free page the next order-0 allocation of (task, site) will be given (top of a per-CPU list).

        Allocating and freeing one page puts it on the hot end of the CPU's
        per-CPU list, where the next allocation of that migratetype finds it.
        """
        m = self.m
        for _ in range(8):
            t = self._pick_task()
            idx, w = self.task_sites[t]
            site = self.rng.choices(idx, w)[0]
            with m.context(task=self.tasks[t], stack=self.alloc_handle[site], cpu=self.task_cpu[t]):
                pfn = m.alloc_pages(self.sites[site][0].gfp, 0)
                self.res.allocations += 1
                if pfn is None:
                    self.res.failures += 1
                    continue
                if self.used_blocks is not None:
                    self.used_blocks[pfn >> m.max_order] = True
                m.set_stack(self.free_handle[site])
                m.free_pages(pfn, 0)
                self.res.frees += 1
            return pfn, t, site
        return None

    def _flip(self, kind: str, nbytes: int) -> None:
        m, rng = self.m, self.rng
        got = self._reused_free_page()
        if got is None:
            self.res.planted.append({"kind": kind, "skipped": "no order-0 page could be recycled"})
            return
        pfn, t, site = got
        off = rng.randrange(0, PAGE_SIZE - nbytes)
        old = m.contents.page_view(pfn)[off : off + nbytes].tobytes()
        if nbytes == 1:
            new = bytes([old[0] ^ (1 << rng.randrange(8))])
        else:
            new = bytes(b ^ 0xFF for b in old)
        m.contents.write_phys(pfn, off, new)  # memory went bad while the page was free
        self._record(kind, pfn, off, nbytes, None, "free page (the next allocation reuses it)")
        # The next allocation of the same kind on the same CPU takes this page from the per-CPU list.
        got_pfn = self._alloc(self.res.operations, task=t, site=site, gfp=self.sites[site][0].gfp, order=0)
        self.res.planted[-1]["reallocated"] = got_pfn == pfn

    def _plant_bit_flip(self) -> None:
        self._flip("bit_flip", 1)

    def _plant_corruption(self) -> None:
        self._flip("corruption", 16)

    def _plant_overrun(self) -> None:
        self._past_block("overrun")

    def _plant_underrun(self) -> None:
        self._past_block("underrun")

    def _past_block(self, kind: str) -> None:
        m, rng = self.m, self.rng
        if not self.live:
            self.res.planted.append({"kind": kind, "skipped": "nothing allocated"})
            return
        pfns = sorted(self.live)
        for _ in range(16):
            head = pfns[rng.randrange(len(pfns))]
            order, site, t = self.live[head]
            if kind == "overrun":
                page, off = head + (1 << order), 0
            else:
                page, off = head - 1, PAGE_SIZE - 8
            if page < 0 or not m.pfn_valid(page):
                continue
            kind_now, _, _ = m.page_kind(page)
            target = {PageKind.HELD: "guard page", PageKind.FREE: "free page", PageKind.PCP: "free page"}.get(
                kind_now, "allocated page")
            with m.context(task=self.tasks[t], cpu=self.task_cpu[t], stack=self.access_handle[site]):
                fault = self._write(page, off, b"\xcc" * 8)
            self._record(kind, page, off, 8, fault, target, block_pfn=head, order=order)
            return
        self.res.planted.append({"kind": kind, "skipped": "no allocation with a valid neighbour"})


def declared_finding_kinds(pe: PageExt) -> dict[str, FindingKinds]:
    """Each enabled client's ``pageext_finding_kinds`` answer, checked (a broken one is a SessionError).

    Asked once, before the workload, so a plugin's bad declaration stops the
    session before anything runs or is written.
    """
    out: dict[str, FindingKinds] = {}
    for name in pe.enabled:
        try:
            got = pe.ask("pageext_finding_kinds", name)
        except Exception as exc:
            raise SessionError(f"plugin {name!r}: pageext_finding_kinds raised {type(exc).__name__}: {exc}") from None
        if got is None:
            continue
        if not isinstance(got, FindingKinds):
            raise SessionError(f"plugin {name!r}: pageext_finding_kinds returned {type(got).__name__}; "
                               "return a pageext_core.FindingKinds(reports=..., catches=...)")
        try:
            got.check(name)
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        out[name] = got
    return out


def _fits(p: dict[str, Any], f: Finding, catches: Mapping[str, FindingKinds]) -> bool:
    """Can finding ``f`` be the report of planted bug ``p``?

    Same pfn; not before the bug; a kind by which ``f``'s client declares it
    catches ``p``'s kind; and where both are known, the finding's bytes
    overlap the planted write's.
    """
    if f.pfn != p["pfn"] or f.time_ns < p["time_ns"]:
        return False
    decl = catches.get(f.client)
    if decl is None or f.kind not in decl.catches.get(p["kind"], ()):
        return False
    if f.offset is not None and p.get("offset") is not None:
        lo, hi = p["offset"], p["offset"] + int(p.get("bytes") or 1)
        if f.offset + (f.length or 1) <= lo or f.offset >= hi:
            return False
    return True


def match_planted(planted: list[dict[str, Any]], findings: Sequence[Finding],
                  catches: Mapping[str, FindingKinds]) -> dict[str, Any]:
    """Match planted bugs with what the clients found, one to one; count detected, missed, undetectable.

    A planted bug and a finding may be paired when they fit (``_fits``,
    from the clients' ``pageext_finding_kinds`` declarations).  Among those
    pairs a maximum matching is chosen (augmenting paths, Kuhn's algorithm:
    bugs in the order they were planted, findings in their list order, so
    the choice is deterministic): each finding catches at most one bug and
    each bug is caught by at most one finding.  ``detected_by`` is the index
    of its finding in ``findings``, or None.

    A write that landed in another live allocation (an overrun into the next
    block) is silent corruption: no page-level debug feature can see it, in
    the kernel either.  Such plants are ``undetectable``, never matched (a
    later finding on that page is another bug's), and counted apart from
    ``missed`` (detectable plants nobody reported).
    """
    by_pfn: dict[int, list[int]] = {}
    for fi, f in enumerate(findings):
        by_pfn.setdefault(f.pfn, []).append(fi)
    edges: dict[int, list[int]] = {}
    for pi, p in enumerate(planted):
        if "skipped" in p or p.get("target") == "allocated page":
            continue
        edges[pi] = [fi for fi in by_pfn.get(p["pfn"], ()) if _fits(p, findings[fi], catches)]
    owner: dict[int, int] = {}  # finding index -> planted index

    def augment(pi: int, seen: set[int]) -> bool:
        for fi in edges[pi]:
            if fi in seen:
                continue
            seen.add(fi)
            if fi not in owner or augment(owner[fi], seen):
                owner[fi] = pi
                return True
        return False

    for pi in edges:
        if edges[pi]:
            augment(pi, set())
    caught = {pi: fi for fi, pi in owner.items()}
    detected = missed = undetectable = 0
    items = []
    for pi, p in enumerate(planted):
        if "skipped" in p:
            items.append({**p, "detected_by": None})
            continue
        detectable = pi in edges
        hit = caught.get(pi)
        if hit is not None:
            detected += 1
        elif detectable:
            missed += 1
        else:
            undetectable += 1
        items.append({**p, "detectable": detectable, "detected_by": hit})
    real = [p for p in planted if "skipped" not in p]
    return {"planted": len(real), "detected": detected, "missed": missed, "undetectable": undetectable,
            "items": items}
