"""Trace reading: events per second against a bare regex line loop, and memory vs trace length.

Speed: a 200,000-event trace (``--quick``: 20,000) with a stack on every
event is written in each format by the trace writer into a temporary
directory.  The reader (and the reader feeding the live set) is timed side
by side with the floor: a bare Python loop that only splits the same file's
lines with one regex (``re.compile(r"\\s+").split``).  Target: within 3x of
the floor.  CPU time of this thread, best of interleaved rounds.

Memory: a child process reads a 10,000,000-event ftrace trace (``--quick``:
200,000) into the live set and reports its peak RSS (VmHWM); so does a
child reading a trace ten times shorter.  The live set stays at 2,048
blocks and there are 48 distinct stacks (one event pair in eight carries
stacks, to keep the 10M run near a minute), so the peak should not grow with
the trace.  The trace text is generated inside the child, line by line, and
streamed to the reader (a 10M-event file would be over a gigabyte on disk
and take minutes to write); the reader sees the same lines a file gives.
Target: the longer trace's peak within 1.5x of the shorter one's.

Replay: the ftrace file of the speed part replayed in exact mode through a
booted machine (``pageext replay``'s driver: every block placed at its
traced pfn with ``alloc_pages_at``, frees applied, the live set and both
perf kmem accounts kept), bare and with page_owner recording every event,
timed against the same bare regex split loop.  Target: within 3x of the
floor for the bare replay; the page_owner figure shows what recording
costs on top.  Replay memory: the memory part's generated 10M- and
1M-event traces replayed in exact mode with page_owner on, in children;
target: peak RSS within 1.5x.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks._harness import Result, cpu_time, interleaved, run_parts, self_timed
from pageext_core.trace import ALLOC, FREE, LiveSet, StackTable, TraceEvent, make_event, read_trace, write_trace

SPEED_TARGET = 3.0
MEMORY_TARGET = 1.5
LIVE_BLOCKS = 4096  # slots; half of them are live at any time


def events(n: int, stacks: StackTable) -> Iterator[TraceEvent]:
    """Alternating allocations and frees over a fixed window of pfns: a bounded live set."""
    alloc_stacks = [stacks.intern(("__alloc_pages_noprof", "alloc_pages_mpol_noprof", f"caller_{k}",
                                   "do_syscall_64", "entry_SYSCALL_64_after_hwframe")) for k in range(40)]
    free_stacks = [stacks.intern(("free_unref_page", f"freer_{k}", "do_syscall_64")) for k in range(8)]
    ts = 1_000_000_000
    w = LIVE_BLOCKS
    for j in range(n // 2):
        ts += 1500
        yield make_event(ALLOC, ts, j & 1, 1000 + j % 7, -1, "stress-ng-vm", 0x10000 + (j % w) * 4, j % 3,
                         1 if j % 3 else 0, 0xCC0 if j % 2 else 0x100CCA, alloc_stacks[j % 40])
        ts += 1500
        k = j - w // 2
        yield make_event(FREE, ts, j & 1, 1000 + j % 7, -1, "stress-ng-vm", 0x10000 + (k % w) * 4, k % 3,
                         stack=free_stacks[j % 8])


def synthetic_ftrace_lines(n: int) -> Iterator[str]:
    """The same workload as ftrace text, generated cheaply (f-strings) for the memory child."""
    w = LIVE_BLOCKS
    alloc_frames = [f" => __alloc_pages_noprof\n => alloc_pages_mpol_noprof\n => caller_{k}\n => do_syscall_64\n"
                    for k in range(40)]
    free_frames = [f" => free_unref_page\n => freer_{k}\n => do_syscall_64\n" for k in range(8)]
    gfps = ("GFP_HIGHUSER_MOVABLE", "GFP_KERNEL")
    us = 0
    for j in range(n // 2):
        us += 3
        s, u = divmod(us, 1_000_000)
        head = f"    stress-ng-vm-{1000 + j % 7:<7} [00{j & 1}] .....  {s:5d}.{u:06d}: "
        o = j % 3
        yield (f"{head}mm_page_alloc: page=00000000a8c3f1d2 pfn=0x{0x10000 + (j % w) * 4:x} order={o} "
               f"migratetype={1 if o else 0} gfp_flags={gfps[j & 1]}\n")
        if j % 8 == 0:  # stacks on some events: enough to intern all 48, cheap enough for 10M events
            yield f"{head}<stack trace>\n"
            yield alloc_frames[(j // 8) % 40]
        k = j - w // 2
        yield f"{head}mm_page_free: page=00000000a8c3f1d2 pfn=0x{0x10000 + (k % w) * 4:x} order={k % 3}\n"
        if j % 8 == 4:
            yield f"{head}<stack trace>\n"
            yield free_frames[(j // 8) % 8]


def _split_frames(chunks: Iterator[str]) -> Iterator[str]:
    for c in chunks:
        if c.count("\n") > 1:
            yield from c.splitlines(keepends=True)
        else:
            yield c


CHILD = (
    "import sys\n"
    "from benchmarks.bench_trace import synthetic_ftrace_lines, _split_frames\n"
    "from pageext_core.trace import LiveSet, read_trace\n"
    "n = int(sys.argv[1])\n"
    "r = read_trace(_split_frames(synthetic_ftrace_lines(n)), format='ftrace')\n"
    "ls = LiveSet()\n"
    "ls.feed(r)\n"
    "got = sum(r.stats.events)\n"
    "assert got == n, (got, n)\n"
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
    "print(hwm, len(ls), len(r.stacks))\n"
)


REPLAY_CHILD = (
    "import sys\n"
    "from benchmarks.bench_trace import synthetic_ftrace_lines, _split_frames\n"
    "from pageext_core.mm.geometry import MachineConfig\n"
    "from pageext_core.page_ext import boot\n"
    "from pageext_core.session.config import WorkloadSpec\n"
    "from pageext_core.session.replay import Replay\n"
    "from pageext_core.session.workload import WorkloadResult\n"
    "from pageext_core.trace import KmemStat, TraceReader\n"
    "n = int(sys.argv[1])\n"
    "pe = boot(MachineConfig(memory=512 << 20), 'page_owner=on')\n"
    "pe.machine.drain_all_pages()\n"
    "res = WorkloadResult(kind='replay', seed=0)\n"
    "rep = Replay(pe, WorkloadSpec(kind='replay', trace='-', trace_format='ftrace'), lambda k: None, res)\n"
    "rep.reader = TraceReader(_split_frames(synthetic_ftrace_lines(n)), format='ftrace', offsets=True)\n"
    "rep.kmem = KmemStat(rep.reader.stacks, both=True)\n"
    "rep.run()\n"
    "assert res.replay['events'] == n and res.replay['failures'] == 0, res.replay\n"
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
    "print(hwm, res.live_blocks, len(rep.reader.stacks))\n"
)


def _child_peak(n: int, child: str = CHILD) -> tuple[int, int, int]:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", child, str(n)], cwd=root, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"trace memory child failed for {n} events: {out.stderr[-800:]}")
    hwm, live, stacks = (int(x) for x in out.stdout.split())
    return hwm * 1024, live, stacks


def speed(quick: bool) -> list[Result]:
    n = 20_000 if quick else 200_000
    rounds = 2
    results: list[Result] = []
    split = re.compile(r"\s+").split
    with tempfile.TemporaryDirectory(prefix="bench_trace_") as tmp:
        for fmt in ("ftrace", "trace-cmd", "perf"):
            path = Path(tmp) / f"trace.{fmt}"
            stacks = StackTable()
            write_trace(path, events(n, stacks), fmt, stacks)

            def floor() -> None:
                with open(path) as f:
                    for line in f:
                        split(line)

            def reader() -> None:
                for _ in read_trace(path, format=fmt):
                    pass

            def reader_live() -> None:
                LiveSet().feed(read_trace(path, format=fmt))

            funcs = {"floor": floor, "reader": reader}
            if fmt == "ftrace":
                funcs["reader+live"] = reader_live
            best = interleaved(funcs, rounds=rounds, measure=cpu_time)
            for name in funcs:
                if name == "floor":
                    continue
                ratio = best[name] / best["floor"]
                label = "reader" if name == "reader" else "reader feeding the live set"
                results.append(Result(
                    f"{fmt}: {label}", n / best[name], "events/s",
                    detail={"events": n, "file_bytes": path.stat().st_size, "cpu_s": round(best[name], 3),
                            "floor_cpu_s": round(best["floor"], 3)}))
                results.append(Result(
                    f"{fmt}: {label} vs bare regex split loop", ratio, "x",
                    target=f"<= {SPEED_TARGET}", ok=None if quick else ratio <= SPEED_TARGET))
    return results


def _replay_once(path: Path, cmdline: str) -> float:
    """CPU seconds of one exact replay of ``path`` (boot not counted)."""
    from pageext_core.mm.geometry import MachineConfig
    from pageext_core.page_ext import boot
    from pageext_core.session.config import WorkloadSpec
    from pageext_core.session.replay import Replay
    from pageext_core.session.workload import WorkloadResult

    pe = boot(MachineConfig(memory=512 << 20), cmdline)
    pe.machine.drain_all_pages()
    spec = WorkloadSpec(kind="replay", trace=str(path), trace_format="ftrace")
    res = WorkloadResult(kind="replay", seed=0)
    rep = Replay(pe, spec, lambda n: None, res)
    t0 = time.thread_time()
    rep.run()
    t = time.thread_time() - t0
    if res.replay is None or res.replay["failures"]:
        raise RuntimeError(f"replay bench: the replay refused placements: {res.replay}")
    return t


def replay_speed(quick: bool) -> list[Result]:
    n = 20_000 if quick else 200_000
    split = re.compile(r"\s+").split
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
        path = Path(tmp) / "trace.ftrace"
        stacks = StackTable()
        write_trace(path, events(n, stacks), "ftrace", stacks)

        def floor() -> float:
            t0 = time.thread_time()
            with open(path) as f:
                for line in f:
                    split(line)
            return time.thread_time() - t0

        funcs = {"floor": floor, "exact": lambda: _replay_once(path, ""),
                 "exact+page_owner": lambda: _replay_once(path, "page_owner=on")}
        best = interleaved(funcs, rounds=2, measure=self_timed)
        for name, label in (("exact", "exact replay, no client"), ("exact+page_owner", "exact replay, page_owner on")):
            ratio = best[name] / best["floor"]
            results.append(Result(f"ftrace: {label}", n / best[name], "events/s",
                                  detail={"events": n, "cpu_s": round(best[name], 3),
                                          "floor_cpu_s": round(best["floor"], 3)}))
            results.append(Result(f"ftrace: {label} vs bare regex split loop", ratio, "x",
                                  target=f"<= {SPEED_TARGET}" if name == "exact" else None,
                                  ok=(None if quick else ratio <= SPEED_TARGET) if name == "exact" else None))
    return results


def memory(quick: bool) -> list[Result]:
    big = 200_000 if quick else 10_000_000
    small = big // 10
    rss_small, live_small, stacks_small = _child_peak(small)
    rss_big, live_big, stacks_big = _child_peak(big)
    ratio = rss_big / rss_small
    return [
        Result(f"peak RSS, {small:,} events into the live set", rss_small / 2**20, "MiB",
               detail={"bytes": rss_small, "live_blocks": live_small, "stacks": stacks_small}),
        Result(f"peak RSS, {big:,} events into the live set", rss_big / 2**20, "MiB",
               detail={"bytes": rss_big, "live_blocks": live_big, "stacks": stacks_big}),
        Result("peak RSS ratio, 10x the events (bounded live set)", ratio, "x",
               target=f"<= {MEMORY_TARGET}", ok=None if quick else ratio <= MEMORY_TARGET),
    ]


def replay_memory(quick: bool) -> list[Result]:
    """Peak RSS of an exact replay (page_owner on) of a 10M-event trace against a 1M-event one."""
    big = 200_000 if quick else 10_000_000
    small = big // 10
    rss_small, live_small, _ = _child_peak(small, REPLAY_CHILD)
    rss_big, live_big, _ = _child_peak(big, REPLAY_CHILD)
    ratio = rss_big / rss_small
    return [
        Result(f"peak RSS, exact replay of {small:,} events", rss_small / 2**20, "MiB",
               detail={"bytes": rss_small, "live_blocks": live_small}),
        Result(f"peak RSS, exact replay of {big:,} events", rss_big / 2**20, "MiB",
               detail={"bytes": rss_big, "live_blocks": live_big}),
        Result("peak RSS ratio of the replay, 10x the events (bounded live set)", ratio, "x",
               target=f"<= {MEMORY_TARGET}", ok=None if quick else ratio <= MEMORY_TARGET),
    ]


def run(quick: bool) -> list[Result]:
    return run_parts([speed, replay_speed, memory, replay_memory], quick)
