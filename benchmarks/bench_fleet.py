"""page_owner_fleet throughput: 8 dumps on a 2-worker LocalCluster against page_owner_sort --jobs 2.

Eight dumps of one fleet (1,000,000 records in all; ``--quick``: 40,000)
are grouped two ways in one run: by ``page_owner_fleet`` on a local Dask
cluster of 2 worker processes (started once, before the timing: the
command connects to it with ``--scheduler``, as on a real cluster), and
by ``page_owner_sort --jobs 2`` on their concatenation.  Both run as
subprocesses, exactly as a user runs them, so start-up, reading and
writing are in the figures.  The target: the fleet reaches at least 0.8
of page_owner_sort's records per second (its extra cost is Dask's task
round trips and shipping the partial groups).  The two reports are also
checked to hold the same groups.  The cluster's start-up is a row of its
own.

A third timing runs the fleet's engine from this process, with a client
already connected (plan, tasks, tree of merges, report written): the
command's own start-up (importing distributed, about 0.7 s here, and
connecting) is what separates the two fleet rows, a fixed cost that a
bigger fleet spreads over more records.
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

HOSTS = 8
TARGET = 0.8


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return wall


def run(quick: bool) -> list[Result]:
    from dask.distributed import Client

    from pageext_page_owner.fleet.engine import Options, local_cluster, plan
    from pageext_page_owner.fleet.engine import run as run_fleet
    from pageext_page_owner.fleet.output import build_report, render_fleet_text

    n = 40_000 if quick else 1_000_000
    rounds = 3  # best of three, interleaved: the machine may be shared
    per = n // HOSTS
    bindir = Path(sys.executable).parent
    fleet, sort = str(bindir / "page_owner_fleet"), str(bindir / "page_owner_sort")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bench_fleet_", dir=shm) as tmp:
        d = Path(tmp)
        dumps = d / "dumps"
        dumps.mkdir()
        paths = []
        for i in range(HOSTS):
            p = dumps / f"host{i}.txt"
            write_dump(p, per, seed=1, snapshot=i)
            paths.append(p)
        cat = d / "all.txt"
        with open(cat, "wb") as f:
            for p in paths:
                f.write(p.read_bytes())
        size = cat.stat().st_size
        t0 = time.perf_counter()
        cluster = local_cluster(2)
        start_s = time.perf_counter() - t0
        try:
            f_out, s_out = d / "fleet.txt", d / "sort.txt"
            fleet_args = [fleet, "--scheduler", cluster.scheduler_address, str(dumps), str(f_out)]
            sort_args = [sort, "--jobs=2", str(cat), str(s_out)]
            e_out = d / "engine.txt"
            f_walls, s_walls, e_walls = [], [], []
            with Client(cluster) as client:
                def engine() -> None:
                    part = run_fleet(client, plan([(p.stem, str(p)) for p in paths]), Options())
                    with open(e_out, "wb") as f:
                        for chunk in render_fleet_text(build_report(part, [("times", -1)], [], 3)):
                            f.write(chunk)

                for _ in range(rounds):  # interleaved: all see the same machine load
                    f_walls.append(_run(fleet_args))
                    s_walls.append(_run(sort_args))
                    t0 = time.perf_counter()
                    engine()
                    e_walls.append(time.perf_counter() - t0)
        finally:
            cluster.close()
        same_engine = e_out.read_bytes() == f_out.read_bytes()
        fleet_lines = [ln for ln in f_out.read_bytes().splitlines(keepends=True) if not ln.startswith(b"hosts: ")]
        same = b"".join(fleet_lines) == s_out.read_bytes()
    f_wall, s_wall, e_wall = min(f_walls), min(s_walls), min(e_walls)
    f_rate, s_rate, e_rate = n / f_wall, n / s_wall, n / e_wall
    ratio = f_rate / s_rate
    detail = {"records": n, "dumps": HOSTS, "bytes": size, "workers": 2}
    return [
        Result("local cluster start (2 worker processes)", start_s, "s"),
        Result(f"page_owner_fleet, {HOSTS} dumps, 2 workers", f_rate, "records/s",
               detail={**detail, "wall_s": round(f_wall, 3), "args": "--scheduler <local> DIR OUT"}),
        Result("page_owner_sort --jobs 2, their concatenation", s_rate, "records/s",
               detail={**detail, "wall_s": round(s_wall, 3)}),
        Result("fleet / page_owner_sort --jobs 2", ratio, "x", target=f">= {TARGET}",
               ok=None if quick else ratio >= TARGET),
        Result("fleet engine, client already connected", e_rate, "records/s",
               detail={**detail, "wall_s": round(e_wall, 3), "same_report_as_the_command": same_engine}),
        Result("fleet engine / page_owner_sort --jobs 2", e_rate / s_rate, "x"),
        Result("fleet groups equal page_owner_sort's", float(same and same_engine), "bool", target="1",
               ok=same and same_engine),
    ]
