"""``/proc/zoneinfo`` of a traced machine -> the :class:`MachineConfig` to replay its trace on.

The file is parsed by label, never by line position, since kernels add and
pad items (see the reference's section 10): a ``Node N, zone NAME`` line
starts a zone; in it ``spanned``, ``present``, ``managed`` and
``start_pfn:`` are read, and ``cpu: N`` lines of the pagesets count the
CPUs.  Everything else is skipped.

What the machine keeps of it: the nodes (each node's RAM is the sum of its
zones' present pages, rounded up to a max-order block, or to a section with
several nodes), the CPUs, and the DMA/DMA32 limits when they fall on
max-order boundaries.  Holes are pageext's own x86 layout (the legacy hole
and the PCI hole), so a pfn the real box had in a hole pageext does not
model is refused, with the reason, when the trace allocates it.  If that
layout ends below the zoneinfo's highest pfn (or its top reservation, the
memmap, would sit on traced pages), the last node grows until it does not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pageext_core.mm.constants import PAGE_SHIFT, PAGE_SIZE, ZONE_NAMES
from pageext_core.mm.errors import ConfigError
from pageext_core.mm.geometry import Geometry, MachineConfig, build_geometry

ZONE_LINE = re.compile(r"Node\s+(\d+),\s+zone\s+(\S+)\s*$")
ITEM = re.compile(r"\s+(spanned|present|managed|start_pfn:?)\s+(\d+)\s*$")
CPU = re.compile(r"\s+cpu:\s+(\d+)\s*$")
MIN_MEMORY = 64 << 20


class ZoneinfoError(ValueError):
    """A zoneinfo file that cannot describe a machine: names the file and line."""


@dataclass
class ZoneInfo:
    node: int
    name: str
    line: int
    start_pfn: int = -1
    spanned: int = 0
    present: int = 0
    managed: int = 0

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


@dataclass
class Zoneinfo:
    """What ``parse_zoneinfo`` read: the zones in file order and the CPUs seen."""

    zones: list[ZoneInfo] = field(default_factory=list)
    cpus: int = 0

    @property
    def nodes(self) -> list[int]:
        return sorted({z.node for z in self.zones})

    @property
    def end_pfn(self) -> int:
        return max((z.end_pfn for z in self.zones if z.spanned), default=0)

    def node_present(self, nid: int) -> int:
        return sum(z.present for z in self.zones if z.node == nid)

    def zone_end(self, name: str) -> int | None:
        ends = [z.end_pfn for z in self.zones if z.name == name and z.spanned]
        return max(ends) if ends else None


def usable_end(g: Geometry) -> int:
    """The pfn where the last node's top reservations (memmap, FLATMEM tables) begin, or the end.

    A trace's highest pfns must lie below it: the traced box had RAM where
    pageext puts its own struct page reservation, at the top of each node.
    (Other nodes' reservations stay where they are: a traced page there is
    refused, with the reason.)
    """
    cfg = g.config
    kernel_end = ((16 << 20) + cfg.kernel_image + PAGE_SIZE - 1) >> PAGE_SHIFT if cfg.kernel_image else 1
    last = g.nodes[-1].start_pfn
    late = [s for s, _ in g.reserved if s >= kernel_end and s >= last]
    return min(late) if late else g.max_pfn


def parse_zoneinfo(text: str, name: str = "<zoneinfo>") -> Zoneinfo:
    """Read a ``/proc/zoneinfo`` text (any kernel since the file has had ``start_pfn``)."""
    out = Zoneinfo()
    cur: ZoneInfo | None = None
    cpus: set[int] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        m = ZONE_LINE.match(line)
        if m:
            zname = m.group(2)
            if zname not in ZONE_NAMES and zname != "Device":
                raise ZoneinfoError(f"{name}:{lineno}: unknown zone {zname!r} (expected one of "
                                    f"{', '.join(ZONE_NAMES)}, Device)")
            cur = ZoneInfo(int(m.group(1)), zname, lineno)
            out.zones.append(cur)
            continue
        m = ITEM.match(line)
        if m:
            if cur is None:
                raise ZoneinfoError(f"{name}:{lineno}: {m.group(1).rstrip(':')} before any 'Node N, zone NAME' line")
            label, value = m.group(1).rstrip(":"), int(m.group(2))
            setattr(cur, label, value)
            continue
        m = CPU.match(line)
        if m:
            cpus.add(int(m.group(1)))
    if not out.zones:
        raise ZoneinfoError(f"{name}: no 'Node N, zone NAME' line: is this /proc/zoneinfo?")
    for z in out.zones:
        if z.spanned and z.start_pfn < 0:
            raise ZoneinfoError(f"{name}:{z.line}: zone {z.name} of node {z.node} has pages but no start_pfn")
    if not any(z.present for z in out.zones):
        raise ZoneinfoError(f"{name}: no zone has present pages")
    out.cpus = len(cpus) or 1
    return out


def read_zoneinfo(path: str | Path) -> Zoneinfo:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ZoneinfoError(f"{p}: cannot read it: {exc.strerror or exc}") from None
    return parse_zoneinfo(text, str(p))


def machine_from_zoneinfo(zi: Zoneinfo, base: MachineConfig | None = None) -> MachineConfig:
    """The machine to replay on: ``base`` (orders, memory model, reservations) with the zoneinfo's nodes and CPUs."""
    base = base or MachineConfig()
    block = PAGE_SIZE << base.max_order
    section = 1 << base.section_size_bits
    nodes = zi.nodes
    unit = section if len(nodes) > 1 else block
    sizes = []
    for nid in nodes:
        b = zi.node_present(nid) * PAGE_SIZE
        sizes.append(max(unit, -(-b // unit) * unit))
    changes: dict[str, object] = {"nodes": len(nodes), "cpus": max(1, min(zi.cpus, 4096)), "hotplug": 0}
    for zname, key in (("DMA", "dma_limit"), ("DMA32", "dma32_limit")):
        end = zi.zone_end(zname)
        if end is not None and (end << PAGE_SHIFT) % block == 0:
            changes[key] = end << PAGE_SHIFT
    want = zi.end_pfn
    while True:
        mem: int | tuple[int, ...] = tuple(sizes) if len(sizes) > 1 else sizes[0]
        cfg = base.with_(memory=mem, **changes)
        try:
            g = build_geometry(cfg)
        except ConfigError as exc:
            raise ZoneinfoError(f"zoneinfo describes a machine pageext cannot lay out: {exc}") from None
        top = usable_end(g)
        if top >= want:
            return cfg
        sizes[-1] += -(-((want - top) << PAGE_SHIFT) // unit) * unit


def machine_covering(end_pfn: int, base: MachineConfig | None = None) -> MachineConfig:
    """``base`` with just enough memory that pfns below ``end_pfn`` exist (the trace's highest block end).

    Memory grows in max-order blocks (sections with several nodes) until the
    layout, x86 holes included, reaches ``end_pfn`` below its top
    reservations (``usable_end``); it never shrinks below
    one block per node nor below 64 MiB (the smallest machine sessions use:
    the kernel image sits at 16 MiB).
    """
    base = base or MachineConfig()
    unit = (1 << base.section_size_bits) if base.nodes > 1 else (PAGE_SIZE << base.max_order)
    step = unit * base.nodes
    def covers(units: int) -> bool:
        try:
            return usable_end(build_geometry(base.with_(memory=units * step))) >= end_pfn
        except ConfigError:
            return False

    lo = -(-max(MIN_MEMORY, step) // step)
    hi = max(lo, -(-(end_pfn << PAGE_SHIFT) // step))
    while not covers(hi):  # holes push RAM up: grow, then search down for the smallest
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if covers(mid):
            hi = mid
        else:
            lo = mid + 1
    return base.with_(memory=hi * step)
