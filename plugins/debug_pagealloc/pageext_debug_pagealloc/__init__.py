"""pageext client distribution: debug_pagealloc (unmap and poison free pages).

The client is ``pageext_debug_pagealloc.plugin:DebugPagealloc``, entry point
``debug_pagealloc`` in ``pageext.clients``; see docs/debug_pagealloc.md.
"""
__version__ = "0.1.0"
