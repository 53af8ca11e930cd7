"""The guard-page page_ext client (entry point ``guard`` in ``pageext.clients``).

With ``debug_pagealloc=on debug_guardpage_minorder=N``, every block that
the allocator's ``expand`` splits off below order N while serving a request
is held back as a guard block: off the free lists, not counted as free,
unmapped, so an overrun past an allocation (or an underrun before one)
faults at once.  When a freed block meets its guard buddy the guard is
cleared and the two merge, so guards never leak memory.

Per page, in page_ext: only the ``GUARD`` bit in the shared flags word, on
the head page.  The block's order is the page's "private" word, kept by the
machine (a held block's head state, which ``page_kind`` reads), as 6.12's
``__set_page_guard`` keeps it with ``set_page_private`` and the allocator
checks it before merging a guard with its buddy.  So a client that needs no
per-page field costs only its flag bit (with page_owner, the record stays
72 bytes).  A lookup by any pfn asks the machine for the block covering it.

The client's answer to a split or a merge depends only on the order, so it
declares it once as a ``HoldRule`` (``pageext_hold_rule``): hold every
piece below N, GUARD on its head, unmapped.  The allocator applies the rule
itself, setting and clearing GUARD in batches; no call per guard.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pageext_core import BootConfig, BootParam, Finding, FindingKinds, hookimpl
from pageext_core.mm import HoldRule, HoldStats
from pageext_core.mm.errors import PageFault
from pageext_guard import params

if TYPE_CHECKING:  # the allocator, the storage and ``report`` import numpy: imported where used, not to list the plugin
    from pageext_core import ClientTable, PageExt, PageExtView
    from pageext_core.mm import KernelLog, Machine
    from pageext_guard import report as _report

CLIENT = "guard"
FLAG = "GUARD"


class Guard:
    """Guard pages around allocations.  Off unless ``debug_pagealloc=on debug_guardpage_minorder=N`` (N > 0)."""

    def __init__(self) -> None:
        self.minorder = 0
        self.active = False
        self.boot_messages: list[str] = []
        self.hits: list[Finding] = []
        self.stats = HoldStats()  # guards made and cleared, counted by the allocator under our rule
        self._view: PageExtView | None = None
        self._machine: Machine | None = None
        self._page_ext: PageExt | None = None
        self._bit = 0
        self._stride = 0  # 8-byte words per record
        self._shift = 0
        self._words: list[tuple[memoryview, int] | None] = []  # per section, kept by the view

    @property
    def nr_created(self) -> int:
        """Guard blocks made so far."""
        return self.stats.created

    @property
    def nr_released(self) -> int:
        """Guard blocks cleared so far (a freed buddy met them)."""
        return self.stats.released

    # -- boot ------------------------------------------------------------------------------

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [params.boot_param()]

    @hookimpl
    def pageext_need(self, boot: BootConfig, log: KernelLog, machine: Machine) -> bool:
        """On only with a good N > 0 and debug_pagealloc on; says why in the log otherwise.

        The parser knows only the default geometry's bound; this machine's
        ``max_order`` is checked here, before anything is allocated.
        """
        n = int(boot[params.PARAM])
        if n > params.limit_for(machine.max_order):
            self._say(log, params.bad_value(str(n), params.limit_for(machine.max_order)), "err")
            n = 0
        elif boot.is_set(params.PARAM):
            self._say(log, params.setting(n), "info")
        self.minorder = n
        why_not = params.debug_pagealloc_missing(boot) if n else None
        if why_not is not None:  # a warning: the line asks for guard pages and gets none
            self._say(log, params.ignored_without_debug_pagealloc(n, why_not), "warn")
            return False
        return n > 0

    def _say(self, log: KernelLog, text: str, level: str) -> None:
        self.boot_messages.append(text)
        log.printk(text, level)

    @hookimpl
    def pageext_flags(self) -> list[str]:
        return [FLAG]

    @hookimpl
    def pageext_init(self, view: PageExtView, machine: Machine, page_ext: PageExt, log: KernelLog) -> None:
        self._view = view
        self._machine = machine
        self._page_ext = page_ext
        self._bit = view.flag(FLAG)
        if view.record_size % 8:
            raise RuntimeError("page_ext record is not made of 8-byte words although it has a flags word")
        self._stride = view.record_size // 8
        self._shift = view.section_shift
        self._words = view.per_section(self._words_of)
        self.active = self.minorder > 0

    def _words_of(self, t: ClientTable) -> tuple[memoryview, int]:
        """``(words, k)`` of a table: page ``p``'s flags word is ``words[k + p * stride]``."""
        assert t.words is not None
        return t.words, -t.base_pfn * self._stride

    @hookimpl
    def pageext_hold_rule(self) -> HoldRule | None:
        """Hold every piece ``expand`` splits off below minorder: GUARD on its head, its pages unmapped.

        The allocator keeps the order (the held block's page private, as
        6.12's ``__set_page_guard`` keeps it) and merges a freed buddy with
        a guard of the same order only, clearing GUARD, as
        ``page_is_buddy``/``clear_page_guard`` do.  The pages stay unmapped:
        they are free.  debug_pagealloc keeps free blocks unmapped already;
        the allocator unmaps any piece that is not.
        """
        if not self.active:
            return None
        return HoldRule(below_order=self.minorder, words=self._words, shift=self._shift, stride=self._stride,
                        bit=self._bit, stats=self.stats)

    # -- lookups --------------------------------------------------------------------------

    def guard_block(self, pfn: int) -> tuple[int, int] | None:
        """(head pfn, order) of the guard block covering ``pfn``, or None.

        The machine says which held block covers the pfn and its order (page
        private); the ``GUARD`` bit on its head says it is ours.
        """
        from pageext_core import NoExtension
        from pageext_core.mm import PageKind

        view, m = self._view, self._machine
        if view is None or m is None:
            return None
        kind, order, head = m.page_kind(pfn)
        if kind != PageKind.HELD:
            return None
        try:
            return (head, order) if view.test_flag(head, self._bit) else None
        except NoExtension:
            return None

    def _is_guard_head(self, pfn: int, order: int) -> bool:
        return self.guard_block(pfn) == (pfn, order)

    # -- faults ---------------------------------------------------------------------------------

    @hookimpl
    def pageext_on_fault(self, pfn: int, offset: int, write: bool) -> str | None:
        """Explain an access to a guard page and record the hit; None for any other page."""
        from pageext_guard import report as _report

        found = self.guard_block(pfn)
        if found is None:
            return None
        gpfn, gorder = found
        m = self._machine
        assert m is not None and self._page_ext is not None
        below = _report.neighbour(m, gpfn - 1, "below", self._is_guard_head)
        above = _report.neighbour(m, gpfn + (1 << gorder), "above", self._is_guard_head)
        buddy = _report.neighbour(m, gpfn ^ (1 << gorder), "buddy", self._is_guard_head)
        suspect = _report.pick_suspect(pfn, offset, gpfn, gorder, below, above, buddy)
        dump = self._page_ext.dump_page(suspect.pfn) if suspect is not None else None
        text = _report.hit_text(pfn, offset, write, gpfn, gorder, self.minorder, below, above, buddy, suspect, dump)
        full = str(PageFault(pfn, offset, write, text))  # the core logs the oops with this text
        headline = (f"guard page hit: {'write' if write else 'read'} at pfn {pfn:#x} offset {offset:#x}, "
                    f"order-{gorder} guard block at pfn {gpfn:#x}"
                    + (f", next to the allocated order-{suspect.order} block at pfn {suspect.pfn:#x}" if suspect else ""))
        self.hits.append(Finding(
            kind="guard-hit", pfn=pfn, time_ns=m.clock_ns, message=full, offset=offset, client=CLIENT,
            detail={
                "headline": headline,
                "write": write,
                "guard_pfn": gpfn,
                "guard_order": gorder,
                "minorder": self.minorder,
                "block_pfn": suspect.pfn if suspect else None,
                "block_order": suspect.order if suspect else None,
                "side": ("left" if suspect.side == "above" else "right") if suspect else None,
                "owner_dump": dump is not None,
            },
        ))
        return text

    # -- reports and results ------------------------------------------------------------------

    def counts(self) -> _report.GuardCounts:
        from pageext_guard import report as _report

        assert self._view is not None and self._machine is not None
        return _report.count_guards(self._view, self._machine)

    @hookimpl
    def pageext_report(self) -> Mapping[str, Callable[..., str]]:
        return {"guard": self._guard_report}

    def _guard_report(self) -> str:
        from pageext_guard import report as _report

        assert self._machine is not None
        return _report.guard_report(self._machine, self.counts(), self.minorder, self.hits,
                                    self.nr_created, self.nr_released)

    @hookimpl
    def pageext_summary(self) -> Mapping[str, Any]:
        from pageext_guard import report as _report

        assert self._machine is not None
        return _report.summary(self._machine, self.counts(), self.minorder, self.active, len(self.hits),
                               self.nr_created, self.nr_released)

    @hookimpl
    def pageext_findings(self) -> list[Finding]:
        return list(self.hits)

    @hookimpl
    def pageext_finding_kinds(self) -> FindingKinds:
        """A write just past (or before) an allocation that lands on a guard page faults as a guard hit."""
        return FindingKinds(reports=("guard-hit",), catches={"overrun": ("guard-hit",), "underrun": ("guard-hit",)})
