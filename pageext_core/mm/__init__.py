"""The simulated machine: geometry, buddy allocator, page contents, context and log.

Import what you need from here; the submodules are one idea each.  What a
page_ext client may use follows the one rule in docs/writing-plugins.md,
"What is public": a name is public if it is in the ``__all__`` of a public
module.  Here those are this package (``__all__`` below: ``Machine``, whose
public members docs/machine.md lists under "The machine for plugins", the
page kinds, constants, gfp helpers and errors) and the submodules
``constants``, ``errors``, ``gfp`` and ``pageflags``.  The other submodules
(``buddy``, ``machine``, ``printk``...), every ``_name`` and the machine's
parts (``machine.buddy``, ``machine.ctx``, ``machine.oopses``,
``machine.hotplug``, whose public names ``Machine`` forwards) are the
machine's own and may change.

The allocator's names (``Machine``, ``PageKind``...) are imported on first
use: the geometry, constants and errors come without numpy, so ``pageext
plugins`` and ``--version`` start fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pageext_core._lazy import lazy_attributes
from pageext_core.mm.callouts import NO_CALLOUTS, Callout, Callouts, HoldRule, HoldStats
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
from pageext_core.mm.pageflags import flags_mask, format_pageflags
from pageext_core.mm.printk import KernelLog

if TYPE_CHECKING:  # pragma: no cover
    from pageext_core.mm.buddy import HookError, PageBlock, PageKind
    from pageext_core.mm.hotplug import MemoryBlock
    from pageext_core.mm.invariants import InvariantError, check_invariants
    from pageext_core.mm.machine import Machine

# Names whose modules import numpy: loaded by ``__getattr__`` when first asked for.
_LAZY = {
    "HookError": "pageext_core.mm.buddy",
    "PageBlock": "pageext_core.mm.buddy",
    "PageKind": "pageext_core.mm.buddy",
    "InvariantError": "pageext_core.mm.invariants",
    "check_invariants": "pageext_core.mm.invariants",
    "Machine": "pageext_core.mm.machine",
    "MemoryBlock": "pageext_core.mm.hotplug",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


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
    "HoldRule",
    "HoldStats",
    "HookError",
    "HotplugError",
    "InvalidOrder",
    "InvalidPfn",
    "InvariantError",
    "KernelLog",
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
