"""A worker killed in the middle of a run: Dask runs the task again elsewhere and the row is right.

This module starts a cluster of its own (2 worker processes): the kill
restarts one of its workers, which no other test should see.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask.distributed import Client
from sweepsupport import start_cluster

from pageext_core.session.config import load_session
from pageext_core.session.runner import RunOptions, run_session
from pageext_core.sweep import SweepSpec, flatten, run_sweep


@pytest.fixture(scope="module")
def own_client() -> Iterator[Client]:
    cluster = start_cluster()
    try:
        with Client(cluster) as c:
            yield c
    finally:
        cluster.close()


def test_a_worker_killed_mid_run_still_gives_the_right_answer(function_session: Path, own_client: Client,
                                                              tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    pids_before = set(own_client.run(os.getpid).values())
    res = run_sweep(SweepSpec(str(function_session), seeds="1-4", out=str(tmp_path / "out"),
                              sets=[f"workload.params.kill_once={json.dumps(str(marker))}"]), client=own_client)
    assert marker.exists()  # one run did kill its worker process
    killed = int(marker.read_text())
    assert killed in pids_before and killed != os.getpid()
    assert (res.total, res.executed, res.errors) == (4, 4, 0)
    for row in res.rows:
        assert row["status"] == "ok" and int(row["worker"].rsplit(":", 1)[1]) != killed
        sess = load_session(function_session, overrides=[f"workload.params.kill_once={json.dumps(str(marker))}",
                                                         f"workload.seed={row['seed']}"])
        want = flatten(run_session(sess, RunOptions(write_files=False)).summary)  # the marker exists: no kill here
        assert {k: row[k] for k in want if not k.startswith("timing.")} == \
            {k: v for k, v in want.items() if not k.startswith("timing.")}


def test_a_run_that_kills_every_worker_is_its_own_error_row_not_its_batch_mates(function_session: Path,
                                                                                tmp_path: Path) -> None:
    # Short runs go several to a task.  Seed 7 kills whatever process runs it: its batch is lost, its runs go
    # again one to a task, and only seed 7 is lost for good (Dask gives up at the first death here).
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = start_cluster()
    try:
        with Client(cluster) as client:
            res = run_sweep(SweepSpec(str(function_session), seeds="1-16", out=str(tmp_path / "out"),
                                      sets=["workload.params.kill_seed=7"]), client=client, batch_seconds=5.0)
    finally:
        cluster.close()
    assert (res.total, res.executed) == (16, 16)
    lost = [r for r in res.rows if r["status"] != "ok"]
    assert [r["seed"] for r in lost] == [7]
    assert lost[0]["error"].startswith("the run was lost: KilledWorker")
    assert sorted(r["seed"] for r in res.rows if r["status"] == "ok") == [s for s in range(1, 17) if s != 7]
