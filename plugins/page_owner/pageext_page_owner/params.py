"""page_owner's boot parameters.

``page_owner=on`` is mainline's (a kernel boolean, off by default).
``page_owner_stack_depth=N`` is ours: the kernel fixes the depth at 16 at
build time; here it can be chosen per boot, 1..64.
"""
from __future__ import annotations

from pageext_core import BootParam

DEFAULT_STACK_DEPTH = 16
MAX_STACK_DEPTH = 64


def parse_stack_depth(raw: str | None) -> int:
    """A depth in 1..64, or ``ValueError`` with the line the kernel log gets (the default stays)."""
    try:
        depth = int(raw or "", 0)
    except ValueError:
        depth = 0
    if not 1 <= depth <= MAX_STACK_DEPTH:
        raise ValueError(f"Bad page_owner_stack_depth value: {raw if raw is not None else ''} "
                         f"(expected 1..{MAX_STACK_DEPTH}), using {DEFAULT_STACK_DEPTH}")
    return depth


PARAMS = (
    BootParam("page_owner", "bool", False, "track who allocated each page (page_owner=on)", key="enabled"),
    BootParam("page_owner_stack_depth", "int", DEFAULT_STACK_DEPTH,
              f"frames kept per stack, 1..{MAX_STACK_DEPTH}", key="stack_depth", parse=parse_stack_depth),
)
