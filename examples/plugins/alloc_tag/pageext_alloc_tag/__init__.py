"""pageext-alloc-tag: memory allocation profiling (``/proc/allocinfo``) as a pageext client.

A third-party example: it is installed and found like any plugin (entry
point ``alloc_tag`` in ``pageext.clients``) and uses only the public hook
contract of ``pageext_core.hookspecs``.
"""
from __future__ import annotations

from pageext_alloc_tag.allocinfo import Row, format_allocinfo, parse_allocinfo
from pageext_alloc_tag.plugin import AllocTag

__version__ = "0.1.0"

__all__ = ["AllocTag", "Row", "__version__", "format_allocinfo", "parse_allocinfo"]
