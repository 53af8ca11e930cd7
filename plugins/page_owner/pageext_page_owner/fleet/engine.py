"""The fleet engine: one Dask task per dump (or per part of a big one), partial groups combined in a tree.

Each task reads its dump where it lies, with page_owner_sort's own
counting (:func:`~pageext_page_owner.page_owner_sort.parse.count_range`,
:class:`~pageext_page_owner.page_owner_sort.parse.Aggregator`), and returns
a :class:`~pageext_page_owner.page_owner_sort.aggregate.Partial`: the
groups of that dump only.  Partials are merged up to :data:`FAN_IN` at a
time, neighbours in input order, so the result is the groups of the
dumps' concatenation in that order and no process ever holds a whole
dump or every partial at once.  Dask is imported only by :func:`run`: the tasks themselves need
nothing but this package.
"""
from __future__ import annotations

import gc
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from pageext_page_owner.dumpparse import DEFAULT_CHUNK, ParseError
from pageext_page_owner.page_owner_sort import parallel
from pageext_page_owner.page_owner_sort.aggregate import HostStats, Partial, Selection
from pageext_page_owner.page_owner_sort.parse import Aggregator, count_range

__all__ = ["DEFAULT_SPLIT_BYTES", "FAN_IN", "FleetInputError", "Options", "Part", "count_part", "local_cluster", "merge", "plan",
           "reduce_local", "run"]

T = TypeVar("T")

DEFAULT_SPLIT_BYTES = 256 << 20  # a plain dump bigger than this is read by several tasks


class FleetInputError(Exception):
    """A dump that cannot be read (or decompressed): the message names it."""


@dataclass(frozen=True)
class Options:
    """How records are grouped: page_owner_sort's options that change the counting."""

    fields: tuple[str, ...] = ()
    strip_ts: bool = True
    alloc_bits: bool = False
    selection: Selection = field(default_factory=Selection)
    chunk_size: int = DEFAULT_CHUNK


@dataclass(frozen=True)
class Part:
    """One task's input: a whole dump (``start`` None) or bytes ``[start, stop)`` of a plain one."""

    host: str
    path: str
    start: int | None = None
    stop: int = 0
    carry: int = 0  # CMA/SLAB bits of the last PFN line before ``start``
    shown: str = ""  # the path as the user gave it, for messages and reports (``path`` may be made absolute)


def plan(dumps: Sequence[tuple[str, str]], split_bytes: int = DEFAULT_SPLIT_BYTES) -> list[Part]:
    """The tasks for ``(host, path)`` dumps, in input order: a big plain dump is cut at record boundaries."""
    out: list[Part] = []
    for host, path in dumps:
        parts = None
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        if size > split_bytes:
            parts = parallel.cut_parts(path, math.ceil(size / split_bytes), min_bytes=0)
        if parts is None or len(parts) < 2:
            out.append(Part(host, path))
        else:
            out.extend(Part(host, path, start, stop, carry) for start, stop, carry in parts)
    return out


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def count_part(part: Part, opts: Options) -> Partial:
    """The task: count one dump (or part) and return its groups."""
    source = part.shown or part.path
    first: list[ParseError] = []

    def on_error(e: ParseError) -> None:
        if not first:
            first.append(e)

    try:
        if part.start is None:
            agg = Aggregator(strip_ts=opts.strip_ts, alloc_bits=opts.alloc_bits, selection=opts.selection,
                             on_error=on_error)
            agg.feed(part.path, chunk_size=opts.chunk_size)
            lines = 0  # a whole file: nothing follows it
        else:
            agg, lines = count_range(part.path, part.start, part.stop, part.carry, strip_ts=opts.strip_ts,
                                     alloc_bits=opts.alloc_bits, selection=opts.selection,
                                     chunk_size=opts.chunk_size, on_error=on_error)
    except (OSError, EOFError, ValueError) as e:
        msg = _why(e)
        if msg.startswith(part.path + ": "):
            msg = msg[len(part.path) + 2:]
        raise FleetInputError(f"cannot read {source}: {msg}") from None
    err = (first[0].line, first[0].reason) if first else None
    stats = HostStats(source, agg.loaded, sum(agg.slot_count), agg.unparsed, agg.released, lines, err)
    return Partial.of(part.host, agg.groups(), opts.fields, stats)


# Partials merged by one task.  Dask's own bag reductions take eight at a time (``split_every``); here it
# also means a fleet of up to eight dumps is merged once, on one worker, after its last count, instead of
# in three rounds of tasks that each wait for an input to travel from the other worker.
FAN_IN = 8


def merge(first: Partial, *rest: Partial) -> Partial:
    """The reduction step: ``first`` followed by ``rest``, in order."""
    return first.merged(*rest)


def _levels(n: int) -> list[list[range]]:
    """The tree: for each level, the runs of the level below that one merge takes (a run of one passes up)."""
    out = []
    while n > 1:
        runs = [range(i, min(i + FAN_IN, n)) for i in range(0, n, FAN_IN)]
        out.append(runs)
        n = len(runs)
    return out


def reduce_local(parts: Sequence[Partial]) -> Partial:
    """The same tree of merges in this process (for tests and one-machine callers)."""
    level = list(parts)
    for runs in _levels(len(level)):
        level = [merge(*(level[i] for i in r)) if len(r) > 1 else level[r[0]] for r in runs]
    return level[0]


_AT_FORK_REGISTERED = False
# gc.set_threshold of the fleet's forked workers (local_cluster): a young-generation collection every
# 100,000 new objects instead of 700; the older generations' ratios as Python's.
WORKER_GC_THRESHOLD = (100_000, 10, 10)


def _fresh_offload_executor_after_fork() -> None:
    """Give every process forked from this one a new Dask offload thread pool (once per process).

    Dask (de)serialises messages over 10 MiB on one module-wide thread pool
    (``distributed.utils._offload_executor``).  Once this process has used it
    (a first cluster's traffic), a forked child inherits the pool with a thread
    that does not exist there, and the pool, believing it has an idle thread,
    never starts one: the child's first big transfer (a worker sending its
    partial groups to the worker that merges) waits forever.  A second
    cluster forked from the same process hung that way; a new pool in the
    child (its thread started on first use) is what a spawned worker has.
    """
    global _AT_FORK_REGISTERED
    if _AT_FORK_REGISTERED:
        return
    import concurrent.futures

    import distributed.utils

    def fresh() -> None:
        distributed.utils._offload_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="Dask-Offload")

    os.register_at_fork(after_in_child=fresh)
    _AT_FORK_REGISTERED = True


def local_cluster(workers: int) -> Any:
    """The fleet's local cluster: worker processes of one thread, forked where the platform allows.

    Forked, not spawned (Dask's default), on Linux: a spawned worker starts
    a new interpreter that imports Dask and this package again, about a
    second before the first task can run, which a one-shot command pays in
    full; a forked one starts with what this process has imported (a
    worker the nanny restarts later is spawned: the setting holds only
    while this function runs, so other clusters of the process keep theirs).

    Dask's statistical profiler is off: it samples every worker thread's
    stack 100 times a second for the dashboard, which this cluster does not
    serve; on a task that holds the GIL throughout (counting records) it
    costs a quarter of the wall time.

    The scheduler hands a worker its next dump only when it is free
    (``worker-saturation`` 1.0, Dask's default 1.1 gives a worker of one
    thread two at a time): with a handful of tasks of a second each, a
    task queued behind another on one worker while the other worker has
    nothing left to do cost 0.5–1 s of an 8-dump run.

    Forked workers also start with a higher threshold for the cyclic
    garbage collector's youngest generation (``WORKER_GC_THRESHOLD``): a
    partial is ~100,000 small objects without a cycle among them, and with
    Python's default (a collection every 700 new objects, a full one every
    hundred) loading the four partials a merge gets from the other worker,
    and the merge itself, ran through the workers' whole heap again and
    again: 0.2–0.35 s of transfer became 0.13–0.15, the 8-way merge 0.15 s
    0.08–0.10 s.  Garbage with cycles is still collected, less often.
    """
    import multiprocessing
    import sys

    import dask
    import distributed  # noqa: F401  (first: it loads its defaults, which the set() below must not wipe on exit)

    from pageext_core import local_cluster as sweep_cluster

    conf: dict[str, object] = {"distributed.worker.profile.enabled": False,
                               "distributed.scheduler.worker-saturation": 1.0}
    forked = sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()
    if forked:
        conf["distributed.worker.multiprocessing-method"] = "fork"
        _fresh_offload_executor_after_fork()
    default = gc.get_threshold()
    if forked:  # the workers are forked while the cluster starts: they keep what this process has then
        gc.set_threshold(*WORKER_GC_THRESHOLD)
    try:
        with dask.config.set(conf):
            # A dump that cannot be read raises in its task; the command says so in one line (exit 2).
            return sweep_cluster(workers, task_errors_logged=False)
    finally:
        gc.set_threshold(*default)


def _merge_then(finish: Callable[[Partial], T], *parts: Partial) -> T:
    """The root task when the caller wants something made of the merged groups (a rendered report)."""
    return finish(merge(*parts) if len(parts) > 1 else parts[0])


@overload
def run(client: Any, parts: Sequence[Part], opts: Options, *, count: Callable[[Part, Options], Partial] = ...,
        progress: bool = ..., finish: None = ...) -> Partial: ...


@overload
def run(client: Any, parts: Sequence[Part], opts: Options, *, count: Callable[[Part, Options], Partial] = ...,
        progress: bool = ..., finish: Callable[[Partial], T]) -> T: ...


def run(client: Any, parts: Sequence[Part], opts: Options, *, count: Callable[[Part, Options], Partial] = count_part,
        progress: bool = False, finish: Callable[[Partial], Any] | None = None) -> Any:
    """Count every part on the cluster of ``client`` and merge the results in a tree there; return the root.

    ``count`` replaces the task function (tests use it to kill a worker);
    ``progress`` shows Dask's progress bar on stderr (for a terminal);
    ``finish``, if given, runs on the merged groups in the root task, on
    the worker, and its result comes back instead of them.
    """
    if not parts:
        raise ValueError("no dumps to read")
    level = client.map(count, parts, [opts] * len(parts), pure=False)  # one message: the scheduler sees every count
    every = list(level)
    tree = _levels(len(level))
    (root,) = tree.pop() if tree else [range(1)]  # the last level is one run: the root task's inputs
    for runs in tree:
        level = [client.submit(merge, *(level[i] for i in r), pure=False) if len(r) > 1 else level[r[0]] for r in runs]
        every.extend(f for f, r in zip(level, runs) if len(r) > 1)
    inputs = [level[i] for i in root]
    if finish is not None:
        top = client.submit(_merge_then, finish, *inputs, pure=False)
    elif len(inputs) > 1:
        top = client.submit(merge, *inputs, pure=False)
    else:
        top = inputs[0]  # one part, nothing to merge
    if top is not every[0]:
        every.append(top)
    if progress:  # on stderr: stdout may be the report
        import contextlib
        import sys

        from dask.distributed import progress as show

        with contextlib.redirect_stdout(sys.stderr):
            show(every)
    return top.result()
