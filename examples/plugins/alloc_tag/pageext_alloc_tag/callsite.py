"""Which call site an allocation is charged to, and how it is written.

The kernel charges a page to the code location of the allocation call
(``alloc_hooks()`` records it when the code is compiled) and prints it as
``file:line func:name``, with ``[module]`` before ``func:`` for code in a
loadable module.  Here the call site is found from the allocation's stack:
**the first frame outside the page allocator**.

Kernel-style stacks (synthetic workloads, ``machine.context(stack=[...])``)
are frame strings, innermost first, ``symbol+0xoff/0xsize`` with an
optional `` [module]``.  A frame belongs to the page allocator when its
symbol (compiler suffixes such as ``.isra.0`` dropped)

* is one of ``ALLOCATOR_SYMBOLS`` (``post_alloc_hook``,
  ``get_page_from_freelist``, ``prep_new_page``, the ``rmqueue`` family,
  the slow path), or
* starts with one of ``ALLOCATOR_PREFIXES`` (``__alloc_pages``,
  ``alloc_pages``, ``__folio_alloc``, ``folio_alloc``, ``vma_alloc_folio``,
  ``__get_free_pages``...), or
* ends in ``_noprof``: the kernel's own marker for a function that takes
  its caller's tag rather than having one (``filemap_alloc_folio_noprof``).

Such frames carry no line number, and the ``+0xoff`` is a code offset, not
a line, so the line is written as **0** and the file comes from
``SOURCE_FILES``, a small table of where the symbols of the built-in
workload live (``allocate_slab`` → ``mm/slub.c``).  A symbol not in the
table is written with the file ``?``.  Two call sites in one function (same
symbol, different offsets) are therefore one tag, as are all stacks that
reach the allocator through the same frame.  When every frame is an
allocator frame the outermost one is used.

Python stacks (no explicit stack set) are walked from the allocator's
frame: frames of ``pageext_core.mm`` (the machine and its allocator) are
skipped, and the first other frame is the call site with its real line:
``pkg/module.py:LINE func:QUALNAME`` (the path is the module's import
path, so it is the same on every machine).
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from types import FrameType

ALLOCATOR_SYMBOLS = frozenset({
    "post_alloc_hook", "prep_new_page", "get_page_from_freelist", "rmqueue", "rmqueue_bulk",
    "rmqueue_pcplist", "__rmqueue_pcplist", "rmqueue_buddy", "__alloc_pages_slowpath",
    "__alloc_pages_direct_compact", "__alloc_pages_direct_reclaim", "__alloc_pages_may_oom",
})
ALLOCATOR_PREFIXES = (
    "__alloc_pages", "alloc_pages", "__alloc_frozen_pages", "alloc_frozen_pages", "__folio_alloc",
    "folio_alloc", "vma_alloc_folio", "__get_free_pages", "get_zeroed_page",
)
NOPROF_SUFFIX = "_noprof"

# Where the symbols of the built-in workload (pageext_core/session/callsites.py)
# and their usual neighbours are defined in the kernel tree.
SOURCE_FILES: dict[str, str] = {
    "allocate_slab": "mm/slub.c", "alloc_slab_page": "mm/slub.c", "___slab_alloc": "mm/slub.c",
    "new_slab": "mm/slub.c",
    "do_anonymous_page": "mm/memory.c", "__handle_mm_fault": "mm/memory.c", "handle_mm_fault": "mm/memory.c",
    "__pte_alloc": "mm/memory.c", "do_read_fault": "mm/memory.c", "__do_fault": "mm/memory.c",
    "page_cache_ra_unbounded": "mm/readahead.c", "page_cache_ra_order": "mm/readahead.c",
    "filemap_get_pages": "mm/filemap.c", "filemap_read": "mm/filemap.c", "filemap_fault": "mm/filemap.c",
    "__filemap_get_folio": "mm/filemap.c",
    "do_huge_pmd_anonymous_page": "mm/huge_memory.c",
    "__vmalloc_area_node": "mm/vmalloc.c", "vm_area_alloc_pages": "mm/vmalloc.c",
    "pte_alloc_one": "arch/x86/mm/pgtable.c", "pgd_alloc": "arch/x86/mm/pgtable.c",
    "__page_frag_alloc_align": "mm/page_frag_cache.c", "__page_frag_cache_refill": "mm/page_frag_cache.c",
    "__napi_alloc_skb": "net/core/skbuff.c",
    "pcpu_populate_chunk": "mm/percpu-vm.c", "pcpu_alloc_pages": "mm/percpu-vm.c",
    "dma_direct_alloc": "kernel/dma/direct.c", "dma_alloc_attrs": "kernel/dma/mapping.c",
    "pipe_write": "fs/pipe.c",
    "__d_alloc": "fs/dcache.c",
    "alloc_page_ext": "mm/page_ext.c",
}
UNKNOWN_FILE = "?"

_FRAME = re.compile(r"^\s*(?P<sym>[^\s+]+)(?:\+0x[0-9a-fA-F]+(?:/0x[0-9a-fA-F]+)?)?(?:\s+\[(?P<mod>[^\]]+)\])?\s*$")
# Suffixes the compiler adds to a function's clones (``lookup_open.isra.0``, ``foo.cold``).
_CLONE_SUFFIX = re.compile(r"\.(?:isra|constprop|part|cold|llvm|lto_priv)(?:\.\w+)*$")


def format_tag(file: str, line: int, func: str, module: str | None = None) -> str:
    """The kernel's tag text: ``file:line func:name``, or ``file:line [module] func:name``."""
    return f"{file}:{line} [{module}] func:{func}" if module else f"{file}:{line} func:{func}"


def parse_frame(frame: str) -> tuple[str, str | None]:
    """(symbol without compiler suffixes, module or None) of one ``symbol+0xoff/0xsize [module]`` frame."""
    m = _FRAME.match(frame)
    if m is None:
        return frame.strip(), None
    return _CLONE_SUFFIX.sub("", m.group("sym")), m.group("mod")


def is_allocator_symbol(symbol: str) -> bool:
    """True for a page-allocator frame (see the module docstring for the set)."""
    return (symbol in ALLOCATOR_SYMBOLS or symbol.startswith(ALLOCATOR_PREFIXES)
            or symbol.endswith(NOPROF_SUFFIX))


def kernel_tag(frames: Sequence[str]) -> str:
    """The tag text for a kernel-style stack (innermost first)."""
    if not frames:
        return format_tag(UNKNOWN_FILE, 0, "unknown")
    parsed = [parse_frame(f) for f in frames]
    symbol, module = next((p for p in parsed if not is_allocator_symbol(p[0])), parsed[-1])
    return format_tag(SOURCE_FILES.get(symbol, UNKNOWN_FILE), 0, symbol, module)


# -- Python frames ----------------------------------------------------------------------------------

ALLOCATOR_MODULE = "pageext_core.mm"


def is_allocator_module(module: str | None) -> bool:
    """Frames of the machine model are the allocator; so are unnamed ones (the core's call adapters)."""
    return not module or module == ALLOCATOR_MODULE or module.startswith(ALLOCATOR_MODULE + ".")


def module_path(frame: FrameType) -> str:
    """``pkg/mod.py`` from the module's import name (a script: its file name)."""
    name = frame.f_globals.get("__name__") or ""
    filename = frame.f_code.co_filename
    if not name or name == "__main__" or name.startswith("<"):
        return os.path.basename(filename)
    base = name.replace(".", "/")
    return f"{base}/__init__.py" if os.path.basename(filename) == "__init__.py" else f"{base}.py"


def python_tag(frame: FrameType | None) -> str:
    """The tag text for the Python frame that called the allocator."""
    if frame is None:
        return format_tag(UNKNOWN_FILE, 0, "unknown")
    code = frame.f_code
    func = getattr(code, "co_qualname", code.co_name)
    return format_tag(module_path(frame), frame.f_lineno or code.co_firstlineno, func)
