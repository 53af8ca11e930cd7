"""Fixtures for the sweep tests: a real Dask cluster, tiny sessions.

One ``LocalCluster`` of 2 worker processes serves the whole package (its
start costs seconds; every test submits to it through its own client, as
``pageext sweep --scheduler`` does).  The test that kills a worker starts a
cluster of its own, so no other test sees a restarted worker.

``tmp_path`` lives in /dev/shm when it can (atomic writes fsync every file;
on a busy disk that can take seconds), as in tests/session.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask.distributed import Client, LocalCluster  # the sweep extra: make install has it
from sweepsupport import FUNCTION, TINY, WORKLOAD_PY, start_cluster, write

SHM = Path("/dev/shm")

@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="pageext-sweep-test-", dir=SHM))
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("sweep")


@pytest.fixture(autouse=True)
def _plugins_from_the_environment_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGEEXT_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("PAGEEXT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PAGEEXT_HOST_MEMORY", raising=False)


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    c = start_cluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster) as c:
        yield c


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write(tmp_path, "tiny.toml", TINY)


@pytest.fixture
def function_session(tmp_path: Path) -> Path:
    write(tmp_path, "sweep_workload.py", WORKLOAD_PY)
    return write(tmp_path, "fn.toml", FUNCTION)
