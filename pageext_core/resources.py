"""Host memory a machine will take, estimated before anything is allocated.

A simulated machine costs the host a few bytes per simulated page, so a
``--memory 1TiB`` run can need tens of GiB.  Rather than letting the host's
OOM killer end the run, the runner estimates the cost from the geometry and
the page_ext layout alone (pure arithmetic, nothing allocated) and refuses,
with exit code 2, a machine the host cannot hold.

The estimate follows what the code really allocates (``mm/buddy.py``,
``mm/contents.py``, ``storage.py``):

* allocator arrays: ``state`` (u1) and ``pflags`` (u4) per spanned pfn
  (``max_pfn``, holes included), two u1 per pageblock, and the free-list
  arrays (u4 per free block, grown by doubling; counted at twice one entry
  per pageblock, plus 16 entries per list);
* page_ext tables: the record size times the pages covered, one whole
  section per present section (SPARSEMEM) or each node's span (FLATMEM),
  plus the sections of hot-pluggable blocks (tables appear when they go
  online);
* page contents: the per-pfn side arrays a run may create (slot u4, fill
  u1, unmapped u1 per spanned pfn; each appears on first use: a write, a
  poison fill, an unmapped page);
* working memory: temporaries over every pfn while booting and scanning,
  and a fixed 64 MiB for what grows with the workload rather than with the
  machine: 4 KiB rows of written page contents, the stack depot, per-CPU
  lists, reports' text.  The temporaries are whole-machine numpy masks:
  a client's init that scans for free pages (``free_pages_mask``: an int32
  cover, its int64 running sum and a few bool arrays) peaks at about
  19 bytes per pfn (tracemalloc, debug_pagealloc at 5 GiB), so 24 are
  counted when any page_ext client is enabled; without one the core's own
  peak is under 1 byte per pfn, and 2 are counted.

Every array is a ``numpy.zeros``/``full``: the OS maps zero pages lazily,
so untouched parts cost address space but no RAM.  A long workload touches
most of them, though, so the whole estimate is compared both with the RAM
the host can give (``MemAvailable``) and with the address space left under
``ulimit -v`` (``RLIMIT_AS`` minus what the process maps already): the
smaller of the two is what is available.  ``PAGEEXT_HOST_MEMORY=SIZE``
replaces that measurement (tests simulate a small host with it).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pageext_core.layout import FLAGS_BYTES, Layout
from pageext_core.mm.constants import MIGRATE_TYPES, MiB
from pageext_core.mm.errors import ConfigError
from pageext_core.mm.geometry import Geometry, build_geometry, format_size, parse_size

HOST_MEMORY_ENV = "PAGEEXT_HOST_MEMORY"
WORKING_ALLOWANCE = 64 * MiB
ALLOCATOR_BYTES_PER_PFN = 1 + 4  # state u1 + pflags u4
CONTENTS_BYTES_PER_PFN = 4 + 1 + 1  # slot u4 + fill u1 + unmapped bool
TEMPORARY_BYTES_PER_PFN = 2  # the core's whole-machine masks (under 1 measured)
CLIENT_TEMPORARY_BYTES_PER_PFN = 24  # clients' init scans (about 19 measured)
FREE_LIST_MIN_ENTRIES = 16  # np.zeros(max(16, ...)) on first growth


class ResourceError(ConfigError):
    """The machine would not fit in the host's memory (exit code 2: change the configuration)."""


@dataclass(frozen=True)
class HostEstimate:
    """Host bytes a machine will take, by part; ``clients`` splits the page_ext tables."""

    parts: dict[str, int]
    record_size: int
    table_pages: int  # pages covered by page_ext tables at boot
    hotplug_table_pages: int  # more pages covered once every hot-pluggable block is online
    # page_ext bytes at boot by owner: each client's fields, the shared flags word, alignment padding
    clients: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def page_ext_bytes(self) -> int:
        """Bytes of page_ext tables right after boot (what ``PageExt.nbytes`` will say)."""
        return self.record_size * self.table_pages

    def describe(self) -> dict[str, int]:
        """The parts and the total, as plain data (``pageext plugins --json``)."""
        return {**self.parts, "total": self.total}


def _sections(ranges: list[tuple[int, int]], shift: int) -> set[int]:
    """Sections that hold any pfn of ``ranges`` (as ``Machine.present_sections`` finds them)."""
    out: set[int] = set()
    for s, e in ranges:
        out.update(range(s >> shift, ((e - 1) >> shift) + 1))
    return out


def table_pages(g: Geometry) -> int:
    """Pages covered by page_ext tables at boot: whole present sections, or each node's span."""
    if g.config.memory_model == "FLATMEM":
        return sum(n.end_pfn - n.start_pfn for n in g.nodes)
    return len(_sections(g.ram, g.section_shift)) << g.section_shift


def hotplug_table_pages(g: Geometry) -> int:
    """Extra pages covered when every hot-pluggable block is online (SPARSEMEM only)."""
    if g.config.memory_model == "FLATMEM" or not g.hotplug_blocks:
        return 0
    extra = _sections(g.hotplug_blocks, g.section_shift) - _sections(g.ram, g.section_shift)
    return len(extra) << g.section_shift


def allocator_bytes(g: Geometry) -> int:
    """The allocator's numpy arrays: per-pfn state and flags, per-pageblock bytes, free lists."""
    n = g.max_pfn
    nblocks = (n + (1 << g.pageblock_order) - 1) >> g.pageblock_order
    nlists = len(g.zones) * MIGRATE_TYPES * (g.max_order + 1)
    present = sum(e - s for s, e in g.ram) + sum(e - s for s, e in g.hotplug_blocks)
    free_entries = FREE_LIST_MIN_ENTRIES * nlists + 2 * (present >> g.pageblock_order)
    return ALLOCATOR_BYTES_PER_PFN * n + 2 * nblocks + 4 * free_entries


def estimate(g: Geometry, layout: Layout | None) -> HostEstimate:
    """Itemised host bytes for this geometry and layout (``None``: no page_ext at all)."""
    record = layout.record_size if layout is not None else 0
    pages = table_pages(g) if record else 0
    hot = hotplug_table_pages(g) if record else 0
    parts = {
        "allocator": allocator_bytes(g),
        "page_ext": record * (pages + hot),
        "contents": CONTENTS_BYTES_PER_PFN * g.max_pfn,
        "working": (CLIENT_TEMPORARY_BYTES_PER_PFN if record else TEMPORARY_BYTES_PER_PFN) * g.max_pfn
                   + WORKING_ALLOWANCE,
    }
    clients: dict[str, int] = {}
    if layout is not None and record:
        if layout.has_flags:
            clients["flags word"] = FLAGS_BYTES * pages
        clients.update({c.name: c.size * pages for c in layout.clients})
        pad = record * pages - sum(clients.values())
        if pad:
            clients["padding"] = pad
    return HostEstimate(parts, record, pages, hot, clients)


# -- what the host has ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HostMemory:
    """What this process may still take: the smaller of free RAM and address space under the limit."""

    available: int | None  # None: unknown, nothing is checked
    mem_available: int | None = None
    as_limit: int | None = None  # RLIMIT_AS soft limit (None: unlimited)
    as_used: int | None = None  # address space the process maps already
    override: str | None = None  # the PAGEEXT_HOST_MEMORY value, when set

    def describe(self) -> str:
        if self.override is not None:
            return f"{HOST_MEMORY_ENV}={self.override} says {human(self.available or 0)} is available"
        bits = []
        if self.mem_available is not None:
            bits.append(f"MemAvailable {human(self.mem_available)}")
        if self.as_limit is None:
            bits.append("ulimit -v unlimited")
        else:
            used = f", {human(self.as_used)} of it in use" if self.as_used is not None else ""
            bits.append(f"ulimit -v {human(self.as_limit)}{used}")
        return f"the host has {human(self.available or 0)} available ({'; '.join(bits)})"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_used() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _as_limit() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def host_memory(env: Mapping[str, str] | None = None) -> HostMemory:
    """Measure what is available now (or read ``PAGEEXT_HOST_MEMORY``)."""
    env = os.environ if env is None else env
    raw = env.get(HOST_MEMORY_ENV, "").strip()
    if raw:
        try:
            return HostMemory(available=parse_size(raw, HOST_MEMORY_ENV), override=raw)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (or unset the environment variable to measure the host)") from None
    avail = _meminfo_available()
    limit = _as_limit()
    used = _address_space_used() if limit is not None else None
    candidates = [x for x in (avail, None if limit is None else max(limit - (used or 0), 0)) if x is not None]
    return HostMemory(min(candidates) if candidates else None, avail, limit, used)


# -- the check -------------------------------------------------------------------------------------


def human(nbytes: int) -> str:
    """``18.0 GiB``, ``512.0 MiB``: a figure for a message, not for parsing."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def largest_fitting_memory(g: Geometry, layout: Layout | None, available: int) -> int | None:
    """The largest power-of-two ``memory`` (same machine otherwise) whose estimate fits, if any."""
    cfg = g.config
    if isinstance(cfg.memory, tuple):
        return None
    size = 1 << max(cfg.memory.bit_length() - 1, 0)
    if size == cfg.memory:
        size >>= 1
    while size >= 16 * MiB:
        try:
            trial = build_geometry(cfg.with_(memory=size))
        except ConfigError:
            size >>= 1
            continue
        if estimate(trial, layout).total <= available:
            return size
        size >>= 1
    return None


def fits_message(g: Geometry, layout: Layout | None, est: HostEstimate, host: HostMemory,
                 before_layout: bool = False) -> str:
    """The one-line refusal: the estimate by part, what is available, and what would fit."""
    memory = sum(g.config.memory) if isinstance(g.config.memory, tuple) else g.config.memory
    p = est.parts
    parts = [f"allocator arrays {human(p['allocator'])}"]
    if p["page_ext"]:
        who = ", ".join(f"{name} {human(b)}" for name, b in est.clients.items() if b)
        parts.append(f"page_ext tables {human(p['page_ext'])} at {est.record_size} bytes/page ({who})")
    parts += [f"page contents {human(p['contents'])}", f"working memory {human(p['working'])}"]
    avail = host.available or 0
    fixes = []
    size = largest_fitting_memory(g, layout, avail)
    if size is not None:
        fixes.append(f"use --memory {format_size(size)} or less")
    else:
        fixes.append("give the machine less memory" if isinstance(g.config.memory, tuple)
                     else "free host memory (even the smallest machine does not fit)")
    if layout is not None and layout.record_size:
        bare = estimate(g, None).total
        if bare <= avail:
            fixes.append(f"enable fewer page_ext clients (with none it needs {human(bare)})")
        else:
            fixes.append("enable fewer page_ext clients")
    if before_layout:
        parts.append("page_ext tables for the clients the boot line enables come on top")
    return (f"a {format_size(memory)} machine needs about {human(est.total)} of host memory "
            f"({', '.join(parts)}) but {host.describe()}; {', or '.join(fixes)}")


def check(g: Geometry, layout: Layout | None, host: HostMemory) -> HostEstimate:
    """Raise ``ResourceError`` when the estimate is more than the host has; return the estimate."""
    est = estimate(g, layout)
    if host.available is not None and est.total > host.available:
        raise ResourceError(fits_message(g, layout, est, host))
    return est


def check_machine(g: Geometry, host: HostMemory) -> HostEstimate:
    """Before the machine exists: can the host map its allocator arrays at all?

    The clients' ``pageext_need`` hooks see the machine at its memblock
    stage, so its allocator arrays are mapped (not touched) before the
    layout, and so the full estimate, is known.  This refuses a machine
    whose arrays alone do not fit; ``check`` then judges the whole.
    """
    est = estimate(g, None)
    if host.available is not None and est.parts["allocator"] > host.available:
        raise ResourceError(fits_message(g, None, est, host, before_layout=True))
    return est

