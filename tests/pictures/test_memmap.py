"""memmap.png: the colours at known cells, zone boundaries, binning on big machines, determinism."""
from __future__ import annotations

import collections
import io

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="pictures need the pictures extra (make install installs it)")
import matplotlib.image

from pageext_core.mm import buddy as _b
from pageext_core.mm.constants import MIGRATE_RECLAIMABLE, PAGE_SIZE
from pageext_core.mm.geometry import MachineConfig
from pageext_core.mm.gfp import __GFP_RECLAIMABLE, GFP_HIGHUSER_MOVABLE, GFP_KERNEL
from pageext_core.page_ext import boot
from pageext_core.pictures import memmap
from pageext_core.pictures.memmap import (
    FREE,
    FREE_UNMAPPED,
    GUARD,
    HOLE,
    MOVABLE,
    PAGE_EXT,
    PALETTE,
    RECLAIMABLE,
    RESERVED,
    UNMOVABLE,
)

MiB = 1 << 20


def table_chunks(pe):
    return [c for t in pe.tables.tables.values() for c in t.sim_chunks] if pe.tables else []


def expected_state(pe, pfn: int) -> int:
    """A page's category from the machine's per-page API (not from the arrays memmap reads)."""
    m = pe.machine
    for p, n in table_chunks(pe):
        if p <= pfn < p + n:
            return PAGE_EXT
    if not any(s <= pfn < e for s, e in m.present_ranges):
        return HOLE
    kind, _, head = m.page_kind(pfn)
    if kind in (_b.K_FREE, _b.K_PCP):
        return FREE if m.contents.is_mapped(pfn) else FREE_UNMAPPED
    if kind == _b.K_ALLOC_MOVABLE:
        return MOVABLE
    if kind == _b.K_ALLOC:
        return RECLAIMABLE if m.pageblock_migratetype(head) == MIGRATE_RECLAIMABLE else UNMOVABLE
    return {_b.K_RESERVED: RESERVED, _b.K_HELD: GUARD}.get(kind, HOLE)


def pixels(png: bytes) -> np.ndarray:
    img = matplotlib.image.imread(io.BytesIO(png))
    return np.round(img[:, :, :3] * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def small():
    """64 MiB, debug_pagealloc and guard pages on, with known allocations."""
    pe = boot(MachineConfig(memory=64 * MiB), "page_owner=on debug_pagealloc=on debug_guardpage_minorder=1")
    m = pe.machine
    got = {
        "unmovable": m.alloc_pages(GFP_KERNEL, 5),
        "movable": m.alloc_pages(GFP_HIGHUSER_MOVABLE, 6),
        "reclaimable": m.alloc_pages(GFP_KERNEL | __GFP_RECLAIMABLE, 4),
    }
    for _ in range(64):  # order-0 allocations split blocks: guard pages appear
        m.alloc_pages(GFP_KERNEL, 0)
    m.drain_all_pages()
    return pe, got


def test_every_page_has_the_state_the_machine_gives_it(small) -> None:
    pe, _ = small
    m = pe.machine
    codes = memmap.page_states(m, 0, m.geometry.max_pfn, table_chunks(pe))
    want = np.array([expected_state(pe, p) for p in range(m.geometry.max_pfn)], np.uint8)
    assert np.array_equal(codes, want)
    assert {HOLE, FREE_UNMAPPED, UNMOVABLE, MOVABLE, RECLAIMABLE, PAGE_EXT, RESERVED, GUARD} <= set(codes.tolist())


def test_known_cells_have_their_colour_in_the_png(small) -> None:
    pe, got = small
    m = pe.machine
    png, grid, pl = memmap.render(m, "small", table_chunks(pe))
    img = pixels(png)
    assert img.shape[:2] == (pl.height, pl.width)
    assert grid.pages_per_cell == 1 and pl.scale >= 4  # so a cell's centre is well inside it

    def colour_at(pfn: int) -> tuple[int, ...]:
        x, y = pl.pixel(*grid.cell_of(pfn))
        return tuple(img[y, x])

    for what, code in (("unmovable", UNMOVABLE), ("movable", MOVABLE), ("reclaimable", RECLAIMABLE)):
        pfn = got[what]
        for p in (pfn, pfn + 7):
            assert colour_at(p) == tuple(PALETTE[code]), (what, p)
    assert colour_at(200) == tuple(PALETTE[HOLE])  # the legacy hole, 640 KiB..1 MiB
    assert colour_at((16 * MiB) // PAGE_SIZE) == tuple(PALETTE[RESERVED])  # the kernel image at 16 MiB
    p, _ = table_chunks(pe)[0]
    assert colour_at(p) == tuple(PALETTE[PAGE_EXT])
    guard = int(np.flatnonzero(memmap.page_states(m, 0, m.geometry.max_pfn) == GUARD)[0])
    assert colour_at(guard) == tuple(PALETTE[GUARD])
    free = int(np.flatnonzero(m.state == ((_b.K_FREE << 4) | m.max_order))[-1])
    assert colour_at(free) == tuple(PALETTE[FREE_UNMAPPED])  # debug_pagealloc unmapped every free page


def test_zone_boundary_is_drawn_where_the_zone_starts() -> None:
    pe = boot(MachineConfig(memory=64 * MiB), "")
    m = pe.machine
    png, grid, pl = memmap.render(m, "zones")
    img = pixels(png)
    dma32 = next(z for z in m.geometry.zones if z.name == "DMA32")
    row, col = grid.cell_of(dma32.start_pfn)
    assert col == 0  # 16 MiB starts a row here: the boundary is one horizontal line
    y = pl.y0 + row * pl.scale
    x = pl.x0 + grid.cols * pl.scale // 2
    assert img[y, x].max() < 80, img[y, x]  # the dark line on the boundary
    above, below = tuple(img[y - pl.scale // 2, x]), tuple(img[y + pl.scale // 2, x])
    assert above != tuple(img[y, x]) and below != tuple(img[y, x])  # cells on either side are not the line
    # No zone boundary inside DMA32: the middle of the zone has no dark row.
    mid_row, _ = grid.cell_of((dma32.start_pfn + min(dma32.end_pfn, m.geometry.max_pfn)) // 2)
    assert img[pl.y0 + mid_row * pl.scale + pl.scale // 2, x].max() > 80


def test_cells_of_many_pages_take_the_majority_state(small, monkeypatch: pytest.MonkeyPatch) -> None:
    pe, _ = small
    m = pe.machine
    monkeypatch.setattr(memmap, "MAX_CELLS", 1 << 12)  # 16384 pages -> 4 pages per cell
    monkeypatch.setattr(memmap, "CHUNK_PAGES", 1 << 12)  # several chunks, as on a big machine
    chunks = table_chunks(pe)
    grid = memmap.build_grid(m, chunks)
    assert grid.pages_per_cell == 4
    codes = memmap.page_states(m, 0, m.geometry.max_pfn, chunks)
    flat = grid.codes.ravel()
    for cell in range(m.geometry.max_pfn // 4):
        counts = collections.Counter(codes[cell * 4 : cell * 4 + 4].tolist())
        best = max(counts.values())
        assert flat[cell] == min(c for c, n in counts.items() if n == best), cell
    assert int(grid.counts.sum()) == m.geometry.max_pfn
    assert np.array_equal(grid.counts, np.bincount(codes, minlength=memmap.NR_CATEGORIES))


def test_the_picture_is_bounded_for_any_size() -> None:
    for pages in (1 << 14, 1 << 18, 1 << 20, 1 << 28, (1 << 28) + 12345):
        ppc, cols, rows = memmap.grid_shape(pages)
        assert rows * cols * ppc >= pages and rows * cols <= 2 * memmap.MAX_CELLS
        assert cols <= 1024 and rows <= 1024


def test_bytes_are_identical_run_to_run(small) -> None:
    pe, _ = small
    a, _, _ = memmap.render(pe.machine, "same", table_chunks(pe))
    b, _, _ = memmap.render(pe.machine, "same", table_chunks(pe))
    assert a == b and a.startswith(b"\x89PNG") and b"Software" not in a


def test_render_reads_the_machine_only(small) -> None:
    pe, _ = small
    m = pe.machine
    before = (m.state.copy(), m.pb_mt.copy(), m.contents._unmapped.copy(), m.nr_free_pages)
    memmap.render(m, "ro", table_chunks(pe), highlight_pfns=np.array([5000, 5001]))
    assert np.array_equal(before[0], m.state) and np.array_equal(before[1], m.pb_mt)
    assert np.array_equal(before[2], m.contents._unmapped) and before[3] == m.nr_free_pages


DUMP = """\
Page allocated via order 2, mask 0xcc0(GFP_KERNEL), pid 1, tgid 1 (init), ts 5 ns
PFN 0x100 type Unmovable Block 0 type Unmovable Flags 0x0()
 post_alloc_hook+0x1/0x2
 filemap_read+0x3/0x4

Page allocated via order 0, mask 0xcc0(GFP_KERNEL), pid 1, tgid 1 (init), ts 6 ns
PFN 0x200 type Unmovable Block 1 type Unmovable Flags 0x0()
 post_alloc_hook+0x1/0x2
 kmalloc+0x3/0x4

"""


def test_stack_pages_reads_a_page_owner_dump() -> None:
    assert memmap.stack_pages(DUMP, "filemap_read").tolist() == [0x100, 0x101, 0x102, 0x103]
    assert memmap.stack_pages(DUMP, "post_alloc_hook").tolist() == [0x100, 0x101, 0x102, 0x103, 0x200]
    assert memmap.stack_pages(DUMP, "nowhere").size == 0


def test_the_overlaid_stack_is_magenta_and_the_rest_keeps_its_colour(small) -> None:
    pe, got = small
    m = pe.machine
    pfn = got["movable"]
    png, grid, pl = memmap.render(m, "overlay", table_chunks(pe), np.array([pfn, pfn + 1]), "two pages")
    img = pixels(png)
    for p, want in ((pfn, memmap.HIGHLIGHT), (pfn + 1, memmap.HIGHLIGHT), (pfn + 2, PALETTE[MOVABLE])):
        x, y = pl.pixel(*grid.cell_of(p))
        assert tuple(img[y, x]) == tuple(want), p
