"""pageext: a simulated physical memory with Linux's page_ext debug framework.

``boot()`` gives a machine with its page_ext clients; ``hookimpl`` marks a
client's hooks (the contract is in ``pageext_core.hookspecs``).  Names are
imported on first use, so ``import pageext_core`` (and the CLI and the pytest
kit that live in this package) start fast.

What a plugin may use: the ``__all__`` of this package and of the few other
public modules listed in docs/writing-plugins.md, "What is public".
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pageext_core._lazy import lazy_attributes

__version__ = "0.1.0"

_EXPORTS = {
    "BootConfig": "pageext_core.bootparams",
    "BootParam": "pageext_core.bootparams",
    "kstrtobool": "pageext_core.bootparams",
    "parse_boot": "pageext_core.bootparams",
    "ENTRY_POINT_GROUP": "pageext_core.hookspecs",
    "hookimpl": "pageext_core.hookspecs",
    "hookspec": "pageext_core.hookspecs",
    "Layout": "pageext_core.layout",
    "compute_layout": "pageext_core.layout",
    "HoldRule": "pageext_core.mm",
    "HoldStats": "pageext_core.mm",
    "KernelLog": "pageext_core.mm",
    "Machine": "pageext_core.mm",
    "MachineConfig": "pageext_core.mm",
    "parse_gfp": "pageext_core.mm",
    "parse_size": "pageext_core.mm",
    "PageExt": "pageext_core.page_ext",
    "PlannedMachine": "pageext_core.page_ext",
    "boot": "pageext_core.page_ext",
    "PluginLoadError": "pageext_core.discovery",
    "ShippedPlugin": "pageext_core.discovery",
    "install_command": "pageext_core.discovery",
    "installed_names": "pageext_core.discovery",
    "shipped": "pageext_core.discovery",
    "Finding": "pageext_core.reports",
    "FindingKinds": "pageext_core.reports",
    "ClientTable": "pageext_core.storage",
    "NoExtension": "pageext_core.storage",
    "PageExtView": "pageext_core.storage",
    "check_conformance": "pageext_core.conformance",
    "ConformanceError": "pageext_core.conformance",
    "atomic_write": "pageext_core.reports",
    "atomic_writer": "pageext_core.reports",
    "local_cluster": "pageext_core.sweep",
    "connect_scheduler": "pageext_core.sweep",
    "SchedulerUnreachable": "pageext_core.sweep",
    "BadSchedulerAddress": "pageext_core.sweep",
    "write_diff_flamegraph": "pageext_core.pictures.flamegraph",
    "write_flamegraph": "pageext_core.pictures.flamegraph",
}

__all__ = [  # a literal, so that type checkers see the names as exported (the keys of _EXPORTS, tested)
    "ENTRY_POINT_GROUP",
    "BadSchedulerAddress",
    "BootConfig",
    "BootParam",
    "ClientTable",
    "ConformanceError",
    "Finding",
    "FindingKinds",
    "HoldRule",
    "HoldStats",
    "KernelLog",
    "Layout",
    "Machine",
    "MachineConfig",
    "NoExtension",
    "PageExt",
    "PageExtView",
    "PlannedMachine",
    "PluginLoadError",
    "SchedulerUnreachable",
    "ShippedPlugin",
    "atomic_write",
    "atomic_writer",
    "boot",
    "check_conformance",
    "compute_layout",
    "connect_scheduler",
    "hookimpl",
    "hookspec",
    "install_command",
    "installed_names",
    "kstrtobool",
    "local_cluster",
    "parse_boot",
    "parse_gfp",
    "parse_size",
    "shipped",
    "write_diff_flamegraph",
    "write_flamegraph",
]

if TYPE_CHECKING:  # pragma: no cover
    from pageext_core.bootparams import BootConfig, BootParam, kstrtobool, parse_boot
    from pageext_core.conformance import ConformanceError, check_conformance
    from pageext_core.discovery import PluginLoadError, ShippedPlugin, install_command, installed_names, shipped
    from pageext_core.hookspecs import ENTRY_POINT_GROUP, hookimpl, hookspec
    from pageext_core.layout import Layout, compute_layout
    from pageext_core.mm import HoldRule, HoldStats, KernelLog, Machine, MachineConfig, parse_gfp, parse_size
    from pageext_core.page_ext import PageExt, PlannedMachine, boot
    from pageext_core.pictures.flamegraph import write_diff_flamegraph, write_flamegraph
    from pageext_core.reports import Finding, FindingKinds, atomic_write, atomic_writer
    from pageext_core.storage import ClientTable, NoExtension, PageExtView
    from pageext_core.sweep import BadSchedulerAddress, SchedulerUnreachable, connect_scheduler, local_cluster


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())
