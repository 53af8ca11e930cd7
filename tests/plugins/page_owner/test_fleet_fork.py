"""A second forked cluster in one process still moves big partials between its workers.

Dask (de)serialises messages over 10 MiB on a module-wide thread pool.  A
worker forked from a process that had used that pool inherited a pool whose
thread did not exist in the worker, and its first big transfer waited
forever (seen as a hung ``page_owner_fleet --scheduler`` on 260 MB dumps).
The scenario runs in a fresh interpreter with a deadline: a hang fails it.
"""
from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import sys
from dask.distributed import Client
from pageext_page_owner.fleet.engine import local_cluster

def big(n):
    return b"x" * n

def size(b):
    return len(b)

if __name__ == "__main__":
    n = 24 << 20  # over Dask's 10 MiB offload threshold
    for round in range(2):  # the first cluster's traffic starts this process's offload thread
        cluster = local_cluster(2)
        with Client(cluster) as client:
            a, b = list(client.scheduler_info()["workers"])
            made = client.submit(big, n, workers=[a], pure=False)
            got = client.submit(size, made, workers=[b], pure=False)  # the bytes travel from a to b
            assert got.result(timeout=60) == n
            assert len(client.gather(made)) == n  # and to this process
        cluster.close()
    print("ok")
"""


def test_a_second_forked_cluster_moves_big_data_between_workers() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
