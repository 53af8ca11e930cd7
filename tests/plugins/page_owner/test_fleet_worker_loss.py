"""A worker killed in the middle of a fleet run: Dask runs its task again elsewhere and the groups are right.

This module starts a cluster of its own (2 worker processes): the kill
restarts one of its workers, which no other test should see.
"""
from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
from dask.distributed import Client
from gendump import write_dump

from pageext_page_owner.fleet.engine import Options, Part, count_part, local_cluster, plan, reduce_local, run
from pageext_page_owner.page_owner_sort.aggregate import Partial

# The task wrapper below is defined here, in a module the workers cannot import: ship it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def own_client() -> Iterator[Client]:
    cluster = local_cluster(2)
    try:
        with Client(cluster) as c:
            yield c
    finally:
        cluster.close()


class KillOnce:
    """The real task, except that the first call on host ``victim`` kills its worker process halfway."""

    def __init__(self, marker: str, victim: str) -> None:
        self.marker = marker
        self.victim = victim

    def __call__(self, part: Part, opts: Options) -> Partial:
        result = count_part(part, opts)  # the work is done (and lost with the process)
        if part.host == self.victim and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return result


def test_a_worker_killed_mid_run_still_gives_the_right_answer(own_client: Client) -> None:
    with tempfile.TemporaryDirectory(prefix="pageext-fleet-kill-") as tmp:
        d = Path(tmp)
        dumps = []
        for i, host in enumerate(("db1", "web1", "web2", "web3")):
            p = d / f"{host}.txt"
            write_dump(p, 400, seed=1, snapshot=i, stacks=40)
            dumps.append((host, str(p)))
        parts = plan(dumps, split_bytes=1 << 17)
        opts = Options(fields=("stacktrace", "comm"))
        marker = d / "killed-once"
        pids_before = set(own_client.run(os.getpid).values())
        got = run(own_client, parts, opts, count=KillOnce(str(marker), "web2"))
        assert marker.exists()  # one task did kill its worker process
        assert int(marker.read_text()) in pids_before
        assert set(own_client.run(os.getpid).values()) != pids_before  # the nanny started a new worker
        want = reduce_local([count_part(p, opts) for p in parts])
        assert (got.hosts, got.index, got.groups, got.by_host) == (want.hosts, want.index, want.groups, want.by_host)
        assert [s.loaded for s in got.stats] == [400] * 4
