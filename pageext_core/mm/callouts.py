"""The call-out table: which client's functions the machine calls, per event.

A frozen ``Callouts`` holds one tuple of ``Callout(client, fn)`` per event,
in call order.  The machine installs it (``machine.install(callouts)``) and
binds plain tuples of functions for its hot path; an event nobody listens to
is an empty tuple and costs no call.  Every entry names its client, so an
error names the client that raised, and ``only(client)`` keeps one client's
entries (the conformance check).  The page_ext framework builds the table
from the enabled clients' hooks (``pageext_core.callouts``).

A client that holds split-off blocks by a fixed rule (guard pages: "every
piece below order N") declares it instead as a ``HoldRule``
(``pageext_hold_rule``): the allocator applies the rule itself, marking the
held blocks' flag bit in batches, with no call per guard.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

# Event name (a ``Callouts`` field) -> the hook its functions implement.
EVENTS: dict[str, str] = {
    "alloc": "pageext_on_alloc",
    "free": "pageext_on_free",
    "split": "pageext_on_split",
    "merge": "pageext_on_merge",
    "split_page": "pageext_on_split_page",
    "migrate": "pageext_on_migrate",
    "fault": "pageext_on_fault",
    "online": "pageext_on_online",
}


@dataclass(frozen=True)
class Callout:
    """One client's function for one event, called with the hook's canonical positional arguments."""

    client: str
    fn: Callable[..., Any]


@dataclass
class HoldStats:
    """What the allocator did under a ``HoldRule``, for its client's reports.

    ``created``/``released`` count held blocks; ``marked``/``cleared`` count
    the batches in which their flag bits were set and cleared, ``runs`` the
    blocks the marked ones were split from (what a benchmark needs to
    measure batches of the workload's shape).
    """

    created: int = 0
    released: int = 0
    marked: int = 0
    cleared: int = 0
    runs: int = 0


@dataclass(frozen=True)
class HoldRule:
    """A client's standing answer to ``pageext_on_split``/``pageext_on_merge``, applied by the allocator.

    Every block ``expand`` splits off below ``below_order`` is held (off the
    free lists, not free), its head gets ``bit`` in the client's page_ext
    flags word and its pages are unmapped from the direct map if they are
    not already.  When a freed block meets a held buddy of the same order
    whose head has ``bit``, the bit is cleared and the two merge.  The
    flags words are given per section as the client's ``per_section``
    list of ``(words, k)``: page ``p``'s word is ``words[k + p * stride]``
    (``words`` the table's uint64 words, as ``PageExtView`` gives them), None where a section
    has no table.  ``stats`` is shared with the client (its counters).
    ``client`` is filled in by the framework.
    """

    below_order: int
    words: list[tuple[memoryview, int] | None]
    shift: int
    stride: int
    bit: int
    stats: HoldStats
    client: str = ""


@dataclass(frozen=True)
class Callouts:
    """Every event's call-outs, in call order; empty tuples when nobody listens."""

    alloc: tuple[Callout, ...] = ()
    free: tuple[Callout, ...] = ()
    split: tuple[Callout, ...] = ()
    merge: tuple[Callout, ...] = ()
    split_page: tuple[Callout, ...] = ()
    migrate: tuple[Callout, ...] = ()
    fault: tuple[Callout, ...] = ()
    online: tuple[Callout, ...] = ()
    hold: tuple[HoldRule, ...] = ()  # at most one: the allocator applies it before any split call-out

    def events(self) -> dict[str, tuple[Callout, ...]]:
        """Event name -> its entries (every event, empty ones too)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in EVENTS}

    def clients(self) -> set[str]:
        """Clients with at least one call-out (or a hold rule)."""
        return {c.client for entries in self.events().values() for c in entries} | {r.client for r in self.hold}

    def only(self, client: str) -> Callouts:
        """The same table with one client's entries alone."""
        return replace(self, **{event: tuple(c for c in entries if c.client == client)
                                for event, entries in self.events().items()},
                       hold=tuple(r for r in self.hold if r.client == client))

    def __bool__(self) -> bool:
        return any(self.events().values()) or bool(self.hold)


NO_CALLOUTS = Callouts()


def first_true(fns: tuple[Callable[..., Any], ...]) -> Callable[..., bool] | None:
    """One callable asking each in turn until one says yes (split and merge); None for none.

    When one of them raises, the exception is tagged with the function that
    raised (``__pageext_hook__``) so the error can name that client alone.
    """
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]

    def any_of(*args: Any) -> bool:
        for f in fns:
            try:
                if f(*args):
                    return True
            except Exception as exc:
                exc.__pageext_hook__ = f  # type: ignore[attr-defined]
                raise
        return False

    return any_of
