"""The page_owner page_ext client (entry point ``page_owner`` in ``pageext.clients``).

Who allocated every page, and who freed it: mainline's page_owner.  Off
unless ``page_owner=on``; then every page has a 64-byte record and the
``OWNER`` / ``OWNER_ALLOCATED`` flag bits.  The allocator events live in
``record``, formatting in ``dump``, aggregate reports in ``reports``.

This module imports only what registering the client needs: numpy and the
modules that use it (``scan``, ``early``, ``reports``, ``dump``) are
imported by the hooks that run once the client is enabled, so listing the
plugin (``pageext plugins``) stays fast.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pageext_core import BootConfig, BootParam, hookimpl
from pageext_page_owner.params import PARAMS
from pageext_page_owner.record import FIELDS, FLAGS, OwnerEvents, OwnerRecord

if TYPE_CHECKING:
    from pageext_core import PageExtView
    from pageext_core.mm import KernelLog, Machine


class PageOwner(OwnerEvents):
    """Who allocated every page.  Off unless ``page_owner=on``.

    Besides the hooks, the object offers the dump file's record-by-record
    read (``read_record``) and ``record(pfn)``; get it with
    ``page_ext.plugin("page_owner")``.
    """

    name = "page_owner"

    def __init__(self) -> None:
        self.view: PageExtView | None = None

    # -- boot ------------------------------------------------------------------------

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return list(PARAMS)

    @hookimpl
    def pageext_need(self, boot: BootConfig) -> bool:
        return bool(boot["page_owner"])

    @hookimpl
    def pageext_fields(self) -> Mapping[str, str]:
        return FIELDS

    @hookimpl
    def pageext_flags(self) -> tuple[str, ...]:
        return FLAGS

    @hookimpl
    def pageext_init(self, view: PageExtView, machine: Machine, boot: BootConfig, log: KernelLog) -> None:
        from pageext_page_owner.dump import Dumper
        from pageext_page_owner.early import EARLY_STACK, init_early_records, log_early_allocated

        self.view = view
        self.machine = machine
        self.stack_depth = int(boot["page_owner_stack_depth"])
        machine.set_stack_depth(self.stack_depth)
        self.bind(view, machine)
        self.dumper = Dumper(machine)
        # Everything in use so far has no record (the tables themselves, at least):
        # init_pages_in_zone gives each such page an order-0 record with the early stack.
        self.early_handle = machine.depot.save(EARLY_STACK[: self.stack_depth])
        self.early = init_early_records(machine, view, self._both, self.early_handle)
        log_early_allocated(machine, log, self.early)
        self._allocs_at_init = machine.nr_allocs
        self._frees_at_init = machine.nr_frees

    def _ready(self) -> PageExtView:
        if self.view is None:
            raise RuntimeError("page_owner is not enabled on this boot (boot with page_owner=on)")
        return self.view

    # -- one page ------------------------------------------------------------------------

    def record(self, pfn: int) -> OwnerRecord | None:
        """The page's record (set or not), or None when the pfn has no page_ext."""
        rec = self._ready().lookup(pfn)
        return None if rec is None else OwnerRecord(pfn, *rec.tolist())

    @hookimpl
    def pageext_dump_page(self, pfn: int) -> str | None:
        """page_owner's part of a bad page's report, in ``dump_page_owner`` wording (no final newline).

        Other clients do not call this hook directly: they call
        ``page_ext.dump_page(pfn)`` when they report a bad page, which
        includes this text when page_owner is on.  Lines: ``page_owner tracks the page
        as allocated`` (or ``as freed``), ``page last allocated via order
        ...``, the allocation stack, ``page last free pid %d tgid %d stack
        trace:`` and the free stack; ``page_owner info is not present
        (never set?)`` for a page never recorded.
        """
        view = self._ready()
        rec = self.record(pfn)
        if rec is None:
            return self.dumper.owner_dump(None, False, False)
        bits = int(view.flags_of(pfn)[0])
        return self.dumper.owner_dump(rec, bool(bits & self._owner), bool(bits & self._allocated))

    # -- the dump file ---------------------------------------------------------------------

    def _records(self, start: int, fmt: str) -> Iterator[tuple[int, str]]:
        """(pfn, text) of each record at or after ``start``; the one path both readers use.

        Read-only.  The kernel's reader drains the per-CPU lists first; what
        it prints does not depend on that drain (see ``scan``), so we do not.
        """
        from pageext_page_owner import scan

        view = self._ready()
        formatter = self.dumper.formatter(fmt)
        for rec in scan.iter_heads(view, self._allocated, max(int(start), 0)):
            yield rec.pfn, formatter(rec)

    def read_record(self, pos: int = 0, format: str = "current") -> tuple[str, int | None]:
        """One ``read()`` of the dump file: the first record at or after pfn ``pos``.

        Returns ``(text, next_pos)``, ``next_pos`` being the pfn after the
        one printed; at the end, ``("", None)``.
        """
        for pfn, text in self._records(pos, format):
            return text, pfn + 1
        return "", None

    def dump(self, format: str = "current") -> Iterator[str]:
        """The whole dump file, record by record (the ``page_owner`` report)."""
        for _, text in self._records(0, format):
            yield text

    # -- reports -------------------------------------------------------------------------------

    @hookimpl
    def pageext_report(self) -> Mapping[str, Callable[..., Any]]:
        return {
            "page_owner": self.dump,
            "page_owner_stacks/show_stacks": self.show_stacks,
            "page_owner_leaks": self.leaks,
        }

    def show_stacks(self, count_threshold: Any = 0) -> str:
        """``page_owner_stacks/show_stacks``; stacks with fewer base pages than the threshold are hidden."""
        from pageext_page_owner.reports import show_stacks

        return show_stacks(self._ready(), self._allocated, self.dumper, count_threshold, self.early_handle)

    def leaks(self) -> str:
        """What is still allocated, grouped by allocation stack, largest first."""
        from pageext_page_owner.reports import leaks

        return leaks(self._ready(), self._allocated, self.dumper, self.early_handle)

    @hookimpl
    def pageext_pagetypeinfo_section(self, machine: Machine, nid: int) -> str:
        """pagetypeinfo's "Number of mixed blocks" for one node: the kernel's figures after its drain, read-only."""
        from pageext_page_owner.reports import mixed_blocks_section

        return mixed_blocks_section(machine, self._ready(), self._allocated, nid)

    @hookimpl
    def pageext_summary(self) -> Mapping[str, Any]:
        import numpy as np

        from pageext_page_owner import scan

        view = self._ready()
        m = self.machine
        alloc = scan.allocated_columns(view, self._allocated, ["handle"])
        heads = scan.head_columns(view, self._allocated, [])
        with_record = scan.count_flagged(view, self._owner)
        return {
            "stack_depth": self.stack_depth,
            "record_bytes": view.size,
            "allocated_records": len(heads["pfn"]),
            "allocated_pages": len(alloc["pfn"]),
            "pages_with_record": with_record,
            "freed_pages_with_record": with_record - len(alloc["pfn"]),
            "distinct_alloc_stacks": len(np.unique(alloc["handle"])),
            "depot_stacks": len(m.depot),
            "depot_bytes": m.depot.nbytes,
            "early_allocated_pages": int(self.early.sum()),
            "early_allocated_by_zone": {
                f"Node {z.node}, zone {z.name}": int(self.early[z.index]) for z in m.populated_zones()
            },
            "allocations_recorded": m.nr_allocs - self._allocs_at_init,
            "frees_recorded": m.nr_frees - self._frees_at_init,
            "split_pages": self.split_pages,
            "migrations": self.migrations,
        }
