"""debug_pagealloc: what unmapping and poisoning cost, measured side by side.

- alloc/free throughput of the standard workload (``benchmarks/_workload``)
  with debug_pagealloc off, ``page_poison=on`` and ``debug_pagealloc=on``: one
  plan, three machines, rounds interleaved, best timed loop of each;
- poisoning throughput: the lazy fill and the client's free hook against a
  numpy floor that writes the same 4 KiB of 0xaa per freed page into a real
  byte array, with every poisoned page read back and compared afterwards;
- host memory spent on page contents by a session that never writes;
- a clean workload that also writes: a million random allocations and frees
  on a 64 MiB box with ``debug_pagealloc=on``, one allocation in twenty
  written and read back (the suite's functional test of the same workload
  checks that nothing is reported; here its time has a target).

Run: ``.venv/bin/python -m benchmarks debug_pagealloc`` (``--quick`` for a smoke test).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

import pageext_core as pc
from benchmarks._harness import Result, interleaved, run_parts, self_timed
from benchmarks._workload import Plan, make_plan, run_clean_workload, run_plan
from pageext_core.mm import PAGE_SIZE, GiB, MachineConfig, MiB

# The standard plan keeps ~280 MiB live: 1 GiB runs it without failures.
CONFIG = MachineConfig(memory=1 * GiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
# The poisoning comparison keeps a real byte array of every page: a smaller box.
SMALL = MachineConfig(memory=256 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
POISON = 0xAA
# debug_pagealloc=on unmaps only on x86_64 (6.12); "both" is what the default session boots.
MODES = {"off": "", "page_poison": "page_poison=on", "debug_pagealloc": "debug_pagealloc=on",
         "both": "debug_pagealloc=on page_poison=on"}


def per_op(m: pc.Machine, plan: Plan) -> Callable[[], float]:
    """A candidate for ``interleaved``: seconds per operation of the plan's timed loop on ``m``."""
    def run() -> float:
        done, seconds = run_plan(m, plan)
        return seconds / max(done, 1)
    return run


def throughput(quick: bool) -> list[Result]:
    plan = make_plan(20_000 if quick else 300_000)
    machines = {k: pc.boot(CONFIG, line).machine for k, line in MODES.items()}
    best = interleaved({k: per_op(m, plan) for k, m in machines.items()}, 3 if quick else 5, measure=self_timed)
    detail = {"ops": plan.n_ops, "machine": "1 GiB", "plan": "benchmarks/_workload.py standard mix"}
    out = [Result(f"alloc/free, {k}", best[k] * 1e6, "us/op", detail=detail) for k in MODES]
    for k in ("page_poison", "debug_pagealloc", "both"):
        ratio = best[k] / best["off"]
        out.append(Result(f"alloc/free slowdown, {k} / off", ratio, "x", target="<= 4", ok=ratio <= 4, detail=detail))
    return out


def freed_blocks(m: pc.Machine, plan: Plan) -> list[tuple[int, int]]:
    """The blocks a run of ``plan`` frees, in order (the plan's own frees and the final clean-up)."""
    got: list[tuple[int, int]] = []
    free = m.free_pages

    def recording_free(pfn: int, order: int = 0) -> None:
        got.append((pfn, order))
        free(pfn, order)

    m.free_pages = recording_free  # type: ignore[method-assign]
    try:
        run_plan(m, plan)
    finally:
        del m.free_pages
    return got


def poisoning(quick: bool) -> list[Result]:
    """Poisoning freed blocks: our lazy fill and free hook against numpy writing every byte.

    The numpy floor writes 4 KiB of 0xaa per freed page into a real byte
    array.  Ours: ``contents.fill`` alone (what poisoning a block costs), and
    the whole free hook in ``page_poison=on`` mode (flag bits, the "still
    poison?" probe, the fill), timed on pages that all read as zeros first
    (every page needs a new fill, as after ``__GFP_ZERO``) and on pages that
    still hold poison (nobody wrote them while allocated: only the flag bits
    change).  Two block mixes: the blocks the standard workload frees (half of
    them single pages, a few 2 MiB ones) and order-5 blocks (128 KiB).  Afterwards every poisoned
    page is read through the MMU and compared with the numpy array.
    """
    pe = pc.boot(SMALL, "page_poison=on")
    m = pe.machine
    # The blocks a real run frees (a smaller live set, to fit the 256 MiB box).
    mixed = freed_blocks(m, make_plan(20_000 if quick else 200_000, seed=7, max_live=512))
    big = [(p, 5) for p in range(0, m.geometry.max_pfn - 32, 32)][: 512 if quick else 2048]
    eager = np.zeros((m.geometry.max_pfn, PAGE_SIZE), np.uint8)
    hook = pe.plugin("debug_pagealloc").pageext_on_free
    fill = m.contents.fill
    out: list[Result] = []
    identical = True
    for label, blocks in (("workload frees", mixed), ("order-5 blocks", big)):
        pages = sum(1 << o for _, o in blocks)

        def lazy(blocks: list[tuple[int, int]] = blocks) -> None:
            for p, o in blocks:
                fill(p, 1 << o, POISON)

        def hook_all(blocks: list[tuple[int, int]] = blocks) -> None:
            for p, o in blocks:
                hook(p, o)

        def floor(blocks: list[tuple[int, int]] = blocks) -> None:
            for p, o in blocks:
                eager[p : p + (1 << o)] = POISON

        best = {"lazy": float("inf"), "hook, zeroed pages": float("inf"),
                "hook, pages still poison": float("inf"), "numpy": float("inf")}
        for _ in range(3 if quick else 5):
            for p, o in blocks:  # untimed: every page reads as zeros, like the numpy array
                fill(p, 1 << o, 0)
            eager[:] = 0
            got = interleaved({"numpy": floor, "hook, zeroed pages": hook_all}, rounds=1)
            got.update(interleaved({"hook, pages still poison": hook_all}, rounds=1))
            for p, o in blocks:
                fill(p, 1 << o, 0)
            got.update(interleaved({"lazy": lazy}, rounds=1))
            best = {k: min(best[k], got[k]) for k in best}
        same = _same_bytes(m, eager, blocks)
        identical = identical and same
        detail = {"pages": pages, "blocks": len(blocks), "bytes_identical": same}
        for k, v in best.items():
            name = {"numpy": "numpy floor, 4 KiB of 0xaa per page", "lazy": "contents.fill (lazy)"}.get(k, f"free {k}")
            out.append(Result(f"poison {label}: {name}", pages / v, "pages/s", detail=detail))
        out.append(Result(f"poison {label}: lazy fill / numpy floor", best["numpy"] / best["lazy"], "x",
                          detail=detail))
    out.append(Result("poison: bytes read back identical to numpy's", float(identical), "bool", target="1",
                      ok=identical))
    return out


def _same_bytes(m: pc.Machine, eager: np.ndarray, blocks: list[tuple[int, int]]) -> bool:
    """Every poisoned page reads (through the MMU, as a kernel would) what the numpy fill wrote."""
    seen = sorted({p + i for p, o in blocks for i in range(1 << o)})
    return bool(seen) and all(m.read(p, 0, PAGE_SIZE) == eager[p].tobytes() for p in seen)


def memory(quick: bool) -> list[Result]:
    """Host bytes of page contents after a session that allocates and frees but never writes."""
    pe = pc.boot(CONFIG, "debug_pagealloc=on page_poison=on")
    m = pe.machine
    run_plan(m, make_plan(20_000 if quick else 300_000, seed=3))
    c = m.contents
    client = pe.plugin("debug_pagealloc")
    return [
        Result("page contents host bytes, session without writes", c.host_bytes, "bytes",
               target="<= 2 bytes per pfn, no 4 KiB rows", ok=c.backed_pages == 0 and c.host_bytes <= 2 * m.geometry.max_pfn,
               detail={"backed_pages": c.backed_pages, "max_pfn": m.geometry.max_pfn,
                       "pages_poisoned": client.pages_poisoned,
                       "bytes_an_eager_poison_writes": client.pages_poisoned * PAGE_SIZE,
                       "bytes_of_a_real_array_of_all_pages": m.geometry.max_pfn * PAGE_SIZE}),
    ]


# The workload of tests/plugins/debug_pagealloc/test_debug_pagealloc_workload.py (one shared loop).
TINY = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
# Seconds per million operations: 11-41 s measured on a shared 2-core machine (load 3-6); the
# bound catches a hot path gone pathological (a Python loop over pages or bytes), not noise.
CLEAN_TARGET = 120.0


def clean_workload(quick: bool) -> list[Result]:
    """Random allocations and frees with some writes and reads, debug_pagealloc and page_poison on: seconds per million."""
    pe = pc.boot(TINY, "debug_pagealloc=on page_poison=on")
    done, seconds = run_clean_workload(pe.machine, 100_000 if quick else 1_000_000, seed=20141125)
    per_million = seconds * 1_000_000 / max(done, 1)
    findings = len(pe.findings())
    return [Result("clean workload with writes, debug_pagealloc=on page_poison=on", per_million, "s per 1M ops",
                   target=f"< {CLEAN_TARGET:g}, no findings", ok=per_million < CLEAN_TARGET and findings == 0,
                   detail={"ops": done, "seconds": seconds, "findings": findings, "machine": "64 MiB"})]


def run(quick: bool = False) -> list[Result]:
    return run_parts((throughput, poisoning, memory, clean_workload), quick)
