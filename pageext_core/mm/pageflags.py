"""Page flags: bit numbers, and ``%pGp`` formatting.

Bit numbers follow a v6.x x86_64 kernel (``PG_writeback`` and ``PG_head`` in
the low byte).  The printed value also carries the node and zone fields in the
top bits of ``page->flags``, as the kernel's does; our layout puts the node in
bits 58..63 (NODES_SHIFT 6) and the zone in bits 56..57 (ZONES_SHIFT 2).
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
PG_error: Final = 10
PG_slab: Final = 11
PG_owner_priv_1: Final = 12
PG_arch_1: Final = 13
PG_reserved: Final = 14
PG_private: Final = 15
PG_private_2: Final = 16
PG_mappedtodisk: Final = 17
PG_reclaim: Final = 18
PG_swapbacked: Final = 19
PG_unevictable: Final = 20
PG_mlocked: Final = 21
# Aliases the kernel defines on shared bits.
PG_swapcache: Final = PG_owner_priv_1
PG_compound: Final = PG_head

NR_PAGEFLAGS: Final = 22
PAGEFLAGS_MASK: Final = (1 << NR_PAGEFLAGS) - 1

NODES_SHIFT: Final = 6
ZONES_SHIFT: Final = 2
NODES_PGSHIFT: Final = 64 - NODES_SHIFT
ZONES_PGSHIFT: Final = NODES_PGSHIFT - ZONES_SHIFT

# %pGp walks its name table in this order (not bit order).
_NAME_ORDER: Final[tuple[tuple[int, str], ...]] = (
    (PG_locked, "locked"),
    (PG_waiters, "waiters"),
    (PG_error, "error"),
    (PG_referenced, "referenced"),
    (PG_uptodate, "uptodate"),
    (PG_dirty, "dirty"),
    (PG_lru, "lru"),
    (PG_active, "active"),
    (PG_workingset, "workingset"),
    (PG_slab, "slab"),
    (PG_owner_priv_1, "owner_priv_1"),
    (PG_arch_1, "arch_1"),
    (PG_reserved, "reserved"),
    (PG_private, "private"),
    (PG_private_2, "private_2"),
    (PG_writeback, "writeback"),
    (PG_head, "head"),
    (PG_mappedtodisk, "mappedtodisk"),
    (PG_reclaim, "reclaim"),
    (PG_swapbacked, "swapbacked"),
    (PG_unevictable, "unevictable"),
    (PG_mlocked, "mlocked"),
)
FLAG_BY_NAME: Final[dict[str, int]] = {name: bit for bit, name in _NAME_ORDER} | {
    "swapcache": PG_swapcache,
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
            raise ValueError(f"unknown page flag {name!r}{hint}")
        mask |= 1 << FLAG_BY_NAME[key]
    return mask


def format_pageflags(flags: int, node: int, zone: int) -> str:
    """``%pGp``: ``0x2000000000080068(uptodate|lru|...|node=0|zone=2)``."""
    flags &= PAGEFLAGS_MASK
    value = flags | (node << NODES_PGSHIFT) | (zone << ZONES_PGSHIFT)
    parts = flag_names(flags)
    parts.append(f"node={node}")
    parts.append(f"zone={zone}")
    return f"{value:#x}({'|'.join(parts)})"
