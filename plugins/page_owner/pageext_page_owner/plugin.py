"""The page_owner page_ext client (entry point ``page_owner`` in ``pageext.clients``)."""
from __future__ import annotations

from pageext_core import BootConfig, BootParam, hookimpl


class PageOwner:
    """Who allocated every page.  Off unless ``page_owner=on``."""

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam("page_owner", "bool", False, "track who allocated each page", key="enabled")]

    @hookimpl
    def pageext_need(self, boot: BootConfig) -> bool:
        return bool(boot["page_owner"])
