"""The simulated machine: geometry, buddy allocator, page contents, context and log.

Import what you need from here; the submodules are one idea each.  What a
page_ext client may use is listed in ``__all__`` (and in docs/machine.md,
"The machine for plugins"): the ``Machine`` methods documented there, the
page kinds (``PageKind``), constants, gfp helpers and errors.  The
submodules' other names (``buddy.K_*``, the allocator's arrays) and the
machine's parts (``machine.buddy``, ``machine.ctx``, ``machine.oopses``,
whose public names ``Machine`` forwards) are the machine's own and may change.
"""
from pageext_core.mm.buddy import HookError, PageBlock, PageKind
from pageext_core.mm.callouts import NO_CALLOUTS, Callout, Callouts
from pageext_core.mm.constants import (
    MAX_PAGE_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    MIGRATETYPE_NAMES,
    PAGE_SIZE,
    PAGEBLOCK_ORDER,
    ZONE_NAMES,
    GiB,
    KiB,
    MiB,
    TiB,
)
from pageext_core.mm.context import Task
from pageext_core.mm.errors import (
    BadPageState,
    ConfigError,
    DoubleFree,
    HotplugError,
    InvalidOrder,
    InvalidPfn,
    MMError,
    OrderMismatch,
    PageFault,
)
from pageext_core.mm.geometry import MachineConfig, format_size, parse_size
from pageext_core.mm.gfp import format_gfp, format_gfp_mask, gfp_migratetype, parse_gfp
from pageext_core.mm.hotplug import MemoryBlock
from pageext_core.mm.invariants import InvariantError, check_invariants
from pageext_core.mm.machine import Machine
from pageext_core.mm.pageflags import flags_mask, format_pageflags

__all__ = [
    "MAX_PAGE_ORDER",
    "MIGRATETYPE_NAMES",
    "MIGRATE_MOVABLE",
    "MIGRATE_RECLAIMABLE",
    "MIGRATE_TYPES",
    "MIGRATE_UNMOVABLE",
    "NO_CALLOUTS",
    "PAGEBLOCK_ORDER",
    "PAGE_SIZE",
    "ZONE_NAMES",
    "BadPageState",
    "Callout",
    "Callouts",
    "ConfigError",
    "DoubleFree",
    "GiB",
    "HookError",
    "HotplugError",
    "InvalidOrder",
    "InvalidPfn",
    "InvariantError",
    "KiB",
    "MMError",
    "Machine",
    "MachineConfig",
    "MemoryBlock",
    "MiB",
    "OrderMismatch",
    "PageBlock",
    "PageFault",
    "PageKind",
    "Task",
    "TiB",
    "check_invariants",
    "flags_mask",
    "format_gfp",
    "format_gfp_mask",
    "format_pageflags",
    "format_size",
    "gfp_migratetype",
    "parse_gfp",
    "parse_size",
]
