"""alloc_tag (memory allocation profiling): what it costs next to page_owner.

The standard mixed workload (``_workload``) runs on machines that differ
only in their boot line, all in the same run and interleaved (best of the
rounds, each timed by ``run_plan``'s own loop):

- off: neither client enabled (both installed);
- ``sysctl.vm.mem_profiling=1``: alloc_tag on;
- ``page_owner=on``: page_owner on;

once with an explicit stack set (a depot handle, as the synthetic workload
and replayed kernel traces give them: the record keeping alone) and once
with Python callers (no stack given: page_owner captures the Python stack
into the depot on every event, alloc_tag only looks up the calling line).
alloc_tag records no stack and writes 4 bytes on the head page only, so its
on/off ratio should be well under page_owner's; both ratios are reported,
with each client's page_ext bytes per page.

The plugin is imported from ``examples/plugins/alloc_tag`` (added to
``sys.path``), so it need not be installed.

Run: ``.venv/bin/python -m benchmarks alloc_tag`` (``--quick`` for a smoke test).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pageext_core as pc
from benchmarks._harness import Result, interleaved, list_floor, self_timed
from benchmarks._workload import Plan, make_plan, run_plan
from pageext_core.mm import GiB, MachineConfig

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "alloc_tag"
if str(PLUGIN_DIR) not in sys.path:
    sys.path.insert(0, str(PLUGIN_DIR))

from pageext_alloc_tag import AllocTag  # noqa: E402
from pageext_page_owner.plugin import PageOwner  # noqa: E402

# The standard plan keeps ~280 MiB live; 1 GiB runs it without failures.
CONFIG = MachineConfig(memory=1 * GiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
MODES = {"off": "", "alloc_tag": "sysctl.vm.mem_profiling=1", "page_owner": "page_owner=on"}
STACK = ["post_alloc_hook+0x1a2/0x1c0", "get_page_from_freelist+0x3b8/0x1530", "__alloc_pages_noprof+0x17c/0x360",
         "alloc_pages_mpol_noprof+0x95/0x1c0", "allocate_slab+0x2a9/0x3d0", "___slab_alloc+0x4e3/0xc20",
         "__kmalloc_cache_noprof+0x2b8/0x340", "seq_open+0x3c/0x90", "do_syscall_64+0x82/0x170"]


def boot(cmdline: str) -> pc.PageExt:
    """A machine with exactly these two clients installed, whatever else is in the venv."""
    return pc.boot(CONFIG, cmdline, plugins=[AllocTag, ("page_owner", PageOwner)], autoload=False)


def candidates(plan: Plan, explicit: bool) -> tuple[dict[str, Callable[[], float]], dict[str, pc.PageExt]]:
    """The plan on each machine; each callable returns the seconds of ``run_plan``'s timed loop."""
    fns: dict[str, Callable[[], float]] = {}
    pes: dict[str, pc.PageExt] = {}
    for mode, cmdline in MODES.items():
        pe = boot(cmdline)
        if explicit:
            pe.machine.set_stack(STACK)  # one handle for every event
        fns[mode] = (lambda m=pe.machine: run_plan(m, plan)[1])
        pes[mode] = pe
    return fns, pes


def run(quick: bool = False) -> list[Result]:
    n_ops, rounds = (4000, 3) if quick else (60_000, 7)
    plan = make_plan(n_ops)
    floor = list_floor(plan.n_ops) / plan.n_ops * 1e9
    out: list[Result] = []
    for explicit, label in ((True, "explicit stack"), (False, "Python callers")):
        fns, pes = candidates(plan, explicit)
        best = interleaved(fns, rounds, measure=self_timed)
        ns = {k: v / plan.n_ops * 1e9 for k, v in best.items()}
        tag_ratio = best["alloc_tag"] / best["off"]
        owner_ratio = best["page_owner"] / best["off"]
        tag_cost, owner_cost = ns["alloc_tag"] - ns["off"], ns["page_owner"] - ns["off"]
        tag = pes["alloc_tag"].plugin("alloc_tag")
        out += [
            Result(f"alloc/free, both off ({label})", ns["off"], "ns/op",
                   detail={"operations": plan.n_ops, "allocations": plan.n_allocs, "list_floor_ns": round(floor, 1)}),
            Result(f"alloc/free, alloc_tag on ({label})", ns["alloc_tag"], "ns/op",
                   detail={"over_off_ns_per_op": round(tag_cost, 1), "call_sites": [r.tag for r in tag.rows()]}),
            Result(f"alloc/free, page_owner on ({label})", ns["page_owner"], "ns/op",
                   detail={"over_off_ns_per_op": round(owner_cost, 1),
                           "depot_stacks": len(pes["page_owner"].machine.depot)}),
            Result(f"alloc_tag on / off ({label})", tag_ratio, "x",
                   target="< page_owner on / off", ok=tag_ratio < owner_ratio),
            Result(f"page_owner on / off ({label})", owner_ratio, "x"),
            Result(f"alloc_tag cost / page_owner cost ({label})", tag_cost / owner_cost if owner_cost > 0 else 0.0,
                   "ratio", target="< 1", ok=tag_cost < owner_cost),
        ]
    for mode in ("alloc_tag", "page_owner"):
        pe = pes[mode]
        out.append(Result(f"page_ext bytes per page ({mode} alone)", pe.record_size, "bytes",
                          detail={"page_ext_bytes": pe.nbytes, "pages_covered": pe.nbytes // pe.record_size}))
    return out


if __name__ == "__main__":  # pragma: no cover
    for r in run(quick="--quick" in sys.argv):
        print(r)
