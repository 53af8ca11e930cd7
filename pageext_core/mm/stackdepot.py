"""The stack depot: every distinct stack stored once, named by a 32-bit handle.

page_owner keeps one handle per page, never a copy of the frames (the 2014
series kept 8 raw addresses per page; mainline moved to the depot).  Stacks
come either from the caller's Python stack or, for synthetic workloads and
replayed kernel traces, as given frame strings.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from types import CodeType, FrameType

DEFAULT_MAX_FRAMES = 16
# Bytes the kernel's depot spends per stored stack: a record header plus
# one unsigned long per frame.
RECORD_HEADER_BYTES = 24
FRAME_BYTES = 8

# The allocator's and the framework's own frames; boot adds each client's package.
_SKIP_PREFIXES = ("pageext_core.", "pluggy")


class StackDepot:
    """Deduplicating store of frame tuples; handle 0 means "no stack"."""

    def __init__(self) -> None:
        self._by_frames: dict[tuple[str, ...], int] = {}
        self._stacks: list[tuple[str, ...]] = [()]
        # Python stacks are keyed by (id(code), line): hashing a code object is
        # not cached by CPython and costs about 1 µs; _codes keeps each code
        # alive so its id cannot be reused.
        self._by_key: dict[tuple[tuple[int, int], ...], int] = {}
        self._codes: dict[int, CodeType] = {}
        self._code_names: dict[int, tuple[str, int, int, str]] = {}
        self.skip_prefixes: tuple[str, ...] = _SKIP_PREFIXES
        self.saves = 0
        self.stored_frames = 0

    def __len__(self) -> int:
        return len(self._stacks) - 1

    def save(self, frames: Sequence[str]) -> int:
        """Handle for these frames (innermost first), storing them if new."""
        key = tuple(frames)
        self.saves += 1
        h = self._by_frames.get(key)
        if h is None:
            h = len(self._stacks)
            if h >= 1 << 32:
                raise OverflowError("stack depot is full (2^32 handles)")
            self._stacks.append(key)
            self._by_frames[key] = h
            self.stored_frames += len(key)
        return h

    def fetch(self, handle: int) -> tuple[str, ...]:
        """Frames of a handle; ``()`` for 0."""
        try:
            return self._stacks[handle]
        except IndexError:
            raise KeyError(f"stack depot has no handle {handle}") from None

    def format(self, handle: int, indent: str = " ") -> str:
        """One line per frame with a leading indent (``snprint_stack_trace``)."""
        return "".join(f"{indent}{f}\n" for f in self.fetch(handle))

    @property
    def nbytes(self) -> int:
        """Bytes the kernel's depot would spend on what is stored."""
        return len(self) * RECORD_HEADER_BYTES + self.stored_frames * FRAME_BYTES

    # -- capturing Python stacks ---------------------------------------------------

    def save_python(self, max_frames: int = DEFAULT_MAX_FRAMES, frame: FrameType | None = None) -> int:
        """Handle for the calling Python stack, pageext's own frames skipped.

        Frames print like kernel symbols: ``function+0xLINE/0xLINES [module]``,
        the offset and size counted in source lines.  Repeated stacks cost a
        tuple and a dict lookup.
        """
        f: FrameType | None = frame if frame is not None else sys._getframe(1)
        skip = self.skip_prefixes
        while f is not None and f.f_globals.get("__name__", "").startswith(skip):
            f = f.f_back
        key: list[tuple[int, int]] = []
        codes = self._codes
        while f is not None and len(key) < max_frames:
            code = f.f_code
            cid = id(code)
            if cid not in codes:
                codes[cid] = code
            key.append((cid, f.f_lineno))
            f = f.f_back
        tkey = tuple(key)
        h = self._by_key.get(tkey)
        if h is None:
            h = self.save([self._frame_name(cid, line) for cid, line in tkey])
            self._by_key[tkey] = h
        else:
            self.saves += 1
        return h

    def skip_modules(self, *prefixes: str) -> None:
        """Also leave out frames of these modules (page_ext clients' own code) when capturing."""
        self.skip_prefixes = tuple(dict.fromkeys(self.skip_prefixes + tuple(p for p in prefixes if p)))

    def _frame_name(self, cid: int, lineno: int | None) -> str:
        info = self._code_names.get(cid)
        if info is None:
            code = self._codes[cid]
            lines = [ln for _, _, ln in code.co_lines() if ln is not None]
            first = code.co_firstlineno
            size = (max(lines) - first + 1) if lines else 1
            name = getattr(code, "co_qualname", code.co_name)
            module = code.co_filename.rsplit("/", 1)[-1].removesuffix(".py")
            info = self._code_names[cid] = (name, first, size, module)
        name, first, size, module = info
        off = (lineno or first) - first
        return f"{name}+{off:#x}/{size:#x} [{module}]"

    def handles(self) -> Iterable[int]:
        return range(1, len(self._stacks))
