"""The machine model: allocator throughput, its independence of machine size, boot cost, memory.

- Throughput: the standard mixed workload (``_workload``) on a 1 GiB and a
  256 GiB machine, interleaved with the plain-list floor in the same rounds.
  A bigger machine must not make the allocator slower (ratio >= 0.9), and the
  per-operation cost is given as a multiple of the list floor.  Each result's
  detail also gives the per-CPU list traffic (blocks refilled from and
  returned to the buddy by the 6.12 pcp, issue 13) and the figures measured
  before that change and right after it (when refills and bulk frees still
  moved one block per Python step) on the development host, to compare.
- Boot and memory: boot time of 64 MiB, 1 GiB, 8 GiB, 64 GiB and 1 TiB
  machines (targets in ``BOOT_SECONDS_TARGET``: a boot that loops over pages
  in Python misses them by far), and host bytes per simulated page: the
  allocator's arrays (virtual sizes from ``Machine.host_bytes``, target < 8)
  and the RSS growth over the boot.

``--quick`` runs a short plan and skips the 1 TiB machine.
"""
from __future__ import annotations

import gc
import time

from benchmarks._harness import Result, interleaved, list_floor, rss_bytes
from benchmarks._workload import make_plan, run_plan
from pageext_core.mm import GiB, Machine, MachineConfig, MiB, TiB, format_size

ALLOCATOR_PARTS = ("state", "pflags", "pageblocks", "free_lists")
BYTES_PER_PAGE_TARGET = 8.0
RATIO_TARGET = 0.9
# ops/s of the allocator before issue 13 (order-0-only pcp with a per-list high, no watermarks,
# 6.15-style fallback), measured with `python -m benchmarks mm` on the development host.
BEFORE_ISSUE13_OPS_PER_S = {"1GiB": 6.793e5, "256GiB": 9.107e5}
# ops/s right after issue 13, before its refills and bulk frees worked per run (docs/benchmarks.md).
ISSUE13_OPS_PER_S = {"1GiB": 1.87e5, "256GiB": 2.17e5}
# Seconds a boot may take (measured 0.001 s at 1 GiB, 0.09 s at 64 GiB, 1.8 s at 1 TiB).
BOOT_SECONDS_TARGET = {64 * MiB: 0.5, 1 * GiB: 0.5, 8 * GiB: 1.0, 64 * GiB: 3.0, 1 * TiB: 10.0}


def _boot_and_memory(sizes: list[int]) -> list[Result]:
    out: list[Result] = []
    for size in sizes:
        label = format_size(size)
        gc.collect()
        rss0 = rss_bytes()
        t0 = time.perf_counter()
        m = Machine(MachineConfig(memory=size))
        boot = time.perf_counter() - t0
        rss1 = rss_bytes()
        pages = m.nr_present_pages
        hb = m.host_bytes()
        allocator = sum(hb[k] for k in ALLOCATOR_PARTS)
        per_page = allocator / pages
        limit = BOOT_SECONDS_TARGET[size]
        out.append(Result(f"mm.boot_seconds[{label}]", boot, "s", target=f"< {limit:g}", ok=boot < limit,
                          detail={"present_pages": pages, "max_pfn": m.geometry.max_pfn}))
        out.append(Result(
            f"mm.host_bytes_per_page[{label}]", per_page, "B/page",
            target=f"< {BYTES_PER_PAGE_TARGET:g}", ok=per_page < BYTES_PER_PAGE_TARGET,
            detail={"parts_bytes": hb, "allocator_bytes": allocator,
                    "total_bytes_per_page": sum(hb.values()) / pages},
        ))
        out.append(Result(
            f"mm.rss_bytes_per_page[{label}]", (rss1 - rss0) / pages, "B/page",
            detail={"rss_before": rss0, "rss_after": rss1,
                    "note": "RSS growth over the boot; noisy for small machines"},
        ))
        del m
        gc.collect()
    return out


def _throughput(n_ops: int, rounds: int) -> list[Result]:
    plan = make_plan(n_ops)
    machines = {
        "1GiB": Machine(MachineConfig(memory=1 * GiB)),
        "256GiB": Machine(MachineConfig(memory=256 * GiB)),
    }
    for m in machines.values():  # warm-up: caches resolved, lists grown, pageblocks claimed
        run_plan(m, plan)
    loop_seconds: dict[str, list[float]] = {name: [] for name in machines}
    ops_done: dict[str, int] = {}
    floor_seconds: list[float] = []

    def runner(name: str):
        m = machines[name]

        def go() -> None:
            ops, secs = run_plan(m, plan)
            ops_done[name] = ops
            loop_seconds[name].append(secs)

        return go

    funcs = {name: runner(name) for name in machines}
    funcs["list_floor"] = lambda: floor_seconds.append(list_floor(plan.n_ops))
    wall = interleaved(funcs, rounds=rounds)

    floor_per_op = min(floor_seconds) / plan.n_ops
    out: list[Result] = []
    rate: dict[str, float] = {}
    for name, m in machines.items():
        best = min(loop_seconds[name])
        rate[name] = ops_done[name] / best
        out.append(Result(
            f"mm.alloc_free_ops_per_s[{name}]", rate[name], "ops/s",
            detail={"ops": ops_done[name], "best_loop_s": best, "rounds": rounds,
                    "wall_s_with_cleanup": wall[name], "alloc_failures": m.nr_alloc_failures,
                    "fallbacks": m.nr_fallbacks, "pageblock_claims": m.nr_pageblock_claims,
                    "pcp_blocks_refilled": m.nr_pcp_refilled, "pcp_blocks_returned": m.nr_pcp_returned,
                    "before_issue13_ops_per_s": BEFORE_ISSUE13_OPS_PER_S[name],
                    "issue13_per_block_ops_per_s": ISSUE13_OPS_PER_S[name]},
        ))
    ratio = rate["256GiB"] / rate["1GiB"]
    out.append(Result("mm.ops_per_s_ratio[256GiB/1GiB]", ratio, "x",
                      target=f">= {RATIO_TARGET:g}", ok=ratio >= RATIO_TARGET))
    for name in machines:
        per_op = 1.0 / rate[name]
        out.append(Result(
            f"mm.per_op_cost_vs_list_floor[{name}]", per_op / floor_per_op, "x floor",
            detail={"per_op_ns": per_op * 1e9, "floor_per_op_ns": floor_per_op * 1e9},
        ))
    out.append(Result("mm.workload_plan", plan.n_ops, "ops",
                      detail={"allocs": plan.n_allocs, "seed": plan.seed, "max_live": plan.max_live}))
    return out


def run(quick: bool) -> list[Result]:
    sizes = [64 * MiB, 1 * GiB, 8 * GiB, 64 * GiB] + ([] if quick else [1 * TiB])
    results = _boot_and_memory(sizes)
    results += _throughput(n_ops=20_000 if quick else 200_000, rounds=2 if quick else 5)
    return results
