"""How the machine reports a fault: the oops text, the CPU line, the call trace, the taint column.

The functions are pure formatting in the kernel's words (x86_64, 6.12);
``Oopses`` (``machine.oopses``) is the machine's oops state: it numbers the
oopses, logs them and keeps the taint, reading the task, CPU and stack from
the machine's context.

The oops header is ``__die_header``'s: ``Oops: `` + the die string (the
page-fault path passes ``Oops``, so 6.10 to 6.14 print ``Oops: Oops:``), the
error code, the counter, then the kernel's flags: `` PREEMPT`` and `` SMP``
(this kernel is built with both), `` DEBUG_PAGEALLOC`` when debug_pagealloc
is enabled at run time, and `` NOPTI`` (the machine's CPU needs no page
table isolation).  ``dump_stack_print_info`` prints the CPU line, the
verbose taint line when tainted, and ``Hardware name:``.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pageext_core.mm.constants import KERNEL_RELEASE, TAINT_LETTERS

if TYPE_CHECKING:
    from pageext_core.mm.context import Context, Task
    from pageext_core.mm.errors import PageFault
    from pageext_core.mm.printk import KernelLog


# The DMI description the machine reports in every stack dump (``dump_stack_set_arch_desc``).
HARDWARE_NAME = "QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-2.fc40 04/01/2014"
# CONFIG_MITIGATION_PAGE_TABLE_ISOLATION is built in; the CPU is not affected, so PTI is off.
PTI = False
# kernel/panic.c taint_flags: the name print_tainted_verbose gives each letter.
TAINT_NAMES = {
    "P": "PROPRIETARY_MODULE", "F": "FORCED_MODULE", "S": "CPU_OUT_OF_SPEC", "R": "FORCED_RMMOD",
    "M": "MACHINE_CHECK", "B": "BAD_PAGE", "U": "USER", "D": "DIE", "A": "OVERRIDDEN_ACPI_TABLE",
    "W": "WARN", "C": "CRAP", "I": "FIRMWARE_WORKAROUND", "O": "OOT_MODULE", "E": "UNSIGNED_MODULE",
    "L": "SOFTLOCKUP", "K": "LIVEPATCH", "X": "AUX", "T": "RANDSTRUCT", "N": "TEST",
}


def taint_text(taint: set[str]) -> str:
    """``Not tainted`` or the kernel's ``Tainted: G      D ...`` column string."""
    if not taint:
        return "Not tainted"
    return "Tainted: " + ("P" if "P" in taint else "G") + "".join(c if c in taint else " " for c in TAINT_LETTERS)


def cpu_line(cpu: int, task: Task, taint: set[str]) -> str:
    """``dump_stack``'s first line."""
    return f"CPU: {cpu} UID: 0 PID: {task.pid} Comm: {task.comm} {taint_text(taint)} {KERNEL_RELEASE} #1"


def taint_verbose(taint: set[str]) -> str:
    """``print_tainted_verbose``: ``[D]=DIE, [W]=WARN`` in the taint table's order."""
    return ", ".join(f"[{c}]={TAINT_NAMES[c]}" for c in "P" + TAINT_LETTERS if c in taint)


def stack_info_lines(cpu: int, task: Task, taint: set[str]) -> list[str]:
    """``dump_stack_print_info``: the CPU line, ``Tainted: [X]=NAME`` when tainted, ``Hardware name:``."""
    lines = [cpu_line(cpu, task, taint)]
    if taint:
        lines.append(f"Tainted: {taint_verbose(taint)}")
    lines.append(f"Hardware name: {HARDWARE_NAME}")
    return lines


def die_header(err: int, number: int, debug_pagealloc: bool) -> str:
    """``__die_header`` for a page fault: ``Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI``."""
    flags = " PREEMPT SMP" + (" DEBUG_PAGEALLOC" if debug_pagealloc else "") + (" PTI" if PTI else " NOPTI")
    return f"Oops: Oops: {err & 0xFFFF:04x} [#{number}]{flags}"


def call_trace_lines(frames: Iterable[str]) -> list[str]:
    """``Call Trace:`` and the frames, as an x86 oops prints them."""
    return ["Call Trace:", " <TASK>", *(f" {f}" for f in frames), " </TASK>"]


def oops_text(fault: PageFault, texts: list[str], number: int, info: list[str], trace: list[str],
              debug_pagealloc: bool = False) -> str:
    """One numbered oops: the fault's header, the Oops line, the stack info lines, call trace, then the clients' texts."""
    return "\n".join([*fault.header_lines(), die_header(0x0002 if fault.write else 0x0000, number, debug_pagealloc),
                      *info, *trace, *texts])


class Oopses:
    """One machine's oopses and taint: what a page fault logs, and the stack dumps errors print."""

    def __init__(self, ctx: Context, log: KernelLog) -> None:
        self.ctx = ctx
        self.log = log
        self.taint: set[str] = set()
        self.nr_oopses = 0
        # debug_pagealloc_enabled(): set by the debug_pagealloc client when it unmaps free pages (oops header flag).
        self.debug_pagealloc_enabled = False

    def taint_text(self) -> str:
        """``Not tainted`` or the kernel's ``Tainted: G      D ...`` column string."""
        return taint_text(self.taint)

    def cpu_line(self) -> str:
        """``dump_stack``'s first line for the current task."""
        return cpu_line(self.ctx.cpu, self.ctx.current, self.taint)

    def call_trace_lines(self) -> list[str]:
        """``Call Trace:`` and the current stack's frames, as an x86 oops prints them."""
        return call_trace_lines(self.ctx.depot.fetch(self.ctx.current_stack()))

    def stack_info_lines(self) -> list[str]:
        """``dump_stack_print_info``: CPU line, verbose taint line (when tainted), ``Hardware name:``."""
        return stack_info_lines(self.ctx.cpu, self.ctx.current, self.taint)

    def dump_stack_lines(self) -> list[str]:
        """``dump_stack``: the stack info lines, then the call trace."""
        return [*self.stack_info_lines(), *self.call_trace_lines()]

    def log_oops(self, fault: PageFault, texts: list[str]) -> None:
        """Log a page fault as the kernel would (one oops, numbered), then what the clients know; taints ``D``."""
        self.nr_oopses += 1
        self.log.printk(oops_text(fault, texts, self.nr_oopses, self.stack_info_lines(), self.call_trace_lines(),
                                  self.debug_pagealloc_enabled), "err")
        self.taint.add("D")
