"""A page fault is logged once, as the kernel's oops: header, Oops line, CPU line, Call Trace, then the clients' texts.

The Oops line is 6.12's ``__die_header`` (arch/x86/kernel/dumpstack.c): the
``Oops: `` prefix (6.10+) before the page-fault path's own ``Oops`` string,
so ``Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI``; the issue's ``PREEMPT SMP
DEBUG_PAGEALLOC NOPTI`` without the double prefix is not what 6.12 prints.
``dump_stack_print_info`` (lib/dump_stack.c) adds the verbose taint line and
``Hardware name:``.
"""
from __future__ import annotations

import pytest

from pageext_core.mm import Callout, Callouts, Machine, PageFault, Task
from pageext_core.mm import gfp as G
from pageext_core.mm.errors import direct_map_address


def test_fault_is_logged_as_one_oops_and_taints_the_kernel(tiny: Machine) -> None:
    m = tiny
    p = m.alloc_pages(G.GFP_KERNEL, 0)
    m.contents.unmap(p)
    m.install(Callouts(fault=(Callout("client", lambda pfn, off, write: f"client: pfn {pfn:#x} is a trap"),)))
    stack = ["memcpy_orig+0x10/0x120", "buggy_driver_write+0x2c/0x90", "vfs_write+0x35a/0x4a0"]
    before = len(m.log.lines)
    with m.context(task=Task(77, 77, "buggy"), stack=stack, cpu=1), pytest.raises(PageFault):
        m.write(p, 0x40, b"x")
    logged = [(lvl, t) for _, lvl, t in m.log.lines[before:]]
    assert logged == [("err", t) for t in [
        f"BUG: unable to handle page fault for address: {direct_map_address(p, 0x40):016x}",
        "#PF: supervisor write access in kernel mode",
        "#PF: error_code(0x0002) - not-present page",
        "Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI",
        "CPU: 1 UID: 0 PID: 77 Comm: buggy Not tainted 6.12.0-pageext #1",
        "Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-2.fc40 04/01/2014",
        "Call Trace:",
        " <TASK>",
        " memcpy_orig+0x10/0x120",
        " buggy_driver_write+0x2c/0x90",
        " vfs_write+0x35a/0x4a0",
        " </TASK>",
        f"client: pfn {p:#x} is a trap",
    ]]
    # An oops taints the kernel with D (DIE); the next one is numbered #2 and says so.
    with m.context(stack=stack), pytest.raises(PageFault):
        m.read(p, 0, 8)
    assert m.taint == {"D"} and m.nr_oopses == 2
    assert "Oops: Oops: 0000 [#2] PREEMPT SMP NOPTI" in m.log.grep("Oops")
    lines = [t for _, _, t in m.log.lines]
    i = len(lines) - 1 - lines[::-1].index(m.log.grep("CPU: ")[-1])
    assert lines[i].endswith("Tainted: G      D            6.12.0-pageext #1")
    # print_tainted_verbose (6.10+), only when tainted, before the hardware name
    assert lines[i + 1 : i + 3] == ["Tainted: [D]=DIE",
                                    "Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-2.fc40 04/01/2014"]


def test_oops_header_says_debug_pagealloc_when_it_is_enabled(tiny: Machine) -> None:
    """__die_header prints DEBUG_PAGEALLOC iff debug_pagealloc_enabled() at run time."""
    p = tiny.alloc_pages(G.GFP_KERNEL, 0)
    tiny.contents.unmap(p)
    tiny.debug_pagealloc_enabled = True
    with pytest.raises(PageFault):
        tiny.read(p, 0, 1)
    assert tiny.log.grep("Oops: ") == ["Oops: Oops: 0000 [#1] PREEMPT SMP DEBUG_PAGEALLOC NOPTI"]


def test_taint_columns_follow_print_tainted(tiny: Machine) -> None:
    assert tiny.taint_text() == "Not tainted"
    tiny.taint.update({"B", "W"})
    # G, then F S R M B U D A W C I O E L K X T N: B is column 5, W column 9.
    assert tiny.taint_text() == "Tainted: G    B   W         "
    assert tiny.stack_info_lines()[1] == "Tainted: [B]=BAD_PAGE, [W]=WARN"
