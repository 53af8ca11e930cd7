"""page_owner as a page_ext client: boot parameters, layout, the events that write records.

Machines are small and hand-checkable.  TINY is 64 MiB without holes or
reservations: DMA = pfns [0, 4096), DMA32 = [4096, 16384), one 128 MiB
section whose page_ext table (32768 records) is allocated at boot.
"""
from __future__ import annotations

import pytest

import pageext_core as pc
from pageext_core.mm import MiB, Task, check_invariants
from pageext_core.mm.gfp import __GFP_COMP, GFP_HIGHUSER_MOVABLE, GFP_KERNEL
from pageext_page_owner.plugin import PageOwner

TINY = pc.MachineConfig(memory=64 * MiB, x86_holes=False, kernel_image=0, reserve_memmap=False)
UDEV = Task(812, 812, "systemd-udevd")
PY = Task(2291, 2288, "python3")
STACK = ["post_alloc_hook+0x1a2/0x1c0", "get_page_from_freelist+0x3b8/0x1530", "kernfs_fop_open+0x2a5/0x3c0"]
FREE_STACK = ["free_unref_page+0x25/0x3a0", "kernfs_fop_release+0x44/0x90"]


def boot(cmdline: str = "page_owner=on", config: pc.MachineConfig = TINY, how: str = "entry point", **kw) -> pc.PageExt:
    if how == "entry point":
        return pc.boot(config, cmdline, autoload=True, **kw)
    return pc.boot(config, cmdline, autoload=False, plugins=[PageOwner], **kw)


@pytest.fixture(params=["entry point", "direct"])
def pe(request: pytest.FixtureRequest) -> pc.PageExt:
    """page_owner on, loaded both ways users load it."""
    return boot(how=request.param)


def owner(pe: pc.PageExt) -> PageOwner:
    return pe.plugin("page_owner")


def field(pe: pc.PageExt, pfn: int, name: str, nr: int = 1) -> list:
    """One field of ``nr`` pages as plain Python values."""
    return [owner(pe).view.get(p, name).item() for p in range(pfn, pfn + nr)]


def bits(pe: pc.PageExt, pfn: int, nr: int = 1) -> list[int]:
    """Per page: 1 = OWNER, 2 = OWNER_ALLOCATED (whatever bit numbers the layout gave them)."""
    view = owner(pe).view
    o, a = view.flag("OWNER"), view.flag("OWNER_ALLOCATED")
    return [(1 if int(x) & o else 0) | (2 if int(x) & a else 0) for x in view.flags_of(pfn, nr)]


# -- off by default -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["entry point", "direct"])
@pytest.mark.parametrize("cmdline", ["", "page_owner=off", "page_owner=0", "page_owner=n"])
def test_off_costs_no_memory_and_no_callouts(how: str, cmdline: str) -> None:
    pe = boot(cmdline, how=how)
    m = pe.machine
    assert "page_owner" in [c.name for c in pe.clients]
    assert pe.client("page_owner").enabled is False
    assert pe.nbytes == 0 and pe.record_size == 0
    assert not m.callouts and m.callouts.clients() == set()
    pfn = m.alloc_pages(GFP_KERNEL, 0)
    assert pe.dump_page(pfn) is None
    assert "page_owner" not in pe.report_names()
    assert not m.log.grep("page owner found early allocated")
    with pytest.raises(RuntimeError, match="page_owner=on"):
        owner(pe).read_record(0)


@pytest.mark.parametrize("word", ["on", "ON", "1", "y", "yes", "Yes"])
def test_kernel_boolean_turns_it_on(word: str) -> None:
    assert boot(f"page_owner={word}").enabled == ["page_owner"]


def test_toml_table_sets_both_parameters() -> None:
    pe = pc.boot(TINY, "", boot_tables={"page_owner": {"enabled": True, "stack_depth": 5}}, autoload=True)
    assert pe.enabled == ["page_owner"]
    assert owner(pe).stack_depth == 5 and pe.machine.stack_max_frames == 5


# -- layout ------------------------------------------------------------------------------


def test_layout_is_flags_word_then_64_byte_record(pe: pc.PageExt) -> None:
    view = owner(pe).view
    assert pe.record_size == 72  # 8-byte flags word + struct page_owner (64 bytes)
    assert (view.offset, view.size) == (8, 64)
    assert view.fields == ("ts_nsec", "order", "last_migrate_reason", "gfp_mask", "handle", "pid", "tgid", "comm",
                           "free_handle", "free_ts_nsec", "free_pid", "free_tgid")
    assert view.flag_bits == {"OWNER": 1, "OWNER_ALLOCATED": 2}
    # One present section, a table of 32768 records.
    assert pe.nbytes == 32768 * 72
    desc = pe.client("page_owner").describe()
    assert desc["fields"]["comm"] == "|S16" and desc["fields"]["last_migrate_reason"] == "<i2"


# -- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3])  # order 1 takes its own copying path
def test_alloc_records_every_page_of_the_block(pe: pc.PageExt, order: int) -> None:
    m = pe.machine
    n = 1 << order
    with m.context(task=UDEV, stack=STACK):
        before = m.clock_ns
        pfn = m.alloc_pages(GFP_KERNEL, order)
    handle = m.depot.save(STACK)  # same frames: the depot gives the same handle back
    for name, want in [("order", order), ("gfp_mask", GFP_KERNEL), ("handle", handle), ("pid", 812),
                       ("tgid", 812), ("comm", b"systemd-udevd"), ("ts_nsec", before + m.op_cost_ns),
                       ("last_migrate_reason", -1), ("free_handle", 0), ("free_ts_nsec", 0)]:
        assert field(pe, pfn, name, n) == [want] * n, name
    assert bits(pe, pfn, n + 1) == [3] * n + [0]  # OWNER|OWNER_ALLOCATED on the block's pages, not beyond
    check_invariants(m)


def test_free_records_who_freed_and_clears_allocated_only(pe: pc.PageExt) -> None:
    m = pe.machine
    with m.context(task=UDEV, stack=STACK):
        pfn = m.alloc_pages(GFP_KERNEL, 1)
    m.advance(1000)
    with m.context(task=PY, stack=FREE_STACK):
        before = m.clock_ns
        m.free_pages(pfn, 1)
    assert bits(pe, pfn, 2) == [1, 1]  # OWNER stays, OWNER_ALLOCATED gone
    assert field(pe, pfn, "free_handle", 2) == [m.depot.save(FREE_STACK)] * 2
    free_ts = field(pe, pfn, "free_ts_nsec", 2)
    assert free_ts[0] == free_ts[1] and before <= free_ts[0] <= m.clock_ns  # the time of this free
    assert field(pe, pfn, "free_pid", 2) == [2291] * 2 and field(pe, pfn, "free_tgid", 2) == [2288] * 2
    assert field(pe, pfn, "pid", 2) == [812] * 2 and field(pe, pfn, "order", 2) == [1] * 2  # history kept


def test_new_allocation_keeps_the_pages_last_free(pe: pc.PageExt) -> None:
    """As in the kernel, allocation writes the alloc fields only: free_ts tells when the page was last freed."""
    m = pe.machine
    with m.context(stack=STACK):
        pfn = m.alloc_pages(GFP_KERNEL, 0)
        m.advance(500)
        before_free = m.clock_ns
        m.free_pages(pfn, 0)
        freed_at = field(pe, pfn, "free_ts_nsec")[0]
        m.advance(500)
        again = m.alloc_pages(GFP_KERNEL, 0)
    assert again == pfn  # the per-CPU list hands the same page back
    assert before_free <= freed_at < field(pe, pfn, "ts_nsec")[0]
    assert field(pe, pfn, "free_ts_nsec") == [freed_at]  # not reset, not overwritten by the allocation
    assert bits(pe, pfn) == [3]


def test_tail_of_a_new_block_keeps_its_own_free_history(pe: pc.PageExt) -> None:
    m = pe.machine
    with m.context(stack=STACK):
        pfn = m.alloc_pages(GFP_KERNEL, 1)
        m.split_page(pfn, 1)
        m.advance(100)
        m.free_pages(pfn + 1, 0)
        t_tail = field(pe, pfn + 1, "free_ts_nsec")[0]
        m.advance(100)
        m.free_pages(pfn, 0)
        t_head = field(pe, pfn, "free_ts_nsec")[0]
        m.drain_all_pages()
        again = m.alloc_pages(GFP_KERNEL, 1)
    assert again == pfn and t_tail < t_head
    assert field(pe, pfn, "free_ts_nsec", 2) == [t_head, t_tail]
    assert field(pe, pfn, "order", 2) == [1, 1]


def test_split_page_makes_every_page_order_0(pe: pc.PageExt) -> None:
    m = pe.machine
    with m.context(task=UDEV, stack=STACK):
        pfn = m.alloc_pages(GFP_KERNEL, 3)
    m.split_page(pfn, 3)
    assert field(pe, pfn, "order", 8) == [0] * 8
    assert field(pe, pfn, "handle", 8) == [m.depot.save(STACK)] * 8
    assert bits(pe, pfn, 8) == [3] * 8
    assert owner(pe).split_pages == 8


def test_migration_copies_the_record_and_notes_the_reason(pe: pc.PageExt) -> None:
    """6.12's ``__folio_copy_owner``: the new pages take the old head's allocation; the reason goes on the head only."""
    m = pe.machine
    with m.context(task=PY, stack=STACK):
        old = m.alloc_pages(GFP_HIGHUSER_MOVABLE, 1)
    alloc_ts = field(pe, old, "ts_nsec")[0]
    m.advance(10_000)
    with m.context(task=UDEV, stack=["kcompactd+0x10/0x200"]):
        new = m.migrate_pages(old, 1, reason="numa_misplaced")
    assert new is not None and new != old
    assert field(pe, new, "handle", 2) == [m.depot.save(STACK)] * 2  # who allocated the data, not the mover
    assert field(pe, new, "pid", 2) == [2291] * 2 and field(pe, new, "ts_nsec", 2) == [alloc_ts] * 2
    # set_page_owner_migrate_reason writes the head page's record only
    assert field(pe, new, "last_migrate_reason", 2) == [5, -1]  # numa_misplaced is reason 5
    assert bits(pe, new, 2) == [3, 3]
    assert bits(pe, old, 2) == [1, 1]  # the old block was freed by the mover
    assert field(pe, old, "free_pid") == [812]
    assert owner(pe).migrations == 1


def test_migration_leaves_the_new_pages_free_stack_and_gives_the_old_pages_the_migrate_stack(pe: pc.PageExt) -> None:
    """6.12's ``__folio_copy_owner``: ``__update_page_owner_free_handle`` with handle 0 leaves the new
    pages' free stack as their last life left it (the issue's "copied" is not 6.12), sets their free
    ts to the old head's and their free pid to the current task's; the old pages get the migration
    target's allocation stack, so that freeing them gives that stack's pages back."""
    m = pe.machine
    mover = ["migrate_pages+0x3c/0x90", "kcompactd+0x10/0x200"]
    with m.context(task=PY, stack=STACK):
        old = m.alloc_pages(GFP_HIGHUSER_MOVABLE, 1)
        spare = m.alloc_pages(GFP_HIGHUSER_MOVABLE, 1)
    with m.context(task=PY, stack=FREE_STACK):
        m.free_pages(spare, 1)  # spare's pages now remember FREE_STACK as their free stack
    with m.context(task=UDEV, stack=mover):
        new = m.migrate_pages(old, 1, reason="compaction")
    assert new == spare, "the migration target should be the block just freed"
    assert field(pe, new, "free_handle", 2) == [m.depot.save(FREE_STACK)] * 2
    assert field(pe, new, "free_pid", 2) == [812] * 2 and field(pe, new, "free_tgid", 2) == [812] * 2
    assert field(pe, new, "free_ts_nsec", 2) == [0, 0]  # the old head was never freed before
    assert field(pe, old, "handle", 2) == [m.depot.save(mover)] * 2
    assert "\n migrate_pages+0x3c/0x90\n kcompactd+0x10/0x200\npage last free pid 812" in pe.dump_page(old)
    # show_stacks: the data's stack owns the two pages once; the migration stack owns none
    text = owner(pe).show_stacks()
    assert text.count("nr_base_pages:") == 1 and "kernfs_fop_open+0x2a5/0x3c0\nnr_base_pages: 2\n" in text


def test_python_stack_is_captured_without_an_explicit_stack(pe: pc.PageExt) -> None:
    m = pe.machine
    pfn = m.alloc_pages(GFP_KERNEL, 0)
    frames = m.depot.fetch(field(pe, pfn, "handle")[0])
    me = "test_python_stack_is_captured_without_an_explicit_stack+"
    assert frames[0].startswith(me) and frames[0].endswith("[test_page_owner_client]")
    assert not any("pageext_core" in f or "[record]" in f or "[machine]" in f for f in frames)
    assert len(frames) <= 16


def test_stack_depth_parameter_limits_frames() -> None:
    pe = boot("page_owner=on page_owner_stack_depth=3")
    m = pe.machine
    with m.context(stack=[f"f{i}+0x0/0x10" for i in range(10)]):
        pfn = m.alloc_pages(GFP_KERNEL, 0)
    assert m.depot.fetch(field(pe, pfn, "handle")[0]) == ("f0+0x0/0x10", "f1+0x0/0x10", "f2+0x0/0x10")
    assert len(m.depot.fetch(field(pe, m.alloc_pages(GFP_KERNEL, 0), "handle")[0])) <= 3


@pytest.mark.parametrize("value", ["0", "65", "-1", "many", ""])
def test_bad_stack_depth_is_logged_and_ignored(value: str) -> None:
    pe = boot(f"page_owner=on page_owner_stack_depth={value}")
    assert owner(pe).stack_depth == 16
    assert pe.machine.log.grep("Bad page_owner_stack_depth value") == [
        f"Bad page_owner_stack_depth value: {value} (expected 1..64), using 16"]


def test_events_reach_hot_added_memory() -> None:
    """Tables come and go with memory blocks; records land in the new tables."""
    pe = boot(config=TINY.with_(hotplug=128 * MiB))
    m = pe.machine
    blk = next(b for b in m.memory_blocks if b.hotplug)
    m.online_memory_block(blk.index)
    held = []
    with m.context(stack=STACK):
        while (pfn := m.alloc_pages(GFP_HIGHUSER_MOVABLE, 9)) is not None and pfn < blk.start_pfn:
            held.append(pfn)
    assert pfn is not None and blk.start_pfn <= pfn < blk.end_pfn
    assert bits(pe, pfn, 512) == [3] * 512 and field(pe, pfn + 511, "order") == [9]
    m.free_pages(pfn, 9)
    m.offline_memory_block(blk.index)
    m.online_memory_block(blk.index)  # fresh, zeroed tables
    assert bits(pe, pfn, 512) == [0] * 512
    with m.context(stack=STACK):
        again = m.alloc_pages(GFP_HIGHUSER_MOVABLE, 9)
    assert again is not None and blk.start_pfn <= again < blk.end_pfn
    assert bits(pe, again, 512) == [3] * 512
    check_invariants(m)


# -- early allocations ---------------------------------------------------------------------------


def test_early_allocated_pages_get_an_early_record_each(pe: pc.PageExt) -> None:
    """6.12's ``init_pages_in_zone``: every in-use page without a record (not PageBuddy, not
    reserved) gets its own order-0 record with the early stack, gfp 0 and the init task, and
    the count is logged per zone.  The early stack is never counted in show_stacks."""
    m = pe.machine
    # The only allocation before init is the page_ext table itself:
    # 32768 records x 72 bytes = 576 pages, GFP_KERNEL -> highest zone DMA32.
    assert m.log.grep("page owner found early allocated") == [
        "Node 0, zone      DMA: page owner found early allocated 0 pages",
        "Node 0, zone    DMA32: page owner found early allocated 576 pages",
    ]
    table_pfn = 4096  # the lowest DMA32 order-10 block is handed out first
    early = owner(pe).early_handle
    assert list(m.depot.fetch(early)[:2]) == ["register_early_stack+0x2a/0x80", "init_page_owner+0x3c/0x420"]
    for pfn in (table_pfn, table_pfn + 1, table_pfn + 575):
        rec = owner(pe).record(pfn)
        assert (rec.handle, rec.order, rec.gfp_mask, rec.pid, rec.comm_text, rec.last_migrate_reason) == \
            (early, 0, 0, 0, "swapper/0", -1)
        assert bits(pe, pfn) == [3]
    assert bits(pe, table_pfn + 576) == [0]  # the freed tail of the table's block: free, no record
    text, _ = owner(pe).read_record(table_pfn + 1)  # each page is its own order-0 record
    assert text.startswith("Page allocated via order 0, mask 0x0(), pid 0, tgid 0 (swapper/0), ts ")
    assert text.split("\n")[1].startswith(f"PFN {table_pfn + 1:#x} type Unmovable ")
    assert pe.dump_page(table_pfn).startswith(
        "page_owner tracks the page as allocated\n"
        "page last allocated via order 0, migratetype Unmovable, gfp_mask 0x0(), pid 0, tgid 0 (swapper/0), ")
    assert owner(pe).show_stacks() == ""  # no count for the early stack
    # freeing such a page later records the free as for any page
    with m.context(task=UDEV, stack=FREE_STACK):
        m.free_pages(table_pfn + 575, 0)
    assert bits(pe, table_pfn + 575) == [1] and field(pe, table_pfn + 575, "free_pid") == [812]


def test_pages_on_per_cpu_lists_at_init_count_as_early() -> None:
    """init_pages_in_zone skips only PageBuddy and PageReserved pages: a page on a per-CPU list is neither."""
    m = pc.Machine(TINY)
    p = m.alloc_pages(GFP_KERNEL, 0)
    m.free_pages(p, 0)
    assert m.page_kind(p).kind.label == "pcp"
    from pageext_page_owner.early import in_use_mask

    mask = in_use_mask(m)
    assert mask[p] and m.nr_pcp_pages >= 1
    assert int(mask.sum()) == m.nr_pcp_pages + m.nr_allocated_pages


def test_early_count_covers_every_section_and_skips_reserved() -> None:
    # 256 MiB with x86 holes, kernel image and memmap reserved: two present
    # sections, so two tables of 576 pages; reserved pages are not counted.
    pe = boot(config=pc.MachineConfig(memory=256 * MiB))
    assert pe.machine.log.grep("page owner found early allocated") == [
        "Node 0, zone      DMA: page owner found early allocated 0 pages",
        "Node 0, zone    DMA32: page owner found early allocated 1152 pages",
    ]
    assert pe.client_summaries()["page_owner"]["early_allocated_pages"] == 1152


def test_flatmem_tables_come_from_memblock_so_nothing_is_early() -> None:
    pe = boot(config=TINY.with_(memory_model="FLATMEM"))
    m = pe.machine
    lines = m.log.grep("page owner found early allocated")
    assert lines == ["Node 0, zone      DMA: page owner found early allocated 0 pages",
                     "Node 0, zone    DMA32: page owner found early allocated 0 pages"]
    # One table for the whole node: events land in it like in a section's.
    with m.context(task=UDEV, stack=STACK):
        a = m.alloc_pages(GFP_KERNEL, 0)
        b = m.alloc_pages(GFP_KERNEL, 3)
    assert bits(pe, a) == [3] and bits(pe, b, 9) == [3] * 8 + [0]
    assert field(pe, b, "order", 8) == [3] * 8 and field(pe, a, "pid") == [812]
    m.free_pages(b, 3)
    assert bits(pe, b, 8) == [1] * 8


# -- dump_page_owner -------------------------------------------------------------------------------


def test_owner_dump_of_an_allocated_page(pe: pc.PageExt) -> None:
    m = pe.machine
    with m.context(task=UDEV, stack=STACK):
        pfn = m.alloc_pages(GFP_KERNEL | __GFP_COMP, 2)
    ts = field(pe, pfn, "ts_nsec")[0]
    expected = (
        "page_owner tracks the page as allocated\n"
        f"page last allocated via order 2, migratetype Unmovable, gfp_mask 0x40cc0(GFP_KERNEL|__GFP_COMP), "
        f"pid 812, tgid 812 (systemd-udevd), ts {ts}, free_ts 0\n"
        " post_alloc_hook+0x1a2/0x1c0\n"
        " get_page_from_freelist+0x3b8/0x1530\n"
        " kernfs_fop_open+0x2a5/0x3c0\n"
        "page_owner free stack trace missing"
    )
    assert pe.dump_page(pfn) == expected
    assert pe.dump_page(pfn + 3) == expected  # a tail page carries the same record


def test_owner_dump_of_a_freed_and_migrated_page(pe: pc.PageExt) -> None:
    m = pe.machine
    with m.context(task=PY, stack=STACK):
        old = m.alloc_pages(GFP_HIGHUSER_MOVABLE, 0)
    ts = field(pe, old, "ts_nsec")[0]
    with m.context(task=UDEV, stack=FREE_STACK):
        new = m.migrate_pages(old, 0, reason="compaction")
        free_ts = field(pe, old, "free_ts_nsec")[0]
        m.free_pages(new, 0)
    new_free_ts = field(pe, new, "free_ts_nsec")[0]
    assert free_ts and new_free_ts >= free_ts
    head = (f"page last allocated via order 0, migratetype Movable, gfp_mask 0x100cca(GFP_HIGHUSER_MOVABLE), "
            f"pid 2291, tgid 2288 (python3), ts {ts}, ")
    stacks = (" post_alloc_hook+0x1a2/0x1c0\n get_page_from_freelist+0x3b8/0x1530\n kernfs_fop_open+0x2a5/0x3c0\n"
              "page last free pid 812 tgid 812 stack trace:\n"
              " free_unref_page+0x25/0x3a0\n kernfs_fop_release+0x44/0x90")
    # the old page was given the migration target's stack (FREE_STACK here) before it was freed
    migrated_from = (" free_unref_page+0x25/0x3a0\n kernfs_fop_release+0x44/0x90\n"
                     "page last free pid 812 tgid 812 stack trace:\n"
                     " free_unref_page+0x25/0x3a0\n kernfs_fop_release+0x44/0x90")
    assert pe.dump_page(old) == f"page_owner tracks the page as freed\n{head}free_ts {free_ts}\n{migrated_from}"
    assert pe.dump_page(new) == (f"page_owner tracks the page as freed\n{head}free_ts {new_free_ts}\n{stacks}\n"
                                  "page has been migrated, last migrate reason: compaction")


def test_owner_dump_without_a_record(pe: pc.PageExt) -> None:
    m = pe.machine
    never = 200  # DMA, free since boot
    assert m.is_free(never)
    assert pe.dump_page(never) == "page_owner info is not present (never set?)"
    assert pe.dump_page(20000) == "There is not page extension available."  # beyond the 64 MiB of RAM


# -- with the framework and the other clients ------------------------------------------------------


def test_conformance_check_passes() -> None:
    """Writes only its own bytes and bits (next to a sentinel client), reports work, bad values rejected."""
    from pageext_core.conformance import check_conformance

    report = check_conformance(PageOwner, boot_on="page_owner=on", raise_on_failure=False)
    assert report.ok, str(report)


def test_other_clients_get_the_owner_dump_in_their_reports() -> None:
    """debug_pagealloc finds a corrupted free page and asks page_owner whose it was."""
    pe = boot("page_owner=on page_poison=on debug_pagealloc=on debug_guardpage_minorder=1", config=TINY)
    assert pe.enabled == ["debug_pagealloc", "guard", "page_owner"]
    # guard keeps no field (its order is page private), so page_owner follows the flags word;
    # a client at another offset is exercised by the alloc_tag example (page_owner at 16)
    assert owner(pe).view.offset == 8
    m = pe.machine
    with m.context(task=UDEV, stack=STACK):
        pfn = m.alloc_pages(GFP_KERNEL, 0)
    with m.context(task=PY, stack=FREE_STACK):
        m.free_pages(pfn, 0)
    said = pe.dump_page(pfn)
    assert said.startswith("page_owner tracks the page as freed\n")
    m.contents.write_phys(pfn, 7, b"\x00")
    with m.context(stack=STACK):
        assert m.alloc_pages(GFP_KERNEL, 0) == pfn
    assert any(said in f.message for f in pe.findings())
    # After the report, page_owner records the new allocation (by swapper) and keeps the last free.
    assert bits(pe, pfn) == [3] and field(pe, pfn, "pid") == [0] and field(pe, pfn, "free_pid") == [2291]


def test_flatmem_logs_the_page_ext_allocation_before_memory() -> None:
    """6.12's mm_core_init: page_ext_init_flatmem ("allocated N bytes of page_ext") runs before
    mem_init_print_info ("Memory: ..."); page_owner's early count comes later (page_ext_init_flatmem_late)."""
    pe = boot(config=TINY.with_(memory_model="FLATMEM"))
    lines = [t for _, _, t in pe.machine.log.lines]
    alloc = next(i for i, t in enumerate(lines) if t.startswith("allocated ") and t.endswith(" bytes of page_ext"))
    memory = next(i for i, t in enumerate(lines) if t.startswith("Memory: "))
    early = next(i for i, t in enumerate(lines) if "page owner found early allocated" in t)
    assert alloc < memory < early
    # SPARSEMEM allocates from the buddy allocator, after "Memory:"
    lines = [t for _, _, t in boot().machine.log.lines]
    assert next(i for i, t in enumerate(lines) if t.startswith("Memory: ")) < \
        next(i for i, t in enumerate(lines) if t.endswith(" bytes of page_ext"))
