"""Samples of the machine taken during a workload: fragmentation over time, as ``samples.csv``.

A sample reads (never changes) the machine: free pages per order in every
populated zone, the kernel's unusable and fragmentation indices per order
(``mm.extfrag``), mixed pageblocks, allocation failures, page_ext memory
and the findings so far.  It costs a few numpy operations over the page
state array, so sampling every few hundred operations is cheap.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pageext_core.mm import buddy as _b
from pageext_core.mm import extfrag
from pageext_core.mm.constants import MIGRATE_MOVABLE
from pageext_core.mm.stats import free_blocks, populated_zones

if TYPE_CHECKING:
    from pageext_core.mm.machine import Machine
    from pageext_core.page_ext import PageExt

DEFAULT_SAMPLES = 50  # sample_every defaults to operations / this


def default_sample_every(operations: int) -> int:
    """About fifty samples per run, at least one operation apart: a few per cent of the workload's time."""
    return max(1, operations // DEFAULT_SAMPLES)


def mixed_pageblocks(m: Machine) -> int:
    """Pageblocks holding an allocation of another mobility than the block's own (movable vs not), read-only.

    The machine knows whether each allocated block is movable; page_owner's
    "Number of mixed blocks" compares full migratetypes from its records.
    """
    kind = m.state >> 4
    pbo = m.pageblock_order
    unmovable = np.flatnonzero(kind == _b.K_ALLOC) >> pbo
    movable = np.flatnonzero(kind == _b.K_ALLOC_MOVABLE) >> pbo
    bad = np.concatenate((unmovable[m.pb_mt[unmovable] == MIGRATE_MOVABLE],
                          movable[m.pb_mt[movable] != MIGRATE_MOVABLE]))
    return int(np.unique(bad).size)


def zone_label(z: Any) -> str:
    return f"n{z.node}_{z.name}"


class Sampler:
    """Takes samples of one PageExt's machine; ``rows`` are plain ints, one list per sample."""

    def __init__(self, pe: PageExt) -> None:
        self.pe = pe
        m = pe.machine
        self.zones = populated_zones(m)
        self.nr_orders = m.nr_orders
        self.columns = ["op", "time_ns", "free_pages", "allocated_pages", "alloc_failures", "mixed_pageblocks",
                        "page_ext_bytes", "findings"]
        for z in self.zones:
            lab = zone_label(z)
            self.columns += [f"free_{lab}_o{o}" for o in range(self.nr_orders)]
            self.columns += [f"unusable_{lab}_o{o}" for o in range(self.nr_orders)]
            self.columns += [f"extfrag_{lab}_o{o}" for o in range(self.nr_orders)]
        self._raw: list[list[Any]] = []
        self._rows: list[list[int]] | None = None

    def __call__(self, op: int) -> None:
        """Take one sample at operation ``op`` (the same op twice keeps the later sample).

        Only counters and free-block counts are read here; the indices are
        functions of the counts, computed when the samples are read.
        """
        m = self.pe.machine
        per = free_blocks(m).sum(axis=1)
        raw = [op, m.clock_ns, m.nr_free_pages, m.nr_allocated_pages, m.nr_alloc_failures, mixed_pageblocks(m),
               self.pe.nbytes, len(self.pe.findings())] + [per[z.index].tolist() for z in self.zones]
        if self._raw and self._raw[-1][0] == op:
            self._raw[-1] = raw
        else:
            self._raw.append(raw)
        self._rows = None

    @property
    def rows(self) -> list[list[int]]:
        """One list of ints per sample, in ``columns`` order."""
        if self._rows is None:
            orders = np.arange(self.nr_orders, dtype=np.int64)
            out = []
            for raw in self._raw:
                row = list(raw[:8])
                for nr in raw[8:]:
                    a = np.array(nr, np.int64)
                    row += (a << orders).tolist()
                    row += extfrag.unusable_free_index(a).tolist()
                    row += extfrag.fragmentation_index(a).tolist()
                out.append(row)
            self._rows = out
        return self._rows

    def column(self, name: str) -> np.ndarray:
        i = self.columns.index(name)
        return np.array([r[i] for r in self.rows], dtype=np.int64)

    def csv(self) -> str:
        """``samples.csv``: a header, then one line per sample; indices in the kernel's x.yyy form."""
        idx = [i for i, c in enumerate(self.columns) if c.startswith(("unusable_", "extfrag_"))]
        out = [",".join(self.columns) + "\n"]
        for r in self.rows:
            cells = [str(v) for v in r]
            for i in idx:
                cells[i] = _milli(r[i])
            out.append(",".join(cells) + "\n")
        return "".join(out)


def _milli(v: int) -> str:
    sign = "-" if v < 0 else ""
    return f"{sign}{abs(v) // 1000}.{abs(v) % 1000:03d}"
