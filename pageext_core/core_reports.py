"""The core's reports, as a built-in client registered like any other.

The reports of :data:`REPORTS` (``/proc/buddyinfo``, ``/proc/meminfo``,
``/proc/vmstat``, the page_ext layout, ``/proc/pagetypeinfo``, the extfrag
indices, ``/proc/zoneinfo`` and pageext's own ``pageext_meminfo``) are offered through the same
``pageext_report`` hook as the plugins' reports (datasette registers its
built-in features as ``DEFAULT_PLUGINS`` the same way), so there is one path
for every report: one name check, one owner, one listing.  This client is
always registered (``discovery.BUILTIN_CLIENTS``), cannot be disabled, owns
no page_ext bytes and is not listed by ``pageext plugins``.

Clients add to ``pagetypeinfo`` through the ``pageext_pagetypeinfo_section``
hook (page_owner's "Number of mixed blocks").  To add a core report, add a
row to ``REPORTS``: its functions take the booted ``PageExt``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pageext_core.hookspecs import hookimpl
from pageext_core.mm.zoneinfo import zoneinfo

if TYPE_CHECKING:
    from types import ModuleType

    from pageext_core.mm.machine import Machine
    from pageext_core.page_ext import PageExt


def _stats() -> ModuleType:
    """``pageext_core.mm.stats``, imported when a report is written (it needs numpy; a plan does not)."""
    from pageext_core.mm import stats

    return stats


def pagetypeinfo(pe: PageExt) -> str:
    """``/proc/pagetypeinfo`` with the enabled clients' per-node sections."""
    sections = pe.caller("pageext_pagetypeinfo_section")

    def section(machine: Machine, nid: int) -> str:
        return "".join(sections(machine=machine, nid=nid))

    from pageext_core.mm import stats

    return stats.pagetypeinfo(pe.machine, [section])


def layout_text(pe: PageExt) -> str:
    """The ``page_ext`` report: record size, tables and where each client's bytes are."""
    lay = pe.layout
    lines = [f"record size: {lay.record_size} bytes", f"page_ext bytes: {pe.nbytes}"]
    if pe.tables is not None:
        lines.append(f"tables: {len(pe.tables.tables)} ({'per section' if pe.tables.sparse else 'per node'}), "
                     f"{pe.tables.sim_pages} simulated pages")
    if lay.has_flags:
        lines.append("offset 0: flags word (8 bytes)")
    for c in lay.clients:
        bits = ", ".join(f"{n}=bit{b}" for n, b in c.flag_bits.items())
        lines.append(f"offset {c.offset}: {c.name} ({c.size} bytes)" + (f", flags {bits}" if bits else ""))
        for f in c.fields:
            shape = f"[{','.join(map(str, f.shape))}]" if f.shape else ""
            lines.append(f"    +{f.offset - c.offset:<4d} {f.name} {f.dtype_str}{shape}")
    return "\n".join(lines) + "\n"


# Listed in this order, before every client's reports.  Reading a report never
# changes the machine (no report drains the per-CPU lists), so the order is
# only the listing's.
REPORTS: dict[str, Callable[[PageExt], str]] = {
    "buddyinfo": lambda pe: _stats().buddyinfo(pe.machine),
    "meminfo": lambda pe: _stats().meminfo(pe.machine),
    "vmstat": lambda pe: _stats().vmstat(pe.machine),
    "page_ext": layout_text,
    "pagetypeinfo": pagetypeinfo,
    # /sys/kernel/debug/extfrag/: how unusable free memory is, and why allocations would fail
    "unusable_index": lambda pe: _stats().unusable_index(pe.machine),
    "extfrag_index": lambda pe: _stats().extfrag_index(pe.machine),
    # /proc/zoneinfo: watermarks, protection, zone sizes and each CPU's pageset
    "zoneinfo": lambda pe: zoneinfo(pe.machine),
    # pageext's own figures that /proc/meminfo does not print (per-CPU, guard, allocated, reserved pages)
    "pageext_meminfo": lambda pe: _stats().pageext_meminfo(pe.machine),
}


class CoreReports:
    """The built-in client named ``core``: the machine's own report files."""

    name = "core"

    @hookimpl
    def pageext_report(self, page_ext: PageExt) -> Mapping[str, Callable[[], str]]:
        return {name: _bound(fn, page_ext) for name, fn in REPORTS.items()}


def _bound(fn: Callable[[PageExt], str], pe: PageExt) -> Callable[[], str]:
    def report() -> str:
        return fn(pe)

    report.__name__ = getattr(fn, "__name__", "report")
    return report
