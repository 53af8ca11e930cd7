"""Pictures: a memmap of a 1 TiB machine, what pictures add to the default session, what sampling costs.

- ``memmap`` of a 1 TiB machine (``--quick``: 8 GiB) after a mixed
  workload: seconds to bin the pages into cells and to draw the PNG, and the
  peak working memory of the binning (tracemalloc, which sees numpy's
  buffers). Targets: binning reads the machine a chunk at a time, so its
  peak stays under 64 MiB at any size, and it takes seconds, not minutes.
- The default session in-process with no pictures, with every picture
  (the first run in the process imports matplotlib; the figure is the best
  of a few after that); and the CPU time the workload spends in the
  sampler (at the default sample_every, operations / 50) against the workload's own CPU
  time, best of interleaved rounds (target: < 10 %; on a shared machine
  the difference of two whole workloads is noise).
- Start-up is ``bench_cli``'s: a session without pictures never imports
  matplotlib (tests/pictures checks it), so its figures do not move.
"""
from __future__ import annotations

import gc
import random
import shutil
import tempfile
import time
import tracemalloc

from benchmarks._harness import Result
from pageext_core.mm import GiB, Machine, MachineConfig, TiB, format_size
from pageext_core.mm.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL

PEAK_TARGET = 64 << 20
GRID_SECONDS_TARGET = 30.0  # 1 TiB; measured ~3 s on an idle core
SAMPLING_OVERHEAD_TARGET = 0.10


def _memmap(size: int) -> list[Result]:
    from pageext_core.pictures import memmap

    label = format_size(size)
    m = Machine(MachineConfig(memory=size))
    rng = random.Random(1)
    for i in range(20_000):
        m.alloc_pages(GFP_KERNEL if i % 3 else GFP_HIGHUSER_MOVABLE, rng.choice([0, 0, 1, 3, 9]))
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    grid = memmap.build_grid(m)
    grid_s = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t0 = time.perf_counter()
    png, _, pl = memmap.render(m, label)
    render_s = time.perf_counter() - t0
    detail = {"max_pfn": m.geometry.max_pfn, "pages_per_cell": grid.pages_per_cell,
              "cells": [grid.rows, grid.cols], "png_bytes": len(png), "image_px": [pl.width, pl.height]}
    return [
        Result(f"pictures.memmap_grid_seconds[{label}]", grid_s, "s", target=f"< {GRID_SECONDS_TARGET:g}",
               ok=grid_s < GRID_SECONDS_TARGET, detail=detail),
        Result(f"pictures.memmap_grid_peak_bytes[{label}]", peak, "B", target=f"< {PEAK_TARGET >> 20} MiB",
               ok=peak < PEAK_TARGET),
        Result(f"pictures.memmap_png_seconds[{label}]", render_s, "s", detail={"includes": "binning + drawing"}),
    ]


def _session(rounds: int) -> list[Result]:
    from pageext_core.session.config import load_session
    from pageext_core.session.runner import RunOptions, run_session

    def once(pictures: str) -> tuple[float, float]:
        tmp = tempfile.mkdtemp()
        try:
            t0 = time.perf_counter()
            o = run_session(load_session(overrides=[f"report.pictures={pictures}"]), RunOptions(out=tmp))
            return time.perf_counter() - t0, o.summary["timing"]["workload_seconds"]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    t_import = time.perf_counter()
    once('["memmap"]')  # imports matplotlib once
    first = time.perf_counter() - t_import
    none, every = [], []
    for _ in range(rounds):
        none.append(once("[]"))
        every.append(once('"all"'))
    return [
        Result("pictures.default_session_seconds[no pictures]", min(t for t, _ in none), "s"),
        Result("pictures.default_session_seconds[all pictures]", min(t for t, _ in every), "s",
               detail={"first_run_with_matplotlib_import_seconds": first}),
    ]


def _sampling(rounds: int) -> list[Result]:
    """The default session's workload alone, with and without a sample every 200 operations, interleaved."""
    from pageext_core.pictures.samples import Sampler, default_sample_every
    from pageext_core.session.config import load_session
    from pageext_core.session.runner import RunOptions, boot_session
    from pageext_core.session.workload import run_workload

    sess = load_session()

    def once(sample: bool) -> tuple[float, float, int]:
        """(CPU seconds of the workload, of which in the sampler, samples taken)."""
        pe = boot_session(sess, RunOptions())
        pe.machine.drain_all_pages()
        sampler = Sampler(pe) if sample else None
        inside = [0.0]

        def timed(op: int) -> None:
            t = time.thread_time()
            sampler(op)  # type: ignore[misc]
            inside[0] += time.thread_time() - t

        t0 = time.thread_time()
        run_workload(pe, sess.workload, None, None, timed if sample else None,
                     default_sample_every(sess.workload.operations))
        return time.thread_time() - t0, inside[0], len(sampler.rows) if sampler else 0

    plain, sampled, in_sampler = [], [], []
    for _ in range(rounds):
        plain.append(once(False)[0])
        t, ins, n = once(True)
        sampled.append(t)
        in_sampler.append(ins)
    overhead = min(in_sampler) / min(plain)
    return [Result("pictures.sampling_overhead", overhead, "ratio", target=f"< {SAMPLING_OVERHEAD_TARGET:g}",
                   ok=overhead < SAMPLING_OVERHEAD_TARGET,
                   detail={"measure": "CPU time inside the sampler / CPU time of the workload without it",
                           "workload_cpu_seconds": min(plain), "with_samples_cpu_seconds": min(sampled),
                           "sampler_cpu_seconds": min(in_sampler), "samples": n})]


def run(quick: bool) -> list[Result]:
    return _memmap(8 * GiB if quick else 1 * TiB) + _session(2 if quick else 5) + _sampling(3 if quick else 7)
