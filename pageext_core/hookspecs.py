"""The page_ext client contract: every hook a client may implement.

This is the first file a plugin author reads.  A client is a class (one
instance per boot; keep your state on ``self``) or a module, registered in
the ``pageext.clients`` entry-point group or passed to ``pageext_core.boot``.
Mark implementations with ``pageext_core.hookimpl``.  As with every pluggy
hook, an implementation may accept any subset of the arguments listed, by
name.  ``tryfirst``/``trylast`` order a client's implementation among the
others'; hook wrappers are refused when the client is registered
(``pageext_core.page_ext._register``; ``pageext_core.dispatch`` says why).

Phases, in the order they happen at boot:

1. ``pageext_params``  — the boot parameters a client owns (asked of every client)
2. ``pageext_need``    — is the client enabled for this boot? (asked of every client)
3. ``pageext_fields`` / ``pageext_flags`` — its per-page bytes and flag bits (enabled clients)
4. ``pageext_init``    — once, after the tables exist, with the client's own view
5. event hooks         — resolved once at boot into plain call lists (hot path)
6. reports, summary, findings, ``dump_page`` — on demand

Every hook but the event hooks is called through pluggy, one client at a
time where the answer is the client's own; ``PAGEEXT_TRACE_PLUGINS=1``
prints those calls.  Hooks of clients that are not enabled are never
called, and with no client enabled the allocator makes no call at all.
The core's own reports (buddyinfo, pagetypeinfo, ...) come from a built-in
client, ``pageext_core.core_reports``, through ``pageext_report`` too.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import pluggy

if TYPE_CHECKING:
    from pageext_core.bootparams import BootConfig, BootParam
    from pageext_core.mm.callouts import HoldRule
    from pageext_core.mm.machine import Machine
    from pageext_core.mm.printk import KernelLog
    from pageext_core.page_ext import PageExt
    from pageext_core.reports import Finding, FindingKinds
    from pageext_core.storage import PageExtView

PROJECT = "pageext"
ENTRY_POINT_GROUP = "pageext.clients"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

FieldSpec = Union[str, "tuple[str, int | tuple[int, ...]]"]
"""A field's numpy dtype string (``"u4"``, ``"S16"``) or ``(dtype, shape)``."""

ReportFn = Callable[..., "str | Sequence[str]"]
"""A report: called with its keyword parameters, returns text (or text chunks)."""


# -- 1-3. boot: parameters, need, layout ------------------------------------------------


@hookspec
def pageext_params() -> Sequence[BootParam]:
    """Boot parameters this client owns.

    Called once per boot for every installed client, before the command line
    is parsed.  Return ``BootParam`` objects (name, type, default, one-line
    doc, optional validator with the kernel's message).  A parameter no
    client owns gets the kernel's "Unknown kernel command line parameters"
    warning.  Not on the hot path.
    """


@hookspec
def pageext_need(boot: BootConfig, log: KernelLog, machine: Machine) -> bool:
    """Is this client enabled for this boot?

    Asked once per client, before anything is allocated; the answer is
    attributed to the client (never merged with others').  Return ``False``
    and the client costs no memory and no time.  Usually
    ``return boot["my_param"]``; ``log`` lets it say why it declines (the
    kernel's "... disabled" lines); ``machine`` (booted up to memblock:
    geometry known, nothing allocated yet) lets it check a parameter against
    the machine (e.g. an order against ``max_order``); under ``pageext
    plugins``, which boots nothing, it is a ``PlannedMachine`` (``config``,
    ``geometry``, ``max_order``, ``pageblock_order``, ``log``).  Not on the
    hot path.
    """


@hookspec
def pageext_fields(boot: BootConfig) -> Mapping[str, FieldSpec]:
    """Per-page bytes this client stores: field name → dtype (or ``(dtype, shape)``).

    Asked only of enabled clients.  Fields are laid out in the order given,
    each at its natural alignment; an empty mapping is fine for clients that
    only use flag bits.  Not on the hot path.
    """


@hookspec
def pageext_flags(boot: BootConfig) -> Sequence[str]:
    """Names of the bits this client wants in the shared 8-byte flags word.

    Asked only of enabled clients; bits are handed out at boot in client
    order.  The flags word exists only if some enabled client asks for a bit.
    Not on the hot path.
    """


# -- 4. init ------------------------------------------------------------------------------


@hookspec
def pageext_init(view: PageExtView, machine: Machine, boot: BootConfig,
                 page_ext: PageExt, log: KernelLog) -> None:
    """Called once after the page_ext tables exist, for enabled clients only.

    ``view`` reads and writes this client's own fields and flag bits (one
    pfn, a whole block, or vectorised scans); keep it on ``self``.
    ``page_ext`` gives access to the other clients' services
    (``page_ext.dump_page(pfn)`` when you report a bad page).  A raise stops
    the boot, naming the client: its memory is laid out by then.
    Pages allocated before this point (boot-time allocations) have no record.
    Not on the hot path.
    """


# -- 5. events (hot path) -------------------------------------------------------------------


@hookspec
def pageext_on_alloc(pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
    """After an allocation of 2^order pages at ``pfn`` completed.

    HOT PATH: called on every allocation, directly (not through pluggy).
    A raise undoes the allocation and reports the client, hook and pfn.
    """


@hookspec
def pageext_on_free(pfn: int, order: int) -> None:
    """Before a free of 2^order pages at ``pfn`` is applied.

    HOT PATH.  The pages still hold their contents and records.  A raise
    leaves the block allocated and reports the client, hook and pfn.
    """


@hookspec
def pageext_on_split(pfn: int, order: int, migratetype: int) -> bool:
    """``expand`` split off the 2^order block at ``pfn`` while serving a request.

    Return True to hold the block (it stays off the free lists, uncounted as
    free, until a freed buddy meets it: ``pageext_on_merge``).  Guard pages
    are built on this.  HOT PATH on splits; the first client to hold wins.
    """


@hookspec
def pageext_hold_rule() -> HoldRule | None:
    """A fixed rule for holding split-off blocks, which the allocator applies itself.

    Asked once at the end of boot (after ``pageext_init``) of enabled
    clients.  A client whose ``pageext_on_split`` answer depends only on the
    order ("hold every piece below order N") and whose ``pageext_on_merge``
    only clears its flag bit returns a ``HoldRule`` (its bit, its flags
    words per section, N) instead of implementing those two hooks: the
    allocator then holds and releases such blocks with no call per block,
    setting and clearing the bit in batches.  At most one client may
    declare one; it is applied before the split call-outs.  Not on the hot
    path (the rule is).
    """


@hookspec
def pageext_on_merge(pfn: int, order: int) -> bool:
    """A freed block meets the held 2^order block at ``pfn`` (its buddy).

    Return True to release it so the two merge, as the kernel clears a guard
    page.  Called only for blocks a client held.  HOT PATH on frees.
    """


@hookspec
def pageext_on_split_page(pfn: int, order: int) -> None:
    """An allocated order-n block became 2^n order-0 pages (``split_page``).

    Per-page records should take the new order.  Not on the hot path.
    """


@hookspec
def pageext_on_migrate(old_pfn: int, new_pfn: int, order: int, reason: str) -> None:
    """A block's contents moved from ``old_pfn`` to the freshly allocated ``new_pfn``.

    Called after the new block's ``on_alloc`` and before the old block is
    freed; page_owner copies its record here and notes the reason.
    """


@hookspec
def pageext_on_fault(pfn: int, offset: int, write: bool) -> str | None:
    """An access hit an unmapped page: return text for the fault report, or None.

    debug_pagealloc says the page is free, guard says it is a guard page;
    the texts of all enabled clients are joined into the ``PageFault``.
    """


# -- 6. reports, services, results ---------------------------------------------------------------


@hookspec
def pageext_report(page_ext: PageExt) -> Mapping[str, ReportFn]:
    """The named reports this client offers (the debugfs files of this world).

    Names may nest with ``/`` (``page_owner_stacks/show_stacks``); each
    function is called on demand with its keyword parameters and returns
    text.  A name another client (or the core) already offers is an error.
    Asked of enabled clients only, once per boot, the first time a report
    is asked for.
    """


@hookspec
def pageext_dump_page(pfn: int) -> str | None:
    """Lines this client adds to the report of a bad page, or None.

    The kernel's ``dump_page`` prints the page and then ``dump_page_owner``;
    here any client may add its account.  A client reporting a bad page
    calls ``page_ext.dump_page(pfn)``, which joins the enabled clients'
    texts in call order (page_owner's "page last allocated via ..." lines),
    or gives None when no client has anything to say.  Must not change the
    machine.
    """


@hookspec
def pageext_pagetypeinfo_section(machine: Machine, nid: int) -> str | None:
    """Text this client adds to ``pagetypeinfo`` after each node's block counts, or None.

    Called by the built-in core reports for each node with memory; page_owner
    adds "Number of mixed blocks" this way, as the kernel's
    ``pagetypeinfo_showmixedcount`` does.  Must not change the machine.
    """


@hookspec
def pageext_summary() -> Mapping[str, Any]:
    """Figures for ``summary.json`` (plain JSON data), under the client's name."""


@hookspec
def pageext_findings() -> Sequence[Finding]:
    """Bugs this client caught (use-after-free, corruption, guard hits).

    Any finding makes ``pageext run --fail-on-findings`` exit 1.
    """


@hookspec
def pageext_finding_kinds() -> FindingKinds:
    """The finding kinds this client reports, and which planted bugs each catches.

    Return a ``FindingKinds``: ``reports`` lists every ``Finding.kind`` the
    client may produce; ``catches`` maps a planted bug kind of the session
    workload to the finding kinds by which this client, as booted, reports
    it (debug_pagealloc catches a use-after-free as a fault with
    ``debug_pagealloc=on`` but as ``memory-corruption`` at the next
    allocation with ``page_poison=on`` alone, so the answer may depend on the
    boot line: that is why this is a hook, asked after ``pageext_init``, and
    not a class attribute).  The session runner matches planted bugs to
    findings from these declarations alone; a client that does not
    implement it catches nothing there.  Asked of enabled clients only, once
    per session.  Not on the hot path.
    """


# -- memory hotplug: hot-added memory (called once per onlined block, not per page) -----------


@hookspec
def pageext_on_online(start_pfn: int, nr_pages: int) -> None:
    """A memory block came online: ``[start_pfn, start_pfn + nr_pages)``, its free pages now on the buddy lists.

    Called after the page_ext tables covering it exist and its pages were
    freed, without per-page call-outs (as at boot, where ``pageext_init``
    sees the free memory).  debug_pagealloc poisons the new free pages here.
    A client needs no hook to follow the tables: its view's ``per_section``
    lists are kept current by the storage.
    """
