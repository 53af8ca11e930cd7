"""Real kernel page-event traces: read (ftrace, trace-cmd, perf script), write, live set, perf kmem report.

The reader yields :class:`TraceEvent` tuples (one per kernel event) and
interns stacks in a :class:`StackTable`; everything downstream (the live
set, the kmem report, the writer, the machine replay) takes that stream.
"""
from pageext_core.trace.anomalies import ANOMALIES, FREE_BEFORE_TRACE, LOST_FREE, ORDER_MISMATCH, LiveSet
from pageext_core.trace.events import (
    ALLOC,
    EXTFRAG,
    FREE,
    FREE_BATCHED,
    KIND_NAMES,
    NO_STACK,
    PCPU_DRAIN,
    StackTable,
    TraceEvent,
    make_event,
)
from pageext_core.trace.kmem import KmemStat, callsite_of, kmem_report
from pageext_core.trace.reader import (
    FORMATS,
    TraceError,
    TraceReader,
    TraceStats,
    detect_format,
    open_trace,
    read_trace,
)
from pageext_core.trace.writer import TraceWriter, write_trace

__all__ = [
    "ALLOC",
    "ANOMALIES",
    "EXTFRAG",
    "FORMATS",
    "FREE",
    "FREE_BATCHED",
    "FREE_BEFORE_TRACE",
    "KIND_NAMES",
    "LOST_FREE",
    "NO_STACK",
    "ORDER_MISMATCH",
    "PCPU_DRAIN",
    "KmemStat",
    "LiveSet",
    "StackTable",
    "TraceError",
    "TraceEvent",
    "TraceReader",
    "TraceStats",
    "TraceWriter",
    "callsite_of",
    "detect_format",
    "kmem_report",
    "make_event",
    "open_trace",
    "read_trace",
    "write_trace",
]
