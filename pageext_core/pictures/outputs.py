"""The picture outputs of a session: which files, and writing them after the text reports.

``[report] pictures`` names them: ``memmap`` (memmap.png), ``fragmentation``
(fragmentation.png and the samples behind it, samples.csv), ``flamegraph``
(flamegraph.svg, when page_owner is on) and ``index`` (index.html, the page
that shows the others); ``"all"`` is every one.  Only this module's
``write`` imports the drawing code, and that imports matplotlib.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pageext_core.page_ext import PageExt
    from pageext_core.pictures.samples import Sampler

PICTURES = ("memmap", "fragmentation", "flamegraph", "index")
FILES = {"memmap": "memmap.png", "fragmentation": "fragmentation.png", "flamegraph": "flamegraph.svg",
         "index": "index.html"}
SAMPLES_FILE = "samples.csv"
STACKS_REPORT = "page_owner_stacks/show_stacks"
LEAKS_REPORT = "page_owner_leaks"
OWNER_REPORT = "page_owner"


def expand(names: Sequence[str]) -> list[str]:
    """``["all"]`` to every picture; otherwise the names in PICTURES order."""
    want = set(PICTURES) if "all" in names else set(names)
    return [p for p in PICTURES if p in want]


def needs_samples(pictures: Sequence[str]) -> bool:
    return "fragmentation" in pictures


def planned_files(pe: PageExt, pictures: Sequence[str]) -> list[str]:
    """The files the pictures will be written to, in order (a flame graph needs page_owner's stacks)."""
    out = []
    for p in pictures:
        if p == "flamegraph" and STACKS_REPORT not in pe.report_names():
            continue
        out.append(FILES[p])
        if p == "fragmentation":
            out.append(SAMPLES_FILE)
    return out


def title_of(pe: PageExt, session_name: str) -> str:
    return f"{session_name}: {pe.boot.cmdline or '(empty boot line)'}"


def write(out_dir: Path, pe: PageExt, session_name: str, pictures: Sequence[str], sampler: Sampler | None,
          summary: dict[str, Any], files: Sequence[str], planted: Sequence[dict[str, Any]],
          findings: Sequence[Any], report_texts: dict[str, str],
          picture_params: dict[str, dict[str, Any]] | None = None) -> None:
    """Draw and write every planned picture, then index.html; each file atomically."""
    from pageext_core.reports import atomic_write

    title = title_of(pe, session_name)
    planned = planned_files(pe, pictures)
    notes = []
    if "flamegraph" in pictures and FILES["flamegraph"] not in planned:
        notes.append("No flame graph: page_owner is off in this boot (boot with page_owner=on).")
    m = pe.machine
    if FILES["memmap"] in planned:
        from pageext_core.pictures import memmap

        chunks = [c for t in pe.tables.tables.values() for c in t.sim_chunks] if pe.tables else []
        needle = (picture_params or {}).get("memmap", {}).get("stack")
        pfns, label = None, ""
        if needle is not None:
            if OWNER_REPORT not in pe.report_names():
                notes.append("No stack overlay on the memory map: page_owner is off in this boot.")
            else:
                dump = report_texts.get(OWNER_REPORT)
                pfns = memmap.stack_pages(dump if dump is not None else pe.report(OWNER_REPORT), needle)
                label = f"allocated from a stack with {needle!r}: {pfns.size} pages"
        png, _, _ = memmap.render(m, title, chunks, pfns, label)
        atomic_write(out_dir / FILES["memmap"], png)
    if FILES["fragmentation"] in planned and sampler is not None:
        from pageext_core.pictures import fragmentation

        atomic_write(out_dir / SAMPLES_FILE, sampler.csv())
        atomic_write(out_dir / FILES["fragmentation"],
                     fragmentation.render(sampler, title, m.pageblock_order, planted, findings))
    if FILES["flamegraph"] in planned:
        from pageext_core.pictures import flamegraph

        text = report_texts.get(STACKS_REPORT)
        if text is None:
            text = pe.report(STACKS_REPORT)
        atomic_write(out_dir / FILES["flamegraph"],
                     flamegraph.render_flamegraph(flamegraph.parse_show_stacks(text),
                                                  f"{title}: pages still allocated, by stack"))
    if FILES["index"] in planned:
        from pageext_core.pictures import html

        shown = {p: FILES[p] for p in ("memmap", "fragmentation", "flamegraph") if FILES[p] in planned}
        leaks = None
        if LEAKS_REPORT in pe.report_names():
            leaks = report_texts.get(LEAKS_REPORT)
            if leaks is None:
                leaks = pe.report(LEAKS_REPORT)
        page = html.build_page(summary, [f for f in files if f != FILES["index"]], shown, findings, leaks, notes)
        atomic_write(out_dir / FILES["index"], page)
