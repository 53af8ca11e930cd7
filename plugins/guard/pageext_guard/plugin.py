"""The guard-page page_ext client (entry point ``guard`` in ``pageext.clients``)."""
from __future__ import annotations

from pageext_core import BootConfig, BootParam, hookimpl


class Guard:
    """Guard pages around allocations.  Off unless ``debug_guardpage_minorder=N`` (N > 0)."""

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("debug_guardpage_minorder", "int", 0, "orders below N become guard blocks", key="minorder")]

    @hookimpl
    def pageext_need(self, boot: BootConfig) -> bool:
        return bool(boot["debug_guardpage_minorder"])
