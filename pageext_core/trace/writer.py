"""Write page events as ftrace, trace-cmd report or perf script text.

Each format is printed the way its tool prints it (column widths, padding,
stack blocks), so the files feed other trace tools and read back through
:mod:`pageext_core.trace.reader`.  What a text trace cannot carry:

* timestamps are printed in microseconds (the ns remainder is dropped);
* ``page=`` pointers are not real: ftrace's hashed ``%p`` is imitated by a
  fixed function of the pfn, trace-cmd and perf print libtraceevent's
  ``0xffffea0000000000 + pfn`` (``(nil)``/``0000000000000000`` for a failed
  allocation, whose pfn prints as ``0x0``);
* the addresses printed next to stack frames (which trace-cmd and perf
  always show) are made up from the symbol name; a frame's
  ``+0xoff/0xsize [module]`` prints whole in ftrace (its sym-offset shape),
  as ``+0xoff`` in perf (``+0x0`` when the frame has none), and not at all
  in trace-cmd;
* the tgid column exists only in ftrace with ``record_tgid`` and perf with
  ``pid_tid``; flags / latency columns print as ``.....``;
* ftrace output has trace_pipe's shape (no ``# tracer`` header, since the
  entry counts it shows are not known while streaming); trace-cmd output
  starts with ``version = 7`` and ``cpus=N``.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from pageext_core.mm.gfp import format_gfp
from pageext_core.trace.events import (
    ALLOC,
    EXTFRAG,
    FREE,
    FREE_BATCHED,
    KIND_NAMES,
    PCPU_DRAIN,
    StackTable,
    TraceEvent,
)

STRUCT_PAGE_BASE = 0xFFFFEA0000000000


def open_text_for_write(path: str | Path, suffix: str) -> IO[str]:
    """Open ``path`` for text output, compressed as ``suffix`` (``.gz``, ``.xz``, ``.bz2``) asks.

    ``suffix`` is the final file's, since ``path`` is usually the temporary beside it.
    """
    if suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8")
    if suffix == ".xz":
        return lzma.open(path, "wt", encoding="utf-8")
    if suffix == ".bz2":
        return bz2.open(path, "wt", encoding="utf-8")
    return open(path, "w", encoding="utf-8")


def fake_address(frame: str) -> int:
    """A stable kernel-text-looking address for a symbol (or the frame's own hex address)."""
    return int(frame, 16) if _is_address(frame) else _sym_addr(frame)


def _sym_addr(frame: str) -> int:
    return 0xFFFFFFFF81000000 + ((zlib.crc32(frame.encode()) & 0xFFFFF) << 4)


def _is_address(frame: str) -> bool:
    """A frame the reader kept as a bare hex address (no symbol); short hex-looking names stay symbols."""
    return len(frame) >= 8 and all(c in "0123456789abcdef" for c in frame)


def _split_frame(frame: str) -> tuple[str, str, str]:
    """'sym+0x1a/0x40 [mod]' -> ('sym', '+0x1a', 'mod'); a plain symbol -> ('sym', '', '')."""
    mod = ""
    if frame.endswith("]") and " [" in frame:
        frame, _, mod = frame[:-1].rpartition(" [")
    sym, plus, off = frame.partition("+")
    return sym, (plus + off.partition("/")[0]) if plus else "", mod


def _hashed_ptr(pfn: int) -> str:
    return f"{((pfn * 2654435761) & 0xFFFFFFFF) or 1:016x}"


class TraceWriter:
    """Write events one at a time to a text stream in one of the three formats."""

    def __init__(self, out: IO[str], format: str, stacks: StackTable | None = None, *, cpus: int = 1,
                 record_tgid: bool = False, pid_tid: bool = False, callchain: bool = True,
                 perf_events: Iterable[str] = ("mm_page_alloc", "mm_page_free")) -> None:
        if format not in ("ftrace", "trace-cmd", "perf"):
            raise ValueError(f"unknown trace format {format!r}; use ftrace, trace-cmd or perf")
        self.out = out
        self.format = format
        self.stacks = stacks if stacks is not None else StackTable()
        self.record_tgid = record_tgid
        self.pid_tid = pid_tid
        self.callchain = callchain
        self.count = 0
        self._gfp_text: dict[int, str] = {}
        # perf pads the event name to the longest name of the session's events
        self._perf_width = max(len(f"kmem:{n}") for n in perf_events)
        if format == "trace-cmd":
            out.write(f"version = 7\ncpus={cpus}\n")

    def _gfp(self, gfp: int) -> str:
        t = self._gfp_text.get(gfp)
        if t is None:
            t = self._gfp_text[gfp] = format_gfp(gfp) if gfp > 0 else "none"
        return t

    def _fields(self, ev: TraceEvent, page: str) -> str:
        kind = ev[0]
        pfn = ev[6]
        pfn_text = f"0x{pfn:x}" if pfn >= 0 else "0x0"
        if kind == ALLOC:
            return (f"page={page} pfn={pfn_text} order={ev[7]} migratetype={ev[8]} "
                    f"gfp_flags={self._gfp(ev[9])}")
        if kind == FREE:
            return f"page={page} pfn={pfn_text} order={ev[7]}"
        if kind == FREE_BATCHED:
            return f"page={page} pfn={pfn_text} order=0"
        if kind == PCPU_DRAIN:
            return f"page={page} pfn={pfn_text} order={ev[7]} migratetype={ev[8]}"
        if kind == EXTFRAG:
            x = ev[11] or (ev[7], -1, -1, ev[8], -1, 0, 0)
            return (f"page={page} pfn={pfn_text} alloc_order={x[0]} fallback_order={x[1]} "
                    f"pageblock_order={x[2]} alloc_migratetype={x[3]} fallback_migratetype={x[4]} "
                    f"fragmenting={x[5]} change_ownership={x[6]}")
        raise ValueError(f"unknown event kind {kind!r}")

    def _perf_frame(self, frame: str) -> str:
        sym, off, mod = _split_frame(frame)
        return f"\t{fake_address(sym):16x} {sym}{off or '+0x0'} ([{mod or 'kernel.kallsyms'}])\n"

    def write(self, ev: TraceEvent) -> None:
        """Write one event (and its stack, if it has one)."""
        ts = ev[1]
        sec, usec = ts // 1_000_000_000, ts % 1_000_000_000 // 1000
        name = KIND_NAMES[ev[0]]
        frames = self.stacks.frames(ev[10]) if ev[10] >= 0 else ()
        pfn = ev[6]
        out = self.out
        fmt = self.format
        if fmt == "ftrace":
            tg = ""
            if self.record_tgid:
                tg = f"({ev[4]:>7}) " if ev[4] > 0 else "(-------) "
            head = f"{ev[5]:>16}-{ev[3]:<7} {tg}[{ev[2]:03d}] ..... {sec:5d}.{usec:06d}: "
            page = _hashed_ptr(pfn) if pfn > 0 else "0000000000000000"
            out.write(f"{head}{name}: {self._fields(ev, page)}\n")
            if frames:
                out.write(f"{head}<stack trace>\n")
                out.write("".join(f" => {f if not _is_address(f) else '0x' + f}\n" for f in frames))
        elif fmt == "trace-cmd":
            head = f"{ev[5]:>16}-{ev[3]:<5} [{ev[2]:03d}] ..... {sec:5d}.{usec:06d}: "
            page = f"0x{STRUCT_PAGE_BASE + pfn:x}" if pfn > 0 else "(nil)"
            out.write(f"{head}{name}:{' ' * max(0, 20 - len(name))} {self._fields(ev, page)}\n")
            if frames:
                out.write(f"{head}kernel_stack:{' ' * 8} <stack trace >\n")
                out.write("".join(f"=> {f}\n" if _is_address(f) else
                                  f"=> {_split_frame(f)[0]} ({fake_address(_split_frame(f)[0]):x})\n"
                                  for f in frames))
        else:
            comm = ev[5]
            who = f"{ev[4]:7d}/{ev[3]:<7d}" if self.pid_tid else f"{ev[3]:7d}"
            evname = f"kmem:{name}"
            page = f"0x{STRUCT_PAGE_BASE + pfn:x}" if pfn > 0 else "(nil)"
            comm_text = comm if self.callchain else f"{comm:>16}"
            out.write(f"{comm_text} {who} [{ev[2]:03d}] {f'{sec}.{usec:06d}':>12}: "
                      f"{evname:>{self._perf_width}}: {self._fields(ev, page)}\n")
            if self.callchain:
                out.write("".join(
                    f"\t{int(f, 16):16x} [unknown] ([kernel.kallsyms])\n" if _is_address(f)
                    else self._perf_frame(f)
                    for f in frames))
                out.write("\n")
        self.count += 1

    def write_all(self, events: Iterable[TraceEvent]) -> int:
        """Write every event; returns how many."""
        w = self.write
        n = 0
        for ev in events:
            w(ev)
            n += 1
        return n


def write_trace(path: str | Path, events: Iterable[TraceEvent], format: str, stacks: StackTable | None = None,
                **options: object) -> int:
    """Write a whole trace file atomically (``.gz``/``.xz``/``.bz2`` names are compressed); returns the event count.

    Streams through a temporary file in the same directory and renames it at
    the end, so a reader sees either no file or the whole trace.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open_text_for_write(tmp, path.suffix) as f:
            n = TraceWriter(f, format, stacks, **options).write_all(events)  # type: ignore[arg-type]
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return n
