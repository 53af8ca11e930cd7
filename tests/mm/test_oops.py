"""A page fault is logged once, as the kernel's oops: header, Oops line, CPU line, Call Trace, then the clients' texts."""
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
        "Oops: 0002 [#1] SMP",
        "CPU: 1 UID: 0 PID: 77 Comm: buggy Not tainted 6.12.0-pageext #1",
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
    assert "Oops: 0000 [#2] SMP" in m.log.grep("Oops")
    assert m.log.grep("CPU: ")[-1].endswith("Tainted: G      D            6.12.0-pageext #1")


def test_taint_columns_follow_print_tainted(tiny: Machine) -> None:
    assert tiny.taint_text() == "Not tainted"
    tiny.taint.update({"B", "W"})
    # G, then F S R M B U D A W C I O E L K X T N: B is column 5, W column 9.
    assert tiny.taint_text() == "Tainted: G    B   W         "
