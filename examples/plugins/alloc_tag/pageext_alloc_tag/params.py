"""The ``sysctl.vm.mem_profiling={0|1|never}[,compressed]`` boot parameter.

The kernel's rules, as its early parameter applies them:

* a value starting with ``never`` turns profiling off for good (the kernel
  only compares those five letters, so ``neverland`` is ``never`` too);
* otherwise the text before the first comma is a kernel boolean
  (``1``/``0``, ``y``/``n``, ``on``/``off``...) and the only thing allowed
  after the comma is ``compressed``;
* anything else (an empty value, ``2``, ``1,fast``, ``1,``) makes the
  parameter handler fail and the kernel logs
  ``Malformed early option 'sysctl.vm.mem_profiling'``; the setting keeps
  its default.

What the values mean here: ``1`` profiles every page allocation; ``0`` and
``never`` are off and cost nothing (the kernel keeps the page_ext slot for
``0`` so that ``/proc/sys/vm/mem_profiling`` can switch profiling on later;
this machine has no runtime sysctl, so there is nothing to keep it for).
``compressed`` makes the per-page reference a 2-byte tag index instead of
4 bytes (the kernel packs the index into spare ``page->flags`` bits and then
needs no page_ext at all; here it stays in page_ext, only smaller).

The parsed value is the normalised text (``"1"``, ``"0,compressed"``,
``"never"``...), so it prints as it was meant in ``pageext plugins``.
"""
from __future__ import annotations

from pageext_core import BootParam, kstrtobool

PARAM = "sysctl.vm.mem_profiling"
TOML_KEY = "mem_profiling"  # [boot.alloc_tag] mem_profiling = "1,compressed"
DEFAULT = "0"
MALFORMED = f"Malformed early option '{PARAM}'"


def parse_mem_profiling(raw: str | None) -> str:
    """The normalised setting for the command-line text; ``ValueError`` with the kernel's message."""
    if not raw:
        raise ValueError(MALFORMED)
    if raw.startswith("never"):
        return "never"
    token, comma, rest = raw.partition(",")
    try:
        on = kstrtobool(token)
    except ValueError:
        raise ValueError(MALFORMED) from None
    if comma and rest != "compressed":
        raise ValueError(MALFORMED)
    return ("1" if on else "0") + (",compressed" if comma else "")


def enabled(value: str) -> bool:
    """Profiling on for this boot (``1`` or ``1,compressed``)."""
    return value.split(",", 1)[0] == "1"


def compressed(value: str) -> bool:
    return value.endswith(",compressed")


def boot_message(value: str) -> str:
    """What the kernel prints when it accepts the parameter."""
    if value == "never":
        return "Memory allocation profiling is disabled!"
    return (f"Memory allocation profiling is enabled {'with' if compressed(value) else 'without'} "
            f"compression and is turned {'on' if enabled(value) else 'off'}!")


def boot_param() -> BootParam:
    return BootParam(
        PARAM, "str", DEFAULT,
        "memory allocation profiling (/proc/allocinfo): 1 on, 0 or never off; ',compressed' stores a 2-byte tag",
        key=TOML_KEY, parse=parse_mem_profiling,
    )
