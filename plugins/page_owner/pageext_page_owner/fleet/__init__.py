"""``page_owner_fleet``: page_owner_sort over the dumps of many hosts, on Dask.

One dump per host; each is counted by a Dask task where it lies (a big
plain dump by several), with page_owner_sort's own parser, and the
partial groups (:class:`~pageext_page_owner.page_owner_sort.aggregate.Partial`)
are merged in a tree.  The groups equal page_owner_sort's on the dumps'
concatenation; each also says on how many hosts it occurs.  Dask,
distributed and pyarrow come with the ``fleet`` extra and are imported
only where used: :mod:`.engine` (the task functions), :mod:`.output`
(the writers) and :mod:`.cli` (the command).  See docs/fleet.md.
"""
from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The ``page_owner_fleet`` command (imported on call: ``import pageext_page_owner.fleet`` stays cheap)."""
    from pageext_page_owner.fleet.cli import main as _main

    return _main(argv)
