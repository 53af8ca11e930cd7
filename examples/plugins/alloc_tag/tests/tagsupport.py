"""Helpers shared by the alloc_tag tests (``from tagsupport import ...``).

``TINY`` is easy to reason about by hand: 64 MiB, no x86 holes, nothing
reserved, so pfns [0, 16384) are RAM in section 0 (whose page_ext table
covers all 32768 pfns of the section).  ``boot_tag`` boots it with
``AllocTag`` handed to ``boot()`` directly (no entry points), so these tests
run the same whether or not the distribution is installed in the venv.

Stacks are written innermost first, as the kernel prints them; ``kstack``
puts the page allocator's own frames in front, as every real allocation
has them.
"""
from __future__ import annotations

from typing import Any

import pageext_core as pc
from pageext_alloc_tag import AllocTag
from pageext_core.mm import MachineConfig, MiB
from pageext_core.session import ALLOC_PREFIX

TINY = MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
PAGES_PER_SECTION = 32768
ON = "sysctl.vm.mem_profiling=1"


def boot_tag(cmdline: str = ON, config: MachineConfig = TINY, plugins: tuple = (), **kw: Any) -> pc.PageExt:
    return pc.boot(config, cmdline, plugins=[AllocTag, *plugins], autoload=False, **kw)


def kstack(*frames: str) -> tuple[str, ...]:
    return ALLOC_PREFIX + frames


# Hand-written stacks and the tag each must get (see callsite.py for the rule).
SLAB = kstack("alloc_pages_mpol_noprof+0x95/0x1c0", "allocate_slab+0x2a9/0x3d0", "___slab_alloc+0x4e3/0xc20")
SLAB_TAG = "mm/slub.c:0 func:allocate_slab"
ANON = kstack("alloc_pages_mpol_noprof+0x95/0x1c0", "vma_alloc_folio_noprof+0x64/0xd0",
              "do_anonymous_page+0x327/0x8a0", "__handle_mm_fault+0xb1b/0x1120")
ANON_TAG = "mm/memory.c:0 func:do_anonymous_page"
PIPE = kstack("alloc_pages_noprof+0x53/0x90", "pipe_write+0x1d3/0x6c0", "vfs_write+0x35a/0x4a0")
PIPE_TAG = "fs/pipe.c:0 func:pipe_write"
DRIVER = kstack("alloc_pages_noprof+0x53/0x90", "mydrv_rx_refill+0x44/0x120 [mydrv]", "mydrv_poll+0x1f/0x80 [mydrv]")
DRIVER_TAG = "?:0 [mydrv] func:mydrv_rx_refill"

