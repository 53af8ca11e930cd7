"""Names and numbers shared by the whole machine model (x86_64 defaults)."""
from __future__ import annotations

from typing import Final

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT
MAX_PAGE_ORDER: Final = 10
PAGEBLOCK_ORDER: Final = 9
SECTION_SIZE_BITS: Final = 27  # 128 MiB sections

KiB: Final = 1 << 10
MiB: Final = 1 << 20
GiB: Final = 1 << 30
TiB: Final = 1 << 40

# The kernel this machine claims to be (log lines, oopses, CPU lines).
KERNEL_RELEASE: Final = "6.12.0-pageext"
# Taint letters after the first one (P, or G when not set), in print_tainted's order.
TAINT_LETTERS: Final = "FSRMBUDAWCIOELKXTN"

# Zone types, in the kernel's order (lower zones first).
ZONE_DMA: Final = 0
ZONE_DMA32: Final = 1
ZONE_NORMAL: Final = 2
ZONE_MOVABLE: Final = 3
ZONE_NAMES: Final = ("DMA", "DMA32", "Normal", "Movable")

# Migratetypes. The first three are the ones per-CPU lists and gfp masks use.
MIGRATE_UNMOVABLE: Final = 0
MIGRATE_MOVABLE: Final = 1
MIGRATE_RECLAIMABLE: Final = 2
MIGRATE_PCPTYPES: Final = 3
MIGRATE_HIGHATOMIC: Final = 3
MIGRATE_ISOLATE: Final = 4
MIGRATE_TYPES: Final = 5
MIGRATETYPE_NAMES: Final = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")

# Where an allocation may steal from when its own free lists are empty.
FALLBACKS: Final = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
}

# Migration reasons, as page_owner prints them.
MIGRATE_REASONS: Final = (
    "compaction",
    "memory_failure",
    "memory_hotplug",
    "syscall_or_cpuset",
    "mempolicy_mbind",
    "numa_misplaced",
    "contig_range",
    "longterm_pin",
    "demotion",
)

# A public module (docs/writing-plugins.md, "What is public"): these names are its API.
__all__ = [
    "FALLBACKS",
    "KERNEL_RELEASE",
    "MAX_PAGE_ORDER",
    "MIGRATETYPE_NAMES",
    "MIGRATE_HIGHATOMIC",
    "MIGRATE_ISOLATE",
    "MIGRATE_MOVABLE",
    "MIGRATE_PCPTYPES",
    "MIGRATE_REASONS",
    "MIGRATE_RECLAIMABLE",
    "MIGRATE_TYPES",
    "MIGRATE_UNMOVABLE",
    "PAGEBLOCK_ORDER",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "SECTION_SIZE_BITS",
    "TAINT_LETTERS",
    "ZONE_DMA",
    "ZONE_DMA32",
    "ZONE_MOVABLE",
    "ZONE_NAMES",
    "ZONE_NORMAL",
    "GiB",
    "KiB",
    "MiB",
    "TiB",
]
