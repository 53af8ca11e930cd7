"""The debug_pagealloc page_ext client (entry point ``debug_pagealloc`` in ``pageext.clients``).

Two mechanisms, as in 6.12 on x86_64 (``mem_debugging_and_hardening_init``):

- unmapping (``debug_pagealloc=on``): a freed block leaves the direct map and
  comes back on allocation, so any access to free memory faults at once;
- poisoning (``page_poison=on``, CONFIG_PAGE_POISONING): a freed block is
  filled with PAGE_POISON (0xaa) and checked when it is handed out again.
  x86_64 supports debug_pagealloc's unmapping, so ``debug_pagealloc=on``
  alone does not poison (only an arch without that support poisons
  instead).  Both on: freed pages are poisoned, then unmapped.

Per page it keeps two bits in the shared flags word and no other bytes:
``POISON`` (the page holds poison that must be checked, the 2014 series'
``PAGE_EXT_DEBUG_POISON``) and ``FREED`` (the page has been freed since
boot, which tells a use-after-free from a stray access to memory nobody was
ever given).

Hot path: ``on_free`` and ``on_alloc`` run on every allocator operation.
Order-0 blocks take a path of plain memoryview reads and writes on the
flags word (each table's words found with one list index, from the view's
``per_section`` list, which the storage keeps current); larger blocks take
numpy slices.  The poison check costs two array reads per page unless
the page has backing bytes or another fill byte, and only then does
``find_mismatch`` compare whole pages.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pageext_core import BootConfig, BootParam, Finding, FindingKinds, hookimpl
from pageext_core.mm.constants import PAGE_SIZE
from pageext_debug_pagealloc.report import (
    CORRUPTION,
    PAGE_POISON,
    SINGLE_BIT,
    STRAY_ACCESS,
    USE_AFTER_FREE,
    classify,
    corruption_report,
    fault_report,
)

if TYPE_CHECKING:  # numpy and the machine are imported by pageext_init: listing the plugin needs neither
    import numpy as np

    from pageext_core import ClientTable, PageExt, PageExtView
    from pageext_core.mm import KernelLog, Machine

__all__ = [
    "MODE_BOTH",
    "MODE_DEBUG_PAGEALLOC",
    "MODE_OFF",
    "MODE_PAGE_POISON",
    "DebugPagealloc",
    "boot_mode",
    "unmapping_off_reason",
]

MODE_OFF = "off"
MODE_DEBUG_PAGEALLOC = "debug_pagealloc"  # unmap only
MODE_PAGE_POISON = "page_poison"  # poison only
MODE_BOTH = "debug_pagealloc+page_poison"  # unmap and poison
RATELIMIT_KEY = "check_poison_mem"  # the kernel names suppressed callbacks after the function


def boot_mode(boot: BootConfig) -> str:
    """Which mechanisms this boot line asks for.

    ``debug_pagealloc=on`` unmaps, ``page_poison=on`` poisons, each on its
    own (6.12 on x86_64).  ``disable_debug_pagealloc`` (2014) wins over
    ``debug_pagealloc=on`` wherever it stands on the line: it existed to
    switch off a feature that was otherwise on.  It does not cancel
    ``page_poison=on``.  A parameter nobody owns counts as not given (a
    client that asks this rule may run next to a stand-in that owns only
    ``debug_pagealloc``).
    """
    unmap = bool(boot.get("debug_pagealloc") and not boot.get("disable_debug_pagealloc"))
    poison = bool(boot.get("page_poison"))
    if unmap and poison:
        return MODE_BOTH
    if unmap:
        return MODE_DEBUG_PAGEALLOC
    if poison:
        return MODE_PAGE_POISON
    return MODE_OFF


def unmapping_off_reason(boot: BootConfig) -> str | None:
    """Why this boot line does not unmap free pages, in words a user can act on; None when it does.

    The public form of ``boot_mode`` for clients that depend on unmapping
    (guard pages): they ask this rule rather than copy it.
    """
    if boot_mode(boot) in (MODE_DEBUG_PAGEALLOC, MODE_BOTH):
        return None
    if boot.get("disable_debug_pagealloc"):
        return "debug_pagealloc is off (disable_debug_pagealloc is given)"
    return "debug_pagealloc is off (add debug_pagealloc=on)"


class DebugPagealloc:
    """Unmap freed pages (``debug_pagealloc=on``), poison them (``page_poison=on``), or both."""

    name = "debug_pagealloc"  # the entry point's name, also when handed to ``boot(plugins=...)``

    def __init__(self) -> None:
        self.mode = MODE_OFF
        self.unmap = False
        self.poison = False
        self.findings: list[Finding] = []
        self.pages_poisoned = 0  # pages that became poison: free memory at init and hot-add, then every free
        self.pages_checked = 0  # poisoned pages handed out, i.e. checked (or proven clean)
        self.pages_compared = 0  # of those, pages whose bytes had to be compared
        self.poisoned_at_init = 0
        self.unmapped_at_init = 0
        self.reports_printed = 0
        self.reports_suppressed = 0
        self.disabled_by = ""

    # -- boot -------------------------------------------------------------------------

    @hookimpl
    def pageext_params(self) -> list[BootParam]:
        return [
            BootParam("debug_pagealloc", "bool", False,
                      "unmap freed pages from the direct map (x86_64: no poisoning; add page_poison=on)",
                      key="enabled"),
            BootParam("disable_debug_pagealloc", "flag", False,
                      "2014 spelling: switch debug_pagealloc off (wins over debug_pagealloc=on)", key="disable"),
            BootParam("page_poison", "bool", False,
                      "poison freed pages with 0xaa and check them on allocation, without unmapping",
                      key="poison"),
        ]

    @hookimpl
    def pageext_need(self, boot: BootConfig) -> bool:
        self.mode = boot_mode(boot)
        self.unmap = self.mode in (MODE_DEBUG_PAGEALLOC, MODE_BOTH)
        self.poison = self.mode in (MODE_PAGE_POISON, MODE_BOTH)
        if boot["debug_pagealloc"] and boot["disable_debug_pagealloc"]:
            self.disabled_by = "disable_debug_pagealloc"
        return self.mode != MODE_OFF

    @hookimpl
    def pageext_flags(self) -> list[str]:
        return ["POISON", "FREED"]

    @hookimpl
    def pageext_init(self, view: PageExtView, machine: Machine, page_ext: PageExt, log: KernelLog) -> None:
        import numpy as np

        self.view = view
        self.machine = machine
        self.page_ext = page_ext
        self.log = log
        self.contents = machine.contents
        machine.debug_pagealloc_enabled = self.unmap  # the kernel's debug_pagealloc_enabled(): the oops header says so
        self.POISON = view.flag("POISON")
        self.FREED = view.flag("FREED")
        # a freed page is marked FREED; with poisoning also POISON (to be checked on allocation)
        self._free_bits = (self.POISON if self.poison else 0) | self.FREED
        self._keep_on_alloc = ~self.POISON & 0xFFFFFFFFFFFFFFFF
        self._free_bits_np = np.uint64(self._free_bits)
        self._poison_np = np.uint64(self.POISON)
        self._keep_on_alloc_np = np.uint64(self._keep_on_alloc)
        self._and_reduce = np.bitwise_and.reduce
        if view.record_size % 8:
            raise RuntimeError("page_ext record is not made of 8-byte words although it has a flags word")
        self._stride = view.record_size // 8
        self._shift = view.section_shift
        self._words = view.per_section(self._words_of)
        # pageext's own lines (the kernel prints none for these switches): what this boot does.
        what = []
        if self.poison:
            what.append(f"free pages are poisoned with {PAGE_POISON:#04x} and checked on allocation")
        if self.unmap:
            what.append("free pages are unmapped from the direct map")
        else:
            what.append("pages stay mapped")
        log.info(f"pageext: {self.mode}: enabled: " + ", ".join(what))
        if self.disabled_by:
            log.info(f"pageext: debug_pagealloc: disabled by {self.disabled_by}")
        self.poisoned_at_init, self.unmapped_at_init = self._poison_free_range(0, machine.geometry.max_pfn)
        self.pages_poisoned = self.poisoned_at_init
        done = " and ".join(w for w, on in (("poisoned", self.poison), ("unmapped", self.unmap)) if on)
        n = max(self.poisoned_at_init, self.unmapped_at_init)
        log.info(f"pageext: {self.mode}: {done} {n} free pages ({n * PAGE_SIZE // 1024}K)")

    def _poison_free_range(self, lo: int, hi: int) -> tuple[int, int]:
        """Poison and/or unmap every free page in ``[lo, hi)``: vectorised, no backing created.

        Fills go per run of consecutive free pages (few at boot), flag bits per
        page_ext table, unmapping in one mask.  FREED is not set: these pages
        were never handed out.  Returns (pages poisoned, pages unmapped).
        """
        import numpy as np

        full = self.machine.free_pages_mask()
        if lo or hi != len(full):
            keep = np.zeros_like(full)
            keep[lo:hi] = full[lo:hi]
            full = keep
        n = int(np.count_nonzero(full))
        if self.poison:
            self._poison_mask(full)
        if self.unmap and n:
            self.contents.unmap_mask(full)  # after poisoning, as free_pages_prepare does
        return (n if self.poison else 0), (n if self.unmap else 0)

    def _poison_mask(self, full: np.ndarray) -> None:
        """Fill every page of ``full`` with poison and mark it POISON."""
        import numpy as np

        edges = np.diff(np.concatenate(([0], full.view(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for s, e in zip(starts.tolist(), ends.tolist()):
            self.contents.fill(s, e - s, PAGE_POISON)
        poison = np.uint64(self.POISON)
        for base, recs, _ in self.view.scan():
            sub = full[base : base + len(recs)]
            if not sub.any():
                continue
            _, _, words, first = self.view.locate(base)
            flags = np.asarray(words)[first : first + len(sub) * self._stride : self._stride]
            flags[sub] |= poison

    @hookimpl
    def pageext_on_online(self, start_pfn: int, nr_pages: int) -> None:
        """Hot-added memory: its free pages are poisoned (and unmapped) like boot memory."""
        done, _ = self._poison_free_range(start_pfn, start_pfn + nr_pages)
        self.pages_poisoned += done

    def _words_of(self, t: ClientTable) -> tuple[memoryview, int, np.ndarray]:
        """A table's flags words: ``(memoryview, k, numpy view)``; page ``p``'s word is ``k + p * stride``."""
        import numpy as np

        assert t.words is not None
        return t.words, -t.base_pfn * self._stride, np.asarray(t.words)

    def _locate(self, pfn: int) -> tuple[memoryview, int, np.ndarray]:
        """No table for ``pfn``: ``locate`` raises the ``NoExtension`` that says so."""
        self.view.locate(pfn)
        raise AssertionError("unreachable: a pfn with a table has a per_section entry")

    # -- hot path -------------------------------------------------------------------------

    @hookimpl(trylast=True)
    def pageext_on_free(self, pfn: int, order: int) -> None:
        """Mark, poison (page_poison) and unmap (debug_pagealloc) the block; last, so other clients still see a mapped page."""
        c = self.contents
        words, k, arr = self._words[pfn >> self._shift] or self._locate(pfn)
        i = k + pfn * self._stride
        if order:
            n = 1 << order
            seg = arr[i : i + n * self._stride : self._stride]
            seg |= self._free_bits_np
            if self.poison:
                if not self.contents.is_filled(pfn, n, PAGE_POISON):
                    c.fill(pfn, n, PAGE_POISON)
                self.pages_poisoned += n
            if self.unmap:
                c.unmap(pfn, n)
            return
        words[i] |= self._free_bits
        if self.poison:
            if not self.contents.is_filled(pfn, 1, PAGE_POISON):
                c.fill(pfn, 1, PAGE_POISON)
            self.pages_poisoned += 1
        if self.unmap:
            c.unmap(pfn, 1)

    @hookimpl(tryfirst=True)
    def pageext_on_alloc(self, pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
        """Map the block again and check its poison; first, before page_owner records the new owner."""
        c = self.contents
        words, k, arr = self._words[pfn >> self._shift] or self._locate(pfn)
        i = k + pfn * self._stride
        if not order:
            w = words[i]
            if w & self.POISON:
                words[i] = w & self._keep_on_alloc
                if not self.contents.is_filled(pfn, 1, PAGE_POISON):
                    self._verify(pfn, 1, None, 1)
                else:
                    self.pages_checked += 1
            if self.unmap:
                c.map(pfn, 1)
            return
        n = 1 << order
        seg = arr[i : i + n * self._stride : self._stride]
        # One reduction answers the usual case (every page poisoned); the
        # mask of poisoned pages is built only for a partly poisoned block.
        if self._and_reduce(seg) & self._poison_np:
            nr, which = n, None
        else:
            which = (seg & self._poison_np) != 0
            nr = int(which.sum())
        if nr:
            seg &= self._keep_on_alloc_np
            if not (self.contents.is_filled(pfn, n, PAGE_POISON) if which is None
                    else self.contents.is_filled(pfn, len(which), PAGE_POISON, which)):
                self._verify(pfn, n, which, nr)
            else:
                self.pages_checked += nr
        if self.unmap:
            c.map(pfn, n)

    def _verify(self, pfn: int, nr: int, which: np.ndarray | None, count: int) -> None:
        """Poisoned pages that no longer read as pure poison: compare them byte by byte.

        ``__GFP_ZERO`` blocks are checked too: the core zeroes after the
        call-outs, as the kernel checks poison before zeroing.
        """
        self.pages_checked += count
        self._check(pfn, nr, which)

    # -- reports ----------------------------------------------------------------------------

    def _check(self, pfn: int, nr: int, which: np.ndarray | None) -> None:
        """Compare the poisoned pages of a block with 0xaa and report every damaged one."""
        self.pages_compared += nr if which is None else int(which.sum())
        for p, first, last, data in self.contents.find_mismatch(pfn, nr, PAGE_POISON):
            if which is None or which[p - pfn]:
                self._report_corruption(p, first, last, data)

    def _report_corruption(self, pfn: int, first: int, last: int, data: bytes) -> None:
        m = self.machine
        kind = classify(first, last, data)
        text = corruption_report(m, self.page_ext, pfn, first, last, data, kind)
        printed = self.log.ratelimited(RATELIMIT_KEY, text, "err")
        if printed:
            self.reports_printed += 1
        else:
            self.reports_suppressed += 1
        bad = len(data) - data.count(PAGE_POISON)
        self.findings.append(Finding(kind=kind, pfn=pfn, time_ns=m.clock_ns, message=text, offset=first,
                                     length=last - first + 1, detail={
            "first_bad": first, "last_bad": last, "bad_bytes": bad, "printed": printed,
        }))

    @hookimpl
    def pageext_on_fault(self, pfn: int, offset: int, write: bool) -> str | None:
        """Explain a fault on a page this client unmapped: only pages that are free right now."""
        from pageext_core.mm import PageKind

        kind, order, head = self.machine.page_kind(pfn)
        if not kind.free:
            return None
        freed = bool(int(self.view.flags_of(pfn)[0]) & self.FREED)
        fkind = USE_AFTER_FREE if freed else STRAY_ACCESS
        text = fault_report(self.machine, self.page_ext, pfn, offset, write, fkind)  # the core logs the oops
        self.findings.append(Finding(kind=fkind, pfn=pfn, time_ns=self.machine.clock_ns, message=text,
                                     offset=offset, detail={
                                         "write": write, "block_head": head, "block_order": order,
                                         "on_pcp_list": kind == PageKind.PCP,
                                     }))
        return text

    @hookimpl
    def pageext_report(self) -> dict[str, Callable[..., str]]:
        return {"debug_pagealloc": self.report_text}

    def report_text(self) -> str:
        """Header with mode and counts, then every finding as the kernel printed it."""
        counts = Counter(f.kind for f in self.findings)
        by_kind = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        mode = {MODE_DEBUG_PAGEALLOC: "debug_pagealloc=on: unmap freed pages, no poisoning",
                MODE_PAGE_POISON: "page_poison=on: poison freed pages, no unmapping",
                MODE_BOTH: "debug_pagealloc=on page_poison=on: poison and unmap freed pages"}[self.mode]
        out = [
            f"mode: {mode}",
            f"findings: {len(self.findings)}" + (f" ({by_kind})" if by_kind else ""),
            f"corruption reports: {self.reports_printed} printed, {self.reports_suppressed} suppressed by rate limiting",
            f"pages poisoned: {self.pages_poisoned}, checked: {self.pages_checked}, "
            f"compared byte by byte: {self.pages_compared}",
            f"pages unmapped now: {self.contents.nr_unmapped}",
        ]
        for f in self.findings:
            out.append("")
            if f.detail.get("printed") is False:
                out.append("(not printed: rate limited)")
            out.append(f.message)
        return "\n".join(out) + "\n"

    @hookimpl
    def pageext_summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "unmap": self.unmap,
            "poison": self.poison,
            "findings": dict(sorted(Counter(f.kind for f in self.findings).items())),
            "pages_poisoned": self.pages_poisoned,
            "pages_checked": self.pages_checked,
            "pages_compared": self.pages_compared,
            "poisoned_at_init": self.poisoned_at_init,
            "unmapped_at_init": self.unmapped_at_init,
            "reports_printed": self.reports_printed,
            "reports_suppressed": self.reports_suppressed,
            "unmapped_pages": self.contents.nr_unmapped,
        }

    @hookimpl
    def pageext_findings(self) -> list[Finding]:
        return list(self.findings)

    @hookimpl
    def pageext_finding_kinds(self) -> FindingKinds:
        """What this boot's mechanisms catch, and as what.

        Unmapping (``debug_pagealloc=on``): a write to a free page faults at
        once, so it never lands; a page freed before is a use-after-free, one
        never handed out a stray access (an overrun onto a free page may be
        either).  Poison (``page_poison=on``): a write that lands in a free
        page is found as damaged poison when the page is handed out again,
        and so are flipped bits and corruption in a free page, which only
        poisoning can see: with ``debug_pagealloc=on`` alone they go unfound.
        """
        reports: list[str] = []
        catches: dict[str, tuple[str, ...]] = {}
        if self.unmap:
            reports += [USE_AFTER_FREE, STRAY_ACCESS]
            catches |= {"use_after_free": (USE_AFTER_FREE,), "stray_write": (STRAY_ACCESS,),
                        "overrun": (USE_AFTER_FREE, STRAY_ACCESS), "underrun": (USE_AFTER_FREE, STRAY_ACCESS)}
        if self.poison:
            reports += [SINGLE_BIT, CORRUPTION]
            catches |= {"bit_flip": (SINGLE_BIT,), "corruption": (CORRUPTION,)}
            for bug in ("use_after_free", "stray_write", "overrun", "underrun"):
                catches.setdefault(bug, (CORRUPTION,))
        return FindingKinds(reports=tuple(reports), catches=catches)
