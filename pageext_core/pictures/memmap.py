"""``memmap.png``: physical memory as a picture, one cell per page (or per run of pages on big machines).

Every cell is coloured by what its pages are: free, allocated (by
migratetype), page_ext tables, memblock reservations, guard pages, free
pages that debug_pagealloc poisoned and unmapped, or a hole.  Zone and
section boundaries are drawn and labelled.  When a cell stands for several
pages it takes the colour of the state most of its pages are in.

The machine is read in chunks with numpy (``page_states``), never a Python
object per page: a 1 TiB machine becomes a picture in seconds with a few
megabytes of working memory.  matplotlib is imported only inside ``render``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pageext_core.mm import buddy as _b
from pageext_core.mm.constants import MIGRATE_RECLAIMABLE, PAGE_SIZE

if TYPE_CHECKING:
    from pageext_core.mm.machine import Machine

# Category codes, in drawing (legend) order.
HOLE, FREE, FREE_UNMAPPED, UNMOVABLE, MOVABLE, RECLAIMABLE, PAGE_EXT, RESERVED, GUARD = range(9)
NR_CATEGORIES = 9
CATEGORY_NAMES = ("hole / offline", "free", "free, poisoned and unmapped", "allocated, unmovable",
                  "allocated, movable", "allocated, reclaimable", "page_ext tables", "reserved (memblock)",
                  "guard page")
# Colour-blind-friendly where it matters (free vs allocated), RGB 0..255.
PALETTE = np.array([
    (255, 255, 255),  # hole: white (the background)
    (168, 221, 181),  # free: light green
    (204, 235, 197),  # free, unmapped: paler green
    (215, 48, 39),    # unmovable: red
    (69, 117, 180),   # movable: blue
    (253, 174, 97),   # reclaimable: orange
    (118, 42, 131),   # page_ext: purple
    (99, 99, 99),     # reserved: grey
    (0, 0, 0),        # guard: black
], dtype=np.uint8)
HIGHLIGHT = np.array((255, 0, 255), np.uint8)  # cells of the overlaid stack: magenta

CHUNK_PAGES = 1 << 20  # pages read at a time: bounds working memory (tens of MiB) at any machine size
MAX_CELLS = 1 << 19  # above this many pages, one cell stands for several


def _rgb(color: np.ndarray) -> tuple[float, float, float]:
    """A palette entry as matplotlib's 0..1 colour."""
    r, g, b = (int(c) / 255 for c in color[:3])
    return (r, g, b)


def page_states(machine: Machine, start: int, end: int,
                table_chunks: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Category code (uint8) of every page in ``[start, end)``; ``start`` aligned to a max-order block.

    The one place that reads the machine's arrays: block heads and orders
    (``state``), pageblock migratetypes (``pb_mt``), present ranges, and
    debug_pagealloc's unmapped set (``contents``).  ``table_chunks`` are the
    (pfn, pages) runs page_ext tables live in.  Read-only.
    """
    m = machine
    n = end - start
    st = m.state[start:end]
    heads = np.flatnonzero(st)
    code = np.zeros(n, np.uint8)
    if heads.size:
        hs = st[heads]
        kind = hs >> 4
        size = np.left_shift(1, (hs & 15).astype(np.int64))
        c = np.zeros(heads.size, np.int16)
        c[(kind == _b.K_FREE) | (kind == _b.K_PCP)] = FREE
        c[kind == _b.K_ALLOC_MOVABLE] = MOVABLE
        alloc = kind == _b.K_ALLOC
        pbmt = m.pb_mt[(heads + start) >> m.pageblock_order]
        c[alloc] = np.where(pbmt[alloc] == MIGRATE_RECLAIMABLE, RECLAIMABLE, UNMOVABLE)
        c[kind == _b.K_RESERVED] = RESERVED
        c[kind == _b.K_HELD] = GUARD
        # Blocks do not overlap: +code at each head, -code past each end, summed along the pfns.
        delta = np.zeros(n + 1, np.int16)
        delta[heads] = c
        ends = np.minimum(heads + size, n)
        delta[ends] -= c  # ends are distinct (blocks do not overlap); an end may be the next head
        code = np.cumsum(delta[:n], dtype=np.int16).astype(np.uint8)
    present = np.zeros(n, bool)
    for s, e in m.present_ranges:
        s, e = max(s, start), min(e, end)
        if s < e:
            present[s - start : e - start] = True
    code[~present] = HOLE
    for p, k in table_chunks:
        s, e = max(p, start), min(p + k, end)
        if s < e:
            code[s - start : e - start] = PAGE_EXT
    unmapped = m.contents._unmapped
    if unmapped is not None:
        seg = unmapped[start:end]
        code[seg & (code == FREE)] = FREE_UNMAPPED
    return code


_RECORD = re.compile(r"^Page allocated via order (\d+),.*\nPFN (0x[0-9a-f]+) [^\n]*\n((?: [^\n]*\n?)*)", re.M)


def stack_pages(dump: str, needle: str) -> np.ndarray:
    """The pfns of every page allocated from a stack with a frame containing ``needle``, from a page_owner dump."""
    out = []
    for m in _RECORD.finditer(dump):
        if needle in m.group(3):
            pfn, order = int(m.group(2), 16), int(m.group(1))
            out.append(np.arange(pfn, pfn + (1 << order), dtype=np.int64))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


@dataclass
class Grid:
    """The cells: ``codes[row, col]``, each standing for ``pages_per_cell`` pages from pfn 0 on."""

    codes: np.ndarray  # uint8 [rows, cols]
    pages_per_cell: int
    counts: np.ndarray  # pages per category, whole machine
    highlight: np.ndarray | None = None  # bool [rows, cols]

    @property
    def rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def cols(self) -> int:
        return int(self.codes.shape[1])

    def cell_of(self, pfn: int) -> tuple[int, int]:
        """(row, col) of the cell holding ``pfn``."""
        c = pfn // self.pages_per_cell
        return c // self.cols, c % self.cols


def grid_shape(max_pfn: int) -> tuple[int, int, int]:
    """(pages per cell, cols, rows): a power of two pages per cell keeping at most MAX_CELLS cells."""
    ppc = 1
    while -(-max_pfn // ppc) > MAX_CELLS:
        ppc <<= 1
    cells = -(-max_pfn // ppc)
    cols = 1 << max(6, min(10, round(math.log2(max(math.sqrt(cells), 1)))))
    rows = max(1, -(-cells // cols))
    return ppc, cols, rows


def build_grid(machine: Machine, table_chunks: Sequence[tuple[int, int]] = (),
               highlight_pfns: np.ndarray | None = None) -> Grid:
    """Bin the machine's pages into cells (majority state per cell), a chunk at a time."""
    m = machine
    max_pfn = m.geometry.max_pfn
    ppc, cols, rows = grid_shape(max_pfn)
    codes = np.zeros(rows * cols, np.uint8)
    counts = np.zeros(NR_CATEGORIES, np.int64)
    step = max(CHUNK_PAGES, ppc, 1 << m.max_order)
    step -= step % ppc
    for start in range(0, max_pfn, step):
        end = min(start + step, max_pfn)
        pc = page_states(m, start, end, table_chunks)
        counts += np.bincount(pc, minlength=NR_CATEGORIES)
        c0 = start // ppc
        if ppc == 1:
            codes[c0 : c0 + pc.size] = pc
            continue
        ncell = -(-pc.size // ppc)
        pad = np.zeros(ncell * ppc, np.uint8)  # a partial last cell: its missing pages count as holes
        pad[: pc.size] = pc
        per = np.zeros((ncell, NR_CATEGORIES), np.int32)
        _bincount2(per, pad, ppc)
        codes[c0 : c0 + ncell] = per.argmax(axis=1)
    hl = None
    if highlight_pfns is not None and len(highlight_pfns):
        flat = np.zeros(rows * cols, bool)
        flat[np.asarray(highlight_pfns, np.int64) // ppc] = True
        hl = flat.reshape(rows, cols)
    return Grid(codes.reshape(rows, cols), ppc, counts, hl)


def _bincount2(per: np.ndarray, pad: np.ndarray, ppc: int) -> None:
    """Per-cell category counts for big chunks: one bincount over cell*NR_CATEGORIES + code."""
    ncell = per.shape[0]
    key = (np.arange(ncell, dtype=np.int32) * NR_CATEGORIES)[:, None] + pad.reshape(ncell, ppc)
    per += np.bincount(key.ravel(), minlength=ncell * NR_CATEGORIES).reshape(ncell, NR_CATEGORIES).astype(np.int32)


@dataclass
class Placement:
    """Where the cells are in the PNG: cell (row, col) covers pixels x0 + col*scale .. and y0 + row*scale .."""

    x0: int
    y0: int
    scale: int
    width: int
    height: int

    def pixel(self, row: int, col: int) -> tuple[int, int]:
        """(x, y) of the centre of a cell."""
        return self.x0 + col * self.scale + self.scale // 2, self.y0 + row * self.scale + self.scale // 2


LEFT, RIGHT, TOP, BOTTOM = 150, 340, 70, 40  # margins in pixels: labels, legend, title


def placement(grid: Grid) -> Placement:
    scale = max(1, 1100 // max(grid.cols, grid.rows))  # about a megapixel of cells, whatever the shape
    w = LEFT + grid.cols * scale + RIGHT
    h = TOP + max(grid.rows * scale, 360) + BOTTOM
    return Placement(LEFT, TOP, scale, w, h)


def _size_text(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift} {unit}"
    return f"{nbytes:#x}"


def render(machine: Machine, title: str, table_chunks: Sequence[tuple[int, int]] = (),
           highlight_pfns: np.ndarray | None = None, highlight_label: str = "") -> tuple[bytes, Grid, Placement]:
    """The memmap PNG's bytes, with the grid and where it lies in the picture (for tests and the page)."""
    from pageext_core.pictures import _mpl

    plt = _mpl.pyplot()
    from matplotlib.patches import Patch

    m = machine
    g = m.geometry
    grid = build_grid(m, table_chunks, highlight_pfns)
    pl = placement(grid)
    rgb = PALETTE[grid.codes]
    if grid.highlight is not None:
        rgb[grid.highlight] = HIGHLIGHT
    fig = plt.figure(figsize=(pl.width / _mpl.DPI, pl.height / _mpl.DPI), dpi=_mpl.DPI)
    w, h = pl.width, pl.height
    ax = fig.add_axes((pl.x0 / w, 1 - (pl.y0 + grid.rows * pl.scale) / h, grid.cols * pl.scale / w,
                       grid.rows * pl.scale / h))
    ax.imshow(rgb, interpolation="nearest", extent=(0, grid.cols, grid.rows, 0), aspect="auto",
              resample=False)
    ax.set_xlim(0, grid.cols)
    ax.set_ylim(grid.rows, 0)
    ax.set_xticks([])
    ppc, cols = grid.pages_per_cell, grid.cols

    def boundary(pfn: int, **kw: object) -> None:
        c = pfn // ppc
        r, k = divmod(c, cols)
        xs, ys = [0, k, k, cols] if k else [0, cols], [r + 1, r + 1, r, r] if k else [r, r]
        ax.plot(xs, ys, **kw)

    # Section boundaries: thin grey lines, with the address every few sections on the left.
    secs = g.pages_per_section
    nsec = -(-g.max_pfn // secs)
    every = max(1, -(-nsec // 16))
    ticks, labels = [], []
    for s in range(0, nsec):
        pfn = s * secs
        if s % every == 0:
            r = (pfn // ppc) / cols
            ticks.append(r)
            labels.append(f"{pfn * PAGE_SIZE:#x}")
        if s and nsec <= 64:
            boundary(pfn, color="#bbbbbb", linewidth=0.5)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylabel(f"physical address (section = {_size_text(secs * PAGE_SIZE)})", fontsize=8)
    # Zone boundaries: thick lines, the zone's name at its start on the right edge (pushed
    # down when zones are too small to hold their labels apart).
    next_free = 0.0
    gap = 12 / pl.scale  # rows per label line
    for z in g.zones:
        if not z.spanned_pages or not m.zone_present[z.index]:
            continue
        if z.start_pfn:
            boundary(z.start_pfn, color="#111111", linewidth=1.6)
        r = max((z.start_pfn // ppc) / cols, next_free)
        next_free = r + gap
        ax.text(cols + 0.5 * cols / 100, r, f"node {z.node} {z.name} ({z.start_pfn * PAGE_SIZE:#x})",
                fontsize=8, va="top", ha="left", clip_on=False)
    cell = "page" if ppc == 1 else f"{ppc} pages ({_size_text(ppc * PAGE_SIZE)}; colour of the majority)"
    ax.set_xlabel(f"one cell = {cell}; one row = {_size_text(ppc * cols * PAGE_SIZE)}", fontsize=8)
    handles = [Patch(facecolor=_rgb(PALETTE[i]), edgecolor="#444444", linewidth=0.5,
                     label=f"{CATEGORY_NAMES[i]}: {int(grid.counts[i])} pages")
               for i in range(NR_CATEGORIES) if grid.counts[i] or i in (FREE, UNMOVABLE, MOVABLE)]
    if grid.highlight is not None:
        handles.append(Patch(facecolor=_rgb(HIGHLIGHT), label=highlight_label or "overlaid stack"))
    fig.legend(handles=handles, loc="lower right", bbox_to_anchor=(1 - 8 / w, BOTTOM / h), fontsize=7,
               frameon=False)
    fig.suptitle(title, x=pl.x0 / w, y=1 - 8 / h, ha="left", va="top", fontsize=9)
    return _mpl.png_bytes(fig), grid, pl
