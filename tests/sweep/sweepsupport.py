"""What the sweep tests share besides fixtures: tiny sessions, a file writer, the cluster a sweep starts.

A module of its own (not conftest) so a test can import it by a name no other test directory uses.
"""
from __future__ import annotations

from pathlib import Path

from dask.distributed import LocalCluster  # the sweep extra: make install has it

from pageext_core.sweep import local_cluster

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

# A function workload next to the session: raises when asked, kills its own process once (or always, for one
# seed) when asked.
WORKLOAD_PY = '''\
import os
import signal

from pageext_core.mm.gfp import GFP_KERNEL


def run(ctx):
    m = ctx.machine
    blocks = [m.alloc_pages(GFP_KERNEL, ctx.rng.randrange(3)) for _ in range(ctx.params.get("n", 20))]
    if ctx.params.get("fail"):
        raise RuntimeError("the workload gave up")
    if ctx.params.get("kill_seed") == ctx.spec.seed:  # this run kills every worker it runs on
        os.kill(os.getpid(), signal.SIGKILL)
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


def start_cluster() -> LocalCluster:
    """The cluster ``pageext sweep --workers 2`` starts."""
    return local_cluster(2)


def write(directory: Path, name: str, text: str) -> Path:
    p = Path(directory) / name
    p.write_text(text, encoding="utf-8")
    return p
