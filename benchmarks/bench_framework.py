"""The page_ext framework itself: what "off" costs, what an enabled client costs, how big the tables are.

- Overhead when off: the standard alloc/free workload on a machine whose
  three installed plugins are present but not enabled (``boot(config, "")``)
  against the same machine with plugin loading disabled
  (``autoload=False``), interleaved in one run.  Target: throughput ratio
  >= 0.97 (with no client needed the allocator makes no call at all).
- Cost of enabled clients that do nothing (no-op ``on_alloc``/``on_free``,
  1 and 3 of them), per allocator operation, as a multiple of the
  ``list_floor`` measured in the same run; and the same no-op hooks called
  through ``pm.hook.pageext_on_alloc(...)`` (pluggy) instead of the call
  lists resolved at boot, to show what resolving saves.
- page_ext bytes for 1 GiB, 64 GiB and 1 TiB machines with each installed
  plugin alone and all three (``pe.nbytes``, ``pe.record_size``, from
  whatever fields the plugins declare today), each checked to be exactly
  record size x pages covered.  Each boot runs in its own process, watched:
  a boot whose host memory passes ``RSS_BUDGET`` is stopped and its figure
  computed from the layout (record size from a small boot x present
  sections of the big machine's geometry), which the Result says.

Timing: the standard plan (``benchmarks/_workload.py``) on a 1 GiB machine,
candidates interleaved round by round, best of each.  Times are the
thread's CPU time around ``run_plan`` (its end-of-run clean-up included,
the same for every candidate) rather than wall time: on a shared, loaded
host wall time mostly measures other processes, while CPU time of a
single-threaded loop does not.  ``run_plan``'s own wall-clock figure (best
round) is kept in each Result's detail.

Run: ``.venv/bin/python -m benchmarks framework`` (``--quick`` for a smoke test).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pageext_core as pc
from benchmarks import _workload as wl
from benchmarks._harness import Result, interleaved, list_floor, run_parts
from pageext_core import hookimpl
from pageext_core.mm import Callout, Callouts, GiB, MachineConfig, MiB, TiB
from pageext_core.mm.geometry import build_geometry

ROOT = Path(__file__).resolve().parents[1]
CONFIG = MachineConfig(memory=1 * GiB)  # the standard plan runs without failures on 1 GiB
RSS_BUDGET = 4 * GiB  # host memory one table-size boot may use before it is stopped
SIZES = {"1GiB": 1 * GiB, "64GiB": 64 * GiB, "1TiB": 1 * TiB}
# Each installed plugin alone, then all three.  guard takes effect only with debug_pagealloc
# (as in the kernel), so its line has both; each Result's detail says what was enabled.
LINES = {
    "page_owner": "page_owner=on",
    "debug_pagealloc": "debug_pagealloc=on",
    "guard (with debug_pagealloc)": "debug_pagealloc=on debug_guardpage_minorder=1",
    "all three": "page_owner=on debug_pagealloc=on debug_guardpage_minorder=1",
}


def _cpu_and_result(fn: Callable[[], Any]) -> tuple:
    """This thread's CPU seconds for the call, then what it returned (run_plan: wall, ops; list_floor: wall)."""
    t0 = time.thread_time()
    got = fn()
    dt = time.thread_time() - t0
    return (dt, got[1], got[0]) if isinstance(got, tuple) else (dt, got)


def interleaved_cpu(funcs: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Best thread CPU time of each callable, run alternately, and its best returned figures.

    run_plan returns ``(ops done, wall seconds of its loop)`` (kept as such,
    with the least wall time); list_floor returns wall seconds.
    """
    best = interleaved(funcs, rounds, measure=_cpu_and_result)
    cpu = {k: v[0] for k, v in best.items()}
    returned = {k: (v[2], v[1]) if len(v) == 3 else v[1] for k, v in best.items()}
    return cpu, returned


# -- overhead when off -------------------------------------------------------------------------


def overhead_off(quick: bool) -> list[Result]:
    plan = wl.make_plan(20_000 if quick else 100_000)
    off = pc.boot(CONFIG, "")
    bare = pc.boot(CONFIG, "", autoload=False)
    m_off, m_bare = off.machine, bare.machine
    assert not m_off.callouts, "off must install no call-out"
    best, walls = interleaved_cpu({"off": lambda: wl.run_plan(m_off, plan), "bare": lambda: wl.run_plan(m_bare, plan)},
                                  rounds=5 if quick else 21)
    ratio = best["bare"] / best["off"]
    ops = walls["off"][0]
    assert walls["bare"][0] == ops
    detail = {"ops": ops, "cpu_seconds_off": round(best["off"], 4), "cpu_seconds_no_plugins": round(best["bare"], 4),
              "cpu_us_per_op_off": round(best["off"] / ops * 1e6, 3),
              "cpu_us_per_op_no_plugins": round(best["bare"] / ops * 1e6, 3),
              "wall_loop_ratio": round(walls["bare"][1] / walls["off"][1], 3),
              "installed": [c.name for c in off.clients], "enabled": off.enabled, "problems": off.problems,
              "alloc_failures": m_off.nr_alloc_failures, "machine": "1 GiB"}
    return [Result("throughput, plugins installed but off / plugin loading disabled", ratio, "x",
                   target=">= 0.97", ok=ratio >= 0.97, detail=detail)]


# -- enabled clients that do nothing ---------------------------------------------------------------


class NoOp:
    """Needed, stores nothing, and does nothing on every allocation and free."""

    @hookimpl
    def pageext_need(self) -> bool:
        return True

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
        pass

    @hookimpl
    def pageext_on_free(self, pfn: int, order: int) -> None:
        pass


class Counting(NoOp):
    """The same, counting its calls (used once, outside the timing, to count hook calls per operation)."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
        self.calls += 1

    @hookimpl
    def pageext_on_free(self, pfn: int, order: int) -> None:
        self.calls += 1


def _noop_boot(k: int, cls: type = NoOp) -> pc.PageExt:
    return pc.boot(CONFIG, "", plugins=[(f"noop{i}", cls()) for i in range(k)], autoload=False)


def _through_pluggy(pe: pc.PageExt) -> pc.Machine:
    """Make the allocator call the hooks through pluggy on every event, as an unresolved design would."""
    m = pe.machine
    on_alloc, on_free = pe.pm.hook.pageext_on_alloc, pe.pm.hook.pageext_on_free

    def alloc(pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
        on_alloc(pfn=pfn, order=order, gfp_mask=gfp_mask, migratetype=migratetype)

    def free(pfn: int, order: int) -> None:
        on_free(pfn=pfn, order=order)

    m.install(Callouts(alloc=(Callout("pluggy", alloc),), free=(Callout("pluggy", free),)))
    return m


def noop_clients(quick: bool) -> list[Result]:
    plan = wl.make_plan(20_000 if quick else 100_000)
    # Hook calls per client in one run_plan (its clean-up frees included); failed allocations call nothing.
    counter = _noop_boot(1, Counting)
    ops, _ = wl.run_plan(counter.machine, plan)
    calls = counter.plugin("noop0").calls

    machines = {"0": _noop_boot(0).machine}
    for k in (1, 3):
        pe = _noop_boot(k)
        assert len(pe.machine.callouts.alloc) == k and len(pe.machine.callouts.free) == k
        machines[f"{k} resolved"] = pe.machine
        machines[f"{k} pluggy"] = _through_pluggy(_noop_boot(k))
    runs: dict[str, Callable[[], Any]] = {name: (lambda m=m: wl.run_plan(m, plan)) for name, m in machines.items()}
    runs["floor"] = lambda: list_floor(ops)
    best, walls = interleaved_cpu(runs, rounds=5 if quick else 11)
    floor_op = best["floor"] / ops
    base = best["0"]
    common = {"ops": ops, "hook_calls_per_client": calls, "list_floor_ns_per_op": round(floor_op * 1e9, 2),
              "list_floor_wall_ns_per_op": round(walls["floor"] / ops * 1e9, 2)}
    out = [Result("alloc/free with no client, per op", base / ops / floor_op, "list floors",
                  detail={**common, "cpu_ns_per_op": round(base / ops * 1e9, 1),
                          "wall_loop_ns_per_op": round(walls["0"][1] / ops * 1e9, 1)})]
    for k in (1, 3):
        s = "s" if k > 1 else ""
        for how, label in (("resolved", "resolved at boot"), ("pluggy", "called through pm.hook (pluggy)")):
            extra = best[f"{k} {how}"] - base
            out.append(Result(f"added cost per op, {k} no-op client{s}, {label}", extra / ops / floor_op,
                              "list floors",
                              detail={**common, "cpu_ns_per_op": round(extra / ops * 1e9, 1),
                                      "cpu_ns_per_hook_call": round(extra / (k * calls) * 1e9, 1)}))
        saved = best[f"{k} pluggy"] - best[f"{k} resolved"]
        out.append(Result(f"saved per op by resolving at boot, {k} client{s}", saved / ops / floor_op, "list floors",
                          detail={**common, "cpu_ns_per_op": round(saved / ops * 1e9, 1),
                                  "pluggy_extra_over_resolved_extra":
                                      round((best[f"{k} pluggy"] - base) / max(best[f"{k} resolved"] - base, 1e-9), 1)}))
    return out


# -- page_ext bytes --------------------------------------------------------------------------------

CHILD = r"""
import json, resource, sys, time
import pageext_core as pc
t0 = time.perf_counter()
pe = pc.boot(pc.MachineConfig(memory=int(sys.argv[1])), sys.argv[2])
t = pe.tables
print(json.dumps({
    "enabled": pe.enabled, "record_size": pe.record_size, "nbytes": pe.nbytes,
    "covered_pages": sum(len(x.records) for x in t.tables.values()) if t else 0,
    "tables": len(t.tables) if t else 0, "present_sections": len(pe.machine.present_sections()),
    "sim_pages": t.sim_pages if t else 0, "problems": pe.problems,
    "clients": {c.name: {"offset": c.layout.offset, "size": c.layout.size, "bits": len(c.layout.flag_bits)}
                for c in pe.clients if c.layout is not None},
    "boot_seconds": round(time.perf_counter() - t0, 2),
    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
}))
"""


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def boot_watched(memory: int, line: str, budget: int = RSS_BUDGET, timeout: float = 600) -> tuple[dict | None, str]:
    """Boot in a child process; (its JSON, "") or (None, why it could not)."""
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(memory), line], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    peak = 0
    while p.poll() is None:
        peak = max(peak, _rss(p.pid))
        if peak > budget or time.monotonic() - t0 > timeout:
            p.kill()
            p.communicate()
            why = (f"stopped at {peak / GiB:.1f} GiB of host memory (budget {budget / GiB:.0f} GiB)"
                   if peak > budget else f"no answer in {timeout:.0f} s")
            return None, why
        time.sleep(0.05)
    out, err = p.communicate()
    if p.returncode:
        tail = (err.strip().splitlines() or ["?"])[-1]
        return None, f"the boot failed: {tail}"
    return json.loads(out.strip().splitlines()[-1]), ""


def present_sections(memory: int) -> int:
    """Sections with present RAM in a default machine of this size (geometry only, nothing allocated)."""
    g = build_geometry(MachineConfig(memory=memory))
    shift = g.section_shift
    sections: set[int] = set()
    for s, e in g.ram:
        sections.update(range(s >> shift, ((e - 1) >> shift) + 1))
    return len(sections)


def table_bytes(quick: bool) -> list[Result]:
    out: list[Result] = []
    small: dict[str, dict] = {}
    for size_name, memory in SIZES.items():
        for what, line in LINES.items():
            boot_it = memory <= 1 * GiB or not quick
            got, why = boot_watched(memory, line) if boot_it else (None, "not booted in --quick mode")
            if size_name == "1GiB":
                if got is None:
                    raise RuntimeError(f"cannot boot 1 GiB with {line!r}: {why}")
                small[what] = got
            ref = small[what]
            sections = present_sections(memory)
            pages = sections << 15
            if got is not None:
                source = "booted"
                nbytes, rs, covered = got["nbytes"], got["record_size"], got["covered_pages"]
                assert got["tables"] == got["present_sections"] == sections, got
            else:
                source = f"computed from the layout ({why}): record size x 32768 x present sections"
                nbytes, rs, covered = ref["record_size"] * pages, ref["record_size"], pages
            detail: dict[str, Any] = {
                "record_size": rs, "enabled": ref["enabled"], "clients": ref["clients"],
                "present_sections": sections, "pages_covered": covered, "source": source,
                "percent_of_ram": round(100 * nbytes / memory, 3),
                "MiB": round(nbytes / MiB, 1),
            }
            if got is not None:
                # No over-allocation: tables for present sections only, each exactly 32768 records.
                exact = nbytes == rs * covered and covered == pages
                detail.update(boot_seconds=got["boot_seconds"], max_rss_mib=got["max_rss_mib"],
                              simulated_pages=got["sim_pages"], record_size_as_at_1GiB=rs == ref["record_size"])
                out.append(Result(f"page_ext bytes, {size_name}, {what}", nbytes, "bytes",
                                  target="== record size x pages covered", ok=exact, detail=detail))
            else:
                out.append(Result(f"page_ext bytes, {size_name}, {what} (computed)", nbytes, "bytes", detail=detail))
    return out


def run(quick: bool = False) -> list[Result]:
    return run_parts((overhead_off, noop_clients, table_bytes), quick)
