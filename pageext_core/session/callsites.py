"""Kernel-like allocation call paths for synthetic workloads.

Each site is what a real kernel allocates from (slab, anonymous faults, the
page cache, THP, vmalloc, page tables, networking, dentries, DMA buffers),
with its usual gfp mask, orders, the page flags the page ends up with, and
the free path, so page_owner output reads like a real machine's.  Frames are
innermost first, as page_owner prints them.
"""
from __future__ import annotations

from dataclasses import dataclass

from pageext_core.mm.gfp import parse_gfp
from pageext_core.mm.pageflags import flags_mask

ALLOC_PREFIX = (
    "post_alloc_hook+0x1a2/0x1c0",
    "get_page_from_freelist+0x3b8/0x1530",
    "__alloc_pages_noprof+0x17c/0x360",
)


@dataclass(frozen=True)
class CallSite:
    name: str
    gfp: int
    orders: tuple[tuple[int, float], ...]
    frames: tuple[str, ...]
    free_frames: tuple[str, ...]
    callers: tuple[tuple[str, ...], ...]  # outer frames; variants give distinct stacks
    user: bool  # allocated on behalf of user space
    kernel: bool  # allocated by kernel threads
    page_flags: int = 0
    weight: float = 1.0
    lifetime_scale: float = 1.0

    def stack(self, variant: int) -> tuple[str, ...]:
        callers = self.callers[variant % len(self.callers)]
        k = variant // len(self.callers)
        if k:  # every caller used: the same caller, another call site in it (a distinct stack)
            name, _, rest = callers[0].partition("+0x")
            off, _, size = rest.partition("/0x")
            callers = (f"{name}+{(int(off, 16) + 4 * k) % int(size, 16):#x}/0x{size}",) + callers[1:]
        return ALLOC_PREFIX + self.frames + callers


def _site(name: str, gfp: str, orders: dict[int, float], frames: list[str], free: list[str],
          callers: list[list[str]], *, user: bool, kernel: bool, flags: str = "", weight: float = 1.0,
          lifetime: float = 1.0) -> CallSite:
    return CallSite(name, parse_gfp(gfp), tuple(orders.items()), tuple(frames), tuple(free),
                    tuple(tuple(c) for c in callers), user, kernel, flags_mask(flags) if flags else 0, weight, lifetime)


SYSCALL = ["do_syscall_64+0x82/0x170", "entry_SYSCALL_64_after_hwframe+0x76/0x7e"]
# Planted bugs: a copy through a stale or overrunning pointer, and a stray write by a broken driver.
ACCESS_FRAME = "memcpy_orig+0x10/0x120"
STRAY_STACK = ("memset_orig+0x33/0xb0", "bad_driver_reset_ring+0x5e/0x120 [bad_driver]",
               "bad_driver_work+0x9d/0x140 [bad_driver]", "process_one_work+0x17c/0x3a0",
               "worker_thread+0x265/0x380", "kthread+0xe4/0x110", "ret_from_fork+0x34/0x50")
FAULT = ["handle_mm_fault+0x10f/0x2d0", "do_user_addr_fault+0x215/0x6f0", "exc_page_fault+0x7e/0x180",
         "asm_exc_page_fault+0x26/0x30"]
KTHREAD = ["process_one_work+0x17c/0x3a0", "worker_thread+0x265/0x380", "kthread+0xe4/0x110",
           "ret_from_fork+0x34/0x50", "ret_from_fork_asm+0x1a/0x30"]

BUILTIN_SITES: tuple[CallSite, ...] = (
    _site("slab", "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP", {0: 4, 1: 2, 2: 1, 3: 3},
          ["alloc_pages_mpol_noprof+0x95/0x1c0", "allocate_slab+0x2a9/0x3d0", "___slab_alloc+0x4e3/0xc20",
           "__kmalloc_cache_noprof+0x2b8/0x340"],
          ["free_unref_page+0x1e1/0x4f0", "__free_slab+0xa6/0xd0", "kmem_cache_free+0x34d/0x3f0"],
          [["kernfs_fop_open+0x2a5/0x3c0", "do_dentry_open+0x1a3/0x4e0", "path_openat+0x3ed/0x1200"] + SYSCALL,
           ["alloc_pipe_info+0x6a/0x1f0", "create_pipe_files+0x4c/0x230", "__do_pipe_flags+0x33/0xf0"] + SYSCALL,
           ["seq_open+0x3c/0x90", "single_open+0x5f/0xc0", "proc_single_open+0x1b/0x30"] + SYSCALL,
           ["mem_cgroup_css_alloc+0x18e/0x6d0", "cgroup_apply_control_enable+0x146/0x340"] + KTHREAD],
          user=True, kernel=True, weight=3.0),  # slab is a page type since 6.10, not PG_slab
    _site("anon", "GFP_HIGHUSER_MOVABLE|__GFP_COMP", {0: 1},
          ["alloc_pages_mpol_noprof+0x95/0x1c0", "vma_alloc_folio_noprof+0x64/0xd0", "do_anonymous_page+0x327/0x8a0",
           "__handle_mm_fault+0xb1b/0x1120"],
          ["free_unref_folios+0x3a1/0x5d0", "folios_put_refs+0x144/0x190", "release_pages+0x25/0x30",
           "tlb_batch_pages_flush+0x3d/0x70", "unmap_region+0x113/0x170", "do_vmi_align_munmap+0x3f1/0x590"] + SYSCALL,
          [FAULT], user=True, kernel=False, flags="uptodate|lru|active|swapbacked", weight=4.0),
    _site("pagecache", "GFP_HIGHUSER_MOVABLE", {0: 6, 2: 1},
          ["alloc_pages_mpol_noprof+0x95/0x1c0", "folio_alloc_noprof+0x5b/0xb0", "filemap_alloc_folio_noprof+0x2b/0x40",
           "page_cache_ra_unbounded+0x114/0x200"],
          ["free_unref_folios+0x3a1/0x5d0", "folios_put_refs+0x144/0x190", "__folio_batch_release+0x27/0x50",
           "truncate_inode_pages_range+0x1bc/0x4a0", "evict+0x1b0/0x2b0"],
          [["filemap_get_pages+0x2f4/0x6a0", "filemap_read+0xf4/0x380", "vfs_read+0x299/0x370", "ksys_read+0x6f/0xf0"] + SYSCALL,
           ["filemap_fault+0x5d6/0xbb0", "__do_fault+0x37/0x130", "do_read_fault+0x14d/0x200"] + FAULT],
          user=True, kernel=False, flags="uptodate|lru|referenced|mappedtodisk", weight=3.0, lifetime=2.0),
    _site("thp", "GFP_TRANSHUGE_LIGHT", {9: 1},
          ["alloc_pages_mpol_noprof+0x95/0x1c0", "vma_alloc_folio_noprof+0x64/0xd0",
           "do_huge_pmd_anonymous_page+0xb6/0x5f0", "__handle_mm_fault+0x8a3/0x1120"],
          ["free_unref_folios+0x3a1/0x5d0", "__folio_put+0x6b/0x80", "zap_huge_pmd+0x1e5/0x260",
           "unmap_page_range+0x3b6/0xd60"] + SYSCALL,
          [FAULT], user=True, kernel=False, flags="uptodate|lru|active|swapbacked", weight=0.15),
    _site("vmalloc", "GFP_KERNEL|__GFP_HIGHMEM|__GFP_NOWARN|__GFP_ZERO", {0: 1},
          ["alloc_pages_bulk_noprof+0x3a1/0x690", "__vmalloc_area_node+0x1c5/0x3c0",
           "__vmalloc_node_range_noprof+0x1d9/0x7e0", "__vmalloc_node_noprof+0x4e/0x70"],
          ["free_unref_page+0x1e1/0x4f0", "__free_pages+0x6b/0x80", "vfree+0xf1/0x280"],
          [["load_module+0x1c6/0x2210", "init_module_from_file+0x96/0xd0", "idempotent_init_module+0x11e/0x310"] + SYSCALL,
           ["bpf_prog_alloc_no_stats+0x39/0x220", "bpf_prog_load+0x19a/0xc30", "__sys_bpf+0x9ce/0x2200"] + SYSCALL],
          user=False, kernel=True, weight=0.8),
    _site("pgtable", "GFP_KERNEL_ACCOUNT|__GFP_ZERO", {0: 1},
          ["alloc_pages_noprof+0x53/0x90", "pte_alloc_one+0x2c/0x130", "__pte_alloc+0x35/0x1b0"],
          ["free_unref_page+0x1e1/0x4f0", "__tlb_remove_table+0x6b/0x90", "tlb_remove_table_rcu+0x34/0x60",
           "rcu_do_batch+0x1c0/0x560"],
          [["do_anonymous_page+0x68e/0x8a0", "__handle_mm_fault+0xb1b/0x1120"] + FAULT],
          user=True, kernel=False, weight=1.0, lifetime=3.0),
    _site("skb", "GFP_ATOMIC|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_NOMEMALLOC", {0: 3, 3: 1},
          ["__page_frag_alloc_align+0x8a/0x190", "__napi_alloc_skb+0x90/0x1a0"],
          ["free_unref_page+0x1e1/0x4f0", "skb_release_data+0x135/0x1d0", "napi_consume_skb+0x48/0xa0"],
          [["e1000_clean_rx_irq+0xf4/0x3c0", "e1000_clean+0x26b/0x880", "__napi_poll+0x2b/0x1c0",
            "net_rx_action+0x2ac/0x360", "handle_softirqs+0xd1/0x2a0"],
           ["virtnet_poll+0x5e0/0x9f0", "__napi_poll+0x2b/0x1c0", "net_rx_action+0x2ac/0x360",
            "handle_softirqs+0xd1/0x2a0"]],
          user=False, kernel=True, weight=1.2, lifetime=0.2),
    _site("dentry", "GFP_KERNEL|__GFP_RECLAIMABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP", {0: 3, 1: 1},
          ["alloc_pages_mpol_noprof+0x95/0x1c0", "allocate_slab+0x2a9/0x3d0", "___slab_alloc+0x4e3/0xc20",
           "kmem_cache_alloc_lru_noprof+0x2d8/0x320", "__d_alloc+0x30/0x210"],
          ["free_unref_page+0x1e1/0x4f0", "__free_slab+0xa6/0xd0", "shrink_slab+0x2f1/0x4c0"],
          [["d_alloc_parallel+0x55/0x410", "lookup_open.isra.0+0x1d7/0x640", "path_openat+0x2ad/0x1200",
            "do_filp_open+0xb2/0x160"] + SYSCALL,
           ["d_alloc_pseudo+0x1d/0x50", "alloc_file_pseudo+0x66/0xf0", "sock_alloc_file+0x48/0xc0"] + SYSCALL],
          user=True, kernel=True, weight=1.5, lifetime=3.0),
    _site("pcpu", "GFP_KERNEL", {0: 1},
          ["alloc_pages_mpol_noprof+0x95/0x1c0", "pcpu_populate_chunk+0x11c/0x3c0", "pcpu_alloc_noprof+0x40f/0x7a0"],
          ["free_unref_page+0x1e1/0x4f0", "pcpu_depopulate_chunk+0x9b/0x140", "pcpu_balance_workfn+0x2f0/0x4a0"] + KTHREAD,
          [["mem_cgroup_css_alloc+0x18e/0x6d0", "cgroup_apply_control_enable+0x146/0x340"] + SYSCALL,
           ["alloc_vfsmnt+0x99/0x1e0", "vfs_create_mount+0x27/0x110"] + SYSCALL],
          user=True, kernel=True, weight=0.4, lifetime=4.0),
    _site("dma32", "GFP_KERNEL|GFP_DMA32", {0: 2, 2: 1},
          ["alloc_pages_noprof+0x53/0x90", "dma_direct_alloc+0x10f/0x310", "dma_alloc_attrs+0x85/0xe0"],
          ["free_unref_page+0x1e1/0x4f0", "dma_direct_free+0xa7/0x130", "dma_free_attrs+0x6e/0x90"],
          [["xhci_ring_alloc+0x9c/0x2a0", "xhci_alloc_virt_device+0x1ad/0x3c0", "hub_port_connect+0x2ff/0xaa0"] + KTHREAD,
           ["nvme_alloc_queue+0x5f/0x1c0", "nvme_setup_io_queues+0x287/0x6d0", "nvme_reset_work+0x1e7/0x780"] + KTHREAD],
          user=False, kernel=True, weight=0.3, lifetime=4.0),
    _site("pipe", "GFP_HIGHUSER|__GFP_ACCOUNT", {0: 1},
          ["alloc_pages_noprof+0x53/0x90", "pipe_write+0x1d3/0x6c0", "vfs_write+0x35a/0x4a0", "ksys_write+0x6f/0xf0"],
          ["free_unref_page+0x1e1/0x4f0", "anon_pipe_buf_release+0x6e/0x90", "pipe_read+0x19a/0x4a0", "vfs_read+0x299/0x370"],
          [SYSCALL], user=True, kernel=False, weight=0.8, lifetime=0.3),
)

DEFAULT_TASKS = (
    {"pid": 1, "tgid": 1, "comm": "systemd", "user": True, "weight": 1.0},
    {"pid": 57, "tgid": 57, "comm": "kswapd0", "user": False, "weight": 0.5},
    {"pid": 118, "tgid": 118, "comm": "kworker/u8:2", "user": False, "weight": 2.0},
    {"pid": 2291, "tgid": 2288, "comm": "python3", "user": True, "weight": 3.0},
    {"pid": 3301, "tgid": 3290, "comm": "Web Content", "user": True, "weight": 2.0},
    {"pid": 4410, "tgid": 4410, "comm": "postgres", "user": True, "weight": 1.5},
    {"pid": 15, "tgid": 15, "comm": "ksoftirqd/0", "user": False, "weight": 1.0},
)
