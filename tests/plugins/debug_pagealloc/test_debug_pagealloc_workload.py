"""A clean workload raises nothing, and poisoning creates no backing bytes."""
from __future__ import annotations

from debug_pagealloc_support import boot_dpa, client, headlines

from benchmarks._workload import run_clean_workload  # the loop benchmarks/bench_debug_pagealloc.py times
from pageext_core.mm import check_invariants


def run_workload(pe, ops: int, seed: int, *, writes: bool, max_held: int = 1500) -> int:
    """``ops`` random allocations and frees; with ``writes`` some blocks are written, read and freed."""
    return run_clean_workload(pe.machine, ops, seed, writes=writes, max_held=max_held)[0]


def test_a_million_clean_operations_find_nothing() -> None:
    pe = boot_dpa()
    done = run_workload(pe, 1_000_000, seed=20141125, writes=True)
    assert done > 990_000
    assert pe.findings() == []
    assert headlines(pe) == []
    c = client(pe)
    assert c.pages_checked > 300_000
    assert c.pages_compared == 0  # written pages got their poison back on free: nothing to compare
    m = pe.machine
    assert m.contents.nr_unmapped == int(m.free_pages_mask().sum())
    assert m.contents.backed_pages == 0  # every written block was freed, and poison gave its rows back
    check_invariants(m)
    # How long this takes is benchmarks/bench_debug_pagealloc.py's "clean workload" figure.


def test_page_poison_only_workload_finds_nothing() -> None:
    pe = boot_dpa("page_poison=on")
    run_workload(pe, 100_000, seed=7, writes=True)
    assert pe.findings() == []
    assert pe.machine.contents.nr_unmapped == 0


def test_poisoning_costs_no_page_contents_memory_when_nothing_writes() -> None:
    pe = boot_dpa()
    m = pe.machine
    c = m.contents
    run_workload(pe, 100_000, seed=3, writes=False)
    assert client(pe).pages_poisoned > 100_000  # many pages poisoned...
    assert c.backed_pages == 0  # ...none of them got 4 KiB of backing
    # What remains is one fill byte and one mapped flag per pfn: the pool of 4 KiB rows never grew.
    assert c.host_bytes <= 2 * m.geometry.max_pfn
    assert pe.findings() == []
