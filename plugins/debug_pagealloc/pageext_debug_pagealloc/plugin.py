"""The debug_pagealloc page_ext client (entry point ``debug_pagealloc`` in ``pageext.clients``)."""
from __future__ import annotations

from pageext_core import BootConfig, BootParam, hookimpl


class DebugPagealloc:
    """Poison and unmap freed pages.  Off unless ``debug_pagealloc=on``."""

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("debug_pagealloc", "bool", False, "unmap and poison freed pages", key="enabled")]

    @hookimpl
    def pageext_need(self, boot: BootConfig) -> bool:
        return bool(boot["debug_pagealloc"])
