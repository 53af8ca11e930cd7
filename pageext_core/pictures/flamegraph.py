"""Flame graphs of pages by allocation stack (SVG), plain and differential.

Input is plain data, so the same renderer serves a session (page_owner's
``show_stacks`` report, parsed here) and ``page_owner_sort --flamegraph`` on
any kernel dump: ``(frames root-first, pages)`` pairs, or for a difference
``(frames root-first, old pages, new pages)``.

One rectangle per frame group (a node of the merged call tree), width =
pages, root at the bottom; children in name order, so the picture is
deterministic.  matplotlib draws it; its SVG backend cannot attach a
``<title>`` (the browser's hover text) to a shape, so each rectangle gets a
``gid`` and the titles are put into those groups after saving.  The SVG has
no script and its text is drawn as paths: nothing is fetched.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from pageext_core.mm.constants import PAGE_SIZE

_OFFSET = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+$")


@dataclass
class Node:
    name: str
    old: int = 0
    new: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return max(self.old, self.new)


def build_tree(stacks: Iterable[tuple[Sequence[str], int, int]]) -> Node:
    """Merge (frames root-first, old, new) into a call tree; a node's width counts every stack through it."""
    root = Node("all")
    for frames, old, new in stacks:
        w_old, w_new = int(old), int(new)
        node = root
        node.old += w_old
        node.new += w_new
        for f in frames:
            node = node.children.setdefault(f, Node(f))
            node.old += w_old
            node.new += w_new
    return root


def parse_show_stacks(text: str) -> list[tuple[list[str], int]]:
    """``page_owner_stacks/show_stacks`` text into (frames root-first, pages) pairs."""
    out = []
    frames: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("nr_base_pages:"):
            out.append((frames[::-1], int(s.split(":", 1)[1])))
            frames = []
        elif s:
            frames.append(s)
    return out


def _label(frame: str) -> str:
    return _OFFSET.sub("", frame)


def _warm(name: str) -> tuple[float, float, float]:
    """Gregg's warm palette, chosen from the name (a checksum, the same on every run)."""
    v = zlib.crc32(name.encode()) & 0xFFFF
    a, b = (v & 0xFF) / 255, (v >> 8) / 255
    return (205 + 50 * a) / 255, (80 + 150 * b) / 255, (55 * a) / 255


def _diff_colour(old: int, new: int) -> tuple[float, float, float]:
    """Growth red, shrinkage blue, deeper with the relative change; unchanged is pale grey."""
    if old == new:
        return 0.9, 0.9, 0.9
    rel = min(1.0, abs(new - old) / max(old, new, 1))
    fade = 0.85 - 0.65 * rel
    return (1.0, fade, fade) if new > old else (fade, fade, 1.0)


def _title(n: Node, diff: bool) -> str:
    if not diff:
        return f"{n.name}: {n.new} pages, {n.new * PAGE_SIZE} bytes"
    d = n.new - n.old
    return (f"{n.name}: {n.old} -> {n.new} pages ({d:+d} pages, {d * PAGE_SIZE:+d} bytes)")


def _render(root: Node, title: str, diff: bool) -> bytes:
    from pageext_core.pictures import _mpl

    plt = _mpl.pyplot()
    from matplotlib.patches import Rectangle

    rects: list[tuple[float, int, float, Node]] = []  # (x, depth, width, node), widths in pages

    def walk(n: Node, x: float, depth: int) -> None:
        rects.append((x, depth, n.width, n))
        cx = x
        for name in sorted(n.children):
            c = n.children[name]
            walk(c, cx, depth + 1)
            cx += c.width

    walk(root, 0.0, 0)
    total = max(root.width, 1)
    depth = max((d for _, d, _, _ in rects), default=0) + 1
    row_px, width_px = 18, 1200
    height_px = depth * row_px + 70
    fig = plt.figure(figsize=(width_px / _mpl.DPI, height_px / _mpl.DPI), dpi=_mpl.DPI)
    ax = fig.add_axes((0.01, 20 / height_px, 0.98, depth * row_px / height_px))
    ax.set_xlim(0, total)
    ax.set_ylim(0, depth)
    ax.set_axis_off()
    titles: dict[str, str] = {}
    min_label = total * 60 / width_px  # about 60 pixels
    for i, (x, d, w, n) in enumerate(rects):
        if w <= 0:
            continue
        colour = _diff_colour(n.old, n.new) if diff else ((0.85, 0.85, 0.85) if d == 0 else _warm(n.name))
        gid = f"fg{i}"
        ax.add_patch(Rectangle((x, d), w, 0.94, facecolor=colour, edgecolor="white", linewidth=0.3, gid=gid))
        titles[gid] = _title(n, diff)
        if w >= min_label:
            chars = int(w / total * width_px / 6.5)
            text = _label(n.name)
            text = text if len(text) <= chars else text[: max(chars - 2, 1)] + ".."
            ax.text(x + total * 3 / width_px, d + 0.47, text, fontsize=7, va="center", ha="left", clip_on=True)
    fig.suptitle(title, fontsize=10, y=1 - 8 / height_px, va="top")
    svg = _mpl.svg_bytes(fig).decode()
    return _add_titles(svg, titles).encode()


def _add_titles(svg: str, titles: dict[str, str]) -> str:
    """Put a ``<title>`` (hover text) first inside each rectangle's group."""
    def sub(m: re.Match[str]) -> str:
        t = titles.get(m.group(1))
        return m.group(0) if t is None else f"{m.group(0)}\n   <title>{escape(t)}</title>"

    return re.sub(r'<g id="(fg\d+)">', sub, svg)


def render_flamegraph(stacks: Iterable[tuple[Sequence[str], int]], title: str = "Pages by allocation stack") -> bytes:
    """SVG bytes of a flame graph of (frames root-first, pages) pairs."""
    return _render(build_tree((f, n, n) for f, n in stacks), title, diff=False)


def render_diff(stacks: Iterable[tuple[Sequence[str], int, int]],
                title: str = "Pages by allocation stack: growth (red) and shrinkage (blue)") -> bytes:
    """SVG bytes of a differential flame graph of (frames root-first, old pages, new pages).

    Widths are the larger of the two counts, so what vanished is still seen;
    colour says which way each frame group changed.
    """
    return _render(build_tree(stacks), title, diff=True)


def write_flamegraph(path: str, stacks: Iterable[tuple[Sequence[str], int]], title: str = "Pages by allocation stack") -> None:
    """``page_owner_sort --flamegraph OUT.svg``: render and write atomically."""
    from pageext_core.reports import atomic_write

    atomic_write(path, render_flamegraph(stacks, title))


def write_diff_flamegraph(path: str, stacks: Iterable[tuple[Sequence[str], int, int]], title: str | None = None) -> None:
    """``page_owner_sort --flamegraph OUT.svg --diff``: render the difference and write atomically."""
    from pageext_core.reports import atomic_write

    atomic_write(path, render_diff(stacks) if title is None else render_diff(stacks, title))
