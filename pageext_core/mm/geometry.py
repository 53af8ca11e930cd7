"""Machine description and the physical layout computed from it.

``MachineConfig`` is what a user writes (sizes in bytes, x86_64 defaults);
``Geometry`` is what boot derives: node and zone pfn spans, present RAM
ranges, holes, reserved ranges, sections and hot-pluggable memory blocks.
All of it is plain data, computed once, so the allocator never recomputes
layout on its hot path.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from pageext_core.mm.constants import (
    MAX_PAGE_ORDER,
    PAGE_SHIFT,
    PAGE_SIZE,
    PAGEBLOCK_ORDER,
    SECTION_SIZE_BITS,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_MOVABLE,
    ZONE_NAMES,
    ZONE_NORMAL,
    GiB,
    KiB,
    MiB,
)
from pageext_core.mm.errors import ConfigError

MEMORY_MODELS = ("SPARSEMEM", "FLATMEM")
STRUCT_PAGE_SIZE = 64  # bytes of memmap per page, reserved at boot


@dataclass(frozen=True)
class MachineConfig:
    """What to simulate. Sizes are bytes; defaults are a small x86_64 box.

    ``memory`` is the RAM of the whole machine (split evenly over ``nodes``)
    or a tuple with one size per node.  ``x86_holes`` adds the legacy
    640 KiB-1 MiB hole and, above 3 GiB, the PCI hole (RAM relocated above
    4 GiB, as firmware does).  ``movablecore`` gives ZONE_MOVABLE that many
    bytes from the top of the nodes.  ``hotplug`` adds that much offline,
    hot-pluggable memory above the last node, in ``memory_block_size``
    blocks (a section by default).
    """

    memory: int | tuple[int, ...] = 1 * GiB
    nodes: int = 1
    memory_model: str = "SPARSEMEM"
    cpus: int = 2
    max_order: int = MAX_PAGE_ORDER
    pageblock_order: int = PAGEBLOCK_ORDER
    section_size_bits: int = SECTION_SIZE_BITS
    x86_holes: bool = True
    holes: tuple[tuple[int, int], ...] = ()
    movablecore: int = 0
    kernel_image: int = 16 * MiB
    reserve_memmap: bool = True
    hotplug: int = 0
    hotplug_movable: bool = False
    memory_block_size: int = 0
    dma_limit: int = 16 * MiB
    dma32_limit: int = 4 * GiB

    def with_(self, **changes: object) -> MachineConfig:
        """A copy with some fields changed (configs are immutable)."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ZoneSpan:
    """One zone of one node: spanned pfns ``[start_pfn, end_pfn)``."""

    index: int  # position in Geometry.zones
    node: int
    ztype: int
    start_pfn: int
    end_pfn: int

    @property
    def name(self) -> str:
        return ZONE_NAMES[self.ztype]

    @property
    def spanned_pages(self) -> int:
        return self.end_pfn - self.start_pfn


@dataclass(frozen=True)
class NodeSpan:
    nid: int
    start_pfn: int
    end_pfn: int


@dataclass
class Geometry:
    """The physical layout derived from a ``MachineConfig``."""

    config: MachineConfig
    max_pfn: int
    nodes: list[NodeSpan]
    zones: list[ZoneSpan]
    ram: list[tuple[int, int]]  # present at boot, sorted, disjoint
    reserved: list[tuple[int, int]]  # memblock reservations, inside ram
    hotplug_blocks: list[tuple[int, int]]  # offline at boot
    holes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def max_order(self) -> int:
        return self.config.max_order

    @property
    def pageblock_order(self) -> int:
        return self.config.pageblock_order

    @property
    def section_shift(self) -> int:
        """log2 of pages per section."""
        return self.config.section_size_bits - PAGE_SHIFT

    @property
    def pages_per_section(self) -> int:
        return 1 << self.section_shift

    @property
    def nr_sections(self) -> int:
        return (self.max_pfn + self.pages_per_section - 1) >> self.section_shift

    def zone_of(self, pfn: int) -> ZoneSpan | None:
        """The zone whose span holds ``pfn`` (None outside every zone)."""
        starts = [z.start_pfn for z in self._sorted_zones]
        i = bisect.bisect_right(starts, pfn) - 1
        if i >= 0 and pfn < self._sorted_zones[i].end_pfn:
            return self._sorted_zones[i]
        return None

    def node_of(self, pfn: int) -> int | None:
        for n in self.nodes:
            if n.start_pfn <= pfn < n.end_pfn:
                return n.nid
        return None

    def __post_init__(self) -> None:
        self._sorted_zones = sorted((z for z in self.zones if z.spanned_pages), key=lambda z: z.start_pfn)


def parse_size(value: int | str, what: str = "size") -> int:
    """``"4GiB"``, ``"512MiB"``, ``"64M"``, ``"1T"``, ``4096`` → bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a size like '4GiB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{what}: size {value} is negative")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected a size like '4GiB', got {value!r}")
    s = value.strip().replace(" ", "").replace("_", "")
    units = {
        "": 1, "b": 1,
        "k": KiB, "kb": KiB, "kib": KiB,
        "m": MiB, "mb": MiB, "mib": MiB,
        "g": GiB, "gb": GiB, "gib": GiB,
        "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
    }
    i = len(s)
    while i and not (s[i - 1].isdigit() or s[i - 1] == "."):
        i -= 1
    num, unit = s[:i], s[i:].lower()
    if unit not in units or not num:
        raise ConfigError(
            f"{what}: cannot read size {value!r}; write a number with a unit: "
            "B, KiB, MiB, GiB or TiB (e.g. '4GiB', '512MiB')"
        )
    try:
        n = float(num) if "." in num else int(num)
    except ValueError:
        raise ConfigError(f"{what}: cannot read size {value!r}; write a number with a unit: "
                          "B, KiB, MiB, GiB or TiB (e.g. '4GiB', '512MiB')") from None
    if n < 0:
        raise ConfigError(f"{what}: size {value!r} is negative")
    out = int(n * units[unit])
    if out != n * units[unit]:
        raise ConfigError(f"{what}: {value!r} is not a whole number of bytes")
    return out


def format_size(nbytes: int) -> str:
    """Largest binary unit that divides evenly: ``1GiB``, ``768MiB``, ``4096B``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if nbytes and nbytes % scale == 0:
            return f"{nbytes // scale}{unit}"
    return f"{nbytes}B"


def _subtract(ranges: Iterable[tuple[int, int]], cut: tuple[int, int]) -> list[tuple[int, int]]:
    out = []
    cs, ce = cut
    for s, e in ranges:
        if ce <= s or cs >= e:
            out.append((s, e))
            continue
        if s < cs:
            out.append((s, cs))
        if ce < e:
            out.append((ce, e))
    return out


def _intersect(ranges: Sequence[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    return [(max(s, lo), min(e, hi)) for s, e in ranges if min(e, hi) > max(s, lo)]


def count_pages(ranges: Iterable[tuple[int, int]]) -> int:
    return sum(e - s for s, e in ranges)


def build_geometry(cfg: MachineConfig) -> Geometry:
    """Lay the machine out; every inconsistency is a ``ConfigError`` saying how to fix it."""
    if cfg.memory_model not in MEMORY_MODELS:
        raise ConfigError(f"memory_model {cfg.memory_model!r}: expected one of {', '.join(MEMORY_MODELS)}")
    if not 1 <= cfg.max_order <= 14:
        raise ConfigError(f"max_order {cfg.max_order}: expected 1..14")
    if not 0 <= cfg.pageblock_order <= cfg.max_order:
        raise ConfigError(f"pageblock_order {cfg.pageblock_order}: expected 0..max_order ({cfg.max_order})")
    if cfg.section_size_bits - PAGE_SHIFT < cfg.max_order:
        raise ConfigError(
            f"section_size_bits {cfg.section_size_bits}: a section must hold a whole "
            f"max-order block (at least {cfg.max_order + PAGE_SHIFT})"
        )
    for field_name in ("hotplug", "movablecore", "kernel_image", "memory_block_size"):
        if getattr(cfg, field_name) < 0:
            raise ConfigError(f"{field_name} {getattr(cfg, field_name)}: must not be negative")
    if cfg.memory_model == "FLATMEM" and cfg.hotplug:
        raise ConfigError("hotplug needs SPARSEMEM: FLATMEM has one fixed memmap (and page_ext table) per node")
    if cfg.nodes < 1 or cfg.nodes > 64:
        raise ConfigError(f"nodes {cfg.nodes}: expected 1..64")
    if cfg.cpus < 1 or cfg.cpus > 4096:
        raise ConfigError(f"cpus {cfg.cpus}: expected 1..4096")
    block_bytes = PAGE_SIZE << cfg.max_order
    section_bytes = 1 << cfg.section_size_bits
    for size in cfg.memory if isinstance(cfg.memory, tuple) else (cfg.memory,):
        if not isinstance(size, int) or isinstance(size, bool):
            raise ConfigError(
                f"memory {size!r}: expected a size in bytes (an int); convert text such as '4GiB' "
                "with parse_size('4GiB')"
            )
    if isinstance(cfg.memory, tuple):
        sizes = list(cfg.memory)
        if len(sizes) != cfg.nodes:
            raise ConfigError(f"memory lists {len(sizes)} node sizes but nodes = {cfg.nodes}")
    else:
        if cfg.memory % cfg.nodes:
            raise ConfigError(f"memory {format_size(cfg.memory)} does not split evenly over {cfg.nodes} nodes")
        sizes = [cfg.memory // cfg.nodes] * cfg.nodes
    for nid, size in enumerate(sizes):
        if size <= 0 or size % block_bytes:
            raise ConfigError(
                f"node {nid} memory {format_size(size)}: must be a positive multiple of "
                f"{format_size(block_bytes)} (one max-order block)"
            )
        if cfg.nodes > 1 and size % section_bytes:
            raise ConfigError(
                f"node {nid} memory {format_size(size)}: with several nodes each must be a "
                f"multiple of the section size {format_size(section_bytes)}"
            )
    if cfg.dma_limit % block_bytes or cfg.dma32_limit % block_bytes or cfg.dma_limit > cfg.dma32_limit:
        raise ConfigError("dma_limit and dma32_limit must be max-order aligned and dma_limit <= dma32_limit")

    pci_lo, pci_hi = 3 * GiB, 4 * GiB
    nodes: list[NodeSpan] = []
    ram: list[tuple[int, int]] = []
    addr = 0
    for nid, size in enumerate(sizes):
        start = addr
        need = size
        while need:
            if cfg.x86_holes and addr < pci_hi and addr + need > pci_lo:
                take = max(0, pci_lo - addr)
                if take:
                    ram.append((addr, addr + take))
                need -= take
                addr = pci_hi
                continue
            ram.append((addr, addr + need))
            addr += need
            need = 0
        nodes.append(NodeSpan(nid, start >> PAGE_SHIFT, addr >> PAGE_SHIFT))

    holes: list[tuple[int, int]] = []
    if cfg.x86_holes:
        holes.append((640 * KiB, 1 * MiB))
        if addr > pci_lo:
            holes.append((pci_lo, pci_hi))
    for hs, he in cfg.holes:
        if not (0 <= hs < he) or hs % PAGE_SIZE or he % PAGE_SIZE:
            raise ConfigError(f"hole [{hs:#x}, {he:#x}): expected page-aligned start < end")
        holes.append((hs, he))
    for h in holes:
        ram = _subtract(ram, h)
    ram_pfn = sorted((s >> PAGE_SHIFT, e >> PAGE_SHIFT) for s, e in ram)
    if not ram_pfn:
        raise ConfigError("no memory left after holes")

    # Hot-pluggable blocks sit above the last node, at 4 GiB or higher like real
    # hot-added DIMMs, so they land in ZONE_NORMAL (or ZONE_MOVABLE).
    mbs = cfg.memory_block_size or section_bytes
    hotplug_blocks: list[tuple[int, int]] = []
    if cfg.hotplug:
        if mbs % section_bytes:
            raise ConfigError(f"memory_block_size {format_size(mbs)} must be a multiple of the section size {format_size(section_bytes)}")
        if cfg.hotplug % mbs:
            raise ConfigError(f"hotplug {format_size(cfg.hotplug)} must be a multiple of the memory block size {format_size(mbs)}")
        base = max(addr, cfg.dma32_limit)
        base = -(-base // mbs) * mbs
        for i in range(cfg.hotplug // mbs):
            s = base + i * mbs
            hotplug_blocks.append((s >> PAGE_SHIFT, (s + mbs) >> PAGE_SHIFT))
        last = nodes[-1]
        nodes[-1] = NodeSpan(last.nid, last.start_pfn, hotplug_blocks[-1][1])

    max_pfn = max(n.end_pfn for n in nodes)
    dma_pfn, dma32_pfn = cfg.dma_limit >> PAGE_SHIFT, cfg.dma32_limit >> PAGE_SHIFT
    per_node_movable = cfg.movablecore // cfg.nodes // block_bytes * (block_bytes >> PAGE_SHIFT)
    zones: list[ZoneSpan] = []
    for n in nodes:
        bounds = {
            ZONE_DMA: (max(n.start_pfn, 0), min(n.end_pfn, dma_pfn)),
            ZONE_DMA32: (max(n.start_pfn, dma_pfn), min(n.end_pfn, dma32_pfn)),
            ZONE_NORMAL: (max(n.start_pfn, dma32_pfn), n.end_pfn),
        }
        movable = (n.end_pfn, n.end_pfn)
        hot_in_node = [b for b in hotplug_blocks if n.start_pfn <= b[0] < n.end_pfn]
        if per_node_movable or (cfg.hotplug_movable and hot_in_node):
            # ZONE_MOVABLE takes the top of the node's boot RAM (and the hot-pluggable blocks).
            boot_end = hot_in_node[0][0] if hot_in_node else n.end_pfn
            node_ram = _intersect(ram_pfn, n.start_pfn, boot_end)
            start = boot_end
            remaining = per_node_movable
            for s, e in reversed(node_ram):
                if not remaining:
                    break
                take = min(remaining, e - s)
                start = e - take
                remaining -= take
            if remaining:
                raise ConfigError(f"movablecore {format_size(cfg.movablecore)} is more than node {n.nid} can give")
            start = start >> cfg.max_order << cfg.max_order
            ns, ne = bounds[ZONE_NORMAL]
            if start < ns:
                raise ConfigError(
                    f"movablecore {format_size(cfg.movablecore)}: ZONE_MOVABLE may only take memory "
                    f"from ZONE_NORMAL (above {format_size(cfg.dma32_limit)}); make it smaller"
                )
            movable = (start, n.end_pfn)
            bounds[ZONE_NORMAL] = (ns, start)
        bounds[ZONE_MOVABLE] = movable
        for zt in (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE):
            s, e = bounds[zt]
            if e <= s:
                s = e = max(s, n.start_pfn) if e <= s else s
            zones.append(ZoneSpan(len(zones), n.nid, zt, s, max(s, e)))

    reserved: list[tuple[int, int]] = []
    if cfg.x86_holes:
        reserved.append((0, 1))  # the BIOS data page
    if cfg.kernel_image:
        ks = (16 * MiB) >> PAGE_SHIFT
        ke = ks + (-(-cfg.kernel_image // PAGE_SIZE))
        if ke > nodes[0].end_pfn:
            raise ConfigError(
                f"kernel_image {format_size(cfg.kernel_image)}: the kernel is loaded at 16 MiB and must fit in "
                f"node 0 ({format_size(nodes[0].end_pfn * PAGE_SIZE)}); make it smaller, or 0 for none")
        reserved.extend(_intersect(ram_pfn, ks, ke))
    if cfg.reserve_memmap:
        # memblock allocates the memmap top-down in each node's boot RAM.
        for n in nodes:
            node_ram = _intersect(ram_pfn, n.start_pfn, n.end_pfn)
            need = -(-count_pages(node_ram) * STRUCT_PAGE_SIZE // PAGE_SIZE)
            for s, e in reversed(node_ram):
                if not need:
                    break
                take = min(need, e - s)
                reserved.append((e - take, e))
                need -= take
    reserved = _merge(reserved)
    free_after = count_pages(ram_pfn) - count_pages(reserved)
    if free_after < (1 << cfg.max_order):
        raise ConfigError(
            f"memory {format_size(sum(sizes))}: after the kernel image and memmap are reserved "
            f"less than one max-order block is left; give the machine more memory or set kernel_image = 0"
        )
    return Geometry(
        config=cfg,
        max_pfn=max_pfn,
        nodes=nodes,
        zones=zones,
        ram=ram_pfn,
        reserved=reserved,
        hotplug_blocks=hotplug_blocks,
        holes=sorted((s >> PAGE_SHIFT, e >> PAGE_SHIFT) for s, e in holes),
    )


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
