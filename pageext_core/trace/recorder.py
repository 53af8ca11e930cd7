"""Record a session's page events as a kernel trace (``pageext run --record-trace FILE``).

A machine-level tap, not a page_ext client: the recorder adds one function
to the allocator's allocation and free call-out lists after boot (after
every client's, so they see nothing different) and removes them when the
run ends.  It stores nothing in page_ext, and a run without
``--record-trace`` does not have it at all.  Each event is written as it
happens, with the task, CPU, clock and stack the allocator has at that
moment, through :class:`~pageext_core.trace.writer.TraceWriter`, to a
temporary file renamed into place when the run ends (the file appears
whole or not at all).

What the trace holds and what it cannot:

* ``mm_page_alloc`` for every allocation that succeeded and ``mm_page_free``
  for every free, in the order the allocator made them; a failed
  allocation is not recorded (the allocator has no call-out for it);
* ``mm_page_alloc_extfrag`` before an allocation that fell back to another
  migratetype's free lists: one per run of pageblocks the fallback claimed
  (``change_ownership=1``, ``pfn`` the run's first page or the allocated
  one, ``fallback_order`` the run's order when it is a power of two of
  pageblocks, else -1), or one with ``change_ownership=0`` when it stole
  without claiming; the fallback's own migratetype is not known to the tap
  and prints as -1;
* ftrace output records the tgid (``record-tgid``) and perf output
  ``pid/tid``; trace-cmd output has no tgid;
* the limits of a text trace listed in :mod:`pageext_core.trace.writer`
  (microsecond timestamps; trace-cmd frames without offsets).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from pageext_core.mm.callouts import Callout, Callouts
from pageext_core.trace.events import ALLOC, EXTFRAG, FREE, StackTable, TraceEvent
from pageext_core.trace.writer import TraceWriter, open_text_for_write

_new = tuple.__new__


RECORDER = "trace-recorder"  # the name the recorder's call-outs carry


class TraceRecorder:
    """Writes a machine's allocations and frees to ``path`` in ``format`` while installed."""

    def __init__(self, machine: Any, path: str | Path, format: str = "ftrace") -> None:
        if format not in ("ftrace", "trace-cmd", "perf"):
            raise ValueError(f"unknown trace format {format!r}; use ftrace, trace-cmd or perf")
        self.m = machine
        self.path = Path(path)
        self.format = format
        self.stacks = StackTable()
        self._sid: dict[int, int] = {}  # depot handle -> stack id
        self._fallbacks = machine.nr_fallbacks
        self._claims = machine.nr_pageblock_claims
        self._pb = machine.pb_mt.copy()
        self._f: IO[str] | None = None
        self._tmp: str | None = None
        self._saved: Callouts | None = None  # the machine's table before the recorder joined it
        self.writer: TraceWriter | None = None

    @property
    def count(self) -> int:
        return self.writer.count if self.writer else 0

    def install(self) -> None:
        """Open the temporary file and join the allocator's call-out lists (after the clients)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._f = open_text_for_write(self._tmp, self.path.suffix)
        m = self.m
        self.writer = TraceWriter(self._f, self.format, self.stacks, cpus=m.config.cpus,
                                  record_tgid=self.format == "ftrace", pid_tid=self.format == "perf",
                                  perf_events=("mm_page_alloc", "mm_page_free", "mm_page_alloc_extfrag"))
        self._fallbacks = m.nr_fallbacks
        self._claims = m.nr_pageblock_claims
        self._pb = m.pb_mt.copy()
        # The recorder joins the machine's call-out table after every client's entries
        # (so it sees each event last, as the tracepoint fires after the allocation).
        self._saved = m.callouts
        m.install(replace(self._saved, alloc=self._saved.alloc + (Callout(RECORDER, self.on_alloc),),
                          free=self._saved.free + (Callout(RECORDER, self.on_free),)))

    def uninstall(self, keep: bool = True) -> None:
        """Leave the call-out lists; with ``keep`` the file is renamed into place, else removed."""
        m = self.m
        if self._saved is not None:
            m.install(self._saved)
            self._saved = None
        if self._f is None or self._tmp is None:
            return
        self._f.close()
        self._f = None
        if keep:
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        else:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
        self._tmp = None

    def _stack(self) -> int:
        m = self.m
        h = m.explicit_stack or m.current_stack()
        sid = self._sid.get(h)
        if sid is None:
            sid = self._sid[h] = self.stacks.intern(tuple(m.depot.fetch(h)))
        return sid

    def on_alloc(self, pfn: int, order: int, gfp_mask: int, migratetype: int) -> None:
        m = self.m
        t = m.current
        w = self.writer
        assert w is not None
        sid = self._stack()
        if m.nr_fallbacks != self._fallbacks:
            self._fallbacks = m.nr_fallbacks
            self._extfrag(pfn, order, migratetype)
        elif m.nr_pageblock_claims != self._claims:
            self._claims = m.nr_pageblock_claims
            self._pb = m.pb_mt.copy()
        w.write(_new(TraceEvent, (ALLOC, m.clock_ns, m.cpu, t.pid, t.tgid, t.comm, pfn, order, migratetype,
                                  gfp_mask, sid, None)))

    def _extfrag(self, pfn: int, order: int, mt: int) -> None:
        """One event per run of pageblocks the fallback gave to ``mt`` (or one for the block's own, unchanged)."""
        m = self.m
        t = m.current
        w = self.writer
        assert w is not None
        pbo = m.pageblock_order
        now = m.pb_mt
        changed = np.flatnonzero(now != self._pb)
        self._pb = now.copy()
        self._claims = m.nr_pageblock_claims
        runs: list[tuple[int, int]] = []  # (first pageblock, count)
        for pb in changed.tolist():
            if runs and runs[-1][0] + runs[-1][1] == pb and now[pb] == now[runs[-1][0]]:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((pb, 1))
        if not runs:  # stolen without claiming: the pageblock stays mixed
            runs = [(pfn >> pbo, 0)]
        for first, count in runs:
            owned = int(count > 0)
            at = pfn if first == pfn >> pbo else first << pbo
            fo = pbo + count.bit_length() - 1 if count > 1 and count & (count - 1) == 0 else -1
            new_mt = int(now[first]) if owned else mt
            w.write(_new(TraceEvent, (EXTFRAG, m.clock_ns, m.cpu, t.pid, t.tgid, t.comm, at, order, new_mt, -1, -1,
                                      (order, fo, pbo, new_mt, -1, int(fo < pbo), owned))))

    def on_free(self, pfn: int, order: int) -> None:
        m = self.m
        t = m.current
        w = self.writer
        assert w is not None
        w.write(_new(TraceEvent, (FREE, m.clock_ns, m.cpu, t.pid, t.tgid, t.comm, pfn, order, -1, -1,
                                  self._stack(), None)))
