"""Pictures: a memmap of a 1 TiB machine, what pictures add to the default session, what sampling costs.

- ``memmap`` of a 1 TiB machine (``--quick``: 8 GiB) after a mixed
  workload: seconds to bin the pages into cells and to draw the PNG, and the
  peak working memory of the binning (tracemalloc, which sees numpy's
  buffers). Targets: binning reads the machine a chunk at a time, so its
  peak stays under 64 MiB at any size, and it takes seconds, not minutes.
- The default session in-process with no pictures, with every picture
  (the first run in the process imports matplotlib; the figure is the best
  of a few after that), and the workload's own time with and without the
  samples the fragmentation picture takes (target: sampling adds < 10 %).
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
    best_none = min(t for t, _ in none)
    best_all = min(t for t, _ in every)
    w_none = min(w for _, w in none)
    w_all = min(w for _, w in every)
    overhead = w_all / w_none - 1
    return [
        Result("pictures.default_session_seconds[no pictures]", best_none, "s"),
        Result("pictures.default_session_seconds[all pictures]", best_all, "s",
               detail={"first_run_with_matplotlib_import_seconds": first}),
        Result("pictures.sampling_overhead", overhead, "ratio", target=f"< {SAMPLING_OVERHEAD_TARGET:g}",
               ok=overhead < SAMPLING_OVERHEAD_TARGET,
               detail={"workload_seconds_without": w_none, "workload_seconds_with_samples": w_all}),
    ]


def run(quick: bool) -> list[Result]:
    return _memmap(8 * GiB if quick else 1 * TiB) + _session(2 if quick else 5)
