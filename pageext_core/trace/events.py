"""The event shape every trace reader yields and every writer takes.

One tuple per kernel event (never per page), with small integer codes, so a
ten-million-event trace streams through without building objects that
outlive the event.  Stacks are interned in a :class:`StackTable` and events
carry the stack's id, so memory grows with distinct stacks, not with events.
"""
from __future__ import annotations

from typing import NamedTuple

# event kinds
ALLOC = 0  # mm_page_alloc
FREE = 1  # mm_page_free
FREE_BATCHED = 2  # mm_page_free_batched (always order 0)
PCPU_DRAIN = 3  # mm_page_pcpu_drain
EXTFRAG = 4  # mm_page_alloc_extfrag

KIND_NAMES: tuple[str, ...] = (
    "mm_page_alloc",
    "mm_page_free",
    "mm_page_free_batched",
    "mm_page_pcpu_drain",
    "mm_page_alloc_extfrag",
)
KIND_BY_NAME: dict[str, int] = {name: i for i, name in enumerate(KIND_NAMES)}

NO_STACK = -1


class TraceEvent(NamedTuple):
    """One page-allocator event from a trace.

    ``tgid`` is -1 unless the trace recorded it (ftrace ``record-tgid``, perf
    ``pid/tid``).  ``pfn`` is -1 for a failed allocation (NULL page, pfn 0 or
    no pfn).  ``migratetype`` and ``gfp`` are -1 on events that do not carry
    them (frees).  ``stack`` is an id in the reader's :class:`StackTable`, or
    -1.  ``extra`` is ``None`` except on ``mm_page_alloc_extfrag``:
    ``(alloc_order, fallback_order, pageblock_order, alloc_migratetype,
    fallback_migratetype, fragmenting, change_ownership)``.
    """

    kind: int
    ts_ns: int
    cpu: int
    pid: int
    tgid: int
    comm: str
    pfn: int
    order: int
    migratetype: int
    gfp: int
    stack: int
    extra: tuple[int, ...] | None = None


def make_event(kind: int, ts_ns: int, cpu: int, pid: int, tgid: int, comm: str, pfn: int, order: int,
               migratetype: int = -1, gfp: int = -1, stack: int = NO_STACK,
               extra: tuple[int, ...] | None = None) -> TraceEvent:
    """Build an event without NamedTuple's keyword machinery (the readers' hot path uses the same trick)."""
    return _new(TraceEvent, (kind, ts_ns, cpu, pid, tgid, comm, pfn, order, migratetype, gfp, stack, extra))


_new = tuple.__new__


class StackTable:
    """Interned call stacks: a frame tuple gets one small integer id, once.

    Frames are symbol names, innermost first, without offsets or addresses
    (a frame with no symbol is its hex address without ``0x``).  Bounded by
    the distinct stacks of a trace, never by its length.
    """

    __slots__ = ("_ids", "_stacks")

    def __init__(self) -> None:
        self._ids: dict[tuple[str, ...], int] = {}
        self._stacks: list[tuple[str, ...]] = []

    def intern(self, frames: tuple[str, ...]) -> int:
        """Id of this stack, adding it if new."""
        sid = self._ids.get(frames)
        if sid is None:
            sid = len(self._stacks)
            self._ids[frames] = sid
            self._stacks.append(frames)
        return sid

    def frames(self, sid: int) -> tuple[str, ...]:
        """The frames of a stack id (empty for -1)."""
        return self._stacks[sid] if sid >= 0 else ()

    def __len__(self) -> int:
        return len(self._stacks)
