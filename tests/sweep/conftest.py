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

from pageext_core.sweep import local_cluster

SHM = Path("/dev/shm")

# Two clients on 64 MiB, a few hundred operations, two planted bugs: a run takes a tenth of a second.
TINY = """\
[session]
name = "tiny"

[machine]
memory = "64MiB"
cpus = 1

[boot]
cmdline = "page_owner=on debug_pagealloc=on"

[workload]
seed = 1
operations = 300

[workload.faults]
use_after_free = 1
bit_flip = 1

[report]
reports = ["buddyinfo", "pagetypeinfo"]
"""

# A function workload next to the session: raises when asked, kills its own process once when asked.
WORKLOAD_PY = '''\
import os
import signal

from pageext_core.mm.gfp import GFP_KERNEL


def run(ctx):
    m = ctx.machine
    blocks = [m.alloc_pages(GFP_KERNEL, ctx.rng.randrange(3)) for _ in range(ctx.params.get("n", 20))]
    if ctx.params.get("fail"):
        raise RuntimeError("the workload gave up")
    marker = ctx.params.get("kill_once")
    if marker and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return {"blocks": len(blocks), "pages": sum(1 for b in blocks if b is not None)}
'''

FUNCTION = """\
[session]
name = "fn"

[machine]
memory = "64MiB"
cpus = 1

[boot]
# not page_owner: with no frames given it records the Python stack, which differs between a worker and a test
cmdline = "debug_pagealloc=on"

[workload]
function = "sweep_workload:run"
seed = 3

[workload.params]
n = 20

[report]
reports = ["buddyinfo"]
"""


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


def start_cluster() -> LocalCluster:
    """The cluster ``pageext sweep --workers 2`` starts."""
    return local_cluster(2)


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


def write(directory: Path, name: str, text: str) -> Path:
    p = Path(directory) / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write(tmp_path, "tiny.toml", TINY)


@pytest.fixture
def function_session(tmp_path: Path) -> Path:
    write(tmp_path, "sweep_workload.py", WORKLOAD_PY)
    return write(tmp_path, "fn.toml", FUNCTION)
