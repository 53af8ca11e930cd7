"""page_owner_sort on a realistic dump: records per second, dump size, peak memory.

A 1,000,000-record current-format dump (``--quick``: 20,000) is generated
into a temporary directory and sorted by the tool, run as a subprocess
exactly as a user runs it, so start-up, reading, writing and any worker
processes are all in the figure.  Each child is reaped with ``os.wait4``
to get its CPU time (including its workers') and peak RSS.  The default
runs choose their number of processes from the idle CPUs, so on a busy
machine they run as one process; ``--jobs=1``/``--jobs=2`` pin it.

Memory is shown to depend on the distinct records, not on the file: the
peak RSS of one process sorting the full dump is compared with the same
machine's dump ten times smaller (same stacks, so the same distinct
records).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Result
from tests.plugins.page_owner.gendump import write_dump

# The tool runs under a tiny wrapper that reports its peak RSS as VmHWM at exit.
# ru_maxrss would not do: Linux carries the high-water mark across fork and
# exec, so a child of a big benchmark process starts out "using" its parent's
# memory; VmHWM belongs to the new address space and starts from zero.
HWM_WRAPPER = (
    "import atexit, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('pageext-bench-vmhwm-kib ' + line.split()[1] + '\\n')\n"
    "atexit.register(hwm)\n"
    "from pageext_page_owner.page_owner_sort import main\n"  # imported, not run as __main__: --jobs workers pickle its functions
    "sys.exit(main(sys.argv[1:]))\n"
)
TOOL = [sys.executable, "-c", HWM_WRAPPER]
TARGET_RATE = 100_000  # records/s: a million-record dump in seconds, not minutes


def _run_tool(args: list[str]) -> tuple[float, float, int]:
    """Run the tool once; (wall seconds, CPU seconds of the main process, its own peak RSS in bytes)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(TOOL + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"page_owner_sort {' '.join(args)} failed ({proc.returncode}): {err}")
    hwm = [int(line.split()[1]) for line in err.splitlines() if line.startswith("pageext-bench-vmhwm-kib ")]
    if not hwm:
        raise RuntimeError(f"page_owner_sort {' '.join(args)}: no VmHWM reported (stderr: {err[-500:]})")
    return wall, usage.ru_utime + usage.ru_stime, hwm[-1] * 1024


def _best(args: list[str], rounds: int) -> tuple[float, float, int]:
    runs = [_run_tool(args) for _ in range(rounds)]
    return min(runs, key=lambda r: r[0])


def run(quick: bool) -> list[Result]:
    n = 20_000 if quick else 1_000_000
    rounds = 2 if quick else 1
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench_page_owner_sort_") as tmp:
        d = Path(tmp)
        dump, later, small, out = d / "page_owner.txt", d / "page_owner_later.txt", d / "small.txt", d / "out.txt"
        t0 = time.perf_counter()
        info = write_dump(dump, n, seed=1)
        gen_s = time.perf_counter() - t0
        write_dump(later, n, seed=1, snapshot=1)  # the same machine, allocations drawn again
        write_dump(small, n // 10, seed=1)
        gz = d / "page_owner.txt.gz"
        write_dump(gz, n, seed=1, gzip=True)

        results.append(Result("dump size", info.bytes, "bytes", detail={"records": n, "pages": info.pages, "generate_s": round(gen_s, 2)}))

        def rate(name: str, args: list[str], records: int, **extra: object) -> None:
            wall, cpu, rss = _best(args, rounds)
            value = records / wall
            results.append(
                Result(
                    name,
                    value,
                    "records/s",
                    target=None if quick else f">= {TARGET_RATE:,}",
                    ok=None if quick else value >= TARGET_RATE,
                    detail={"records": records, "wall_s": round(wall, 3), "cpu_s_main": round(cpu, 3), "args": " ".join(args), **extra},
                )
            )

        rate("default sort (times)", [str(dump), str(out)], n)
        rate("-m (total pages)", ["-m", str(dump), str(out)], n)
        rate("--cull=stacktrace", ["--cull=stacktrace", str(dump), str(out)], n)
        rate("--diff OLD NEW (records of both)", ["--diff", str(dump), str(later), str(out)], 2 * n)
        rate("default sort, one process (--jobs=1)", ["--jobs=1", str(dump), str(out)], n)
        rate("default sort, two processes (--jobs=2)", ["--jobs=2", str(dump), str(out)], n)
        rate("default sort, gzip input", [str(gz), str(out)], n, gzip_bytes=gz.stat().st_size)

        # memory: one process, full dump vs a dump 10x smaller from the same machine
        _, _, rss_big = _run_tool(["--jobs=1", str(dump), str(out)])
        _, _, rss_small = _run_tool(["--jobs=1", str(small), str(out)])
        results.append(Result(f"peak RSS, {n:,} records (one process)", rss_big / 2**20, "MiB", detail={"bytes": rss_big}))
        results.append(Result(f"peak RSS, {n // 10:,} records (one process)", rss_small / 2**20, "MiB", detail={"bytes": rss_small}))
        ratio = rss_big / rss_small
        results.append(
            Result(
                "peak RSS ratio, 10x the records",
                ratio,
                "x",
                target="< 2 (bounded by distinct records)",
                ok=None if quick else ratio < 2,
                detail={"file_size_ratio": round(info.bytes / small.stat().st_size, 2)},
            )
        )
    return results
