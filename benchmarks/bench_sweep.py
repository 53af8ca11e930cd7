"""``pageext sweep`` against a plain loop: what the Dask engine costs per run.

The same N small sessions (64 MiB, two clients, 2,000 operations, two
planted bugs; ``--quick``: 6 runs of 500 operations) are run three ways,
side by side in interleaved rounds (best of each):

- **loop**: one process, ``load_session`` + ``run_session`` per seed, as a
  user would script it (no files written, as the sweep writes none without
  ``--keep-runs``);
- **sweep, 1 worker**: ``run_sweep`` on a ``LocalCluster`` of one worker
  process: planning and checking every grid point, shipping each task,
  flattening the summary, streaming the rows back, writing the Parquet and
  CSV table and the report.  One worker runs one task at a time, like the
  loop, so the ratio to the loop is the engine's overhead per run, with no
  parallelism to hide it: the target (at most 1.2x) is on this figure.
  Runs this short (about 45 ms) go several to a Dask task (about 0.25 s
  a task), one row each;
- **sweep, 2 workers**: the same on two worker processes, what a user gets
  on this 2-core machine (it can beat the loop; shared with other work, it
  may not).

The sweeps write into /dev/shm where there is one: on a disk, each
rewrite of the table is an fsync, which a shared disk can make take a tenth
of a second (the table is rewritten at most every 2 s, and at most a tenth
of the time, so it is a fixed cost, not one per run).  The clusters are
started once, before timing (their start-up, a few seconds, is reported
apart: it is paid once per sweep, not per run); each timed sweep writes
into a fresh folder, so none of it is skipped as already done.

All three run with the garbage collector on (the harness turns it off
while it times; the sweep's workers have it on, and so does a user's
loop).  Besides wall time, each is given its CPU seconds (this process's,
plus the workers' for a sweep): the 1-worker CPU ratio says what the
engine costs per run in work done, which other work on a shared machine
moves much less than it moves the wall-time ratio.

For scale, the round trip of a Dask task that does nothing (``client.map``
of a no-op on the 1-worker cluster, results streamed with
``as_completed``) is measured too: that part of the overhead is the
engine's own, whatever the task.
"""
from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from benchmarks._harness import Result, interleaved

T = TypeVar("T")

SESSION = """\
[machine]
memory = "64MiB"
cpus = 1

[boot]
cmdline = "page_owner=on debug_pagealloc=on"

[workload]
seed = 1
operations = {ops}

[workload.faults]
use_after_free = 1
bit_flip = 1

[report]
reports = ["buddyinfo"]
"""


def gc_on(fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` with the garbage collector on, which the harness turns off while it times.

    The sweep's runs happen in worker processes, with the collector on; the
    loop must run as a user's script does, with it on too, or it is spared
    a cost the sweep pays.
    """
    def with_gc() -> T:
        gc.enable()
        try:
            return fn()
        finally:
            gc.disable()

    return with_gc


def run(quick: bool = False) -> list[Result]:
    from dask.distributed import Client, as_completed

    from pageext_core.session.config import load_session
    from pageext_core.session.runner import RunOptions, run_session
    from pageext_core.sweep import SweepSpec, local_cluster, run_sweep

    n, ops, rounds = (6, 500, 1) if quick else (40, 2000, 5)
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # the engine's cost, not a busy disk's fsyncs
    with tempfile.TemporaryDirectory(prefix="bench-sweep-", dir=shm) as d:
        tmp = Path(d)
        session = tmp / "bench.toml"
        session.write_text(SESSION.format(ops=ops))
        seeds = f"1-{n}"
        t0 = time.perf_counter()
        one = local_cluster(1)
        startup_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        two = local_cluster(2)
        startup_two = time.perf_counter() - t0
        try:
            with Client(one) as c1, Client(two) as c2:
                counter = iter(range(10**6))

                def loop() -> None:
                    for seed in range(1, n + 1):
                        sess = load_session(session, overrides=[f"workload.seed={seed}"])
                        run_session(sess, RunOptions(write_files=False))

                def sweep(client: Client) -> None:
                    res = run_sweep(SweepSpec(str(session), seeds=seeds, out=str(tmp / f"out{next(counter)}")),
                                    client=client)
                    if res.executed != n or res.errors:
                        raise RuntimeError(f"sweep ran {res.executed} of {n} runs, {res.errors} errors")

                def noop() -> None:
                    futures = c1.map(abs, range(n), pure=False, retries=1)  # a builtin: nothing to import
                    for _ in as_completed(futures, loop=c1.loop, with_results=True):
                        pass

                for warm in (loop, lambda: sweep(c1), lambda: sweep(c2), noop):  # imports, worker caches
                    warm()
                def workers_cpu(c: Client) -> float:
                    return float(sum(c.run(time.process_time).values()))

                def timed(fn: Callable[[], None], c: Client | None = None) -> Callable[[], tuple[float, float]]:
                    """``fn``'s wall seconds and CPU seconds (this process, plus the workers of ``c``)."""
                    def measure() -> tuple[float, float]:
                        w0 = workers_cpu(c) if c is not None else 0.0
                        p0, t0 = time.process_time(), time.perf_counter()
                        fn()
                        wall, cpu = time.perf_counter() - t0, time.process_time() - p0
                        return wall, cpu + (workers_cpu(c) - w0 if c is not None else 0.0)

                    return measure

                both = interleaved({"loop": timed(loop), "sweep, 1 worker": timed(lambda: sweep(c1), c1),
                                    "sweep, 2 workers": timed(lambda: sweep(c2), c2), "no-op tasks": timed(noop)},
                                   rounds=rounds, measure=lambda fn: gc_on(fn)())
                best = {k: v[0] for k, v in both.items()}
                cpu = {k: v[1] for k, v in both.items()}
        finally:
            two.close()
            one.close()
    per = {k: v / n for k, v in best.items()}
    r1 = best["sweep, 1 worker"] / best["loop"]
    r2 = best["sweep, 2 workers"] / best["loop"]
    detail = {"runs": n, "operations_per_run": ops, "rounds": rounds,
              "seconds_per_run": {k: round(v, 4) for k, v in per.items()},
              "cluster_startup_s": {"1 worker": round(startup_one, 2), "2 workers": round(startup_two, 2)}}
    return [
        Result("plain loop, seconds per run", per["loop"], "s", detail=detail),
        Result("sweep on 1 worker / plain loop (engine overhead per run)", r1, "x", "<= 1.2x", r1 <= 1.2,
               detail={"overhead_ms_per_run": round((per["sweep, 1 worker"] - per["loop"]) * 1000, 2),
                       "noop_task_ms": round(per["no-op tasks"] * 1000, 2)}),
        Result("sweep on 1 worker / plain loop, CPU seconds (both processes)", cpu["sweep, 1 worker"] / cpu["loop"], "x",
               detail={"note": "this process and the worker's CPU time against the loop's: what other work on a "
                               "shared machine moves much less than wall time"}),
        Result("sweep on 2 workers / plain loop", r2, "x",
               detail={"note": "2 worker processes on the 2-core machine, shared with other work"}),
        Result("Dask round trip of a no-op task, 1 worker", per["no-op tasks"] * 1000, "ms"),
        Result("local cluster start-up, 2 workers (once per sweep)", startup_two, "s"),
    ]


if __name__ == "__main__":  # pragma: no cover
    for r in run(quick="--quick" in sys.argv):
        print(f"{r.name:58s} {r.value:10.4g} {r.unit}  {r.target or ''} {'' if r.ok is None else r.ok}")
        for k, v in r.detail.items():
            print(f"    {k}: {v}")
