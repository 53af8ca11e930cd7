"""Fixtures shared by the machine-model tests (tests/mm).

``tiny`` builds small machines whose layout is easy to reason about by hand;
``snapshot`` captures every piece of allocator state so a test can prove an
operation that raised changed nothing.
"""
from __future__ import annotations

import numpy as np
import pytest

from pageext_core.mm import MIGRATE_TYPES, Machine, MachineConfig, MiB
from pageext_core.mm.buddy import PcpSnapshot

# 64 MiB, no x86 holes, nothing reserved: DMA = pfns [0, 4096) = 4 order-10
# blocks, DMA32 = [4096, 16384) = 12 order-10 blocks, every page free.
TINY = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)


def free_lists(m: Machine) -> list[tuple[int, ...]]:
    """Every free list's heads in list order, by (zone, migratetype, order): the public read-only copy."""
    return [m.free_list(z, o, mt) for z in range(m.nr_zones) for mt in range(MIGRATE_TYPES) for o in range(m.nr_orders)]


def pcp_lists(m: Machine) -> list[PcpSnapshot]:
    """Every CPU's pagesets (counters, limits and lists), by (cpu, zone)."""
    return [m.pcp_snapshot(c, z) for c in range(m.config.cpus) for z in range(m.nr_zones)]


def _snapshot(m: Machine) -> dict:
    return {
        "state": m.state.copy(),
        "pflags": m.pflags.copy(),
        "pb_mt": m.pb_mt.copy(),
        "free_lists": free_lists(m),
        "zone_free": list(m.zone_free),
        "zone_pcp": list(m.zone_pcp),
        "zone_held": list(m.zone_held),
        "zone_present": list(m.zone_present),
        "zone_reserved": list(m.zone_reserved),
        "pcp": pcp_lists(m),
        "zone_below_high": list(m.zone_below_high),
        "counters": (m.nr_allocs, m.nr_frees, m.nr_alloc_failures, m.nr_fallbacks, m.nr_pageblock_claims,
                     list(m.alloc_failures_by_order)),
        "clock": m.clock_ns,
        "log_lines": len(m.log.lines),
        "present": m.present_ranges,
        "blocks_online": [b.online for b in m.memory_blocks],
        "backed": m.contents.backed_pages,
    }


def _assert_same(before: dict, after: dict) -> None:
    for key, value in before.items():
        other = after[key]
        if isinstance(value, np.ndarray):
            diff = np.flatnonzero(value != other)
            assert diff.size == 0, f"{key} changed at indexes {diff[:8].tolist()}"
        else:
            assert value == other, f"{key} changed: {value!r} -> {other!r}"


@pytest.fixture
def tiny() -> Machine:
    return Machine(TINY)


def no_reserves(m: Machine) -> Machine:
    """Set ``vm.min_free_kbytes`` 0 and ``vm.lowmem_reserve_ratio`` 0: every free page can be allocated.

    For tests whose subject is not the watermarks but that fill memory up.
    """
    m.set_min_free_kbytes(0)
    m.set_lowmem_reserve_ratio([0, 0, 0, 0])
    return m


@pytest.fixture
def roomy() -> Machine:
    """``tiny`` without watermark floors (``no_reserves``)."""
    return no_reserves(Machine(TINY))


@pytest.fixture
def snapshot():
    """``snap = snapshot(m)`` ... ``snap.assert_unchanged()``."""

    class Snap:
        def __init__(self, m: Machine) -> None:
            self.m = m
            self.before = _snapshot(m)

        def assert_unchanged(self) -> None:
            _assert_same(self.before, _snapshot(self.m))

    return Snap
