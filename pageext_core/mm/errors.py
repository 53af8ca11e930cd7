"""The machine model's exceptions: one small hierarchy, one module.

Every error names the pfn, what state was expected and what was found, in the
kernel's words where it has them; an operation that raises leaves the
allocator exactly as it was before the call.
"""
from __future__ import annotations

PAGE_OFFSET = 0xFFFF888000000000  # x86_64 direct map base (4-level paging, no KASLR)


def direct_map_address(pfn: int, offset: int = 0) -> int:
    """Kernel virtual address of a byte in the direct map (what fault and hex dumps print)."""
    return PAGE_OFFSET + (pfn << 12) + offset


class MMError(Exception):
    """Base class of everything the machine model raises."""


class ConfigError(MMError, ValueError):
    """A machine description that cannot be built (bad size, overlapping holes...)."""


class GfpParseError(MMError, ValueError):
    """A gfp mask that cannot be read."""


class InvalidOrder(MMError, ValueError):
    """An order outside 0..MAX_PAGE_ORDER."""

    def __init__(self, order: object, max_order: int) -> None:
        self.order = order
        super().__init__(f"order {order!r} is outside 0..{max_order} (MAX_PAGE_ORDER is {max_order})")


class InvalidPfn(MMError, ValueError):
    """A pfn outside memory, in a hole, or in an offline section."""

    def __init__(self, pfn: int, why: str) -> None:
        self.pfn = pfn
        super().__init__(f"pfn {pfn:#x}: {why}")


class BadPageState(MMError):
    """The kernel's ``BUG: Bad page state``: freeing a page in the wrong state.

    ``expected`` and ``actual`` say what the page should have been and what it
    was; the message has the kernel's headline and ``page dumped because:``.
    """

    def __init__(self, pfn: int, reason: str, expected: str, actual: str, comm: str = "swapper/0", dump: str = "") -> None:
        self.pfn = pfn
        self.reason = reason
        self.expected = expected
        self.actual = actual
        lines = [f"BUG: Bad page state in process {comm}  pfn:{pfn:05x}"]
        if dump:
            lines.append(dump)
        lines.append(f"page dumped because: {reason} (expected {expected}, found {actual})")
        super().__init__("\n".join(lines))


class DoubleFree(BadPageState):
    """Freeing a block that is already free."""


class OrderMismatch(BadPageState):
    """Freeing a block with another order than it was allocated with."""


class PageFault(MMError):
    """An access to an unmapped page: the simulated oops.

    ``report`` carries what the page_ext clients said about the page (free,
    guard page, owner dump), so the exception is the whole bug report.
    """

    def __init__(self, pfn: int, offset: int, write: bool, report: str = "") -> None:
        self.pfn = pfn
        self.offset = offset
        self.write = write
        self.report = report
        self.address = direct_map_address(pfn, offset)
        head = "\n".join(self.header_lines()) + f"\npage: pfn {pfn:#x} offset {offset:#x}"
        super().__init__(head + ("\n" + report if report else ""))

    def header_lines(self) -> list[str]:
        """The oops's first lines, as x86 prints them for a not-present page."""
        kind = "write" if self.write else "read"
        return [
            f"BUG: unable to handle page fault for address: {self.address:016x}",
            f"#PF: supervisor {kind} access in kernel mode",
            f"#PF: error_code(0x{2 if self.write else 0:04x}) - not-present page",
        ]


class HotplugError(MMError):
    """A memory block that cannot be onlined or offlined (the -ENOMEM / -EBUSY of this world)."""


class PlacementRefused(MMError):
    """``alloc_pages_at`` cannot hand out exactly that block; the message says which page is in the way.

    Raised before anything changes: the allocator is as it was.
    """

    def __init__(self, pfn: int, order: int, why: str) -> None:
        self.pfn = pfn
        self.order = order
        self.why = why
        super().__init__(f"pfn {pfn:#x} order {order}: {why}")

# A public module (docs/writing-plugins.md, "What is public"): these names are its API.
__all__ = [
    "PAGE_OFFSET",
    "BadPageState",
    "ConfigError",
    "DoubleFree",
    "GfpParseError",
    "HotplugError",
    "InvalidOrder",
    "InvalidPfn",
    "MMError",
    "OrderMismatch",
    "PageFault",
    "PlacementRefused",
    "direct_map_address",
]
