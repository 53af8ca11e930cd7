"""GFP flags: the kernel's bit values, names, ``%pGg`` formatting and parsing.

A gfp mask says where an allocation may come from (zone), what kind of page
it wants (migratetype) and how hard to try. Everything here is a pure
function of the mask so the allocator can resolve it once per call.
"""
from __future__ import annotations

import re
from typing import Final

from pageext_core.mm.errors import GfpParseError

__GFP_DMA: Final = 0x01
__GFP_HIGHMEM: Final = 0x02
__GFP_DMA32: Final = 0x04
__GFP_MOVABLE: Final = 0x08
__GFP_RECLAIMABLE: Final = 0x10
__GFP_HIGH: Final = 0x20
__GFP_IO: Final = 0x40
__GFP_FS: Final = 0x80
__GFP_ZERO: Final = 0x100
__GFP_DIRECT_RECLAIM: Final = 0x400
__GFP_KSWAPD_RECLAIM: Final = 0x800
__GFP_WRITE: Final = 0x1000
__GFP_NOWARN: Final = 0x2000
__GFP_RETRY_MAYFAIL: Final = 0x4000
__GFP_NOFAIL: Final = 0x8000
__GFP_NORETRY: Final = 0x10000
__GFP_MEMALLOC: Final = 0x20000
__GFP_COMP: Final = 0x40000
__GFP_NOMEMALLOC: Final = 0x80000
__GFP_HARDWALL: Final = 0x100000
__GFP_THISNODE: Final = 0x200000
__GFP_ACCOUNT: Final = 0x400000
__GFP_ZEROTAGS: Final = 0x800000

__GFP_RECLAIM: Final = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM
GFP_ATOMIC: Final = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL: Final = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT: Final = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT: Final = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_NOIO: Final = __GFP_RECLAIM
GFP_NOFS: Final = __GFP_RECLAIM | __GFP_IO
GFP_USER: Final = GFP_KERNEL | __GFP_HARDWALL
GFP_DMA: Final = __GFP_DMA
GFP_DMA32: Final = __GFP_DMA32
GFP_HIGHUSER: Final = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE: Final = GFP_HIGHUSER | __GFP_MOVABLE
GFP_TRANSHUGE_LIGHT: Final = (
    GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN
) & ~__GFP_RECLAIM
GFP_TRANSHUGE: Final = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM

GFP_MOVABLE_MASK: Final = __GFP_RECLAIMABLE | __GFP_MOVABLE
GFP_MOVABLE_SHIFT: Final = 3

# Name table in the order the kernel's %pGg walks it: composites first, then
# single bits; a name is printed when all its bits are still set, and those
# bits are then consumed.  This order is what makes real dumps read
# ``GFP_KERNEL|__GFP_HIGHMEM|__GFP_NOWARN|__GFP_ZERO``.
GFP_NAMES: Final[tuple[tuple[int, str], ...]] = (
    (GFP_TRANSHUGE, "GFP_TRANSHUGE"),
    (GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT"),
    (GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"),
    (GFP_HIGHUSER, "GFP_HIGHUSER"),
    (GFP_USER, "GFP_USER"),
    (GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"),
    (GFP_KERNEL, "GFP_KERNEL"),
    (GFP_NOFS, "GFP_NOFS"),
    (GFP_ATOMIC, "GFP_ATOMIC"),
    (GFP_NOIO, "GFP_NOIO"),
    (GFP_NOWAIT, "GFP_NOWAIT"),
    (GFP_DMA, "GFP_DMA"),
    (__GFP_HIGHMEM, "__GFP_HIGHMEM"),
    (GFP_DMA32, "GFP_DMA32"),
    (__GFP_HIGH, "__GFP_HIGH"),
    (__GFP_IO, "__GFP_IO"),
    (__GFP_FS, "__GFP_FS"),
    (__GFP_NOWARN, "__GFP_NOWARN"),
    (__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"),
    (__GFP_NOFAIL, "__GFP_NOFAIL"),
    (__GFP_NORETRY, "__GFP_NORETRY"),
    (__GFP_COMP, "__GFP_COMP"),
    (__GFP_ZERO, "__GFP_ZERO"),
    (__GFP_NOMEMALLOC, "__GFP_NOMEMALLOC"),
    (__GFP_MEMALLOC, "__GFP_MEMALLOC"),
    (__GFP_HARDWALL, "__GFP_HARDWALL"),
    (__GFP_THISNODE, "__GFP_THISNODE"),
    (__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE"),
    (__GFP_MOVABLE, "__GFP_MOVABLE"),
    (__GFP_ACCOUNT, "__GFP_ACCOUNT"),
    (__GFP_WRITE, "__GFP_WRITE"),
    (__GFP_RECLAIM, "__GFP_RECLAIM"),
    (__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
    (__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
    (__GFP_ZEROTAGS, "__GFP_ZEROTAGS"),
)
# Parsing also accepts the __GFP_DMA/__GFP_DMA32 spellings and GFP_NOWAIT etc.
GFP_BY_NAME: Final[dict[str, int]] = {name: bits for bits, name in GFP_NAMES} | {
    "__GFP_DMA": __GFP_DMA,
    "__GFP_DMA32": __GFP_DMA32,
}
GFP_BITS_MASK: Final = (1 << 24) - 1

_format_cache: dict[int, str] = {}


def format_gfp(mask: int) -> str:
    """``%pGg``-style names, e.g. ``GFP_KERNEL|__GFP_ZERO`` (empty for 0)."""
    cached = _format_cache.get(mask)
    if cached is not None:
        return cached
    names = []
    rest = mask
    for bits, name in GFP_NAMES:
        if rest & bits == bits and rest:
            names.append(name)
            rest &= ~bits
    if rest:
        names.append(f"{rest:#x}")
    text = "|".join(names)
    if len(_format_cache) < 4096:
        _format_cache[mask] = text
    return text


def format_gfp_mask(mask: int) -> str:
    """``%#x(%pGg)`` as page_owner prints it: ``0xcc0(GFP_KERNEL)``, ``0x0()``."""
    return f"{mask:#x}({format_gfp(mask)})"


_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|0[xX][0-9a-fA-F]+|[0-9]+)\s*")


def parse_gfp(text: str | int) -> int:
    """Parse ``GFP_KERNEL|__GFP_ZERO``, ``0x140cca``, ``3264`` or ``""`` into a mask.

    Accepts what tracepoints and page_owner dumps print, including the
    ``0xcc0(GFP_KERNEL)`` form (the number wins; the names must agree).
    """
    if isinstance(text, int):
        if text < 0:
            raise GfpParseError(f"gfp mask {text} is negative")
        return text
    s = text.strip()
    m = re.fullmatch(r"(0[xX][0-9a-fA-F]+)\((.*)\)", s)
    if m:
        value = int(m.group(1), 16)
        if m.group(2).strip() and parse_gfp(m.group(2)) != value:
            raise GfpParseError(f"gfp mask {s!r}: the names do not add up to {m.group(1)}")
        return value
    if not s:
        return 0
    mask = 0
    for part in s.split("|"):
        tok = _TOKEN.fullmatch(part)
        if not tok:
            raise GfpParseError(f"gfp mask {text!r}: cannot read {part!r}; use names like GFP_KERNEL|__GFP_ZERO or a number like 0xcc0")
        word = tok.group(1)
        if word[0].isdigit():
            mask |= int(word, 0)
            continue
        bits = GFP_BY_NAME.get(word)
        if bits is None:
            from difflib import get_close_matches

            close = get_close_matches(word, GFP_BY_NAME, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise GfpParseError(f"gfp mask {text!r}: unknown flag {word!r}{hint}")
        mask |= bits
    return mask


def gfp_migratetype(mask: int) -> int:
    """Migratetype a request asks for: 0 Unmovable, 1 Movable, 2 Reclaimable."""
    return (mask & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT

# A public module (docs/writing-plugins.md, "What is public"): these names are its API.
__all__ = [
    "GFP_ATOMIC",
    "GFP_BITS_MASK",
    "GFP_BY_NAME",
    "GFP_DMA",
    "GFP_DMA32",
    "GFP_HIGHUSER",
    "GFP_HIGHUSER_MOVABLE",
    "GFP_KERNEL",
    "GFP_KERNEL_ACCOUNT",
    "GFP_MOVABLE_MASK",
    "GFP_MOVABLE_SHIFT",
    "GFP_NAMES",
    "GFP_NOFS",
    "GFP_NOIO",
    "GFP_NOWAIT",
    "GFP_TRANSHUGE",
    "GFP_TRANSHUGE_LIGHT",
    "GFP_USER",
    "__GFP_ACCOUNT",
    "__GFP_COMP",
    "__GFP_DIRECT_RECLAIM",
    "__GFP_DMA",
    "__GFP_DMA32",
    "__GFP_FS",
    "__GFP_HARDWALL",
    "__GFP_HIGH",
    "__GFP_HIGHMEM",
    "__GFP_IO",
    "__GFP_KSWAPD_RECLAIM",
    "__GFP_MEMALLOC",
    "__GFP_MOVABLE",
    "__GFP_NOFAIL",
    "__GFP_NOMEMALLOC",
    "__GFP_NORETRY",
    "__GFP_NOWARN",
    "__GFP_RECLAIM",
    "__GFP_RECLAIMABLE",
    "__GFP_RETRY_MAYFAIL",
    "__GFP_THISNODE",
    "__GFP_WRITE",
    "__GFP_ZERO",
    "__GFP_ZEROTAGS",
    "format_gfp",
    "format_gfp_mask",
    "gfp_migratetype",
    "parse_gfp",
]
