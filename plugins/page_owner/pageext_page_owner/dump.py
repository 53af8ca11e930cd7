"""How page_owner prints one record: the dump file (current and 2014 RFC) and ``dump_page_owner``.

The texts are the kernel's, field for field, so that scripts and people
who read real dumps read ours (formats: docs/page_owner.md and the project
reference, section 4).  Stacks are formatted once per depot handle and
cached: handles never change meaning.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from pageext_core.mm.constants import MIGRATETYPE_NAMES
from pageext_core.mm.gfp import format_gfp_mask, gfp_migratetype
from pageext_core.mm.pageflags import (
    PG_active,
    PG_dirty,
    PG_head,
    PG_locked,
    PG_lru,
    PG_mappedtodisk,
    PG_referenced,
    PG_swapcache,
    PG_uptodate,
    PG_writeback,
)
from pageext_page_owner.record import OwnerRecord

if TYPE_CHECKING:
    from pageext_core.mm import Machine

FORMATS = ("current", "2014")

# The 2014 RFC's one-letter flag columns, in print order.  6.12 has no
# PG_error and no PG_slab (slab is a page type), so E and S stay blank
# (bit None); M is PG_mappedtodisk, an alias of PG_owner_2 in 6.12.
RFC2014_FLAG_COLUMNS: tuple[tuple[int | None, str], ...] = (
    (PG_locked, "K"), (None, "E"), (PG_referenced, "R"), (PG_uptodate, "U"),
    (PG_dirty, "D"), (PG_lru, "L"), (PG_active, "A"), (None, "S"),
    (PG_writeback, "W"), (PG_head, "C"), (PG_swapcache, "B"), (PG_mappedtodisk, "M"),
)

# Our depot keeps symbols, not addresses; the 2014 format prints an address
# per frame, so one is made up: a stable (crc32, never hash()) function
# start inside x86_64 kernel text, plus the frame's offset.
KERNEL_TEXT = 0xFFFFFFFF81000000
_FRAME_RE = re.compile(r"(?P<name>[^+\s]+)(?:\+0x(?P<off>[0-9a-fA-F]+)/0x[0-9a-fA-F]+)?")


def frame_address(frame: str) -> int:
    """A made-up, stable kernel text address for a frame such as ``sym+0x1a/0x40 [mod]``."""
    m = _FRAME_RE.match(frame.strip())
    name = m.group("name") if m else frame.strip()
    off = int(m.group("off"), 16) if m and m.group("off") else 0
    return KERNEL_TEXT + ((zlib.crc32(name.encode()) & 0x3FFFFF) << 4) + off


def rfc2014_flags(page_flags: int) -> str:
    """Twelve columns ``KERUDLASWCBM``, a space where the flag is clear."""
    return "".join(letter if bit is not None and page_flags >> bit & 1 else " " for bit, letter in RFC2014_FLAG_COLUMNS)


class Dumper:
    """Formats records of one machine (its depot, page flags and pageblocks)."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._stacks: dict[int, str] = {}
        self._stacks2014: dict[int, str] = {}

    def formatter(self, fmt: str | int) -> Callable[[OwnerRecord], str]:
        """The record formatter for a dump format name (``2014`` may come as a number from TOML or --param)."""
        fmt = str(fmt)
        if fmt == "current":
            return self.current
        if fmt == "2014":
            return self.rfc2014
        raise ValueError(f"page_owner: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def stack(self, handle: int) -> str:
        """The frames of a stack, one per line with a leading space (``%pS``)."""
        text = self._stacks.get(handle)
        if text is None:
            text = self._stacks[handle] = self.machine.depot.format(handle)
        return text

    def stack2014(self, handle: int) -> str:
        """The frames as the 2014 RFC printed them: `` [<address>] symbol``."""
        text = self._stacks2014.get(handle)
        if text is None:
            frames = self.machine.depot.fetch(handle)
            text = self._stacks2014[handle] = "".join(f" [<{frame_address(f):016x}>] {f}\n" for f in frames)
        return text

    # -- the dump file ---------------------------------------------------------------

    def current(self, rec: OwnerRecord) -> str:
        """One record of ``/sys/kernel/debug/page_owner`` (mainline), ending with its empty line."""
        m = self.machine
        pfn = rec.pfn
        mask = rec.gfp_mask
        text = (
            f"Page allocated via order {rec.order}, mask {format_gfp_mask(mask)}, pid {rec.pid}, "
            f"tgid {rec.tgid} ({rec.comm_text}), ts {rec.ts_nsec} ns\n"
            f"PFN {pfn:#x} type {MIGRATETYPE_NAMES[gfp_migratetype(mask)]} Block {pfn >> m.pageblock_order} "
            f"type {MIGRATETYPE_NAMES[m.pageblock_migratetype(pfn)]} Flags {m.format_page_flags(pfn)}\n"
            + self.stack(rec.handle)
        )
        reason = rec.migrate_reason
        if reason is not None:
            text += f"Page has been migrated, last migrate reason: {reason}\n"
        return text + "\n"

    def rfc2014(self, rec: OwnerRecord) -> str:
        """One record in the 2014 RFC format (``Fallback`` when the pageblock type differs)."""
        m = self.machine
        pfn = rec.pfn
        block_mt = m.pageblock_migratetype(pfn)
        fallback = "Fallback" if block_mt != gfp_migratetype(rec.gfp_mask) else "        "  # as wide as the word
        return (
            f"Page allocated via order {rec.order}, mask 0x{rec.gfp_mask:x}\n"
            f"PFN {pfn} Block {pfn >> m.pageblock_order} type {block_mt} {fallback} "
            f"Flags {rfc2014_flags(m.page_flags(pfn))}\n"
            + self.stack2014(rec.handle)
            + "\n"
        )

    # -- dump_page_owner ----------------------------------------------------------------

    def owner_dump(self, rec: OwnerRecord | None, owner: bool, allocated: bool) -> str:
        """page_owner's lines in a bad-page report (``dump_page_owner``), without a final newline.

        ``rec`` None means the pfn has no page_ext at all; ``owner`` False
        means the page never had a record.
        """
        if rec is None:
            return "There is not page extension available."
        if not owner:
            return "page_owner info is not present (never set?)"
        mask = rec.gfp_mask
        lines = [
            f"page_owner tracks the page as {'allocated' if allocated else 'freed'}",
            f"page last allocated via order {rec.order}, migratetype {MIGRATETYPE_NAMES[gfp_migratetype(mask)]}, "
            f"gfp_mask {format_gfp_mask(mask)}, pid {rec.pid}, tgid {rec.tgid} ({rec.comm_text}), "
            f"ts {rec.ts_nsec}, free_ts {rec.free_ts_nsec}",
        ]
        if rec.handle:
            lines.append(self.stack(rec.handle).rstrip("\n"))
        else:
            lines.append("page_owner allocation stack trace missing")
        if rec.free_handle:
            lines.append(f"page last free pid {rec.free_pid} tgid {rec.free_tgid} stack trace:")
            lines.append(self.stack(rec.free_handle).rstrip("\n"))
        else:
            lines.append("page_owner free stack trace missing")
        reason = rec.migrate_reason
        if reason is not None:
            lines.append(f"page has been migrated, last migrate reason: {reason}")
        return "\n".join(line for line in lines if line)
