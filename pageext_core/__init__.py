"""pageext: a simulated physical memory with Linux's page_ext debug framework.

``boot()`` gives a machine with its page_ext clients; ``hookimpl`` marks a
client's hooks (the contract is in ``pageext_core.hookspecs``).
"""
from pageext_core.bootparams import BootConfig, BootParam, kstrtobool, parse_boot
from pageext_core.hookspecs import ENTRY_POINT_GROUP, hookimpl, hookspec
from pageext_core.layout import Layout, compute_layout
from pageext_core.mm import Machine, MachineConfig, parse_gfp, parse_size
from pageext_core.page_ext import PageExt, boot
from pageext_core.registry import PluginLoadError
from pageext_core.reports import Finding
from pageext_core.storage import NoExtension, PageExtView

__version__ = "0.1.0"

__all__ = [
    "BootConfig", "BootParam", "ENTRY_POINT_GROUP", "Finding", "Layout", "Machine", "MachineConfig",
    "NoExtension", "PageExt", "PageExtView", "PluginLoadError", "boot", "compute_layout", "hookimpl",
    "hookspec", "kstrtobool", "parse_boot", "parse_gfp", "parse_size",
]
