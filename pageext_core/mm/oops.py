"""How the machine reports a fault: the oops text, the CPU line, the call trace, the taint column.

Pure formatting in the kernel's words; the machine numbers the oopses,
logs them and taints itself (``Machine._log_oops``).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pageext_core.mm.constants import KERNEL_RELEASE, TAINT_LETTERS

if TYPE_CHECKING:
    from pageext_core.mm.context import Task
    from pageext_core.mm.errors import PageFault


def taint_text(taint: set[str]) -> str:
    """``Not tainted`` or the kernel's ``Tainted: G      D ...`` column string."""
    if not taint:
        return "Not tainted"
    return "Tainted: " + ("P" if "P" in taint else "G") + "".join(c if c in taint else " " for c in TAINT_LETTERS)


def cpu_line(cpu: int, task: Task, taint: set[str]) -> str:
    """``dump_stack``'s first line."""
    return f"CPU: {cpu} UID: 0 PID: {task.pid} Comm: {task.comm} {taint_text(taint)} {KERNEL_RELEASE} #1"


def call_trace_lines(frames: Iterable[str]) -> list[str]:
    """``Call Trace:`` and the frames, as an x86 oops prints them."""
    return ["Call Trace:", " <TASK>", *(f" {f}" for f in frames), " </TASK>"]


def oops_text(fault: PageFault, texts: list[str], number: int, cpu: str, trace: list[str]) -> str:
    """One numbered oops: the fault's header, the Oops line, CPU line, call trace, then the clients' texts."""
    return "\n".join([*fault.header_lines(), f"Oops: {0x0002 if fault.write else 0x0000:04x} [#{number}] SMP",
                      cpu, *trace, *texts])
