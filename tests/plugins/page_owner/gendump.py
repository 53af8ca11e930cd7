"""Realistic, deterministic page_owner dumps for benchmarks and tests.

A real dump of a busy machine has millions of records but only a few
hundred distinct allocation stacks, a few dozen tasks, mostly order-0..3
blocks and some order-9 THPs.  That shape is what makes page_owner_sort's
grouping worthwhile, so the generator reproduces it: stacks are built from
real kernel call paths (page faults, page cache, slab, vmalloc, networking,
fork, pipes, CMA...), each stack is tied to plausible tasks, and the same
seed always gives the same bytes.
"""
from __future__ import annotations

import gzip as _gzip
import os
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pageext_core.mm.gfp import (
    __GFP_COMP,
    __GFP_HIGHMEM,
    __GFP_MOVABLE,
    __GFP_NOMEMALLOC,
    __GFP_NORETRY,
    __GFP_NOWARN,
    __GFP_RECLAIMABLE,
    __GFP_THISNODE,
    __GFP_ZERO,
    GFP_ATOMIC,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    GFP_NOFS,
    GFP_NOWAIT,
    GFP_TRANSHUGE_LIGHT,
    GFP_USER,
    format_gfp_mask,
    gfp_migratetype,
)
from pageext_core.mm.pageflags import (
    PG_active,
    PG_head,
    PG_lru,
    PG_mappedtodisk,
    PG_referenced,
    PG_swapbacked,
    PG_uptodate,
    format_pageflags,
)

__all__ = ["DumpInfo", "generate_records", "write_dump"]

MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")
MIGRATE_REASONS = ("compaction", "memory_failure", "memory_hotplug", "syscall_or_cpuset", "mempolicy_mbind", "numa_misplaced", "contig_range", "longterm_pin", "demotion")

_CORE = ["post_alloc_hook", "get_page_from_freelist", "__alloc_pages_noprof"]

# (family, inner frames after the core, alternative outer paths, gfp masks, orders, page-flag bits, task kind, weight)
_ENTRY_SYSCALL = ["do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
_FAULT_TAIL = ["__handle_mm_fault", "handle_mm_fault", "do_user_addr_fault", "exc_page_fault", "asm_exc_page_fault"]
_SOFTIRQ_TAIL = ["handle_softirqs", "irq_exit_rcu", "common_interrupt", "asm_common_interrupt"]

_FAMILIES: list[tuple[str, list[str], list[list[str]], list[int], list[int], list[int], str, int]] = [
    (
        "anon_fault",
        ["alloc_pages_mpol_noprof", "vma_alloc_folio_noprof"],
        [["do_anonymous_page"] + _FAULT_TAIL, ["do_cow_fault"] + _FAULT_TAIL, ["wp_page_copy"] + _FAULT_TAIL,
         ["do_anonymous_page", "__handle_mm_fault", "handle_mm_fault", "__get_user_pages", "get_user_pages_remote", "get_arg_page", "copy_string_kernel", "do_execveat_common.isra.0", "__x64_sys_execve"] + _ENTRY_SYSCALL],
        [GFP_HIGHUSER_MOVABLE | __GFP_COMP, GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_ZERO],
        [0, 0, 0, 0, 2, 3],
        [PG_uptodate, PG_lru, PG_active, PG_swapbacked],
        "user",
        30,
    ),
    (
        "thp_fault",
        ["alloc_pages_mpol_noprof", "vma_alloc_folio_noprof"],
        [["do_huge_pmd_anonymous_page"] + _FAULT_TAIL, ["collapse_huge_page", "hpage_collapse_scan_pmd", "khugepaged_scan_mm_slot", "khugepaged", "kthread", "ret_from_fork", "ret_from_fork_asm"]],
        [GFP_TRANSHUGE_LIGHT | __GFP_THISNODE, GFP_TRANSHUGE_LIGHT],
        [9],
        [PG_head, PG_uptodate, PG_lru, PG_swapbacked],
        "user",
        2,
    ),
    (
        "page_cache",
        ["alloc_pages_mpol_noprof", "folio_alloc_noprof", "filemap_alloc_folio_noprof"],
        [["page_cache_ra_unbounded", "filemap_get_pages", "filemap_read", fs, "vfs_read", "ksys_read"] + _ENTRY_SYSCALL for fs in ("ext4_file_read_iter", "xfs_file_buffered_read [xfs]", "btrfs_file_read_iter [btrfs]", "shmem_file_read_iter")]
        + [["page_cache_ra_order", "filemap_fault", "__do_fault", "do_read_fault"] + _FAULT_TAIL,
           ["__filemap_get_folio", "ext4_da_write_begin", "generic_perform_write", "ext4_buffered_write_iter", "vfs_write", "ksys_write"] + _ENTRY_SYSCALL],
        [GFP_HIGHUSER_MOVABLE & ~0x80 | __GFP_COMP, GFP_USER | __GFP_MOVABLE | __GFP_HIGHMEM | __GFP_COMP],
        [0, 0, 0, 2],
        [PG_referenced, PG_uptodate, PG_lru, PG_mappedtodisk],
        "user",
        24,
    ),
    (
        "slab",
        ["alloc_pages_mpol_noprof", "allocate_slab", "___slab_alloc"],
        [[alloc, caller] + outer + _ENTRY_SYSCALL
         for alloc, caller, outer in (
             ("kmem_cache_alloc_lru_noprof", "__d_alloc", ["d_alloc_parallel", "__lookup_slow", "walk_component", "path_lookupat", "filename_lookup", "vfs_statx", "__do_sys_newfstatat"]),
             ("kmem_cache_alloc_lru_noprof", "alloc_inode", ["new_inode", "ext4_new_inode", "ext4_create", "path_openat", "do_filp_open", "do_sys_openat2", "__x64_sys_openat"]),
             ("kmem_cache_alloc_noprof", "getname_flags.part.0", ["do_sys_openat2", "__x64_sys_openat"]),
             ("kmem_cache_alloc_noprof", "vm_area_alloc", ["mmap_region", "do_mmap", "vm_mmap_pgoff", "ksys_mmap_pgoff"]),
             ("kmem_cache_alloc_noprof", "alloc_empty_file", ["path_openat", "do_filp_open", "do_sys_openat2", "__x64_sys_openat"]),
             ("__kmalloc_cache_noprof", "kernfs_fop_open", ["do_dentry_open", "vfs_open", "path_openat", "do_filp_open", "do_sys_openat2", "__x64_sys_openat"]),
             ("__kmalloc_noprof", "seq_read_iter", ["vfs_read", "ksys_read"]),
             ("kmem_cache_alloc_node_noprof", "__alloc_skb", ["alloc_skb_with_frags", "sock_alloc_send_pskb", "unix_stream_sendmsg", "sock_write_iter", "vfs_write", "ksys_write"]),
             ("kmem_cache_alloc_noprof", "anon_vma_fork", ["dup_mmap", "dup_mm", "copy_process", "kernel_clone", "__do_sys_clone"]),
             ("__kmalloc_node_noprof", "kvmalloc_node_noprof", ["proc_sys_call_handler", "vfs_read", "ksys_read"]),
             ("kmem_cache_alloc_noprof", "sk_prot_alloc", ["sk_alloc", "inet_create", "__sock_create", "__sys_socket", "__x64_sys_socket"]),
             ("kmem_cache_alloc_noprof", "ext4_alloc_inode", ["alloc_inode", "iget_locked", "__ext4_iget", "ext4_lookup", "__lookup_slow", "walk_component", "path_lookupat"]),
         )],
        [GFP_KERNEL | __GFP_NOWARN | __GFP_NORETRY | __GFP_COMP, GFP_KERNEL_ACCOUNT | __GFP_COMP, GFP_NOFS | __GFP_RECLAIMABLE | __GFP_COMP | __GFP_NOWARN | __GFP_NORETRY],
        [0, 1, 2, 3],
        [PG_head],  # slab is a page type in 6.12, not a flag
        "any",
        16,
    ),
    (
        "vmalloc",
        [],
        [["alloc_pages_bulk_noprof", "__vmalloc_area_node", "__vmalloc_node_range_noprof", "__vmalloc_node_noprof", caller, outer]
         for caller, outer in (("load_module", "init_module_from_file"), ("bpf_prog_alloc_no_stats", "bpf_prog_load"), ("alloc_large_system_hash", "vfs_caches_init"))]
        + [["alloc_pages_bulk_mpol_noprof", "__vmalloc_node_range_noprof", "module_alloc", "load_module", "init_module_from_file", "idempotent_init_module"] + _ENTRY_SYSCALL],
        [GFP_KERNEL | __GFP_HIGHMEM | __GFP_NOWARN | __GFP_ZERO, GFP_KERNEL | __GFP_ZERO],
        [0],
        [],
        "root",
        3,
    ),
    (
        "net_rx",
        ["alloc_pages_mpol_noprof"],
        [["skb_page_frag_refill", "sk_page_frag_refill", "tcp_sendmsg_locked", "tcp_sendmsg", "sock_sendmsg", "__sys_sendto"] + _ENTRY_SYSCALL]
        + [["page_pool_alloc_pages", "page_pool_alloc_frag", drv, "__napi_poll", "net_rx_action"] + _SOFTIRQ_TAIL
           for drv in ("virtnet_poll [virtio_net]", "mlx5e_napi_poll [mlx5_core]")],
        [GFP_ATOMIC | __GFP_NOWARN | __GFP_COMP | __GFP_NOMEMALLOC, GFP_KERNEL | __GFP_COMP | __GFP_NOWARN | __GFP_NORETRY],
        [0, 3],
        [PG_head],
        "irq",
        8,
    ),
    (
        "pagetable",
        ["alloc_pages_mpol_noprof", "alloc_pages_noprof"],
        [["pte_alloc_one", "__pte_alloc", "do_anonymous_page"] + _FAULT_TAIL,
         ["__pmd_alloc", "__handle_mm_fault", "handle_mm_fault", "do_user_addr_fault", "exc_page_fault", "asm_exc_page_fault"],
         ["pgd_alloc", "mm_init", "dup_mm", "copy_process", "kernel_clone", "__do_sys_clone"] + _ENTRY_SYSCALL],
        [GFP_KERNEL_ACCOUNT | __GFP_ZERO],
        [0, 0, 1],
        [],
        "user",
        6,
    ),
    (
        "fork",
        ["alloc_pages_mpol_noprof", "alloc_pages_noprof"],
        [["__vmalloc_area_node", "__vmalloc_node_range_noprof", "alloc_thread_stack_node", "dup_task_struct", "copy_process", "kernel_clone", call] + _ENTRY_SYSCALL
         for call in ("__do_sys_clone", "__do_sys_clone3")],
        [GFP_KERNEL_ACCOUNT | __GFP_HIGHMEM | __GFP_ZERO],
        [0],
        [],
        "user",
        3,
    ),
    (
        "pipe",
        ["alloc_pages_mpol_noprof", "alloc_pages_noprof"],
        [["pipe_write", "vfs_write", "ksys_write"] + _ENTRY_SYSCALL, ["pipe_write", "__kernel_write_iter", "splice_write", "do_splice"] + _ENTRY_SYSCALL],
        [GFP_KERNEL_ACCOUNT | __GFP_HIGHMEM],
        [0],
        [],
        "user",
        4,
    ),
    (
        "kworker",
        ["alloc_pages_mpol_noprof", "alloc_pages_noprof", "__get_free_pages_noprof"],
        [[caller, "process_one_work", "worker_thread", "kthread", "ret_from_fork", "ret_from_fork_asm"]
         for caller in ("drm_gem_get_pages", "blk_mq_alloc_rqs", "ext4_writepages", "xlog_cil_push_work [xfs]", "flush_to_ldisc", "vmstat_update")],
        [GFP_KERNEL, GFP_NOWAIT | __GFP_NORETRY, GFP_KERNEL | __GFP_ZERO],
        [0, 0, 1, 2],
        [],
        "kworker",
        4,
    ),
]

_TASKS = {
    "user": [(1320, 1320, "bash"), (2291, 2288, "python3"), (2292, 2288, "python3"), (2288, 2288, "python3"),
             (3001, 3001, "postgres"), (3017, 3001, "postgres"), (4410, 4402, "java"), (4411, 4402, "GC Thread#0"),
             (1102, 1102, "sshd"), (1500, 1500, "containerd"), (1, 1, "systemd"), (402, 402, "systemd-journal")],
    "root": [(1, 1, "systemd"), (812, 812, "systemd-udevd"), (1540, 1540, "modprobe"), (2010, 2010, "bpftool")],
    "irq": [(0, 0, "swapper/0"), (0, 0, "swapper/1"), (14, 14, "ksoftirqd/0"), (22, 22, "ksoftirqd/1"), (4410, 4402, "java")],
    "kworker": [(112, 112, "kworker/u8:3"), (67, 67, "kworker/0:1H"), (130, 130, "kworker/1:2"), (88, 88, "kswapd0")],
}
_TASKS["any"] = _TASKS["user"] + _TASKS["root"] + _TASKS["kworker"][:2]


def _frame(sym: str, site: int) -> str:
    """``sym+0xoff/0xsize [mod]`` with a stable size per symbol and an offset per call site."""
    name, _, mod = sym.partition(" ")
    h = zlib.crc32(name.encode())
    size = 0x40 + (h % 0x1f00)
    off = (zlib.crc32(f"{name}@{site}".encode()) % (size - 8)) + 4
    return f"{name}+{off:#x}/{size:#x}" + (f" {mod}" if mod else "")


@dataclass(frozen=True)
class _Stack:
    text: str  # " frame\n" lines
    family: str
    gfps: tuple[int, ...]
    orders: tuple[int, ...]
    flags: int
    tasks: tuple[tuple[int, int, str], ...]
    weight: float
    cma: bool


def _build_stacks(rng: random.Random, count: int) -> list[_Stack]:
    stacks: list[_Stack] = []
    seen: set[str] = set()
    families = list(_FAMILIES)
    total_w = sum(f[7] for f in families)
    while len(stacks) < count:
        if len(stacks) < len(families):  # every family at least once
            fam, inner, outers, gfps, orders, flagbits, kind, w = families[len(stacks)]
        else:
            fam, inner, outers, gfps, orders, flagbits, kind, w = rng.choices(families, weights=[f[7] for f in families])[0]
        outer = rng.choice(outers)
        site = rng.randrange(6) if len(stacks) >= count // 3 else 0  # different call sites -> different offsets
        frames = _CORE + inner + outer
        frames = frames[:16]  # the kernel keeps at most 16 frames
        text = "".join(" " + _frame(f, site if i >= 3 else 0) + "\n" for i, f in enumerate(frames))
        if text in seen:
            # vary one outer frame's call site until new
            j = rng.randrange(3, len(frames))
            text = "".join(" " + _frame(f, site + 7 + len(stacks) if i == j else (site if i >= 3 else 0)) + "\n" for i, f in enumerate(frames))
            if text in seen:
                continue
        seen.add(text)
        pool = _TASKS[kind]
        ntasks = min(len(pool), rng.choice((1, 1, 2, 3)))
        tasks = tuple(rng.sample(pool, ntasks))
        flags = 0
        for bit in flagbits:
            flags |= 1 << bit
        stacks.append(
            _Stack(text, fam, tuple(gfps), tuple(orders), flags, tasks, w / total_w * rng.uniform(0.2, 1.8), cma=False)
        )
    # a CMA user, as on machines with a contiguous-memory area (dma buffers)
    cma_text = "".join(" " + _frame(f, 0) + "\n" for f in _CORE + ["alloc_contig_range_noprof", "cma_alloc", "dma_alloc_contiguous", "__dma_direct_alloc_pages.isra.0", "dma_direct_alloc", "dma_alloc_attrs", "drm_gem_dma_create"])
    stacks[-1] = _Stack(cma_text, "cma", (GFP_KERNEL,), (0, 4), 0, ((1700, 1700, "Xorg"),), 0.01, cma=True)
    return stacks


@dataclass(frozen=True)
class DumpInfo:
    """What was written: handy for checking a sorter's totals."""

    records: int
    pages: int
    stacks: int
    bytes: int


def generate_records(
    n: int, *, seed: int = 0, stacks: int = 300, start_pfn: int = 0x10000, snapshot: int = 0
) -> Iterator[tuple[str, int]]:
    """Yield ``(record_text, order)`` for ``n`` current-format records, each ending with an empty line.

    ``seed`` fixes the machine (its stacks, tasks and weights); ``snapshot``
    draws a different set of allocations on that same machine, so two
    snapshots share their stacks but not their counts, as two dumps of one
    machine taken at different times do.
    """
    rng = random.Random(seed)
    table = _build_stacks(rng, stacks)
    if snapshot:
        rng = random.Random(f"{seed}/{snapshot}")
        table = [
            _Stack(s.text, s.family, s.gfps, s.orders, s.flags, s.tasks, s.weight * rng.uniform(0.3, 3.0), s.cma)
            for s in table
        ]
    weights = [s.weight for s in table]
    # precompute every (stack, task, gfp, order) header prefix so the loop only formats numbers
    variants: list[list[tuple[str, str, int, int]]] = []
    for s in table:
        vs = []
        for pid, tgid, comm in s.tasks:
            for gfp in s.gfps:
                for order in sorted(set(s.orders)):
                    head = f"Page allocated via order {order}, mask {format_gfp_mask(gfp)}, pid {pid}, tgid {tgid} ({comm}), ts "
                    mt = 4 if s.cma else gfp_migratetype(gfp)
                    vs.append((head, MIGRATETYPE_NAMES[mt], order, s.flags))
        variants.append(vs)
    order_weights = {0: 70, 1: 8, 2: 10, 3: 8, 4: 2, 9: 2}
    pfn = start_pfn
    ts = 2_000_000_000 + rng.randrange(10**9)
    choices = rng.choices
    randrange = rng.randrange
    random_ = rng.random
    variant_weights = [[order_weights.get(v[2], 1) for v in vs] for vs in variants]
    batch = 1 << 14
    picks: list[int] = []
    for i in range(n):
        if i % batch == 0:
            picks = choices(range(len(table)), weights=weights, k=batch)
        si = picks[i % batch]
        s = table[si]
        vs = variants[si]
        head, mt, order, flags = vs[0] if len(vs) == 1 else choices(vs, weights=variant_weights[si])[0]
        size = 1 << order
        pfn = (pfn + size - 1) & ~(size - 1)
        ts += randrange(1, 400_000)
        block_mt = mt if random_() > 0.03 else ("Movable" if mt != "Movable" else "Unmovable")
        zone = 1 if pfn < 0x100000 else 2
        pflags = format_pageflags(flags, 0, zone)
        tail = ""
        if mt == "Movable" and random_() < 0.02:
            tail = f"Page has been migrated, last migrate reason: {MIGRATE_REASONS[randrange(len(MIGRATE_REASONS))]}\n"
        yield (
            f"{head}{ts} ns\nPFN {pfn:#x} type {mt} Block {pfn >> 9} type {block_mt} Flags {pflags}\n{s.text}{tail}\n",
            order,
        )
        pfn += size + (randrange(8) if random_() < 0.3 else 0)


def write_dump(
    out: str | os.PathLike[str] | BinaryIO,
    n: int,
    *,
    seed: int = 0,
    stacks: int = 300,
    gzip: bool = False,
    snapshot: int = 0,
) -> DumpInfo:
    """Write ``n`` records to a path or binary stream (gzip-compressed if asked).

    Same arguments, same bytes.  See :func:`generate_records` for ``snapshot``.
    """
    close = None
    if isinstance(out, (str, os.PathLike)):
        close = raw = open(out, "wb")
    else:
        raw = out
    sink: BinaryIO = _gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) if gzip else raw  # type: ignore[assignment]
    pages = 0
    written = 0
    try:
        buf: list[str] = []
        for text, order in generate_records(n, seed=seed, stacks=stacks, snapshot=snapshot):
            buf.append(text)
            pages += 1 << order
            if len(buf) >= 4096:
                data = "".join(buf).encode()
                sink.write(data)
                written += len(data)
                buf.clear()
        if buf:
            data = "".join(buf).encode()
            sink.write(data)
            written += len(data)
    finally:
        if gzip:
            sink.close()
        if close is not None:
            close.close()
    return DumpInfo(records=n, pages=pages, stacks=stacks, bytes=written)


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/plugins/page_owner/gendump.py N OUT [--gzip]
    import sys

    args = [a for a in sys.argv[1:] if a != "--gzip"]
    info = write_dump(args[1], int(args[0]), gzip="--gzip" in sys.argv)
    print(info)
