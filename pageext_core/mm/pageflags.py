"""Page flags: bit numbers, and ``%pGp`` formatting, as Linux 6.12 on x86_64.

Bit numbers are 6.12's ``enum pageflags`` with the options a distro x86_64
kernel enables (MMU, MEMORY_FAILURE, PAGE_IDLE_FLAG, X86_PAT's arch_2):
24 flags.  6.12 has no ``PG_error`` (removed), no ``PG_slab`` (slab is a
page type since 6.10), no ``PG_mappedtodisk`` bit (it is an alias of
``PG_owner_2``, new in 6.12) and no ``PG_uncached`` (x86 uses arch_2).

The printed word also carries the fields area at the top of ``page->flags``
in the common distro layout (NODES_SHIFT 10, five zones so ZONES_SHIFT 3,
NR_CPUS 8192 so a 21-bit ``lastcpupid``): node in bits 54..63, zone in
51..53, lastcpupid in 30..50.  No page of this machine is ever touched by
NUMA balancing, so lastcpupid is all ones (``page_cpupid_reset_last``), as
every real dump of such a page shows: an untouched Normal page of node 0
prints ``0x17ffffc0000000(node=0|zone=2|lastcpupid=0x1fffff)``.
"""
from __future__ import annotations

from typing import Final

PG_locked: Final = 0
PG_writeback: Final = 1
PG_referenced: Final = 2
PG_uptodate: Final = 3
PG_dirty: Final = 4
PG_lru: Final = 5
PG_head: Final = 6
PG_waiters: Final = 7
PG_active: Final = 8
PG_workingset: Final = 9
PG_owner_priv_1: Final = 10
PG_owner_2: Final = 11
PG_arch_1: Final = 12
PG_reserved: Final = 13
PG_private: Final = 14
PG_private_2: Final = 15
PG_reclaim: Final = 16
PG_swapbacked: Final = 17
PG_unevictable: Final = 18
PG_mlocked: Final = 19
PG_hwpoison: Final = 20
PG_young: Final = 21
PG_idle: Final = 22
PG_arch_2: Final = 23
# Aliases the kernel defines on shared bits (accepted as input, never printed).
PG_swapcache: Final = PG_owner_priv_1
PG_checked: Final = PG_owner_priv_1
PG_anon_exclusive: Final = PG_owner_2
PG_mappedtodisk: Final = PG_owner_2
PG_readahead: Final = PG_reclaim
PG_isolated: Final = PG_reclaim
PG_compound: Final = PG_head

NR_PAGEFLAGS: Final = 24
PAGEFLAGS_MASK: Final = (1 << NR_PAGEFLAGS) - 1

# The fields area (include/linux/page-flags-layout.h), from bit 63 down.
NODES_SHIFT: Final = 10
ZONES_SHIFT: Final = 3
LAST_CPUPID_SHIFT: Final = 21
NODES_PGSHIFT: Final = 64 - NODES_SHIFT
ZONES_PGSHIFT: Final = NODES_PGSHIFT - ZONES_SHIFT
LAST_CPUPID_PGSHIFT: Final = ZONES_PGSHIFT - LAST_CPUPID_SHIFT
LAST_CPUPID_MASK: Final = (1 << LAST_CPUPID_SHIFT) - 1

# %pGp walks its name table (``__def_pageflag_names``) in this order, not bit
# order: note idle before young although young has the lower bit.
_NAME_ORDER: Final[tuple[tuple[int, str], ...]] = (
    (PG_locked, "locked"),
    (PG_waiters, "waiters"),
    (PG_referenced, "referenced"),
    (PG_uptodate, "uptodate"),
    (PG_dirty, "dirty"),
    (PG_lru, "lru"),
    (PG_active, "active"),
    (PG_workingset, "workingset"),
    (PG_owner_priv_1, "owner_priv_1"),
    (PG_owner_2, "owner_2"),
    (PG_arch_1, "arch_1"),
    (PG_reserved, "reserved"),
    (PG_private, "private"),
    (PG_private_2, "private_2"),
    (PG_writeback, "writeback"),
    (PG_head, "head"),
    (PG_reclaim, "reclaim"),
    (PG_swapbacked, "swapbacked"),
    (PG_unevictable, "unevictable"),
    (PG_mlocked, "mlocked"),
    (PG_hwpoison, "hwpoison"),
    (PG_idle, "idle"),
    (PG_young, "young"),
    (PG_arch_2, "arch_2"),
)
FLAG_BY_NAME: Final[dict[str, int]] = {name: bit for bit, name in _NAME_ORDER} | {
    "swapcache": PG_swapcache,
    "checked": PG_checked,
    "anon_exclusive": PG_anon_exclusive,
    "mappedtodisk": PG_mappedtodisk,
    "readahead": PG_readahead,
    "isolated": PG_isolated,
    "compound": PG_head,
}


def flag_names(flags: int) -> list[str]:
    """Names of the set flag bits, in ``%pGp`` order."""
    return [name for bit, name in _NAME_ORDER if flags >> bit & 1]


def flags_mask(names: str | list[str] | tuple[str, ...]) -> int:
    """Bits for ``"lru|active"`` or ``["lru", "active"]``; unknown names are an error."""
    if isinstance(names, str):
        names = [n for n in names.replace(",", "|").split("|") if n.strip()]
    mask = 0
    for name in names:
        key = name.strip().lower().removeprefix("pg_")
        if key not in FLAG_BY_NAME:
            from difflib import get_close_matches

            close = get_close_matches(key, FLAG_BY_NAME, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            gone = " (6.12 has no such page flag)" if key in ("error", "slab", "uncached") else ""
            raise ValueError(f"unknown page flag {name!r}{gone}{hint}")
        mask |= 1 << FLAG_BY_NAME[key]
    return mask


def page_flags_word(flags: int, node: int, zone: int, last_cpupid: int = LAST_CPUPID_MASK) -> int:
    """The whole ``page->flags`` word: the flag bits plus node, zone and lastcpupid fields."""
    return ((flags & PAGEFLAGS_MASK) | (node << NODES_PGSHIFT) | (zone << ZONES_PGSHIFT)
            | ((last_cpupid & LAST_CPUPID_MASK) << LAST_CPUPID_PGSHIFT))


def format_pageflags(flags: int, node: int, zone: int, last_cpupid: int = LAST_CPUPID_MASK) -> str:
    """``%pGp`` (``format_page_flags``): ``0x17ffffc0000120(lru|active|node=0|zone=2|lastcpupid=0x1fffff)``.

    The names of the set bits in table order, then ``node=`` and ``zone=`` in
    decimal and ``lastcpupid=`` in hex, all separated by ``|``.
    """
    flags &= PAGEFLAGS_MASK
    parts = flag_names(flags)
    parts.append(f"node={node}")
    parts.append(f"zone={zone}")
    parts.append(f"lastcpupid={last_cpupid & LAST_CPUPID_MASK:#x}")
    return f"{page_flags_word(flags, node, zone, last_cpupid):#x}({'|'.join(parts)})"

# A public module (docs/writing-plugins.md, "What is public"): these names are its API.
__all__ = [
    "FLAG_BY_NAME",
    "LAST_CPUPID_MASK",
    "LAST_CPUPID_PGSHIFT",
    "LAST_CPUPID_SHIFT",
    "NODES_PGSHIFT",
    "NODES_SHIFT",
    "NR_PAGEFLAGS",
    "PAGEFLAGS_MASK",
    "ZONES_PGSHIFT",
    "ZONES_SHIFT",
    "PG_active",
    "PG_anon_exclusive",
    "PG_arch_1",
    "PG_arch_2",
    "PG_checked",
    "PG_compound",
    "PG_dirty",
    "PG_head",
    "PG_hwpoison",
    "PG_idle",
    "PG_isolated",
    "PG_locked",
    "PG_lru",
    "PG_mappedtodisk",
    "PG_mlocked",
    "PG_owner_2",
    "PG_owner_priv_1",
    "PG_private",
    "PG_private_2",
    "PG_readahead",
    "PG_reclaim",
    "PG_referenced",
    "PG_reserved",
    "PG_swapbacked",
    "PG_swapcache",
    "PG_unevictable",
    "PG_uptodate",
    "PG_waiters",
    "PG_workingset",
    "PG_writeback",
    "PG_young",
    "flag_names",
    "flags_mask",
    "format_pageflags",
    "page_flags_word",
]
