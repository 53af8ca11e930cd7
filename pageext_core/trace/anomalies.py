"""The live set of a trace: which blocks are allocated, and the real-trace facts that break the pairing.

A real trace starts in the middle of a machine's life and may lose events,
so allocations and frees do not always pair up.  These are facts to count
and report, not errors; each has one rule that keeps the live set
consistent (one owner per pfn, no overlapping blocks at the same head):

* ``free-before-trace``: a free of a pfn the trace never saw allocated (the
  page was allocated before tracing began).  Nothing is removed.
* ``lost-free``: an allocation at a pfn that is still live (its free was
  lost).  The old allocation is taken as freed at that moment, then the new
  one is recorded.
* ``order-mismatch``: a free whose order differs from the allocation's, or
  a free inside a live block rather than at its head.  A smaller free splits
  the block (what ``split_page`` and ``alloc_pages_exact`` do): the freed
  part goes, the rest stays live as aligned power-of-two blocks with the
  same owner.  A larger free removes every live block it covers.

Storage: a dict from head pfn to one packed int (order, migratetype, gfp,
stack id).  It is bounded by live blocks, never by trace length; a dict
rather than a numpy array because a trace gives no pfn range up front and
the live set of a real trace is a small, scattered part of memory.  An
allocation overlapping a live block at a *different* head is not looked for
(it would cost ten lookups per allocation); the machine replay catches
those, since the simulated buddy allocator refuses them.
"""
from __future__ import annotations

from collections.abc import Iterable

from pageext_core.trace.events import ALLOC, FREE, FREE_BATCHED, TraceEvent

FREE_BEFORE_TRACE = "free-before-trace"
LOST_FREE = "lost-free"
ORDER_MISMATCH = "order-mismatch"
ANOMALIES = (FREE_BEFORE_TRACE, LOST_FREE, ORDER_MISMATCH)
MAX_ORDER = 10

_ORDER_BITS = 0x1F
_MT_SHIFT = 5
_GFP_SHIFT = 9
_STACK_SHIFT = 41


def _pack(order: int, mt: int, gfp: int, stack: int) -> int:
    return ((stack + 1) << _STACK_SHIFT) | ((gfp & 0xFFFFFFFF) << _GFP_SHIFT) | (((mt + 1) & 0xF) << _MT_SHIFT) | order


def unpack(word: int) -> tuple[int, int, int, int]:
    """(order, migratetype, gfp, stack) of a packed live-set entry."""
    return (word & _ORDER_BITS, ((word >> _MT_SHIFT) & 0xF) - 1, (word >> _GFP_SHIFT) & 0xFFFFFFFF,
            (word >> _STACK_SHIFT) - 1)


def aligned_blocks(start: int, end: int) -> list[tuple[int, int]]:
    """Cover [start, end) with the fewest aligned power-of-two blocks: [(pfn, order), ...]."""
    out = []
    while start < end:
        order = (start & -start).bit_length() - 1 if start else MAX_ORDER
        order = min(order, MAX_ORDER)
        while (1 << order) > end - start:
            order -= 1
        out.append((start, order))
        start += 1 << order
    return out


class LiveSet:
    """Allocated blocks of a trace so far, with the anomaly counts and first examples."""

    def __init__(self, max_examples: int = 5) -> None:
        self.live: dict[int, int] = {}
        self.counts: dict[str, int] = {a: 0 for a in ANOMALIES}
        self.examples: dict[str, list[str]] = {a: [] for a in ANOMALIES}
        self.max_examples = max_examples

    def __len__(self) -> int:
        return len(self.live)

    def __contains__(self, pfn: int) -> bool:
        return pfn in self.live

    def get(self, pfn: int) -> tuple[int, int, int, int] | None:
        """(order, migratetype, gfp, stack) of the live block at this head pfn, or None."""
        w = self.live.get(pfn)
        return None if w is None else unpack(w)

    def live_pages(self) -> int:
        return sum(1 << (w & _ORDER_BITS) for w in self.live.values())

    def _note(self, what: str, ts_ns: int, text: str) -> None:
        self.counts[what] += 1
        ex = self.examples[what]
        if len(ex) < self.max_examples:
            ex.append(f"at {ts_ns // 1_000_000_000}.{ts_ns % 1_000_000_000 // 1000:06d}: {text}" if ts_ns >= 0 else text)

    def alloc(self, pfn: int, order: int, migratetype: int = -1, gfp: int = 0, stack: int = -1,
              ts_ns: int = -1) -> tuple[int, int, int, int] | None:
        """Record an allocation; returns the allocation it replaced (a lost free), if any."""
        live = self.live
        old = live.get(pfn)
        live[pfn] = _pack(order, migratetype, gfp, stack)
        if old is None:
            return None
        prev = unpack(old)
        self._note(LOST_FREE, ts_ns, f"pfn {pfn:#x} allocated (order {order}) while still allocated "
                              f"(order {prev[0]}): its free was lost; the old allocation is taken as freed")
        return prev

    def free(self, pfn: int, order: int, ts_ns: int = -1) -> tuple[int, int, int, int] | None:
        """Record a free; returns the (order, migratetype, gfp, stack) it released, or None if unknown."""
        live = self.live
        w = live.pop(pfn, None)
        if w is not None:
            have = w & _ORDER_BITS
            if have == order:
                return unpack(w)
            got = unpack(w)
            if order < have:
                for head, o in aligned_blocks(pfn + (1 << order), pfn + (1 << have)):
                    live[head] = _pack(o, got[1], got[2], got[3])
                self._note(ORDER_MISMATCH, ts_ns, f"pfn {pfn:#x} freed with order {order}, allocated with order "
                                           f"{have}: the rest of the block stays allocated")
            else:
                self._remove_covered(pfn, order)
                self._note(ORDER_MISMATCH, ts_ns, f"pfn {pfn:#x} freed with order {order}, allocated with order "
                                           f"{have}: every allocated block in the freed range is released")
            return got
        # not a head: is it inside a live block?
        for o in range(1, MAX_ORDER + 1):
            head = pfn & ~((1 << o) - 1)
            hw = live.get(head)
            if hw is not None and (hw & _ORDER_BITS) >= o and head + (1 << (hw & _ORDER_BITS)) > pfn:
                have = hw & _ORDER_BITS
                got = unpack(hw)
                del live[head]
                end = head + (1 << have)
                keep = aligned_blocks(head, pfn) + aligned_blocks(min(pfn + (1 << order), end), end)
                for h, ko in keep:
                    live[h] = _pack(ko, got[1], got[2], got[3])
                if pfn + (1 << order) > end:
                    self._remove_covered(end, order)
                self._note(ORDER_MISMATCH, ts_ns, f"pfn {pfn:#x} (order {order}) freed inside the block allocated at "
                                           f"{head:#x} (order {have}): the rest of the block stays allocated")
                return got
        self._note(FREE_BEFORE_TRACE, ts_ns, f"pfn {pfn:#x} (order {order}) freed but never allocated in the "
                                      f"trace: allocated before tracing began")
        return None

    def _remove_covered(self, pfn: int, order: int) -> None:
        live = self.live
        for p in range(pfn, pfn + (1 << order)):
            live.pop(p, None)

    def feed(self, events: Iterable[TraceEvent], batched_frees: bool = False) -> None:
        """Apply a stream of events (allocations and frees; failures and other kinds are skipped).

        ``mm_page_free_batched`` is not applied by default: the kernel traces
        every free in ``free_pages_prepare`` as ``mm_page_free``, batched or
        not, so applying both would free the page twice.  ``batched_frees``
        applies them too, for traces that recorded only the batched event.
        """
        alloc, free = self.alloc, self.free
        batched = FREE_BATCHED if batched_frees else FREE
        for ev in events:
            kind = ev[0]
            if kind == ALLOC:
                if ev[6] >= 0:
                    alloc(ev[6], ev[7], ev[8], ev[9], ev[10], ev[1])
            elif kind == FREE or kind == batched:
                free(ev[6], ev[7], ev[1])
