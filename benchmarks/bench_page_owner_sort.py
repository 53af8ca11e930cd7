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

``-a`` and ``--sort=alloc_ts`` (every record its own group) are run side by
side with the kernel's C tool on the same dump: wall time and peak RSS of
each, and ours / C ratios with a target of at most 1.  The C tool is GPL
and not in this repository: it is fetched from Debian's linux-source-6.12
package (tools/mm/page_owner_sort.c, the newest tool, whose format and -a
behaviour page_owner_sort follows; 6.1's tools/vm version cannot read the
timestamps of current dumps) into the git-ignored ``.bench-cache/`` and
built with ``gcc -O2``.  Its ``-a`` output is also checked to equal ours
on a small dump.  When it cannot be fetched or built the rows say
"skipped" and why.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
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

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"  # git-ignored: the kernel's C tool, fetched and built here
KERNEL_PKG = "linux-source-6.12"
C_SOURCE = "linux-source-6.12/tools/mm/page_owner_sort.c"


def c_tool() -> tuple[Path | None, str]:
    """The kernel's page_owner_sort, built in ``.bench-cache/`` (fetched once); (None, why) when it cannot be."""
    exe = CACHE / "page_owner_sort-6.12"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe, "cached"
    for tool in ("apt-get", "dpkg-deb", "tar", "bash", "gcc"):
        if shutil.which(tool) is None:
            return None, f"{tool} not found"
    CACHE.mkdir(exist_ok=True)
    src = CACHE / "page_owner_sort-6.12.c"
    try:
        if not src.is_file():
            got = subprocess.run(["apt-get", "download", KERNEL_PKG], cwd=CACHE, capture_output=True, text=True,
                                 timeout=600)
            debs = sorted(glob.glob(str(CACHE / f"{KERNEL_PKG}_*.deb")))
            if not debs:
                return None, f"apt-get download {KERNEL_PKG} failed: {(got.stderr or got.stdout).strip()[-200:]}"
            cmd = (f"dpkg-deb --fsys-tarfile '{debs[-1]}' | tar -xO ./usr/src/{KERNEL_PKG}.tar.xz "
                   f"| tar -xJO {C_SOURCE} > '{src}.tmp'")
            ex = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=600)
            if ex.returncode != 0 or os.path.getsize(f"{src}.tmp") == 0:
                return None, f"extracting {C_SOURCE} failed: {ex.stderr.strip()[-200:]}"
            os.replace(f"{src}.tmp", src)
            for deb in debs:  # 150 MB: only the one source file is kept
                os.unlink(deb)
        cc = subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], capture_output=True, text=True, timeout=300)
        if cc.returncode != 0:
            return None, f"gcc -O2 failed: {cc.stderr.strip()[-200:]}"
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"{type(e).__name__}: {e}"
    return exe, "built"


def _run_c(exe: Path, args: list[str]) -> tuple[float, int]:
    """Run the C tool once; (wall seconds, peak RSS in bytes).

    Its peak is its VmHWM, read every 10 ms while it runs (rusage would
    include this process's own high-water mark, inherited over fork).  The
    C tool allocates as it reads and frees nothing before it exits, so the
    last reading is its peak.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
            done.wait(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"C page_owner_sort {' '.join(args)} failed ({proc.returncode}): {err.decode()[-300:]}")
    return wall, peak


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

        results.extend(_versus_c(dump, small, out, d / "c_out.txt", n, rounds, quick))

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


def _versus_c(dump: Path, small: Path, out: Path, c_out: Path, n: int, rounds: int, quick: bool) -> list[Result]:
    """-a and --sort=alloc_ts, ours and the kernel's C tool on the same dump: time, memory, their ratios."""
    exe, how = c_tool()
    modes = [("-a", ["-a"]), ("--sort=alloc_ts", ["--sort=alloc_ts"])]
    if exe is None:
        skipped = f"skipped: {how}"
        return [Result(f"{name} vs the C tool: {what}", float("nan"), skipped, detail={"skipped": how})
                for name, _ in modes for what in ("time ours/C", "peak RSS ours/C")] + \
            [Result("-a output equals the C tool's", float("nan"), skipped, detail={"skipped": how})]
    res: list[Result] = []
    # correctness first, on the small dump: byte-identical -a output
    _run_tool(["-a", str(small), str(out)])
    _run_c(exe, ["-a", str(small), str(c_out)])
    same = out.read_bytes() == c_out.read_bytes()
    res.append(Result("-a output equals the C tool's", float(same), "bool", target="1 (byte-identical)", ok=same,
                      detail={"records": n // 10, "c_tool": how}))
    for name, args in modes:
        ours = [_run_tool([*args, str(dump), str(out)]) for _ in range(rounds)]
        theirs = [_run_c(exe, [*args, str(dump), str(c_out)]) for _ in range(rounds)]
        o_wall, _, o_rss = min(ours, key=lambda r: r[0])
        c_wall, c_rss = min(theirs, key=lambda r: r[0])
        note = {"records": n, "args": " ".join(args)}
        if name != "-a":
            note["c_tool_note"] = ("the 6.12 C tool applies --sort only with a single-letter option; alone it sorts "
                                   "by times with timestamps cut (fewer groups), ours keeps them as documented")
        res.append(Result(f"{name}: wall, ours", o_wall, "s", detail=note))
        res.append(Result(f"{name}: wall, C tool", c_wall, "s", detail=note))
        res.append(Result(f"{name}: peak RSS, ours", o_rss / 2**20, "MiB", detail={"bytes": o_rss}))
        res.append(Result(f"{name}: peak RSS, C tool", c_rss / 2**20, "MiB", detail={"bytes": c_rss}))
        tr, mr = o_wall / c_wall, o_rss / c_rss
        res.append(Result(f"{name}: time ours/C", tr, "x", target="<= 1", ok=None if quick else tr <= 1,
                          detail={"c_over_ours": round(1 / tr, 2)}))
        res.append(Result(f"{name}: peak RSS ours/C", mr, "x", target="<= 1", ok=None if quick else mr <= 1,
                          detail={"c_over_ours": round(1 / mr, 2)}))
    return res
