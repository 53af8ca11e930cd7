"""``page_owner_sort``: group and sort a page_owner dump, like the kernel's tools/mm helper.

The command line, grouping, ordering and text output follow the newest
kernel tool (timestamps cut out of the compared text unless sorting by
allocation time first; default order: times seen, descending; ties keep
the order of the grouping pass).  What it adds is what users of the kernel
tool run into on real machines:

* streaming: memory grows with the number of *distinct* records, not with
  the file size, and there is no record cap;
* speed: records are counted in place in large binary chunks, and big or
  compressed files are read by several processes (``--jobs``);
* gzip/xz/bzip2 input, CRLF dumps, ``-`` for stdin/stdout;
* ``--format json|csv``, ``--collapsed`` (flame-graph input) and
  ``--diff OLD NEW`` (what grew between two snapshots);
* unparsable records are reported with their line numbers (``-d``) or
  counted in one summary line, and outputs are replaced atomically.

One module per step, data flowing one way: :mod:`.parse` counts the
records of a dump, :mod:`.aggregate` culls, sorts and diffs the groups,
:mod:`.render` writes them, :mod:`.parallel` runs ``--jobs`` processes and
:mod:`.cli` is the command.  The record format itself is
:mod:`pageext_page_owner.dumpparse`.
"""
from __future__ import annotations

from pageext_page_owner.page_owner_sort.aggregate import DiffRow, Group, Selection, cull, diff_groups, sort_groups
from pageext_page_owner.page_owner_sort.cli import main
from pageext_page_owner.page_owner_sort.parse import Aggregator
from pageext_page_owner.page_owner_sort.render import (
    DiffReport,
    Report,
    collapse,
    render_collapsed,
    render_csv,
    render_diff_collapsed,
    render_diff_csv,
    render_diff_json,
    render_diff_text,
    render_json,
    render_text,
)

__all__ = [
    "Aggregator",
    "DiffReport",
    "DiffRow",
    "Group",
    "Report",
    "Selection",
    "collapse",
    "cull",
    "diff_groups",
    "main",
    "render_collapsed",
    "render_csv",
    "render_diff_collapsed",
    "render_diff_csv",
    "render_diff_json",
    "render_diff_text",
    "render_json",
    "render_text",
    "sort_groups",
]
