"""The synthetic workload generator, planted bugs, ``match_planted`` and function workloads.

The machine is booted here with ``autoload=False`` and a recording client of
the test's own, so every figure is checked against what the allocator saw.
"""
from __future__ import annotations

import math
import random
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pageext_core import hookimpl
from pageext_core.mm import MachineConfig, MiB, check_invariants
from pageext_core.mm.constants import PAGE_SIZE
from pageext_core.page_ext import PageExt, boot
from pageext_core.reports import Finding, FindingKinds
from pageext_core.session.callsites import BUILTIN_SITES, DEFAULT_TASKS
from pageext_core.session.config import FAULT_KINDS, HotplugEvent, SessionError, WorkloadSpec, load_session
from pageext_core.session.runner import RunOptions, run_session
from pageext_core.session.workload import Synthetic, WorkloadResult, load_function, match_planted, run_workload

SMALL = MachineConfig(memory=64 * MiB, cpus=2)


class Recorder:
    """Records every allocation and free with the context it happened in, and the live page count."""

    name = "recorder"

    def __init__(self) -> None:
        self.m: Any = None
        self.events: list[tuple] = []
        self.live = 0
        self.peak = 0
        self.baseline = 0

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_fields(self) -> Mapping[str, Any]:
        return {}

    @hookimpl
    def pageext_flags(self) -> list[str]:
        return ["R"]

    @hookimpl
    def pageext_init(self, machine: Any) -> None:
        self.m = machine
        self.baseline = machine.nr_allocated_pages

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int, gfp_mask: int) -> None:
        m = self.m
        self.live += 1 << order
        self.peak = max(self.peak, self.live)
        self.events.append(("alloc", pfn, order, gfp_mask, m.current.pid, m.current.comm, m.cpu,
                            m.current_stack(), m.clock_ns))

    @hookimpl
    def pageext_on_free(self, pfn: int, order: int) -> None:
        m = self.m
        self.live -= 1 << order
        self.events.append(("free", pfn, order, m.current.pid, m.current_stack(), m.clock_ns))


def run(spec: WorkloadSpec, config: MachineConfig = SMALL) -> tuple[PageExt, Recorder, WorkloadResult]:
    rec = Recorder()
    pe = boot(config, "", autoload=False, plugins=[rec])
    res = run_workload(pe, spec)
    return pe, rec, res


# -- determinism ---------------------------------------------------------------------------------------


def test_same_seed_same_operations() -> None:
    spec = WorkloadSpec(seed=7, operations=3000, lifetime=300, leak_fraction=0.05)
    _, a, ra = run(spec)
    _, b, rb = run(WorkloadSpec(seed=7, operations=3000, lifetime=300, leak_fraction=0.05))
    assert a.events == b.events and len(a.events) >= 3000  # allocations and frees
    assert ra.as_dict() == rb.as_dict()
    _, c, _ = run(WorkloadSpec(seed=8, operations=3000, lifetime=300, leak_fraction=0.05))
    assert c.events != a.events


def test_counts_agree_with_what_the_allocator_saw() -> None:
    pe, rec, res = run(WorkloadSpec(seed=3, operations=4000, lifetime=200, leak_fraction=0.1))
    allocs = [e for e in rec.events if e[0] == "alloc"]
    frees = [e for e in rec.events if e[0] == "free"]
    assert res.operations == 4000 == res.allocations + res.frees
    assert res.allocations - res.failures == len(allocs)
    assert res.frees == len(frees)
    assert res.live_blocks == len(allocs) - len(frees)
    assert res.live_pages == rec.live
    assert pe.machine.nr_allocated_pages - rec.baseline == res.live_pages
    assert res.interrupted is False and res.kind == "synthetic" and res.seed == 3
    # Simulated time moves with think time: mean 20 us between operations.
    assert allocs[-1][-1] > allocs[0][-1]


# -- leaks -------------------------------------------------------------------------------------------------


def test_leak_fraction_gives_leaked_blocks() -> None:
    # Each successful allocation leaks with probability f, independently: the
    # number leaked is Binomial(n, f).  With n ~ 10^4 and f = 0.1 the standard
    # deviation is ~30, so 5 sigma (+-150) can only be crossed by a broken generator.
    f = 0.1
    _, rec, res = run(WorkloadSpec(seed=11, operations=20000, lifetime=20, leak_fraction=f,
                                   orders={0: 3, 1: 1}), MachineConfig(memory=128 * MiB, cpus=2))
    n = res.allocations - res.failures
    assert res.failures == 0 and n > 9000
    sigma = math.sqrt(n * f * (1 - f))
    assert abs(res.leaked_blocks - n * f) <= 5 * sigma
    # Leaked blocks are never freed; everything else is still scheduled to be freed.
    assert res.leaked_blocks <= res.live_blocks
    _, _, none = run(WorkloadSpec(seed=11, operations=5000, lifetime=20, leak_fraction=0.0))
    assert none.leaked_blocks == 0
    _, _, every = run(WorkloadSpec(seed=11, operations=500, leak_fraction=1.0, orders={0: 1}))
    assert every.frees == 0 and every.leaked_blocks == every.live_blocks == every.allocations - every.failures


# -- tasks and call sites -------------------------------------------------------------------------------------


@pytest.mark.parametrize("call_sites", [4, 11, 16, 20, 40])
def test_call_sites_give_distinct_stacks(call_sites: int) -> None:
    pe = boot(SMALL, "", autoload=False)
    spec = WorkloadSpec(seed=1, operations=0, call_sites=call_sites)
    syn = Synthetic(pe, spec, lambda n: None, WorkloadResult("synthetic", 1))
    assert len(syn.sites) == call_sites
    handles = set(syn.alloc_handle)
    assert len(handles) == call_sites  # one depot entry per call site, none shared
    assert all(h != 0 for h in handles)
    frames = {pe.machine.depot.fetch(h) for h in handles}
    assert len(frames) == call_sites
    for f in frames:  # innermost first, as page_owner prints them
        assert f[0].startswith("post_alloc_hook+") and len(f) <= pe.machine.stack_max_frames


def test_builtin_sites_by_default() -> None:
    pe = boot(SMALL, "", autoload=False)
    syn = Synthetic(pe, WorkloadSpec(operations=0), lambda n: None, WorkloadResult("synthetic", 0))
    assert [s.name for s, _ in syn.sites] == [s.name for s in BUILTIN_SITES]
    assert len(set(syn.alloc_handle)) == len(BUILTIN_SITES)


def test_tasks_use_their_own_kind_of_call_sites() -> None:
    tasks = [{"pid": 10, "comm": "kthread_a", "user": False, "weight": 1.0},
             {"pid": 20, "tgid": 19, "comm": "app", "user": True, "weight": 1.0}]
    pe, rec, _ = run(WorkloadSpec(seed=2, operations=3000, tasks=tasks, lifetime=100))
    syn = Synthetic(pe, WorkloadSpec(operations=0, tasks=tasks), lambda n: None, WorkloadResult("synthetic", 0))
    site_of = {h: syn.sites[i][0] for i, h in enumerate(syn.alloc_handle)}
    seen: dict[int, set[str]] = {10: set(), 20: set()}
    comms = set()
    for e in rec.events:
        if e[0] == "alloc":
            _, _, _, _, pid, comm, _, handle, _ = e
            comms.add((pid, comm))
            seen[pid].add(site_of[handle].name)
    assert comms == {(10, "kthread_a"), (20, "app")}
    kernel_sites = {s.name for s in BUILTIN_SITES if s.kernel}
    user_sites = {s.name for s in BUILTIN_SITES if s.user}
    assert seen[10] and seen[10] <= kernel_sites
    assert seen[20] and seen[20] <= user_sites
    assert len(seen[10]) > 1 and len(seen[20]) > 1  # several stacks per task over 3000 operations


def test_default_tasks_all_allocate_on_their_cpu() -> None:
    _, rec, _ = run(WorkloadSpec(seed=5, operations=4000, lifetime=100))
    pids = {e[4] for e in rec.events if e[0] == "alloc"}
    assert pids == {t["pid"] for t in DEFAULT_TASKS}
    cpu_of = {t["pid"]: i % SMALL.cpus for i, t in enumerate(DEFAULT_TASKS)}
    assert all(e[6] == cpu_of[e[4]] for e in rec.events if e[0] == "alloc")


# -- orders, gfp, max_live_pages ----------------------------------------------------------------------------------


def test_orders_and_gfp_weights_override_the_sites() -> None:
    from pageext_core.mm.gfp import parse_gfp

    kernel = parse_gfp("GFP_KERNEL")
    _, rec, _ = run(WorkloadSpec(seed=4, operations=2000, orders={1: 1.0, 3: 1.0}, gfp={kernel: 1.0}))
    allocs = [e for e in rec.events if e[0] == "alloc"]
    assert {e[2] for e in allocs} == {1, 3}
    assert {e[3] for e in allocs} == {kernel}


def test_max_live_pages_is_respected() -> None:
    # Nothing leaks and nothing is due to be freed soon (lifetime 10^6), so live
    # pages only stop growing because of the cap: an allocation happens only
    # while fewer than `cap` pages are live, so the peak is below cap + 2^3.
    cap = 600
    pe, rec, res = run(WorkloadSpec(seed=6, operations=5000, lifetime=1e6, leak_fraction=0.0,
                                    max_live_pages=cap, orders={0: 2, 3: 1}))
    assert cap <= rec.peak <= cap - 1 + 8
    assert res.live_pages <= cap - 1 + 8
    assert res.frees > 1000  # the cap turned allocations into frees
    _, free_run, _ = run(WorkloadSpec(seed=6, operations=5000, lifetime=1e6, leak_fraction=0.0,
                                      orders={0: 2, 3: 1}))
    assert free_run.peak > 4 * cap  # without the cap the same run grows far beyond it


# -- hotplug --------------------------------------------------------------------------------------------------------


def test_hotplug_events_are_recorded() -> None:
    cfg = MachineConfig(memory=128 * MiB, cpus=1, hotplug=256 * MiB, hotplug_movable=True)
    events = [HotplugEvent(0, "online", None), HotplugEvent(0, "offline", None), HotplugEvent(50, "online", None),
              HotplugEvent(60, "online", 999), HotplugEvent(10_000, "offline", None)]
    pe, _, res = run(WorkloadSpec(seed=1, operations=200, hotplug=events), cfg)
    m = pe.machine
    first = next(b for b in m.memory_blocks if b.hotplug)
    h = res.hotplug
    assert [(e["at"], e["action"]) for e in h] == [(0, "online"), (0, "offline"), (50, "online"), (60, "online"),
                                                  (10_000, "offline")]
    assert all(e["block"] == first.index for e in (h[0], h[1], h[2], h[4]))
    assert h[0]["ok"] and h[1]["ok"] and h[2]["ok"]  # an empty block goes offline
    assert h[3]["block"] == 999 and h[3]["ok"] is False and h[3]["error"]
    assert h[0]["time_ns"] <= h[2]["time_ns"] <= h[4]["time_ns"]
    # The last event (after the final operation) is still applied; the block's state says how it went.
    assert first.online is (not h[4]["ok"])
    if not h[4]["ok"]:
        assert h[4]["error"]


def test_offline_with_migration_moves_live_blocks_and_the_workload_follows_them() -> None:
    # 1 CPU, hot memory onlined into ZONE_MOVABLE at op 0: the node's only
    # movable zone, so movable allocations land there, until the offline at
    # op 600 migrates them out; the workload then frees them where they went.
    cfg = MachineConfig(memory=128 * MiB, cpus=1, hotplug=128 * MiB, hotplug_movable=True,
                        x86_holes=False, kernel_image=0)
    events = [HotplugEvent(0, "online", None), HotplugEvent(600, "offline", None, migrate=True)]
    pe, _, res = run(WorkloadSpec(seed=3, operations=1500, lifetime=400, hotplug=events), cfg)
    m = pe.machine
    hot = next(b for b in m.memory_blocks if b.hotplug)
    assert [e["ok"] for e in res.hotplug] == [True, True] and res.hotplug[1]["migrate"] is True
    assert not hot.online
    [line] = m.log.grep("migrated")
    migrated = int(line.split("migrated ")[1].split()[0])
    assert migrated > 0, "nothing landed in the hot block: the test would prove nothing"
    heads, orders = m.allocated_blocks()
    live = dict(zip(heads.tolist(), orders.tolist()))
    tables = pe.tables.sim_pages if pe.tables else 0  # page_ext's own order-0 pages, not the workload's
    assert res.live_blocks == len(live) - tables
    assert res.live_pages == sum(1 << o for o in live.values()) - tables
    assert not any(hot.start_pfn <= p < hot.end_pfn for p in live)
    check_invariants(m)


def test_migrate_is_for_offline_only(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('[workload]\nhotplug = [{ at = 1, action = "online", migrate = true }]\n')
    with pytest.raises(SessionError, match=r"s.toml:2:\d+: \[workload.hotplug\] entry 1: migrate: "
                                           r"migrate applies to action = \"offline\" only"):
        load_session(p)


def test_hotplug_without_hotpluggable_memory_is_recorded_as_failed() -> None:
    _, _, res = run(WorkloadSpec(seed=1, operations=20, hotplug=[HotplugEvent(5, "online", None)]))
    assert res.hotplug == [{"at": 5, "action": "online", "ok": False,
                            "error": "the machine has no hot-pluggable memory ([machine] hotplug)"}]


# -- planted bugs -------------------------------------------------------------------------------------------------------


def test_planted_bugs_are_recorded_where_they_were_written() -> None:
    faults = {k: 2 for k in FAULT_KINDS}
    rec = Recorder()
    pe = boot(SMALL, "", autoload=False, plugins=[rec])
    m = pe.machine
    writes: list[tuple[int, int, bytes, int]] = []
    real_write, real_phys = m.write, m.contents.write_phys

    def write(pfn: int, offset: int, data: bytes) -> None:
        writes.append((pfn, offset, bytes(data), m.clock_ns))
        real_write(pfn, offset, data)

    def write_phys(pfn: int, offset: int, data: bytes) -> None:
        writes.append((pfn, offset, bytes(data), m.clock_ns))
        real_phys(pfn, offset, data)

    m.write, m.contents.write_phys = write, write_phys
    res = run_workload(pe, WorkloadSpec(seed=9, operations=3000, lifetime=300, faults=faults))
    assert sorted(p["kind"] for p in res.planted) == sorted(k for k in FAULT_KINDS for _ in range(2))
    done = [p for p in res.planted if "skipped" not in p]
    assert len(done) == len(res.planted)  # with nothing unmapped, every kind finds a target
    assert len(writes) == len(done)
    by_place = {(w[0], w[1]): w for w in writes}
    for p in done:
        assert set(p) >= {"kind", "pfn", "pfn_hex", "offset", "time_ns", "op", "target", "faulted"}
        assert m.pfn_valid(p["pfn"]) and p["pfn_hex"] == f"{p['pfn']:#x}"
        assert 0 <= p["offset"] < PAGE_SIZE
        assert 300 <= p["op"] <= 3000  # planted in the last 90% of the run
        assert p["faulted"] is False  # no client unmaps anything here
        pfn, off, data, when = by_place[(p["pfn"], p["offset"])]
        assert when == p["time_ns"]
        if p["kind"] == "use_after_free":
            assert data == b"\xde\xad\xbe\xef\x00\x00\x00\x01" and p["block_pfn"] <= pfn < p["block_pfn"] + (1 << p["order"])
        elif p["kind"] == "stray_write":
            assert data == b"\x0b\xad\xf0\x0d\x0b\xad\xf0\x0d"
        elif p["kind"] == "overrun":
            assert (pfn, off, data) == (p["block_pfn"] + (1 << p["order"]), 0, b"\xcc" * 8)
        elif p["kind"] == "underrun":
            assert (pfn, off, data) == (p["block_pfn"] - 1, PAGE_SIZE - 8, b"\xcc" * 8)
        elif p["kind"] == "bit_flip":
            assert len(data) == 1 and p["bytes"] == 1 and "reallocated" in p
        else:
            assert len(data) == 16 and p["bytes"] == 16 and "reallocated" in p
    assert [p["time_ns"] for p in done] == sorted(p["time_ns"] for p in done)


def test_planting_is_deterministic_and_skips_are_recorded() -> None:
    spec = lambda: WorkloadSpec(seed=4, operations=1000, faults={"use_after_free": 2, "overrun": 1})  # noqa: E731
    _, _, a = run(spec())
    _, _, b = run(spec())
    assert a.planted == b.planted and len(a.planted) == 3
    # Nothing was ever allocated or freed: each kind says why it planted nothing.
    _, _, empty = run(WorkloadSpec(seed=4, operations=0, faults={"use_after_free": 1, "overrun": 1}))
    assert empty.planted == [
        {"kind": "overrun", "skipped": "nothing allocated"},
        {"kind": "use_after_free", "skipped": "no recently freed block is still free"},
    ]


# -- match_planted --------------------------------------------------------------------------------------------------------


def _p(kind: str, pfn: int, t: int) -> dict[str, Any]:
    return {"kind": kind, "pfn": pfn, "pfn_hex": hex(pfn), "offset": 8, "time_ns": t, "op": 1, "target": "x",
            "faulted": True}


def test_match_planted_needs_same_pfn_fitting_kind_and_not_earlier() -> None:
    planted = [_p("use_after_free", 100, 50), _p("bit_flip", 200, 50), _p("overrun", 300, 50),
               _p("stray_write", 400, 50), {"kind": "corruption", "skipped": "no page"}]
    findings = [
        Finding("use-after-free", 100, 49, "too early", client="a"),   # before the bug: not it
        Finding("memory-corruption", 200, 60, "wrong kind", client="a"),
        Finding("single-bit-error", 201, 60, "wrong pfn", client="a"),
        Finding("guard-hit", 300, 50, "same time", client="guard"),
        Finding("stray-access", 400, 70, "free memory touched", client="debug_pagealloc"),
    ]
    got = match_planted(planted, findings, CATCHES)
    assert (got["planted"], got["detected"], got["missed"]) == (4, 2, 2)
    by = [i["detected_by"] for i in got["items"]]
    assert by == [None, None, 3, 4, None]  # indices into findings
    assert got["items"][4]["skipped"] == "no page"


CATCHES = {
    "a": FindingKinds(reports=("use-after-free", "memory-corruption", "single-bit-error"),
                      catches={"use_after_free": ("use-after-free",), "bit_flip": ("single-bit-error",)}),
    "guard": FindingKinds(reports=("guard-hit",), catches={"overrun": ("guard-hit",)}),
    "debug_pagealloc": FindingKinds(reports=("stray-access",), catches={"stray_write": ("stray-access",)}),
}


# -- function workloads --------------------------------------------------------------------------------------------------------


def _module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


def test_function_workload_runs_with_its_context(tmp_path: Path) -> None:
    _module(tmp_path, "fw_ctx_mod", """
        from pageext_core.mm.gfp import GFP_KERNEL

        def go(ctx):
            m = ctx.machine
            held = [m.alloc_pages(GFP_KERNEL, ctx.params["order"]) for _ in range(ctx.params["n"])]
            for pfn in held[: ctx.params["free"]]:
                m.free_pages(pfn, ctx.params["order"])
            ctx.progress(ctx.params["n"])
            return {"first_random": ctx.rng.random(), "enabled": ctx.page_ext.enabled,
                    "spec_seed": ctx.spec.seed}
        """)
    sess = load_session(tmp_path / "s.toml", text=textwrap.dedent("""
        [machine]
        memory = "64MiB"
        [plugins]
        autoload = false
        [workload]
        function = "fw_ctx_mod:go"
        seed = 12
        [workload.params]
        n = 10
        free = 4
        order = 1
        """))
    assert sess.workload.base_dir == str(tmp_path.resolve())  # the module is looked up there first
    seen: list[tuple[int, int]] = []
    out = run_session(sess, RunOptions(write_files=False, progress=lambda d, t: seen.append((d, t))))
    w = out.summary["workload"]
    assert w["kind"] == "function" and w["seed"] == 12
    assert (w["allocations"], w["frees"], w["operations"], w["failures"]) == (10, 4, 14, 0)
    assert w["result"] == {"first_random": random.Random(12).random(), "enabled": [], "spec_seed": 12}
    assert seen == [(10, sess.workload.operations)]


def test_function_workload_module_next_to_the_session_file(tmp_path: Path) -> None:
    _module(tmp_path, "fw_nextto_mod", "def run(ctx):\n    return 42\n")
    p = tmp_path / "s.toml"
    p.write_text('[machine]\nmemory = "64MiB"\n[plugins]\nautoload = false\n[workload]\n'
                 'function = "fw_nextto_mod:run"\n')
    out = run_session(load_session(p), RunOptions(write_files=False))
    assert out.summary["workload"]["result"] == 42
    import sys

    assert str(tmp_path.resolve()) not in sys.path  # the folder was only on the path for the import


def test_load_function_errors(tmp_path: Path) -> None:
    _module(tmp_path, "fw_err_mod", "VALUE = 3\n")
    with pytest.raises(SessionError, match=r"^\[workload\] function 'fw_no_such_module:go': cannot import "
                                           r"'fw_no_such_module': No module named 'fw_no_such_module'$"):
        load_function("fw_no_such_module:go", str(tmp_path))
    with pytest.raises(SessionError, match=r"^\[workload\] function 'fw_err_mod:go': 'fw_err_mod' has no 'go'$"):
        load_function("fw_err_mod:go", str(tmp_path))
    with pytest.raises(SessionError, match=r"^\[workload\] function 'fw_err_mod:VALUE' is not callable$"):
        load_function("fw_err_mod:VALUE", str(tmp_path))


def test_overrun_into_a_live_allocation_is_undetectable_not_missed() -> None:
    # Silent corruption of the next allocation: no page-level feature can see it.
    into_live = {**_p("overrun", 500, 50), "target": "allocated page"}
    into_guard = {**_p("overrun", 600, 50), "target": "guard page"}
    got = match_planted([into_live, into_guard], [], CATCHES)
    assert (got["planted"], got["detected"], got["missed"], got["undetectable"]) == (2, 0, 1, 1)
    assert [i["detectable"] for i in got["items"]] == [False, True]
