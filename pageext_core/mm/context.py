"""Who is running: the task allocations are attributed to.

The machine keeps the current task, CPU, clock and stack handle as plain
attributes (the allocator and page_owner read them on every event); this
module holds the task itself and its kernel truncation rule.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """The "current" task allocations are attributed to."""

    pid: int
    tgid: int
    comm: str

    def __post_init__(self) -> None:
        if len(self.comm.encode()) > 15:
            # TASK_COMM_LEN is 16 with the NUL: the kernel truncates, so do we.
            object.__setattr__(self, "comm", self.comm.encode()[:15].decode(errors="ignore"))


SWAPPER = Task(0, 0, "swapper/0")
