"""Who is running: the task, the CPU and the stack events are attributed to.

``Context`` is the machine's (``machine.ctx``; ``Machine.set_task``,
``set_cpu``, ``set_stack``, ``context`` and ``current`` use it).  The CPU
number itself is held by what runs on it, the allocator (``cpu``, read on
every allocation to find its per-CPU lists); the context checks and sets it.
Stacks are saved in the machine's stack depot and named by their handle.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from pageext_core.mm.stackdepot import DEFAULT_MAX_FRAMES, StackDepot


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


class RunsOnCpu(Protocol):
    """What holds the current CPU number (the allocator)."""

    cpu: int


class Context:
    """The current task, CPU and stack of one machine.

    ``current`` and ``stack_handle`` are plain attributes: the page_ext
    clients read them on every event, and the session's workload and replay
    set them (and the allocator's ``cpu``) directly before each operation.
    """

    def __init__(self, cpus: int, depot: StackDepot, cpu_holder: RunsOnCpu) -> None:
        self.cpus = cpus
        self.depot = depot
        self._on = cpu_holder
        self.current: Task = SWAPPER
        self.stack_handle = 0  # 0: no explicit stack, capture Python's
        self.stack_max_frames = DEFAULT_MAX_FRAMES

    @property
    def cpu(self) -> int:
        """The CPU the next event runs on."""
        return self._on.cpu

    def set_task(self, pid: int, tgid: int | None = None, comm: str = "task") -> Task:
        """Make a new task current (its tgid defaults to its pid)."""
        self.current = Task(pid, pid if tgid is None else tgid, comm)
        return self.current

    def set_cpu(self, cpu: int) -> None:
        """Run the next events on ``cpu`` (its per-CPU lists are used)."""
        if not 0 <= cpu < self.cpus:
            raise ValueError(f"cpu {cpu}: this machine has CPUs 0..{self.cpus - 1}")
        self._on.cpu = cpu

    def set_stack_depth(self, frames: int) -> None:
        """Keep at most ``frames`` frames of every stack captured or set from now on (page_owner's stack depth)."""
        if frames.__class__ is not int or frames < 1:
            raise ValueError(f"stack depth {frames!r}: expected a positive number of frames")
        self.stack_max_frames = frames

    def set_stack(self, frames: Sequence[str] | int | None) -> int:
        """Attribute the next events to these frames (or a depot handle); None: capture Python's stack."""
        if frames is None:
            self.stack_handle = 0
        elif isinstance(frames, int):
            self.depot.fetch(frames)
            self.stack_handle = frames
        else:
            self.stack_handle = self.depot.save(frames[: self.stack_max_frames])
        return self.stack_handle

    @property
    def explicit_stack(self) -> int:
        """Depot handle set by ``set_stack``/``context`` (0: none); never captures a Python stack."""
        return self.stack_handle

    def current_stack(self) -> int:
        """Depot handle of the stack the current event is attributed to."""
        h = self.stack_handle
        if h:
            return h
        return self.depot.save_python(self.stack_max_frames)

    @contextlib.contextmanager
    def running(self, task: Task | None = None, stack: Sequence[str] | int | None = None,
                cpu: int | None = None) -> Iterator[Context]:
        """Run a block as ``task`` on ``cpu`` with ``stack``; restores the previous task, stack and CPU."""
        saved = (self.current, self.stack_handle, self._on.cpu)
        try:
            if task is not None:
                self.current = task
            if stack is not None:
                self.set_stack(stack)
            if cpu is not None:
                self.set_cpu(cpu)
            yield self
        finally:
            self.current, self.stack_handle, self._on.cpu = saved
