"""``index.html``: one page per run that a person opens in a browser.

Self-contained: inline CSS, no script, pictures linked relatively (they sit
next to it), so it works from ``file://`` with no network.  It holds the run
summary (the console's lines, as a table), the pictures, the findings with
their reports, the top leak stacks and links to every text report.
Deterministic: no wall-clock figure appears on it.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote

CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1500px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table.summary td { padding: 0.15em 0.8em 0.15em 0; vertical-align: top; }
table.summary td:first-child { font-weight: bold; white-space: nowrap; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
img, object { max-width: 100%; border: 1px solid #ddd; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
.note { color: #666; font-size: 0.9em; }
"""

TOP_LEAKS = 5


def summary_rows(s: dict[str, Any], files: Sequence[str]) -> list[tuple[str, str]]:
    """The lines ``pageext run`` prints, as (label, text) rows, without the wall-clock time."""
    from pageext_core.mm.geometry import format_size

    m, w, pe = s["machine"], s["workload"], s["page_ext"]
    enabled = [p["name"] for p in s["plugins"] if p["enabled"]]
    rows = [
        ("session", s["session"]["name"]),
        ("machine", f"{format_size(m['memory_bytes'])}, {m['nodes']} node(s), {m['memory_model']}, "
                    f"{m['present_pages']} present pages"),
        ("boot", s["boot"]["cmdline"] or "(empty)"),
        ("page_ext", f"{', '.join(enabled) or 'no client enabled'}: record {pe['record_size']} bytes, "
                     f"{pe['bytes']} bytes"),
        ("workload", f"{w['kind']} seed {w['seed']}: {w['operations']} operations, {w['allocations']} allocations, "
                     f"{w['frees']} frees, {w['failures']} failures, {w['live_pages']} pages still allocated"),
    ]
    f = s["findings"]
    rows.append(("findings", f"{f['count']}: " + ", ".join(f"{n} {k}" for k, n in f["by_kind"].items())
                 if f["count"] else "none"))
    p = s["planted"]
    if p["planted"]:
        text = f"{p['planted']} bugs, {p['detected']} detected, {p['missed']} missed"
        if p["undetectable"]:
            text += f", {p['undetectable']} landed in another live allocation (invisible to page-level checks)"
        rows.append(("planted", text))
    hot = w.get("hotplug") or []
    if hot:
        rows.append(("hotplug", f"{len(hot)} event(s), {w.get('hotplug_failures', 0)} failed"))
    rows.append(("reports", ", ".join(files)))
    return rows


def _link(name: str) -> str:
    return f'<a href="{escape(quote(name))}">{escape(name)}</a>'


def leak_entries(text: str, n: int = TOP_LEAKS) -> list[str]:
    """The first ``n`` stacks of ``page_owner_leaks`` (entries are separated by empty lines)."""
    parts = [p for p in text.split("\n\n") if p.strip()]
    return parts[1 : n + 1] if parts and parts[0].startswith("page_owner leaks:") else parts[:n]


def build_page(summary: dict[str, Any], files: Sequence[str], pictures: dict[str, str],
               findings: Sequence[Any] = (), leaks: str | None = None, notes: Sequence[str] = ()) -> str:
    """The page's HTML text.  ``pictures``: picture name -> its file next to the page."""
    s = summary
    title = f"pageext run: {s['session']['name']}"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<h1>{escape(title)}</h1>"]
    if s["session"].get("description"):
        out.append(f"<p>{escape(s['session']['description'])}</p>")
    out.append('<table class="summary">')
    for label, text in summary_rows(s, files):
        out.append(f"<tr><td>{escape(label)}</td><td>{escape(text)}</td></tr>")
    out.append("</table>")
    captions = {
        "memmap": ("Physical memory", "One cell per page (or per run of pages), coloured by what it is at the end "
                   "of the run; thick lines are zone boundaries, thin ones sections."),
        "fragmentation": ("Fragmentation over time", "Free pages per order (stacked), mixed pageblocks and "
                          "allocation failures, and the kernel's extfrag indices; dashed lines are planted bugs, "
                          "dotted ones findings. The numbers are in samples.csv."),
        "flamegraph": ("Who holds memory", "Still-allocated pages by allocation stack (page_owner), root at the "
                       "bottom, width = pages; hover over a frame for its pages and bytes."),
    }
    for name, (head, text) in captions.items():
        fname = pictures.get(name)
        if fname is None:
            continue
        out.append(f"<h2>{escape(head)}</h2>")
        out.append(f'<p class="note">{escape(text)} ({_link(fname)})</p>')
        if fname.endswith(".svg"):  # an <object> keeps the SVG's hover titles; <img> would not show them
            out.append(f'<object type="image/svg+xml" data="{escape(quote(fname))}">{escape(head)}</object>')
        else:
            out.append(f'<img src="{escape(quote(fname))}" alt="{escape(head)}">')
    for note in notes:
        out.append(f'<p class="note">{escape(note)}</p>')
    out.append(f"<h2>Findings ({len(findings)})</h2>")
    if not findings:
        out.append("<p>No debug feature reported anything.</p>")
    for f in findings:
        head = f"{f.kind} at pfn {f.pfn:#x}" + (f" +{f.offset}" if f.offset is not None else "") + \
            f" ({f.client}, {f.time_ns} ns)"
        out.append(f"<details open><summary>{escape(head)}</summary><pre>{escape(f.message)}</pre></details>")
    if leaks is not None:
        entries = leak_entries(leaks)
        out.append("<h2>Top leak stacks</h2>")
        every = f" ({_link('page_owner_leaks')} has them all)" if "page_owner_leaks" in files else ""
        out.append(f'<p class="note">The stacks holding the most pages at the end{every}.</p>')
        for e in entries:
            first, _, rest = e.partition("\n")
            out.append(f"<details><summary>{escape(first)}</summary><pre>{escape(rest)}</pre></details>")
    out.append("<h2>Reports</h2><ul>")
    for name in files:
        out.append(f"<li>{_link(name)}</li>")
    out.append("</ul>")
    out.append("</body>\n</html>\n")
    return "\n".join(out)
