"""Helpers shared by the page_ext framework tests (tests/framework); ``from fwsupport import ...``.

The tests use their own small clients, handed to ``boot(..., plugins=[...],
autoload=False)``, so they do not depend on the real plugins; only the
discovery tests install throwaway distributions (see ``test_discovery.py``).

``TINY`` is a machine whose layout is easy to work out by hand: 64 MiB, no
x86 holes, nothing reserved, so pfns [0, 16384) are all free RAM in one
section (section 0: pfns [0, 32768), partly present).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pageext_core as pc
from pageext_core import BootParam, hookimpl
from pageext_core.mm import MachineConfig, MiB

TINY = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
PAGES_PER_SECTION = 32768  # 128 MiB sections of 4 KiB pages (x86_64)


class Fixed:
    """A client that is needed (or not) with the fields and flags it is given.

    Keeps the view ``pageext_init`` hands it; counts every boot hook it is asked.
    """

    def __init__(self, fields: Mapping[str, Any] | None = None, flags: Sequence[str] = (), need: bool = True) -> None:
        self._fields = dict(fields or {})
        self._flags = list(flags)
        self._need = need
        self.view: pc.PageExtView | None = None
        self.asked: list[str] = []

    @hookimpl
    def pageext_need(self) -> bool:
        self.asked.append("need")
        return self._need

    @hookimpl
    def pageext_fields(self) -> Mapping[str, Any]:
        self.asked.append("fields")
        return self._fields

    @hookimpl
    def pageext_flags(self) -> Sequence[str]:
        self.asked.append("flags")
        return self._flags

    @hookimpl
    def pageext_init(self, view: pc.PageExtView) -> None:
        self.asked.append("init")
        self.view = view


class Counter(Fixed):
    """A client that records every hot-path event it sees, in ``events``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple] = []

    @hookimpl
    def pageext_on_alloc(self, pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
        self.events.append(("alloc", pfn, order))

    @hookimpl
    def pageext_on_free(self, pfn: int, order: int) -> None:
        self.events.append(("free", pfn, order))


class Switch:
    """A client owning one boolean boot parameter that decides ``need``."""

    def __init__(self, param: str, fields: Mapping[str, Any] | None = None, key: str | None = None) -> None:
        self.param = param
        self.key = key
        self.fields = dict(fields or {"v": "u4"})

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [BootParam(self.param, "bool", False, f"turn {self.param} on", key=self.key)]

    @hookimpl
    def pageext_need(self, boot: pc.BootConfig) -> bool:
        return bool(boot[self.param])

    @hookimpl
    def pageext_fields(self) -> Mapping[str, Any]:
        return self.fields


def boot_with(*clients: tuple[str, Any], cmdline: str = "", config: MachineConfig = TINY, **kwargs: Any) -> pc.PageExt:
    """Boot ``config`` with exactly these ``(name, client)`` pairs and no installed plugin."""
    return pc.boot(config, cmdline, plugins=list(clients), autoload=False, **kwargs)


def log_lines(pe: pc.PageExt) -> list[str]:
    return [text for _, _, text in pe.machine.log.lines]


def free_total(m: pc.Machine) -> int:
    """Pages free in the buddy or on per-CPU lists."""
    return m.nr_free_pages + m.nr_pcp_pages
