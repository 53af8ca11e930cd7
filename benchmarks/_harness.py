"""Shared measuring tools for the benchmark modules.

Timing is done side by side in one run (interleaved rounds, best of each),
so ratios mean something on a noisy machine; absolute figures are reported
next to a floor measured in the same run.
"""
from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """One measured figure; ``target`` says what we aim for, ``ok`` whether we met it."""

    name: str
    value: float
    unit: str
    target: str | None = None
    ok: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wall_time(fn: Callable[[], Any]) -> float:
    """Seconds of wall time for one call (the default measure)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_time(fn: Callable[[], Any]) -> float:
    """Seconds of this thread's CPU time for one call: steadier than wall time on a busy machine."""
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def self_timed(fn: Callable[[], Any]) -> Any:
    """The callable times itself (e.g. only its inner loop) and returns the figure(s)."""
    return fn()


def interleaved(funcs: Mapping[str, Callable[[], Any]], rounds: int = 5,
                measure: Callable[[Callable[[], Any]], Any] = wall_time) -> dict[str, Any]:
    """Best measure of each callable over ``rounds`` rounds, run alternately.

    Alternating the candidates inside each round spreads machine noise over
    all of them, which is what makes their ratio trustworthy.  ``measure``
    returns a number or a tuple of numbers; a tuple's items are minimised
    one by one.
    """
    best: dict[str, Any] = {}
    for _ in range(rounds):
        for name, fn in funcs.items():
            gc.collect()
            gc.disable()
            try:
                got = measure(fn)
            finally:
                gc.enable()
            prev = best.get(name)
            if prev is None:
                best[name] = got
            elif isinstance(got, tuple):
                best[name] = tuple(min(a, b) for a, b in zip(prev, got))
            else:
                best[name] = min(prev, got)
    return best


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def run_parts(parts: Sequence[Callable[[bool], list[Result]]], quick: bool) -> list[Result]:
    """Run a module's measuring functions in turn; each result notes how long its part took."""
    out: list[Result] = []
    for part in parts:
        t0 = time.perf_counter()
        got = part(quick)
        for r in got:
            r.detail.setdefault("seconds_for_part", round(time.perf_counter() - t0, 2))
        out.extend(got)
    return out


def list_floor(ops: int) -> float:
    """Seconds for ``ops`` alloc/free pairs on a plain Python free list of pfns.

    The floor every allocator figure is compared with: it is what a bare
    ``list.pop``/``list.append`` costs on this machine, in this run.
    """
    free = list(range(4096))
    held: list[int] = []
    pop, push, hpop, hpush = free.pop, free.append, held.pop, held.append
    t0 = time.perf_counter()
    for i in range(ops):
        if i & 1:
            push(hpop())
        else:
            hpush(pop())
    return time.perf_counter() - t0
