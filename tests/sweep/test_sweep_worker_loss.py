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
